"""Self-play distributed with Ray: ``cfg.actors`` actors play batches of games with the latest
parameters they were sent; the learner (this process) absorbs each batch as it arrives
(``mcts.learner.absorb``: the same replay, train step, FLOP counting and checkpoints as the
single-process mode) and broadcasts its parameters every ``cfg.broadcast_every`` learner steps.
Resume after a kill continues from the learner's last resume checkpoint (arrival order makes
this mode nondeterministic; the single-process mode is the bitwise-reproducible one).

Ray must be running already: the entry point (CLI command, study runner) starts or joins the
cluster; library code never calls ``ray.init``. An actor that dies is restarted by Ray and given
its batch again, up to ``cfg.max_actor_failures`` deaths in the run: the last one stops the run
with an error that carries the actor's (a config error inside the actor fails every restart, and
must not loop for ever). A batch sent while its actor restarts is sent again half a second later
without counting as a death, for at most ``UNAVAILABLE_S``.
"""

from __future__ import annotations

import time
from typing import Any

import jax

from mcts.learner import (
    Learner,
    Progress,
    RunFiles,
    absorb,
    finish_run,
    progress_bar,
    restore,
    starting_point,
    write_config,
)
from mcts.run_config import SelfPlayRunConfig, selfplay_config

__all__ = ["UNAVAILABLE_S", "ActorFailuresError", "SelfPlayActor", "run_selfplay_ray"]

UNAVAILABLE_S = 600.0  # an actor restarting for longer than this stops the run


class ActorFailuresError(RuntimeError):
    """A Ray-mode run stopped: its self-play actors died ``max_actor_failures`` times."""


class SelfPlayActor:
    """Plays batches of self-play games on its own device(s) (a Ray actor)."""

    def __init__(self, cfg: SelfPlayRunConfig, start_model: Any, actor: int) -> None:
        from mcts.selfplay import play_games
        from scaling.model import PolicyValueNet
        from scaling.step import compute_dtype

        self.sp = selfplay_config(cfg)
        net = PolicyValueNet(start_model, compute_dtype(cfg.dtype))
        self.play_fn = jax.jit(lambda params, key: play_games(net, params, key, self.sp))
        self.key = jax.random.key(cfg.seed * 1009 + 7919 * (actor + 1))

    def play(self, params: Any) -> tuple[Any, int]:
        """A batch of games with ``params``: (trajectory as numpy arrays, evaluations)."""
        from mcts.selfplay import network_evaluations

        self.key, key = jax.random.split(self.key)
        traj = jax.device_get(self.play_fn(params, key))
        return traj, network_evaluations(traj, self.sp)


def run_selfplay_ray(
    cfg: SelfPlayRunConfig, *, progress: bool = True, actor_cls: type = SelfPlayActor
) -> dict[str, Any]:
    """Runs (or resumes) a run with ``cfg.actors`` Ray actors of ``actor_cls`` (a subclass of
    SelfPlayActor; tests pass one that dies) and this process as the learner."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError(
            "Ray-mode self-play (actors >= 1) needs a running Ray: the caller (the CLI command "
            "or the study runner) must start or join a cluster (ray.init) before calling it"
        )
    start = starting_point(cfg)
    write_config(cfg, start)
    learner = Learner(cfg, start)
    files = RunFiles(cfg, start)
    p = restore(learner, files, Progress(jax.random.key(cfg.seed + 1), flops=start.flops))
    end = start.flops + cfg.budget_flops
    remote: Any = ray.remote(num_cpus=1, max_restarts=cfg.max_actor_failures, max_task_retries=0)(
        actor_cls
    )
    actors = [remote.remote(cfg, start.model, i) for i in range(cfg.actors)]
    params_ref = ray.put(jax.device_get(learner.state.params))
    sent_at = int(learner.state.step)
    pending = {actor.play.remote(params_ref): i for i, actor in enumerate(actors)}
    failures, waiting_since = 0, [0.0] * len(actors)  # when each actor became unavailable
    bar = progress_bar(cfg, p.flops - start.flops, progress)
    try:
        while p.flops < end:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            try:
                traj, evaluations = ray.get(ready[0])
            except ray.exceptions.ActorUnavailableError as e:  # restarting after a death
                waiting_since[i] = waiting_since[i] or time.monotonic()
                if time.monotonic() - waiting_since[i] > UNAVAILABLE_S:
                    raise ActorFailuresError(
                        f"self-play actor {i} unavailable for over {UNAVAILABLE_S:.0f} s; "
                        f"the run stops. Last actor error ({type(e).__name__}): {e}"
                    ) from e
                time.sleep(0.5)
                pending[actors[i].play.remote(params_ref)] = i
                continue
            except ray.exceptions.RayActorError as e:  # died: Ray restarts it, play again
                failures += 1
                if failures >= cfg.max_actor_failures:
                    raise ActorFailuresError(
                        f"self-play actors died {failures} times (max_actor_failures="
                        f"{cfg.max_actor_failures}); the run stops. Last actor error "
                        f"({type(e).__name__}): {e}"
                    ) from e
                pending[actors[i].play.remote(params_ref)] = i
                continue
            waiting_since[i] = 0.0
            absorb(learner, files, p, traj, evaluations, end)
            if int(learner.state.step) - sent_at >= cfg.broadcast_every:
                params_ref = ray.put(jax.device_get(learner.state.params))
                sent_at = int(learner.state.step)
            pending[actors[i].play.remote(params_ref)] = i
            bar.update(p.flops - start.flops - bar.n)
    finally:
        bar.close()
        files.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return finish_run(cfg, learner, start, p)
