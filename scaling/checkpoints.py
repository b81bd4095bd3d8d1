"""Orbax checkpoints of a run: parameters, optimiser state and RNG (the traced TrainState), and
beside them the step, the cumulative FLOPs and the data iterator's state.

Kept permanently: the FLOP milestones of the run (log-spaced, see ``train.milestone_steps``);
kept until replaced: the latest checkpoint, for resuming.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from elocap.files import Manifest, file_manifest, verify_manifest


def manager(directory: Path, milestones: Sequence[int]) -> ocp.CheckpointManager:
    """A synchronous CheckpointManager that keeps the milestones and the latest step."""
    options = ocp.CheckpointManagerOptions(
        enable_async_checkpointing=False,
        preservation_policy=pp.AnyPreservationPolicy(
            [pp.LatestN(1), pp.CustomSteps(list(milestones))]
        ),
    )
    return ocp.CheckpointManager(
        Path(directory).absolute(), options=options, item_names=("state", "meta")
    )


def save(
    mgr: ocp.CheckpointManager,
    step: int,
    state: Any,
    data_iter: Any,
    flops: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """Saves one step atomically (orbax writes a temporary directory, then renames it).
    ``data_iter`` may be None (no data pipeline to resume); ``extra`` joins the metadata."""
    meta = {"step": step, "flops": flops, **(extra or {})}
    if data_iter is not None:
        meta["data_state"] = data_iter.get_state()
    mgr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )


def restore_latest(mgr: ocp.CheckpointManager, template: Any, data_iter: Any) -> tuple[Any, int]:
    """(state, step) of the latest checkpoint, with ``data_iter`` moved to where it was; the
    template itself and step 0 when there is none."""
    step = mgr.latest_step()
    if step is None:
        return template, 0
    restored = mgr.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()
        ),
    )
    data_iter.set_state(restored.meta["data_state"])
    return restored.state, step


def list_checkpoints(run_dir: Path) -> list[dict[str, Any]]:
    """Every kept checkpoint of a run: [{"step", "flops", "path"}], by step."""
    mgr = _reader(run_dir)
    rows = []
    for step in mgr.all_steps():
        meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        rows.append({"step": step, "flops": meta["flops"], "path": str(mgr.directory / str(step))})
    return sorted(rows, key=lambda r: r["step"])


def _reader(run_dir: Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        (Path(run_dir) / "checkpoints").absolute(),
        options=ocp.CheckpointManagerOptions(read_only=True),
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
        },
    )


def restore_state(run_dir: Path, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(state, meta) of a checkpoint (default: the latest) as a tree of arrays on this process's
    first device, whatever devices saved it (a run trained on 8 GPUs loads on a laptop CPU)."""
    mgr = _reader(run_dir)
    step = mgr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    tree = mgr.item_metadata(step)["state"]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
    restored = mgr.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
        ),
    )
    return restored.state, dict(restored.meta)


# --- verification: a finished run is finished only while its checkpoints are as written --------


def checkpoint_files(run_dir: Path) -> Manifest:
    """The manifest (size, mtime, SHA-256) of every file of the run's kept checkpoints, paths
    relative to the run directory; a finished run records it in its result.json."""
    return file_manifest(Path(run_dir), [Path(run_dir) / "checkpoints"])


def damaged_steps(run_dir: Path, recorded: Manifest | None, steps: Sequence[int]) -> dict:
    """{step: problem} for the checkpoints of a finished run that are missing or changed since
    ``recorded`` was taken (``steps``: the steps that must exist, for results older than the
    manifest)."""
    run_dir = Path(run_dir)
    bad: dict[int, str] = {}
    if recorded is not None:
        for line in verify_manifest(run_dir, recorded):
            rel = Path(line.split(": ", 1)[0]).relative_to(run_dir)
            step = int(rel.parts[1]) if len(rel.parts) > 2 and rel.parts[1].isdigit() else 0
            bad.setdefault(step, line)
    for step in steps:
        if not (run_dir / "checkpoints" / str(step)).is_dir():
            bad.setdefault(step, f"{run_dir / 'checkpoints' / str(step)}: missing")
    return dict(sorted(bad.items()))


def drop_from(run_dir: Path, step: int) -> list[int]:
    """Deletes the run's checkpoints at ``step`` and after (so that training resumes from the
    last good one before it and writes them again); returns the steps deleted."""
    directory = Path(run_dir) / "checkpoints"
    gone = []
    for d in sorted(directory.iterdir()) if directory.is_dir() else []:
        if d.is_dir() and d.name.isdigit() and int(d.name) >= step:
            shutil.rmtree(d)
            gone.append(int(d.name))
    return gone
