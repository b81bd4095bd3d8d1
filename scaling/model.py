"""The policy/value network family: a pre-LayerNorm transformer over the 67 position tokens.

Input: ``obs`` uint8[B, 67] as defined in ``data_pipeline.encoding`` (mover's frame), and when
``ModelConfig.elo_buckets > 0`` the mover's rating (one more token). Output: policy logits over
pgx's 4672 AlphaZero actions and value logits over ``VALUE_CLASSES``, both float32.

Sequence (``seq_len(cfg)`` tokens): the 64 square tokens (python-chess order, mover's frame),
castling, en passant, halfmove clock, then the optional Elo token. Each kind of token has its own
embedding table; a learned position embedding is added to all of them.

The policy head maps every square token to 73 move-type logits (the moves that START on that
square) and reorders the squares to pgx's file-major numbering, so that
``policy_logits[..., pgx_square * 73 + plane]`` is the logit of ``encoding.move_to_action``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from data_pipeline.encoding import HALFMOVE_CAP, NUM_ACTIONS, OBS_LEN
from scaling.config import ModelConfig

__all__ = [
    "NAMED_SIZES",
    "VALUE_CLASSES",
    "PolicyValueNet",
    "elo_bucket",
    "init_params",
    "param_count",
    "param_shapes",
    "seq_len",
    "squares_to_actions",
]

# Value logits, from the mover's view: a game result r in {-1, 0, 1} is class r + 1.
VALUE_CLASSES: tuple[str, str, str] = ("loss", "draw", "win")
NUM_PLANES = NUM_ACTIONS // 64  # 73 move types per from-square
ILLEGAL_LOGIT = -1e9  # finite: a fully masked row still has a defined (uniform) softmax

# Vocabulary of each token kind (see the encoding's docstring).
SQUARE_VOCAB = 13  # empty, mover's P..K, opponent's P..K
CASTLING_VOCAB = 16  # 4 bits
EP_VOCAB = 9  # none, or 1 + file
HALFMOVE_VOCAB = HALFMOVE_CAP + 1  # 0..100

# Named sizes of the family, about 10k to 300M parameters (param_count gives the exact number).
# Shapes follow the usual transformer aspect ratios (width / depth from ~8 at the bottom to ~45 at
# the top, head size 8..64). Elo conditioning is added with ``dataclasses.replace``.
NAMED_SIZES: dict[str, ModelConfig] = {
    "10k": ModelConfig(width=16, depth=2, heads=2),
    "30k": ModelConfig(width=32, depth=2, heads=4),
    "100k": ModelConfig(width=48, depth=3, heads=4),
    "300k": ModelConfig(width=64, depth=6, heads=4),
    "1m": ModelConfig(width=128, depth=5, heads=4),
    "3m": ModelConfig(width=192, depth=7, heads=6),
    "10m": ModelConfig(width=256, depth=12, heads=8),
    "30m": ModelConfig(width=512, depth=10, heads=8),
    "100m": ModelConfig(width=768, depth=14, heads=12),
    "300m": ModelConfig(width=1024, depth=24, heads=16),
}


def seq_len(cfg: ModelConfig) -> int:
    """Tokens the transformer sees: the 67 observation tokens, plus one if Elo-conditioned."""
    return OBS_LEN + (cfg.elo_buckets > 0)


def elo_bucket(cfg: ModelConfig, mover_elo: jax.Array) -> jax.Array:  # int32[B]
    """Rating -> bucket: ``clip(elo // elo_bucket_width, 0, elo_buckets - 1)``; a missing rating
    (negative, -1 by convention) -> the extra "unknown" bucket ``elo_buckets``."""
    elo = mover_elo.astype(jnp.int32)
    known = jnp.clip(elo // cfg.elo_bucket_width, 0, cfg.elo_buckets - 1)
    return jnp.where(elo < 0, cfg.elo_buckets, known)


def squares_to_actions(x: jax.Array) -> jax.Array:  # [..., 64, 73] -> [..., 4672]
    """Per-square move-type values, squares in python-chess order (rank * 8 + file), to pgx's
    action layout: index = (file * 8 + rank) * 73 + plane."""
    lead = x.shape[:-2]
    x = x.reshape(*lead, 8, 8, NUM_PLANES)  # [..., rank, file, plane]
    x = jnp.swapaxes(x, -3, -2)  # [..., file, rank, plane]
    return x.reshape(*lead, NUM_ACTIONS)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask); softmax in float32."""

    width: int
    heads: int
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, W] -> [B, T, W]
        b, t, _ = x.shape
        head = self.width // self.heads
        qkv = nn.Dense(3 * self.width, dtype=self.dtype, name="qkv")(x)  # [B, T, 3W]
        q, k, v = jnp.unstack(qkv.reshape(b, t, 3, self.heads, head), axis=2)  # [B, T, N, H]
        logits = jnp.einsum("bqnh,bknh->bnqk", q, k) * head**-0.5  # [B, N, T, T]
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
        out = jnp.einsum("bnqk,bknh->bqnh", weights, v).reshape(b, t, self.width)  # [B, T, W]
        return nn.Dense(self.width, dtype=self.dtype, name="out")(out)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    cfg: ModelConfig
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, W] -> [B, T, W]
        w = self.cfg.width
        h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x)
        x = x + SelfAttention(w, self.cfg.heads, self.dtype, name="attn")(h)
        h = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        h = nn.Dense(self.cfg.mlp_ratio * w, dtype=self.dtype, name="mlp_in")(h)  # [B, T, rW]
        h = nn.gelu(h)
        return x + nn.Dense(w, dtype=self.dtype, name="mlp_out")(h)


