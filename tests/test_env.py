"""``mcts.env``: the compact chess state follows pgx's rules exactly, and its encoding, legal moves
and game endings agree with python-chess along random games."""

from __future__ import annotations

import functools
import importlib
from typing import Any

import chess
import jax
import jax.numpy as jnp
import numpy as np
import pgx
import pgx.experimental.chess as pgx_chess
import pytest

from data_pipeline.encoding import NUM_ACTIONS, action_to_move, encode_board, move_to_action
from mcts import env
from mcts.env import REASONS, ChessState
from tests.conftest import material_balance, rules_ending

B, T = 8, env.MAX_PLIES  # random games, played to pgx's 512-ply limit at most
FIELDS = [f for f in ChessState.__dataclass_fields__]


@functools.cache
def _random_games() -> tuple[Any, ...]:
    """B random games stepped side by side in pgx and in mcts.env: per ply (T rows), our state
    after the move, our state rebuilt from pgx's, our reward and pgx's."""
    pgx_env = pgx.make("chess")

    def run(key: jax.Array) -> tuple[Any, ...]:
        pgx_state = jax.vmap(pgx_env.init)(jax.random.split(key, B))
        ours = jax.vmap(env.from_pgx)(pgx_state)

        def ply(carry: tuple[Any, Any], k: jax.Array) -> tuple[tuple[Any, Any], tuple[Any, ...]]:
            p, s = carry
            a = jax.vmap(env.sample_legal)(jax.random.split(k, B), s)  # NUM_ACTIONS once over
            p2 = jax.vmap(pgx_env.step)(p, jnp.where(s.terminated, 0, a))
            s2, reward = jax.vmap(env.step)(s, a)
            pgx_reward = p2.rewards[jnp.arange(B), p.current_player]
            return (p2, s2), (a, s2, jax.vmap(env.from_pgx)(p2), reward, pgx_reward, p2.terminated)

        first = ours
        _, rows = jax.lax.scan(ply, (pgx_state, ours), jax.random.split(key, T))
        return (first, *rows)

    return jax.tree.map(np.asarray, jax.jit(run)(jax.random.key(7)))


@pytest.mark.slow
def test_state_follows_pgx_along_random_games() -> None:
    first, _, ours, rebuilt, reward, pgx_reward, pgx_terminated = _random_games()
    # the move at ply t was made while the game was running (pgx freezes finished games too)
    live = np.concatenate([~first.terminated[None], ~ours.terminated[:-1]])  # bool[T, B]
    assert live.sum() > 1000
    for name in FIELDS:
        a, b = getattr(ours, name), getattr(rebuilt, name)
        live_rows = live.reshape(live.shape + (1,) * (a.ndim - 2))
        assert not ((a != b) & live_rows).any(), f"field {name} differs from pgx's"
    np.testing.assert_array_equal(ours.terminated[live], pgx_terminated[live])
    np.testing.assert_array_equal(reward[live], pgx_reward[live])
    assert (reward[~live] == 0).all()


@pytest.mark.slow
def test_encoding_moves_and_endings_agree_with_python_chess() -> None:
    first, actions, ours, *_ = _random_games()
    obs_fn = jax.jit(jax.vmap(jax.vmap(env.observe)))
    obs = np.asarray(obs_fn(jax.tree.map(jnp.asarray, ours)))  # uint8[T, B, 67]
    reasons_seen = set()
    for b in range(B):
        board = chess.Board()
        assert not first.terminated[b]
        for t in range(T):
            move = action_to_move(int(actions[t, b]), board)
            assert move in board.legal_moves, (b, t, move)
            board.push(move)
            np.testing.assert_array_equal(obs[t, b], encode_board(board), err_msg=f"{b} {t}")
            legal = sorted(move_to_action(m, board.turn) for m in board.legal_moves)
            moves = ours.moves[t, b]
            assert moves[: len(legal)].tolist() == legal
            assert (moves[len(legal) :] == NUM_ACTIONS).all()
            expected = rules_ending(board, t + 1, env.MAX_PLIES)
            assert REASONS[ours.reason[t, b]] == expected, (b, t, board.fen())
            if expected != "running":
                assert ours.terminated[t, b]
                winner = board.outcome(claim_draw=True)
                mover_result = -1 if expected == "checkmate" else 0
                assert ours.result[t, b] == mover_result, winner
                reasons_seen.add(expected)
                break
        else:
            pytest.fail(f"game {b} ran past {T} plies")
    assert len(reasons_seen) >= 2, reasons_seen  # the sample ends in more than one way


