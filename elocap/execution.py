"""Where library code runs its parallel work: an executor handed down by the entry point.

Library functions never start Ray (design, "Distributed execution"): the CLI commands and the
study runner start or join a cluster once (``jobs.ray_session``) and pass a ``RayExecutor``
down; tests and single-core users pass an ``InlineExecutor``. Both run ``fn`` over ``items``
and yield ``(item index, result)`` as results arrive, with at most ``window`` tasks in flight,
each retried ``max_retries`` times when its worker dies or it raises; after that the last error
is raised and nothing more is submitted.

What a task asks of the cluster is one typed ``Resources`` (CPUs, GPUs, TPU chips, memory,
custom resources, per host; and how many hosts). A request that no node of the cluster can
meet is an error naming the request and what the nodes have, raised before anything waits.
A task over several hosts is a gang: one Ray task per host in a STRICT_SPREAD placement group
(on a TPU slice: the hosts of the slice whose head it reserved), each told its place in the
``jax.distributed`` process group through ``PROCESS_ENV``; it is retried whole.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

# Ray's own resource names: a request sets them through the typed fields, not the custom map.
_RAY_BUILTIN = ("CPU", "GPU", "TPU", "memory", "object_store_memory", "accelerator_type")
_NAME = re.compile(r"^[A-Za-z0-9_.:/+-]+$")
GIB = 2**30

# On an autoscaling cluster the nodes a request needs may not exist yet: this variable (any
# non-empty value) turns the up-front "no node can run this" error into a wait for them.
WAIT_FOR_NODES_ENV = "ELOCAP_WAIT_FOR_NODES"

# How each process of a gang learns its place (read by scaling.distributed.from_env).
COORDINATOR_ENV = "ELOCAP_COORDINATOR_ADDRESS"  # host:port of process 0's coordinator
NUM_PROCESSES_ENV = "ELOCAP_NUM_PROCESSES"
PROCESS_ID_ENV = "ELOCAP_PROCESS_ID"


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
    """What one task asks of the cluster, on each of its ``hosts`` (a TOML table:
    ``[supervised.resources]``, ``[arena.games.resources]``)."""

    num_cpus: float = 1.0  # Ray "CPU" per host
    num_gpus: float = 0.0  # Ray "GPU" per host (fractions below 1 share a GPU)
    num_tpus: float = 0.0  # Ray "TPU": chips per host (0 with tpu_slice: 4, a whole host)
    memory_gib: float = 0.0  # Ray "memory" per host, GiB (0: none reserved)
    resources: tuple[tuple[str, float], ...] = ()  # custom resources per host, e.g. (("spot", 1),)
    hosts: int = 1  # processes of one task, one per node (jax.distributed over all of them)
    tpu_slice: str = ""  # a whole multi-host slice by pod type, e.g. "v6e-16": host 0 takes
    #                      its head resource (TPU-v6e-16-head) and the others land on its hosts

    def __post_init__(self) -> None:
        if isinstance(self.resources, Mapping):  # a dict is accepted and kept as sorted pairs
            object.__setattr__(self, "resources", tuple(sorted(self.resources.items())))
        for name in ("num_cpus", "num_gpus", "num_tpus", "memory_gib"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"resources.{name} must be a finite number >= 0, got {value!r}")
        names = [k for k, _ in self.resources]
        if len(set(names)) != len(names):
            raise ValueError(f"resources.resources names a resource twice: {names}")
        for key, value in self.resources:
            if key in _RAY_BUILTIN:
                field = {"CPU": "num_cpus", "GPU": "num_gpus", "TPU": "num_tpus"}.get(key)
                instead = f"set resources.{field}" if field else "it is not a custom resource"
                raise ValueError(f"resources.resources: {key!r} is Ray's own; {instead}")
            if not _NAME.match(key):
                raise ValueError(f"resources.resources: {key!r} is not a Ray resource name")
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"resources.resources: {key} must be a number > 0, got {value!r}")
        if not isinstance(self.hosts, int) or self.hosts < 1:
            raise ValueError(f"resources.hosts must be an integer >= 1, got {self.hosts!r}")
        if self.hosts > 1 and not self.per_host():
            raise ValueError("resources.hosts > 1 needs something per host (e.g. num_cpus)")
        if self.tpu_slice and not re.match(r"^v[0-9a-z]+-[0-9]+$", self.tpu_slice):
            raise ValueError(
                "resources.tpu_slice must be a TPU pod type such as 'v6e-16' or "
                f"'v5litepod-16', got {self.tpu_slice!r}"
            )

    @property
    def tpus(self) -> float:
        """TPU chips per host: ``num_tpus``, or on a multi-host slice 4 (the chips of one host
        of every multi-host v4, v5p, v5e and v6e slice) when it is 0."""
        return float(self.num_tpus or (4.0 if self.tpu_slice else 0.0))

    @property
    def head_resource(self) -> str | None:
        """Ray's resource on host 0 of a ``tpu_slice`` (one per slice), or None."""
        return f"TPU-{self.tpu_slice}-head" if self.tpu_slice else None

    def per_host(self) -> dict[str, float]:
        """The request on each host in Ray's resource names (memory in bytes), zeros left out."""
        request = {
            "CPU": float(self.num_cpus),
            "GPU": float(self.num_gpus),
            "TPU": self.tpus,
            "memory": float(round(self.memory_gib * GIB)),
            **{k: float(v) for k, v in self.resources},
        }
        return {k: v for k, v in request.items() if v > 0}

    def task_options(self) -> dict[str, Any]:
        """Keyword arguments of ``ray.remote(...).options`` for one host's task."""
        custom = {k: float(v) for k, v in self.resources}
        if self.tpus:
            custom["TPU"] = self.tpus
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "resources": custom or None,
        }
        if self.memory_gib:
            options["memory"] = round(self.memory_gib * GIB)
        return options

    def describe(self) -> str:
        parts = [f"{k}={_amount(k, v)}" for k, v in self.per_host().items()] or ["nothing"]
        text = ", ".join(parts)
        if self.hosts > 1:
            text = f"{text} on each of {self.hosts} distinct nodes"
        if self.head_resource:
            text += f", host 0 with {self.head_resource}"
        return text


