"""One supervised run: a jitted, donated train step over a data-parallel mesh, orbax checkpoints at
log-spaced cumulative FLOPs, exact resume, metrics in ``metrics.jsonl`` and TensorBoard.

Run directory (``TrainConfig.out_dir``)::

    config.json      the resolved config (the run id hashes it)
    metrics.jsonl    one JSON object per logged step ({"split": "train" | "val", "step", ...})
    checkpoints/     orbax: parameters, optimiser state, RNG, data-iterator state, FLOP counter
    tb/              TensorBoard events
    result.json      written last: the run is finished
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from data_pipeline import loader
from data_pipeline.encoding_jax import legal_action_mask_from_obs
from data_pipeline.files import atomic_write_text
from scaling import checkpoints, flops
from scaling.config import TrainConfig, to_dict
from scaling.model import PolicyValueNet, init_params


class TrainState(struct.PyTreeNode):
    """Everything traced that a step changes (host-only state lives in checkpoints' metadata)."""

    step: jax.Array  # int32[]
    params: Any  # the network's parameters
    opt_state: Any  # optax AdamW state
    rng: jax.Array  # PRNG key data, uint32[2]


@dataclasses.dataclass(frozen=True)
class StepFns:
    """The compiled functions of a run and what they cost."""

    train_step: Any  # (TrainState, batch) -> (TrainState, metrics)
    eval_step: Any  # (params, batch) -> metrics
    flops_per_step: float  # XLA's count for one train step (the compute axis)
    analytic_flops_per_step: float  # 3 x forward FLOPs x batch
    batch_sharding: NamedSharding


def compute_dtype(name: str) -> Any:
    if name == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def make_optimizer(cfg: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    o = cfg.optim
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=o.learning_rate,
        warmup_steps=min(o.warmup_steps, max(total_steps - 1, 0)),
        decay_steps=max(total_steps, 1),
        end_value=o.learning_rate * o.final_lr_fraction,
    )
    return optax.chain(
        optax.clip_by_global_norm(o.clip_norm),
        optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay),
    )


def _apply(
    net: PolicyValueNet, params: Any, obs: jax.Array, elo: jax.Array | None, legal: Any = None
) -> tuple[jax.Array, jax.Array]:
    out = net.apply({"params": params}, obs, elo, legal)
    return cast(tuple[jax.Array, jax.Array], out)


