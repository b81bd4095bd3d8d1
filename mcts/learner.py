"""The pieces of a self-play run that both modes share (``mcts.loop`` runs in one process,
``mcts.loop_ray`` with Ray actors): the starting point, the learner (train state, its compiled
step, the replay buffer), the run's files, its counters, and ``absorb``, one iteration after a
batch of games. The learner's step is ``scaling.make_train_step``: the supervised step, at the
run's compute dtype, data parallel over every local device.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from elocap.files import atomic_write_text
from mcts.corpus import Corpus, concat
from mcts.replay_buffer import ReplayBuffer
from mcts.resign import ResignCalibrator
from mcts.run_config import SelfPlayRunConfig, check_config, planned_steps
from mcts.selfplay import game_ends
from mcts.stream import Stream
from scaling import checkpoints, flops
from scaling.batch import TrainBatch
from scaling.config import ModelConfig, to_dict
from scaling.model import init_params
from scaling.step import TrainStep, make_train_step

log = logging.getLogger(__name__)

__all__ = [
    "Learner",
    "Progress",
    "RunFiles",
    "Start",
    "absorb",
    "finish_run",
    "milestone_flops",
    "progress_bar",
    "restore",
    "save_start",
    "starting_point",
    "write_config",
]


@dataclasses.dataclass
class Start:
    model: ModelConfig
    params: Any
    flops: float  # cumulative FLOPs of the starting point
    parent: str  # "<run>@<step>" or "" for a random initialisation


def starting_point(cfg: SelfPlayRunConfig) -> Start:
    """The parameters and FLOPs the run continues from."""
    if not cfg.init_run:
        params = init_params(cfg.model, jax.random.key(cfg.seed))
        return Start(cfg.model, params, 0.0, "")
    from mcts.agents import load_network

    model, params, meta, step = load_network(Path(cfg.init_run), cfg.init_step)
    return Start(model, params, float(meta["flops"]), f"{Path(cfg.init_run).name}@{step}")


def save_start(cfg: SelfPlayRunConfig, run: Path) -> Path:
    """The run's starting point as a run directory of its own (``config.json`` with the model
    and where the start came from, one checkpoint at step 0 with the start's FLOPs), so the
    arena can rate where a run began. Returns ``run``; one already saved for the same start is
    kept, one saved for another start is an error."""
    origin: dict[str, Any] = {
        "init_run": cfg.init_run,
        "init_step": cfg.init_step,
        "seed": cfg.seed,
    }
    if not cfg.init_run:
        origin["model"] = to_dict(cfg.model)
    if (run / "checkpoints").exists():
        saved = json.loads((run / "config.json").read_text()).get("start")
        if saved != origin:
            raise ValueError(f"{run} holds the start {saved}, not {origin}")
        return run
    start = starting_point(cfg)
    run.mkdir(parents=True, exist_ok=True)
    config = {"model": to_dict(start.model), "start": origin}
    atomic_write_text(run / "config.json", json.dumps(config))
    mgr = checkpoints.manager(run / "checkpoints", [])
    checkpoints.save(mgr, 0, {"params": start.params}, None, start.flops)
    mgr.close()
    return run


# Searches per stored position in a batch of full-length games (finished games search on while
# the batch's longest plays; measured 1.8-2.2 with the 512-ply cap from random init, 32 games);
# continuous self-play (mcts.stream) searches once per stored position.
# Only the cosine schedule's length reads it: too high ends the decay early (the floor holds).
SEARCH_PER_POSITION = 2.0


def milestone_flops(start: float, budget: float, count: int) -> list[float]:
    """Cumulative FLOPs of the kept checkpoints: the added FLOPs double up to the budget."""
    return [start + budget * 2.0 ** -(count - 1 - i) for i in range(count)]


class Learner:
    """The train state, its compiled step and the replay buffer."""

    def __init__(self, cfg: SelfPlayRunConfig, start: Start) -> None:
        self.cfg = cfg
        self.eval_flops = flops.forward_flops_per_position(start.model)  # per evaluation
        step_flops = flops.train_flops_per_position(start.model) * cfg.train_batch
        per_position = 1.0 if cfg.continuous else SEARCH_PER_POSITION
        self.total_steps = planned_steps(cfg, step_flops, self.eval_flops, per_position)
        self.fns: TrainStep = make_train_step(
            start.model,
            cfg.optim,
            total_steps=self.total_steps,  # the cosine's end: the steps the budget pays for
            spec=ReplayBuffer.batch_spec(cfg.train_batch),
            dtype=cfg.dtype,
        )
        self.net = self.fns.net
        self.state = self.fns.init(start.params, jax.random.key_data(jax.random.key(cfg.seed)))
        self.replay = ReplayBuffer.empty(
            cfg.replay_capacity, cfg.replay_games, cfg.value_target_mix
        )
        self.corpus: Corpus | None = None  # rows of the capped data mixed into each batch
        self.corpus_rows = 0
        if cfg.corpus_mix > 0:
            self.corpus = Corpus.of(cfg)
            self.corpus_rows = min(
                cfg.train_batch - 1, max(1, round(cfg.corpus_mix * cfg.train_batch))
            )
        self.resign: ResignCalibrator | None = None  # the calibrated threshold (mcts.resign)
        if cfg.resign_value is not None and cfg.resign_calibrate:
            self.resign = ResignCalibrator(
                target=cfg.resign_target,
                window=cfg.resign_window,
                min_events=cfg.resign_min_events,
                value=cfg.resign_value,
            )

    def resign_value(self) -> float | None:
        """The resignation threshold in force (None: resignation off)."""
        return self.resign.value if self.resign is not None else self.cfg.resign_value

    def batch(self, rng: np.random.Generator) -> TrainBatch:
        """One learner batch on the host: replay rows, then ``corpus_rows`` of the corpus."""
        rows = self.replay.sample(rng, self.cfg.train_batch - self.corpus_rows)
        if self.corpus is None:
            return rows
        return concat(rows, self.corpus.sample(rng, self.corpus_rows))

    def train(self, rng: np.random.Generator, steps: int) -> dict[str, float]:
        metrics: Any = {}
        for _ in range(steps):
            batch = self.fns.put(self.batch(rng))
            self.state, metrics = self.fns.train_step(self.state, batch)
        return {k: float(v) for k, v in metrics.items()}


def write_config(cfg: SelfPlayRunConfig, start: Start) -> None:
    """Writes the run's config.json, after ``check_config``."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(to_dict(cfg), default=str))
    data["model"] = to_dict(start.model)
    data["study"] = {**cfg.study, "parent": start.parent, "start_flops": start.flops}
    check_config(cfg, data)
    atomic_write_text(out / "config.json", json.dumps(data, indent=1, default=str))