def _amount(key: str, value: float) -> str:
    if key in ("memory", "object_store_memory"):
        return f"{value / GIB:.3g}GiB"
    return f"{value:g}"


def unmet_request(request: Resources, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """Why no set of the cluster's alive nodes (``ray.nodes()`` rows) can ever run ``request``,
    counting each node's total resources; None when some can."""
    alive = [n for n in nodes if n.get("Alive", True)]
    need = request.per_host()

    def fits(node: Mapping[str, Any]) -> bool:
        have = node.get("Resources", {})
        return all(have.get(k, 0.0) >= v - 1e-9 for k, v in need.items())

    fitting = [n for n in alive if fits(n)]
    head = request.head_resource
    heads = [n for n in alive if n.get("Resources", {}).get(head or "", 0.0) >= 1] if head else []
    problems = []
    if len(fitting) < request.hosts:
        problems.append(f"{len(fitting)} node(s) have it, {request.hosts} needed")
    if head and not heads:
        problems.append(f"no node has {head} (the slice's host 0)")
    if not problems:
        return None
    lines = [f"no node of the cluster can run a task asking {request.describe()}: "]
    lines[0] += "; ".join(problems) + ". The nodes have:"
    for n in alive:
        have = {k: v for k, v in n.get("Resources", {}).items() if not k.startswith("node:")}
        shown = ", ".join(f"{k}={_amount(k, v)}" for k, v in sorted(have.items()))
        lines.append(f"  {n.get('NodeManagerAddress', '?')} ({n.get('NodeID', '?')[:8]}): {shown}")
    if not alive:
        lines.append("  (no alive node)")
    lines.append(f"(on an autoscaling cluster, set {WAIT_FOR_NODES_ENV}=1 to wait for nodes)")
    return "\n".join(lines)


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
    """Runs every task in this process, in order (debugging, one core, tests). A request for
    several hosts is an error: one process cannot be a gang."""

    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        *,
        resources: Resources | None = None,
        window: int = 2,
        max_retries: int = 2,
    ) -> Iterator[tuple[int, Any]]:
        if resources is not None and resources.hosts > 1:
            raise ValueError(
                f"a task over {resources.hosts} hosts needs a Ray cluster (RayExecutor); "
                "the inline executor runs one process"
            )
        for i, args in enumerate(items):
            yield i, fn(*args)


