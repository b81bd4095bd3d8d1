"""Results tables for the rating fit: reading game results from PGN, and the pair-outcome table.

A rating fit needs only who played white, who played black and the result, so the PGN reader
parses headers only (``chess.pgn.read_headers`` skips the movetext without replaying it). Games
whose result is not a finished 1-0, 0-1 or 1/2-1/2 are counted under a reason, never fitted and
never a crash.

Every model works on the aggregated :class:`PairTable`: one row per ordered (white, black) pair
with its numbers of white wins, draws and black wins. A million games between a thousand players
collapse to at most a million rows, usually far fewer, and each optimiser step is a handful of
vectorised passes over those rows.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import chess.pgn
import numpy as np

# PGN Result tag -> white's score. Anything else is a rejected game.
_RESULT_SCORE = {"1-0": 1.0, "0-1": 0.0, "1/2-1/2": 0.5}
_UNFINISHED = {"*", ""}


@dataclasses.dataclass(frozen=True)
class Games:
    """A results table: one entry per finished game."""

    names: tuple[str, ...]  # player names, index = player id
    white: np.ndarray  # int32[G] player id with white
    black: np.ndarray  # int32[G] player id with black
    score: np.ndarray  # float64[G] white's score: 1, 0.5 or 0

    def __post_init__(self) -> None:
        g = len(self.white)
        if len(self.black) != g or len(self.score) != g:
            raise ValueError("white, black and score must have the same length")
        if len(set(self.names)) != len(self.names):
            raise ValueError("player names must be unique")
        p = len(self.names)
        for side in (self.white, self.black):
            if g and (int(np.min(side)) < 0 or int(np.max(side)) >= p):
                raise ValueError("player ids must index into names")
        if g and bool(np.any(self.white == self.black)):
            raise ValueError("a player cannot play against itself")
        if g and not bool(np.all(np.isin(self.score, (0.0, 0.5, 1.0)))):
            raise ValueError("scores must be 1, 0.5 or 0 (white's point)")

    @property
    def num_games(self) -> int:
        return len(self.score)

    @property
    def num_players(self) -> int:
        return len(self.names)

    @staticmethod
    def from_results(results: Iterable[tuple[str, str, float]]) -> Games:
        """Builds a table from (white name, black name, white's score) triples; player ids
        follow the order of first appearance."""
        ids: dict[str, int] = {}
        white: list[int] = []
        black: list[int] = []
        score: list[float] = []
        for w, b, s in results:
            white.append(ids.setdefault(w, len(ids)))
            black.append(ids.setdefault(b, len(ids)))
            score.append(float(s))
        return Games(
            names=tuple(ids),
            white=np.asarray(white, dtype=np.int32),
            black=np.asarray(black, dtype=np.int32),
            score=np.asarray(score, dtype=np.float64),
        )

    def subset(self, mask: np.ndarray) -> Games:
        """The games where ``mask`` (bool[G]) is true, with the same players."""
        return Games(self.names, self.white[mask], self.black[mask], self.score[mask])


def read_pgn_results(
    paths: Sequence[Path],
    keep: Callable[[Path, chess.pgn.Headers], bool] | None = None,
) -> tuple[Games, dict[str, int]]:
    """Reads the results of every game in ``paths`` (plain PGN) from the headers only (of the
    games ``keep(path, headers)`` accepts, when given: the others are neither read nor counted).

    Returns the games and the rejected games counted by reason: ``unfinished`` (Result ``*`` or
    empty), ``missing result`` (no Result tag), ``unknown result`` (any other Result value),
    ``missing player`` (no or empty White/Black tag), ``self play`` (White equals Black).
    A file that cannot be opened raises ``OSError`` naming it. Games are in the order of
    ``paths``; within a file where every game has a GameId (an arena log), in GameId order.
    """
    rejected: collections.Counter[str] = collections.Counter()
    triples: list[tuple[str, str, float]] = []
    for path in paths:
        found: list[tuple[str, tuple[str, str, float]]] = []
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            while (headers := chess.pgn.read_headers(f)) is not None:
                if keep is not None and not keep(Path(path), headers):
                    continue
                reason, triple = _classify(headers)
                if triple is None:
                    rejected[reason] += 1
                else:
                    found.append((headers.get("GameId", ""), triple))
        # An arena log is appended in the order its batches finished (on Ray, a race): with a
        # GameId on every game, its games are taken in GameId order, so that player ids, fits
        # and bootstrap replicates depend on which games were played, not on that race.
        if found and all(game_id for game_id, _ in found):
            found.sort(key=lambda item: item[0])
        triples += [triple for _, triple in found]
    return Games.from_results(triples), dict(rejected)


def _classify(headers: chess.pgn.Headers) -> tuple[str, tuple[str, str, float] | None]:
    white = headers.get("White", "").strip()
    black = headers.get("Black", "").strip()
    if "Result" not in headers:
        return "missing result", None
    result = headers["Result"].strip()
    if result in _UNFINISHED:
        return "unfinished", None
    if result not in _RESULT_SCORE:
        return "unknown result", None
    if not white or not black or white == "?" or black == "?":
        return "missing player", None
    if white == black:
        return "self play", None
    return "", (white, black, _RESULT_SCORE[result])


@dataclasses.dataclass(frozen=True)
class PairTable:
    """Games aggregated by ordered (white, black) pair; counts may be fractional (weights,
    BayesElo's virtual draws)."""

    num_players: int
    white: np.ndarray  # int64[K] white player of each pair row
    black: np.ndarray  # int64[K] black player
    wins: np.ndarray  # float64[K] white wins
    draws: np.ndarray  # float64[K] draws
    losses: np.ndarray  # float64[K] white losses (black wins)

    @property
    def games(self) -> np.ndarray:  # float64[K]
        return self.wins + self.draws + self.losses

    @property
    def white_points(self) -> np.ndarray:  # float64[K]
        return self.wins + 0.5 * self.draws

    def per_player(self, values_white: np.ndarray, values_black: np.ndarray) -> np.ndarray:
        """Sums per-row values onto players: f64[P] = sum over rows of values_white at the white
        player plus values_black at the black player."""
        p = self.num_players
        return np.bincount(self.white, values_white, minlength=p) + np.bincount(
            self.black, values_black, minlength=p
        )

    def with_counts(self, wins: np.ndarray, draws: np.ndarray, losses: np.ndarray) -> PairTable:
        return dataclasses.replace(self, wins=wins, draws=draws, losses=losses)


def pair_table(games: Games) -> PairTable:
    """Aggregates a results table into its pair-outcome table (rows sorted by white, black)."""
    p = games.num_players
    key = games.white.astype(np.int64) * p + games.black.astype(np.int64)  # int64[G]
    keys, inverse = np.unique(key, return_inverse=True)
    k = len(keys)
    wins = np.bincount(inverse, games.score == 1.0, minlength=k).astype(np.float64)
    draws = np.bincount(inverse, games.score == 0.5, minlength=k).astype(np.float64)
    losses = np.bincount(inverse, games.score == 0.0, minlength=k).astype(np.float64)
    return PairTable(p, keys // p, keys % p, wins, draws, losses)


def resample_pairs(table: PairTable, rng: np.random.Generator) -> PairTable:
    """A bootstrap resample of the games (with replacement, same total) expressed on the pair
    table: the counts of the 3K (pair, outcome) cells are drawn from one multinomial."""
    cells = np.concatenate([table.wins, table.draws, table.losses])  # f64[3K]
    total = round(float(cells.sum()))
    drawn = rng.multinomial(total, cells / cells.sum()).astype(np.float64)  # f64[3K]
    k = len(table.wins)
    return table.with_counts(drawn[:k], drawn[k : 2 * k], drawn[2 * k :])
