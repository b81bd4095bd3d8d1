"""Search around the policy/value network with mctx, on the real chess rules (``mcts.env``).

Convention: every value is from the view of the side to move at its node, ``win - loss`` from
the network's loss/draw/win head, in [-1, 1]. The recurrent function steps the real game: the
reward of an edge belongs to the player who made the move (+1 for a checkmate, -1 for an illegal
slot), and ``discount = -1`` turns the child's value into the parent's view (0 below a finished
game, whose value is its reward alone).

Tree actions are SLOTS of a node's legal-move list (``ChessState.moves``, ``MAX_MOVES`` of them),
not the 4672 actions: mctx keeps six float/int arrays per node and action, 6 KiB per node this
way instead of 112 KiB. Priors are the network's logits at the legal moves; padding slots get
mctx's masked logit, and the root masks them as invalid.

Search variants come from a registry (``SEARCH_POLICIES``): "gumbel" (Gumbel MuZero, sequential
halving at the root, with Gumbel noise while the temperature is above 0) and "alphazero" (PUCT
with Dirichlet noise over the legal moves at the root, acting on visit counts with a
temperature).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import mctx
from flax import struct

from data_pipeline import pgx_rules
from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN
from mcts.env import (
    MAX_MOVES,
    REASONS,
    ChessState,
    from_obs,
    from_pgx,
    initial_state,
    observe,
    step,
)
from scaling.model import PolicyValueNet, param_shapes

__all__ = [
    "SEARCH_POLICIES",
    "SearchConfig",
    "SearchOutput",
    "TreeMemory",
    "dense_policy",
    "evaluate",
    "register_policy",
    "run_search",
    "search",
    "search_policy",
    "tree_memory",
]

# mctx is used here only, through its public API: gumbel_muzero_policy, muzero_policy (with the
# qtransform, dirichlet_fraction, pb_c_* and temperature arguments), RootFnOutput,
# RecurrentFnOutput, PolicyOutput (search_tree), Tree (qvalues, summary, children_visits,
# node_values, raw_values, embeddings).
# mctx counts its releases in the last component (0.0.N), so the tested range is one release.
TESTED_MCTX = (0, 0, 71)
pgx_rules.check_tested_version("mctx", mctx.__version__, TESTED_MCTX, "mcts/search.py")

_MASKED = float(jnp.finfo(jnp.float32).min)  # mctx's logit for an invalid action


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """One search per move; the fields a variant does not use are ignored by it."""

    kind: str = "gumbel"  # a key of SEARCH_POLICIES: "gumbel" or "alphazero"
    num_simulations: int = 32  # network evaluations per move, besides the root's
    max_depth: int | None = None  # deepest simulated path (None: num_simulations)
    max_num_considered_actions: int = 16  # gumbel: root actions sampled for sequential halving
    gumbel_scale: float = 1.0  # gumbel: noise scale (0: deterministic, for evaluation)
    # gumbel: min-max rescale the completed Q-values over the root's children before the
    # sigma transform (mctx's default). It blows a 0.01 lead between two moves up to a whole
    # unit, so the improved policy (the self-play policy target) follows the value head's noise
    # where values are all near 0; false: values as they are, in [-1, 1] (BENCHMARKS.md 13c)
    value_rescale: bool = True
    # gumbel: sigma(q) = (maxvisit_init + max visits) * value_scale * q (mctx's c_scale, 0.1).
    # At 16 simulations a found mate (q = 1) weighs ~5 nats against the prior's logits, so a
    # sharp prior can outvote it (BENCHMARKS.md 13d)
    value_scale: float = 0.1
    # The reward of a move that completes a threefold repetition, for the player who made it,
    # inside the search (contempt; the game still ends drawn and its value target is a draw).
    # Self-play from random init collapsed into repetitions (BENCHMARKS.md 13b, 13e seed 1);
    # a penalty makes the side that would repeat look for another move. 0: the rules' draw.
    repetition_penalty: float = 0.0
    dirichlet_alpha: float = 0.3  # alphazero: root noise concentration (AlphaZero's chess value)
    dirichlet_fraction: float = 0.25  # alphazero: weight of the noise (0: none, for evaluation)
    pb_c_init: float = 1.25  # alphazero: PUCT c1
    pb_c_base: float = 19652.0  # alphazero: PUCT c2
    temperature: float = 1.0  # alphazero: act on visits ** (1 / T); 0 = the most visited
    # (gumbel: any T > 0 acts with the Gumbel noise, 0 without it)

    def __post_init__(self) -> None:
        if self.kind not in SEARCH_POLICIES:
            raise ValueError(
                f"search.kind must be one of {sorted(SEARCH_POLICIES)}, got {self.kind!r}"
            )
        if self.num_simulations < 1:
            raise ValueError(f"search.num_simulations must be >= 1, got {self.num_simulations}")
        if self.max_depth is not None and self.max_depth < 1:
            raise ValueError(f"search.max_depth must be >= 1 or None, got {self.max_depth}")
        if self.max_num_considered_actions < 1:
            raise ValueError("search.max_num_considered_actions must be >= 1")
        if not 0.0 <= self.dirichlet_fraction <= 1.0:
            raise ValueError(
                f"search.dirichlet_fraction must be in [0, 1], got {self.dirichlet_fraction}"
            )
        for name in ("gumbel_scale", "temperature"):
            if getattr(self, name) < 0:
                raise ValueError(f"search.{name} must be >= 0, got {getattr(self, name)}")
        if not isinstance(self.value_rescale, bool):
            raise ValueError(f"search.value_rescale must be true or false: {self.value_rescale!r}")
        if not 0.0 <= self.repetition_penalty <= 1.0:
            raise ValueError(
                f"search.repetition_penalty must be in [0, 1], got {self.repetition_penalty}"
            )
        for name in ("dirichlet_alpha", "pb_c_init", "pb_c_base", "value_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"search.{name} must be > 0, got {getattr(self, name)}")


@struct.dataclass
class SearchOutput:
    """The result of one search per game of a batch."""

    action: jax.Array  # int32[B] the move chosen, as an action index (NUM_ACTIONS: game over)
    slot: jax.Array  # int32[B] its slot in state.moves
    policy: jax.Array  # f32[B, MAX_MOVES] training target over state.moves (sums to 1)
    visits: jax.Array  # int32[B, MAX_MOVES] root visit counts per slot
    value: jax.Array  # f32[B] search value of the root, side to move's view
    prior_value: jax.Array  # f32[B] the network's value of the root


# (params, key, root, recurrent_fn, invalid bool[B, MAX_MOVES], cfg, temperature f32[]) -> output
PolicyFn = Callable[
    [Any, jax.Array, mctx.RootFnOutput, mctx.RecurrentFn, jax.Array, SearchConfig, jax.Array],
    mctx.PolicyOutput,
]
SEARCH_POLICIES: dict[str, PolicyFn] = {}


def register_policy(name: str) -> Callable[[PolicyFn], PolicyFn]:
    def add(fn: PolicyFn) -> PolicyFn:
        SEARCH_POLICIES[name] = fn
        return fn

    return add


@register_policy("gumbel")
def _gumbel(
    params: Any,
    key: jax.Array,
    root: mctx.RootFnOutput,
    recurrent_fn: mctx.RecurrentFn,
    invalid: jax.Array,
    cfg: SearchConfig,
    temperature: jax.Array,
) -> mctx.PolicyOutput:
    # acts on sequential halving's winner; exploration is the Gumbel noise, on while the
    # temperature is above 0 (self-play's opening plies; arena agents that sample)
    gumbel_scale = jnp.where(temperature > 0, cfg.gumbel_scale, 0.0)
    return mctx.gumbel_muzero_policy(
        params,
        key,
        root,
        recurrent_fn,
        cfg.num_simulations,
        invalid_actions=invalid,
        max_depth=cfg.max_depth,
        max_num_considered_actions=cfg.max_num_considered_actions,
        gumbel_scale=gumbel_scale,
        qtransform=functools.partial(
            mctx.qtransform_completed_by_mix_value,
            rescale_values=cfg.value_rescale,
            value_scale=cfg.value_scale,
        ),
    )


def _qtransform_bounded(tree: mctx.Tree, node_index: jax.Array) -> jax.Array:  # f32[MAX_MOVES]
    """AlphaZero's Q for PUCT: values are bounded in [-1, 1], mapped linearly to [0, 1] (mctx's
    default min-max normalisation over the siblings would blow a 0.01 lead up to a whole unit).
    Unvisited moves take the node's own value (first-play urgency = the parent's value)."""
    q = tree.qvalues(node_index)
    q = jnp.where(tree.children_visits[node_index] > 0, q, tree.node_values[node_index])
    return (jnp.clip(q, -1.0, 1.0) + 1.0) / 2.0


@register_policy("alphazero")
def _alphazero(
    params: Any,
    key: jax.Array,
    root: mctx.RootFnOutput,
    recurrent_fn: mctx.RecurrentFn,
    invalid: jax.Array,
    cfg: SearchConfig,
    temperature: jax.Array,
) -> mctx.PolicyOutput:
    noise_key, key = jax.random.split(key)
    # AlphaZero's noise is over the LEGAL moves; mctx's own would spread it over every slot.
    gamma = jax.random.gamma(noise_key, cfg.dirichlet_alpha, invalid.shape)  # f32[B, MAX_MOVES]
    gamma = jnp.where(invalid, 0.0, gamma)
    noise = gamma / jnp.maximum(gamma.sum(axis=-1, keepdims=True), 1e-30)
    probs = jax.nn.softmax(root.prior_logits)
    probs = (1.0 - cfg.dirichlet_fraction) * probs + cfg.dirichlet_fraction * noise
    logits = jnp.where(invalid, _MASKED, jnp.log(jnp.maximum(probs, 1e-30)))
    return mctx.muzero_policy(
        params,
        key,
        root.replace(prior_logits=logits),
        recurrent_fn,
        cfg.num_simulations,
        invalid_actions=invalid,
        max_depth=cfg.max_depth,
        qtransform=_qtransform_bounded,
        dirichlet_fraction=0.0,
        pb_c_init=cfg.pb_c_init,
        pb_c_base=cfg.pb_c_base,
        temperature=temperature,
    )


def evaluate(
    net: PolicyValueNet,
    params: Any,
    obs: jax.Array,  # uint8[B, OBS_LEN]
    elo: int | jax.Array | None = None,  # the mover's rating, Elo-conditioned nets (None: unknown)
) -> tuple[jax.Array, jax.Array]:  # policy logits f32[B, NUM_ACTIONS], value f32[B]
    """The network's policy logits and its value ``p(win) - p(loss)`` for the side to move.
    ``elo`` is ignored by a network without Elo conditioning."""
    elo_in = None
    if net.cfg.elo_buckets:
        elo_in = jnp.full(obs.shape[:1], -1 if elo is None else elo, jnp.int32)
    logits, value_logits = cast(
        tuple[jax.Array, jax.Array], net.apply({"params": params}, obs, elo_in)
    )
    p = jax.nn.softmax(value_logits, axis=-1)  # f32[B, 3] loss, draw, win
    return logits, p[:, 2] - p[:, 0]


def _priors(logits: jax.Array, moves: jax.Array) -> jax.Array:  # f32[B, MAX_MOVES]
    """The logits at the legal moves' slots; padding slots masked."""
    idx = moves.astype(jnp.int32)  # [B, MAX_MOVES]
    got = jnp.take_along_axis(logits, jnp.minimum(idx, NUM_ACTIONS - 1), axis=1)
    return jnp.where(idx < NUM_ACTIONS, got, _MASKED)


