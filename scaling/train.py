"""One supervised run: the train step of ``scaling.step`` over a data-parallel mesh of every
device (parameters replicated, or sharded with ``fsdp``), orbax checkpoints at log-spaced
cumulative FLOPs, exact resume, metrics in ``metrics.jsonl`` and TensorBoard.

A run may span several processes (``scaling.distributed``; the caller joins the group first):
each reads the same batches and feeds its own devices, every process writes its part of each
orbax checkpoint, and process 0 alone writes the files below.

Run directory (``TrainConfig.out_dir``)::

    config.json      the resolved config (the run id hashes it)
    metrics.jsonl    one JSON object per logged step ({"split": "train" | "val", "step", ...})
    checkpoints/     orbax: parameters, optimiser state, RNG, data-iterator state, FLOP counter
    tb/              TensorBoard events
    result.json      written last: the run is finished
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from data_pipeline import loader
from elocap.files import atomic_write_text
from scaling import checkpoints, distributed, flops
from scaling.batch import BatchSpec, supervised_batch
from scaling.config import TrainConfig, to_dict
from scaling.model import init_params
from scaling.step import TrainStep, compute_dtype, data_mesh, make_train_step, step_flops

log = logging.getLogger(__name__)


def planned_steps(cfg: TrainConfig, spec: BatchSpec) -> int:
    """The run's length: ``cfg.steps``, or the steps that spend ``cfg.budget_flops`` by XLA's
    count of the step (``step_flops``: compiled for one device whatever the mesh, with a
    provisional schedule; the optimiser's schedule depends on the length, its length does not
    change the FLOPs)."""
    if cfg.steps is not None:
        return cfg.steps
    per_step = step_flops(cfg.model, cfg.optim, total_steps=1, spec=spec, dtype=cfg.dtype)
    return flops.steps_for_budget(float(cfg.budget_flops or 0), per_step)


def milestone_steps(total_steps: int, count: int) -> list[int]:
    """At least ``count`` distinct steps (or all steps, if fewer), log-spaced in cumulative
    FLOPs from the first step to the last; FLOPs are proportional to steps within a run."""
    if total_steps <= count:
        return list(range(1, total_steps + 1))
    n = count
    while True:
        steps = sorted({round(x) for x in np.geomspace(1, total_steps, n)})
        if len(steps) >= count:
            return steps
        n += 1


def train(cfg: TrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Runs (or resumes, or confirms) one run; returns its result. In a multi-process run
    every process calls it (process 0 checks and repairs the run's record for all)."""
    out = Path(cfg.out_dir)
    result_path = out / "result.json"
    primary = distributed.is_primary()
    finished = None
    if primary and result_path.exists():
        finished = dict(json.loads(result_path.read_text()))
        if repair_finished(out, finished):
            finished = None
    distributed.barrier("elocap-train-checked")
    if not primary and result_path.exists():
        finished = dict(json.loads(result_path.read_text()))
    if finished is not None:
        return finished
    loader.shard_paths(Path(cfg.data_dir), "train")  # a missing build: an error, nothing written
    out.mkdir(parents=True, exist_ok=True)
    if primary:
        _claim_run_dir(out, cfg)

    mesh = data_mesh()
    spec = BatchSpec(batch_size=cfg.batch_size)
    total = planned_steps(cfg, spec)
    fns = make_train_step(
        cfg.model,
        cfg.optim,
        total_steps=total,
        spec=spec,
        mesh=mesh,
        dtype=cfg.dtype,
        fsdp=cfg.fsdp,
    )
    rng = jax.random.PRNGKey(cfg.seed)
    state = fns.init(init_params(cfg.model, rng), rng)
    keep = milestone_steps(total, cfg.milestones)
    plan = {
        "total_steps": total,
        "flops_per_step": fns.flops_per_step,
        "analytic_flops_per_step": fns.analytic_flops_per_step,
        "milestones": keep,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "processes": jax.process_count(),
        "devices": mesh.size,
        "fsdp": cfg.fsdp,
        "ray_node": _ray_node(),
    }
    if primary:
        atomic_write_text(out / "plan.json", json.dumps(plan, indent=1))
    manager = checkpoints.manager(out / "checkpoints", keep)
    data = loader.dataset(Path(cfg.data_dir), "train", _loader_config(cfg))
    it = iter(data)
    state, start = checkpoints.restore_latest(manager, state, it)
    metrics_log = MetricsLog(out / "metrics.jsonl", keep_through=start, files=primary)
    peak = flops.device_peak_flops(mesh.devices.flat[0], compute_dtype(cfg.dtype))
    t0, last = time.perf_counter(), start
    for step in range(start + 1, total + 1):
        state, metrics = fns.train_step(state, fns.put(supervised_batch(next(it))))
        if step % cfg.log_every == 0 or step == total:
            metrics = jax.device_get(metrics)
            elapsed = time.perf_counter() - t0
            rate = (step - last) * cfg.batch_size / max(elapsed, 1e-9)
            row: dict[str, Any] = {k: float(v) for k, v in metrics.items()}
            row.update(
                split="train",
                step=step,
                positions=step * cfg.batch_size,
                flops=step * fns.flops_per_step,
                positions_per_s=rate,
                mfu=None
                if peak is None
                else flops.mfu(rate / cfg.batch_size * fns.flops_per_step, peak),
            )
            metrics_log.write(row)
            if progress and primary:
                print(f"step {step}/{total} loss {row['loss']:.4f} {rate:.0f} pos/s", flush=True)
            t0, last = time.perf_counter(), step
        is_eval = cfg.eval_every and step % cfg.eval_every == 0
        if is_eval or step == total:
            metrics_log.write(
                {
                    "split": "val",
                    "step": step,
                    "flops": step * fns.flops_per_step,
                    **evaluate(cfg, fns, state.params),
                }
            )
        if step in keep or step == total or step % cfg.checkpoint_every == 0:
            checkpoints.save(manager, step, state, it, step * fns.flops_per_step)
    manager.wait_until_finished()
    metrics_log.close()
    result: dict[str, Any] = {
        "steps": total,
        "flops": total * fns.flops_per_step,
        "flops_per_step": fns.flops_per_step,
        "analytic_flops_per_step": fns.analytic_flops_per_step,
        "milestones": keep,
        "final": metrics_log.last("val"),
    }
    distributed.barrier("elocap-train-saved")  # every process's part of every checkpoint
    if primary:
        result["checkpoint_files"] = checkpoints.checkpoint_files(out)
        atomic_write_text(result_path, json.dumps(result, indent=1))
    distributed.barrier("elocap-train-finished")
    return result


