"""The one encoding: hand-checked FEN cases, numpy batch vs one-by-one, and numpy == JAX (pgx) on
every position of the real games in ``../shared/data``, with every legal move round-tripped."""

from __future__ import annotations

import random
from typing import Any

import chess
import chess.pgn
import numpy as np
import pytest

from data_pipeline.encoding import (
    ACTION_FROM,
    ACTION_PROMO,
    ACTION_TO,
    NUM_ACTIONS,
    OBS_LEN,
    action_to_move,
    board_raw,
    encode_board,
    encode_boards,
    encode_raw,
    legal_action_mask,
    move_to_action,
)


def _castling_by_hand(board: chess.Board) -> int:
    """tokens[64] from python-chess's own predicates, mover first."""
    me, opp = board.turn, not board.turn
    return (
        board.has_kingside_castling_rights(me)
        | board.has_queenside_castling_rights(me) << 1
        | board.has_kingside_castling_rights(opp) << 2
        | board.has_queenside_castling_rights(opp) << 3
    )


# ---------------------------------------------------------------------------------------------
# FEN cases, values worked out by hand. squares: {python-chess square in the MOVER's frame: token}.

FEN_CASES: list[dict[str, Any]] = [
    dict(  # start position: white pieces 1..6, black 7..12, all rights
        fen=chess.STARTING_FEN,
        squares={0: 4, 1: 2, 2: 3, 3: 5, 4: 6, 12: 1, 52: 7, 56: 10, 59: 11, 60: 12, 28: 0},
        castling=15,
        ep=0,
        halfmove=0,
    ),
    dict(  # black to move after 1.e4: flipped; e3 is set but no black pawn can take
        fen="rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1",
        squares={4: 6, 3: 5, 12: 1, 60: 12, 59: 11, 36: 7, 52: 0, 44: 0, 28: 0},
        castling=15,
        ep=0,
        halfmove=0,
    ),
    dict(  # legal en passant e5xf6
        fen="rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3",
        squares={36: 1, 35: 7, 37: 7, 45: 0},
        castling=15,
        ep=6,
        halfmove=0,
    ),
    dict(  # legal en passant for black: d4xc3 (frame flipped: d4 -> d5, c4 -> c5)
        fen="rnbqkbnr/ppp1pppp/8/8/2Pp4/8/PP1PPPPP/RNBQKBNR b KQkq c3 0 3",
        squares={35: 1, 34: 7, 42: 0},
        castling=15,
        ep=3,
        halfmove=0,
    ),
    dict(  # en passant on the a-file, black b4xa3
        fen="4k3/8/8/8/Pp6/8/8/4K3 b - a3 0 1",
        squares={33: 1, 32: 7, 4: 6, 60: 12},
        castling=0,
        ep=1,
        halfmove=0,
    ),
    dict(  # en passant on the h-file, g5xh6
        fen="4k3/8/8/6Pp/8/8/8/4K3 w - h6 0 1",
        squares={38: 1, 39: 7},
        castling=0,
        ep=8,
        halfmove=0,
    ),
    dict(  # a6 set, the only white pawns are on h4 and b4: no capture (no wrap-around h -> a)
        fen="4k3/8/8/p7/1P5P/8/8/4K3 w - a6 0 1",
        squares={32: 7, 31: 1, 25: 1},
        castling=0,
        ep=0,
        halfmove=0,
    ),
    dict(  # pinned on the file: exd6 would open e8-e1
        fen="4r2k/8/8/3pP3/8/8/8/4K3 w - d6 0 1",
        squares={60: 10, 63: 12, 36: 1, 35: 7, 4: 6},
        castling=0,
        ep=0,
        halfmove=0,
    ),
    dict(  # pinned along the rank: exd6 removes both pawns between Ka5 and Rh5
        fen="8/8/8/K2pP2r/8/8/8/7k w - d6 0 1",
        squares={32: 6, 35: 7, 36: 1, 39: 10, 7: 12},
        castling=0,
        ep=0,
        halfmove=0,
    ),
    dict(  # partial rights, white to move: white K-side (bit0) and black Q-side (bit3)
        fen="r3k2r/8/8/8/8/8/8/R3K2R w Kq - 5 20",
        squares={0: 4, 7: 4, 4: 6, 56: 10, 63: 10, 60: 12},
        castling=0b1001,
        ep=0,
        halfmove=5,
    ),
    dict(  # the same, black to move: black Q-side is bit1, white K-side is bit2
        fen="r3k2r/8/8/8/8/8/8/R3K2R b Kq - 5 20",
        squares={0: 4, 7: 4, 4: 6, 56: 10, 63: 10, 60: 12},
        castling=0b0110,
        ep=0,
        halfmove=5,
    ),
    dict(  # rights without the rook are cleaned away: only white K-side and black Q-side remain
        fen="r3k3/8/8/8/8/8/8/4K2R w KQkq - 0 1",
        squares={7: 4, 4: 6, 56: 10, 60: 12},
        castling=0b1001,
        ep=0,
        halfmove=0,
    ),
    dict(  # white under-promotions: b7-b8 and b7xa8
        fen="r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1",
        squares={49: 1, 56: 10, 60: 12, 4: 6},
        castling=0,
        ep=0,
        halfmove=0,
    ),
    dict(  # black under-promotions: g2-g1 and g2xh1 (g2 is g7 in the mover's frame)
        fen="4k3/8/8/8/8/8/6p1/4K2R b - - 0 1",
        squares={54: 1, 63: 10, 60: 12, 4: 6},
        castling=0,
        ep=0,
        halfmove=0,
    ),
    dict(  # halfmove clock clipped at 100
        fen="4k3/8/8/8/8/8/8/4K2R w K - 150 200",
        squares={4: 6, 7: 4, 60: 12},
        castling=1,
        ep=0,
        halfmove=100,
    ),
    dict(  # halfmove clock below the cap is kept
        fen="4k3/8/8/8/8/8/8/4K2R b K - 57 200",
        squares={4: 6, 60: 12, 63: 10},  # Ke8 -> e1, Ke1 -> e8, Rh1 -> h8
        castling=4,
        ep=0,
        halfmove=57,
    ),
]

