"""The self-play learning loop: start from a checkpoint, FLOP accounting, exact resume after
SIGKILL, configs rejected before anything starts, and the Ray mode with 2 actors and a learner
(its actors' deaths bounded, Ray started by the caller)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from mcts.loop import (
    SelfPlayRunConfig,
    milestone_flops,
    run_selfplay,
    save_start,
    starting_point,
)
from mcts.run_config import check_config
from mcts.search import SearchConfig
from scaling import checkpoints
from scaling.model import NAMED_SIZES


def _cfg(out: Path, init: str = "", **kw: Any) -> SelfPlayRunConfig:
    base = SelfPlayRunConfig(
        out_dir=str(out),
        init_run=init,
        model=NAMED_SIZES["10k"],
        search=SearchConfig(num_simulations=4),
        games=4,
        max_plies=16,
        train_batch=16,
        budget_flops=1.5e9,
        milestones=3,
    )
    return dataclasses.replace(base, **kw)


def _leaves(tree: object) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_game_ends_are_alphazero_s_by_default() -> None:
    """Play to the rules' end under a 512-ply cap, resign by root value with 10% of games
    played out, no material adjudication."""
    from mcts.run_config import selfplay_config

    sp = selfplay_config(SelfPlayRunConfig(out_dir="x"))
    assert (sp.max_plies, sp.resign_value, sp.no_resign_fraction) == (512, -0.9, 0.1)
    assert sp.adjudicate_margin is None and sp.temperature_plies == 512  # Gumbel noise throughout


def test_cosine_schedule_spans_the_budget() -> None:
    from mcts.run_config import planned_steps

    cfg = SelfPlayRunConfig(out_dir="x", budget_flops=1e12, train_batch=64, replay_ratio=1.0)
    # per step: 1e8 of training + 64 positions x 2 searches x 33 evaluations x 1e5
    assert planned_steps(cfg, 1e8, 1e5, 2.0) == int(1e12 / (1e8 + 64 * 2 * 33 * 1e5))
    assert planned_steps(dataclasses.replace(cfg, lr_schedule="constant"), 1e8, 1e5) is None


def test_milestones_double_up_to_the_budget() -> None:
    assert milestone_flops(100.0, 8.0, 4) == [101.0, 102.0, 104.0, 108.0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("games", 0),
        ("max_plies", 0),
        ("train_batch", 0),
        ("replay_capacity", 0),
        ("replay_ratio", 0.0),
        ("budget_flops", -1.0),
        ("milestones", 0),
        ("resume_every", 0),
        ("actors", -1),
        ("broadcast_every", 0),
        ("max_actor_failures", 0),
        ("adjudicate_margin", 0),
        ("init_step", -1),
        ("dtype", "float16"),
        ("resign_value", 2.0),  # checked by the games' own config
        ("no_resign_fraction", 1.5),
        ("opening_plies", -1),
        ("value_target_mix", 1.5),
        ("replay_games", 0),
        ("lr_schedule", "linear"),
        ("learner_gpus", -1.0),
        ("actor_cpus", -0.5),
        ("max_learner_failures", 0),
        ("iteration_plies", 0),
        ("continuous", "yes"),
        ("resign_calibrate", 1),
        ("resign_target", 1.5),
        ("resign_window", 0),
        ("resign_min_events", 0),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(field: str, value: object) -> None:
    kw: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        _cfg(Path("unused"), **kw)


@pytest.mark.slow
def test_continues_from_exactly_the_checkpoint(tiny_run: Path, tmp_path: Path) -> None:
    state, meta = checkpoints.restore_state(tiny_run)
    start = starting_point(_cfg(tmp_path / "sp", str(tiny_run)))
    assert start.flops == meta["flops"] > 0
    for a, b in zip(_leaves(start.params), _leaves(state["params"]), strict=True):
        assert np.array_equal(a, b)
    # the starting point saved as a run of its own (for the arena) is that checkpoint too
    saved = save_start(_cfg(tmp_path / "sp", str(tiny_run)), tmp_path / "start")
    saved_state, saved_meta = checkpoints.restore_state(saved)
    assert saved_meta["flops"] == meta["flops"] and saved_meta["step"] == 0
    for a, b in zip(_leaves(saved_state["params"]), _leaves(state["params"]), strict=True):
        assert np.array_equal(a, b)
    assert save_start(_cfg(tmp_path / "sp", str(tiny_run)), tmp_path / "start") == saved
    with pytest.raises(ValueError, match="holds the start"):  # not another start's directory
        save_start(_cfg(tmp_path / "sp"), tmp_path / "start")
    result = run_selfplay(_cfg(tmp_path / "sp", str(tiny_run)), progress=False)
    assert result["start_flops"] == meta["flops"]
    assert result["flops"] >= meta["flops"] + 1.5e9
    config = json.loads((tmp_path / "sp" / "config.json").read_text())
    assert config["study"]["parent"] == f"{tiny_run.name}@{meta['step']}"
    rows = [json.loads(x) for x in (tmp_path / "sp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, result["iterations"] + 1))
    assert all(b["flops"] > a["flops"] for a, b in itertools.pairwise(rows))
    kept = checkpoints.list_checkpoints(tmp_path / "sp")
    assert kept[-1]["flops"] == result["flops"] and len(kept) >= 2
    assert all(k["flops"] > meta["flops"] for k in kept)
    # the same run again does no work; with another config it is not that config's result
    # (one line naming the field), with other resource requests it is
    assert run_selfplay(_cfg(tmp_path / "sp", str(tiny_run)), progress=False) == result
    other = _cfg(
        tmp_path / "sp", str(tiny_run), search=SearchConfig(num_simulations=4, value_scale=1.0)
    )
    with pytest.raises(
        ValueError, match=r"sp holds a self-play run started with another config \(search differ\)"
    ):
        run_selfplay(other, progress=False)
    more = _cfg(tmp_path / "sp", str(tiny_run), learner_cpus=2.0)
    assert run_selfplay(more, progress=False) == result


_RUN = """
import sys
from pathlib import Path
from tests.test_loop import _cfg
from mcts.loop import run_selfplay
run_selfplay(_cfg(Path(sys.argv[1]), budget_flops=2.5e9, max_plies=12), progress=False)
"""


@pytest.mark.slow
def test_sigkill_resume_is_bitwise_equal(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-c", _RUN, str(whole)], check=True, env=env)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(cut)], env=env, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (cut / "resume" / "2").exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "result.json").exists(), "the kill should land mid-run"
    with pytest.raises(ValueError, match=r"another config \(games, optim differ\)"):
        lr = dataclasses.replace(_cfg(cut).optim, learning_rate=1e-2)
        check_config(_cfg(cut, budget_flops=2.5e9, max_plies=12, games=5, optim=lr))
    # from random init the model is the config's own: another one is another run
    with pytest.raises(ValueError, match=r"another config \(model differ\)"):
        check_config(_cfg(cut, budget_flops=2.5e9, max_plies=12, model=NAMED_SIZES["30k"]))
    check_config(_cfg(cut, budget_flops=2.5e9, max_plies=12, actor_cpus=2.0))  # may change
    subprocess.run([sys.executable, "-c", _RUN, str(cut)], check=True, env=env)
    a, b = (json.loads((d / "result.json").read_text()) for d in (whole, cut))
    # the checkpoint manifests hold mtimes, orbax's timestamped metadata and its random ocdbt
    # file names: the same checkpoint steps (their parameters are compared bitwise below)
    run_local = ("pid", "host", "checkpoint_files")
    assert {k: a[k] for k in a if k not in run_local} == {k: b[k] for k in b if k not in run_local}
    steps = [{f.split("/")[1] for f in r["checkpoint_files"]} for r in (a, b)]
    assert steps[0] == steps[1]
    pa, _ = checkpoints.restore_state(whole)
    pb, _ = checkpoints.restore_state(cut)
    for x, y in zip(_leaves(pa), _leaves(pb), strict=True):
        assert np.array_equal(x, y)
    assert (whole / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_mode_two_actors_and_a_learner(ray_cluster: None, tmp_path: Path) -> None:
    result = run_selfplay(
        _cfg(tmp_path / "ray", actors=2, broadcast_every=1, budget_flops=2e9), progress=False
    )
    assert result["iterations"] >= 2 and result["steps"] > 0
    assert result["flops"] >= 2e9 and result["start_flops"] == 0.0
    kept = checkpoints.list_checkpoints(tmp_path / "ray")
    assert kept and kept[-1]["flops"] == result["flops"]


_NO_RAY = """
import sys
from pathlib import Path
from tests.test_loop import _cfg
from mcts.loop import run_selfplay
try:
    run_selfplay(_cfg(Path(sys.argv[1]), actors=1), progress=False)
