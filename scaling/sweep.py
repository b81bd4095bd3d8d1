"""Sweeps are data: a grid of caps x sizes x FLOP budgets becomes run configs with deterministic
ids (a pure function), and Ray runs one trial per unfinished run.

Plain Ray tasks, not Ray Tune: a trial here is a function of its config with no search, early
stopping or scheduler to coordinate; what a sweep needs is placement by resource request,
retries after a worker dies (``max_retries``; the trial resumes from its latest checkpoint) and
skipping finished runs, which tasks give without Tune's trial-directory and reporting layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from scaling.config import OptimConfig, TrainConfig, from_dict, to_dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """A grid of supervised runs and the resources of each trial."""

    out_dir: str  # runs go to out_dir/<name>-<id>/
    data_dirs: dict[str, str]  # Elo cap -> its `elocap data build` directory
    sizes: tuple[str, ...]  # names of scaling.model.NAMED_SIZES
    budgets: tuple[float, ...]  # training FLOPs per run
    elo_buckets: int = 0  # Elo conditioning (0: off) for every model of the sweep
    batch_size: int = 256
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    seed: int = 0
    milestones: int = 16
    checkpoint_every: int = 200
    log_every: int = 10
    eval_batches: int = 8
    dtype: str = "auto"
    cpus_per_trial: float = 1.0  # Ray resource request of each trial
    gpus_per_trial: float = 0.0
    max_retries: int = 3  # a trial whose worker dies is run again, from its checkpoint

    def __post_init__(self) -> None:
        from scaling.model import NAMED_SIZES

        unknown = [s for s in self.sizes if s not in NAMED_SIZES]
        if unknown:
            raise ValueError(f"unknown sizes {unknown}; choose from {sorted(NAMED_SIZES)}")
        if not self.data_dirs or not self.sizes or not self.budgets:
            raise ValueError("a sweep needs at least one cap (data_dirs), size and budget")
        if any(b <= 0 for b in self.budgets):
            raise ValueError("budgets must be positive FLOP counts")


def load_sweep_config(path: Path) -> SweepConfig:
    with open(path, "rb") as f:
        return from_dict(SweepConfig, tomllib.load(f))


def run_id(cfg: TrainConfig) -> str:
    """A hash of the resolved config, ``out_dir`` excluded: the same run always gets one id."""
    data = to_dict(cfg)
    data.pop("out_dir")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def run_configs(sweep: SweepConfig) -> list[TrainConfig]:
    """The sweep's runs, in grid order (cap, size, budget), each with its own directory."""
    from scaling.model import NAMED_SIZES

    runs = []
    for cap, data_dir in sorted(sweep.data_dirs.items()):
        for size in sweep.sizes:
            model = dataclasses.replace(NAMED_SIZES[size], elo_buckets=sweep.elo_buckets)
            for budget in sweep.budgets:
                cfg = TrainConfig(
                    data_dir=data_dir,
                    out_dir="",
                    model=model,
                    optim=sweep.optim,
                    batch_size=sweep.batch_size,
                    budget_flops=float(budget),
                    seed=sweep.seed,
                    milestones=sweep.milestones,
                    checkpoint_every=sweep.checkpoint_every,
                    log_every=sweep.log_every,
                    eval_batches=sweep.eval_batches,
                    dtype=sweep.dtype,
                )
                name = f"cap{cap}-{size}-{budget:.0e}".replace("+", "")
                out = str(Path(sweep.out_dir) / f"{name}-{run_id(cfg)}")
                runs.append(dataclasses.replace(cfg, out_dir=out))
    return runs


def _trial(cfg_data: dict[str, Any]) -> dict[str, Any]:
    from scaling.train import train

    return train(from_dict(TrainConfig, cfg_data))


def run_sweep(sweep: SweepConfig, *, progress: bool = True) -> list[dict[str, Any]]:
    """Runs every unfinished run of the sweep on Ray (started locally if not running);
    returns each run's result, in grid order."""
    import ray

    runs = run_configs(sweep)
    todo = [cfg for cfg in runs if not (Path(cfg.out_dir) / "result.json").exists()]
    if todo:
        if not ray.is_initialized():
            ray.init(include_dashboard=False)
        task = ray.remote(_trial).options(
            num_cpus=sweep.cpus_per_trial,
            num_gpus=sweep.gpus_per_trial,
            max_retries=sweep.max_retries,
            retry_exceptions=True,
        )
        pending = {task.remote(_as_data(cfg)): cfg for cfg in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cfg = pending.pop(ready[0])
            ray.get(ready[0])  # re-raises a trial's last failure after its retries
            if progress:
                print(f"finished {Path(cfg.out_dir).name} ({len(pending)} left)", flush=True)
    return [json.loads((Path(c.out_dir) / "result.json").read_text()) for c in runs]


def _as_data(cfg: TrainConfig) -> dict[str, Any]:
    data = to_dict(cfg)
    data["model"] = to_dict(cfg.model)
    return data


def status_rows(sweep: SweepConfig) -> list[dict[str, Any]]:
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
