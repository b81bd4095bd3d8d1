"""The policy/value network: shapes, masking, Elo conditioning, the action layout of the policy,
exact parameter counts for every named size, and the analytic FLOP count against XLA's."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from types import SimpleNamespace
from typing import Any, cast

import chess
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipeline.encoding import (
    NUM_ACTIONS,
    OBS_LEN,
    encode_boards,
    legal_action_mask,
    move_to_action,
)
from scaling import flops
from scaling.config import ModelConfig
from scaling.model import (
    ILLEGAL_LOGIT,
    NAMED_SIZES,
    VALUE_CLASSES,
    PolicyValueNet,
    elo_bucket,
    init_params,
    param_count,
    param_shapes,
    squares_to_actions,
)

TINY = ModelConfig(width=16, depth=1, heads=2)
TINY_ELO = dataclasses.replace(TINY, elo_buckets=30)
FENS = [
    chess.STARTING_FEN,
    "r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1",  # black to move: castling in the flipped frame
    "rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3",  # en passant
    "4k3/8/8/8/8/8/6p1/4K2R b - - 0 1",  # black under-promotions
    "r3k3/1P6/8/8/8/8/8/4K3 w - - 0 1",  # white under-promotions
]


def _boards() -> list[chess.Board]:
    return [chess.Board(fen) for fen in FENS]


@cache
def _tiny(cfg: ModelConfig, dtype: Any = jnp.float32) -> tuple[Callable[..., Any], Any]:
    """(jit(apply)(params, obs, mover_elo=None, legal_mask=None), params) of a small net.
    Everything runs jitted: eager flax dispatches (and compiles) op by op, seconds per call."""
    net = PolicyValueNet(cfg, dtype=dtype)
    apply = jax.jit(lambda params, *args: net.apply({"params": params}, *args))
    return apply, init_params(cfg, jax.random.key(0))


def _inputs() -> tuple[list[chess.Board], jax.Array, jax.Array]:
    """The test boards, their observations uint8[B, 67] and legal masks bool[B, 4672]."""
    boards = _boards()
    legal = np.stack([legal_action_mask(b) for b in boards])
    return boards, jnp.asarray(encode_boards(boards)), jnp.asarray(legal)


def test_shapes_and_dtypes() -> None:
    apply, params = _tiny(TINY)
    _, obs, _ = _inputs()
    policy, value = apply(params, obs)
    assert policy.shape == (len(FENS), NUM_ACTIONS) and policy.dtype == jnp.float32
    assert value.shape == (len(FENS), len(VALUE_CLASSES)) and value.dtype == jnp.float32
    assert VALUE_CLASSES.index("win") == 1 + 1  # result r in {-1, 0, 1} is class r + 1
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    with pytest.raises(ValueError, match="obs must be"):
        apply(params, obs[0])


def test_legal_mask() -> None:
    apply, params = _tiny(TINY)
    _, obs, legal = _inputs()
    policy, _ = apply(params, obs, None, legal)
    assert bool((policy[~legal] == ILLEGAL_LOGIT).all())
    assert bool((policy[legal] > -1e3).all())
    probs = jax.nn.softmax(policy, axis=-1)
    np.testing.assert_allclose(jnp.where(legal, probs, 0).sum(-1), 1.0, rtol=1e-6)
    unmasked, _ = apply(params, obs)
    np.testing.assert_array_equal(policy[legal], unmasked[legal])


def test_policy_index_is_move_to_action() -> None:
    """logits[move_to_action(m)] is the policy head's output at m's from-square (mover's frame,
    python-chess order) and plane ``action % 73``, for every legal move of the test boards."""
    net = PolicyValueNet(TINY)
    _, params = _tiny(TINY)
    boards, obs, _ = _inputs()

    @jax.jit
    def apply(params: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        (policy, _), state = net.apply(
            {"params": params}, obs, capture_intermediates=lambda mdl, _: mdl.name == "policy"
        )
        return policy, state["intermediates"]["policy"]["__call__"][0]  # [B, 4672], [B, 64, 73]

    policy, per_square = map(np.asarray, apply(params, obs))
    checked = 0
    for i, board in enumerate(boards):
        for move in board.legal_moves:
            action = move_to_action(move, board.turn)
            from_square = move.from_square ^ (0 if board.turn else 56)  # mover's frame
            assert policy[i, action] == per_square[i, from_square, action % 73], move
            checked += 1
    assert checked > 50
    # and the reordering alone, on values that name their own square and plane
    marked = np.arange(64 * 73).reshape(64, 73)  # [python-chess square, plane] -> sq * 73 + plane
    actions = np.asarray(squares_to_actions(jnp.asarray(marked)))
    for move in chess.Board().legal_moves:
        assert actions[move_to_action(move, True)] // 73 == move.from_square


def test_elo_conditioning() -> None:
    apply, params = _tiny(TINY_ELO)
    _, obs, _ = _inputs()

    def run(elo: int) -> tuple[jax.Array, jax.Array]:
        return apply(params, obs, jnp.full(len(FENS), elo))

    (low, _), (high, high_value), (unknown, _) = run(800), run(2400), run(-1)
    assert not np.allclose(low, high) and not np.allclose(low, unknown)
    # ratings beyond the table clip to its last bucket; any rating is accepted at play time
    (beyond, _), (top, top_value) = run(9000), run(2999)
    np.testing.assert_array_equal(beyond, top)
    assert not np.allclose(high_value, top_value)
    buckets = elo_bucket(TINY_ELO, jnp.array([-1, 0, 99, 100, 1550, 2999, 3000, 9000]))
    assert buckets.tolist() == [30, 0, 0, 1, 15, 29, 29, 29]
    with pytest.raises(ValueError, match="mover_elo"):
        apply(params, obs)
    plain, plain_params = _tiny(TINY)
    with pytest.raises(ValueError, match="mover_elo"):
        plain(plain_params, obs, jnp.full(len(FENS), 1500))


def test_bfloat16_compute_on_cpu() -> None:
    apply, params = _tiny(TINY_ELO, jnp.bfloat16)
    f32_apply, f32_params = _tiny(TINY_ELO)
    _, obs, legal = _inputs()
    elo = jnp.full(len(FENS), 1500)
    policy, value = apply(params, obs, elo, legal)
    assert policy.dtype == value.dtype == jnp.float32
    assert bool(jnp.isfinite(policy).all() and jnp.isfinite(value).all())
    f32_policy, f32_value = f32_apply(f32_params, obs, elo)  # the compilation test_elo_... made
    np.testing.assert_allclose(policy[legal], f32_policy[legal], atol=0.1)
    np.testing.assert_allclose(value, f32_value, atol=0.1)


@pytest.mark.parametrize("name", list(NAMED_SIZES))
def test_param_count_is_exact(name: str) -> None:
    for cfg in (NAMED_SIZES[name], dataclasses.replace(NAMED_SIZES[name], elo_buckets=25)):
        shapes = param_shapes(cfg)  # jax.eval_shape: nothing is allocated
        assert sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes)) == param_count(cfg)


def test_named_sizes_span_10k_to_300m() -> None:
    counts = [param_count(cfg) for cfg in NAMED_SIZES.values()]
    assert counts == sorted(counts)
    assert 10_000 <= counts[0] <= 50_000 and 250e6 <= counts[-1] <= 400e6
    for name, cfg in NAMED_SIZES.items():  # each name is within a factor 1.25 of its count
        scale = float(name[:-1]) * (1e3 if name.endswith("k") else 1e6)
        assert 0.8 < param_count(cfg) / scale < 1.25, name


# ---------------------------------------------------------------------------------------------
# Analytic FLOPs vs XLA's cost analysis.
#
# The analytic count has only the matrix products. XLA also counts the element-wise work:
# LayerNorm, softmax (attention and the losses), GELU, bias and residual adds, the attention
# scale, the mean-pool, and in training their gradients plus the optimizer update (about a dozen
# FLOPs per parameter, spread over the batch). That work grows as T * W per layer while the
# matmuls grow as T * W^2, so the ratio falls towards 1 with width: about 1.16 at width 16,
# 1.10 at 32, 1.07 at 48 (forward; the train step is a little lower).

BATCH = 32
# the smallest in the fast suite; each costs a few seconds of compilation
FLOP_SIZES = [
    "10k",
    pytest.param("30k", marks=pytest.mark.slow),
    pytest.param("100k", marks=pytest.mark.slow),
]


def _train_step(net: PolicyValueNet) -> Callable[..., Any]:
    tx = optax.adamw(1e-3)

    def loss(params: Any, obs: jax.Array, action: jax.Array, result: jax.Array) -> jax.Array:
        policy, value = net.apply({"params": params}, obs)
        policy_ce = optax.softmax_cross_entropy_with_integer_labels(policy, action)
        value_ce = optax.softmax_cross_entropy_with_integer_labels(value, result + 1)
        return (policy_ce + value_ce).mean()

    def step(params: Any, opt_state: Any, obs: jax.Array, action: jax.Array, result: jax.Array):
        value, grads = jax.value_and_grad(loss)(params, obs, action, result)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


@pytest.mark.parametrize("name", FLOP_SIZES)
def test_analytic_flops_match_xla(name: str) -> None:
    cfg = NAMED_SIZES[name]
    net = PolicyValueNet(cfg)
    params = param_shapes(cfg)
    obs = jax.ShapeDtypeStruct((BATCH, OBS_LEN), jnp.uint8)
    labels = jax.ShapeDtypeStruct((BATCH,), jnp.int32)
    forward = jax.jit(lambda p, o: net.apply({"params": p}, o)).lower(params, obs).compile()
    opt_state = jax.eval_shape(optax.adamw(1e-3).init, params)
    train = jax.jit(_train_step(net)).lower(params, opt_state, obs, labels, labels).compile()

    analytic = flops.forward_flops_per_position(cfg)
    fwd_ratio = flops.xla_flops(forward) / BATCH / analytic
    train_ratio = flops.xla_flops(train) / BATCH / flops.train_flops_per_position(cfg)
    print(
        f"{name}: analytic forward {analytic:.4g} FLOPs/position; XLA/analytic forward "
        f"{fwd_ratio:.3f}, train step {train_ratio:.3f}"
    )
    assert 1.0 <= fwd_ratio < 1.2
    assert 0.95 <= train_ratio < 1.2


def test_flops_helpers() -> None:
    cfg = NAMED_SIZES["1m"]
    fwd = flops.forward_flops_per_position(cfg)
    assert flops.train_flops_per_position(cfg) == 3 * fwd
    # a hand count for TINY: T = 67, W = 16, H = 64, one block
    t, w, h = 67, 16, 64
    by_hand = (
        2 * t * w * 4 * w + 4 * t * t * w + 4 * t * w * h + 2 * 64 * w * 73 + 2 * w * w + 6 * w
    )
    assert flops.forward_flops_per_position(TINY) == by_hand
    assert flops.forward_flops_per_position(TINY_ELO) > by_hand  # one more token
    assert flops.steps_for_budget(3 * fwd * 256 * 10.5, 3 * fwd * 256) == 11
    assert flops.steps_for_budget(1.0, 3 * fwd * 256) == 1
    assert flops.mfu(100e12, 400e12) == 0.25

    def device(platform: str, kind: str) -> jax.Device:  # a stand-in: platform and device_kind
        return cast(jax.Device, SimpleNamespace(platform=platform, device_kind=kind))

    peak = flops.device_peak_flops
    assert peak(jax.devices("cpu")[0], jnp.float32) is None
    assert peak(device("gpu", "NVIDIA H100 80GB HBM3"), jnp.bfloat16) == 989e12
    assert peak(device("gpu", "NVIDIA H100 80GB HBM3"), "float32") == 494.7e12
    assert peak(device("gpu", "NVIDIA H100 PCIe"), jnp.bfloat16) == 756e12
    assert peak(device("gpu", "NVIDIA H200"), jnp.bfloat16) == 989e12
    assert peak(device("gpu", "NVIDIA A100-SXM4-80GB"), jnp.bfloat16) == 312e12
    assert peak(device("tpu", "TPU v5 lite"), jnp.bfloat16) == 197e12
    assert peak(device("tpu", "TPU v5"), jnp.float32) == 459e12
    assert peak(device("tpu", "TPU v4"), jnp.bfloat16) == 275e12
    assert peak(device("gpu", "Some Future GPU"), jnp.bfloat16) is None
    assert peak(device("gpu", "NVIDIA H100 80GB HBM3"), jnp.int8) is None
