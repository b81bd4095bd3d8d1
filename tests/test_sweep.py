"""A sweep on a real local Ray cluster: 3 sizes x 2 budgets, one trial's worker killed mid-run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from data_pipeline.build import BuildConfig, build
from data_pipeline.filters import FilterConfig
from elocap.execution import RayExecutor
from scaling.config import OptimConfig
from scaling.sweep import SweepJob, format_status, run_configs, run_id, run_sweep, status_rows
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"


def _sweep(tmp_path: Path, data: Path) -> SweepJob:
    return SweepJob(
        out_dir=str(tmp_path / "runs"),
        data_dirs={"1800": str(data)},
        sizes=("10k", "30k", "100k"),
        budgets=(1e9, 3e9),
        batch_size=16,
        optim=OptimConfig(warmup_steps=2),
        checkpoint_every=2,
        log_every=1,
        eval_batches=1,
    )


def _manifest(data: Path, sha: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    manifest = {"config": {"cap": 1800}, "sources": [{"bytes": 10, "sha256": sha}]}
    (data / "manifest.json").write_text(json.dumps(manifest))


def test_run_configs_are_deterministic_data(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, tmp_path / "data")
    with pytest.raises(FileNotFoundError, match=r"manifest\.json does not exist"):
        run_configs(sweep)
    _manifest(tmp_path / "data", "aa")
    runs = run_configs(sweep)
    assert len(runs) == 6 and runs == run_configs(sweep)
    assert len({r.out_dir for r in runs}) == 6
    assert all(Path(r.out_dir).name.endswith(run_id(r)) for r in runs)
    assert {(r.info.cap, r.info.size, r.info.regime) for r in runs} == {
        (1800, s, "supervised") for s in ("10k", "30k", "100k")
    }
    # the same data elsewhere: the same ids; other data under the same path: other ids
    _manifest(tmp_path / "moved", "aa")
    moved = run_configs(dataclasses.replace(sweep, data_dirs={"1800": str(tmp_path / "moved")}))
    assert [run_id(r) for r in moved] == [run_id(r) for r in runs]
    _manifest(tmp_path / "data", "bb")
    assert not {run_id(r) for r in run_configs(sweep)} & {run_id(r) for r in runs}
    with pytest.raises(ValueError, match="unknown sizes"):
        SweepJob(out_dir="x", data_dirs={"1": "d"}, sizes=("7k",), budgets=(1.0,))
    with pytest.raises(ValueError, match="below one training step of size 10k"):
        SweepJob(out_dir="x", data_dirs={"1": "d"}, sizes=("10k",), budgets=(1.0,))


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_survives_a_killed_worker_and_reruns_nothing(
    tmp_path: Path, ray_cluster: None
) -> None:
    data = tmp_path / "data"
    build([str(data_file(SLICE))], data, BuildConfig(filters=FilterConfig(cap=1800)), use_ray=False)
    sweep = _sweep(tmp_path, data)
    runs = run_configs(sweep)
    victim = Path(runs[-1].out_dir)  # the largest model and budget: the longest trial

    killed: list[int] = []

    def kill_when_started() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            plan, metrics = victim / "plan.json", victim / "metrics.jsonl"
            if plan.exists() and metrics.exists() and metrics.read_text().count("\n") >= 2:
                pid = json.loads(plan.read_text())["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    results = run_sweep(sweep, RayExecutor(), progress=False)
    killer.join()
    assert killed, "the victim trial was never seen running"
    assert len(results) == 6 and all(r["steps"] >= 1 for r in results)
    assert json.loads((victim / "plan.json").read_text())["pid"] != killed[0]  # retried
    rows = status_rows(sweep)
    print(format_status(rows))
    assert all(r["state"] == "done" and r["progress"] == 1.0 for r in rows)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("result.json")}
    start = time.monotonic()
    again = run_sweep(sweep, RayExecutor(), progress=False)
    assert again == results and time.monotonic() - start < 5  # a second invocation: no work
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("result.json")}
