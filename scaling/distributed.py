"""One run over several processes (hosts) under ``jax.distributed``.

Every process runs the same program. ``initialize`` joins the process group before JAX touches
a device: from a ``ProcessGroup`` given by the caller, or from the environment that
``elocap.execution`` sets in each task of a gang (``ELOCAP_COORDINATOR_ADDRESS``,
``ELOCAP_NUM_PROCESSES``, ``ELOCAP_PROCESS_ID``), or, with ``auto=True``, by JAX's own
cluster detection (Cloud TPU slices, SLURM, Open MPI). On CPU, collectives go through gloo.

The train loop then uses a mesh over ``jax.devices()`` (every process's devices). Each
process reads the same global batch stream and hands its devices only their rows
(``put_global``), so the batches, and the parameters, do not depend on how many processes
train: a run resumes on any layout. Only process 0 writes the run's files; orbax checkpoints
are written by every process.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from elocap.execution import COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV

__all__ = [
    "ProcessGroup",
    "barrier",
    "from_env",
    "initialize",
    "is_primary",
    "put_global",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProcessGroup:
    """Where this process stands in a multi-process run."""

    coordinator: str  # host:port of process 0's coordinator service
    num_processes: int  # processes in the run (one per host, usually)
    process_id: int  # this process, 0 .. num_processes - 1

    def __post_init__(self) -> None:
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"coordinator must be host:port, got {self.coordinator!r}")
        if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
            raise ValueError(f"process_id {self.process_id} is not in 0..{self.num_processes - 1}")


def from_env(environ: Mapping[str, str] | None = None) -> ProcessGroup | None:
    """The process group a gang task was given (None outside one)."""
    env = os.environ if environ is None else environ
    if not env.get(COORDINATOR_ENV):
        return None
    try:
        return ProcessGroup(
            coordinator=env[COORDINATOR_ENV],
            num_processes=int(env[NUM_PROCESSES_ENV]),
            process_id=int(env[PROCESS_ID_ENV]),
        )
    except (KeyError, ValueError) as e:
        raise ValueError(
            f"{COORDINATOR_ENV}, {NUM_PROCESSES_ENV} and {PROCESS_ID_ENV} must be set together: {e}"
        ) from None


_joined: ProcessGroup | None = None


def initialize(
    group: ProcessGroup | None = None, *, auto: bool = False, timeout_s: int = 300
) -> int:
    """Joins the process group (``group``, or the environment's; ``auto``: JAX detects it);
    returns the number of processes. A single process, or one that already joined this same
    group, does nothing. Call it before any JAX computation."""
    global _joined
    group = group or from_env()
    if group is None and not auto:
        return jax.process_count() if _joined else 1
    if _joined is not None:
        if group is not None and group != _joined:
            raise RuntimeError(f"this process already joined {_joined}, not {group}")
        return jax.process_count()
    if group is not None and group.num_processes == 1:
        return 1
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices only
    if group is None:
        jax.distributed.initialize(initialization_timeout=timeout_s)
    else:
        jax.distributed.initialize(
            coordinator_address=group.coordinator,
            num_processes=group.num_processes,
            process_id=group.process_id,
            initialization_timeout=timeout_s,
        )
    _joined = group or ProcessGroup(
        coordinator="auto:0", num_processes=jax.process_count(), process_id=jax.process_index()
    )
    return jax.process_count()


def is_primary() -> bool:
    """True in process 0, the one that writes a run's own files."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches ``name`` (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def put_global(tree: Any, sharding: NamedSharding | Any) -> Any:
    """A pytree whose whole value every process holds (a global batch, the initial state) as
    global arrays laid out by ``sharding`` (one for every leaf, or a tree of them matching
    ``tree``): each process copies only what its own devices hold (with one process,
    ``jax.device_put``)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x: Any, where: NamedSharding) -> jax.Array:
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, where, lambda index: host[index])

    if isinstance(sharding, NamedSharding):
        return jax.tree.map(lambda x: put(x, sharding), tree)
    return jax.tree.map(put, tree, sharding)
