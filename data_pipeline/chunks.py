"""The chunks of a build: a source cut into runs of ``chunk_games`` games (in the driver), and
one chunk's work: filter, decode and encode its games, write one shard per split and then, last,
the chunk's record. Runs in a Ray task (or in-process); every write is atomic.

Shard format: ``data_pipeline.shards`` (array_record, one compact record per position and the
games table last, zstd in groups). A shard holds every position of its kept games, whatever the
cap; the build's own cap (under the mover rule) and the caps of views choose positions at load.
array_record gives random access per record, which the loader's global shuffle needs; Parquet
would need whole row groups per read and only grain's sequential readers.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline import decode, shards, sources
from data_pipeline.filters import FilterConfig, header_predicates, prefilter
from data_pipeline.pgn import GameRun, RawGame, iter_game_runs, split_stray
from elocap.files import atomic_write_text, file_sha256

SPLITS = ("train", "val", "test")
ELO_BIN = 100  # width of the Elo histogram's bins
EXAMPLES_PER_REASON = 3  # rejected games named in the manifest per source and reason
REPAIR = "run the same data build again to repair it"  # ends the messages of damaged builds


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
    # fraction of the games that pass the filters kept, chosen by a hash of the game (uniform,
    # deterministic, independent of the split), before their moves are decoded: a study builds
    # in proportion to what its sweep reads, not to its sources (1.0: every game)
    sample_fraction: float = 1.0
    # why sample_fraction is what it is (``budget.sampled_config`` writes it; "": not said)
    sample_note: str = ""

    def __post_init__(self) -> None:
        if self.chunk_games < 1:
            raise ValueError(f"chunk_games must be >= 1, got {self.chunk_games}")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not d["sample_note"]:
            del d["sample_note"]  # builds that do not say keep the identity they had
        f = d["filters"]
        for key in ("time_controls", "reject_terminations"):
            if f[key] is not None:
                f[key] = sorted(f[key])
        return d


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
) -> Iterator[tuple[str, GameRun]]:
    """(key, games) of each chunk of a source, in order; records size, hash and any error.

    This is the driver's whole share of the work on a source: decompress, hash, find the game
    boundaries; the games travel as one ``GameRun`` (bytes and offsets), and the worker splits
    off stray text, filters, decodes and encodes."""
    chunk = 0
    try:
        with sources.open_source(scan.source) as stream:
            try:
                for run in iter_game_runs(stream, chunk_games):
                    yield _chunk_key(source_index, chunk), run
                    chunk += 1
            except sources.SourceError as e:
                scan.error = str(e)
            scan.size, scan.digest = stream.raw_bytes_read, stream.digest()
    except sources.SourceError as e:
        scan.error = str(e)


def _chunk_key(source_index: int, chunk: int) -> str:
    return f"s{source_index:04d}-c{chunk:06d}"


# --- one chunk --------------------------------------------------------------------------------


def split_of(game_ids: np.ndarray, cfg: SplitConfig) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each game id: uint64[N] -> int8[N]."""
    u = (game_ids >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # uniform in [0, 1)
    out = np.zeros(len(game_ids), np.int8)
    out[u < cfg.val_fraction + cfg.test_fraction] = 2
    out[u < cfg.val_fraction] = 1
    return out


def process_chunk(
    games: GameRun | Sequence[RawGame], cfg: BuildConfig, out_dir: str, key: str
) -> dict[str, Any]:
    """Filters, decodes and encodes one chunk; writes its shards and its record; returns it."""
    if isinstance(games, GameRun):
        games = games.games()
    predicates = header_predicates(cfg.filters)
    rejected: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[list[Any]]] = collections.defaultdict(list)
    elo_hist: collections.Counter[int] = collections.Counter()
    decoded: list[decode.DecodedGame] = []
    items = [item for game in games for item in split_stray(game)]
    for game in items:
        reason, detail = _reject_reason(game)
        headers = game.headers()
        if reason is None:
            reason = prefilter(headers, predicates, cfg.filters)
        if reason is None and cfg.sample_fraction < 1.0:
            gid = np.array([decode.game_id(headers, game)], np.uint64)
            if shards.sample_hash(gid)[0] >= cfg.sample_fraction:
                reason, detail = "not_sampled", f"game id {int(gid[0]):016x}"
        if reason is None:
            try:
                decoded.append(decode.decode_game(game, headers, cfg.filters))
            except decode.MovetextError as e:
                reason, detail = e.reason, str(e)
        if reason is not None:
            rejected[reason] += 1
            if len(examples[reason]) < EXAMPLES_PER_REASON:
                examples[reason].append([game.index, detail or _describe(headers)])
            continue
        for rating in (decoded[-1].white_elo, decoded[-1].black_elo):
            if rating >= 0:
                elo_hist[rating // ELO_BIN * ELO_BIN] += 1
    every = dataclasses.replace(cfg.filters, cap=None)  # every position; the cap selects at load
    game_split = split_of(np.array([g.game_id for g in decoded], np.uint64), cfg.splits)
    positions, table = shards.pack(decode.to_examples(decoded, every), decoded, game_split)
    counts = split_counts(table, own_select(cfg))
    out = []
    if len(table):
        path = Path(out_dir) / "shards" / f"{key}.array_record"
        out.append({**shards.write_shard(path, positions, table), "positions": counts})
    record = {
        "key": key,
        "games": len(items),  # games, and stretches of text between games (never kept)
        "kept": len(decoded),
        "rejected": dict(sorted(rejected.items())),
        "rejected_examples": {k: v for k, v in sorted(examples.items())},
        "positions": counts,  # read by the build's loader (under the mover rule, the capped side)
        "elo_histogram": {str(k): v for k, v in sorted(elo_hist.items())},
        "shards": out,
    }
    atomic_write_text(Path(out_dir) / "chunks" / f"{key}.json", json.dumps(record, indent=1))
    return record


def split_counts(table: np.ndarray, select: shards.Select) -> dict[str, int]:
    """Positions ``select`` reads from a games table, per split."""
    count = shards.game_selection(table, select)["count"]
    return {name: int(count[table["split"] == s].sum()) for s, name in enumerate(SPLITS)}


def own_select(cfg: BuildConfig) -> shards.Select:
    """What a build's own loader reads of its shards: its header filter keeps the games of its
    cap, and under the mover rule the positions of the capped side are chosen at load."""
    return shards.Select(cap=cfg.filters.cap, elo_rule=cfg.filters.elo_rule)


def _reject_reason(game: RawGame) -> tuple[str | None, str]:
    if game.between_games:
        return "between_games", game.data[:60].decode("utf-8", "replace")
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


class DamagedBuildError(ValueError):
    """A build's file is missing or not as its record says; the message (one line) names it."""


def shard_problem(out_dir: Path, shard: dict[str, Any], *, checksum: bool = False) -> str | None:
    """What is wrong with one shard of a build's record (missing, another size, another
    checksum), in a few words naming the file; None if it is as recorded."""
    path = Path(os.path.normpath(Path(out_dir) / shard["path"]))  # a view's: ../all/...
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as e:
        return f"{path} cannot be read ({e.strerror})"
    if size != shard["bytes"]:
        return f"{path} has {size} bytes, not the {shard['bytes']} recorded"
    if checksum and file_sha256(path) != shard["sha256"]:
        return f"{path} does not match its recorded SHA-256 (it changed after the build)"
    return None
