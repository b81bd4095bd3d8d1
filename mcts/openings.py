"""Opening suites for the arena: named move sequences the games start from.

Two sources: the first plies of games from a data build's validation split (positions that the
capped players actually reach), or a fixed list of common ECO lines. Colours are alternated over
each opening by the scheduler, so an opening's bias cancels within a pair.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import chess
import numpy as np


@dataclasses.dataclass(frozen=True)
class Opening:
    name: str  # e.g. "C60 Ruy Lopez" or "val:1234abcd"
    moves: tuple[str, ...]  # UCI moves from the standard start position


# (ECO code and name, SAN moves): a small balanced suite of main lines.
ECO_LINES: tuple[tuple[str, str], ...] = (
    ("C60 Ruy Lopez", "e4 e5 Nf3 Nc6 Bb5"),
    ("C50 Italian Game", "e4 e5 Nf3 Nc6 Bc4"),
    ("B20 Sicilian Defence", "e4 c5"),
    ("B90 Sicilian Najdorf", "e4 c5 Nf3 d6 d4 cxd4 Nxd4 Nf6 Nc3 a6"),
    ("C00 French Defence", "e4 e6 d4 d5"),
    ("B10 Caro-Kann Defence", "e4 c6 d4 d5"),
    ("B01 Scandinavian Defence", "e4 d5 exd5 Qxd5"),
    ("D06 Queen's Gambit", "d4 d5 c4"),
    ("D30 Queen's Gambit Declined", "d4 d5 c4 e6"),
    ("D10 Slav Defence", "d4 d5 c4 c6"),
    ("E60 King's Indian Defence", "d4 Nf6 c4 g6"),
    ("E20 Nimzo-Indian Defence", "d4 Nf6 c4 e6 Nc3 Bb4"),
    ("A10 English Opening", "c4"),
    ("A04 Reti Opening", "Nf3"),
    ("A80 Dutch Defence", "d4 f5"),
    ("C42 Petrov Defence", "e4 e5 Nf3 Nf6"),
)


def eco_openings(count: int | None = None) -> list[Opening]:
    """The ECO suite (its first ``count`` lines), with moves checked by python-chess."""
    out = []
    for name, san in ECO_LINES[:count]:
        board = chess.Board()
        moves = tuple(board.push_san(m).uci() for m in san.split())
        out.append(Opening(name, moves))
    return out


def openings_from_split(
    data_dir: Path, *, plies: int, count: int, split: str = "val", seed: int = 0
) -> list[Opening]:
    """``count`` openings: the first ``plies`` moves of distinct games of a build's split, picked
    at random (seeded) among games at least that long; distinct move sequences only."""
    from data_pipeline.encoding import action_to_move
    from data_pipeline.loader import read_examples

    rows = read_examples(data_dir, split)  # the split's examples only (a view: its cap's)
    rows = rows[rows["ply"] < plies]
    order = np.lexsort((rows["ply"], rows["game_id"]))
    rows = rows[order]
    ids, starts, counts = np.unique(rows["game_id"], return_index=True, return_counts=True)
    complete = [(g, s) for g, s, c in zip(ids, starts, counts, strict=True) if c == plies]
    rng = np.random.default_rng(seed)
    out: list[Opening] = []
    seen: set[tuple[str, ...]] = set()
    for k in rng.permutation(len(complete)):
        game_id, start = complete[int(k)]
        board = chess.Board()
        moves = []
        for action in rows["action"][start : start + plies]:
            move = action_to_move(int(action), board)
            board.push(move)
            moves.append(move.uci())
        if tuple(moves) in seen:
            continue
        seen.add(tuple(moves))
        out.append(Opening(f"{split}:{int(game_id):016x}", tuple(moves)))
        if len(out) == count:
            return out
    raise ValueError(
        f"{data_dir} split {split!r} has only {len(out)} distinct openings of {plies} plies "
        f"(asked for {count})"
    )
