"""A network agent's move choice as functions: on pgx states inside jit, and on host arrays.

``sims = 0`` is the raw policy: the legal-masked logits, argmax or sampled at a temperature.
``sims > 0`` runs the search of ``mcts.search``: from pgx states on the device, or from
python-chess boards rebuilt as ``mcts.env.ChessState`` (games against engines).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import chess
import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import pgx_rules
from data_pipeline.encoding_jax import encode_pgx_state
from scaling.config import ModelConfig
from scaling.model import PolicyValueNet

# (params, pgx states [B], key) -> actions int32[B]
DevicePolicy = Callable[[Any, Any, jax.Array], jax.Array]


def select_action(logits: jax.Array, key: jax.Array, temperature: float) -> jax.Array:
    """logits f32[B, A] (illegal ones already very negative) -> int32[B]."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


def elo_input(model: ModelConfig, elo: int | None, batch: int) -> jax.Array | None:
    """The Elo-conditioning input of a batch: the configured rating, or -1 (unknown)."""
    if not model.elo_buckets:
        return None
    return jnp.full((batch,), -1 if elo is None else elo, jnp.int32)


@dataclasses.dataclass(frozen=True)
class NetworkPolicy:
    """A network agent's policy, bound to its parameters."""

    model: ModelConfig
    params: Any
    device: DevicePolicy  # jit-compatible; params passed explicitly
    sims: int  # search simulations per move (0: the raw policy)
    _raw: Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]  # jitted
    _search: Callable[[Any, Any, jax.Array], jax.Array]  # jitted, on ChessState [B]

    def host(self, boards: Sequence[chess.Board], seed: int) -> np.ndarray:
        """The agent's actions (int32[B]) on python-chess boards, e.g. against an engine.

        The raw policy reads the encoded boards and their legal masks; search runs from the
        boards' positions rebuilt on the device with the history the rules need (the plies
        since the last capture or pawn move), padded to a power-of-two batch of at least 4, so
        that the search compiles once per size (and not for 1 and 2 boards)."""
        from data_pipeline.encoding import encode_boards, legal_action_mask

        key = jax.random.key(seed)
        if not self.sims:
            obs = encode_boards(boards)  # uint8[B, 67]
            legal = np.stack([legal_action_mask(b) for b in boards])  # bool[B, 4672]
            return np.asarray(self._raw(self.params, jnp.asarray(obs), jnp.asarray(legal), key))
        from mcts.env import from_boards

        n = len(boards)
        states = from_boards(boards, recent=True, pad_to=max(4, 1 << (n - 1).bit_length()))
        return np.asarray(self._search(self.params, states, key))[:n]


def network_policy(model: ModelConfig, params: Any, spec: Any) -> NetworkPolicy:
    """The policy of a ``NetworkAgent`` spec (sims, temperature, elo) for ``model``. The jitted
    functions are shared by every policy of the same (model, sims, temperature, elo) in this
    process, so a new batch of games, or another checkpoint of the same model, does not compile
    them again."""
    device, raw, search = _functions(model, spec.sims, spec.temperature, spec.elo)
    return NetworkPolicy(model, params, device, spec.sims, raw, search)


@functools.lru_cache(maxsize=64)
def _functions(
    model: ModelConfig, sims: int, temperature: float, elo: int | None
) -> tuple[DevicePolicy, Any, Any]:
    """(device policy, jitted raw policy on host arrays, jitted device policy)."""
    net = PolicyValueNet(model)

    def raw(params: Any, obs: jax.Array, legal: jax.Array, key: jax.Array) -> jax.Array:
        policy, _ = net.apply({"params": params}, obs, elo_input(model, elo, obs.shape[0]), legal)
        return select_action(policy, key, temperature)

    def device(params: Any, states: Any, key: jax.Array) -> jax.Array:
        if sims == 0:
            obs = jax.vmap(encode_pgx_state)(states)  # uint8[B, 67]
            return raw(params, obs, pgx_rules.env_legal_mask(states), key)
        from mcts.search import SearchConfig, search_policy

        # temperature 0: a deterministic search (no Gumbel noise), the most visited move
        cfg = SearchConfig(
            num_simulations=sims,
            temperature=temperature,
            gumbel_scale=1.0 if temperature else 0.0,
        )
        action, _ = search_policy(net, params, states, key, cfg, elo=elo)
        return action

    return device, jax.jit(raw), jax.jit(device)
