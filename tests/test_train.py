"""Supervised training on real shards: pulse, exact resume after SIGKILL, real learning, FLOPs."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from data_pipeline.build import BuildConfig, build
from data_pipeline.filters import FilterConfig
from scaling import checkpoints
from scaling.config import TrainConfig, load_train_config, to_dict
from scaling.model import NAMED_SIZES
from scaling.train import milestone_steps, train
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real shards of the 2021-10 slice (no cap: the most positions)."""
    out = tmp_path_factory.mktemp("data") / "slice"
    cfg = BuildConfig(filters=FilterConfig(cap=None), chunk_games=500)
    build([str(data_file(SLICE))], out, cfg, use_ray=False, progress=False)
    return out


def _cfg(shards: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "data_dir": str(shards),
        "out_dir": str(out),
        "model": NAMED_SIZES["10k"],
        "batch_size": 32,
        "steps": 2,
        "log_every": 1,
        "eval_batches": 1,
    }
    return TrainConfig(**{**base, **kw})


def _write_toml(cfg: TrainConfig, path: Path) -> None:
    def fmt(v: object) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    data = to_dict(cfg)
    lines = [
        f"{k} = {fmt(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None
    ]
    for table in ("model", "optim"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {fmt(v)}" for k, v in data[table].items()]
    path.write_text("\n".join(lines) + "\n")


def _params(run: Path) -> list[np.ndarray]:
    state, _ = checkpoints.restore_state(run)
    return [np.asarray(x) for x in jax.tree.leaves(state["params"])]


def test_pulse_two_steps_on_real_shards(shards: Path, tmp_path: Path) -> None:
    result = train(_cfg(shards, tmp_path / "run"))
    assert result["steps"] == 2 and result["flops"] == 2 * result["flops_per_step"]
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in rows)
    kept = checkpoints.list_checkpoints(tmp_path / "run")
    assert [k["step"] for k in kept] == [1, 2] and kept[-1]["flops"] == result["flops"]
    ratio = result["flops_per_step"] / result["analytic_flops_per_step"]
    print(f"XLA / analytic FLOPs per train step: {ratio:.3f}")
    assert 0.8 <= ratio <= 1.2
    # a second call does no work
    assert train(_cfg(shards, tmp_path / "run")) == result


def test_milestones_are_log_spaced_and_at_least_16() -> None:
    for total in (17, 100, 10_000, 10**7):
        steps = milestone_steps(total, 16)
        assert len(steps) >= 16 and steps == sorted(set(steps))
        assert steps[0] == 1 and steps[-1] == total
        if total >= 10_000:  # evenly spaced in log FLOPs (proportional to steps), up to rounding
            even = np.linspace(0, np.log(total), len(steps))
            assert np.abs(np.log(steps) - even).max() < 0.35, steps
    assert milestone_steps(5, 16) == [1, 2, 3, 4, 5]


def test_config_file_round_trip_and_errors(shards: Path, tmp_path: Path) -> None:
    cfg = _cfg(shards, tmp_path / "run", budget_flops=1e9, steps=None)
    _write_toml(cfg, tmp_path / "c.toml")
    assert load_train_config(tmp_path / "c.toml") == cfg
    (tmp_path / "bad.toml").write_text(
        'data_dir = "x"\nout_dir = "y"\nsteps = 3\n[model]\nwidht = 8\n'
    )
    with pytest.raises(ValueError, match="widht"):
        load_train_config(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="exactly one"):
        dataclasses.replace(cfg, steps=5)


