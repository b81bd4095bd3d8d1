"""Self-play distributed with Ray: ``cfg.actors`` actors play batches of games with the latest
parameters they were sent; the learner (this process) absorbs each batch as it arrives
(``mcts.loop.absorb``: the same replay, train step, FLOP counting and checkpoints as the
single-process mode) and broadcasts its parameters every ``cfg.broadcast_every`` learner steps.
Resume after a kill continues from the learner's last resume checkpoint (arrival order makes
this mode nondeterministic; the single-process mode is the bitwise-reproducible one).
"""

from __future__ import annotations

import logging
from typing import Any

import jax

from mcts.loop import (
    Learner,
    Progress,
    RunFiles,
    SelfPlayRunConfig,
    Start,
    absorb,
    finish_run,
    progress_bar,
    restore,
    selfplay_config,
    starting_point,
    write_config,
)


class SelfPlayActor:
    """Plays batches of self-play games on its own device(s) (a Ray actor)."""

    def __init__(self, cfg: SelfPlayRunConfig, start_model: Any, actor: int) -> None:
        from mcts.selfplay import play_games
        from scaling.model import PolicyValueNet

        self.sp = selfplay_config(cfg)
        net = PolicyValueNet(start_model)
        self.play_fn = jax.jit(lambda params, key: play_games(net, params, key, self.sp))
        self.key = jax.random.key(cfg.seed * 1009 + 7919 * (actor + 1))

    def play(self, params: Any) -> tuple[Any, int]:
        """A batch of games with ``params``: (trajectory as numpy arrays, evaluations)."""
        from mcts.selfplay import network_evaluations

        self.key, key = jax.random.split(self.key)
        traj = jax.device_get(self.play_fn(params, key))
        return traj, network_evaluations(traj, self.sp)


def run_selfplay_ray(cfg: SelfPlayRunConfig, *, progress: bool = True) -> dict[str, Any]:
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.ERROR)
    start: Start = starting_point(cfg)
    write_config(cfg, start)
    learner = Learner(cfg, start)
    files = RunFiles(cfg, start)
    p = restore(learner, files, Progress(jax.random.key(cfg.seed + 1), flops=start.flops))
    end = start.flops + cfg.budget_flops
    remote: Any = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=0)(SelfPlayActor)
    actors = [remote.remote(cfg, start.model, i) for i in range(cfg.actors)]
    params_ref = ray.put(jax.device_get(learner.state.params))
    sent_at = int(learner.state.step)
    pending = {actor.play.remote(params_ref): actor for actor in actors}
    bar = progress_bar(cfg, p.flops - start.flops, progress)
    try:
        while p.flops < end:
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready[0])
            try:
                traj, evaluations = ray.get(ready[0])
            except ray.exceptions.RayActorError:  # the actor died: Ray restarts it, play again
                pending[actor.play.remote(params_ref)] = actor
                continue
            absorb(learner, files, p, traj, evaluations, end)
            if int(learner.state.step) - sent_at >= cfg.broadcast_every:
                params_ref = ray.put(jax.device_get(learner.state.params))
                sent_at = int(learner.state.step)
            pending[actor.play.remote(params_ref)] = actor
            bar.update(p.flops - start.flops - bar.n)
    finally:
        bar.close()
        files.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return finish_run(cfg, learner, start, p)