REPETITION = REASONS.index("threefold_repetition")


def _recurrent_fn(net: PolicyValueNet, elo: int | None, penalty: float = 0.0) -> mctx.RecurrentFn:
    def recurrent(
        params: Any, key: jax.Array, slot: jax.Array, parent: ChessState
    ) -> tuple[mctx.RecurrentFnOutput, ChessState]:
        del key
        # slot int32[B] -> action int32[B]; a padding slot is NUM_ACTIONS: illegal, a loss
        action = jnp.take_along_axis(parent.moves, slot[:, None], axis=1)[:, 0]
        child, reward = jax.vmap(step)(parent, action.astype(jnp.int32))
        if penalty:  # contempt for the mover who completes a repetition
            repeated = ~parent.terminated & (child.reason == REPETITION)
            reward = reward - penalty * repeated.astype(reward.dtype)
        logits, value = evaluate(net, params, jax.vmap(observe)(child), elo)
        done = child.terminated  # bool[B]
        out = mctx.RecurrentFnOutput(
            reward=reward,  # f32[B], the view of the player who moved
            discount=jnp.where(done, 0.0, -1.0),  # f32[B], the child's view -> the parent's
            prior_logits=_priors(logits, child.moves),
            value=jnp.where(done, 0.0, value),
        )
        return out, child

    return recurrent