@pytest.mark.slow
def test_sigkill_resume_is_bitwise_equal(shards: Path, tmp_path: Path) -> None:
    steps = 40
    kw = {"steps": steps, "checkpoint_every": 3, "log_every": 2, "milestones": 4}
    reference = train(_cfg(shards, tmp_path / "ref", **kw))
    killed = _cfg(shards, tmp_path / "killed", **kw)
    _write_toml(killed, tmp_path / "killed.toml")
    kill_at = random.Random(os.getpid()).randint(8, 30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "train", str(tmp_path / "killed.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        if any(json.loads(x)["step"] >= kill_at for x in lines if x.endswith("}")):
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "result.json").exists(), "killed too late"
    resumed = train(killed)
    assert resumed["flops"] == reference["flops"]
    for a, b in zip(_params(tmp_path / "ref"), _params(tmp_path / "killed"), strict=True):
        assert np.array_equal(a, b)
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    train_steps = [r["step"] for r in rows if r["split"] == "train"]
    assert train_steps == list(range(2, steps + 1, 2))  # no gap, no duplicate
    print(f"killed at step >= {kill_at}, resumed to {steps}: parameters bitwise equal")


@pytest.mark.slow
def test_learning_beats_uniform_and_most_frequent_move(shards: Path, tmp_path: Path) -> None:
    from data_pipeline.encoding_jax import legal_action_mask_from_obs
    from data_pipeline.loader import LoaderConfig, dataset

    cfg = _cfg(shards, tmp_path / "run", steps=400, log_every=50, batch_size=64, eval_batches=1)
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, learning_rate=3e-3))
    train(cfg)
    val = list(dataset(shards, "val", LoaderConfig(batch_size=1, shuffle=False, num_epochs=1)))
    obs = np.concatenate([b["obs"] for b in val])
    actions = np.concatenate([b["action"] for b in val])
    legal = np.asarray(jax.jit(jax.vmap(legal_action_mask_from_obs))(obs))
    assert legal[np.arange(len(actions)), actions].all()
    uniform = float(np.mean(1.0 / legal.sum(1)))
    train_actions = np.concatenate(
        [
            b["action"]
            for b in dataset(
                shards, "train", LoaderConfig(batch_size=1, shuffle=False, num_epochs=1)
            )
        ]
    )
    most_frequent = int(np.bincount(train_actions).argmax())
    frequent_acc = float(np.mean(actions == most_frequent))
    from scaling.model import PolicyValueNet

    params = _restore_params_tree(tmp_path / "run")
    net = PolicyValueNet(cfg.model)
    policy, _ = jax.jit(lambda o, m: net.apply({"params": params}, o, None, m))(obs, legal)
    model_acc = float(np.mean(np.asarray(policy).argmax(-1) == actions))
    print(
        f"val positions {len(actions)}: model {model_acc:.3f}, uniform over legal {uniform:.3f}, "
        f"most frequent move {frequent_acc:.3f}"
    )
    assert model_acc > uniform and model_acc > frequent_acc


def _restore_params_tree(run: Path) -> object:
    return checkpoints.restore_state(run)[0]["params"]


@pytest.mark.slow
def test_data_parallel_over_two_devices_matches_one(shards: Path, tmp_path: Path) -> None:
    """The batch splits over a 2-device mesh (two host CPU devices) and trains the same model;
    its checkpoint, saved from two devices, restores on one."""
    one = _cfg(shards, tmp_path / "one", steps=3)
    two = _cfg(shards, tmp_path / "two", steps=3)
    _write_toml(two, tmp_path / "two.toml")
    train(one)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    script = (
        "import jax, sys; assert len(jax.local_devices()) == 2, jax.local_devices();"
        "from jobs.cli import main; sys.exit(main(['train', sys.argv[1]]))"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "two.toml")], env=env, check=True)

    def losses(run: str) -> list[float]:
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["split"] == "train"]

    np.testing.assert_allclose(losses("one"), losses("two"), rtol=1e-5)
    # Adam normalises each update, so parameters whose gradients are ~0 may move by up to the
    # learning rate in either direction when the sum over the batch is split over devices.
    for a, b in zip(_params(tmp_path / "one"), _params(tmp_path / "two"), strict=True):
        np.testing.assert_allclose(a, b, atol=one.optim.learning_rate * 0.1)
