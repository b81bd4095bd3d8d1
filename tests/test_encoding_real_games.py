"""The one encoding on real games: the numpy and JAX (pgx) implementations agree on every
position of the 2021-10 and 2026-06 files, and every legal move round-trips through its action."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import chess
import chess.pgn
import numpy as np
import pytest

from data_pipeline.encoding import (
    action_to_move,
    encode_board,
    legal_action_mask,
    move_to_action,
)
from tests.conftest import data_file

DATA_FILES = (
    "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst",
    "lichess/lichess_db_standard_rated_2026-06.analysed500.pgn",
)


def _read_games(path: Path) -> list[list[chess.Move]]:
    def games(stream: TextIO) -> Iterator[list[chess.Move]]:
        while (game := chess.pgn.read_game(stream)) is not None:
            assert not game.errors, (path, game.headers, game.errors)
            assert game.board().fen() == chess.STARTING_FEN, (path, game.headers)
            yield list(game.mainline_moves())

    if path.suffix == ".zst":
        import zstandard

        with path.open("rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            return list(games(io.TextIOWrapper(reader, encoding="utf-8")))
    with path.open(encoding="utf-8") as text:
        return list(games(text))


def _make_replay(batch: int) -> tuple[Any, Callable[..., Any]]:
    """(initial states of `batch` games, jit(vmap(advance))): advance encodes a state, then steps
    it with pgx's ``env.step``; games with ``play`` False (finished, padding) keep their state."""
    import jax
    import jax.numpy as jnp
    import pgx

    from data_pipeline.encoding_jax import encode_pgx_state

    env = pgx.make("chess")

    def advance(state: Any, action: jax.Array, play: jax.Array) -> tuple[Any, ...]:
        mask = state._x.legal_action_mask  # bool[NUM_ACTIONS]
        # pgx's public mask is all True once pgx calls the game over; otherwise it is _x's.
        public_ok = state.terminated | (state.legal_action_mask == mask).all()
        # Lichess games can go on where pgx stops (threefold repetition, 512 plies): keep
        # stepping (a terminated pgx state no longer moves).
        live = state.replace(terminated=jnp.bool_(False), legal_action_mask=mask)
        stepped = env.step(live, action)
        nxt = jax.tree.map(lambda new, old: jnp.where(play, new, old), stepped, state)
        return nxt, encode_pgx_state(state), jnp.packbits(mask), public_ok, state.terminated

    keys = jax.random.split(jax.random.key(0), batch)
    return jax.jit(jax.vmap(env.init))(keys), jax.jit(jax.vmap(advance))


@pytest.mark.slow
def test_numpy_equals_jax_on_real_games() -> None:
    start = time.perf_counter()
    games = [g for name in DATA_FILES for g in _read_games(data_file(name))]
    games.sort(key=len, reverse=True)  # chunks of similar length: little padding
    batch = 128
    initial, advance = _make_replay(batch)
    positions = moves_checked = pgx_early_end = 0
    mismatches: list[str] = []
    for lo in range(0, len(games), batch):
        chunk = games[lo : lo + batch]
        lengths = np.array([len(g) for g in chunk] + [0] * (batch - len(chunk)))
        n_ply = int(lengths.max())
        actions = np.zeros((n_ply + 1, batch), np.int32)  # [ply, game], 0 = padding
        for i, game in enumerate(chunk):
            actions[: len(game), i] = [move_to_action(m, p % 2 == 0) for p, m in enumerate(game)]
        boards = [chess.Board() for _ in chunk]
        state = initial
        for ply in range(n_ply + 1):
            # dispatched asynchronously: pgx steps while python-chess works below
            state, obs, packed, public_ok, terminated = advance(state, actions[ply], lengths > ply)
            expected: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for i, board in enumerate(boards):
                if ply > len(chunk[i]):
                    continue
                turn = board.turn
                for move in board.legal_moves:
                    moves_checked += 1
                    if action_to_move(move_to_action(move, turn), board) != move:
                        mismatches.append(f"round trip {move} in {board.fen()}")
                expected[i] = encode_board(board), np.packbits(legal_action_mask(board))
                if ply < len(chunk[i]):
                    board.push(chunk[i][ply])
            obs, packed = np.asarray(obs), np.asarray(packed)
            public_ok, terminated = np.asarray(public_ok), np.asarray(terminated)
            for i, (want_obs, want_mask) in expected.items():
                positions += 1
                pgx_early_end += bool(terminated[i]) and ply < len(chunk[i])
                if not (np.array_equal(obs[i], want_obs) and np.array_equal(packed[i], want_mask)):
                    fen = chess.Board()
                    for move in chunk[i][:ply]:
                        fen.push(move)
                    mismatches.append(f"ply {ply} of {fen.fen()}:\n{obs[i]}\n{want_obs}")
                if not public_ok[i]:
                    mismatches.append(f"ply {ply} of game {lo + i}: public mask differs from _x's")
    elapsed = time.perf_counter() - start
    print(
        f"\nnumpy == JAX: {len(games)} games, {positions} positions, {moves_checked} legal moves "
        f"round-tripped, {len(mismatches)} mismatches, {pgx_early_end} positions after pgx's "
        f"own game end, {elapsed:.1f}s"
    )
    assert not mismatches, "\n".join(mismatches[:5])
    assert positions == sum(len(g) + 1 for g in games)
    assert positions > 90_000
