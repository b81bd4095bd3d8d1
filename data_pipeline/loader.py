"""A grain pipeline over a build's shards: fixed-shape batches, deterministic for a seed, with an
iterator state that can be saved and restored (the trainer keeps it in its checkpoints).

Examples are shuffled globally (a seeded permutation of all examples of a split, reshuffled
every epoch); grain drives iteration, prefetching, worker processes and the iterator state over
a source of whole batches, each gathered from memory or read with one array_record call per
shard, and decoded from the compact shard format (``data_pipeline.shards``) into the one
encoding. A build's (or a cap view's) manifest says which stored positions are read
(``select``: its cap and Elo rule).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grain

import numpy as np

from data_pipeline import shards
from data_pipeline.chunks import REPAIR, SPLITS, DamagedBuildError, shard_problem
from data_pipeline.shards import Select, to_examples

# A batch: field name -> array with leading dimension B (see decode.EXAMPLE_DTYPE).
#   obs uint8[B, OBS_LEN], action int32[B], result int8[B] (mover's view: 1 win, 0 draw, -1 loss),
#   mover_elo int16[B], opponent_elo int16[B], ply uint16[B], time_control uint8[B],
#   game_id uint64[B]
Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoaderConfig:
    """How batches are drawn from one split of a build."""

    batch_size: int = 256  # examples per batch; every batch has exactly this many
    seed: int = 0  # shuffle seed: same seed, same batches in the same order
    shuffle: bool = True  # global shuffle of the split, new order each epoch
    num_epochs: int | None = None  # None: repeat forever
    worker_count: int = 0  # grain worker processes (0: read in this process)
    prefetch: int = 2  # batches each worker prepares ahead
    cache_bytes: int = 1 << 30  # a split this small is read once into memory (0: never)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None, got {self.num_epochs}")
        if self.worker_count < 0 or self.cache_bytes < 0 or self.seed < 0:
            raise ValueError("seed, worker_count and cache_bytes must be >= 0")


def _manifest(data_dir: Path) -> dict[str, Any]:
    manifest_path = Path(data_dir) / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found: is {data_dir} a finished build?")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    if "view" in manifest:
        from data_pipeline.views import check_view

        check_view(Path(data_dir), manifest)
    return manifest


def split_shards(
    data_dir: Path, split: str, *, verify: bool = False
) -> tuple[list[tuple[Path, int]], Select]:
    """(path, positions stored) of each shard of a split in manifest order, each checked to exist
    with its recorded size (with ``verify``, its checksum too), and the selection the build (or
    view) reads from them. Raises DamagedBuildError naming the file."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    manifest = _manifest(data_dir)
    out = []
    for shard in manifest["shards"]:
        if not shard["positions"][split]:
            continue
        problem = shard_problem(Path(data_dir), shard, checksum=verify)
        if problem is not None:
            raise DamagedBuildError(f"damaged build in {data_dir}: {problem}; {REPAIR}")
        path = Path(os.path.normpath(Path(data_dir) / shard["path"]))
        out.append((path, int(shard["records"])))
    if not out or not manifest["positions"][split]:
        raise ValueError(f"the {split} split of {data_dir} has no examples")
    return out, Select.from_json(manifest.get("select"))


def shard_paths(data_dir: Path, split: str, *, verify: bool = False) -> list[Path]:
    """The shards holding examples of a split, in manifest order (see ``split_shards``; a shard
    holds every split of its chunk)."""
    return [path for path, _ in split_shards(data_dir, split, verify=verify)[0]]


def read_examples(data_dir: Path, split: str) -> np.ndarray:
    """Every example the loader reads from a split, in stored order, as ``EXAMPLE_DTYPE``."""
    cfg = LoaderConfig(batch_size=1, shuffle=False, cache_bytes=0)
    source = BatchSource(*split_shards(data_dir, split), cfg, split=split)
    return to_examples(source.take(np.arange(source.num_records)))


