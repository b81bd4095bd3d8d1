"""The embedded default end to end: `elocap study run jobs/studies/tiny.toml` from nothing to the
report with every figure, then again with no work done."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobs.study import stage_names
from jobs.study_config import load_study_config
from scaling.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "jobs" / "studies" / "tiny.toml"
FIGURES = ("elo_vs_compute", "switch", "rating_intervals", "learning_curves", "optimal_size")


def test_study_configs_load_and_reject_bad_keys(tmp_path: Path) -> None:
    for path in sorted((REPO / "jobs" / "studies").glob("*.toml")):
        assert load_study_config(path).name
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[supervised]\nsizes = ["10k"]\nbudget = [1e9]\n')
    with pytest.raises(ValueError, match="unknown keys in supervised"):
        load_study_config(bad)
    bad.write_text('name = "x"\n[data]\ncaps = "1500"\n')
    with pytest.raises(ValueError, match="caps"):
        load_study_config(bad)
    with pytest.raises(FileNotFoundError):
        load_study_config(tmp_path / "missing.toml")


def test_the_cost_of_a_study_before_it_runs() -> None:
    import dataclasses

    from elocap.execution import Resources
    from jobs.study_cost import cost_lines

    cfg = load_study_config(TINY)
    lines = cost_lines(cfg)
    runs = len(cfg.data.caps) * len(cfg.supervised.sizes) * len(cfg.supervised.budgets)
    flops = len(cfg.data.caps) * len(cfg.supervised.sizes) * sum(cfg.supervised.budgets)
    assert lines[0].startswith(f"supervised: {runs} runs, {flops:.2g} FLOPs")
    assert "CPU cores at 1e10 FLOP/s" in lines[0] and "80 s one after the other" in lines[0]
    gpu = dataclasses.replace(
        cfg, supervised=dataclasses.replace(cfg.supervised, resources=Resources(num_gpus=1))
    )
    assert "1 H100 at 30% of peak" in cost_lines(gpu)[0]
    assert any(line.startswith("arena: ") and "at most" in line for line in lines)
    assert not [line for line in lines if "anchors among themselves" in line]  # tiny: none
    # small-lichess: 10 anchors, each against the next 2 (9 + 8 pairings), 16 games a pairing:
    # the 272 anchor games its arena-supervised stage played (BENCHMARKS.md 14)
    small = load_study_config(TINY.parent / "small-lichess.toml")
    among = [line for line in cost_lines(small) if "anchors among themselves" in line]
    assert among == [
        "arena, anchors among themselves: 17 pairings (10 anchors, each against the next 2) "
        "x 16 games = 272 games, once; engine and random players, no network FLOPs"
    ]


def test_the_plan_counts_the_test_time_players_their_games_and_network_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[arena] test_time_sims`` adds its players (checkpoints x the N other than ``sims``), at
    most their games (each round: 2 neighbours + 1 opponents, and the next of its chain in N)
    and their network FLOPs to the plan; a study without them has no such line."""
    import dataclasses

    from jobs.cli import main
    from jobs.study_cost import cost_lines
    from scaling.flops import forward_flops_per_position
    from scaling.model import NAMED_SIZES

    tiny = load_study_config(TINY)
    assert not [line for line in cost_lines(tiny) if "test-time" in line]

    def with_arena(**fields: Any) -> list[str]:
        return cost_lines(
            dataclasses.replace(tiny, arena=dataclasses.replace(tiny.arena, **fields))
        )

    # tiny: 4 supervised runs and 2 self-play runs, 3 rounds x 8 games, neighbours = 1, sims 8
    last = with_arena(test_time_sims=(0, 8, 32))[-1]
    assert last.startswith(
        "arena, test-time search: 12 players (6 checkpoints ('last') x N in [0, 32]), "
        "at most 1152 more games (3 rounds x 4 opponents x 8 games); at most "
    )
    every = with_arena(test_time_sims=(0, 32), test_time_checkpoints="all")[-1]
    assert "24 players (12 checkpoints ('all') x N in [0, 32]), at most 2304 more" in every

    # by hand: one 10k run, 2 checkpoints at N = 0, its last also at N = 2; a game at the move
    # cap is 100 moves a side, and every side is counted at the largest N (2): 3 evaluations
    toml = tmp_path / "one.toml"
    toml.write_text(
        'name = "one"\n[data]\nsources = ["ladder"]\ncaps = [450]\n'
        '[supervised]\nsizes = ["10k"]\nbudgets = [1e11]\n[selfplay]\nenabled = false\n'
        "[arena]\nsims = 0\ncheckpoints_per_run = 2\ntest_time_sims = [0, 2]\n"
        "[arena.games]\nmove_cap = 200\nworkers = 2\n"
        "[arena.schedule]\nneighbours = 1\nmax_rounds = 3\ngames_per_pair = 8\n"
    )
    forward = forward_flops_per_position(NAMED_SIZES["10k"])
    main_flops = 2 * (3 * 3 * 8) * 100 * (1 + 3) * forward  # players x games x moves x evals
    variant_flops = 1 * (3 * 4 * 8) * 100 * (3 + 3) * forward
    assert main(["study", "plan", str(toml), "--workdir", str(tmp_path / "wd")]) == 0
    printed = capsys.readouterr().out.splitlines()
    arena = [line for line in printed if line.startswith("arena")]
    assert arena[0].startswith(
        f"arena: 2 checkpoints at 0 simulations, at most 144 games (3 rounds x 3 opponents x 8 "
        f"games); at most {main_flops:.2g} network FLOPs, about {main_flops / 2e10:.0f} s on 2 "
        "workers x 1 CPU cores at 1e10 FLOP/s each if the network bound it"
    )
    assert arena[1].startswith(
        "arena, test-time search: 1 players (1 checkpoints ('last') x N in [2]), at most 96 "
        f"more games (3 rounds x 4 opponents x 8 games); at most {variant_flops:.2g} network "
        f"FLOPs, about {variant_flops / 2e10:.0f} s on 2 workers"
    )


