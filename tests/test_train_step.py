"""The one train step (``scaling.make_train_step``): the sparse policy loss against the dense
cross-entropy it stands for, one target form for supervised and self-play batches, the schedule,
the compute dtype, and a compiled step over the device mesh."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN
from scaling import (
    NAMED_SIZES,
    BatchSpec,
    OptimConfig,
    PolicyValueNet,
    TrainBatch,
    compute_dtype,
    init_params,
    make_train_step,
    steps_for_budget,
    supervised_batch,
)
from scaling.step import learning_rate, losses

MODEL = NAMED_SIZES["10k"]


def _obs(rng: np.random.Generator, b: int) -> np.ndarray:
    obs = rng.integers(0, 13, (b, OBS_LEN)).astype(np.uint8)
    obs[:, 64:] = rng.integers(0, 9, (b, 3))  # castling, en passant, halfmove in range
    return obs


def _batch(rng: np.random.Generator, b: int, k: int) -> TrainBatch:
    index = rng.integers(0, NUM_ACTIONS, (b, k)).astype(np.int32)
    weight = rng.random((b, k)).astype(np.float32)
    index[:, -1], weight[:, -1] = NUM_ACTIONS, 0.0  # a padding slot
    return TrainBatch(
        obs=_obs(rng, b),
        policy_index=index,
        policy_weight=weight / weight.sum(1, keepdims=True),
        result=rng.integers(-1, 2, b).astype(np.int8),
        mover_elo=np.full((b,), -1, np.int16),
    )


def test_sparse_loss_is_the_dense_cross_entropy() -> None:
    rng = np.random.default_rng(0)
    net = PolicyValueNet(MODEL)
    params = init_params(MODEL, jax.random.key(0))
    batch = _batch(rng, 6, 5)
    _, got = losses(net, params, batch, value_weight=0.5)
    policy, value = net.apply({"params": params}, batch.obs)
    dense = np.zeros((6, NUM_ACTIONS + 1), np.float32)  # last column: the padding
    np.put_along_axis(dense, batch.policy_index, batch.policy_weight, axis=1)
    want_policy = optax.softmax_cross_entropy(policy, dense[:, :NUM_ACTIONS]).mean()
    want_value = optax.softmax_cross_entropy_with_integer_labels(
        value, batch.result.astype(np.int32) + 1
    ).mean()
    np.testing.assert_allclose(got["policy_loss"], want_policy, rtol=1e-6)
    np.testing.assert_allclose(got["value_loss"], want_value, rtol=1e-6)
    np.testing.assert_allclose(got["loss"], want_policy + 0.5 * want_value, rtol=1e-6)
    best = np.take_along_axis(batch.policy_index, batch.policy_weight.argmax(1)[:, None], 1)
    np.testing.assert_allclose(got["policy_acc"], np.mean(policy.argmax(-1) == best[:, 0]))


def test_a_supervised_batch_is_one_target_at_weight_one() -> None:
    rng = np.random.default_rng(1)
    action = rng.integers(0, NUM_ACTIONS, 4).astype(np.int32)
    loader_batch = {
        "obs": _obs(rng, 4),
        "action": action,
        "result": np.array([1, 0, -1, 0], np.int8),
        "mover_elo": np.array([1200, -1, 800, 1500], np.int16),
        "ply": np.zeros(4, np.uint16),  # the loader's other fields are not the step's
    }
    batch = supervised_batch(loader_batch)
    for name, want in vars(BatchSpec(batch_size=4).shapes()).items():
        got = getattr(batch, name)
        assert (got.shape, got.dtype) == (want.shape, want.dtype), name
    net = PolicyValueNet(MODEL)
    params = init_params(MODEL, jax.random.key(0))
    _, got_metrics = losses(net, params, batch, value_weight=1.0)
    policy, _ = net.apply({"params": params}, batch.obs)
    want = optax.softmax_cross_entropy_with_integer_labels(policy, action).mean()
    np.testing.assert_allclose(got_metrics["policy_loss"], want, rtol=1e-6)


def test_schedule_decays_over_the_run_or_holds_the_peak() -> None:
    optim = OptimConfig(learning_rate=1e-3, warmup_steps=10, final_lr_fraction=0.1)
    cosine = learning_rate(optim, 100)
    assert float(cosine(0)) == 0.0 and float(cosine(10)) == pytest.approx(1e-3)
    assert float(cosine(100)) == pytest.approx(1e-4)
    held = learning_rate(optim, None)
    assert float(held(5)) == pytest.approx(5e-4)
    assert float(held(10)) == float(held(10**7)) == pytest.approx(1e-3)
    no_warmup = OptimConfig(learning_rate=1e-3, warmup_steps=0)
    assert float(learning_rate(no_warmup, None)(0)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="total_steps"):
        learning_rate(optim, 0)


def test_steps_for_budget_spend_at_least_the_budget() -> None:
    assert steps_for_budget(10.5 * 1e6, 1e6) == 11
    assert steps_for_budget(10e6, 1e6) == 10
    assert steps_for_budget(1.0, 1e6) == 1
    with pytest.raises(ValueError, match="flops_per_step"):
        steps_for_budget(1.0, 0.0)


def test_compute_dtype() -> None:
    auto = jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    assert compute_dtype("auto") == auto
    assert compute_dtype("bfloat16") == jnp.bfloat16
    with pytest.raises(ValueError, match="float16"):
        compute_dtype("float16")


@pytest.mark.slow
def test_compiled_step_on_the_mesh_trains_self_play_targets() -> None:
    """One compile: the step for K = 4 targets at the auto dtype on every local device."""
    spec = BatchSpec(batch_size=8, policy_slots=4)
    fns = make_train_step(MODEL, OptimConfig(warmup_steps=0), total_steps=None, spec=spec)
    assert fns.net.dtype == compute_dtype("auto")
    assert fns.mesh.devices.size == len(jax.local_devices())
    ratio = fns.flops_per_step / fns.analytic_flops_per_step
    assert 0.8 <= ratio <= 1.3, ratio
    state = fns.init(init_params(MODEL, jax.random.key(0)), jax.random.key_data(jax.random.key(0)))
    batch = fns.put(_batch(np.random.default_rng(2), 8, 4))
    first = None
    for _ in range(5):  # the same batch: its loss falls
        state, metrics = fns.train_step(state, batch)
        first = float(metrics["loss"]) if first is None else first
    assert int(state.step) == 5 and float(metrics["loss"]) < first
    with pytest.raises(ValueError, match="policy_slots"):
        BatchSpec(batch_size=8, policy_slots=0)