def run_search(
    net: PolicyValueNet,
    params: Any,
    state: ChessState,  # [B]
    key: jax.Array,
    cfg: SearchConfig,
    *,
    elo: int | None = None,
    temperature: jax.Array | float | None = None,  # overrides cfg.temperature; f32[] or f32[B]
) -> mctx.PolicyOutput:
    """mctx's raw output (with the tree, ``num_simulations + 1`` nodes per game). Jit-able."""
    logits, value = evaluate(net, params, jax.vmap(observe)(state), elo)
    invalid = (state.moves >= NUM_ACTIONS) | state.terminated[:, None]  # bool[B, MAX_MOVES]
    root = mctx.RootFnOutput(
        prior_logits=_priors(logits, state.moves), value=value, embedding=state
    )
    temp = jnp.asarray(cfg.temperature if temperature is None else temperature, jnp.float32)
    if temp.ndim == 1:  # one per game (continuous self-play): broadcast over the moves
        temp = temp[:, None]
    policy = SEARCH_POLICIES[cfg.kind]
    recurrent = _recurrent_fn(net, elo, cfg.repetition_penalty)
    return policy(params, key, root, recurrent, invalid, cfg, temp)


def search(
    net: PolicyValueNet,
    params: Any,
    state: ChessState,  # [B]
    key: jax.Array,
    cfg: SearchConfig,
    *,
    elo: int | None = None,
    temperature: jax.Array | float | None = None,
) -> SearchOutput:
    """One search per game of the batch (jit-able; ``net`` and ``cfg`` are static)."""
    out = run_search(net, params, state, key, cfg, elo=elo, temperature=temperature)
    invalid = (state.moves >= NUM_ACTIONS) | state.terminated[:, None]
    slot = out.action.astype(jnp.int32)  # int32[B]
    action = jnp.take_along_axis(state.moves, slot[:, None], axis=1)[:, 0].astype(jnp.int32)
    summary = out.search_tree.summary()
    return SearchOutput(
        action=jnp.where(state.terminated, NUM_ACTIONS, action),
        slot=slot,
        policy=jnp.where(invalid, 0.0, out.action_weights),
        visits=summary.visit_counts.astype(jnp.int32),
        value=summary.value,
        prior_value=out.search_tree.raw_values[:, 0],
    )


