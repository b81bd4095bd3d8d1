"""Self-play distributed with Ray: ``cfg.actors`` self-play actors play batches of games with the
latest parameters they were sent; the learner is an actor of its own (``LearnerActor``, with its
own resource request, e.g. the cluster's one GPU) that absorbs each batch
(``mcts.learner.absorb``: the same replay, train step, FLOP counting and checkpoints as the
single-process mode) and hands out its parameters every ``cfg.broadcast_every`` learner steps.
The driver (the head node) only schedules: trajectories and parameters travel through Ray's
object store as references, from actor to learner and back, so it needs no accelerator.

Arrival order makes this mode nondeterministic; the single-process mode is the bitwise-
reproducible one.

Ray must be running already: the entry point (CLI command, study runner) starts or joins the
cluster; library code never calls ``ray.init``. A self-play actor that dies is restarted by Ray
and given its batch again, up to ``cfg.max_actor_failures`` deaths in the run: the last one stops
the run with an error that carries the actor's (a config error inside the actor fails every
restart, and must not loop for ever). A batch sent while its actor restarts is sent again half
a second later without counting as a death, for at most ``UNAVAILABLE_S``. A learner that dies
is restarted by Ray (up to ``cfg.max_learner_failures`` deaths) and resumes from its resume
checkpoint; the driver keeps the batches absorbed since that checkpoint and sends them again, so
no iteration is lost (absorbing is idempotent by iteration number).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax

from elocap.execution import Resources
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
from mcts.run_config import (
    SelfPlayRunConfig,
    actor_resources,
    iteration_plies,
    learner_resources,
    selfplay_config,
)

__all__ = [
    "UNAVAILABLE_S",
    "ActorFailuresError",
    "LearnerActor",
    "SelfPlayActor",
    "ray_options",
    "run_selfplay_ray",
]

UNAVAILABLE_S = 600.0  # an actor restarting for longer than this stops the run


class ActorFailuresError(RuntimeError):
    """A Ray-mode run stopped: its self-play actors (or its learner) died too many times."""


def ray_options(res: Resources) -> dict[str, Any]:
    """``Resources`` as the keyword arguments of Ray's ``.options`` / ``ray.remote``."""
    return {
        "num_cpus": res.num_cpus,
        "num_gpus": res.num_gpus,
        "resources": dict(res.resources) or None,
    }


class SelfPlayActor:
    """Plays batches of self-play games on its own device(s) (a Ray actor)."""

    def __init__(self, cfg: SelfPlayRunConfig, start_model: Any, actor: int) -> None:
        from mcts.selfplay import play_games
        from mcts.stream import Stream
        from scaling.model import PolicyValueNet
        from scaling.step import compute_dtype

        self.sp = selfplay_config(cfg)
        net = PolicyValueNet(start_model, compute_dtype(cfg.dtype))
        self.play_fn = jax.jit(
            lambda params, key, resign: play_games(net, params, key, self.sp, resign_value=resign)
        )
        self.key = jax.random.key(cfg.seed * 1009 + 7919 * (actor + 1))
        self.key, slots_key = jax.random.split(self.key)
        # continuous: the actor's games in play (a restarted actor starts new ones)
        self.stream = None
        if cfg.continuous:
            self.stream = Stream(net, self.sp, iteration_plies(cfg), slots_key)

    def play(self, sent: dict[str, Any]) -> tuple[Any, int]:
        """A batch of games with the learner's ``sent`` parameters and resignation threshold
        (``LearnerActor.params``; continuous: the games finished in the next
        ``iteration_plies`` plies): (trajectory as numpy arrays, evaluations)."""
        from mcts.selfplay import network_evaluations
        from mcts.stream import cfg_resign

        self.key, key = jax.random.split(self.key)
        params, resign = sent["params"], sent["resign_value"]
        if self.stream is not None:
            return self.stream.play(params, key, resign)
        traj = jax.device_get(self.play_fn(params, key, cfg_resign(self.sp, resign)))
        return traj, network_evaluations(traj, self.sp)


class LearnerActor:
    """The learner (train state, replay, run files, counters) as a Ray actor. Constructed again
    after a death, it resumes from the run's resume checkpoint."""

    def __init__(self, cfg: SelfPlayRunConfig) -> None:
        self.cfg = cfg
        self.start = starting_point(cfg)
        write_config(cfg, self.start)
        self.learner = Learner(cfg, self.start)
        self.files = RunFiles(cfg, self.start)
        initial = Progress(jax.random.key(cfg.seed + 1), flops=self.start.flops)
        self.p = restore(self.learner, self.files, initial)
        self.end = self.start.flops + cfg.budget_flops

    def status(self) -> dict[str, Any]:
        """Where the learner stands: the last iteration absorbed, FLOPs, learner step."""
        return {
            "iteration": self.p.iteration,
            "flops": self.p.flops,
            "start_flops": self.start.flops,
            "step": int(self.learner.state.step),
            "model": self.start.model,
        }

    def placement(self) -> dict[str, Any]:
        """What Ray gave this actor (for the placement test and the logs)."""
        import ray

        ctx = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "assigned": dict(ctx.get_assigned_resources()),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "jax_devices": [str(d) for d in jax.local_devices()],
        }

    def params(self) -> dict[str, Any]:
        """What the self-play actors play with: the current parameters, as host arrays (Ray
        puts them in the object store), and the resignation threshold in force."""
        return {
            "params": jax.device_get(self.learner.state.params),
            "resign_value": self.learner.resign_value(),
        }

    def absorb(self, iteration: int, traj: Any, evaluations: int) -> dict[str, Any]:
        """Absorbs batch number ``iteration`` (one already absorbed is skipped); returns the
        status and whether the resume checkpoint now holds it (``saved``)."""
        if iteration <= self.p.iteration:
            return {**self.status(), "saved": False}
        if iteration != self.p.iteration + 1:
            raise ValueError(f"learner at iteration {self.p.iteration} was sent {iteration}")
        saved = absorb(self.learner, self.files, self.p, traj, evaluations, self.end)
        return {**self.status(), "saved": saved}

    def finish(self) -> dict[str, Any]:
        self.files.close()
        return finish_run(self.cfg, self.learner, self.start, self.p)