# (fen, uci, action): hand-computed action = pgx_from * 73 + plane, pgx_from = file * 8 + rank
# in the mover's frame. b7 -> 14, g2 (black) -> g7 -> 54, e1 -> 32, g1 (knight) -> 48.
ACTION_CASES = [
    ("r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1", "b7b8q", 14 * 73 + 16),  # queen: "up 1" plane
    ("r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1", "b7a8q", 14 * 73 + 57),  # queen: "up-a 1" plane
    ("r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1", "b7b8r", 14 * 73 + 0),
    ("r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1", "b7b8n", 14 * 73 + 6),
    ("r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1", "b7a8r", 14 * 73 + 2),
    ("r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1", "b7a8b", 14 * 73 + 5),
    ("4k3/8/8/8/8/8/6p1/4K2R b - - 0 1", "g2g1q", 54 * 73 + 16),
    ("4k3/8/8/8/8/8/6p1/4K2R b - - 0 1", "g2g1n", 54 * 73 + 6),
    ("4k3/8/8/8/8/8/6p1/4K2R b - - 0 1", "g2h1r", 54 * 73 + 1),  # towards h: direction 1
    ("4k3/8/8/8/8/8/6p1/4K2R b - - 0 1", "g2h1b", 54 * 73 + 4),
    ("4k3/8/8/8/8/8/6p1/4K2R b - - 0 1", "g2h1q", 54 * 73 + 44),  # queen: "up-h 1" plane
    ("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1", "e1g1", 32 * 73 + 31),  # castling: "towards h 2"
    ("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1", "e1c1", 32 * 73 + 28),  # "towards a 2"
    ("r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1", "e8g8", 32 * 73 + 31),
    ("r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1", "e8c8", 32 * 73 + 28),
    (chess.STARTING_FEN, "g1f3", 48 * 73 + 68),  # knight (+2 rank, -1 file): plane 65 + 3
    (chess.STARTING_FEN, "e2e4", 33 * 73 + 17),  # "up 2"
    ("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1", "e7e5", 33 * 73 + 17),
]


@pytest.mark.parametrize("case", FEN_CASES, ids=lambda c: c["fen"])
def test_fen_cases(case: dict[str, Any]) -> None:
    board = chess.Board(case["fen"])
    obs = encode_board(board)
    assert obs.shape == (OBS_LEN,) and obs.dtype == np.uint8
    for square, token in case["squares"].items():
        assert obs[square] == token, (chess.SQUARE_NAMES[square], obs[square], token)
    assert obs[64] == case["castling"] == _castling_by_hand(board)
    assert obs[65] == case["ep"]
    assert obs[66] == case["halfmove"]
    assert np.count_nonzero(obs[:64]) == len(board.piece_map())