def dense_policy(moves: jax.Array, weights: jax.Array) -> jax.Array:
    """Slot weights ``f32[..., MAX_MOVES]`` over ``moves`` ``int16[..., MAX_MOVES]`` as
    ``f32[..., NUM_ACTIONS]`` (padding slots dropped)."""
    lead = moves.shape[:-1]
    idx = moves.reshape(-1, MAX_MOVES).astype(jnp.int32)
    w = weights.reshape(-1, MAX_MOVES).astype(jnp.float32)
    rows = jnp.arange(idx.shape[0])[:, None]
    dense = jnp.zeros((idx.shape[0], NUM_ACTIONS + 1), jnp.float32).at[rows, idx].add(w)
    return dense[:, :NUM_ACTIONS].reshape(*lead, NUM_ACTIONS)


def _as_states(states: ChessState | pgx_rules.State | jax.Array) -> ChessState:
    if isinstance(states, ChessState):
        return states
    if isinstance(states, pgx_rules.State):
        return jax.vmap(from_pgx)(states)
    obs = jnp.asarray(states)
    if obs.ndim != 2 or obs.shape[1] != OBS_LEN:
        raise ValueError(f"expected ChessState, pgx.chess.State or uint8[B, {OBS_LEN}] obs")
    # an encoded position carries no side to move or history: repetitions count from here
    return jax.vmap(from_obs)(obs, jnp.zeros(obs.shape[:1], jnp.int32))


@functools.partial(jax.jit, static_argnames=("net", "cfg", "elo"))
def search_policy(
    net: PolicyValueNet,
    params: Any,
    states: ChessState | pgx_rules.State | jax.Array,  # a batch [B] (or obs uint8[B, 67])
    key: jax.Array,
    cfg: SearchConfig,
    elo: int | None = None,
) -> tuple[jax.Array, jax.Array]:  # action int32[B], visit distribution f32[B, NUM_ACTIONS]
    """For the arena: the move chosen by "network + search" and the root visit distribution."""
    state = _as_states(states)
    out = search(net, params, state, key, cfg, elo=elo)
    visits = out.visits.astype(jnp.float32)
    dist = visits / jnp.maximum(visits.sum(axis=-1, keepdims=True), 1.0)
    return out.action, dense_policy(state.moves, dist)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TreeMemory:
    """Bytes of the search tree per game and per node (one node per simulation, plus the root)."""

    bytes_per_node: float  # the whole mctx tree / (B * (num_simulations + 1))
    embedding_bytes_per_node: float  # the ChessState part of it
    full_action_bytes_per_node: int  # mctx's per-action arrays if the tree used all 4672 actions
    pgx_state_bytes: int  # one pgx.chess.State (what storing pgx's state would cost per node)


def tree_memory(net: PolicyValueNet, cfg: SearchConfig, batch_size: int) -> TreeMemory:
    """The tree's memory, from its shapes (nothing is allocated or run)."""
    state = jax.eval_shape(
        lambda: jax.tree.map(lambda x: jnp.broadcast_to(x, (batch_size, *x.shape)), initial_state())
    )
    out = jax.eval_shape(
        lambda p, s, k: run_search(net, p, s, k, cfg),
        param_shapes(net.cfg),
        state,
        jax.random.key(0),
    )

    def nbytes(tree: Any) -> int:
        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))

    nodes = batch_size * (cfg.num_simulations + 1)
    pgx_state = jax.eval_shape(pgx_rules.init, jax.random.key(0))
    per_action = 6 * 4 * NUM_ACTIONS  # children index/prior/visits/rewards/discounts/values
    return TreeMemory(
        bytes_per_node=nbytes(out.search_tree) / nodes,
        embedding_bytes_per_node=nbytes(out.search_tree.embeddings) / nodes,
        full_action_bytes_per_node=per_action,
        pgx_state_bytes=nbytes(pgx_state),
    )