def repair_finished(out: Path, result: dict[str, Any]) -> bool:
    """False when the finished run's checkpoints are all as written. Otherwise says which is
    damaged, deletes it and the later ones and the result, so that the run trains again from its
    last good checkpoint (exact resume: the same parameters as before), and returns True."""
    steps = [*result.get("milestones", []), result["steps"]]
    bad = checkpoints.damaged_steps(out, result.get("checkpoint_files"), steps)
    if not bad:
        return False
    step, problem = next(iter(bad.items()))
    log.warning(
        "%s; training %s again from its last good checkpoint before step %d",
        problem,
        out.name,
        step,
    )
    checkpoints.drop_from(out, step)
    (out / "result.json").unlink()
    return True


def evaluate(cfg: TrainConfig, fns: TrainStep, params: Any) -> dict[str, float]:
    """Mean metrics over ``cfg.eval_batches`` batches of the validation split (fixed order)."""
    val_cfg = loader.LoaderConfig(batch_size=cfg.batch_size, seed=cfg.seed + 1)
    it = iter(loader.dataset(Path(cfg.data_dir), "val", val_cfg))
    rows = [
        jax.device_get(fns.eval_step(params, fns.put(supervised_batch(next(it)))))
        for _ in range(cfg.eval_batches)
    ]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _loader_config(cfg: TrainConfig) -> loader.LoaderConfig:
    return loader.LoaderConfig(
        batch_size=cfg.batch_size, seed=cfg.seed, worker_count=cfg.loader_workers
    )


def _claim_run_dir(out: Path, cfg: TrainConfig) -> None:
    """Writes config.json, or checks that the directory's run has this very config (its
    directories may have moved: run ids do not depend on where the study lies)."""
    path = out / "config.json"
    data = to_dict(cfg)
    if path.exists():
        old = json.loads(path.read_text())
        if _without_paths(old) != _without_paths(data):
            raise ValueError(f"{out} holds a run with another config; use another out_dir")
        if old == data:
            return
    # new, or the same run in a moved directory: the paths are where it is now
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def _without_paths(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("out_dir", "data_dir")}


class MetricsLog:
    """``metrics.jsonl`` (appended, flushed per line) and TensorBoard. Opening it for a run
    resumed at ``keep_through`` drops the lines of later steps (or of the rows' ``key``), which
    the run will redo, so the file never has a gap or a duplicate step. ``files=False`` (the
    other processes of a multi-process run) keeps the rows in memory only."""

    def __init__(
        self, path: Path, *, keep_through: int, key: str = "step", files: bool = True
    ) -> None:
        self.path = path
        rows = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row[key] <= keep_through:
                    rows.append(row)
        self.rows = rows
        self._file: Any = None
        self._tb: Any = None
        if files:
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives with the run)
            self._tb = _tensorboard(path.parent / "tb")

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._file is None:
            return
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "step":
                    self._tb.add_scalar(f"{row['split']}/{key}", value, row["step"])
            self._tb.flush()

    def last(self, split: str) -> dict[str, Any] | None:
        return next((r for r in reversed(self.rows) if r["split"] == split), None)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def _ray_node() -> str | None:
    """The Ray node this runs on, inside a Ray task (where a trial landed); else None."""
    import sys

    if "ray" not in sys.modules:
        return None
    import ray

    if not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


def _tensorboard(directory: Path) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # TensorBoard is optional; metrics.jsonl is the record
        return None
    return SummaryWriter(str(directory))