class RunFiles:
    """The run's checkpoints (milestones and resume) and metrics."""

    def __init__(self, cfg: SelfPlayRunConfig, start: Start) -> None:
        from scaling.train import MetricsLog

        out = Path(cfg.out_dir)
        self.targets = milestone_flops(start.flops, cfg.budget_flops, cfg.milestones)
        self.kept = ocp.CheckpointManager(  # every milestone is kept
            (out / "checkpoints").absolute(),
            options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False),
            item_names=("state", "meta"),
        )
        self.resume = checkpoints.manager(out / "resume", [])  # the latest only
        self.resumed = self.resume.latest_step()  # an iteration, or None
        self.metrics = MetricsLog(
            out / "metrics.jsonl", keep_through=self.resumed or 0, key="iteration"
        )

    def milestone(self, it: int, params: Any, step: int, before: float, after: float) -> None:
        """Keeps the parameters if this iteration crossed a milestone (the last one included)."""
        if any(before < t <= after for t in self.targets) or after >= self.targets[-1]:
            checkpoints.save(self.kept, it, {"params": params}, None, after, {"learner_step": step})

    def close(self) -> None:
        self.metrics.close()
        self.kept.close()
        self.resume.close()


@dataclasses.dataclass
class Progress:
    """The loop's counters (checkpointed with the learner and the replay buffer)."""

    key: jax.Array  # the self-play PRNG key (single-process mode)
    iteration: int = 0
    generated: int = 0  # positions added to the replay buffer
    trained: int = 0  # positions sampled by train steps
    flops: float = 0.0  # cumulative, from the starting checkpoint's


def restore(
    learner: Learner, files: RunFiles, progress: Progress, stream: Stream | None = None
) -> Progress:
    """The loop as its latest resume checkpoint left it (``progress`` if there is none); the
    single-process mode's ``stream`` gets its games in play back."""
    if files.resumed is None:
        return progress
    restored = files.resume.restore(
        files.resumed,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_loop_tree(learner, progress.key, stream)),
            meta=ocp.args.JsonRestore(),
        ),
    )
    learner.state = restored.state["train"]
    if learner.resign is not None:
        learner.resign.load(restored.state["resign"])
    if stream is not None:
        stream.load(restored.state["stream"])
    for name, value in restored.state["replay"].items():
        setattr(learner.replay, name, np.asarray(value))
    m = restored.meta
    learner.replay.size, learner.replay.head = m["replay_size"], m["replay_head"]
    learner.replay.games = m["replay_games"]
    key = jax.random.wrap_key_data(restored.state["key"])
    return Progress(key, m["iteration"], m["generated"], m["trained"], m["flops"])