class BatchSource:
    """Random access to whole batches of a split: batch ``i`` of the (repeated) stream.

    The split's examples are the positions ``select`` reads from its shards, in stored order;
    batch ``i`` holds those at positions ``i * B .. i * B + B - 1`` of its epoch's permutation
    (``permute``, a bijection reseeded every epoch). Which positions are read is kept per game
    (first position, phase, stride, count), never per position, so a view of a month-sized build
    costs memory per game. A split whose examples fit in ``cache_bytes`` (36 bytes each) is read
    once into memory, sequentially, and batches are gathered from it; a larger one is read per
    batch with one array_record call per shard. Readers open lazily, so the object pickles into
    grain worker processes.
    """

    def __init__(
        self,
        shards_: Sequence[tuple[Path, int]],
        select: Select,
        cfg: LoaderConfig,
        *,
        split: str,
    ) -> None:
        self._paths = [str(p) for p, _ in shards_]
        stored = np.array([n for _, n in shards_], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(stored)]).astype(np.int64)  # [S + 1]
        tables, firsts, phases, strides, counts, game_starts = [], [], [], [], [], [0]
        for s, path in enumerate(self._paths):
            reader = _open(path)
            try:
                table = shards.read_games(reader, int(stored[s]))
            finally:
                reader.close()
            sel = shards.game_selection(table, select)
            keep = (sel["count"] > 0) & (table["split"] == SPLITS.index(split))
            plies = table["plies"].astype(np.int64)
            firsts.append((self._starts[s] + np.cumsum(plies) - plies)[keep])
            tables.append(table[keep])
            phases.append(sel["phase"][keep])
            strides.append(sel["stride"][keep])
            counts.append(sel["count"][keep])
            game_starts.append(game_starts[-1] + int(keep.sum()))
        self._games = np.concatenate(tables)  # GAME_DTYPE[G]: the games read
        self._first = np.concatenate(firsts)  # int64[G]: global index of each game's ply 0
        self._phase = np.concatenate(phases).astype(np.int8)  # int8[G]: first ply read
        self._stride = np.concatenate(strides).astype(np.int8)  # int8[G]: 1 or 2
        count = np.concatenate(counts)
        self._end = np.cumsum(count)  # int64[G]: examples up to and with each game
        self._begin = self._end - count  # int64[G]
        self._game_starts = np.array(game_starts, np.int64)  # [S + 1]: games of each shard
        self._cfg = cfg
        self.num_records = int(self._end[-1]) if len(self._end) else 0
        self.batches_per_epoch = self.num_records // cfg.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{self.num_records} examples cannot fill one batch of {cfg.batch_size}"
            )
        self._in_memory = self.num_records * shards.POSITION_DTYPE.itemsize <= cfg.cache_bytes
        self._rows: np.ndarray | None = None  # POSITION_DTYPE[N] once cached
        self._readers: list[Any] = []

    def __len__(self) -> int:
        epochs = self._cfg.num_epochs
        return sys.maxsize if epochs is None else self.batches_per_epoch * epochs

    def indices(self, i: int) -> np.ndarray:  # int64[B]: example indices of batch i
        epoch, b = divmod(i, self.batches_per_epoch)
        positions = np.arange(b * self._cfg.batch_size, (b + 1) * self._cfg.batch_size)
        if not self._cfg.shuffle:
            return positions
        return permute(positions, self.num_records, seed=(self._cfg.seed, epoch))

    def _locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(game, ply, global stored position) of examples ``idx``."""
        g = np.searchsorted(self._end, idx, side="right")
        ply = self._phase[g] + self._stride[g].astype(np.int64) * (idx - self._begin[g])
        return g, ply, self._first[g] + ply

    def _cache(self) -> np.ndarray:
        """Every example's position, in example order, read shard by shard."""
        parts = []
        for s, path in enumerate(self._paths):
            lo, hi = self._game_starts[s], self._game_starts[s + 1]
            if lo == hi:
                continue
            reader = _open(path)
            try:
                stored = int(self._starts[s + 1] - self._starts[s])
                rows = shards.read_positions(reader, stored)
            finally:
                reader.close()
            _, _, where = self._locate(np.arange(self._begin[lo], self._end[hi - 1]))
            parts.append(rows[where - self._starts[s]])
        return np.concatenate(parts)

    def take(self, idx: np.ndarray) -> Batch:
        """The examples at indices ``idx`` (int[K]) as a batch."""
        idx = np.asarray(idx, np.int64)
        g, ply, where = self._locate(idx)
        if self._in_memory:
            if self._rows is None:
                self._rows = self._cache()
            rows = self._rows[idx]
        else:
            rows = self._read(where)
        return shards.decode(rows, ply, self._games[g])

    def _read(self, where: np.ndarray) -> np.ndarray:
        if not self._readers:
            self._readers = [_open(p) for p in self._paths]
        shard = np.searchsorted(self._starts, where, side="right") - 1
        records: list[bytes] = [b""] * len(where)
        for s in np.unique(shard):
            at = np.flatnonzero(shard == s)
            local = (where[at] - self._starts[s]).tolist()
            for k, record in zip(at.tolist(), self._readers[s].read(local), strict=True):
                records[k] = record
        return np.frombuffer(b"".join(records), shards.POSITION_DTYPE)

    def __getitem__(self, i: int) -> Batch:
        return self.take(self.indices(i))


