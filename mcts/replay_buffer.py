"""The replay buffer of self-play: a ring of positions with their search targets, on the host.

Targets are kept sparse, over each position's legal moves (``mcts.env.MAX_MOVES`` slots): ~1.4 KB
per position instead of 18.7 KB dense. Sampled batches are ``scaling.batch.TrainBatch`` with
those slots as their sparse policy targets, the form the train step takes.

The window is sized in games, as AlphaZero's was: positions are stored game by game with the
number of the game they came from, and batches are drawn from the last ``window_games`` games
(``capacity`` positions bound the memory). The value target is the game's outcome, or, with
``value_mix`` = m > 0, the mixture (1 - m) * outcome + m * root search value: the train step
takes one result class per position, so the class is drawn from that mixture (the root value
v read as win with probability max(v, 0), loss with max(-v, 0), draw otherwise), whose
expected cross-entropy is the cross-entropy against the mixed target.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN
from mcts.env import MAX_MOVES
from scaling.batch import BatchSpec, TrainBatch

__all__ = ["ReplayBuffer"]


@dataclasses.dataclass
class ReplayBuffer:
    """A ring of at most ``capacity`` positions (the oldest are overwritten first)."""

    obs: np.ndarray  # uint8[C, OBS_LEN]
    moves: np.ndarray  # int16[C, MAX_MOVES] legal actions, NUM_ACTIONS-padded
    policy: np.ndarray  # f32[C, MAX_MOVES] search policy over moves
    outcome: np.ndarray  # int8[C] the game's result from the mover's view
    value: np.ndarray  # f32[C] the root search value, mover's view
    game: np.ndarray  # int64[C] the number of the game the position came from (from 0)
    size: int = 0  # filled rows
    head: int = 0  # next row to write
    games: int = 0  # games added so far
    window_games: int | None = None  # sample from the last this many games (None: every row)
    value_mix: float = 0.0  # weight of the root value in the value target

    @classmethod
    def empty(
        cls, capacity: int, window_games: int | None = None, value_mix: float = 0.0
    ) -> ReplayBuffer:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        return cls(
            obs=np.zeros((capacity, OBS_LEN), np.uint8),
            moves=np.full((capacity, MAX_MOVES), NUM_ACTIONS, np.int16),
            policy=np.zeros((capacity, MAX_MOVES), np.float32),
            outcome=np.zeros((capacity,), np.int8),
            value=np.zeros((capacity,), np.float32),
            game=np.full((capacity,), -1, np.int64),
            window_games=window_games,
            value_mix=value_mix,
        )

    @property
    def capacity(self) -> int:
        return int(self.obs.shape[0])

    def add(self, traj: Any) -> int:
        """Adds the valid positions of a ``mcts.selfplay.Trajectory`` game by game; returns how
        many."""
        valid = np.asarray(traj.valid).T.reshape(-1)  # bool[B * T], game-major
        b = np.asarray(traj.valid).shape[1]

        def rows(x: Any, *tail: int) -> np.ndarray:
            return np.swapaxes(np.asarray(x), 0, 1).reshape(-1, *tail)[valid]

        game = np.repeat(self.games + np.arange(b), np.asarray(traj.valid).shape[0])[valid]
        new = {
            "obs": rows(traj.obs, OBS_LEN),
            "moves": rows(traj.moves, MAX_MOVES),
            "policy": rows(traj.policy, MAX_MOVES),
            "outcome": np.rint(rows(traj.outcome)).astype(np.int8),
            "value": rows(traj.value).astype(np.float32),
            "game": game,
        }
        self.games += b
        n = int(valid.sum())
        for start in range(0, n, self.capacity):  # more than the capacity: keep the newest
            chunk = {k: v[start : start + self.capacity] for k, v in new.items()}
            m = len(chunk["obs"])
            idx = (self.head + np.arange(m)) % self.capacity
            for name, values in chunk.items():
                getattr(self, name)[idx] = values
            self.head = int((self.head + m) % self.capacity)
            self.size = min(self.capacity, self.size + m)
        return n

    def window(self) -> np.ndarray:
        """int64[N] the rows batches are drawn from: those of the last ``window_games`` games."""
        if self.window_games is None:
            return np.arange(self.size)
        return np.flatnonzero(self.game[: self.size] >= self.games - self.window_games)

    def sample(self, rng: np.random.Generator, batch: int) -> TrainBatch:
        """A training batch of ``batch`` positions drawn uniformly with replacement from the
        window, with the search policy as its sparse target (``K = MAX_MOVES`` slots, padding at
        weight 0) and the (mixed) value target."""
        rows = self.window()
        if len(rows) == 0:
            raise ValueError("the replay buffer is empty")
        idx = rows[rng.integers(0, len(rows), batch)]
        moves = self.moves[idx]  # int16[B, MAX_MOVES]
        result = self.outcome[idx]
        if self.value_mix > 0:  # draw the class from the mixed target
            v = self.value[idx]
            u, w = rng.random(batch), rng.random(batch)
            from_value = np.where(w < np.maximum(v, 0), 1, np.where(w < np.abs(v), -1, 0))
            result = np.where(u < self.value_mix, from_value, result).astype(np.int8)
        return TrainBatch(
            obs=self.obs[idx],
            policy_index=moves.astype(np.int32),
            policy_weight=np.where(moves < NUM_ACTIONS, self.policy[idx], 0.0).astype(np.float32),
            result=result,
            mover_elo=np.full((batch,), -1, np.int16),
        )

    @staticmethod
    def batch_spec(batch: int) -> BatchSpec:
        """The shapes of ``sample(rng, batch)``, for compiling the learner's step."""
        return BatchSpec(batch_size=batch, policy_slots=MAX_MOVES)

    def arrays(self) -> dict[str, np.ndarray]:
        """The state to checkpoint (with ``size``, ``head`` and ``games`` in the metadata)."""
        return {
            "obs": self.obs,
            "moves": self.moves,
            "policy": self.policy,
            "outcome": self.outcome,
            "value": self.value,
            "game": self.game,
        }