except RuntimeError as e:
    print(e)
    sys.exit(3)
"""


@pytest.mark.slow
def test_ray_mode_without_ray_is_a_clear_error(tmp_path: Path) -> None:
    """Library code does not start Ray: the caller must (a fresh process, where none runs)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _NO_RAY, str(out)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "must start or join" in proc.stdout
    assert not out.exists()  # refused before writing anything


@pytest.mark.slow
@pytest.mark.ray
def test_ray_mode_stops_after_max_actor_failures(ray_cluster: None, tmp_path: Path) -> None:
    """Actors that die on every batch stop the run at the configured count of deaths, with the
    actor's error in the message, instead of resubmitting for ever."""
    from mcts.loop_ray import ActorFailuresError, SelfPlayActor, run_selfplay_ray

    class DyingActor(SelfPlayActor):  # defined here: Ray pickles it by value
        def play(self, params: Any) -> tuple[Any, int]:
            os._exit(7)

    cfg = _cfg(tmp_path / "dies", actors=2, max_actor_failures=3)
    started = time.monotonic()
    with pytest.raises(ActorFailuresError, match=r"died 3 times.*error \(ActorDiedError\)") as info:
        run_selfplay_ray(cfg, progress=False, actor_cls=DyingActor)
    print(f"stopped after {time.monotonic() - started:.1f} s: {str(info.value)[:300]}")
    assert not (tmp_path / "dies" / "result.json").exists()
    rows = (tmp_path / "dies" / "metrics.jsonl").read_text()
    assert rows == ""  # no batch was ever absorbed


