"""A whole study, stage by stage: data -> sweep -> ratings -> self-play -> ratings -> fits ->
report, tracked like make: a stage is done while its record (``stages/<stage>.json``) matches
its part of the config and what the stage before it produced, and the files it read from outside
(the data's sources) and the files it produced (with sizes and checksums) verify. A stage that is
not done runs again and redoes only what is missing inside it (the sweep trains a run with a
missing checkpoint from its last good one, the arena plays the games a cut log lost), and when
its outputs change, every later stage is stale too.

The workdir's layout and registry belong to ``elocap.workdir``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from elocap.execution import Executor
from elocap.files import atomic_write_json
from elocap.workdir import (
    StageRecord,
    Workdir,
    finished_run_files,
    read_stage,
    stage_files,
    write_stage,
)
from jobs import study_plan as plan
from jobs import study_stages as stages
from jobs.progress import brief
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


def stage_inputs(name: str, cfg: StudyConfig) -> list[Path]:
    """The files a stage reads from outside the study directory."""
    if name != "data":
        return []
    from data_pipeline.sources import expand_spec  # ${ELOCAP_DATA}/... as the data stage reads it

    paths = [Path(expand_spec(s)) for s in cfg.data.sources if s != "ladder"]
    return [p for p in paths if p.exists()]


def stage_outputs(name: str, cfg: StudyConfig, wd: Workdir) -> list[Path]:
    """The files and directories a finished stage leaves for the next ones."""
    if name == "data":
        ladder = (
            [wd.corpus("ladder"), *plan.ladder_log(cfg, wd)] if "ladder" in cfg.data.sources else []
        )
        return [*ladder, wd.data_root]
    if name in ("supervised", "selfplay"):
        runs = (
            plan.supervised_runs(cfg, wd) if name == "supervised" else plan.selfplay_runs(cfg, wd)
        )
        return [f for r in runs for f in finished_run_files(Path(r.out_dir))]
    if name.startswith("arena-"):
        phase = name.removeprefix("arena-")
        return [wd.arena_log(phase), wd.phase_registry(phase)]
    if name == "ratings":
        return [wd.ratings_csv, wd.checkpoints_csv]
    return [wd.report_dir]


class StageView(Protocol):
    """What ``run_study`` tells as it goes (``jobs.progress.StudyView`` draws it)."""

    def begin(self, index: int, count: int, stage: str, why: str | None) -> None: ...

    def end(self, index: int, count: int, stage: str, row: dict[str, Any]) -> None: ...


@dataclasses.dataclass
class LogView:
    """Plain lines through ``log``: ``[i/n] stage: running (why)``, ``... finished in S s``."""

    log: Callable[[str], None] = print

    def begin(self, index: int, count: int, stage: str, why: str | None) -> None:
        self.log(f"[{index}/{count}] {stage}: running{'' if why is None else f' ({why})'}")

    def end(self, index: int, count: int, stage: str, row: dict[str, Any]) -> None:
        header = f"[{index}/{count}] {stage}"
        if row["status"] == "skipped":
            self.log(f"{header}: done before, skipped")
        else:
            self.log(f"{header}: finished in {row['seconds']:.1f} s ({brief(row)})")


def run_study(
    cfg: StudyConfig,
    workdir: Path,
    executor: Executor | None = None,
    *,
    log: Callable[[str], None] = print,
    view: StageView | None = None,
) -> list[dict[str, Any]]:
    """Runs (or finishes) the study in ``workdir``; returns one row per stage: name, status
    ("ran" or "skipped"), seconds and the stage's summary. Without an executor, Ray is started
    (or joined, with $RAY_ADDRESS) here, once, for every stage. ``view`` (default: plain lines
    through ``log``) is told when each stage begins and ends."""
    wd = Workdir(root=Path(workdir).absolute())
    view = view or LogView(log)
    records = [read_stage(wd, name) for name, _, _ in STAGES]  # a damaged record: an error now
    check_engines(cfg)  # before Ray starts: one line, not a traceback from a worker
    if executor is None:
        from jobs.entry import executor as make_executor

        executor = make_executor(log_dir=wd.logs_dir)
    atomic_write_json(wd.study_json, to_dict(cfg))
    rows, upstream = [], ""
    n = len(STAGES)
    for i, ((name, sections, fn), done) in enumerate(zip(STAGES, records, strict=True), 1):
        fingerprint = _fingerprint(cfg, sections, upstream)
        stale = _why_stale(done, fingerprint, wd)
        if done is not None and stale is None:
            row = {"stage": name, "status": "skipped", "seconds": 0.0, **done.summary}
            view.end(i, n, name, row)
        else:
            view.begin(i, n, name, stale)
            start = time.perf_counter()
            summary = fn(cfg, wd, executor)
            seconds = time.perf_counter() - start
            done = StageRecord(
                stage=name,
                fingerprint=fingerprint,
                seconds=seconds,
                summary=json.loads(json.dumps(summary, default=str)),
                inputs=stage_files(wd, stage_inputs(name, cfg), absolute=True),
                outputs=stage_files(wd, stage_outputs(name, cfg, wd)),
            )
            write_stage(wd, done)
            row = {"stage": name, "status": "ran", "seconds": seconds, **summary}
            view.end(i, n, name, row)
        rows.append(row)
        upstream = done.digest
    return rows


def check_engines(cfg: StudyConfig) -> list[str]:
    """The engines the study plays (the ladder corpus, Stockfish anchors), each found on PATH
    or in /usr/games; a missing one is FileNotFoundError saying what to install."""
    from mcts.agents import find_engine

    needed = {"stockfish"} if "ladder" in cfg.data.sources else set()
    needed |= {a.split(":", 1)[0] for a in cfg.arena.anchors if a.startswith("stockfish")}
    return [find_engine(name) for name in sorted(needed)]


def _why_stale(done: StageRecord | None, fingerprint: str, wd: Workdir) -> str | None:
    """None when the record holds; otherwise what changed (the first damaged file, named)."""
    if done is None:
        return None
    if done.fingerprint != fingerprint:
        return "its config or an earlier stage changed"
    problems = done.problems(wd)
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        return f"{problems[0]}{more}; redoing what that affects"
    return None


def stage_names() -> list[str]:
    return [s[0] for s in STAGES]


def replace_workdir(cfg: StudyConfig, **changes: Any) -> StudyConfig:
    return dataclasses.replace(cfg, **changes)
