"""Compute accounting: analytic FLOPs of the model, XLA's count, device peaks, MFU.

The compute axis of every study is FLOPs (DESIGN.md, contract 2). XLA's cost analysis of the
compiled train step is the number recorded; the analytic count here is its cross-check and the
planning tool (steps for a budget before anything is compiled).

Analytic count per position (``T = seq_len(cfg)``, ``W`` width, ``H = mlp_ratio * W``), matrix
products only, ``2 * m * n * k`` each; embeddings are lookups (free):

- per block: QKV and output projections ``2 * T * W * 4W``, attention scores ``Q K^T`` and the
  weighted sum ``A V`` ``2 * T * T * W`` each, MLP ``2 * T * W * 2H``;
- policy head ``2 * 64 * W * 73``; value head ``2 * W * W + 2 * W * 3``.

Training counts the backward pass as twice the forward: ``train = 3 * forward``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from scaling.config import ModelConfig
from scaling.model import NUM_PLANES, VALUE_CLASSES, seq_len

__all__ = [
    "PEAK_FLOPS",
    "PEAK_FLOPS_F32",
    "device_peak_flops",
    "forward_flops_per_position",
    "mfu",
    "steps_for_budget",
    "train_flops_per_position",
    "xla_flops",
]


def forward_flops_per_position(cfg: ModelConfig) -> float:
    """Matmul FLOPs of one forward pass on one position (see the module docstring)."""
    t, w = seq_len(cfg), cfg.width
    hidden = cfg.mlp_ratio * w
    projections = 2 * t * w * (4 * w)  # Q, K, V and output
    attention = 2 * (2 * t * t * w)  # Q K^T and A V, all heads together
    mlp = 2 * t * w * (2 * hidden)
    heads = 2 * 64 * w * NUM_PLANES + 2 * w * w + 2 * w * len(VALUE_CLASSES)
    return float(cfg.depth * (projections + attention + mlp) + heads)


def train_flops_per_position(cfg: ModelConfig) -> float:
    """Forward plus backward (twice the forward) FLOPs of one position in a training step."""
    return 3.0 * forward_flops_per_position(cfg)


def steps_for_budget(budget_flops: float, flops_per_step: float) -> int:
    """Train steps that spend ``budget_flops`` at ``flops_per_step`` each: the fewest whose
    FLOPs reach the budget (at least 1). A run counts XLA's FLOPs of its compiled step
    (``scaling.step.TrainStep.flops_per_step``); for planning, pass the analytic count
    ``train_flops_per_position(cfg) * batch_size``."""
    if flops_per_step <= 0:
        raise ValueError(f"flops_per_step must be > 0, got {flops_per_step}")
    return max(1, math.ceil(budget_flops / flops_per_step))


def xla_flops(compiled: Any) -> float:
    """FLOPs of a compiled computation (``jax.jit(f).lower(...).compile()``) by XLA's cost
    analysis. jax returns a dict, or (older versions) a list of dicts, one per program."""
    analysis = compiled.cost_analysis()
    if analysis is None:
        raise ValueError("this backend gives no cost analysis")
    if isinstance(analysis, Mapping):
        analysis = [analysis]
    assert isinstance(analysis, Sequence)
    return float(sum(float(part.get("flops", 0.0)) for part in analysis))


# Peak dense FLOP/s per jax device, by a substring of ``jax.Device.device_kind`` (the longest
# matching key wins; matched case-insensitively). bfloat16 (and float16) matrix math:
PEAK_FLOPS: dict[str, float] = {
    "H100": 989e12,  # SXM ("NVIDIA H100 80GB HBM3")
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H200": 989e12,
    "GH200": 989e12,
    "B200": 2250e12,
    "A100": 312e12,  # SXM and PCIe
    "TPU v2": 22.5e12,  # one jax device = one core (two per chip)
    "TPU v3": 61.5e12,  # one jax device = one core (two per chip)
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5e": 197e12,
    "TPU v5": 459e12,  # v5p
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,  # v6e (Trillium)
    "TPU v6e": 918e12,
}
# float32 matrix math at jax's DEFAULT precision: TF32 tensor cores on NVIDIA (Ampere and later),
# bfloat16 passes on TPU (so the same peak as bfloat16).
PEAK_FLOPS_F32: dict[str, float] = {
    "H100": 494.7e12,
    "H100 PCIe": 378e12,
    "H100 NVL": 417.5e12,
    "H200": 494.7e12,
    "GH200": 494.7e12,
    "B200": 1100e12,
    "A100": 156e12,
    **{kind: peak for kind, peak in PEAK_FLOPS.items() if kind.startswith("TPU")},
}


def _lookup(table: Mapping[str, float], kind: str) -> float | None:
    kind = kind.lower()
    matches = [key for key in table if key.lower() in kind]
    return table[max(matches, key=len)] if matches else None


def device_peak_flops(device: jax.Device, dtype: Any) -> float | None:
    """Peak dense FLOP/s of ``device`` for matmuls in ``dtype``; None if unknown (CPUs)."""
    if device.platform == "cpu":
        return None
    dt = jnp.dtype(dtype)
    if dt in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return _lookup(PEAK_FLOPS, device.device_kind)
    if dt == jnp.dtype(jnp.float32):
        return _lookup(PEAK_FLOPS_F32, device.device_kind)
    return None


def mfu(flops_per_second: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the device's peak (0..1)."""
    if peak <= 0:
        raise ValueError(f"peak FLOP/s must be > 0, got {peak}")
    return flops_per_second / peak
