"""The anchors' own games ([arena.schedule] anchor_games): which pairs meet, that they are
played once before the first round and plan it, and that a study plays them in its first arena
phase only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from analysis.ratings import DisconnectedPoolError, fit_ratings, read_pgn_results
from elocap.execution import InlineExecutor
from jobs import study_plan
from jobs.study_config import ArenaStage, StudyConfig
from mcts.agents import MixedAgent, RandomAgent, StockfishAgent
from mcts.arena import ArenaConfig
from mcts.games import GameRecord, append_games, recover_log
from mcts.openings import eco_openings
from mcts.scheduler import ScheduleConfig, active_round, anchor_ladder, run_active
from tests.conftest import debian_tool


def test_each_anchor_meets_the_next_span_anchors_as_listed() -> None:
    a, b, c, d = (MixedAgent(p=p, nodes=1) for p in (0.9, 0.6, 0.3, 0.0))
    jobs = anchor_ladder([a, b, c, d], eco_openings(2), 4, span=2)
    pairs = [frozenset((j.white.name, j.black.name)) for j in jobs[::4]]
    assert pairs == [
        frozenset((x.name, y.name)) for x, y in ((a, b), (a, c), (b, c), (b, d), (c, d))
    ]
    assert len(jobs) == 20 and len({j.game_id for j in jobs}) == 20
    assert [j.white for j in jobs[:4]] == [a, b, a, b]  # colours alternate over the openings
    assert anchor_ladder([a, b], eco_openings(2), 2, span=5) == anchor_ladder(
        [a, b], eco_openings(2), 2, span=1
    )
    with pytest.raises(ValueError, match="distinct"):
        anchor_ladder([a, MixedAgent(p=0.9, nodes=1)], eco_openings(1), 2, span=1)
    with pytest.raises(ValueError, match="anchor_games must be >= 0 and anchor_span >= 1"):
        ScheduleConfig(anchor_span=0)


def test_anchor_games_are_played_once_and_plan_the_first_round(tmp_path: Path) -> None:
    """Three anchors from the random mover up play each other before round 0, and round 0 is
    planned with their ratings: the unrated agent starts at their mean, so its nearest anchor
    is the middle one (without the anchors' games no anchor is rated, and it would meet the
    first one listed, the random mover). A second call plays nothing."""
    debian_tool("stockfish")
    anchors = [RandomAgent(), MixedAgent(p=0.8, nodes=1), MixedAgent(p=0.6, nodes=1)]
    agent = StockfishAgent(nodes=2)
    log = tmp_path / "supervised.pgn"
    games = ArenaConfig(move_cap=40, batch=4, workers=1)
    schedule = ScheduleConfig(
        anchor_games=4, anchor_span=1, games_per_pair=2, neighbours=0, max_rounds=1
    )
    ops = eco_openings(2)

    def run() -> list[tuple[int, int]]:
        reports = run_active(
            [agent], anchors, ops, log, games, schedule, InlineExecutor(),
            anchor_elos={"random": 0.0}, ladder=anchors, progress=False,
        )  # fmt: skip
        return [(r.played, r.skipped) for r in reports]

    assert run() == [(8, 0), (2, 0)]  # the anchors' games, then round 0
    results, _ = read_pgn_results([log])
    pairs = zip(results.white, results.black, strict=True)
    met = {frozenset((results.names[w], results.names[b])) for w, b in pairs}
    names = [a.name for a in anchors]
    assert met == {frozenset(names[:2]), frozenset(names[1:]), frozenset((agent.name, names[1]))}
    before = recover_log(log)
    assert run() == [(0, 8), (0, 2)]
    assert recover_log(log) == before


def test_a_study_plays_the_anchors_games_in_its_first_arena_phase_only() -> None:
    anchors = ("random", "mixed:p=0.5,nodes=1", "stockfish:elo=1350,nodes=100")
    base = StudyConfig()
    arena = ArenaStage(
        anchors=anchors,
        schedule=dataclasses.replace(base.arena.schedule, anchor_games=4),
    )
    cfg = dataclasses.replace(base, arena=arena)
    names = [a.name for a in study_plan.anchor_ladder(cfg, "supervised")]
    assert names == ["random", "mix-n1-p0.5", "stockfish-1350-n100"]  # as listed
    assert study_plan.anchor_ladder(cfg, "selfplay") == []
    off = dataclasses.replace(base, arena=dataclasses.replace(arena, schedule=base.arena.schedule))
    assert study_plan.anchor_ladder(off, "supervised") == []
    alone = dataclasses.replace(cfg, arena=dataclasses.replace(arena, anchors=("random",)))
    assert study_plan.anchor_ladder(alone, "supervised") == []


def test_an_unrated_agent_starts_at_the_schedules_unrated_elo() -> None:
    """By default a new agent starts at the rated anchors' mean (+400 here: it meets the +300
    anchor); ``unrated_elo`` puts it next to the random mover, or anywhere else."""
    anchors = [RandomAgent(), MixedAgent(p=0.6, nodes=1), MixedAgent(p=0.0, nodes=1)]
    ratings = {
        a.name: (e, e - 10, e + 10) for a, e in zip(anchors, (0.0, 300.0, 900.0), strict=True)
    }
    newcomer = StockfishAgent(nodes=3)

    def opponents(unrated: float | None) -> set[str]:
        jobs = active_round(
            [newcomer], ratings, anchors, eco_openings(1), target_width=50, neighbours=0,
            round_index=0, unrated_elo=unrated,
        )  # fmt: skip
        return {j.white.name if j.black == newcomer else j.black.name for j in jobs}

    assert opponents(None) == {anchors[1].name}
    assert opponents(0.0) == {anchors[0].name}
    assert opponents(1000.0) == {anchors[2].name}


def test_a_pool_split_by_perfect_scores_is_planned_not_refused(tmp_path: Path) -> None:
    """An agent that has won every game so far (Ordo's ratings diverge) still gets its next
    games: the schedule plans them from BayesElo's finite ratings."""
    debian_tool("stockfish")
    random, agent = RandomAgent(), StockfishAgent(nodes=1)
    history = tmp_path / "earlier.pgn"
    won = [
        GameRecord(
            game_id=f"{agent.name}|random|x|{i}",
            white=agent.name,
            black="random",
            moves=("e2e4",),
            result="1-0",
            termination="checkmate",
            opening="x",
            opening_plies=0,
        )
        for i in range(4)
    ]
    append_games(history, won)
    games, _ = read_pgn_results([history])
    with pytest.raises(DisconnectedPoolError):
        fit_ratings(games, "ordo", anchors={"random": 0.0})
    schedule = ScheduleConfig(games_per_pair=2, neighbours=0, max_rounds=1, target_width=1.0)
    reports = run_active(
        [agent], [random], eco_openings(1), tmp_path / "now.pgn",
        ArenaConfig(move_cap=20, batch=2, workers=1), schedule, InlineExecutor(),
        anchor_elos={"random": 0.0}, history=[history], progress=False,
    )  # fmt: skip
    assert [r.played for r in reports] == [2]
