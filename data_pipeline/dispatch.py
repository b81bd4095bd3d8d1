"""How a build's chunks reach the workers. Every way gives the same chunks (keys, games) and
the same records, so the build does not depend on the way, the workers or completion order.

- ``chunks_in_tasks`` (one source, or no Ray): the driver streams each source and only
  decompresses, hashes and cuts it into runs of games (``pgn.iter_game_runs``: a chunk travels
  as one byte string and its offsets); Ray tasks (``chunks.process_chunk``) split off stray
  text, filter, decode, encode and write, at most two per worker in flight, so memory stays
  flat. The driver's rate is the ceiling for one source (BENCHMARKS.md, section 3c).
- ``sources_in_tasks`` (several sources, months): each source streams in a reader task
  (``build_source``, through ``elocap.execution.RayExecutor``), as many at once as half the
  workers; a reader fans its chunks out to chunk tasks on the other workers, or, with at least
  as many sources as workers (or no CPU to spare), builds its chunks itself. The driver waits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from data_pipeline import sources
from data_pipeline.chunks import BuildConfig, SourceScan, iter_chunks, process_chunk, shard_problem
from data_pipeline.pgn import GameRun
from elocap.execution import RayExecutor, Resources, require_ray

__all__ = ["build_source", "chunks_in_tasks", "sources_in_tasks"]

Done = Callable[[dict[str, Any]], None]


def chunks_in_tasks(
    srcs: Sequence[sources.Source],
    cfg: BuildConfig,
    out_dir: Path,
    workers: int,
    use_ray: bool,
    done: Done,
) -> list[SourceScan]:
    """The driver streams each source in turn and only decompresses, hashes and cuts it into
    runs of games; the chunks' work (filter, decode, encode, write) runs in tasks."""
    run = _RayRunner(workers) if use_ray else _InlineRunner()
    scans: list[SourceScan] = []
    for i, src in enumerate(srcs):
        scans.append(_stream(src, i, cfg, out_dir, run, done))
    run.drain(done)
    return scans


def sources_in_tasks(
    srcs: Sequence[sources.Source], cfg: BuildConfig, out_dir: Path, workers: int, done: Done
) -> list[SourceScan]:
    """Each source streamed in a reader task (see the module docstring for how many at once
    and where their chunks go); the scans in source order."""
    ray = require_ray()
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if len(srcs) >= workers:
        readers, fan_out = workers, 0
    else:
        readers = min(len(srcs), max(1, workers // 2))
        fan_out = max(1, (workers - readers) // readers)
        if cpus <= readers:  # no CPU left for chunk tasks: they would wait for ever
            fan_out = 0
    items = [(src, i, cfg, str(out_dir), fan_out) for i, src in enumerate(srcs)]
    scans: list[SourceScan | None] = [None] * len(srcs)
    for i, (scan, totals) in RayExecutor().map_unordered(
        build_source, items, resources=Resources(num_cpus=1), window=readers
    ):
        scans[i] = scan
        done(totals)
    return [s for s in scans if s is not None]


def build_source(
    src: sources.Source, index: int, cfg: BuildConfig, out_dir: str, fan_out: int = 0
) -> tuple[SourceScan, dict[str, int]]:
    """One source, streamed here; its chunks built here or (``fan_out`` > 0, in a Ray worker)
    in chunk tasks, ``2 * fan_out`` in flight. Returns its scan and its games and kept games."""
    totals = {"games": 0, "kept": 0}

    def count(record: dict[str, Any]) -> None:
        totals["games"] += record["games"]
        totals["kept"] += record["kept"]

    run: _InlineRunner | _RayRunner = _RayRunner(fan_out) if fan_out else _InlineRunner()
    scan = _stream(src, index, cfg, Path(out_dir), run, count)
    run.drain(count)
    return scan, totals


def _stream(
    src: sources.Source,
    index: int,
    cfg: BuildConfig,
    out_dir: Path,
    run: _InlineRunner | _RayRunner,
    done: Done,
) -> SourceScan:
    scan = SourceScan(source=src)
    for key, games in iter_chunks(scan, index, cfg.chunk_games):
        scan.chunks.append(key)
        record = finished(out_dir, key)
        if record is not None:
            done(record)
        else:
            run.submit(games, cfg, out_dir, key, done)
    return scan


def finished(out_dir: Path, key: str) -> dict[str, Any] | None:
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


class _InlineRunner:
    """Processes chunks in this process (no Ray): for debugging and single-core use."""

    def submit(self, games: GameRun, cfg: BuildConfig, out: Path, key: str, done: Any) -> None:
        done(process_chunk(games, cfg, str(out), key))

    def drain(self, done: Any) -> None:
        return None


class _RayRunner:
    """Processes chunks in Ray tasks, with at most two tasks per worker in flight."""

    def __init__(self, workers: int) -> None:
        ray = require_ray()  # started or joined by the entry point, never here
        self._ray = ray
        self._task = ray.remote(num_cpus=1, max_retries=3)(process_chunk)
        self._pending: list[Any] = []
        self._limit = 2 * workers

    def submit(self, games: GameRun, cfg: BuildConfig, out: Path, key: str, done: Any) -> None:
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
