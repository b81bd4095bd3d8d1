"""Finished arena games: the referee, the record of a game, and the append-only PGN log.

python-chess is the referee of every game, whoever played it (a pgx batch on the device or
engines on a Ray worker): a game ends at the first position where the rules end it (checkmate,
stalemate, insufficient material, the fifty-move rule, threefold repetition, counted as pgx does
on the third occurrence of a position) or at the move cap, where it is adjudicated a draw.

The log is one PGN file per tournament. Each game is appended with a single ``write`` of the
whole game followed by ``fsync``; a game is identified by its ``GameId`` tag, so a resumed
tournament plays exactly the games whose ids are not yet in the file. A game cut off by a crash
in the middle of its write is the only thing ever removed (``recover_log``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import chess
import chess.pgn

RESULT_SCORE = {"1-0": 1.0, "0-1": 0.0, "1/2-1/2": 0.5}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GameRecord:
    """One finished game, as the arena writes it."""

    game_id: str  # unique in a tournament: "<white>|<black>|<opening>|<round>"
    white: str  # agent names
    black: str
    moves: tuple[str, ...]  # UCI moves from the standard start position, opening included
    result: str  # "1-0", "0-1" or "1/2-1/2"
    termination: str  # checkmate, stalemate, insufficient_material, fifty_moves, ...
    opening: str  # name of the opening the game started from
    opening_plies: int  # how many of ``moves`` the opening forced
    white_flops: float | None = None  # cumulative training FLOPs of a network agent
    black_flops: float | None = None
    event: str = "elocap arena"
    extra: tuple[tuple[str, str], ...] = ()  # further PGN tags, e.g. WhiteElo for a ladder


def referee(board: chess.Board) -> tuple[str, str] | None:
    """(result, termination) if the rules end the game in ``board``'s position, else None."""
    if board.is_checkmate():
        return ("0-1" if board.turn == chess.WHITE else "1-0"), "checkmate"
    if board.is_stalemate():
        return "1/2-1/2", "stalemate"
    if board.is_insufficient_material():
        return "1/2-1/2", "insufficient_material"
    if board.halfmove_clock >= 100:
        return "1/2-1/2", "fifty_moves"
    if board.is_repetition(3):
        return "1/2-1/2", "threefold_repetition"
    return None


def finish(
    moves: Sequence[chess.Move], move_cap: int, *, ended_elsewhere: str | None = None
) -> tuple[tuple[str, ...], str, str, chess.Board]:
    """Replays ``moves`` from the start position under the referee: (the UCI moves actually
    played, result, termination, final board). Moves after the end of the game are dropped; an
    illegal move raises ValueError (no agent of the arena may play one). A game that stops
    before the rules end it is an error, unless ``ended_elsewhere`` names who ended it (the
    device's rules): then it is adjudicated a draw with that termination."""
    board = chess.Board()
    played: list[str] = []
    for ply, move in enumerate(moves):
        if referee(board) is not None or ply >= move_cap:
            break
        if not board.is_legal(move):
            raise ValueError(f"illegal move {move.uci()} at ply {ply} in {board.fen()}")
        board.push(move)
        played.append(move.uci())
    ended = referee(board)
    if ended is not None:
        return tuple(played), ended[0], ended[1], board
    if len(played) >= move_cap:
        return tuple(played), "1/2-1/2", "move_cap", board
    if ended_elsewhere is not None:
        return tuple(played), "1/2-1/2", ended_elsewhere, board
    raise ValueError(f"game unfinished after {len(played)} plies (cap {move_cap})")


def to_pgn(game: GameRecord) -> str:
    """The game as PGN text (headers naming agents, FLOPs, opening), ending in a blank line."""
    pgn = chess.pgn.Game()
    h = pgn.headers
    h["Event"] = game.event
    h["Site"] = "elocap"
    h["White"], h["Black"], h["Result"] = game.white, game.black, game.result
    h["GameId"] = game.game_id
    h["Opening"] = game.opening
    h["OpeningPlies"] = str(game.opening_plies)
    h["Termination"] = game.termination
    h["PlyCount"] = str(len(game.moves))
    if game.white_flops is not None:
        h["WhiteFLOPs"] = f"{game.white_flops:.6g}"
    if game.black_flops is not None:
        h["BlackFLOPs"] = f"{game.black_flops:.6g}"
    for key, value in game.extra:
        h[key] = value
    node: chess.pgn.GameNode = pgn
    for uci in game.moves:
        node = node.add_variation(chess.Move.from_uci(uci))
    return str(pgn.accept(chess.pgn.StringExporter(headers=True, variations=False))) + "\n\n"


def append_games(path: Path, games: Iterable[GameRecord]) -> int:
    """Appends games to the log, each with one write and an fsync; returns how many."""
    n = 0
    with open(path, "ab") as f:
        for game in games:
            f.write(to_pgn(game).encode())
            f.flush()
            os.fsync(f.fileno())
            n += 1
    return n


def recover_log(path: Path) -> set[str]:
    """The GameIds of the complete games in the log. A final game cut off in mid-write (no
    result terminator after its moves) is truncated away; nothing else is touched."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    ids: set[str] = set()
    good_end = 0
    for start, end in _game_offsets(data):
        text = data[start:end].decode("utf-8", errors="replace")
        game = chess.pgn.read_game(io.StringIO(text))
        if game is None or not _complete(text, game):
            break
        ids.add(game.headers["GameId"])
        good_end = end
    if good_end < len(data) and data[good_end:].strip():
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return ids


def keep_players(path: Path, players: Iterable[str]) -> int:
    """Drops from the log every game with a player outside ``players`` (an earlier config's
    agents: other simulations, checkpoints no longer evaluated), rewriting it atomically;
    returns how many games were dropped. Their results would otherwise enter this phase's
    schedule and the study's ratings as if they belonged to it."""
    if not path.exists():
        return 0
    recover_log(path)
    keep = set(players)
    data = path.read_bytes()
    kept: list[bytes] = []
    dropped = 0
    for start, end in _game_offsets(data):
        headers = chess.pgn.read_headers(io.StringIO(data[start:end].decode("utf-8", "replace")))
        if headers is not None and {headers.get("White"), headers.get("Black")} <= keep:
            kept.append(data[start:end])
        else:
            dropped += 1
    if dropped:
        from elocap.files import atomic_write_bytes

        atomic_write_bytes(path, b"".join(kept))
    return dropped


def _game_offsets(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte ranges of the games, split where a tag section starts after movetext."""
    starts = [0] if data.startswith(b"[Event ") else []
    pos = 0
    while (i := data.find(b"\n\n[Event ", pos)) >= 0:
        starts.append(i + 2)
        pos = i + 2
    if not starts:  # an empty log (every game dropped by keep_players), or no game in it
        return []
    return list(zip(starts, [*starts[1:], len(data)], strict=True))


def _complete(text: str, game: chess.pgn.Game) -> bool:
    result = game.headers.get("Result", "*")
    return result in RESULT_SCORE and text.rstrip().endswith(result) and not game.errors
