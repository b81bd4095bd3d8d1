"""The replay buffer of self-play: a ring of positions with their search targets, on the host.

Targets are kept sparse, over each position's legal moves (``mcts.env.MAX_MOVES`` slots): ~1.4 KB
per position instead of 18.7 KB dense. Sampled batches are ``scaling.batch.TrainBatch`` with
those slots as their sparse policy targets, the form the train step takes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN
from mcts.env import MAX_MOVES
from scaling.batch import BatchSpec, TrainBatch


@dataclasses.dataclass
class ReplayBuffer:
    """A ring of at most ``capacity`` positions (the oldest are overwritten first)."""

    obs: np.ndarray  # uint8[C, OBS_LEN]
    moves: np.ndarray  # int16[C, MAX_MOVES] legal actions, NUM_ACTIONS-padded
    policy: np.ndarray  # f32[C, MAX_MOVES] search policy over moves
    outcome: np.ndarray  # int8[C] the game's result from the mover's view
    size: int = 0  # filled rows
    head: int = 0  # next row to write

    @classmethod
    def empty(cls, capacity: int) -> ReplayBuffer:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        return cls(
            obs=np.zeros((capacity, OBS_LEN), np.uint8),
            moves=np.full((capacity, MAX_MOVES), NUM_ACTIONS, np.int16),
            policy=np.zeros((capacity, MAX_MOVES), np.float32),
            outcome=np.zeros((capacity,), np.int8),
        )

    @property
    def capacity(self) -> int:
        return int(self.obs.shape[0])

    def add(self, traj: Any) -> int:
        """Adds the valid positions of a ``mcts.selfplay.Trajectory``; returns how many."""
        valid = np.asarray(traj.valid).reshape(-1)  # bool[T * B]
        rows = {
            "obs": np.asarray(traj.obs).reshape(-1, OBS_LEN)[valid],
            "moves": np.asarray(traj.moves).reshape(-1, MAX_MOVES)[valid],
            "policy": np.asarray(traj.policy).reshape(-1, MAX_MOVES)[valid],
            "outcome": np.rint(np.asarray(traj.outcome).reshape(-1)[valid]).astype(np.int8),
        }
        n = int(valid.sum())
        for start in range(0, n, self.capacity):  # more than the capacity: keep the newest
            chunk = {k: v[start : start + self.capacity] for k, v in rows.items()}
            m = len(chunk["obs"])
            idx = (self.head + np.arange(m)) % self.capacity
            for name, values in chunk.items():
                getattr(self, name)[idx] = values
            self.head = int((self.head + m) % self.capacity)
            self.size = min(self.capacity, self.size + m)
        return n

    def sample(self, rng: np.random.Generator, batch: int) -> TrainBatch:
        """A training batch of ``batch`` positions drawn uniformly with replacement, with the
        search policy as its sparse target (``K = MAX_MOVES`` slots, padding at weight 0)."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        idx = rng.integers(0, self.size, batch)
        moves = self.moves[idx]  # int16[B, MAX_MOVES]
        return TrainBatch(
            obs=self.obs[idx],
            policy_index=moves.astype(np.int32),
            policy_weight=np.where(moves < NUM_ACTIONS, self.policy[idx], 0.0).astype(np.float32),
            result=self.outcome[idx],
            mover_elo=np.full((batch,), -1, np.int16),
        )

    @staticmethod
    def batch_spec(batch: int) -> BatchSpec:
        """The shapes of ``sample(rng, batch)``, for compiling the learner's step."""
        return BatchSpec(batch_size=batch, policy_slots=MAX_MOVES)

    def arrays(self) -> dict[str, np.ndarray]:
        """The state to checkpoint (with ``size`` and ``head`` in the metadata)."""
        return {
            "obs": self.obs,
            "moves": self.moves,
            "policy": self.policy,
            "outcome": self.outcome,
        }
