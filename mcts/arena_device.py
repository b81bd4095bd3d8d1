"""Games between on-device agents (networks, with or without search, and the random mover),
played as one batch of pgx states inside a jitted while loop.

Every game of a batch is between the same two agents A and B. The batch is laid out in two
halves: A has white in the first half's games and black in the second's. Every game starts from
the initial position and plays one ply per step of the loop (an ended game stands still), so at
step t every game has the same side to move; A answers the half where it moves and B the other
half: one agent evaluation per game and ply, not one per agent. The opening's moves are forced
first (no agent is asked while every game is still in its opening). The loop records actions
int32[B, T] (-1 after the end); the host replays them on python-chess boards, which referee the
games (``mcts.games.finish``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import chess
import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import pgx_rules
from data_pipeline.encoding import action_to_move, move_to_action
from mcts.agents import AgentSpec, NetworkAgent, _network_of
from mcts.openings import Opening
from mcts.policy import DevicePolicy, network_policy, select_action

PGX_MAX_PLIES = pgx_rules.MAX_PLIES  # pgx chess ends every game at 512 plies


def _random_policy(params: Any, states: Any, key: jax.Array) -> jax.Array:
    del params
    logits = jnp.where(pgx_rules.env_legal_mask(states), 0.0, -1e9)  # f32[B, 4672]
    return select_action(logits, key, 1.0)


# Everything about a device policy but its parameters: checkpoints of one model configuration
# (and search settings) share one policy function and one compiled game loop.
PolicyKey = tuple[Any, ...]
_POLICIES: dict[PolicyKey, DevicePolicy] = {("random",): _random_policy}


def device_policy(spec: AgentSpec) -> tuple[PolicyKey, Any]:
    """(policy key, params) of an on-device agent."""
    if isinstance(spec, NetworkAgent):
        model, params, _, _ = _network_of(spec)
        key = (model, spec.sims, spec.temperature, spec.elo)
        if key not in _POLICIES:
            _POLICIES[key] = network_policy(model, params, spec).device
        return key, params
    if spec.kind == "random":
        return ("random",), None
    raise ValueError(f"agent {spec.name} cannot play on the device")


@functools.lru_cache(maxsize=32)
def _game_loop(key_a: PolicyKey, key_b: PolicyKey, plies: int) -> Callable[..., jax.Array]:
    policy_a, policy_b = _POLICIES[key_a], _POLICIES[key_b]

    def run(
        params_a: Any,
        params_b: Any,
        opening: jax.Array,  # int32[2H, K] forced actions, -1 padded; A white in rows :H
        opening_len: jax.Array,  # int32[2H]
        key: jax.Array,
    ) -> jax.Array:  # int32[2H, plies]
        batch = opening.shape[0]
        half = batch // 2
        states = jax.vmap(pgx_rules.init)(jax.random.split(jax.random.key(0), batch))
        out = jnp.full((batch, plies), -1, jnp.int32)
        in_opening = jnp.min(opening_len)

        def cond(carry: tuple[Any, jax.Array, jax.Array, jax.Array]) -> jax.Array:
            states, ply, _, _ = carry
            return (ply < plies) & ~jnp.all(pgx_rules.terminated(states))

        def choose(states: Any, ply: jax.Array, key: jax.Array) -> jax.Array:
            first = jax.tree.map(lambda x: x[:half], states)
            second = jax.tree.map(lambda x: x[half:], states)
            white = ply % 2 == 0  # the side to move in every game of the batch

            def pick(x: Any, y: Any) -> Any:
                return jax.tree.map(lambda u, v: jnp.where(white, u, v), x, y)

            # A moves in the first half when white is to move, in the second otherwise: each
            # agent's search is compiled once and runs on the half where its side moves
            a_half, b_half = pick(first, second), pick(second, first)
            k1, k2 = jax.random.split(key)
            act_a, act_b = policy_a(params_a, a_half, k1), policy_b(params_b, b_half, k2)
            return jnp.concatenate([pick(act_a, act_b), pick(act_b, act_a)])

        def body(
            carry: tuple[Any, jax.Array, jax.Array, jax.Array],
        ) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
            states, ply, key, out = carry
            key, sub = jax.random.split(key)
            action = jax.lax.cond(
                ply < in_opening,
                lambda: jnp.zeros((batch,), jnp.int32),
                lambda: choose(states, ply, sub),
            )
            forced = opening[:, jnp.minimum(ply, opening.shape[1] - 1)]
            action = jnp.where(ply < opening_len, forced, action)
            over = pgx_rules.terminated(states)  # bool[B]
            action = jnp.where(over, 0, action)
            out = out.at[:, ply].set(jnp.where(over, -1, action))
            states = jax.vmap(pgx_rules.step)(states, action)
            return states, ply + 1, key, out

        _, _, _, out = jax.lax.while_loop(cond, body, (states, jnp.int32(0), key, out))
        return out

    return jax.jit(run)


def opening_actions(openings: Sequence[Opening]) -> tuple[np.ndarray, np.ndarray]:
    """Openings as forced actions int32[B, K] (-1 padded) and their lengths int32[B]."""
    width = max(1, *(len(o.moves) for o in openings))
    actions = np.full((len(openings), width), -1, np.int32)
    for i, opening in enumerate(openings):
        board = chess.Board()
        for j, uci in enumerate(opening.moves):
            move = chess.Move.from_uci(uci)
            actions[i, j] = move_to_action(move, board.turn)
            board.push(move)
    return actions, np.array([len(o.moves) for o in openings], np.int32)


def play_device_batch(
    a: AgentSpec,
    b: AgentSpec,
    openings: Sequence[Opening],
    a_white: Sequence[bool],
    *,
    plies: int,
    seed: int,
    batch: int | None = None,
) -> list[list[chess.Move]]:
    """Plays len(openings) games between a and b on the device; the moves of each game, in the
    order given. With ``batch``, each colour's half is padded to at least half of it (one
    compiled loop for every batch whose colours are balanced, as a pairing's are)."""
    if plies > PGX_MAX_PLIES:
        raise ValueError(f"device games are capped at {PGX_MAX_PLIES} plies by pgx, not {plies}")
    if len(openings) != len(a_white) or not openings:
        raise ValueError("play_device_batch needs one colour per opening, and some games")
    white = [i for i, w in enumerate(a_white) if w]  # games where a has white
    black = [i for i, w in enumerate(a_white) if not w]
    half = max(len(white), len(black), -(-(batch or 0) // 2))
    rows = [*white, *[white[0] if white else 0] * (half - len(white))]
    rows += [*black, *[black[0] if black else 0] * (half - len(black))]
    key_a, params_a = device_policy(a)
    key_b, params_b = device_policy(b)
    run = _game_loop(key_a, key_b, plies)
    forced, lengths = opening_actions([openings[i] for i in rows])
    actions = np.asarray(
        run(params_a, params_b, jnp.asarray(forced), jnp.asarray(lengths), jax.random.key(seed))
    )
    where = {i: r for r, i in enumerate(white)} | {i: half + r for r, i in enumerate(black)}
    games = []
    for i in range(len(openings)):
        row = actions[where[i]]
        board, moves = chess.Board(), []
        for action in row[row >= 0]:
            move = action_to_move(int(action), board)
            board.push(move)
            moves.append(move)
        games.append(moves)
    return games