def run_selfplay_ray(
    cfg: SelfPlayRunConfig,
    *,
    progress: bool = True,
    actor_cls: type = SelfPlayActor,
    learner_cls: type = LearnerActor,
    on_learner: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Runs (or resumes) a run with ``cfg.actors`` Ray actors of ``actor_cls`` and a learner
    actor of ``learner_cls`` (subclasses of SelfPlayActor and LearnerActor; tests pass ones
    that die). ``on_learner`` is called with the learner's handle once it is up."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError(
            "Ray-mode self-play (actors >= 1) needs a running Ray: the caller (the CLI command "
            "or the study runner) must start or join a cluster (ray.init) before calling it"
        )
    learner: Any = ray.remote(
        max_restarts=cfg.max_learner_failures,
        max_task_retries=0,
        **ray_options(learner_resources(cfg)),
    )(learner_cls).remote(cfg)
    if on_learner is not None:
        on_learner(learner)
    status = ray.get(learner.status.remote())
    start_flops, end = status["start_flops"], status["start_flops"] + cfg.budget_flops
    remote: Any = ray.remote(
        max_restarts=cfg.max_actor_failures, max_task_retries=0, **ray_options(actor_resources(cfg))
    )(actor_cls)
    actors = [remote.remote(cfg, status["model"], i) for i in range(cfg.actors)]
    params_ref = learner.params.remote()
    sent_at = status["step"]

    def play(i: int) -> tuple[Any, Any]:
        return tuple(actors[i].play.options(num_returns=2).remote(params_ref))

    pending = {}
    for i in range(len(actors)):
        traj_ref, evals_ref = play(i)
        pending[evals_ref] = (i, traj_ref)
    failures, learner_failures = 0, 0
    waiting_since = [0.0] * len(actors)  # when each actor became unavailable
    unsaved: list[tuple[int, Any, Any]] = []  # absorbed since the learner's last resume save
    bar = progress_bar(cfg, status["flops"] - start_flops, progress)
    try:
        while status["flops"] < end:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, traj_ref = pending.pop(ready[0])
            try:
                evaluations = ray.get(ready[0])
            except ray.exceptions.ActorUnavailableError as e:  # restarting after a death
                waiting_since[i] = waiting_since[i] or time.monotonic()
                if time.monotonic() - waiting_since[i] > UNAVAILABLE_S:
                    raise ActorFailuresError(
                        f"self-play actor {i} unavailable for over {UNAVAILABLE_S:.0f} s; "
                        f"the run stops. Last actor error ({type(e).__name__}): {e}"
                    ) from e
                time.sleep(0.5)
                traj_ref, evals_ref = play(i)
                pending[evals_ref] = (i, traj_ref)
                continue
            except ray.exceptions.RayActorError as e:  # died: Ray restarts it, play again
                failures += 1
                if failures >= cfg.max_actor_failures:
                    raise ActorFailuresError(
                        f"self-play actors died {failures} times (max_actor_failures="
                        f"{cfg.max_actor_failures}); the run stops. Last actor error "
                        f"({type(e).__name__}): {e}"
                    ) from e
                traj_ref, evals_ref = play(i)
                pending[evals_ref] = (i, traj_ref)
                continue
            waiting_since[i] = 0.0
            unsaved.append((status["iteration"] + 1, traj_ref, evaluations))
            try:
                status = ray.get(learner.absorb.remote(*unsaved[-1]))
            except ray.exceptions.RayActorError as e:
                learner_failures += 1
                if learner_failures >= cfg.max_learner_failures:
                    raise ActorFailuresError(
                        f"the learner died {learner_failures} times (max_learner_failures="
                        f"{cfg.max_learner_failures}); the run stops. Last error "
                        f"({type(e).__name__}): {e}"
                    ) from e
                status = _resend(learner, unsaved)
                params_ref, sent_at = learner.params.remote(), status["step"]
            if status["saved"]:
                unsaved.clear()
            if status["step"] - sent_at >= cfg.broadcast_every:
                params_ref, sent_at = learner.params.remote(), status["step"]
            traj_ref, evals_ref = play(i)
            pending[evals_ref] = (i, traj_ref)
            bar.update(status["flops"] - start_flops - bar.n)
        result: dict[str, Any] = ray.get(learner.finish.remote())
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
        ray.kill(learner, no_restart=True)
    return result


def _resend(learner: Any, unsaved: list[tuple[int, Any, Any]]) -> dict[str, Any]:
    """After the learner's death: waits for its restart (it resumes from its resume checkpoint)
    and sends it again the batches absorbed since then. Returns its status."""
    import ray

    waited = time.monotonic()
    while True:
        try:
            status: dict[str, Any] = ray.get(learner.status.remote())
            break
        except ray.exceptions.RayActorError:  # still restarting
            if time.monotonic() - waited > UNAVAILABLE_S:
                raise
            time.sleep(0.5)
    status["saved"] = False
    for batch in unsaved:
        if batch[0] > status["iteration"]:
            status = ray.get(learner.absorb.remote(*batch))
    return status
