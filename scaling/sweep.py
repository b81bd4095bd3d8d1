"""Sweeps are data: a grid of caps x sizes x FLOP budgets becomes run configs with deterministic
ids (a pure function), and Ray runs one trial per unfinished run.

Plain Ray tasks, not Ray Tune: a trial here is a function of its config with no search, early
stopping or scheduler to coordinate; what a sweep needs is placement by resource request,
retries after a worker dies (``max_retries``; the trial resumes from its latest checkpoint) and
skipping finished runs, which tasks give without Tune's trial-directory and reporting layer.

Each trial asks for ``SweepConfig.resources`` (an ``elocap.execution.Resources``: CPUs, GPUs,
TPU chips, memory, custom resources per host, and ``hosts``): a trial over several hosts runs
as one gang of processes under ``jax.distributed`` (``scaling.distributed``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from data_pipeline.sources import HASH_ALGORITHM
from elocap.execution import Executor, Resources
from elocap.workdir import supervised_run_name
from scaling.config import (
    ModelConfig,
    RunInfo,
    TrainConfig,
    TrainSettings,
    config_hash,
    from_dict,
    load_toml,
    settings_of,
    to_dict,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig(TrainSettings):
    """A grid of supervised runs (sizes x budgets, per cap), the settings they share (every
    field of ``TrainSettings``), and the resources of each trial. Path-free: the study nests it
    as it is, and ``SweepJob`` adds where the data and the runs lie."""

    sizes: tuple[str, ...] = ("10k", "30k")  # names of scaling.model.NAMED_SIZES
    budgets: tuple[float, ...] = (1e11, 3e11)  # training FLOPs per run
    elo_buckets: int = 0  # Elo conditioning (0: off) for every model of the sweep
    elo_bucket_width: int = 100  # rating per Elo bucket
    resources: Resources = dataclasses.field(default_factory=Resources)  # what each trial asks
    max_retries: int = 3  # a trial whose worker dies is run again, from its checkpoint

    def __post_init__(self) -> None:
        super().__post_init__()
        from scaling.model import NAMED_SIZES, param_count

        unknown = [s for s in self.sizes if s not in NAMED_SIZES]
        if unknown:
            raise ValueError(f"unknown sizes {unknown}; choose from {sorted(NAMED_SIZES)}")
        if not self.sizes or not self.budgets:
            raise ValueError("a sweep needs at least one size and one budget")
        if any(not b > 0 for b in self.budgets):
            raise ValueError(f"budgets must be positive FLOP counts, got {list(self.budgets)}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for size in self.sizes:  # a budget below one step would silently train one step
            smallest = step_flops(NAMED_SIZES[size], self.batch_size)
            low = [b for b in self.budgets if b < smallest]
            if low:
                raise ValueError(
                    f"budgets {low} are below one training step of size {size} "
                    f"({param_count(NAMED_SIZES[size]):,} parameters) at batch_size "
                    f"{self.batch_size}: the smallest budget is {smallest:.3g} FLOPs"
                )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepJob(SweepConfig):
    """A sweep with its paths: the ``elocap sweep`` file, or what a study derives."""

    out_dir: str  # runs go to out_dir/<name>-<id>/
    data_dirs: dict[str, str]  # Elo cap -> its `elocap data build` directory

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.data_dirs:
            raise ValueError("a sweep needs at least one cap (data_dirs)")
        for cap in self.data_dirs:
            if not cap.isdigit():
                raise ValueError(f"data_dirs: {cap!r} is not an Elo cap (an integer)")


def step_flops(model: ModelConfig, batch_size: int) -> float:
    """Training FLOPs of one step (the analytic count the budgets are divided by)."""
    from scaling.flops import train_flops_per_position

    return float(train_flops_per_position(model) * batch_size)


# Keys of SweepConfig before resources became one table, and where they went.
RENAMED_KEYS: dict[str, str] = {
    "cpus_per_trial": "[resources] num_cpus",
    "gpus_per_trial": "[resources] num_gpus",
}


def check_renamed_keys(table: dict[str, Any], where: str = "") -> None:
    """A clear error for a sweep table (plain TOML data) written for the old resource keys:
    ``cpus_per_trial``, ``gpus_per_trial`` and ``resources = {TPU = 4}`` (a custom map)."""
    old = [k for k in RENAMED_KEYS if k in table]
    resources = table.get("resources")
    if isinstance(resources, dict):
        fields = {f.name for f in dataclasses.fields(Resources)}
        old += [f"resources.{k}" for k in resources if k not in fields]
    if old:
        moves = ", ".join(f"{k} -> {where}{RENAMED_KEYS.get(k, '[resources] ...')}" for k in old)
        raise ValueError(
            f"{where or 'sweep config'}: {old} are the old resource keys; a trial's resources "
            f"are now one table [{where}resources] (num_cpus, num_gpus, num_tpus, memory_gib, "
            f"resources = {{name = amount}}, hosts, tpu_slice): {moves}"
        )


def load_sweep_config(path: Path) -> SweepJob:
    import contextlib
    import tomllib

    if Path(path).is_file():
        with open(path, "rb") as f, contextlib.suppress(tomllib.TOMLDecodeError):
            check_renamed_keys(tomllib.load(f))  # (bad TOML: load_toml names the error)
    return load_toml(SweepJob, path, "sweep config")


def data_identity(data_dir: Path) -> str:
    """The identity of a finished data build: a hash of its config and its sources' sizes and
    checksums (not of where it lies), so a run id changes when its data does."""
    manifest = Path(data_dir) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} does not exist: build the data first")
    try:
        m = json.loads(manifest.read_text())
        if m.get("build_id"):  # the build's own identity (config and sources' contents)
            return str(m["build_id"])[:16]
        sources = [[s["bytes"], s.get(HASH_ALGORITHM)] for s in m["sources"]]
        return config_hash({"config": m["config"], "sources": sources}, 16)
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{manifest}: not a data build manifest") from None


def run_id(cfg: TrainConfig) -> str:
    """A hash of the resolved config without its paths (the data enters through
    ``info.data``): the same run always gets one id, wherever the workdir lies."""
    data = to_dict(cfg)
    data.pop("out_dir")
    data.pop("data_dir")
    return config_hash(data)


def run_configs(job: SweepJob) -> list[TrainConfig]:
    """The sweep's runs, in grid order (cap, size, budget), each with its own directory. The
    data builds must exist (their identity enters the run ids)."""
    from scaling.model import NAMED_SIZES

    runs = []
    shared = settings_of(job)
    for cap, data_dir in sorted(job.data_dirs.items(), key=lambda kv: int(kv[0])):
        identity = data_identity(Path(data_dir))
        for size in job.sizes:
            model = dataclasses.replace(
                NAMED_SIZES[size],
                elo_buckets=job.elo_buckets,
                elo_bucket_width=job.elo_bucket_width,
            )
            for budget in job.budgets:
                info = RunInfo(regime="supervised", cap=int(cap), size=size, data=identity)
                cfg = TrainConfig(
                    **shared,
                    data_dir=str(data_dir),
                    out_dir="",
                    model=model,
                    budget_flops=float(budget),
                    info=info,
                )
                name = supervised_run_name(int(cap), size, budget, run_id(cfg))
                out = str(Path(job.out_dir) / name)
                runs.append(dataclasses.replace(cfg, out_dir=out))
    return runs


def _trial(cfg_data: dict[str, Any]) -> dict[str, Any]:
    """One trial, in one process of its gang (several hosts) or alone."""
    from scaling import distributed

    distributed.initialize()  # the gang's process group, from the task's environment
    from scaling.train import train

    return train(from_dict(TrainConfig, cfg_data))


def run_sweep(job: SweepJob, executor: Executor, *, progress: bool = True) -> list[dict[str, Any]]:
    """Runs every unfinished run of the sweep on ``executor`` (one trial per run, retried from
    its checkpoint up to ``max_retries`` times); returns each run's result, in grid order."""
    runs = run_configs(job)
    todo = [cfg for cfg in runs if not run_finished(Path(cfg.out_dir))]
    work = [(to_dict(cfg),) for cfg in todo]
    finished = executor.map_unordered(
        _trial, work, resources=job.resources, window=len(work), max_retries=job.max_retries
    )
    for done, (i, _) in enumerate(finished, 1):
        if progress:
            print(f"finished {Path(todo[i].out_dir).name} ({len(todo) - done} left)", flush=True)
    return [json.loads((Path(c.out_dir) / "result.json").read_text()) for c in runs]