class PolicyValueNet(nn.Module):
    """Policy and value logits for a batch of encoded positions (see the module docstring)."""

    cfg: ModelConfig
    dtype: Any = jnp.float32  # compute dtype (bfloat16 on accelerators); params stay float32

    @nn.compact
    def __call__(
        self,
        obs: jax.Array,  # uint8[B, 67]
        mover_elo: jax.Array | None = None,  # int[B]; -1 = unknown; iff cfg.elo_buckets > 0
        legal_mask: jax.Array | None = None,  # bool[B, 4672]; illegal logits -> ILLEGAL_LOGIT
    ) -> tuple[jax.Array, jax.Array]:  # policy f32[B, 4672], value f32[B, 3]
        cfg, w, dt = self.cfg, self.cfg.width, self.dtype
        if obs.ndim != 2 or obs.shape[1] != OBS_LEN:
            raise ValueError(f"obs must be [batch, {OBS_LEN}], got shape {obs.shape}")
        if (mover_elo is not None) != (cfg.elo_buckets > 0):
            given = "given" if mover_elo is not None else "missing"
            raise ValueError(
                f"mover_elo must be given iff the model is Elo-conditioned "
                f"(elo_buckets={cfg.elo_buckets}, mover_elo {given})"
            )
        tokens = obs.astype(jnp.int32)

        def embed(vocab: int, name: str, ids: jax.Array) -> jax.Array:
            return nn.Embed(vocab, w, dtype=dt, name=name)(ids)

        parts = [
            embed(SQUARE_VOCAB, "embed_square", tokens[:, :64]),  # [B, 64, W]
            embed(CASTLING_VOCAB, "embed_castling", tokens[:, 64:65]),  # [B, 1, W]
            embed(EP_VOCAB, "embed_ep", tokens[:, 65:66]),  # [B, 1, W]
            embed(HALFMOVE_VOCAB, "embed_halfmove", tokens[:, 66:67]),  # [B, 1, W]
        ]
        if mover_elo is not None:
            bucket = elo_bucket(cfg, mover_elo)[:, None]  # int32[B, 1]
            parts.append(embed(cfg.elo_buckets + 1, "embed_elo", bucket))  # [B, 1, W]
        x = jnp.concatenate(parts, axis=1)  # [B, T, W]
        pos = self.param("embed_pos", nn.initializers.normal(0.02), (seq_len(cfg), w))
        x = x + pos.astype(dt)[None]  # [B, T, W]

        for i in range(cfg.depth):
            x = Block(cfg, dt, name=f"block_{i}")(x)
        x = nn.LayerNorm(dtype=dt, name="ln_final")(x)  # [B, T, W]

        per_square = nn.Dense(NUM_PLANES, dtype=dt, name="policy")(x[:, :64])  # [B, 64, 73]
        policy = squares_to_actions(per_square).astype(jnp.float32)  # [B, 4672]
        if legal_mask is not None:
            policy = jnp.where(legal_mask, policy, ILLEGAL_LOGIT)

        v = nn.Dense(w, dtype=dt, name="value_hidden")(x.mean(axis=1))  # [B, W]
        value = nn.Dense(len(VALUE_CLASSES), dtype=dt, name="value")(nn.gelu(v))  # [B, 3]
        return policy, value.astype(jnp.float32)


def _example_inputs(cfg: ModelConfig) -> tuple[jax.Array, jax.Array | None]:
    obs = jnp.zeros((1, OBS_LEN), jnp.uint8)
    return obs, (jnp.zeros((1,), jnp.int32) if cfg.elo_buckets else None)


def init_params(cfg: ModelConfig, rng: jax.Array) -> Any:
    """Freshly initialised float32 parameters of ``PolicyValueNet(cfg)``."""
    net = PolicyValueNet(cfg)
    # jitted: eager initialisation dispatches (and compiles) op by op, seconds even for tiny nets
    return jax.jit(lambda key: net.init(key, *_example_inputs(cfg))["params"])(rng)


def param_shapes(cfg: ModelConfig) -> Any:
    """The parameter pytree of ``cfg`` as ``jax.ShapeDtypeStruct`` (nothing is allocated)."""
    net = PolicyValueNet(cfg)
    return jax.eval_shape(
        lambda key: net.init(key, *_example_inputs(cfg))["params"], jax.random.key(0)
    )


def param_count(cfg: ModelConfig) -> int:
    """Exact number of parameters, computed analytically (equals the count of ``init_params``)."""
    w, hidden = cfg.width, cfg.mlp_ratio * cfg.width
    vocab = SQUARE_VOCAB + CASTLING_VOCAB + EP_VOCAB + HALFMOVE_VOCAB
    vocab += cfg.elo_buckets + 1 if cfg.elo_buckets else 0
    embeddings = (vocab + seq_len(cfg)) * w
    attention = 3 * w * w + 3 * w + w * w + w  # fused qkv and output projection, with biases
    mlp = w * hidden + hidden + hidden * w + w
    block = attention + mlp + 2 * 2 * w  # two LayerNorms (scale and bias)
    heads = (w * NUM_PLANES + NUM_PLANES) + (w * w + w) + (w * len(VALUE_CLASSES) + 3)
    return embeddings + cfg.depth * block + 2 * w + heads
