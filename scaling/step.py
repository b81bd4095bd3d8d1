"""The train step: one way to build it, for supervised runs and the self-play learner alike.

``make_train_step(model, optim, total_steps=..., spec=..., mesh=..., dtype=...)`` returns a
``TrainStep``: the jitted, donated step over a ``TrainBatch`` (data parallel: the batch is split
over the mesh's ``data`` axis), its eval step, and XLA's FLOP count of the compiled step (the
compute axis, DESIGN.md contract 2). The mesh spans every device of every process
(``scaling.distributed``): with several processes, each feeds its devices' rows.

The parameters and the optimiser state are replicated on every device, or with ``fsdp=True``
fully sharded over the same ``data`` axis (FSDP / ZeRO-3 style, for a state too big for one
device): each leaf is split along its largest axis that the mesh divides, and kept whole where
none does (``fsdp_spec``). In the step the parameters are gathered whole (an all-gather that
XLA's SPMD partitioner inserts at the sharding constraint) and the gradients constrained back to
the parameters' layout, so the optimiser updates only each device's shard. Leaving the gathers
to the partitioner alone was worse on CPU (1m model, 4 devices: 18.3 MB of temporaries per
device instead of 14.3 MB, and 2.8% more FLOPs per device from repeated work). The layout
changes neither the maths (the same parameters within float rounding) nor the FLOPs counted,
and a checkpoint restores on any layout.

The loss is written for one position and vmapped over the batch: policy cross-entropy against
the sparse target distribution (``scaling.batch``), plus ``optim.value_loss_weight`` times the
value cross-entropy on the game's result (loss/draw/win from the mover's view).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from data_pipeline.encoding import NUM_ACTIONS
from scaling import distributed, flops
from scaling.batch import BatchSpec, TrainBatch
from scaling.config import ModelConfig, OptimConfig
from scaling.model import PolicyValueNet, param_shapes

__all__ = [
    "TrainState",
    "TrainStep",
    "compute_dtype",
    "data_mesh",
    "fsdp_spec",
    "learning_rate",
    "losses",
    "make_optimizer",
    "make_train_step",
    "state_sharding",
    "step_flops",
]


class TrainState(struct.PyTreeNode):
    """Everything traced that a step changes (host-only state lives in checkpoints' metadata)."""

    step: jax.Array  # int32[]
    params: Any  # the network's parameters, float32
    opt_state: Any  # optax AdamW state
    rng: jax.Array  # PRNG key data, uint32[2]


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """A compiled train step, its eval step and what they cost. Call ``init`` for the first
    state and ``put`` for each batch: both land where the compiled step expects them."""

    net: PolicyValueNet  # the network at the compute dtype
    tx: optax.GradientTransformation
    mesh: Mesh
    train_step: Any  # (TrainState, TrainBatch) -> (TrainState, metrics); donates the state
    eval_step: Any  # (params, TrainBatch) -> metrics, with policy_acc_legal
    flops_per_step: float  # XLA's count for one train step on one device (the compute axis)
    analytic_flops_per_step: float  # 3 x forward FLOPs x batch
    state_sharding: TrainState  # a NamedSharding per leaf: replicated, or fsdp_spec's split
    batch_sharding: NamedSharding  # split over "data"
    fsdp: bool = False  # parameters and optimiser state sharded over "data"

    def init(self, params: Any, rng: jax.Array) -> TrainState:
        """The state at step 0: ``params`` (float32), fresh optimiser state, ``rng`` key data."""
        state = TrainState(
            step=jnp.int32(0), params=params, opt_state=self.tx.init(params), rng=rng
        )
        return cast(TrainState, distributed.put_global(state, self.state_sharding))

    def put(self, batch: TrainBatch) -> TrainBatch:
        """A (host) global batch on the mesh, split over ``data`` (every process passes the
        same batch; each copies its own devices' rows)."""
        return cast(TrainBatch, distributed.put_global(batch, self.batch_sharding))


def compute_dtype(name: str) -> Any:
    """``auto``: bfloat16 on GPU and TPU, float32 on CPU; or ``float32``, ``bfloat16``."""
    if name == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    if name not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be auto, float32 or bfloat16, got {name!r}")
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis (``data``) mesh over ``devices``, by default every device of every process
    (the local devices, in a single process)."""
    return Mesh(np.array(list(jax.devices() if devices is None else devices)), ("data",))


def fsdp_spec(shape: Sequence[int], devices: int, axis: str = "data") -> P:
    """How FSDP lays out one leaf of ``shape`` over ``devices`` devices of mesh ``axis``: split
    along its largest dimension that ``devices`` divides (the first such, on a tie), whole
    (``P()``) when none does or there is one device."""
    dims = [d for d, n in enumerate(shape) if devices > 1 and n >= devices and n % devices == 0]
    if not dims:
        return P()
    split = max(dims, key=lambda d: (shape[d], -d))
    return P(*[axis if d == split else None for d in range(len(shape))])


def state_sharding(state: TrainState, mesh: Mesh, *, fsdp: bool) -> TrainState:
    """A NamedSharding for every leaf of ``state`` (arrays or shapes): all replicated, or with
    ``fsdp`` the parameters and optimiser state split by ``fsdp_spec`` (step and RNG stay
    replicated)."""
    replicated = NamedSharding(mesh, P())
    layout = jax.tree.map(lambda _: replicated, state)
    if fsdp:

        def split(tree: Any) -> Any:
            return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, mesh.size)), tree)

        layout = layout.replace(params=split(state.params), opt_state=split(state.opt_state))
    return cast(TrainState, layout)


def learning_rate(optim: OptimConfig, total_steps: int | None) -> optax.Schedule:
    """Linear warm-up to the peak, then a cosine decay to ``final_lr_fraction`` of it at
    ``total_steps``. ``total_steps=None`` (a run whose length follows from compute spent
    elsewhere, as the self-play learner's does) holds the peak after the warm-up."""
    o = optim
    if total_steps is None:
        if not o.warmup_steps:
            return optax.constant_schedule(o.learning_rate)
        return optax.linear_schedule(0.0, o.learning_rate, o.warmup_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1 or None, got {total_steps}")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=o.learning_rate,
        warmup_steps=min(o.warmup_steps, total_steps - 1),
        decay_steps=total_steps,
        end_value=o.learning_rate * o.final_lr_fraction,
    )


def make_optimizer(optim: OptimConfig, total_steps: int | None) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW on the ``learning_rate`` schedule."""
    o = optim
    return optax.chain(
        optax.clip_by_global_norm(o.clip_norm),
        optax.adamw(learning_rate(o, total_steps), b1=o.b1, b2=o.b2, weight_decay=o.weight_decay),
    )


def _position_losses(
    policy: jax.Array,  # f32[A] logits
    value: jax.Array,  # f32[3] logits
    index: jax.Array,  # int32[K]
    weight: jax.Array,  # f32[K]
    result: jax.Array,  # int8[]
) -> dict[str, jax.Array]:
    """The losses and accuracies of one position (vmapped over the batch by ``losses``)."""
    index = jnp.clip(index.astype(jnp.int32), 0, NUM_ACTIONS - 1)  # padding: weight 0
    log_z = jax.nn.logsumexp(policy)  # -log p[a] = log_z - policy[a], only at the K targets
    target = index[jnp.argmax(weight)]  # the most probable target move
    wdl = result.astype(jnp.int32) + 1
    return {
        "policy_loss": jnp.sum(weight * (log_z - policy[index])),
        "value_loss": -jax.nn.log_softmax(value)[wdl],
        "policy_acc": (policy.argmax() == target).astype(jnp.float32),
        "value_acc": (value.argmax() == wdl).astype(jnp.float32),
    }


def _forward(
    net: PolicyValueNet, params: Any, batch: TrainBatch, legal: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    elo = jnp.asarray(batch.mover_elo).astype(jnp.int32) if net.cfg.elo_buckets else None
    out = net.apply({"params": params}, jnp.asarray(batch.obs), elo, legal)
    return cast(tuple[jax.Array, jax.Array], out)


def losses(
    net: PolicyValueNet, params: Any, batch: TrainBatch, value_weight: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean loss over a batch, and the mean of each part (``loss``, ``policy_loss``,
    ``value_loss``, ``policy_acc``, ``value_acc``)."""
    policy, value = _forward(net, params, batch)
    targets = (jnp.asarray(batch.policy_index), jnp.asarray(batch.policy_weight))
    per_position = jax.vmap(_position_losses)(policy, value, *targets, jnp.asarray(batch.result))
    metrics = {k: v.mean() for k, v in per_position.items()}
    loss = metrics["policy_loss"] + value_weight * metrics["value_loss"]
    metrics["loss"] = loss
    return loss, metrics


def make_train_step(
    model: ModelConfig,
    optim: OptimConfig,
    *,
    total_steps: int | None,
    spec: BatchSpec,
    mesh: Mesh | None = None,
    dtype: str = "auto",
    fsdp: bool = False,
) -> TrainStep:
    """Compiles the train step for ``spec``'s batches on ``mesh`` (default: every device)
    at the compute ``dtype`` (parameters stay float32), the state replicated or (``fsdp``)
    sharded over the mesh, and counts its FLOPs."""
    from data_pipeline.encoding_jax import legal_action_mask_from_obs

    mesh = data_mesh() if mesh is None else mesh
    if spec.batch_size % mesh.size:
        raise ValueError(f"batch_size {spec.batch_size} must divide over {mesh.size} devices")
    net = PolicyValueNet(model, dtype=compute_dtype(dtype))
    tx = make_optimizer(optim, total_steps)
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data"))
    weight = optim.value_loss_weight
    shapes = (_state_shapes(model, tx), spec.shapes())
    layout = state_sharding(shapes[0], mesh, fsdp=fsdp)

    def eval_step(params: Any, batch: TrainBatch) -> Any:
        _, metrics = losses(net, params, batch, weight)
        legal = jax.vmap(legal_action_mask_from_obs)(jnp.asarray(batch.obs))
        policy, _ = _forward(net, params, batch, legal)
        index, w = jnp.asarray(batch.policy_index), jnp.asarray(batch.policy_weight)
        target = jnp.take_along_axis(index, jnp.argmax(w, axis=1)[:, None], axis=1)[:, 0]
        metrics["policy_acc_legal"] = (policy.argmax(-1) == target).mean()
        return metrics

    jit_train = jax.jit(
        _train_step_fn(net, tx, weight, fsdp=(replicated, layout.params) if fsdp else None),
        in_shardings=(layout, batch_sharding),
        out_shardings=(layout, replicated),
        donate_argnums=0,
    )
    jit_eval = jax.jit(
        eval_step, in_shardings=(layout.params, batch_sharding), out_shardings=replicated
    )
    compiled = jit_train.lower(*shapes).compile()
    if mesh.size > 1:  # XLA counts one device's share: count the step as one device runs it,
        # so a checkpoint's FLOPs do not depend on the layout that trained it (contract 2)
        counted = step_flops(model, optim, total_steps=total_steps, spec=spec, dtype=dtype)
    else:
        counted = flops.xla_flops(compiled)  # the step that runs is the step counted
    analytic = flops.train_flops_per_position(model) * spec.batch_size
    return TrainStep(
        net=net,
        tx=tx,
        mesh=mesh,
        train_step=compiled,
        eval_step=jit_eval,
        flops_per_step=counted,
        analytic_flops_per_step=analytic,
        state_sharding=layout,
        batch_sharding=batch_sharding,
        fsdp=fsdp,
    )


def step_flops(
    model: ModelConfig,
    optim: OptimConfig,
    *,
    total_steps: int | None,
    spec: BatchSpec,
    dtype: str = "auto",
) -> float:
    """XLA's FLOPs of one train step over ``spec``'s whole batch compiled for one device: the
    compute axis's count of a step on any layout (a replicated or fsdp mesh of any size counts
    the same). Compiles only that step."""
    net = PolicyValueNet(model, dtype=compute_dtype(dtype))
    tx = make_optimizer(optim, total_steps)
    one = NamedSharding(Mesh(np.array(jax.local_devices()[:1]), ("data",)), P())
    fn = jax.jit(
        _train_step_fn(net, tx, optim.value_loss_weight, fsdp=None),
        in_shardings=one,
        out_shardings=one,
    )
    return flops.xla_flops(fn.lower(_state_shapes(model, tx), spec.shapes()).compile())


def _train_step_fn(
    net: PolicyValueNet,
    tx: optax.GradientTransformation,
    value_weight: float,
    *,
    fsdp: tuple[NamedSharding, Any] | None,
) -> Any:
    """(TrainState, TrainBatch) -> (TrainState, metrics). With ``fsdp`` = (replicated, the
    parameters' shardings): the parameters are gathered whole for the forward and backward
    pass, and the gradients constrained back to the shards before the optimiser's update."""

    def train_step(state: TrainState, batch: TrainBatch) -> tuple[TrainState, Any]:
        grad_fn = jax.value_and_grad(lambda p: losses(net, p, batch, value_weight), has_aux=True)
        params = state.params
        if fsdp is not None:
            params = jax.lax.with_sharding_constraint(params, fsdp[0])
        (_, metrics), grads = grad_fn(params)
        if fsdp is not None:  # reduced straight to each device's shard
            grads = jax.lax.with_sharding_constraint(grads, fsdp[1])
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.global_norm(grads)
        new = state.replace(step=state.step + 1, params=new_params, opt_state=opt_state)
        return new, metrics

    return train_step


def _state_shapes(model: ModelConfig, tx: optax.GradientTransformation) -> TrainState:
    """The train state as ``jax.ShapeDtypeStruct`` leaves (nothing is allocated)."""

    def initial(params: Any) -> TrainState:
        key = jax.random.key_data(jax.random.key(0))
        return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params), rng=key)

    shapes: TrainState = jax.eval_shape(initial, param_shapes(model))
    return shapes