@pytest.mark.slow
@pytest.mark.ray
def test_tiny_study_end_to_end_then_no_work(tmp_path: Path) -> None:
    workdir = tmp_path / "study"
    cmd = [sys.executable, "-m", "jobs.cli", "study", "run", str(TINY), "--workdir", str(workdir)]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert first.returncode == 0, first.stderr[-4000:]
    _check_terminal(first)
    for i, name in enumerate(stage_names(), 1):
        assert re.search(rf"^\[{i}/7\] {re.escape(name)} +#{{20}} .* \d+ s$", first.stdout, re.M), (
            first.stdout
        )
    assert "Elo/decade of FLOPs" in first.stdout  # the report's main answer, at the end
    report = workdir / "report"
    html = (report / "index.html").read_text()
    for figure in FIGURES:
        for ext in ("png", "svg"):
            assert (report / f"{figure}.{ext}").stat().st_size > 0
        assert f"{figure}.png" in html or f"{figure}.svg" in html
    with open(workdir / "registry" / "checkpoints.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["regime"] for r in rows} == {"supervised", "selfplay_cap", "selfplay_scratch"}
    with open(workdir / "ratings" / "ratings.csv") as f:
        ratings = {r["name"]: r for r in csv.DictReader(f)}
    assert float(ratings["random"]["rating"]) == 0.0
    assert all(r["agent"] in ratings for r in rows)
    for row in (r for r in rows if r["regime"] == "selfplay_cap"):  # the compute axis goes on
        study = json.loads((workdir / "runs" / row["run_id"] / "config.json").read_text())["study"]
        parent_run, parent_step = study["parent"].split("@")
        kept = {k["step"]: k["flops"] for k in list_checkpoints(workdir / "runs" / parent_run)}
        assert study["start_flops"] == kept[int(parent_step)] < float(row["flops"])
    fits = json.loads((report / "fits.json").read_text())
    assert fits
    from tests.test_report import _estimates  # every fitted parameter of the default: inside

    for e in _estimates(fits):
        if all(isinstance(e[k], float) and e[k] == e[k] for k in ("value", "lo", "hi")):
            assert e["lo"] - 1e-9 <= e["value"] <= e["hi"] + 1e-9, e
    assert "n/a" not in html
    _check_the_default_answers_its_question(workdir, fits)
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert second.returncode == 0, second.stderr[-4000:]
    _check_terminal(second)
    assert "ran nothing (all done)" in second.stdout
    for i, name in enumerate(stage_names(), 1):
        assert re.search(rf"^\[{i}/7\] {re.escape(name)} +done before$", second.stdout, re.M)


def _check_terminal(done: subprocess.CompletedProcess[str]) -> None:
    """The study's terminal: a short progress view, no third-party noise (it is in the log)."""
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) < 40, "\n".join(lines)
    for noise in ("WARNING", "Warning", "pid=", "Traceback", "absl", 'File "'):
        assert not any(noise in line for line in lines), "\n".join(lines)


def _check_the_default_answers_its_question(workdir: Path, fits: dict[str, Any]) -> None:
    """The default's own output (registry, ratings, fits.json) shows a compute-Elo law: the
    supervised slope's 90% interval is above 0, the frontier's last checkpoint is rated above
    its first (disjoint intervals), and the cap is placed on the arena's scale with an interval.
    (Self-play from the cap ending above its start is not asserted: at the default's budget it
    does not beyond the arena's noise in three runs of the default; issue 14.)"""
    from analysis.frontier import frontier
    from analysis.registry import load_study

    cap = load_study_config(TINY).data.caps[0]
    slope = fits["fits"][f"supervised cap {cap}"]["linear"]["params"]["b"]
    assert slope["lo"] > 0, slope
    study = frontier(load_study(workdir))
    sup = study[(study["regime"] == "supervised") & study["on_frontier"]].sort_values("flops")
    first, last = sup.iloc[0], sup.iloc[-1]
    assert last["elo_lo"] > first["elo_hi"], (first.to_dict(), last.to_dict())
    placed = fits["caps"][str(cap)]
    assert placed["not_placed"] is None and fits["scale"] == "Elo (random mover = 0)"
    assert placed["arena"]["lo"] < placed["arena"]["value"] < placed["arena"]["hi"]
