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

from data_pipeline.chunks import SPLITS
from data_pipeline.decode import EXAMPLE_DTYPE
from data_pipeline.files import file_sha256

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

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None, got {self.num_epochs}")
        if self.worker_count < 0:
            raise ValueError(f"worker_count must be >= 0, got {self.worker_count}")


def shard_paths(data_dir: Path, split: str, *, verify: bool = False) -> list[Path]:
    """The shards of a split in manifest order; with ``verify``, their checksums are checked."""
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
        path = Path(data_dir) / shard["path"]
        if verify and file_sha256(path) != shard["sha256"]:
            raise ValueError(f"checksum mismatch for {path}: the shard changed after the build")
        paths.append(path)
    if not paths:
        raise ValueError(f"the {split} split of {data_dir} has no examples")
    return paths


def decode_batch(records: Sequence[bytes]) -> Batch:
    """Serialized examples -> a batch of arrays."""
    rows = np.frombuffer(b"".join(records), dtype=EXAMPLE_DTYPE)
    batch = {name: np.ascontiguousarray(rows[name]) for name in EXAMPLE_DTYPE.names or ()}
    batch["action"] = batch["action"].astype(np.int32)
    return batch


class BatchSource:
    """Random access to whole batches of a split: batch ``i`` of the (repeated) stream.

    Batch ``i`` holds the examples at positions ``i * B .. i * B + B - 1`` of its epoch's
    permutation of the split (grain's ``index_shuffle``, a bijection, reseeded every epoch), read
    with one array_record call per shard: a single-record read costs about 50 us, a record of a
    multi-record read about 3 us. Readers open lazily, so the object pickles into grain workers.
    """

    def __init__(self, paths: Sequence[Path], cfg: LoaderConfig) -> None:
        from array_record.python.array_record_module import ArrayRecordReader

        self._paths = [str(p) for p in paths]
        counts = []
        for path in self._paths:
            reader = ArrayRecordReader(path)
            counts.append(reader.num_records())
            reader.close()
        self._starts = np.concatenate([[0], np.cumsum(counts)])  # int64[S + 1]
        self._cfg = cfg
        self.num_records = int(self._starts[-1])
        self.batches_per_epoch = self.num_records // cfg.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{self.num_records} examples cannot fill one batch of {cfg.batch_size}"
            )
        self._readers: list[Any] = []

    def __len__(self) -> int:
        epochs = self._cfg.num_epochs
        return sys.maxsize if epochs is None else self.batches_per_epoch * epochs

    def indices(self, i: int) -> np.ndarray:  # int64[B]: global record indices of batch i
        epoch, b = divmod(i, self.batches_per_epoch)
        first = b * self._cfg.batch_size
        positions = range(first, first + self._cfg.batch_size)
        if not self._cfg.shuffle:
            return np.arange(first, first + self._cfg.batch_size)
        seed = (self._cfg.seed * 1_000_003 + epoch) % (1 << 31)
        last = self.num_records - 1
        return np.array([_index_shuffle(k, max_index=last, seed=seed, rounds=4) for k in positions])

    def __getitem__(self, i: int) -> Batch:
        if not self._readers:
            from array_record.python.array_record_module import ArrayRecordReader

            self._readers = [ArrayRecordReader(p) for p in self._paths]
        idx = self.indices(i)
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        records: list[bytes] = [b""] * len(idx)
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            local = (idx[where] - self._starts[s]).tolist()
            for k, record in zip(where.tolist(), self._readers[s].read(local), strict=True):
                records[k] = record
        return decode_batch(records)


def _index_shuffle(index: int, *, max_index: int, seed: int, rounds: int) -> int:
    from grain._src.python.experimental.index_shuffle.python import index_shuffle_module

    return int(
        index_shuffle_module.index_shuffle(index, max_index=max_index, seed=seed, rounds=rounds)
    )


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
