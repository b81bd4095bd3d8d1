"""``encoding_jax.legal_action_mask_from_obs`` (pgx's move generator on a state rebuilt from our
tokens) equals python-chess's legal moves (``encoding.legal_action_mask``): on hand-picked FEN
cases, and on every position of the first 300 games of a real Lichess dump."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from functools import cache

import chess
import chess.pgn
import jax
import numpy as np
import pytest
import zstandard

from data_pipeline.encoding import encode_boards, legal_action_mask
from data_pipeline.encoding_jax import legal_action_mask_from_obs
from tests.conftest import data_file

GAMES_FILE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"
N_GAMES = 300
CHUNK = 1024  # positions per jitted call: one fixed shape, one compilation

FENS = [
    chess.STARTING_FEN,
    "r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1",  # both castles, both sides
    "r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1",
    "r3k2r/8/8/8/8/8/8/R3K2R w Kq - 5 20",  # partial rights
    "r3k2r/8/8/8/8/5r2/8/R3K2R w KQkq - 0 1",  # f1 attacked: no O-O; O-O-O fine
    "r3k2r/8/8/8/8/3r4/8/R3K2R w KQkq - 0 1",  # d1 attacked: no O-O-O
    "r3k2r/8/8/8/8/1r6/8/R3K2R w KQkq - 0 1",  # b1 attacked: O-O-O still legal
    "r3k2r/8/8/8/4r3/8/8/R3K2R w KQkq - 0 1",  # in check: no castling
    "r3k2r/8/8/8/8/8/8/RN2K1NR w KQkq - 0 1",  # pieces in the way
    "r3k2r/8/8/8/8/8/6r1/R3K2R b KQkq - 0 1",  # black to move, g2 rook: mirrored frame
    "rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3",  # legal e.p. e5xf6
    "rnbqkbnr/ppp1pppp/8/8/2Pp4/8/PP1PPPPP/RNBQKBNR b KQkq c3 0 3",  # black e.p. d4xc3
    "4k3/8/8/8/Pp6/8/8/4K3 b - a3 0 1",  # e.p. on the a-file
    "4k3/8/8/6Pp/8/8/8/4K3 w - h6 0 1",  # e.p. on the h-file
    "4r2k/8/8/3pP3/8/8/8/4K3 w - d6 0 1",  # e.p. pinned on the file
    "8/8/8/K2pP2r/8/8/8/7k w - d6 0 1",  # e.p. pinned along the rank (both pawns vanish)
    "8/8/8/3pP3/8/8/8/K6k w - d6 0 1",  # e.p. evades nothing but is legal
    "8/8/8/5k2/3pP3/8/8/K7 b - e3 0 1",  # in check by e4: e.p. captures the checking pawn
    "r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1",  # white promotions and under-promotions, with capture
    "4k3/8/8/8/8/8/6p1/4K2R b - - 0 1",  # black promotions onto h1 and g1
    "1r2k3/P7/8/8/8/8/8/4K3 w - - 0 1",  # a-file promotion, capture towards h only
    "4k3/8/8/8/8/8/8/4K2R w K - 150 200",  # halfmove clock above the cap
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",  # stalemate: no legal move
    "6rk/5Npp/8/8/8/8/8/6K1 b - - 0 1",  # smothered mate: no legal move
]


@cache
def _masks_fn() -> Callable[[np.ndarray], np.ndarray]:
    fn = jax.jit(jax.vmap(legal_action_mask_from_obs))
    return lambda obs: np.asarray(fn(obs))


def _check(boards: list[chess.Board]) -> int:
    """Asserts JAX == python-chess on ``boards`` (in padded chunks); returns the positions."""
    masks_fn = _masks_fn()
    obs = encode_boards(boards)
    for lo in range(0, len(boards), CHUNK):
        chunk = obs[lo : lo + CHUNK]
        padded = np.concatenate([chunk, np.repeat(chunk[:1], CHUNK - len(chunk), axis=0)])
        got = masks_fn(padded)[: len(chunk)]
        for i, mask in enumerate(got):
            board = boards[lo + i]
            want = legal_action_mask(board)
            if not np.array_equal(mask, want):
                extra, missing = np.flatnonzero(mask & ~want), np.flatnonzero(want & ~mask)
                pytest.fail(f"{board.fen()}: pgx adds {extra.tolist()}, misses {missing.tolist()}")
    return len(boards)


def test_fen_cases() -> None:
    assert _check([chess.Board(fen) for fen in FENS]) == len(FENS)  # fails naming the FEN


def test_fen_cases_have_the_moves_they_claim() -> None:
    """The special cases really are special (guards the FEN list above)."""

    def legal(fen: str, uci: str) -> bool:
        return chess.Move.from_uci(uci) in chess.Board(fen).legal_moves

    assert not legal(FENS[4], "e1g1") and legal(FENS[4], "e1c1")
    assert not legal(FENS[5], "e1c1") and legal(FENS[6], "e1c1")
    assert legal(FENS[10], "e5f6") and not legal(FENS[14], "e5d6") and not legal(FENS[15], "e5d6")
    assert legal(FENS[17], "d4e3") and legal(FENS[18], "b7a8n")
    assert not any(chess.Board(f).legal_moves for f in FENS[-2:])


def _games(n: int) -> Iterator[list[chess.Board]]:
    """The positions of the first ``n`` games, one list per game (final position included)."""
    with data_file(GAMES_FILE).open("rb") as raw:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
        for _ in range(n):
            game = chess.pgn.read_game(text)
            if game is None:
                return
            board = game.board()
            boards = [board.copy(stack=False)]
            for move in game.mainline_moves():
                board.push(move)
                boards.append(board.copy(stack=False))
            yield boards


@pytest.mark.slow
def test_real_games() -> None:
    start = time.perf_counter()
    boards = [b for game in _games(N_GAMES) for b in game]
    checked = _check(boards)
    elapsed = time.perf_counter() - start
    print(f"{checked} positions of {N_GAMES} games agree ({elapsed:.1f} s)")
    assert checked > 10_000
    # the games reach the interesting cases
    obs = encode_boards(boards)
    assert (obs[:, 65] > 0).any() and (obs[:, 64] != 15).any() and (obs[:, 64] == 0).any()