@pytest.mark.parametrize(("fen", "uci", "action"), ACTION_CASES)
def test_action_cases(fen: str, uci: str, action: int) -> None:
    board = chess.Board(fen)
    move = chess.Move.from_uci(uci)
    assert board.is_legal(move)
    assert move_to_action(move, board.turn) == action
    assert action_to_move(action, board) == move
    assert legal_action_mask(board)[action]


def test_action_layout_matches_pgx() -> None:
    """Our action table is pgx's FROM_PLANE (pgx squares file * 8 + rank, mover's frame)."""
    from pgx._src.games.chess import FROM_PLANE

    def pgx_square(square: int) -> int:
        return (square & 7) * 8 + (square >> 3)

    ours = np.full((64, 73), -1)
    for action in range(NUM_ACTIONS):
        if ACTION_TO[action] >= 0:
            ours[pgx_square(ACTION_FROM[action]), action % 73] = pgx_square(ACTION_TO[action])
    np.testing.assert_array_equal(ours, np.asarray(FROM_PLANE))
    assert set(np.unique(ACTION_PROMO[ACTION_PROMO > 0]).tolist()) == {2, 3, 4}  # N, B, R


def test_bad_moves_and_actions_raise() -> None:
    with pytest.raises(ValueError):
        move_to_action(chess.Move.null(), chess.WHITE)
    with pytest.raises(ValueError):
        move_to_action(chess.Move.from_uci("a1h3"), chess.WHITE)
    with pytest.raises(ValueError):
        action_to_move(NUM_ACTIONS, chess.Board())
    with pytest.raises(ValueError):
        action_to_move(0 * 73 + 9, chess.Board())  # a1 "down 7": off the board


@pytest.mark.slow
@pytest.mark.parametrize("case", FEN_CASES, ids=lambda c: c["fen"])
def test_fen_cases_pgx(case: dict[str, Any]) -> None:
    """pgx, from the same FEN, gives the same tokens and the same legal actions."""
    import jax
    from pgx.experimental.chess import from_fen

    from data_pipeline.encoding_jax import encode_pgx_state

    board = chess.Board(case["fen"])
    state = from_fen(case["fen"])
    np.testing.assert_array_equal(np.asarray(jax.jit(encode_pgx_state)(state)), encode_board(board))
    np.testing.assert_array_equal(np.asarray(state._x.legal_action_mask), legal_action_mask(board))


# ---------------------------------------------------------------------------------------------
# encode_raw on a batch == encode_board one by one


def _random_positions(n_games: int, seed: int) -> list[chess.Board]:
    rng = random.Random(seed)
    boards = [chess.Board(c["fen"]) for c in FEN_CASES]
    for _ in range(n_games):
        board = chess.Board()
        for _ in range(rng.randrange(1, 200)):
            moves = list(board.legal_moves)
            if not moves:
                break
            # favour pawn pushes and captures so that en passant and promotions show up
            pushes = [m for m in moves if board.piece_type_at(m.from_square) == chess.PAWN]
            board.push(rng.choice(pushes if pushes and rng.random() < 0.5 else moves))
            boards.append(board.copy(stack=False))
    return boards


def test_encode_raw_batch_equals_one_by_one() -> None:
    boards = _random_positions(n_games=40, seed=0)
    rows = [board_raw(b) for b in boards]
    batch = encode_raw(
        np.array([r[0] for r in rows], np.uint64),
        np.array([r[1] for r in rows], bool),
        np.array([r[2] for r in rows], np.uint8),
        np.array([r[3] for r in rows], np.int8),
        np.array([r[4] for r in rows], np.int32),
    )
    one_by_one = np.stack([encode_board(b) for b in boards])
    assert batch.shape == (len(boards), OBS_LEN) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch, one_by_one)
    np.testing.assert_array_equal(encode_boards(boards), one_by_one)
    assert encode_boards([]).shape == (0, OBS_LEN)
    # the random games reach the interesting cases, and python-chess agrees on castling
    assert (batch[:, 65] > 0).any() and (batch[:, 64] != 15).any()
    for board, obs in zip(boards, batch, strict=True):
        assert obs[64] == _castling_by_hand(board)
        assert (obs[65] > 0) == board.has_legal_en_passant()
