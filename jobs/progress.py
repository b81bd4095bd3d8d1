"""The study's terminal view: one line per stage (its bar, its unit of work, its time), then
where the report is and its main answer. Everything else (third-party warnings, Ray's and the
libraries' logging) goes to ``logs/study.log`` in the workdir unless ``--verbose``.

A stage's progress is read from the files it writes (the ladder's PGN, the runs' metrics, the
arena's log), so the stages themselves print nothing and need no callback; ``elocap study
status`` could read the same.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from elocap.workdir import Workdir
from jobs.study_config import StudyConfig

BAR = 20


def _count_games(pgn: Path) -> int:
    try:
        data = pgn.read_bytes()
    except OSError:
        return 0
    return data.count(b'\n[Result "') + data.startswith(b'[Result "')


def _last_row(metrics: Path) -> dict[str, Any] | None:
    try:
        lines = metrics.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "flops" in row:
            return row
    return None


def measure(stage: str, cfg: StudyConfig, wd: Workdir) -> tuple[float | None, str]:
    """(fraction done or None, what is done in the stage's unit), from the workdir's files."""
    from jobs import study_plan as plan

    if stage == "data":
        if "ladder" in cfg.data.sources:
            games = _count_games(wd.arena_log("ladder"))  # every ladder game, as it is played
            planned = cfg.data.ladder.games
            if games < planned:
                return games / planned, f"ladder {games}/{planned} games"
        chunks = len(list((wd.data_shared / "chunks").glob("*.json")))
        return None, f"building: {chunks} chunks"
    if stage in ("supervised", "selfplay"):
        runs: list[Any] = (
            plan.supervised_runs(cfg, wd) if stage == "supervised" else plan.selfplay_runs(cfg, wd)
        )
        if not runs:
            return 1.0, "no runs"
        done = spent = total = 0.0
        for r in runs:
            out = Path(r.out_dir)
            budget = float(r.budget_flops or 0)
            total += budget
            if (out / "result.json").exists():
                done += 1
                spent += budget
                continue
            row = _last_row(out / "metrics.jsonl")
            if row is not None:
                start = float(row.get("start_flops", 0.0)) if stage == "selfplay" else 0.0
                spent += min(budget, max(0.0, float(row["flops"]) - start))
        fraction = spent / total if total else None
        return fraction, f"{int(done)}/{len(runs)} runs, {_flops(spent)} of {_flops(total)} FLOPs"
    if stage.startswith("arena-"):
        return None, f"{_count_games(wd.arena_log(stage.removeprefix('arena-')))} games"
    return None, ""


def _flops(x: float) -> str:
    return f"{x:.1e}".replace("e+", "e")


def _bar(fraction: float | None) -> str:
    if fraction is None:
        return " " * BAR
    full = round(max(0.0, min(1.0, fraction)) * BAR)
    return "#" * full + "." * (BAR - full)


class StudyView:
    """Prints the stage lines of ``jobs.study.run_study``. On a terminal the running stage's
    line is redrawn every ``interval`` seconds; elsewhere (a log, CI) only its start and end
    are printed."""

    def __init__(
        self,
        cfg: StudyConfig,
        wd: Workdir,
        *,
        stream: TextIO | None = None,
        interval: float = 1.0,
        live: bool | None = None,
    ) -> None:
        self.cfg, self.wd = cfg, wd
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def _write(self, text: str, *, final: bool) -> None:
        if self.live:
            pad = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + pad + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def header(self, text: str) -> None:
        self._write(text, final=True)

    def begin(self, index: int, count: int, stage: str, why: str | None) -> None:
        head = f"[{index}/{count}] {stage:<16}"
        if why:
            self._write(f"{head} again: {why}", final=True)
        start = time.perf_counter()
        if not self.live:
            return

        def redraw() -> None:
            while not self._stop.wait(self.interval):
                try:
                    fraction, what = measure(stage, self.cfg, self.wd)
                except Exception:  # a view never stops the study
                    fraction, what = None, ""
                elapsed = time.perf_counter() - start
                self._write(f"{head} {_bar(fraction)} {what}  {elapsed:.0f} s", final=False)

        self._stop.clear()
        self._thread = threading.Thread(target=redraw, daemon=True)
        self._thread.start()

    def end(self, index: int, count: int, stage: str, row: dict[str, Any]) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        head = f"[{index}/{count}] {stage:<16}"
        if row["status"] == "skipped":
            self._write(f"{head} {'':<{BAR}} done before", final=True)
            return
        what = ""
        if stage in ("supervised", "selfplay") or stage.startswith("arena-"):
            try:
                what = measure(stage, self.cfg, self.wd)[1]
            except Exception:  # the summary below says it too
                what = ""
        summary = what or brief(row)
        self._write(f"{head} {_bar(1.0)} {summary}  {row['seconds']:.0f} s", final=True)


def brief(row: dict[str, Any]) -> str:
    """A stage's summary as ``key=value`` pairs (numbers and short strings)."""
    skip = {"stage", "status", "seconds"}
    items = [
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in row.items()
        if k not in skip and isinstance(v, int | float | str) and len(str(v)) < 40
    ]
    return ", ".join(items)
