"""Where library code runs its parallel work: an executor handed down by the entry point.

Library functions never start Ray (design, "Distributed execution"): the CLI commands and the
study runner start or join a cluster once (``jobs.ray_session``) and pass a ``RayExecutor``
down; tests and single-core users pass an ``InlineExecutor``. Both run ``fn`` over ``items``
and yield ``(item index, result)`` as results arrive, with at most ``window`` tasks in flight,
each retried ``max_retries`` times when its worker dies or it raises; after that the last error
is raised and nothing more is submitted.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def require_ray() -> Any:
    """The ``ray`` module, initialised by the caller; a clear error where it is not."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError(
            "Ray is not running in this process: the entry point (an elocap command or the "
            "study runner) starts or joins it with jobs.ray_session.start_or_join()"
        )
    return ray


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resources:
    """What one task asks of the cluster."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: tuple[tuple[str, float], ...] = ()  # custom resources, e.g. (("TPU", 4.0),)


class Executor(abc.ABC):
    """Runs a function over items, yielding ``(index, result)`` as each finishes."""

    @abc.abstractmethod
    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        *,
        resources: Resources | None = None,
        window: int = 2,
        max_retries: int = 2,
    ) -> Iterator[tuple[int, Any]]:
        """``fn(*items[i])`` for every i; ``window`` tasks at most in flight."""

    @property
    def distributed(self) -> bool:
        return False


class InlineExecutor(Executor):
    """Runs every task in this process, in order (debugging, one core, tests)."""

    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        *,
        resources: Resources | None = None,
        window: int = 2,
        max_retries: int = 2,
    ) -> Iterator[tuple[int, Any]]:
        for i, args in enumerate(items):
            yield i, fn(*args)


class RayExecutor(Executor):
    """Runs tasks on the Ray cluster this process joined (it must be initialised)."""

    def __init__(self) -> None:
        self._ray = require_ray()

    @property
    def distributed(self) -> bool:
        return True

    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        *,
        resources: Resources | None = None,
        window: int = 2,
        max_retries: int = 2,
    ) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        resources = resources or Resources()
        task = ray.remote(fn).options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            resources=dict(resources.resources) or None,
            max_retries=max_retries,
            retry_exceptions=True,
        )
        queue = list(enumerate(items))
        pending: dict[Any, int] = {}
        try:
            while queue or pending:
                while queue and len(pending) < max(window, 1):
                    i, args = queue.pop(0)
                    pending[task.remote(*args)] = i
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                yield i, ray.get(ready[0])  # a task's last failure, after its retries
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