def losses(
    net: PolicyValueNet, params: Any, batch: dict[str, jax.Array], value_weight: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean loss over a batch and its parts: policy cross-entropy on the move played (or, when
    the batch has ``policy_target`` f32[B, 4672], on that distribution: the visit counts of a
    search in self-play), value cross-entropy on the game result (loss/draw/win from the
    mover's view)."""
    elo = batch["mover_elo"].astype(jnp.int32) if net.cfg.elo_buckets else None
    policy, value = _apply(net, params, batch["obs"], elo)
    action = batch["action"].astype(jnp.int32)
    wdl = batch["result"].astype(jnp.int32) + 1
    if "policy_target" in batch:
        policy_loss = optax.softmax_cross_entropy(policy, batch["policy_target"]).mean()
    else:
        policy_loss = optax.softmax_cross_entropy_with_integer_labels(policy, action).mean()
    value_loss = optax.softmax_cross_entropy_with_integer_labels(value, wdl).mean()
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "policy_acc": (policy.argmax(-1) == action).mean(),
        "value_acc": (value.argmax(-1) == wdl).mean(),
    }
    loss = policy_loss + value_weight * value_loss
    metrics["loss"] = loss
    return loss, metrics


def build_step_fns(
    cfg: TrainConfig,
    net: PolicyValueNet,
    tx: optax.GradientTransformation,
    state: TrainState,
    mesh: Mesh,
    example: dict[str, jax.ShapeDtypeStruct] | None = None,
) -> StepFns:
    """Jits the train and eval steps for ``mesh`` and measures their FLOPs. ``example``: the
    shapes of a batch, when it is not the data stage's (self-play adds ``policy_target``)."""
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data"))
    weight = cfg.optim.value_loss_weight

    def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, Any]:
        grad_fn = jax.value_and_grad(lambda p: losses(net, p, batch, weight), has_aux=True)
        (_, metrics), grads = grad_fn(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.global_norm(grads)
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new, metrics

    def eval_step(params: Any, batch: dict[str, jax.Array]) -> Any:
        _, metrics = losses(net, params, batch, weight)
        elo = batch["mover_elo"].astype(jnp.int32) if net.cfg.elo_buckets else None
        legal = jax.vmap(legal_action_mask_from_obs)(batch["obs"])
        policy, _ = _apply(net, params, batch["obs"], elo, legal)
        metrics["policy_acc_legal"] = (policy.argmax(-1) == batch["action"]).mean()
        return metrics

    jit_train = jax.jit(
        train_step,
        in_shardings=(replicated, batch_sharding),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    jit_eval = jax.jit(eval_step, in_shardings=(replicated, batch_sharding))
    if example is None:
        example = {
            k: jax.ShapeDtypeStruct((cfg.batch_size, *v.shape[1:]), v.dtype)
            for k, v in _example_batch(cfg.batch_size).items()
        }
    compiled = jit_train.lower(state, example).compile()  # the step that runs: counted as run
    analytic = flops.train_flops_per_position(cfg.model) * cfg.batch_size
    return StepFns(compiled, jit_eval, flops.xla_flops(compiled), analytic, batch_sharding)


def _example_batch(batch_size: int) -> dict[str, np.ndarray]:
    return loader.decode_batch([bytes(loader.EXAMPLE_DTYPE.itemsize)] * batch_size)


def _steps_for_budget(
    cfg: TrainConfig, net: PolicyValueNet, params: Any, rng: jax.Array, mesh: Mesh
) -> int:
    """Steps that spend the FLOP budget. The step count depends on XLA's FLOPs and the
    optimiser's schedule on the step count, so a step with a provisional schedule is compiled
    first (a schedule's length does not change the step's FLOPs)."""
    tx = make_optimizer(cfg, 1)
    probe = TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params), rng=rng)
    per_step = build_step_fns(cfg, net, tx, probe, mesh).flops_per_step
    return max(1, math.ceil(float(cfg.budget_flops or 0) / per_step))


def milestone_steps(total_steps: int, count: int) -> list[int]:
    """At least ``count`` distinct steps (or all steps, if fewer), log-spaced in cumulative
    FLOPs from the first step to the last; FLOPs are proportional to steps within a run."""
    if total_steps <= count:
        return list(range(1, total_steps + 1))
    n = count
    while True:
        steps = sorted({round(x) for x in np.geomspace(1, total_steps, n)})
        if len(steps) >= count:
            return steps
        n += 1


