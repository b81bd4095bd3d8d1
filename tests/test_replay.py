"""The fast SAN replay equals python-chess on every ply of the real games and on hard cases."""

from __future__ import annotations

import chess
import pytest

from data_pipeline import encoding, sources
from data_pipeline.decode import MovetextError, main_line_sans
from data_pipeline.pgn import iter_raw_games
from data_pipeline.replay import ReplayError, replay
from tests.conftest import LICHESS_FILES, data_file

ENGINE_FILES = ("engines/tcec-season13-division3.pgn", "engines/tcec-season14-division3.pgn")


def _reference(sans: list[bytes]) -> tuple[list, list, str | None]:
    """python-chess's replay: encoder inputs before each move, the moves, the first error."""
    board = chess.Board()
    raws, moves = [], []
    for san in sans:
        try:
            move = board.parse_san(san.decode())
        except chess.AmbiguousMoveError:
            return raws, moves, "ambiguous_move"
        except ValueError:
            return raws, moves, "illegal_move"
        raws.append(encoding.board_raw(board))
        moves.append((move.from_square, move.to_square, move.promotion or 0))
        board.push(move)
    return raws, moves, None


@pytest.mark.slow
def test_replay_equals_python_chess_on_every_real_ply() -> None:
    positions = games = 0
    for relative in (*LICHESS_FILES, *ENGINE_FILES):
        (src,) = sources.resolve_sources([str(data_file(relative))], progress=False)
        with sources.open_source(src) as stream:
            for game in iter_raw_games(stream):
                headers = game.headers()
                if "FEN" in headers or headers.get("Variant", "Standard") != "Standard":
                    continue
                try:
                    sans, _ = main_line_sans(game.movetext)
                except MovetextError:
                    continue
                want_raws, want_moves, want_error = _reference(sans)
                try:
                    raws, moves = replay(sans)
                    error = None
                except ReplayError as e:
                    raws, moves, error = want_raws, want_moves, e.reason
                assert error == want_error, headers.get("Site")
                assert moves == want_moves, headers.get("Site")
                assert [(list(r[0]), *r[1:]) for r in raws] == [
                    (list(r[0]), *r[1:]) for r in want_raws
                ], headers.get("Site")
                positions += len(raws)
                games += 1
    print(f"replay equal to python-chess on {positions:,} positions of {games:,} games")
    assert positions > 600_000


@pytest.mark.parametrize(
    ("moves", "error"),
    [
        ("e4 e5 Nf3 Nc6 Bb5 a6 Ba4 Nf6 O-O Be7 Re1 b5 Bb3 d6 c3 O-O", None),  # short castles
        ("d4 d5 Nc3 Nc6 Bf4 Bf5 Qd2 Qd7 O-O-O O-O-O", None),  # long castles
        ("e4 e5 Nf3 Nf6 Be2 Be7 O-O O-O Kh1 Kh8 Rg1 Rg8 Rf1 Rf8 Kg1", None),
        ("e4 e5 Ke2 Ke7 Ke1 Ke8 O-O", "illegal_move"),  # the right to castle is gone
        ("e4 e5 Nf3 Nc6 Bc4 Bc5 O-O-O", "illegal_move"),  # pieces in the way
        ("e4 d5 e5 f5 exf6 Nxf6", None),  # en passant
        ("e4 f5 exf5 g5 fxg6", None),
        ("d4 c5 d5 e5 dxc6", "illegal_move"),  # no double push of the c-pawn just before
        ("d4 c5 d5 e5 Nf3 Nf6 dxe6", "illegal_move"),  # en passant only right after the push
        ("e4 d5 exd5 c6 dxc6 Qd7 cxb7 Kd8 bxa8=N", None),  # under-promotion with capture
        ("d4 e5 dxe5 f6 exf6 Kf7 fxg7 Kg6 gxh8=R", None),
        ("a4 b5 axb5 a5 b6 a4 b7 a3 bxc8=Q a2 Qxb8 axb1=N", None),  # black under-promotes
        ("Nf3 Nf6 Nc3 Nc6 Nd4 Nd5 Nb5", "ambiguous_move"),
        ("Nf3 Nf6 Nc3 Nc6 Nd4 Nd5 Ndb5", None),  # disambiguated by file
        ("d4 e5 e3 Bb4+ Nc3 d6 Ne2", None),  # two knights reach e2, the one on c3 is pinned
        ("d4 e5 e3 Bb4+ Nc3 d6 Nb5", "illegal_move"),  # the only candidate is pinned
        ("e4 e5 f4 Qh4+ Nf3", "illegal_move"),  # does not answer the check
        ("e4 e5 f4 Qh4+ Ke2", None),
        ("e4 e5 f4 Qh4+ g3 Qxg3+ hxg3", None),
        ("e4 e5 Ke3", "illegal_move"),
        ("e4 e5 e5", "illegal_move"),  # a pawn push onto a pawn
        ("e4 e5 Qh5 Ke7 Qxe5#", None),
        ("e4 e5 Ke2 Ke7 Ke3 d5 Kf3", None),
        ("e4 e5 Qg4 d5 Qxd7+ Kxd7 exd5 Qf6 d6 Qxf2+ Kd1", None),
    ],
)
def test_hard_cases_agree_with_python_chess(moves: str, error: str | None) -> None:
    sans = [m.encode() for m in moves.split()]
    want_raws, want_moves, want_error = _reference(sans)
    assert want_error == error  # the case means what it says
    if error is None:
        raws, got = replay(sans)
        assert got == want_moves
        assert [(list(r[0]), *r[1:]) for r in raws] == [(list(r[0]), *r[1:]) for r in want_raws]
    else:
        with pytest.raises(ReplayError) as info:
            replay(sans)
        assert info.value.reason == error
