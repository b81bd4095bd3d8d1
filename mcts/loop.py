"""Self-play and learning on the compute axis of the study (contract 2).

A run starts from a supervised checkpoint (its parameters and its cumulative FLOPs) or from a
random initialisation (the control, at 0 FLOPs). Each iteration plays a batch of games with
search (``mcts.selfplay``), adds their positions to the replay buffer, and trains with the
supervised train step (``scaling.train``) until samples trained / samples generated reaches the
configured ratio. The FLOP counter adds every network evaluation made by search (analytic
forward FLOPs per position) and every train step (XLA's count of the compiled step).

Run directory (read by the arena and the analysis like a supervised run's):
    config.json   the resolved SelfPlayRunConfig, with "model" and "study" (cap, parent)
    metrics.jsonl one row per iteration
    checkpoints/  orbax: parameters at log-spaced cumulative-FLOP milestones (and the last),
                  numbered by iteration
    resume/       orbax: the whole loop state (train state, replay, counters, keys), latest only
    result.json   written when the budget is spent

With ``actors = 0`` everything runs in this process and a run resumed after SIGKILL continues
bitwise identically (on CPU); with ``actors >= 1`` self-play runs in Ray actors that receive the
learner's parameters every ``broadcast_every`` learner steps (``mcts.loop_ray``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from data_pipeline.files import atomic_write_text
from mcts.env import REASONS
from mcts.replay import BATCH_FIELDS, ReplayBuffer
from mcts.search import SearchConfig
from mcts.selfplay import SelfPlayConfig
from scaling import checkpoints, flops
from scaling.config import ModelConfig, OptimConfig, TrainConfig, to_dict
from scaling.model import PolicyValueNet, init_params


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelfPlayRunConfig:
    """A self-play run: where it starts, how it plays, how it learns, how much compute."""

    out_dir: str  # the run's directory
    init_run: str = ""  # a supervised (or self-play) run to continue; "": random init
    init_step: int | None = None  # its checkpoint; None: its last
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # random init only
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    games: int = 16  # games per self-play batch (per actor)
    max_plies: int = 160  # game-length cap
    adjudicate_margin: int | None = None  # at the cap, a win for the side this many pawns up
    resign_value: float | None = None  # resign when the root value is below this
    elo: int | None = None  # Elo-conditioning input during self-play
    train_batch: int = 64
    replay_capacity: int = 50_000  # positions
    replay_ratio: float = 1.0  # samples trained / samples generated
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    budget_flops: float = 1e12  # FLOPs added to the starting checkpoint's
    milestones: int = 8  # kept checkpoints, doubling in added FLOPs up to the budget
    resume_every: int = 1  # iterations between resume checkpoints
    seed: int = 0
    actors: int = 0  # 0: single process; >= 1: Ray self-play actors and a learner
    broadcast_every: int = 10  # learner steps between parameter broadcasts (Ray mode)
    study: dict[str, str] = dataclasses.field(default_factory=dict)  # cap, parent, regime

    def __post_init__(self) -> None:
        if self.budget_flops <= 0 or self.train_batch < 1 or self.games < 1:
            raise ValueError("selfplay budget_flops, train_batch and games must be positive")
        if self.replay_ratio <= 0 or self.milestones < 1 or self.resume_every < 1:
            raise ValueError("selfplay replay_ratio, milestones and resume_every must be > 0")
        if self.adjudicate_margin is not None and self.adjudicate_margin < 1:
            raise ValueError(
                f"selfplay adjudicate_margin must be >= 1 pawn, got {self.adjudicate_margin}"
            )


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


def milestone_flops(start: float, budget: float, count: int) -> list[float]:
    """Cumulative FLOPs of the kept checkpoints: the added FLOPs double up to the budget."""
    return [start + budget * 2.0 ** -(count - 1 - i) for i in range(count)]


class Learner:
    """The train state, its compiled step and the replay buffer."""

    def __init__(self, cfg: SelfPlayRunConfig, start: Start) -> None:
        from jax.sharding import Mesh

        from scaling.train import TrainState, build_step_fns, compute_dtype, make_optimizer

        self.cfg = cfg
        self.net = PolicyValueNet(start.model, compute_dtype("float32"))
        train_cfg = TrainConfig(
            data_dir="",
            out_dir=cfg.out_dir,
            model=start.model,
            optim=cfg.optim,
            batch_size=cfg.train_batch,
            steps=10**9,
        )
        tx = make_optimizer(train_cfg, 10**9)
        state = TrainState(
            step=jnp.int32(0),
            params=start.params,
            opt_state=tx.init(start.params),
            rng=jax.random.key_data(jax.random.key(cfg.seed)),
        )
        mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
        example = {
            name: jax.ShapeDtypeStruct((cfg.train_batch, *shape), dtype)
            for name, (shape, dtype) in BATCH_FIELDS.items()
        }
        self.fns = build_step_fns(train_cfg, self.net, tx, state, mesh, example)
        self.state = state
        self.replay = ReplayBuffer.empty(cfg.replay_capacity)
        self.eval_flops = flops.forward_flops_per_position(start.model)  # per evaluation

    def train(self, rng: np.random.Generator, steps: int) -> dict[str, float]:
        metrics: Any = {}
        for _ in range(steps):
            batch = self.replay.sample(rng, self.cfg.train_batch)
            self.state, metrics = self.fns.train_step(self.state, batch)
        return {k: float(v) for k, v in metrics.items()}


def run_selfplay(cfg: SelfPlayRunConfig, *, progress: bool = True) -> dict[str, Any]:
    """Runs (or resumes, or returns the result of) a self-play run."""
    out = Path(cfg.out_dir)
    if (out / "result.json").exists():
        return dict(json.loads((out / "result.json").read_text()))
    if cfg.actors:
        from mcts.loop_ray import run_selfplay_ray

        return run_selfplay_ray(cfg, progress=progress)
    return _run_local(cfg, progress)


def write_config(cfg: SelfPlayRunConfig, start: Start) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = to_dict(cfg)
    data["model"] = to_dict(start.model)
    data["study"] = {**cfg.study, "parent": start.parent, "start_flops": start.flops}
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


def restore(learner: Learner, files: RunFiles, progress: Progress) -> Progress:
    """The loop as its latest resume checkpoint left it (``progress`` if there is none)."""
    if files.resumed is None:
        return progress
    restored = files.resume.restore(
        files.resumed,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_loop_tree(learner, progress.key)),
            meta=ocp.args.JsonRestore(),
        ),
    )
    learner.state = restored.state["train"]
    for name, value in restored.state["replay"].items():
        setattr(learner.replay, name, np.asarray(value))
    m = restored.meta
    learner.replay.size, learner.replay.head = m["replay_size"], m["replay_head"]
    key = jax.random.wrap_key_data(restored.state["key"])
    return Progress(key, m["iteration"], m["generated"], m["trained"], m["flops"])


def absorb(
    learner: Learner, files: RunFiles, p: Progress, traj: Any, evaluations: int, end: float
) -> None:
    """One iteration after a batch of games: replay, training to the ratio, FLOPs, metrics,
    milestones and the resume checkpoint (``p`` is updated in place)."""
    cfg = learner.cfg
    p.iteration += 1
    before = p.flops
    p.generated += learner.replay.add(traj)
    p.flops += evaluations * learner.eval_flops
    steps = max(0, int(cfg.replay_ratio * p.generated) - p.trained) // cfg.train_batch
    rng = np.random.default_rng([cfg.seed, p.iteration])
    metrics = learner.train(rng, steps) if steps else {}
    p.trained += steps * cfg.train_batch
    p.flops += steps * learner.fns.flops_per_step
    step = int(learner.state.step)
    files.metrics.write(_row(p.iteration, step, p.flops, traj, metrics))
    files.milestone(p.iteration, learner.state.params, step, before, p.flops)
    if p.iteration % cfg.resume_every == 0 or p.flops >= end:
        meta = {
            "iteration": p.iteration,
            "generated": p.generated,
            "trained": p.trained,
            "flops": p.flops,
            "replay_size": learner.replay.size,
            "replay_head": learner.replay.head,
        }
        files.resume.save(
            p.iteration,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_loop_tree(learner, p.key)),
                meta=ocp.args.JsonSave(meta),
            ),
        )


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
    }
    atomic_write_text(Path(cfg.out_dir) / "result.json", json.dumps(result, indent=1))
    return result


def selfplay_config(cfg: SelfPlayRunConfig) -> SelfPlayConfig:
    return SelfPlayConfig(
        batch_size=cfg.games,
        max_plies=cfg.max_plies,
        search=cfg.search,
        resign_value=cfg.resign_value,
        elo=cfg.elo,
        adjudicate_margin=cfg.adjudicate_margin,
    )


def _run_local(cfg: SelfPlayRunConfig, show: bool) -> dict[str, Any]:
    from mcts.selfplay import network_evaluations, play_games

    start = starting_point(cfg)
    write_config(cfg, start)
    learner = Learner(cfg, start)
    sp = selfplay_config(cfg)
    play = jax.jit(lambda params, key: play_games(learner.net, params, key, sp))
    files = RunFiles(cfg, start)
    p = restore(learner, files, Progress(jax.random.key(cfg.seed + 1), flops=start.flops))
    end = start.flops + cfg.budget_flops
    bar = progress_bar(cfg, p.flops - start.flops, show)
    while p.flops < end:
        p.key, play_key = jax.random.split(p.key)
        traj = play(learner.state.params, play_key)
        absorb(learner, files, p, traj, network_evaluations(traj, sp), end)
        bar.update(p.flops - start.flops - bar.n)
    bar.close()
    files.close()
    return finish_run(cfg, learner, start, p)


def _loop_tree(learner: Learner, key: jax.Array) -> dict[str, Any]:
    return {
        "train": learner.state,
        "replay": learner.replay.arrays(),
        "key": jax.random.key_data(key),
    }


def _row(it: int, step: int, total: float, traj: Any, metrics: dict[str, float]) -> dict[str, Any]:
    length = np.asarray(traj.length)
    result = np.asarray(traj.result)
    reason = np.asarray(traj.reason)
    return {
        "split": "train",
        "iteration": it,
        "step": step,
        "flops": total,
        "game_length": float(length.mean()),
        "white_wins": float((result > 0).mean()),
        "draws": float((result == 0).mean()),
        "checkmates": float((reason == REASONS.index("checkmate")).mean()),
        "adjudicated": float((reason == REASONS.index("adjudicated")).mean()),
        "truncated": float((reason == REASONS.index("truncated")).mean()),  # drawn at the cap
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
