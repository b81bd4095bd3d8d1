"""A synthetic ladder corpus: games between Stockfish players at UCI_Elo levels, with those
levels as the players' Elo tags. Offline, reproducible, and with true strengths known up to
Stockfish's own calibration, so a study on it also tests the method.

The corpus is an arena tournament (resumable, refereed by python-chess) whose PGN carries the
tags the data stage filters on: WhiteElo/BlackElo (the nominal levels), a rated Event and a
classical TimeControl.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from elocap.execution import Executor
from mcts.agents import StockfishAgent
from mcts.arena import ArenaConfig, GameJob, TournamentReport, run_tournament
from mcts.openings import eco_openings
from mcts.scheduler import pairing_games


@dataclasses.dataclass(frozen=True, kw_only=True)
class LadderConfig:
    """The players and games of a ladder corpus."""

    levels: tuple[int, ...] = (1350, 1500, 1650, 1800, 2000, 2200)  # UCI_Elo of each player
    games: int = 240  # in all, spread evenly over the pairs of levels
    nodes: int = 400  # Stockfish's node limit per move (fast, and still ordered by level)
    move_cap: int = 300  # plies before a draw is adjudicated
    openings: int = 16  # ECO lines the games start from, colours alternated

    def __post_init__(self) -> None:
        if len(self.levels) < 2 or any(not 1350 <= x <= 2850 for x in self.levels):
            raise ValueError(
                f"ladder levels: two or more UCI_Elo values in 1350..2850: {self.levels}"
            )
        if self.games < 2:
            raise ValueError("a ladder needs at least 2 games")


def ladder_jobs(cfg: LadderConfig, stockfish: str | None = None) -> list[GameJob]:
    """The games of the ladder: every pair of levels, colours alternated over the openings."""
    players = [StockfishAgent(elo=e, nodes=cfg.nodes, path=stockfish) for e in cfg.levels]
    pairs = list(itertools.combinations(players, 2))
    per_pair = -(-cfg.games // len(pairs))
    per_pair += per_pair % 2
    elo = {p.name: p.elo for p in players}
    jobs = []
    for a, b in pairs:
        for job in pairing_games(a, b, eco_openings(cfg.openings), per_pair):
            tags = (
                ("WhiteElo", str(elo[job.white.name])),
                ("BlackElo", str(elo[job.black.name])),
                ("TimeControl", "1800+0"),
            )
            jobs.append(dataclasses.replace(job, extra=tags))
    return jobs


def build_ladder(
    cfg: LadderConfig, pgn_path: Path, executor: Executor, *, progress: bool = True
) -> TournamentReport:
    """Plays (or finishes) the ladder corpus into ``pgn_path``."""
    arena = ArenaConfig(move_cap=cfg.move_cap, batch=8, event="Rated elocap ladder game")
    return run_tournament(ladder_jobs(cfg), pgn_path, arena, executor, progress=progress)
