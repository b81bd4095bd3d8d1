"""Losing a machine: on a two-node Ray cluster on this host, a sweep survives the death of the
node that runs one of its trials and finishes every run with the parameters an undisturbed run
has (the trial is retried on the surviving node and resumes from its last checkpoint), and a
Ray-mode self-play run survives the death of its actor's node (the actor is restarted on a
replacement node and the run spends its whole budget, no iteration lost)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from data_pipeline.build import BuildConfig, build
from data_pipeline.filters import FilterConfig
from elocap.execution import InlineExecutor
from scaling import checkpoints
from tests.conftest import data_file

REPO = Path(__file__).resolve().parents[1]
SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"


def _cluster_run(what: str, out: Path, data: Path) -> dict:
    """``tests._node_loss <what>`` in a process of its own (it owns its Ray cluster)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests._node_loss", what, str(out), str(data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _params(run: Path) -> list[np.ndarray]:
    state, _ = checkpoints.restore_state(run)
    return [np.asarray(x) for x in jax.tree.leaves(state["params"])]


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_survives_the_death_of_a_node(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = BuildConfig(filters=FilterConfig(cap=2000), chunk_games=500)
    build([str(data_file(SLICE))], data, cfg, use_ray=False, progress=False)
    out = tmp_path / "runs"
    report = _cluster_run("sweep", out, data)
    assert report["killed"], "the worker node was never killed"
    runs = [Path(r) for r in report["runs"]]
    assert len(report["results"]) == len(runs) == 2
    for run in runs:
        assert (run / "result.json").exists()
    # the same sweep, undisturbed, in this process: every run's parameters are the same
    from tests._node_loss import sweep_job

    reference = sweep_job(tmp_path / "reference", data)
    from scaling.sweep import run_sweep

    run_sweep(reference, InlineExecutor(), progress=False)
    for run in runs:
        twin = tmp_path / "reference" / run.name
        for a, b in zip(_params(run), _params(twin), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_selfplay_survives_the_death_of_its_actor_s_node(tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = _cluster_run("selfplay", out, tmp_path)
    assert report["killed"], "the actor's node was never killed"
    result = report["result"]
    assert result["flops"] - result["start_flops"] >= 3e9  # the whole budget was spent
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, len(rows) + 1))  # none lost
