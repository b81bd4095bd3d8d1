"""The data build: PGN sources -> filtered, encoded, split array_record shards + manifest.json.

Work is cut into chunks of ``chunk_games`` consecutive games of one source (rejected games
count too, so chunk boundaries depend only on the source bytes). The driver streams each source
once, ships each chunk to a Ray task, and keeps a bounded number of tasks in flight, so memory
stays flat. A task filters, decodes and encodes its games, writes one shard per split and then,
last, a small JSON record of the chunk; all writes are atomic. A chunk whose record exists is
finished and skipped, so an interrupted build resumes where it stopped, and the manifest, built
from the chunk records alone, is the same as after an uninterrupted build.

Shard format: array_record with ``group_size:1``, one record per example (``EXAMPLE_DTYPE``
bytes). It is the format grain's random-access ``ArrayRecordDataSource`` reads natively, with
O(1) reads for a global shuffle over billions of positions; parquet would need whole row groups
per read and only grain's sequential readers.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline import decode, encoding, sources
from data_pipeline.filters import REASONS, FilterConfig, header_predicates, prefilter
from data_pipeline.pgn import RawGame, iter_raw_games

SPLITS = ("train", "val", "test")
MANIFEST_VERSION = 1
_ELO_BIN = 100  # width of the Elo histogram's bins
_EXAMPLES_PER_REASON = 3  # rejected games named in the manifest per source and reason


@dataclasses.dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """How games are assigned to splits: by a hash of the game, never by position in a file."""

    val_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self) -> None:
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ValueError("split fractions must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave room for training data")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """Everything that decides a build's output (and only that: no paths, no worker counts)."""

    filters: FilterConfig = dataclasses.field(default_factory=FilterConfig)
    splits: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    chunk_games: int = 2000  # games per chunk: one Ray task, one shard per split

    def __post_init__(self) -> None:
        if self.chunk_games < 1:
            raise ValueError(f"chunk_games must be >= 1, got {self.chunk_games}")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        f = d["filters"]
        for key in ("time_controls", "reject_terminations"):
            if f[key] is not None:
                f[key] = sorted(f[key])
        return d


def split_of(game_ids: np.ndarray, cfg: SplitConfig) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each game id: uint64[N] -> int8[N]."""
    u = (game_ids >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # uniform in [0, 1)
    out = np.zeros(len(game_ids), np.int8)
    out[u < cfg.val_fraction + cfg.test_fraction] = 2
    out[u < cfg.val_fraction] = 1
    return out


# --- one chunk: runs in a Ray task (or in-process) ------------------------------------------


def process_chunk(
    games: Sequence[RawGame], cfg: BuildConfig, out_dir: str, key: str
) -> dict[str, Any]:
    """Filters, decodes and encodes one chunk; writes its shards and its record; returns it."""
    predicates = header_predicates(cfg.filters)
    rejected: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[list[Any]]] = collections.defaultdict(list)
    elo_hist: collections.Counter[int] = collections.Counter()
    decoded: list[decode.DecodedGame] = []
    for game in games:
        reason, detail = _reject_reason(game)
        headers = game.headers()
        if reason is None:
            reason = prefilter(headers, predicates, cfg.filters)
        if reason is None:
            try:
                decoded.append(decode.decode_game(game, headers, cfg.filters))
            except decode.MovetextError as e:
                reason, detail = e.reason, str(e)
        if reason is not None:
            rejected[reason] += 1
            if len(examples[reason]) < _EXAMPLES_PER_REASON:
                examples[reason].append([game.index, detail or _describe(headers)])
            continue
        for rating in (decoded[-1].white_elo, decoded[-1].black_elo):
            if rating >= 0:
                elo_hist[rating // _ELO_BIN * _ELO_BIN] += 1
    data = decode.to_examples(decoded, cfg.filters)
    split = split_of(data["game_id"], cfg.splits)
    shards = []
    for s, name in enumerate(SPLITS):
        part = data[split == s]
        if len(part):
            shards.append(_write_shard(Path(out_dir) / name / f"{key}.array_record", part, name))
    record = {
        "key": key,
        "games": len(games),
        "kept": len(decoded),
        "rejected": dict(sorted(rejected.items())),
        "rejected_examples": {k: v for k, v in sorted(examples.items())},
        "positions": {name: int((split == s).sum()) for s, name in enumerate(SPLITS)},
        "elo_histogram": {str(k): v for k, v in sorted(elo_hist.items())},
        "shards": shards,
    }
    atomic_write_text(Path(out_dir) / "chunks" / f"{key}.json", json.dumps(record, indent=1))
    return record


def _reject_reason(game: RawGame) -> tuple[str | None, str]:
    if game.truncated:
        return "truncated", "the source ended inside this game"
    if game.oversized:
        return "oversized", f"cut at {len(game.data)} bytes"
    if game.header_end == 0:
        return "no_headers", game.data[:60].decode("utf-8", "replace")
    return None, ""


def _describe(headers: dict[str, str]) -> str:
    keys = ("Site", "White", "Black", "WhiteElo", "BlackElo", "Event", "Variant", "TimeControl")
    return " ".join(f"{k}={headers[k]!r}" for k in keys if k in headers)


def _write_shard(path: Path, part: np.ndarray, split: str) -> dict[str, Any]:
    from array_record.python.array_record_module import ArrayRecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = ArrayRecordWriter(str(tmp), "group_size:1")
    for row in part:
        writer.write(row.tobytes())
    writer.close()
    digest = file_sha256(tmp)
    os.replace(tmp, path)
    return {
        "path": f"{split}/{path.name}",
        "split": split,
        "records": len(part),
        "bytes": path.stat().st_size,
        "sha256": digest,
    }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Writes a file so that readers see the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
                for game in iter_raw_games(stream):
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
                row_examples[reason] += ex[: _EXAMPLES_PER_REASON - len(row_examples[reason])]
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
            "bin_width": _ELO_BIN,
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
    """The record of a finished chunk whose shards are all on disk, else None."""
    path = out_dir / "chunks" / f"{key}.json"
    if not path.exists():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    if all((out_dir / s["path"]).exists() for s in record["shards"]):
        return record
    return None


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
