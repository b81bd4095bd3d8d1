"""The data build: PGN sources -> filtered, encoded, split array_record shards + manifest.json.

Work is cut into chunks of ``chunk_games`` consecutive games of one source (rejected games
count too, so chunk boundaries depend only on the source bytes). The driver streams each source
once, ships each chunk to a Ray task (``chunks.process_chunk``), and keeps a bounded number of
tasks in flight, so memory stays flat. A chunk whose record exists is finished and skipped, so
an interrupted build resumes where it stopped, and the manifest, built from the chunk records
alone, is the same as after an uninterrupted build.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from data_pipeline import decode, encoding, sources
from data_pipeline.chunks import (
    ELO_BIN,
    EXAMPLES_PER_REASON,
    REPAIR,
    SPLITS,
    BuildConfig,
    DamagedBuildError,
    SplitConfig,
    process_chunk,
    shard_problem,
)
from data_pipeline.files import atomic_write_text
from data_pipeline.filters import REASONS
from data_pipeline.pgn import RawGame, iter_raw_games

__all__ = [
    "SPLITS",
    "BuildConfig",
    "BuildError",
    "DamagedBuildError",
    "SplitConfig",
    "build",
    "make_manifest",
    "verify_build",
]
MANIFEST_VERSION = 1


# --- chunking ----------------------------------------------------------------------------------


@dataclasses.dataclass
class SourceScan:
    """What the driver learns while streaming one source."""

    source: sources.Source
    chunks: list[str] = dataclasses.field(default_factory=list)
    size: int | None = None
    digest: str | None = None
    error: str | None = None


def iter_chunks(
    scan: SourceScan, source_index: int, chunk_games: int
) -> Iterator[tuple[str, list[RawGame]]]:
    """(key, games) of each chunk of a source, in order; records size, hash and any error."""
    games: list[RawGame] = []
    chunk = 0
    try:
        with sources.open_source(scan.source) as stream:
            try:
                for game in iter_raw_games(stream, stray_text=False):  # split in the tasks
                    games.append(game)
                    if len(games) == chunk_games:
                        yield _chunk_key(source_index, chunk), games
                        chunk, games = chunk + 1, []
            except sources.SourceError as e:
                scan.error = str(e)
            scan.size, scan.digest = stream.raw_bytes_read, stream.digest()
    except sources.SourceError as e:
        scan.error = str(e)
    if games:
        yield _chunk_key(source_index, chunk), games


def _chunk_key(source_index: int, chunk: int) -> str:
    return f"s{source_index:04d}-c{chunk:06d}"


# --- the manifest ------------------------------------------------------------------------------


def make_manifest(cfg: BuildConfig, scans: Sequence[SourceScan], out_dir: Path) -> dict[str, Any]:
    """The manifest of a finished build, from its chunk records (deterministic: no times)."""
    totals: collections.Counter[str] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    positions: collections.Counter[str] = collections.Counter()
    elo_hist: collections.Counter[int] = collections.Counter()
    source_rows, shards = [], []
    for scan in scans:
        row_rejected: collections.Counter[str] = collections.Counter()
        row_examples: dict[str, list[Any]] = {}
        games = kept = 0
        for key in scan.chunks:
            rec = json.loads((out_dir / "chunks" / f"{key}.json").read_text())
            games, kept = games + rec["games"], kept + rec["kept"]
            row_rejected.update(rec["rejected"])
            for reason, ex in rec["rejected_examples"].items():
                row_examples.setdefault(reason, [])
                row_examples[reason] += ex[: EXAMPLES_PER_REASON - len(row_examples[reason])]
            positions.update(rec["positions"])
            elo_hist.update({int(k): v for k, v in rec["elo_histogram"].items()})
            shards += rec["shards"]
        totals.update(games=games, kept=kept)
        rejected.update(row_rejected)
        source_rows.append(
            {
                "name": scan.source.name,
                "compression": scan.source.compression,
                "bytes": scan.size,
                sources.HASH_ALGORITHM: scan.digest,
                "games": games,
                "kept": kept,
                "rejected": dict(sorted(row_rejected.items())),
                "rejected_examples": dict(sorted(row_examples.items())),
                "chunks": len(scan.chunks),
                "error": scan.error,
            }
        )
    return {
        "version": MANIFEST_VERSION,
        "config": cfg.to_json(),
        "encoding": {
            "obs_len": encoding.OBS_LEN,
            "num_actions": encoding.NUM_ACTIONS,
            "example_dtype": decode.EXAMPLE_DTYPE.descr,
            "example_bytes": decode.EXAMPLE_DTYPE.itemsize,
        },
        "sources": source_rows,
        "games": totals["games"],
        "kept": totals["kept"],
        "rejected": dict(sorted(rejected.items())),
        "reasons": {k: REASONS[k] for k in sorted(rejected)},
        "elo_histogram": {
            "bin_width": ELO_BIN,
            "player_ratings": {str(k): v for k, v in sorted(elo_hist.items())},
        },
        "positions": {name: positions[name] for name in SPLITS},
        "shards": shards,
    }


def progress_enabled() -> bool:
    return sys.stderr.isatty()


# --- the driver --------------------------------------------------------------------------------


class BuildError(Exception):
    """A build that cannot start (wrong output directory, no sources)."""


def build(
    specs: Sequence[str],
    out_dir: Path,
    cfg: BuildConfig,
    *,
    workers: int | None = None,
    use_ray: bool = True,
    progress: bool | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Builds (or resumes, or confirms) the shards and manifest of ``specs`` in ``out_dir``."""
    out_dir = Path(out_dir)
    progress = progress_enabled() if progress is None else progress
    srcs = sources.resolve_sources(specs, cache_dir=cache_dir, progress=progress)
    if not srcs:
        raise BuildError(f"no PGN sources in {list(specs)}")
    _claim_out_dir(out_dir, cfg)
    workers = workers or os.cpu_count() or 1
    run = _RayRunner(workers) if use_ray else _InlineRunner()
    scans: list[SourceScan] = []
    from tqdm import tqdm

    with tqdm(unit=" games", disable=not progress, dynamic_ncols=True) as bar:
        seen = kept = 0

        def done(rec: dict[str, Any]) -> None:
            nonlocal seen, kept
            seen, kept = seen + rec["games"], kept + rec["kept"]
            bar.update(rec["games"])
            bar.set_postfix(kept=f"{kept / max(seen, 1):.1%}", refresh=False)

        for i, src in enumerate(srcs):
            scan = SourceScan(source=src)
            scans.append(scan)
            for key, games in iter_chunks(scan, i, cfg.chunk_games):
                scan.chunks.append(key)
                record = _finished(out_dir, key)
                if record is not None:
                    done(record)
                else:
                    run.submit(games, cfg, out_dir, key, done)
        run.drain(done)
    text = json.dumps(make_manifest(cfg, scans, out_dir), indent=1) + "\n"
    atomic_write_text(out_dir / "manifest.json", text)
    return dict(json.loads(text))  # exactly what is on disk


