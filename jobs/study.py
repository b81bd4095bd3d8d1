"""A whole study, stage by stage: data -> sweep -> ratings -> self-play -> ratings -> fits ->
report. Every stage skips work whose results exist: a stage whose inputs (its part of the config
and the fingerprints of the stages before it) are unchanged since it last finished is not run
again, and inside a stage the sweep skips finished runs and the arena games already played.

Workdir layout (the run registry of contract 4, read by ``analysis.registry``):
    study.json                 the resolved config
    corpus/ladder.pgn          the synthetic corpus (source "ladder")
    data/cap<C>/               data builds, one per cap
    runs/<run>/                supervised and self-play runs (config.json, metrics.jsonl, ckpts)
    arena/<phase>.pgn          the games of each arena phase
    ratings/ratings.csv        Elo with intervals, every agent of every phase
    registry/checkpoints.csv   one row per evaluated checkpoint (run, regime, cap, size, FLOPs)
    report/index.html          figures and fitted parameters
    stages/<stage>.json        what each finished stage was run with
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from data_pipeline.files import atomic_write_text
from jobs import study_stages as stages
from jobs.study_config import StudyConfig
from scaling.config import to_dict

# (name, the config sections it depends on, the function that runs it)
Stage = tuple[str, tuple[str, ...], Callable[[StudyConfig, Path], dict[str, Any]]]
STAGES: tuple[Stage, ...] = (
    ("data", ("data",), stages.data),
    ("supervised", ("supervised",), stages.supervised),
    ("arena-supervised", ("arena",), stages.arena_supervised),
    ("selfplay", ("selfplay",), stages.selfplay),
    ("arena-selfplay", ("arena",), stages.arena_selfplay),
    ("ratings", ("analysis",), stages.ratings),
    ("report", ("analysis",), stages.report),
)


def _fingerprint(cfg: StudyConfig, sections: tuple[str, ...], upstream: str) -> str:
    data = {s: to_dict(getattr(cfg, s)) for s in sections}
    text = json.dumps([data, upstream], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_study(cfg: StudyConfig, workdir: Path, *, log: Callable[[str], None] = print) -> list[dict]:
    """Runs (or finishes) the study in ``workdir``; returns one row per stage: name, status
    ("ran" or "skipped"), seconds and the stage's summary."""
    workdir = workdir.absolute()
    (workdir / "stages").mkdir(parents=True, exist_ok=True)
    atomic_write_text(workdir / "study.json", json.dumps(to_dict(cfg), indent=1, default=str))
    rows, upstream = [], ""
    for i, (name, sections, fn) in enumerate(STAGES, 1):
        marker = workdir / "stages" / f"{name}.json"
        fingerprint = _fingerprint(cfg, sections, upstream)
        done = json.loads(marker.read_text()) if marker.exists() else None
        header = f"[{i}/{len(STAGES)}] {name}"
        if done is not None and done["fingerprint"] == fingerprint:
            log(f"{header}: done before, skipped")
            rows.append({"stage": name, "status": "skipped", "seconds": 0.0, **done["summary"]})
        else:
            log(f"{header}: running")
            start = time.perf_counter()
            summary = fn(cfg, workdir)
            seconds = time.perf_counter() - start
            record = {"fingerprint": fingerprint, "seconds": seconds, "summary": summary}
            atomic_write_text(marker, json.dumps(record, indent=1, default=str))
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