def train(cfg: TrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Runs (or resumes, or confirms) one run; returns its result."""
    out = Path(cfg.out_dir)
    result_path = out / "result.json"
    if result_path.exists():
        return dict(json.loads(result_path.read_text()))
    out.mkdir(parents=True, exist_ok=True)
    _claim_run_dir(out, cfg)

    devices = jax.local_devices()
    if cfg.batch_size % len(devices):
        raise ValueError(f"batch_size {cfg.batch_size} must divide over {len(devices)} devices")
    mesh = Mesh(np.array(devices), ("data",))
    net = PolicyValueNet(cfg.model, dtype=compute_dtype(cfg.dtype))
    rng = jax.random.PRNGKey(cfg.seed)
    params = init_params(cfg.model, rng)
    total = cfg.steps or _steps_for_budget(cfg, net, params, rng, mesh)
    tx = make_optimizer(cfg, total)
    state = TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params), rng=rng)
    fns = build_step_fns(cfg, net, tx, state, mesh)
    keep = milestone_steps(total, cfg.milestones)
    plan = {
        "total_steps": total,
        "flops_per_step": fns.flops_per_step,
        "analytic_flops_per_step": fns.analytic_flops_per_step,
        "milestones": keep,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    atomic_write_text(out / "plan.json", json.dumps(plan, indent=1))
    manager = checkpoints.manager(out / "checkpoints", keep)
    data = loader.dataset(Path(cfg.data_dir), "train", _loader_config(cfg))
    it = iter(data)
    state, start = checkpoints.restore_latest(manager, state, it)
    metrics_log = MetricsLog(out / "metrics.jsonl", keep_through=start)
    peak = flops.device_peak_flops(devices[0], compute_dtype(cfg.dtype))
    t0, last = time.perf_counter(), start
    for step in range(start + 1, total + 1):
        batch = jax.device_put(next(it), fns.batch_sharding)
        state, metrics = fns.train_step(state, batch)
        if step % cfg.log_every == 0 or step == total:
            metrics = jax.device_get(metrics)
            elapsed = time.perf_counter() - t0
            rate = (step - last) * cfg.batch_size / max(elapsed, 1e-9)
            row: dict[str, Any] = {k: float(v) for k, v in metrics.items()}
            row.update(
                split="train",
                step=step,
                positions=step * cfg.batch_size,
                flops=step * fns.flops_per_step,
                positions_per_s=rate,
                mfu=None
                if peak is None
                else flops.mfu(rate / cfg.batch_size * fns.flops_per_step, peak),
            )
            metrics_log.write(row)
            if progress:
                print(f"step {step}/{total} loss {row['loss']:.4f} {rate:.0f} pos/s", flush=True)
            t0, last = time.perf_counter(), step
        is_eval = cfg.eval_every and step % cfg.eval_every == 0
        if is_eval or step == total:
            metrics_log.write(
                {
                    "split": "val",
                    "step": step,
                    "flops": step * fns.flops_per_step,
                    **evaluate(cfg, fns, state.params),
                }
            )
        if step in keep or step == total or step % cfg.checkpoint_every == 0:
            checkpoints.save(manager, step, state, it, step * fns.flops_per_step)
    manager.wait_until_finished()
    metrics_log.close()
    result = {
        "steps": total,
        "flops": total * fns.flops_per_step,
        "flops_per_step": fns.flops_per_step,
        "analytic_flops_per_step": fns.analytic_flops_per_step,
        "milestones": keep,
        "final": metrics_log.last("val"),
    }
    atomic_write_text(result_path, json.dumps(result, indent=1))
    return result


def evaluate(cfg: TrainConfig, fns: StepFns, params: Any) -> dict[str, float]:
    """Mean metrics over ``cfg.eval_batches`` batches of the validation split (fixed order)."""
    val_cfg = loader.LoaderConfig(batch_size=cfg.batch_size, seed=cfg.seed + 1)
    it = iter(loader.dataset(Path(cfg.data_dir), "val", val_cfg))
    rows = [
        jax.device_get(fns.eval_step(params, jax.device_put(next(it), fns.batch_sharding)))
        for _ in range(cfg.eval_batches)
    ]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _loader_config(cfg: TrainConfig) -> loader.LoaderConfig:
    return loader.LoaderConfig(
        batch_size=cfg.batch_size, seed=cfg.seed, worker_count=cfg.loader_workers
    )


def _claim_run_dir(out: Path, cfg: TrainConfig) -> None:
    """Writes config.json, or checks that the directory's run has this very config."""
    path = out / "config.json"
    text = json.dumps(to_dict(cfg), indent=1, sort_keys=True)
    if path.exists() and path.read_text() != text:
        raise ValueError(f"{out} holds a run with another config; use another out_dir")
    if not path.exists():
        atomic_write_text(path, text)


class MetricsLog:
    """``metrics.jsonl`` (appended, flushed per line) and TensorBoard. Opening it for a run
    resumed at ``keep_through`` drops the lines of later steps (or of the rows' ``key``), which
    the run will redo, so the file never has a gap or a duplicate step."""

    def __init__(self, path: Path, *, keep_through: int, key: str = "step") -> None:
        self.path = path
        rows = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row[key] <= keep_through:
                    rows.append(row)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        self.rows = rows
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives with the run)
        self._tb = _tensorboard(path.parent / "tb")

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "step":
                    self._tb.add_scalar(f"{row['split']}/{key}", value, row["step"])
            self._tb.flush()

    def last(self, split: str) -> dict[str, Any] | None:
        return next((r for r in reversed(self.rows) if r["split"] == split), None)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard(directory: Path) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # TensorBoard is optional; metrics.jsonl is the record
        return None
    return SummaryWriter(str(directory))