def permute(x: np.ndarray, n: int, *, seed: tuple[int, ...]) -> np.ndarray:
    """Positions ``x`` (int[K], each in [0, n)) under a seeded pseudo-random permutation of
    [0, n): a 4-round Feistel network on the smallest even number of bits that covers n, with
    cycle walking back into range. Vectorised; no table of n entries is ever built."""
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half = np.uint64(bits // 2)
    mask = np.uint64((1 << (bits // 2)) - 1)
    keys = np.random.default_rng(list(seed)).integers(0, 1 << 62, 4, dtype=np.uint64)
    out = np.asarray(x, dtype=np.uint64).copy()
    todo = np.ones(len(out), bool)
    with np.errstate(over="ignore"):
        while todo.any():
            v = out[todo]
            for key in keys:
                left, right = v >> half, v & mask
                h = (right ^ key) * np.uint64(0xBF58476D1CE4E5B9)
                v = (right << half) | (left ^ ((h ^ (h >> np.uint64(31))) & mask))
            out[todo] = v
            todo = out >= np.uint64(n)
    return out.astype(np.int64)


def _open(path: str) -> Any:
    """An ArrayRecordReader, or an error naming the file (array_record says 'open() failed')."""
    from array_record.python.array_record_module import ArrayRecordReader

    try:
        return ArrayRecordReader(path)
    except RuntimeError as e:
        why = "is missing" if not Path(path).exists() else f"cannot be read as array_record ({e})"
        raise DamagedBuildError(f"shard {path} {why}; {REPAIR}") from None


def _read_all(path: str) -> np.ndarray:
    """Every position stored in one shard, as ``EXAMPLE_DTYPE``: every split's, whatever a view
    selects (``read_examples`` reads those of one split, as the loader does)."""
    reader = _open(path)
    try:
        stored = reader.num_records() - 1
        table = shards.read_games(reader, stored)
        rows = shards.read_positions(reader, stored)
    finally:
        reader.close()
    plies = table["plies"].astype(np.int64)
    game = np.repeat(np.arange(len(table)), plies)
    ply = np.arange(stored) - np.repeat(np.cumsum(plies) - plies, plies)
    return to_examples(shards.decode(rows, ply, table[game]))


def dataset(data_dir: Path, split: str, cfg: LoaderConfig) -> grain.IterDataset:
    """The batches of ``split`` as a grain IterDataset (iterate it, or ``iter()`` it for state)."""
    import grain  # imported here: it takes about a second, and most commands do not load data

    source = BatchSource(*split_shards(data_dir, split), cfg, split=split)
    ds: grain.MapDataset = grain.MapDataset.source(source)
    options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=cfg.prefetch)
    it: grain.IterDataset = ds.to_iter_dataset(options)
    if cfg.worker_count > 0:
        from absl import flags  # grain's worker processes read absl flags

        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.worker_count))
    return it


def num_examples(data_dir: Path, split: str) -> int:
    """Examples in a split, from the manifest."""
    return int(_manifest(Path(data_dir))["positions"][split])


def iterator_state(it: Any) -> bytes:
    """A loader iterator's position, as bytes for a checkpoint."""
    return json.dumps(it.get_state(), sort_keys=True).encode()


def restore_iterator(it: Any, state: bytes) -> None:
    """Moves a fresh iterator of the same dataset to a saved position."""
    it.set_state(json.loads(state))
