"""Issue 5's must-show: self-play from a random initialisation learns, on CPU, in minutes.

The run is ``jobs/selfplay/scratch-10k.toml`` (a 10k-parameter network, 1.5e12 FLOPs, about 3
minutes on 2 cores); its FLOP budget, not the clock, ends it, so the run is the same on every
CPU machine up to floating-point reassociation. The arena then plays the random agent against
the run's starting network and against its last checkpoint, both with 16 simulations of search
(contract 3: the same N for both), 64 games each from ECO openings with colours alternated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import pytest

from analysis.rating_io import read_pgn_results
from analysis.ratings import fit_ratings
from elocap.execution import InlineExecutor
from mcts.agents import NetworkAgent, RandomAgent
from mcts.arena import ArenaConfig, run_tournament
from mcts.loop import SelfPlayRunConfig, run_selfplay, save_start
from mcts.openings import eco_openings
from mcts.scheduler import pairing_games
from scaling.config import load_toml

CONFIG = Path(__file__).parent.parent / "jobs" / "selfplay" / "scratch-10k.toml"


@pytest.mark.slow
def test_selfplay_from_scratch_beats_random_and_its_start(tmp_path: Path) -> None:
    cfg = load_toml(SelfPlayRunConfig, CONFIG)
    cfg = dataclasses.replace(cfg, out_dir=str(tmp_path / "scratch"))
    assert not cfg.init_run and cfg.budget_flops <= 2e12  # a few minutes from random init
    result = run_selfplay(cfg, progress=False)
    assert result["start_flops"] == 0.0 and result["flops"] >= cfg.budget_flops
    start = NetworkAgent(run=str(save_start(cfg, tmp_path / "start")), sims=16)
    trained = NetworkAgent(run=cfg.out_dir, sims=16)
    random = RandomAgent()
    jobs = [
        job
        for agent in (start, trained)
        for job in pairing_games(random, agent, eco_openings(), 64)
    ]
    log = tmp_path / "arena.pgn"
    run_tournament(jobs, log, ArenaConfig(move_cap=300, batch=64), InlineExecutor(), progress=False)
    games, rejected = read_pgn_results([log])
    assert len(games.score) == 128 and not rejected
    table = fit_ratings(games, "ordo", anchors={"random": 0.0})
    elo = {row["name"]: (row["rating"], row["lower"], row["upper"]) for row in table.to_rows()}
    print(f"devices {jax.devices()}; Elo (random = 0) [90%]: {elo}")
    assert elo[trained.name][1] > 0, "the trained agent does not beat random at 90%"
    # and it is stronger than its own start with the same search (90% intervals disjoint)
    assert elo[trained.name][1] > elo[start.name][2], "self-play did not make the agent stronger"
