"""A grain pipeline over a build's shards: fixed-shape batches, deterministic for a seed, with an
iterator state that can be saved and restored (the trainer keeps it in its checkpoints).

Records are shuffled globally (grain's index shuffle over all shards of a split, reshuffled every
epoch); grain drives iteration, prefetching, worker processes and the iterator state over a
source of whole batches, each read with one array_record call per shard and decoded with one
``np.frombuffer``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grain

import numpy as np

from data_pipeline.chunks import REPAIR, SPLITS, DamagedBuildError, shard_problem
from data_pipeline.decode import EXAMPLE_DTYPE

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


def shard_paths(data_dir: Path, split: str, *, verify: bool = False) -> list[Path]:
    """The shards of a split in manifest order, each checked to exist with its recorded size;
    with ``verify``, their checksums are checked too. Raises DamagedBuildError naming the file."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    manifest_path = Path(data_dir) / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found: is {data_dir} a finished build?")
    manifest = json.loads(manifest_path.read_text())
    paths = []
    for shard in manifest["shards"]:
        if shard["split"] != split:
            continue
        problem = shard_problem(Path(data_dir), shard, checksum=verify)
        if problem is not None:
            raise DamagedBuildError(f"damaged build in {data_dir}: {problem}; {REPAIR}")
        paths.append(Path(data_dir) / shard["path"])
    if not paths:
        raise ValueError(f"the {split} split of {data_dir} has no examples")
    return paths


def decode_batch(records: Sequence[bytes]) -> Batch:
    """Serialized examples -> a batch of arrays."""
    return _to_batch(np.frombuffer(b"".join(records), dtype=EXAMPLE_DTYPE))


class BatchSource:
    """Random access to whole batches of a split: batch ``i`` of the (repeated) stream.

    Batch ``i`` holds the examples at positions ``i * B .. i * B + B - 1`` of its epoch's
    permutation of the split (``permute``, a bijection reseeded every epoch). A split no larger
    than ``cache_bytes`` is read once into memory (sequential reads, about 1 us a record) and
    batches are gathered from it; a larger one is read per batch with one array_record call per
    shard (about 15 us a record here; single-record calls cost 30-60 us). Readers open lazily,
    so the object pickles into grain worker processes.
    """

    def __init__(self, paths: Sequence[Path], cfg: LoaderConfig) -> None:
        self._paths = [str(p) for p in paths]
        counts = []
        for path in self._paths:
            reader = _open(path)
            counts.append(reader.num_records())
            reader.close()
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # [S + 1]
        self._cfg = cfg
        self.num_records = int(self._starts[-1])
        self.batches_per_epoch = self.num_records // cfg.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{self.num_records} examples cannot fill one batch of {cfg.batch_size}"
            )
        self._in_memory = self.num_records * EXAMPLE_DTYPE.itemsize <= cfg.cache_bytes
        self._rows: np.ndarray | None = None  # EXAMPLE_DTYPE[N] once cached
        self._readers: list[Any] = []

    def __len__(self) -> int:
        epochs = self._cfg.num_epochs
        return sys.maxsize if epochs is None else self.batches_per_epoch * epochs

    def indices(self, i: int) -> np.ndarray:  # int64[B]: global record indices of batch i
        epoch, b = divmod(i, self.batches_per_epoch)
        positions = np.arange(b * self._cfg.batch_size, (b + 1) * self._cfg.batch_size)
        if not self._cfg.shuffle:
            return positions
        return permute(positions, self.num_records, seed=(self._cfg.seed, epoch))

    def __getitem__(self, i: int) -> Batch:
        idx = self.indices(i)
        if self._in_memory:
            if self._rows is None:
                self._rows = np.concatenate([_read_all(p) for p in self._paths])
            return _to_batch(self._rows[idx])
        if not self._readers:
            self._readers = [_open(p) for p in self._paths]
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        records: list[bytes] = [b""] * len(idx)
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            local = (idx[where] - self._starts[s]).tolist()
            for k, record in zip(where.tolist(), self._readers[s].read(local), strict=True):
                records[k] = record
        return decode_batch(records)


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
    reader = _open(path)
    try:
        return np.frombuffer(b"".join(reader.read_all()), dtype=EXAMPLE_DTYPE)
    finally:
        reader.close()


def _to_batch(rows: np.ndarray) -> Batch:
    batch = {name: np.ascontiguousarray(rows[name]) for name in EXAMPLE_DTYPE.names or ()}
    batch["action"] = batch["action"].astype(np.int32)
    return batch


def dataset(data_dir: Path, split: str, cfg: LoaderConfig) -> grain.IterDataset:
    """The batches of ``split`` as a grain IterDataset (iterate it, or ``iter()`` it for state)."""
    import grain  # imported here: it takes about a second, and most commands do not load data

    source = BatchSource(shard_paths(data_dir, split), cfg)
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
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
    return int(manifest["positions"][split])


def iterator_state(it: Any) -> bytes:
    """A loader iterator's position, as bytes for a checkpoint."""
    return json.dumps(it.get_state(), sort_keys=True).encode()


def restore_iterator(it: Any, state: bytes) -> None:
    """Moves a fresh iterator of the same dataset to a saved position."""
    it.set_state(json.loads(state))
