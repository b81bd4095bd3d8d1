"""The self-play replay buffer: a ring that keeps the newest positions and samples the sparse
targets of ``scaling.batch.TrainBatch``."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.encoding import NUM_ACTIONS
from mcts.env import MAX_MOVES
from mcts.replay_buffer import ReplayBuffer
from scaling.batch import BatchSpec


class Traj:  # the fields of mcts.selfplay.Trajectory that the buffer reads, [T=3, B=2]
    valid = np.array([[True, True], [True, False], [False, False]])
    obs = np.arange(6, dtype=np.uint8)[:, None].repeat(67, 1).reshape(3, 2, 67)
    moves = np.full((3, 2, MAX_MOVES), NUM_ACTIONS, np.int16)
    policy = np.zeros((3, 2, MAX_MOVES), np.float32)
    outcome = np.array([[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]])
    value = np.array([[0.5, -0.5], [0.0, 0.0], [0.0, 0.0]], np.float32)


Traj.moves[..., :2] = [7, 9]
Traj.policy[..., :3] = [0.25, 0.75, 0.5]  # the third slot is padding: its weight is dropped


def test_ring_keeps_the_newest_and_samples_sparse_targets() -> None:
    buf = ReplayBuffer.empty(2)
    assert buf.add(Traj) == 3
    assert buf.size == 2 and sorted(buf.obs[:, 0]) == [1, 2]  # the oldest (obs 0) overwritten
    batch = buf.sample(np.random.default_rng(0), 5)
    spec = ReplayBuffer.batch_spec(5)
    assert spec == BatchSpec(batch_size=5, policy_slots=MAX_MOVES)
    for name, want in vars(spec.shapes()).items():
        got = getattr(batch, name)
        assert (got.shape, got.dtype) == (want.shape, want.dtype), name
    np.testing.assert_array_equal(batch.policy_index[:, :3], [[7, 9, NUM_ACTIONS]] * 5)
    np.testing.assert_allclose(batch.policy_weight[:, :3], [[0.25, 0.75, 0.0]] * 5)
    assert batch.policy_weight.sum(axis=1) == pytest.approx(1.0)
    assert set(batch.result.tolist()) <= {-1, 0}  # the rows of obs 1 and 2
    assert (batch.mover_elo == -1).all()


def test_sampling_is_deterministic_for_a_seed() -> None:
    buf = ReplayBuffer.empty(8)
    buf.add(Traj)
    a, b = (buf.sample(np.random.default_rng([3, 1]), 4) for _ in range(2))
    for name in vars(a):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_window_is_the_last_games() -> None:
    """Positions are stored game by game; batches come only from the last N games'."""
    buf = ReplayBuffer.empty(100, window_games=2)
    buf.add(Traj)  # games 0 (obs 0, 2) and 1 (obs 1)
    assert buf.games == 2 and buf.obs[:3, 0].tolist() == [0, 2, 1]  # game-major
    assert buf.game[:3].tolist() == [0, 0, 1]
    assert sorted(buf.obs[buf.window(), 0].tolist()) == [0, 1, 2]
    buf.add(Traj)  # games 2 and 3: the window drops games 0 and 1
    assert buf.games == 4 and buf.window().tolist() == [3, 4, 5]
    batch = buf.sample(np.random.default_rng(0), 64)
    assert {int(x) for x in batch.obs[:, 0]} == {0, 1, 2}  # the rows of games 2 and 3


def test_value_mix_draws_classes_with_the_mixed_expectation() -> None:
    """mix 0.5: the first game's first position (outcome +1, root value 0.5) has target
    0.5 * win + 0.5 * (0.5 win + 0.5 draw) = 0.75 win, 0.25 draw; its second (outcome 0,
    value 0) stays a draw; the other game's (outcome -1, value -0.5) 0.75 loss, 0.25 draw."""
    buf = ReplayBuffer.empty(3, value_mix=0.5)
    buf.add(Traj)
    rng = np.random.default_rng(5)
    results: dict[int, list[int]] = {0: [], 1: [], 2: []}  # by obs value
    for _ in range(40):
        batch = buf.sample(rng, 256)
        for o, r in zip(batch.obs[:, 0].tolist(), batch.result.tolist(), strict=True):
            results[o].append(r)
    win0 = np.mean(np.array(results[0]) == 1)
    assert set(results[0]) == {0, 1} and abs(win0 - 0.75) < 0.03
    assert set(results[2]) == {0}
    loss1 = np.mean(np.array(results[1]) == -1)
    assert set(results[1]) == {-1, 0} and abs(loss1 - 0.75) < 0.03
    plain = ReplayBuffer.empty(3)
    plain.add(Traj)
    batch = plain.sample(rng, 256)
    np.testing.assert_array_equal(
        batch.result,
        plain.outcome[[np.flatnonzero(plain.obs[:, 0] == o)[0] for o in batch.obs[:, 0]]],
    )
