"""A run over two processes under jax.distributed (two local processes, one CPU device each,
gloo collectives) trains the parameters one process trains with the same global batch, counts
the same FLOPs, and its checkpoint restores in one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from data_pipeline.build import BuildConfig, build
from data_pipeline.filters import FilterConfig
from elocap.execution import COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV
from scaling import checkpoints
from scaling.config import TrainConfig, to_dict
from scaling.distributed import ProcessGroup, from_env
from scaling.model import NAMED_SIZES
from scaling.train import train
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"
REPO = Path(__file__).resolve().parents[1]

# One process of the run: joins the group from the gang's environment variables, as a Ray gang
# task does (scaling.sweep._trial), and trains.
PROCESS = """
import json, sys
from scaling import distributed
assert distributed.initialize(timeout_s=120) == 2
from scaling.config import TrainConfig, from_dict
from scaling.train import train
print(json.dumps(train(from_dict(TrainConfig, json.loads(sys.argv[1])))["flops_per_step"]))
"""


def test_process_group_from_the_environment() -> None:
    env = {COORDINATOR_ENV: "10.0.0.1:1234", NUM_PROCESSES_ENV: "4", PROCESS_ID_ENV: "3"}
    assert from_env(env) == ProcessGroup(coordinator="10.0.0.1:1234", num_processes=4, process_id=3)
    assert from_env({}) is None
    with pytest.raises(ValueError, match="must be set together"):
        from_env({COORDINATOR_ENV: "h:1"})
    with pytest.raises(ValueError, match=r"process_id 4 is not in 0\.\.3"):
        ProcessGroup(coordinator="h:1", num_processes=4, process_id=4)
    with pytest.raises(ValueError, match="host:port"):
        ProcessGroup(coordinator="h", num_processes=1, process_id=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def _params(run: Path) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(checkpoints.restore_state(run)[0]["params"])]


@pytest.mark.slow
def test_two_processes_train_what_one_trains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = BuildConfig(filters=FilterConfig(cap=None), chunk_games=500)
    build([str(data_file(SLICE))], data, cfg, use_ray=False, progress=False)

    def config(name: str) -> TrainConfig:
        return TrainConfig(
            data_dir=str(data),
            out_dir=str(tmp_path / name),
            model=NAMED_SIZES["10k"],
            batch_size=32,  # the global batch: 16 rows on each process's device
            steps=3,
            log_every=1,
            eval_batches=1,
            checkpoint_every=2,
        )

    coordinator = f"127.0.0.1:{_free_port()}"
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
            COORDINATOR_ENV: coordinator,
            NUM_PROCESSES_ENV: "2",
            PROCESS_ID_ENV: str(rank),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", PROCESS, json.dumps(to_dict(config("two")))],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    one = train(config("one"))  # meanwhile, the same run in this process (one device)
    outputs: list[Any] = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    flops = [float(out.strip().splitlines()[-1]) for out, _ in outputs]
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    plan = json.loads((tmp_path / "two" / "plan.json").read_text())
    assert plan["processes"] == 2 and plan["devices"] == 2
    # one compute axis: the same FLOPs per step on one device and on two processes
    assert flops == [one["flops_per_step"]] * 2 == [two["flops_per_step"]] * 2
    assert two["steps"] == one["steps"] == 3 and two["milestones"] == one["milestones"]
    # the same losses; the sum over the batch is split over processes, so the gradients (and
    # through Adam's normalisation, parameters whose gradients are ~0) differ in the last bits:
    # parameters agree to 1e-4 (a tenth of the learning rate; measured: ~5e-5)
    np.testing.assert_allclose(_losses(tmp_path / "one"), _losses(tmp_path / "two"), rtol=1e-5)
    for a, b in zip(_params(tmp_path / "one"), _params(tmp_path / "two"), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=config("one").optim.learning_rate * 0.1)
    # written by both processes, restored in this one (restore_state above); verified as written
    assert checkpoints.damaged_steps(tmp_path / "two", two["checkpoint_files"], [1, 2, 3]) == {}
