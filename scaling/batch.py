"""The one batch a train step takes, from supervised shards and from self-play alike.

Policy targets are sparse: ``K`` (action, weight) pairs per position. Supervised data has
``K = 1`` (the move played, weight 1); self-play has ``K = mcts.env.MAX_MOVES`` (the position's
legal-move slots with the search's visit probabilities, padding slots at weight 0). Sparse
rather than dense ``f32[B, 4672]`` because both sources are sparse at heart, so one form serves
both without a switch in the loss, and a self-play batch moves ~2 KB a position to the device
instead of 18.7 KB (and a supervised batch 8 bytes instead of 18.7 KB).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from data_pipeline.encoding import OBS_LEN

__all__ = ["Array", "BatchSpec", "TrainBatch", "supervised_batch"]

Array = jax.Array | np.ndarray  # on the device, or on the host before ``device_put``


@struct.dataclass
class TrainBatch:
    """``B`` positions with their targets (a frozen pytree; host or device arrays)."""

    obs: Array  # uint8[B, 67] the encoded position (data_pipeline.encoding, mover's frame)
    policy_index: Array  # int32[B, K] target actions; a padding slot's index is ignored
    policy_weight: Array  # f32[B, K] their probabilities (each row sums to 1; padding 0)
    result: Array  # int8[B] the game's result from the mover's view: 1, 0, -1
    mover_elo: Array  # int16[B] the mover's rating (-1: unknown); read iff Elo-conditioned


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchSpec:
    """The shapes of a run's batches: what its train step is compiled for."""

    batch_size: int  # B, the global batch (split over the mesh's devices)
    policy_slots: int = 1  # K: 1 for supervised data, mcts.env.MAX_MOVES for self-play

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.policy_slots < 1:
            raise ValueError(f"policy_slots must be >= 1, got {self.policy_slots}")

    def shapes(self) -> TrainBatch:
        """The batch as ``jax.ShapeDtypeStruct`` leaves (for lowering a step; nothing is
        allocated)."""
        b, k = self.batch_size, self.policy_slots

        def zeros() -> TrainBatch:
            return TrainBatch(
                obs=jnp.zeros((b, OBS_LEN), jnp.uint8),
                policy_index=jnp.zeros((b, k), jnp.int32),
                policy_weight=jnp.zeros((b, k), jnp.float32),
                result=jnp.zeros((b,), jnp.int8),
                mover_elo=jnp.zeros((b,), jnp.int16),
            )

        shapes: TrainBatch = jax.eval_shape(zeros)
        return shapes


def supervised_batch(batch: Mapping[str, np.ndarray]) -> TrainBatch:
    """A ``data_pipeline.loader`` batch (``obs``, ``action``, ``result``, ``mover_elo``, ...) as
    a TrainBatch with ``K = 1``: the move played, at weight 1."""
    action = np.asarray(batch["action"], np.int32)
    return TrainBatch(
        obs=np.asarray(batch["obs"], np.uint8),
        policy_index=action[:, None],
        policy_weight=np.ones((len(action), 1), np.float32),
        result=np.asarray(batch["result"], np.int8),
        mover_elo=np.asarray(batch["mover_elo"], np.int16),
    )
