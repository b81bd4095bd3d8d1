"""A grain pipeline over a build's shards: fixed-shape batches, deterministic for a seed, with an
iterator state that can be saved and restored (the trainer keeps it in its checkpoints).

Records are shuffled globally (grain's index shuffle over all shards of a split, reshuffled every
epoch), grouped, and decoded a whole batch at a time with one ``np.frombuffer``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grain
import numpy as np

from data_pipeline.build import SPLITS, file_sha256
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


def dataset(data_dir: Path, split: str, cfg: LoaderConfig) -> grain.IterDataset:
    """The batches of ``split`` as a grain IterDataset (iterate it, or ``iter()`` it for state)."""
    source = grain.sources.ArrayRecordDataSource([str(p) for p in shard_paths(data_dir, split)])
    ds: grain.MapDataset = grain.MapDataset.source(source)
    if cfg.shuffle:
        ds = ds.seed(cfg.seed).shuffle()
    ds = ds.repeat(cfg.num_epochs)
    ds = ds.batch(cfg.batch_size, drop_remainder=True, batch_fn=decode_batch)
    it: grain.IterDataset = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=1, prefetch_buffer_size=cfg.prefetch)
    )
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
