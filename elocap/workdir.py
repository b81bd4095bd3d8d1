"""The layout of a study's work directory and its registry (design contract 4).

This module is the only code that spells a path inside a study directory or a column of its
registry files; everything else asks it. Layout::

    study.json                  the resolved study config
    corpus/<name>.pgn           generated corpora (source "ladder")
    data/all/                   the one build of the sources that serves every cap
    data/cap<C>/                each cap's view of it (a manifest the sweep reads as a build)
    runs/<run id>/              supervised and self-play runs: config.json (with its RunInfo:
                                regime, cap, size, parent), metrics.jsonl, checkpoints
    arena/<phase>.pgn           the games of each arena phase
    registry/<phase>.csv        the checkpoints each arena phase rated
    registry/checkpoints.csv    one row per rated agent (checkpoint x arena sims)
    ratings/ratings.csv         Elo with intervals of every player
    report/                     figures, fits.json, index.html
    stages/<stage>.json         what each finished stage ran with and produced
    logs/                       Ray worker logs and the study's own log

A checkpoint has one identity, ``<run id>@<step>``; the arena rates it as "network + N
simulations", a separate column (``sims``) of its registry row, whose ``agent`` is the name the
arena gives that player.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from elocap.files import (
    Manifest,
    atomic_write_json,
    atomic_write_text,
    file_manifest,
    manifest_digest,
    verify_manifest,
)

REGIMES: tuple[str, ...] = ("supervised", "selfplay_cap", "selfplay_scratch")
PHASES: tuple[str, ...] = ("supervised", "selfplay")  # arena phases, in order


def checkpoint_id(run_id: str, step: int) -> str:
    """The one identity of a checkpoint: ``<run id>@<step>``."""
    return f"{run_id}@{int(step)}"


def supervised_run_name(cap: int, size: str, budget: float, digest: str) -> str:
    """``cap<C>-<size>-<budget>-<id>``: readable, and unique by the config hash ``digest``."""
    return f"cap{int(cap)}-{size}-{budget:.0e}-{digest}".replace("+", "")


def selfplay_run_name(cap: int | None, size: str, digest: str) -> str:
    """``selfplay-cap<C>-<size>-<id>`` (continued from a capped checkpoint), or
    ``selfplay-scratch-<size>-<id>`` (from a random initialisation)."""
    tag = "scratch" if cap is None else f"cap{int(cap)}"
    return f"selfplay-{tag}-{size}-{digest}"


def parse_checkpoint_id(text: str) -> tuple[str, int]:
    run, sep, step = text.rpartition("@")
    if not sep or not run or not step.isdigit():
        raise ValueError(f"{text!r} is not a checkpoint id (<run id>@<step>)")
    return run, int(step)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Workdir:
    """Paths of one study directory (nothing is created until written)."""

    root: Path

    @property
    def study_json(self) -> Path:
        return self.root / "study.json"

    def corpus(self, name: str) -> Path:
        return self.root / "corpus" / f"{name}.pgn"

    @property
    def data_root(self) -> Path:
        """Every data build of the study (the per-cap directories and what they share)."""
        return self.root / "data"

    @property
    def data_shared(self) -> Path:
        """The one build of the study's sources every cap's view reads (one pass, every cap)."""
        return self.data_root / "all"

    def data_dir(self, cap: int) -> Path:
        """The directory the sweep reads for cap C: a view of ``data_shared`` (its manifest)."""
        return self.data_root / f"cap{int(cap)}"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    @property
    def arena_dir(self) -> Path:
        return self.root / "arena"

    def arena_log(self, phase: str) -> Path:
        return self.arena_dir / f"{phase}.pgn"

    def arena_logs(self) -> list[Path]:
        """Every arena phase's PGN log that exists, in phase order."""
        return [p for p in (self.arena_log(ph) for ph in PHASES) if p.exists()]

    def phase_registry(self, phase: str) -> Path:
        return self.root / "registry" / f"{phase}.csv"

    @property
    def checkpoints_csv(self) -> Path:
        return self.root / "registry" / "checkpoints.csv"

    @property
    def ratings_csv(self) -> Path:
        return self.root / "ratings" / "ratings.csv"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def stage_record(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"


# --- typed rows ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckpointRow:
    """One rated agent: a checkpoint played as network + ``sims`` simulations."""

    agent: str  # the arena's name of this player (unique in the registry)
    checkpoint: str  # <run id>@<step>: the checkpoint's one identity
    sims: int  # search simulations per move in the arena (0: the raw policy)
    run_id: str  # the run (one learning curve)
    regime: str  # one of REGIMES
    cap: int | None  # the Elo cap of the data; None for self-play from scratch
    size: str  # the named model size, e.g. "30k"
    params: int  # parameter count
    step: int  # training step (supervised) or iteration (self-play) of the checkpoint
    flops: float  # cumulative FLOPs (self-play continues its parent's counter)
    parent: str  # the checkpoint a self-play run continued from ("" otherwise)

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime {self.regime!r} is not one of {', '.join(REGIMES)}")
        if self.cap is None and self.regime != "selfplay_scratch":
            raise ValueError(f"{self.agent}: every {self.regime} row needs a cap")
        if not (self.flops > 0 and self.params > 0) or self.sims < 0:
            raise ValueError(f"{self.agent}: flops and params must be > 0 and sims >= 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RatingRow:
    """One rated player of ``ratings.csv``; lower/upper bound a 90% interval unless told."""

    name: str
    rating: float
    lower: float
    upper: float
    games: float
    score: float


R = TypeVar("R", CheckpointRow, RatingRow)


def columns(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _to_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def _from_cell(hint: Any, text: str, where: str) -> Any:
    options = typing.get_args(hint) or (hint,)
    text = text.strip()
    if text == "" and type(None) in options:
        return None
    base = next(o for o in options if o is not type(None))
    try:
        if base is int:
            number = float(text)
            if not math.isfinite(number) or number != round(number):
                raise ValueError
            return int(number)
        if base is float:
            return float(text)
    except ValueError:
        kind = "an integer" if base is int else "a number"
        raise ValueError(f"{where}: {kind} expected, got {text!r}") from None
    return text


def write_rows(path: Path, rows: Iterable[R], cls: type[R]) -> None:
    """Writes typed rows as CSV (header = the dataclass's fields), atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns(cls))
    for row in rows:
        writer.writerow([_to_cell(getattr(row, c)) for c in columns(cls)])
    atomic_write_text(path, out.getvalue())


def read_rows(path: Path, cls: type[R], what: str) -> list[R]:
    """Typed rows from a CSV written by ``write_rows``; every error names the file, the row and
    the column. Extra columns are ignored; missing ones are an error."""
    if not path.is_file():
        raise OSError(f"{what} not found: {path}")
    hints = typing.get_type_hints(cls)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise ValueError(f"{path}: not a readable CSV file (empty, no header)")
            missing = [c for c in columns(cls) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = []
            for n, raw in enumerate(reader, 2):
                values = {
                    c: _from_cell(hints[c], raw[c] or "", f"{path}: row {n}, column {c}")
                    for c in columns(cls)
                }
                try:
                    rows.append(cls(**values))
                except ValueError as e:
                    raise ValueError(f"{path}: row {n}: {e}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: not a readable CSV file ({e})") from None
    return rows


def _unique(rows: Sequence[Any], key: str, path: Path) -> None:
    seen: set[str] = set()
    for row in rows:
        value = getattr(row, key)
        if value in seen:
            raise ValueError(f"{path}: {key} {value!r} appears more than once")
        seen.add(value)


def write_checkpoints(path: Path, rows: Sequence[CheckpointRow]) -> None:
    _unique(rows, "agent", path)
    write_rows(path, rows, CheckpointRow)


def read_checkpoints(path: Path) -> list[CheckpointRow]:
    rows = read_rows(path, CheckpointRow, "checkpoint registry")
    _unique(rows, "agent", path)
    return rows


def write_ratings(path: Path, rows: Sequence[RatingRow]) -> None:
    _unique(rows, "name", path)
    write_rows(path, rows, RatingRow)


def read_ratings(path: Path) -> list[RatingRow]:
    rows = read_rows(path, RatingRow, "ratings table")
    _unique(rows, "name", path)
    return rows


# --- stage records ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageRecord:
    """What a finished stage ran with (its fingerprint: its config and what its upstream
    produced), what it read from outside the study (``inputs``: the data's source files) and what
    it produced (``outputs``; both manifests of ``elocap.files``, paths relative to the workdir
    or absolute for inputs), and a summary for people and the next stages. A stage is done only
    while its fingerprint matches and both manifests verify."""

    stage: str
    fingerprint: str
    seconds: float
    summary: dict[str, Any]
    inputs: Manifest = dataclasses.field(default_factory=dict)
    outputs: Manifest = dataclasses.field(default_factory=dict)

    @property
    def digest(self) -> str:
        """What the next stage depends on: this stage's fingerprint and its outputs' content."""
        return f"{self.fingerprint}:{manifest_digest(self.outputs)}"

    def problems(self, wd: Workdir) -> list[str]:
        """Why the record no longer holds (a missing or changed input or output), or []."""
        return [*verify_manifest(Path("/"), self.inputs), *verify_manifest(wd.root, self.outputs)]


def write_stage(wd: Workdir, record: StageRecord) -> None:
    atomic_write_json(wd.stage_record(record.stage), dataclasses.asdict(record))


def read_stage(wd: Workdir, stage: str) -> StageRecord | None:
    """The stage's record, None when it has none; a damaged record is an error naming it."""
    path = wd.stage_record(stage)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = StageRecord(**data)
        if record.stage != stage or not isinstance(record.summary, dict):
            raise TypeError
        for manifest in (record.inputs, record.outputs):
            for entry in manifest.values():
                size, mtime, sha = entry
                if not (isinstance(size, int) and isinstance(mtime, int) and isinstance(sha, str)):
                    raise TypeError
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise ValueError(
            f"{path}: not a stage record of {stage!r}; delete it to run the stage again"
        ) from None
    return record


def stage_files(wd: Workdir, paths: Iterable[Path], *, absolute: bool = False) -> Manifest:
    """The manifest of ``paths`` (files or directories) for a stage record."""
    return file_manifest(Path("/") if absolute else wd.root, [Path(p).absolute() for p in paths])


def finished_run_files(run: Path) -> list[Path]:
    """What a finished run leaves for the next stages: its result and its kept checkpoints."""
    return [Path(run) / "result.json", Path(run) / "checkpoints"]