class RayExecutor(Executor):
    """Runs tasks on the Ray cluster this process joined (it must be initialised)."""

    def __init__(self) -> None:
        self._ray = require_ray()

    @property
    def distributed(self) -> bool:
        return True

    def check(self, resources: Resources) -> None:
        """Raises ValueError when no node of the cluster can meet ``resources``."""
        if os.environ.get(WAIT_FOR_NODES_ENV):
            return
        problem = unmet_request(resources, self._ray.nodes())
        if problem:
            raise ValueError(problem)

    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        *,
        resources: Resources | None = None,
        window: int = 2,
        max_retries: int = 2,
    ) -> Iterator[tuple[int, Any]]:
        resources = resources or Resources()
        if items:
            self.check(resources)
        if resources.hosts > 1:
            yield from _run_gangs(self._ray, fn, items, resources, window, max_retries)
            return
        ray = self._ray
        task = ray.remote(fn).options(
            **resources.task_options(), max_retries=max_retries, retry_exceptions=True
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


# --- gangs: one task over several hosts ------------------------------------------------------


def _coordinator() -> str:
    """host:port for process 0's jax.distributed coordinator, on the node this runs on."""
    import socket

    import ray

    with socket.socket() as s:  # a port free now (the coordinator binds it moments later)
        s.bind(("", 0))
        port = s.getsockname()[1]
    return f"{ray.util.get_node_ip_address()}:{port}"


def _tpu_slice_name() -> str:
    import ray.util.tpu

    name = ray.util.tpu.get_current_pod_name()
    if not name:
        raise RuntimeError("the TPU slice head's node does not know its slice's name")
    return name


def _gang_member(fn: Callable[..., Any], coordinator: str, rank: int, size: int, *args: Any) -> Any:
    """One host's process of a gang: ``fn(*args)`` with its place in the process group."""
    os.environ.update(
        {COORDINATOR_ENV: coordinator, NUM_PROCESSES_ENV: str(size), PROCESS_ID_ENV: str(rank)}
    )
    return fn(*args)


@dataclasses.dataclass
class _Gang:
    index: int  # of the item
    attempt: int
    groups: list[Any]  # placement groups it holds (a slice: the head's, then the hosts')
    refs: list[Any]  # one task per host, rank order
    left: set[Any]  # refs not finished yet


def _start_gang(
    ray: Any, fn: Callable[..., Any], args: tuple[Any, ...], r: Resources, index: int, attempt: int
) -> _Gang:
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    bundle = r.per_host()
    groups, selector = [], None
    if r.head_resource:  # reserve a slice by its head, then gang its hosts (Ray's two steps)
        head = placement_group([{r.head_resource: 1.0}])
        groups.append(head)
        on_head = PlacementGroupSchedulingStrategy(placement_group=head)
        name = ray.get(
            ray.remote(_tpu_slice_name).options(num_cpus=0, scheduling_strategy=on_head).remote()
        )
        selector = [{"ray.io/tpu-slice-name": name}] * r.hosts
    hosts = placement_group(
        [dict(bundle) for _ in range(r.hosts)],
        strategy="STRICT_SPREAD",
        bundle_label_selector=selector,
    )
    groups.append(hosts)

    def on(i: int) -> Any:
        return PlacementGroupSchedulingStrategy(
            placement_group=hosts, placement_group_bundle_index=i
        )

    coordinator = ray.remote(_coordinator).options(num_cpus=0, scheduling_strategy=on(0)).remote()
    # max_calls=1: a fresh worker process per task (jax.distributed joins once in a process)
    member = ray.remote(max_calls=1)(_gang_member)
    opts = {**r.task_options(), "max_retries": 0}
    refs = [
        member.options(**opts, scheduling_strategy=on(i)).remote(fn, coordinator, i, r.hosts, *args)
        for i in range(r.hosts)
    ]
    return _Gang(index=index, attempt=attempt, groups=groups, refs=refs, left=set(refs))


def _stop_gang(ray: Any, gang: _Gang) -> None:
    from ray.util.placement_group import remove_placement_group

    for ref in gang.left:
        ray.cancel(ref, force=True)
    for group in gang.groups:
        remove_placement_group(group)


def _run_gangs(
    ray: Any,
    fn: Callable[..., Any],
    items: Sequence[tuple[Any, ...]],
    r: Resources,
    window: int,
    max_retries: int,
) -> Iterator[tuple[int, Any]]:
    """Each item as a gang of ``r.hosts`` tasks; yields process 0's result. A gang one of
    whose tasks fails is stopped whole and started again (``max_retries`` times): the other
    processes of a jax.distributed group cannot go on without it."""
    queue = [(i, 0) for i in range(len(items))]
    running: dict[Any, _Gang] = {}  # every unfinished ref -> its gang
    try:
        while queue or running:
            while queue and len({id(g) for g in running.values()}) < max(window, 1):
                i, attempt = queue.pop(0)
                gang = _start_gang(ray, fn, items[i], r, i, attempt)
                running.update({ref: gang for ref in gang.refs})
            ready, _ = ray.wait(list(running), num_returns=1)
            gang = running.pop(ready[0])
            gang.left.discard(ready[0])
            try:
                ray.get(ready[0])
            except Exception:
                _stop_gang(ray, gang)
                for ref in gang.left:
                    running.pop(ref, None)
                if gang.attempt >= max_retries:
                    raise
                queue.insert(0, (gang.index, gang.attempt + 1))
                continue
            if not gang.left:
                result = ray.get(gang.refs[0])
                _stop_gang(ray, gang)
                yield gang.index, result
    finally:
        for gang in {id(g): g for g in running.values()}.values():
            _stop_gang(ray, gang)