def absorb(
    learner: Learner,
    files: RunFiles,
    p: Progress,
    traj: Any,
    evaluations: int,
    end: float,
    stream: Stream | None = None,
) -> bool:
    """One iteration after a batch of games: replay, training to the ratio, FLOPs, metrics,
    milestones and the resume checkpoint (``p`` is updated in place; with the single-process
    mode's ``stream``, its games in play too). Returns whether the resume checkpoint was written
    (this iteration survives the learner's death)."""
    cfg = learner.cfg
    p.iteration += 1
    before = p.flops
    p.generated += learner.replay.add(traj)
    played_at = learner.resign_value()  # the threshold these games were played with
    if learner.resign is not None:
        learner.resign.add(traj)
        learner.resign.update()
    p.flops += evaluations * learner.eval_flops
    steps = max(0, int(cfg.replay_ratio * p.generated) - p.trained) // cfg.train_batch
    rng = np.random.default_rng([cfg.seed, p.iteration])
    metrics = learner.train(rng, steps) if steps else {}
    p.trained += steps * cfg.train_batch
    p.flops += steps * learner.fns.flops_per_step
    step = int(learner.state.step)
    searched = evaluations // (cfg.search.num_simulations + 1)
    row = _row(p.iteration, step, p.flops, traj, cfg.resign_value is not None, metrics, searched)
    row["resign_value"], row["resign_value_next"] = played_at, learner.resign_value()
    files.metrics.write(row)
    files.milestone(p.iteration, learner.state.params, step, before, p.flops)
    if p.iteration % cfg.resume_every == 0 or p.flops >= end:
        meta = {
            "iteration": p.iteration,
            "generated": p.generated,
            "trained": p.trained,
            "flops": p.flops,
            "replay_size": learner.replay.size,
            "replay_head": learner.replay.head,
            "replay_games": learner.replay.games,
        }
        files.resume.save(
            p.iteration,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_loop_tree(learner, p.key, stream)),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        return True
    return False


def finish_run(cfg: SelfPlayRunConfig, learner: Learner, start: Start, p: Progress) -> dict:
    result = {
        "iterations": p.iteration,
        "steps": int(learner.state.step),
        "generated": p.generated,
        "trained": p.trained,
        "flops": p.flops,
        "start_flops": start.flops,
        "parent": start.parent,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "checkpoint_files": checkpoints.checkpoint_files(Path(cfg.out_dir)),
    }
    atomic_write_text(Path(cfg.out_dir) / "result.json", json.dumps(result, indent=1))
    return result


def repair_finished(out: Path, result: dict[str, Any]) -> bool:
    """False when the finished run's kept checkpoints are all as written. Otherwise says which
    is damaged and clears the run's checkpoints, resume state, metrics and result, so that it
    runs again from its start (its milestones carry no loop state to resume from; on CPU with
    ``actors = 0`` the rerun is bitwise the same run), and returns True."""
    bad = checkpoints.damaged_steps(out, result.get("checkpoint_files"), [])
    if not bad:
        return False
    log.warning(
        "%s; running self-play run %s again from its start", next(iter(bad.values())), out.name
    )
    for name in ("checkpoints", "resume"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("metrics.jsonl", "result.json"):
        (out / name).unlink(missing_ok=True)
    return True


def _loop_tree(learner: Learner, key: jax.Array, stream: Stream | None) -> dict[str, Any]:
    tree = {
        "train": learner.state,
        "replay": learner.replay.arrays(),
        "key": jax.random.key_data(key),
    }
    if learner.resign is not None:
        tree["resign"] = learner.resign.arrays()
    return tree if stream is None else {**tree, "stream": stream.tree()}


def _row(
    it: int,
    step: int,
    total: float,
    traj: Any,
    resigning: bool,
    metrics: dict[str, float],
    searched: int,
) -> dict[str, Any]:
    """The iteration's metrics row (continuous self-play may finish no game in an iteration:
    its game means are then None). ``searched``: positions searched, stored or not."""
    length = np.asarray(traj.length)
    result = np.asarray(traj.result)
    ends = game_ends(traj, resigning)
    games = len(length)
    return {
        "split": "train",
        "iteration": it,
        "step": step,
        "flops": total,
        "game_length": float(length.mean()) if games else None,
        "white_wins": float((result > 0).mean()) if games else None,
        "draws": float((result == 0).mean()) if games else None,
        # counts of games this iteration, by how they ended
        **dataclasses.asdict(ends),
        "rule_draws": ends.rule_draws,
        "false_resignation_rate": ends.false_resignation_rate,
        "searched_per_position": searched / int(length.sum()) if games else None,
        **metrics,
    }


def progress_bar(cfg: SelfPlayRunConfig, done: float, show: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(
        total=cfg.budget_flops,
        desc=f"self-play {Path(cfg.out_dir).name}",
        unit="FLOP",
        unit_scale=True,
        disable=not show,
    )
    bar.update(done)
    return bar