@pytest.mark.slow
def test_from_boards_rebuilds_the_history() -> None:
    """A python-chess board with its move stack becomes exactly the state the game reached."""
    _, actions, ours, *_ = _random_games()
    boards, expected = [], []
    for b, t in [(0, 40), (1, 7), (2, 0)]:
        board = chess.Board()
        for ply in range(t + 1):
            board.push(action_to_move(int(actions[ply, b]), board))
        boards.append(board)
        expected.append(jax.tree.map(lambda x, b=b, t=t: x[t, b], ours))
    got = jax.tree.map(np.asarray, env.from_boards(boards))
    for i, want in enumerate(expected):
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(got, name)[i], getattr(want, name), err_msg=name)


@pytest.mark.slow
def test_fen_positions_agree_with_pgx_from_fen() -> None:
    """pgx's own FEN reader (pgx.experimental.chess.from_fen) and the encoded board give the same
    position, legal moves and encoding (a double push without a capturer: pgx keeps its square,
    the encoding does not, and the rules agree)."""
    fens = [
        "rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR w KQkq e6 0 2",  # e6: no capturer
        "r3k2r/8/8/8/8/8/6r1/R3K2R b Kq - 3 30",  # black to move, partial castling rights
    ]
    boards = [chess.Board(fen) for fen in fens]
    pgx_states = jax.tree.map(lambda *x: jnp.stack(x), *[pgx_chess.from_fen(f) for f in fens])
    obs = np.stack([encode_board(b) for b in boards])
    colors = np.array([0 if b.turn else 1 for b in boards], np.int32)

    @jax.jit
    def both(p: Any, o: jax.Array, c: jax.Array) -> tuple[ChessState, ChessState, jax.Array]:
        theirs = jax.vmap(env.from_pgx)(p)
        return jax.vmap(env.from_obs)(o, c), theirs, jax.vmap(env.observe)(theirs)

    ours, theirs, theirs_obs = both(pgx_states, obs, colors)
    np.testing.assert_array_equal(ours.board, theirs.board)
    np.testing.assert_array_equal(ours.castling, theirs.castling)
    np.testing.assert_array_equal(ours.moves, theirs.moves)
    np.testing.assert_array_equal(theirs_obs, obs)
    for i, board in enumerate(boards):
        legal = sorted(move_to_action(m, board.turn) for m in board.legal_moves)
        assert np.asarray(theirs.moves[i, : len(legal)]).tolist() == legal


@pytest.mark.slow
def test_illegal_action_forfeits_and_finished_games_stay() -> None:
    step = jax.jit(env.step)
    start = jax.jit(env.initial_state)()
    lost, reward = step(start, jnp.int32(0))  # a1 rook cannot move
    assert bool(lost.terminated) and REASONS[int(lost.reason)] == "illegal_move"
    assert int(lost.result) == -1 and float(reward) == -1.0
    same, reward = step(lost, jnp.int32(move_to_action(chess.Move.from_uci("e2e4"), True)))
    assert float(reward) == 0.0
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(same, name), getattr(lost, name))
    padding, reward = step(start, jnp.int32(NUM_ACTIONS))
    assert bool(padding.terminated) and float(reward) == -1.0