def _claim_out_dir(out_dir: Path, cfg: BuildConfig) -> None:
    """Refuses to mix builds of different configs in one directory."""
    config_path = out_dir / "build_config.json"
    text = json.dumps(cfg.to_json(), indent=1, sort_keys=True)
    if config_path.exists():
        if config_path.read_text() != text:
            raise BuildError(
                f"{out_dir} holds a build with another config ({config_path}); "
                "use a new output directory, or delete this one to rebuild"
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise BuildError(f"{out_dir} is not empty and holds no elocap build")
    atomic_write_text(config_path, text)


def _finished(out_dir: Path, key: str) -> dict[str, Any] | None:
    """The record of a finished chunk whose shards are all on disk as recorded, else None (the
    chunk is then processed again: a deleted or cut shard is repaired, nothing else redone)."""
    path = out_dir / "chunks" / f"{key}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing (or, after a crash outside atomic writes, unreadable): redo
    if any(shard_problem(out_dir, s) is not None for s in record["shards"]):
        return None
    return record


def verify_build(out_dir: Path, *, checksums: bool = False) -> dict[str, Any]:
    """The manifest of a finished, intact build in ``out_dir``: every shard it lists exists with
    its recorded size (and, with ``checksums``, SHA-256). Raises DamagedBuildError, one line
    naming the first bad file, for a damaged build, and BuildError where there is no manifest."""
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest is None:
        raise BuildError(f"{out_dir} holds no finished build (no readable manifest.json)")
    problems = [
        p for s in manifest["shards"] if (p := shard_problem(out_dir, s, checksum=checksums))
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedBuildError(f"damaged build in {out_dir}: {problems[0]}{more}; {REPAIR}")
    return manifest


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


class _InlineRunner:
    """Processes chunks in this process (no Ray): for debugging and single-core use."""

    def submit(
        self, games: list[RawGame], cfg: BuildConfig, out: Path, key: str, done: Any
    ) -> None:
        done(process_chunk(games, cfg, str(out), key))

    def drain(self, done: Any) -> None:
        return None


class _RayRunner:
    """Processes chunks in Ray tasks, with at most two tasks per worker in flight."""

    def __init__(self, workers: int) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR)
        self._ray = ray
        self._task = ray.remote(num_cpus=1, max_retries=3)(process_chunk)
        self._pending: list[Any] = []
        self._limit = 2 * workers

    def submit(
        self, games: list[RawGame], cfg: BuildConfig, out: Path, key: str, done: Any
    ) -> None:
        while len(self._pending) >= self._limit:
            self._wait_one(done)
        self._pending.append(self._task.remote(games, cfg, str(out), key))

    def _wait_one(self, done: Any) -> None:
        ready, self._pending = self._ray.wait(self._pending, num_returns=1)
        for ref in ready:
            done(self._ray.get(ref))

    def drain(self, done: Any) -> None:
        while self._pending:
            self._wait_one(done)