def run_finished(out: Path) -> bool:
    """A run is finished when its result is written and its checkpoints are as it wrote them
    (``scaling.train.repair_finished`` clears a damaged one, which then trains again)."""
    path = out / "result.json"
    if not path.exists():
        return False
    from scaling.train import repair_finished

    return not repair_finished(out, json.loads(path.read_text()))


def status_rows(sweep: SweepJob) -> list[dict[str, Any]]:
    """One row per run: name, state, progress, FLOPs and the latest training loss."""
    rows = []
    for cfg in run_configs(sweep):
        out = Path(cfg.out_dir)
        plan = _read_json(out / "plan.json")
        last = _last_metrics(out / "metrics.jsonl")
        if (out / "result.json").exists():
            state = "done"
        elif last is not None:
            state = "started"
        else:
            state = "pending"
        total = plan["total_steps"] if plan else None
        step = last["step"] if last else 0
        rows.append(
            {
                "run": out.name,
                "state": state,
                "step": step,
                "total_steps": total,
                "progress": None if not total else step / total,
                "flops": last["flops"] if last else 0.0,
                "loss": last.get("loss") if last else None,
            }
        )
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'run':<40} {'state':<8} {'progress':>9} {'FLOPs':>10} {'loss':>8}"]
    for r in rows:
        progress = "-" if r["progress"] is None else f"{r['progress']:.0%}"
        loss = "-" if r["loss"] is None else f"{r['loss']:.4f}"
        lines.append(f"{r['run']:<40} {r['state']:<8} {progress:>9} {r['flops']:>10.3g} {loss:>8}")
    return "\n".join(lines)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _last_metrics(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    last = None
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("split") == "train":
            last = row
    return last