@pytest.mark.slow
def test_openings() -> None:
    lines = [["e2e4", "e7e5", "g1f3"], ["d2d4"], []]
    states = env.init_openings(lines)
    observe = jax.jit(jax.vmap(env.observe))
    for i, line in enumerate(lines):
        board = chess.Board()
        for uci in line:
            board.push_uci(uci)
        np.testing.assert_array_equal(np.asarray(observe(states))[i], encode_board(board))
        assert int(states.color[i]) == (0 if board.turn else 1)
        assert int(states.ply[i]) == len(line)
    with pytest.raises(ValueError, match=r"opening 1: move 2 \(e2e4\) is illegal"):
        env.opening_actions([["e2e4"], ["e2e4", "e2e4"]])


def test_material_is_the_movers_balance() -> None:
    fens = [
        chess.STARTING_FEN,
        "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3",  # white to move, equal
        "4k3/8/8/8/8/8/8/QQ2K3 b - - 0 1",  # black to move, 18 pawns down
        "4k3/2r5/8/8/8/8/8/4K1N1 w - - 0 1",  # white to move, 2 down
        "r3k3/1pp5/8/8/8/8/3PP3/4KB1N w - - 0 1",  # white to move, 8 - 7 = +1
    ]
    boards = [chess.Board(fen) for fen in fens]
    states = env.from_boards(boards)
    got = jax.vmap(env.material)(states)
    expected = [material_balance(b) for b in boards]
    assert [int(x) for x in got] == expected
    assert expected[2:] == [-18, -2, 1]  # the cases are what they claim


@pytest.mark.slow
def test_from_boards_recent_matches_the_whole_history() -> None:
    """``recent=True`` (the root just before the last capture or pawn move) gives the state a
    replay of the whole game gives: after a double push, with repetitions, from a FEN with a
    running halfmove clock; padding rows repeat the last board."""
    double_push = chess.Board()
    for uci in ["g1f3", "g8f6", "f3g1", "f6g8", "e2e4"]:
        double_push.push_uci(uci)
    repeated = chess.Board()
    for uci in ["e2e4", "e7e5"] + ["g1f3", "b8c6", "f3g1", "c6b8"] * 2:
        repeated.push_uci(uci)
    from_fen = chess.Board("4k3/8/8/3r4/8/8/8/R3K2R w KQ - 37 60")
    for uci in ["e1f1", "e8e7", "f1e1", "e7e8", "a1a2"]:
        from_fen.push_uci(uci)
    boards = [double_push, repeated, from_fen, chess.Board()]
    full = env.from_boards(boards)
    recent = env.from_boards(boards, recent=True, pad_to=8)
    assert recent.board.shape == (8, 64)
    for name in ("board", "color", "castling", "en_passant", "halfmove", "moves", "terminated"):
        got, want = np.asarray(getattr(recent, name)), np.asarray(getattr(full, name))
        np.testing.assert_array_equal(got[:4], want, err_msg=name)
        np.testing.assert_array_equal(got[4:], np.broadcast_to(want[3], got[4:].shape))
    for i, board in enumerate(boards):
        # the positions since the last irreversible move (the one before it cannot recur)
        k = min(board.halfmove_clock, len(board.move_stack)) + 1
        np.testing.assert_array_equal(recent.hashes[i, :k], full.hashes[i, :k])
    assert int(full.en_passant[0]) >= 0  # pgx keeps the square after e2e4
    # python-chess sees the position after 1. e4 e5 three times; pgx's hash of the first one
    # includes the en-passant square e6 (no capture possible), so pgx counts it twice
    assert repeated.is_repetition(3)
    assert (np.asarray(full.hashes[1]) == np.asarray(full.hashes[1, 0])).all(axis=1).sum() == 2


def test_mcts_public_surface_lists_each_lazy_name_once_and_resolves() -> None:
    """``mcts/__init__.py`` names each public symbol in three places (type-checking imports,
    ``_SOURCES`` for lazy loading, ``__all__``): they must agree, and each name must load."""
    import mcts

    assert len(set(mcts.__all__)) == len(mcts.__all__)
    assert set(mcts.__all__) == set(mcts._MODULE_OF)
    for name in mcts.__all__:
        assert getattr(mcts, name) is getattr(importlib.import_module(mcts._MODULE_OF[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mcts.nope  # type: ignore[attr-defined]
