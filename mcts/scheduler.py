"""Which games to play: a round robin for small pools, and an adaptive schedule for a study's
many checkpoints that adds games where ratings are least certain (after Jones's active Elo).

Colours alternate over the opening suite: a pairing's games 2k and 2k+1 both start from opening
k, one with each colour. Rounds number repeated passes over the suite, so every GameId differs.

Anchors meet only the agents being rated, unless the schedule plays ``anchor_games``: then, once,
before the first round, each anchor plays the next ``anchor_span`` anchors in the order listed
(``anchor_ladder``), so a pool whose anchors climb from the random mover to Stockfish levels in
steps (mixed players between them) is connected through the anchors themselves, and the
bridges' arena ratings do not hang on checkpoints far below them.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elocap.execution import Executor
from mcts.agents import AgentSpec
from mcts.arena import ArenaConfig, GameJob, TournamentReport, run_tournament
from mcts.openings import Opening

ROUND_STRIDE = 1000  # the GameId round of active round r's games starts at r * ROUND_STRIDE


def pairing_games(
    a: AgentSpec,
    b: AgentSpec,
    openings: Sequence[Opening],
    games: int,
    *,
    first_round: int = 0,
    first_opening: int = 0,
) -> list[GameJob]:
    """``games`` games between a and b, colours alternated over the openings (from the suite's
    ``first_opening``-th, wrapping around)."""
    if not openings:
        raise ValueError("the opening suite is empty")
    jobs = []
    for k in range(games):
        pair, colour = divmod(k, 2)
        rnd, index = divmod(first_opening % len(openings) + pair, len(openings))
        white, black = (a, b) if colour == 0 else (b, a)
        jobs.append(GameJob(white, black, openings[index], first_round + rnd))
    return jobs


def round_robin(
    agents: Sequence[AgentSpec], openings: Sequence[Opening], games_per_pair: int
) -> list[GameJob]:
    """Every pair of agents plays ``games_per_pair`` games."""
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names must be distinct: {names}")
    return [
        job
        for a, b in itertools.combinations(agents, 2)
        for job in pairing_games(a, b, openings, games_per_pair)
    ]


def anchor_ladder(
    anchors: Sequence[AgentSpec], openings: Sequence[Opening], games_per_pair: int, span: int
) -> list[GameJob]:
    """The games among anchors listed in order of strength: each meets the next ``span``
    anchors, ``games_per_pair`` games a pairing (colours alternated over the openings)."""
    names = [a.name for a in anchors]
    if len(set(names)) != len(names):
        raise ValueError(f"anchor names must be distinct: {names}")
    if span < 1:
        raise ValueError(f"anchor_span must be >= 1, got {span}")
    return [
        job
        for i, a in enumerate(anchors)
        for b in anchors[i + 1 : i + 1 + span]
        for job in pairing_games(a, b, openings, games_per_pair)
    ]


def active_round(
    agents: Sequence[AgentSpec],
    ratings: Mapping[str, tuple[float, float, float]],
    anchors: Sequence[AgentSpec],
    openings: Sequence[Opening],
    *,
    target_width: float,
    neighbours: int = 2,
    games_per_pair: int = 4,
    round_index: int,
    chains: Sequence[Sequence[AgentSpec]] = (),
    unrated_elo: float | None = None,
) -> list[GameJob]:
    """The next games of an adaptive schedule. ``ratings``: name -> (rating, lower, upper) from
    the last fit; an agent with no rating yet counts as infinitely uncertain and is placed at the
    anchors' mean rating (the mean of all ratings without a rated anchor). Every agent whose
    interval is wider than ``target_width`` plays its ``neighbours``
    nearest agents by rating (on each side) and the nearest anchor. ``chains``: sequences of
    agents (one checkpoint at increasing test-time simulations) whose consecutive members also
    play each other while either one's interval is wider than ``target_width``, so each is
    compared directly with its neighbours in N whatever their ratings. ``unrated_elo``, when
    given, is where an agent with no rating yet is placed instead (a pool whose anchors climb
    far above the agents: they start next to the weakest, not at the anchors' mean)."""
    pool = list(dict.fromkeys([*anchors, *agents]))
    missing = [a.name for chain in chains for a in chain if a not in pool]
    if missing:
        raise ValueError(f"chained agents {missing} are not in the pool")
    # an agent with no rating yet starts where the anchors are (the random mover, for a study),
    # not at the mean of a pool whose partners may sit hundreds of Elo above it
    rated_anchors = [ratings[a.name][0] for a in anchors if a.name in ratings]
    known = rated_anchors or [r[0] for r in ratings.values()]
    centre = float(np.mean(known)) if known else 0.0
    if unrated_elo is not None:
        centre = unrated_elo

    def estimate(a: AgentSpec) -> tuple[float, float]:
        r = ratings.get(a.name)
        return (centre, np.inf) if r is None else (r[0], r[2] - r[1])

    order = sorted(pool, key=lambda a: estimate(a)[0])
    pairs: set[frozenset[AgentSpec]] = set()
    for agent in agents:
        if estimate(agent)[1] <= target_width:
            continue
        i = order.index(agent)
        near = order[max(0, i - neighbours) : i] + order[i + 1 : i + 1 + neighbours]
        if anchors:
            nearest_anchor = min(anchors, key=lambda x: abs(estimate(x)[0] - estimate(agent)[0]))
            near.append(nearest_anchor)
        pairs.update(frozenset((agent, other)) for other in near if other != agent)
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            if max(estimate(a)[1], estimate(b)[1]) > target_width:
                pairs.add(frozenset((a, b)))
    jobs = []
    for pair in sorted(pairs, key=lambda p: sorted(x.name for x in p)):
        a, b = sorted(pair, key=lambda x: x.name)
        # each round goes on through the opening suite: deterministic players meeting again
        # in a later round would otherwise replay the very same games
        jobs += pairing_games(
            a,
            b,
            openings,
            games_per_pair,
            first_round=round_index * ROUND_STRIDE,
            first_opening=round_index * -(-games_per_pair // 2),
        )
    return jobs


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """The adaptive schedule of ``run_active``."""

    target_width: float = 150.0  # Elo: rounds until every 90% interval is at most this wide
    max_rounds: int = 2  # rounds at most
    neighbours: int = 1  # nearest agents by rating each uncertain agent plays per round
    games_per_pair: int = 4  # games per pairing and round (colours alternate)
    # games per pairing among the anchors (each with the next anchor_span ones as listed,
    # weakest first), played once before the first round (0: anchors meet only the agents)
    anchor_games: int = 0
    anchor_span: int = 1
    # Elo at which an agent with no rating yet starts (None: the rated anchors' mean)
    unrated_elo: float | None = None

    def __post_init__(self) -> None:
        if not self.target_width > 0 or self.max_rounds < 1:
            raise ValueError("arena target_width must be > 0 and max_rounds >= 1")
        if self.neighbours < 0 or self.games_per_pair < 1:
            raise ValueError("arena neighbours must be >= 0 and games_per_pair >= 1")
        if self.anchor_games < 0 or self.anchor_span < 1:
            raise ValueError("arena anchor_games must be >= 0 and anchor_span >= 1")


def run_active(
    agents: Sequence[AgentSpec],
    anchors: Sequence[AgentSpec],
    openings: Sequence[Opening],
    pgn_path: Path,
    cfg: ArenaConfig,
    schedule: ScheduleConfig,
    executor: Executor,
    *,
    anchor_elos: Mapping[str, float] | None = None,
    history: Sequence[Path] = (),
    chains: Sequence[Sequence[AgentSpec]] = (),
    ladder: Sequence[AgentSpec] = (),
    progress: bool = True,
) -> list[TournamentReport]:
    """Adaptive tournament: rounds of ``active_round`` until every agent's 90% interval is at
    most ``schedule.target_width`` Elo wide or ``schedule.max_rounds`` rounds are played;
    ``chains`` as in ``active_round``. With ``schedule.anchor_games``, the anchors of
    ``ladder`` (in order of strength) first play ``anchor_ladder``'s games, and every round is
    planned with them (the first report is theirs).
    Ratings are fitted on this log and the ``history`` logs (earlier phases whose agents are
    partners here). Resumable: rounds are recomputed from the logs, whose games are never
    replayed."""
    from analysis.ratings import DisconnectedPoolError, fit_ratings, read_pgn_results

    reports = []
    among = {a.name for a in ladder} if schedule.anchor_games and len(ladder) > 1 else set()
    if among:
        jobs = anchor_ladder(ladder, openings, schedule.anchor_games, schedule.anchor_span)
        reports.append(run_tournament(jobs, pgn_path, cfg, executor, progress=progress))
    for rnd in range(schedule.max_rounds):
        ratings: dict[str, tuple[float, float, float]] = {}
        logs = [p for p in (*history, pgn_path) if p.exists()]

        def before(path: Path, headers: Any, rnd: int = rnd) -> bool:
            """A round is planned from the games of the rounds before it, the anchors' games
            (played before the first) and the history, never from its own or later games a
            resumed log already holds."""
            if path != pgn_path or {headers.get("White"), headers.get("Black")} <= among:
                return True
            return _round_of(headers.get("GameId", "")) < rnd * ROUND_STRIDE

        if logs:
            games, _ = read_pgn_results(logs, keep=before)
            if len(games.white):
                fixed = dict(anchor_elos or {}) or None
                try:
                    table = fit_ratings(games, "ordo", anchors=fixed)
                except DisconnectedPoolError:
                    # a group that has lost (or won) every game so far, e.g. new agents that
                    # met only anchors far above them: Ordo's ratings diverge, BayesElo's prior
                    # of virtual draws keeps them finite, enough to plan the next games (the
                    # study's ratings fit still refuses a pool that stays split)
                    table = fit_ratings(games, "bayeselo", anchors=fixed)
                ratings = {
                    str(n): (float(r), float(lo), float(hi))
                    for n, r, lo, hi in zip(
                        table.names, table.rating, table.lower, table.upper, strict=True
                    )
                }
        jobs = active_round(
            agents,
            ratings,
            anchors,
            openings,
            target_width=schedule.target_width,
            neighbours=schedule.neighbours,
            games_per_pair=schedule.games_per_pair,
            round_index=rnd,
            chains=chains,
            unrated_elo=schedule.unrated_elo,
        )
        if not jobs:
            break
        reports.append(run_tournament(jobs, pgn_path, cfg, executor, progress=progress))
    return reports


def _round_of(game_id: str) -> int:
    """The round field of a GameId ``<white>|<black>|<opening>|<round>`` (0 when absent)."""
    tail = game_id.rpartition("|")[2]
    return int(tail) if tail.isdigit() else 0
