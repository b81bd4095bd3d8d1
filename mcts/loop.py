"""Self-play and learning on the compute axis of the study (contract 2).

A run starts from a supervised checkpoint (its parameters and its cumulative FLOPs) or from a
random initialisation (the control, at 0 FLOPs). Each iteration plays games with search
(``mcts.stream``: each slot starts its next game as soon as one ends; or ``mcts.selfplay``'s
lockstep batches), adds their positions to the replay buffer, and trains with the
supervised train step (``scaling.make_train_step``) until samples trained / samples generated
reaches the configured ratio. The FLOP counter adds every network evaluation made by search
(analytic forward FLOPs per position) and every train step (XLA's count of the compiled step).

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

The pieces both modes share live in ``mcts.run_config`` and ``mcts.learner``; this module
dispatches on ``actors`` and imports ``mcts.loop_ray``, which never imports it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax

from mcts.corpus import Corpus
from mcts.learner import (
    Learner,
    Progress,
    RunFiles,
    Start,
    absorb,
    finish_run,
    milestone_flops,
    progress_bar,
    repair_finished,
    restore,
    save_start,
    starting_point,
    write_config,
)
from mcts.loop_ray import run_selfplay_ray
from mcts.run_config import (
    SelfPlayRunConfig,
    check_config,
    iteration_plies,
    selfplay_config,
)

__all__ = [
    "Learner",
    "SelfPlayRunConfig",
    "Start",
    "milestone_flops",
    "run_selfplay",
    "save_start",
    "selfplay_config",
    "starting_point",
]


def run_selfplay(cfg: SelfPlayRunConfig, *, progress: bool = True) -> dict[str, Any]:
    """Runs (or resumes, or returns the result of) a self-play run."""
    out = Path(cfg.out_dir)
    check_config(cfg)  # a finished or started run with another config is not its result
    if (out / "result.json").exists():
        result = dict(json.loads((out / "result.json").read_text()))
        if not repair_finished(out, result):
            return result
    if cfg.corpus_mix > 0:  # the data it mixes in is there, before any game (or Ray actor)
        Corpus.of(cfg)
    if cfg.actors:
        return run_selfplay_ray(cfg, progress=progress)
    return _run_local(cfg, progress)


def _run_local(cfg: SelfPlayRunConfig, show: bool) -> dict[str, Any]:
    from mcts.selfplay import network_evaluations, play_games
    from mcts.stream import Stream, cfg_resign

    start = starting_point(cfg)
    write_config(cfg, start)
    learner = Learner(cfg, start)
    sp = selfplay_config(cfg)
    stream = None
    if cfg.continuous:
        stream = Stream(learner.net, sp, iteration_plies(cfg), jax.random.key(cfg.seed + 2))
    batch = jax.jit(
        lambda params, key, resign: play_games(learner.net, params, key, sp, resign_value=resign)
    )

    def play(params: Any, key: jax.Array) -> tuple[Any, int]:
        resign = learner.resign_value()  # the calibrated threshold in force
        if stream is not None:
            return stream.play(params, key, resign)
        traj = batch(params, key, cfg_resign(sp, resign))
        return traj, network_evaluations(traj, sp)

    files = RunFiles(cfg, start)
    initial = Progress(jax.random.key(cfg.seed + 1), flops=start.flops)
    p = restore(learner, files, initial, stream)
    end = start.flops + cfg.budget_flops
    bar = progress_bar(cfg, p.flops - start.flops, show)
    while p.flops < end:
        p.key, play_key = jax.random.split(p.key)
        traj, evaluations = play(learner.state.params, play_key)
        absorb(learner, files, p, traj, evaluations, end, stream)
        bar.update(p.flops - start.flops - bar.n)
    bar.close()
    files.close()
    return finish_run(cfg, learner, start, p)
