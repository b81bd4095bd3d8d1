"""A whole study, stage by stage: data -> sweep -> ratings -> self-play -> ratings -> fits ->
report. Every stage skips work whose results exist: a stage whose inputs (its part of the config
and the fingerprints of the stages before it) are unchanged since it last finished is not run
again, and inside a stage the sweep skips finished runs and the arena games already played.

The workdir's layout and registry belong to ``elocap.workdir``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elocap.execution import Executor
from elocap.files import atomic_write_json
from elocap.workdir import StageRecord, Workdir, read_stage, write_stage
from jobs import study_stages as stages
from jobs.study_config import StudyConfig
from scaling.config import config_hash, to_dict

StageFn = Callable[[StudyConfig, Workdir, Executor], dict[str, Any]]
# (name, the config sections it depends on, the function that runs it)
STAGES: tuple[tuple[str, tuple[str, ...], StageFn], ...] = (
    ("data", ("data",), stages.data),
    ("supervised", ("supervised",), stages.supervised),
    ("arena-supervised", ("arena",), stages.arena_supervised),
    ("selfplay", ("selfplay",), stages.selfplay),
    ("arena-selfplay", ("arena",), stages.arena_selfplay),
    ("ratings", ("analysis",), stages.ratings),
    ("report", ("analysis",), stages.report),
)


def _fingerprint(cfg: StudyConfig, sections: tuple[str, ...], upstream: str) -> str:
    return config_hash([{s: to_dict(getattr(cfg, s)) for s in sections}, upstream], 16)


def run_study(
    cfg: StudyConfig,
    workdir: Path,
    executor: Executor | None = None,
    *,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Runs (or finishes) the study in ``workdir``; returns one row per stage: name, status
    ("ran" or "skipped"), seconds and the stage's summary. Without an executor, Ray is started
    (or joined, with $RAY_ADDRESS) here, once, for every stage."""
    wd = Workdir(root=Path(workdir).absolute())
    records = [read_stage(wd, name) for name, _, _ in STAGES]  # a damaged record: an error now
    if executor is None:
        from jobs.entry import executor as make_executor

        executor = make_executor(log_dir=wd.logs_dir)
    atomic_write_json(wd.study_json, to_dict(cfg))
    rows, upstream = [], ""
    for i, ((name, sections, fn), done) in enumerate(zip(STAGES, records, strict=True), 1):
        fingerprint = _fingerprint(cfg, sections, upstream)
        header = f"[{i}/{len(STAGES)}] {name}"
        if done is not None and done.fingerprint == fingerprint:
            log(f"{header}: done before, skipped")
            rows.append({"stage": name, "status": "skipped", "seconds": 0.0, **done.summary})
        else:
            log(f"{header}: running")
            start = time.perf_counter()
            summary = fn(cfg, wd, executor)
            seconds = time.perf_counter() - start
            write_stage(
                wd,
                StageRecord(
                    stage=name,
                    fingerprint=fingerprint,
                    seconds=seconds,
                    summary=json.loads(json.dumps(summary, default=str)),
                ),
            )
            log(f"{header}: finished in {seconds:.1f} s {_brief(summary)}")
            rows.append({"stage": name, "status": "ran", "seconds": seconds, **summary})
        upstream = fingerprint
    return rows


def _brief(summary: dict[str, Any]) -> str:
    items = [f"{k}={v}" for k, v in summary.items() if isinstance(v, int | float | str)]
    return "(" + ", ".join(items) + ")" if items else ""


def stage_names() -> list[str]:
    return [s[0] for s in STAGES]


def replace_workdir(cfg: StudyConfig, **changes: Any) -> StudyConfig:
    return dataclasses.replace(cfg, **changes)