@pytest.mark.slow
def test_selfplay_command_from_toml(tiny_run: Path, tmp_path: Path) -> None:
    from jobs.cli import main

    config = tmp_path / "sp.toml"
    config.write_text(
        f'out_dir = "{tmp_path / "run"}"\ninit_run = "{tiny_run}"\ngames = 4\nmax_plies = 12\n'
        "train_batch = 16\nbudget_flops = 1e9\nmilestones = 2\n"
        '[search]\nkind = "alphazero"\nnum_simulations = 4\n'
    )
    assert main(["selfplay", str(config), "--no-progress"]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["parent"].startswith(tiny_run.name + "@")
    config.write_text(config.read_text().replace("games = 4", "games = 0"))
    assert main(["selfplay", str(config)]) == 2  # a clear error, not a traceback
    config.write_text(config.read_text().replace("games = 0", "gamez = 4"))
    assert main(["selfplay", str(config)]) == 2


_PLACEMENT = """
import json, os, sys
from pathlib import Path
import ray
from tests.test_loop import _cfg
from mcts.loop_ray import run_selfplay_ray

ray.init(address="local", num_cpus=3, num_gpus=1, include_dashboard=False, logging_level="ERROR")
seen = {}

def look(learner):
    seen["learner"] = ray.get(learner.placement.remote())
    seen["free"] = ray.available_resources()

cfg = _cfg(Path(sys.argv[1]), actors=1, learner_gpus=1.0, learner_cpus=1.0, budget_flops=1e9)
result = run_selfplay_ray(cfg, progress=False, on_learner=look)
seen["result"] = result
seen["driver"] = os.getpid()
print("PLACED " + json.dumps(seen, default=str))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_learner_is_placed_on_the_resource_it_asked_for(tmp_path: Path) -> None:
    """A real local cluster declaring 3 CPUs and 1 GPU (on this CPU machine): the learner actor
    asks for the GPU and gets it (Ray's assignment inside the actor, GPU id 0), the self-play
    actors ask for CPUs only, and the run completes with the learner in its own process."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", _PLACEMENT, str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.split("PLACED ", 1)[1])
    learner = seen["learner"]
    assert learner["assigned"].get("GPU") == 1.0 and learner["assigned"].get("CPU") == 1.0
    assert learner["gpu_ids"] == ["0"]
    assert learner["pid"] != seen["driver"] and learner["pid"] == seen["result"]["pid"]
    assert seen["free"].get("GPU", 0.0) == 0.0  # the learner holds the only GPU
    assert seen["result"]["flops"] >= 1e9 and seen["result"]["steps"] > 0


@pytest.mark.slow
@pytest.mark.ray
def test_learner_sigkilled_mid_run_resumes_without_losing_an_iteration(
    ray_cluster: None, tmp_path: Path
) -> None:
    """SIGKILL of the learner's process while it absorbs its 3rd batch: Ray restarts it, it
    resumes from its resume checkpoint, the driver sends the batches since then again, and the
    run completes its budget with every iteration in metrics.jsonl exactly once."""
    from mcts.loop_ray import LearnerActor, run_selfplay_ray

    marker = tmp_path / "killed"

    class KilledOnce(LearnerActor):  # defined here: Ray pickles it by value
        def absorb(self, iteration: int, traj: Any, evaluations: int) -> dict[str, Any]:
            if iteration == 3 and not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return super().absorb(iteration, traj, evaluations)

    cfg = _cfg(tmp_path / "run", actors=1, budget_flops=2.5e9, max_plies=12)
    result = run_selfplay_ray(cfg, progress=False, learner_cls=KilledOnce)
    assert marker.exists(), "the learner was not killed"
    assert result["pid"] != int(marker.read_text())  # finished by the restarted learner
    assert result["flops"] >= 2.5e9 and result["iterations"] > 3
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, result["iterations"] + 1))
    assert all(b["flops"] > a["flops"] for a, b in itertools.pairwise(rows))
    assert all(r["games"] == cfg.games for r in rows)
