"""Supervised training across model sizes and compute budgets: the public surface.

One train step serves supervised runs and the self-play learner: ``make_train_step`` over a
``TrainBatch`` (sparse policy targets, see ``scaling.batch``) whose shapes a ``BatchSpec`` fixes.
"""

from scaling.batch import BatchSpec, TrainBatch, supervised_batch
from scaling.checkpoints import list_checkpoints, restore_state
from scaling.config import ModelConfig, OptimConfig, TrainConfig, load_train_config
from scaling.flops import forward_flops_per_position, steps_for_budget, train_flops_per_position
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params, param_count
from scaling.step import (
    TrainState,
    TrainStep,
    compute_dtype,
    data_mesh,
    make_optimizer,
    make_train_step,
)
from scaling.sweep import SweepConfig, load_sweep_config, run_configs, run_sweep, status_rows
from scaling.train import train

__all__ = [
    "NAMED_SIZES",
    "BatchSpec",
    "ModelConfig",
    "OptimConfig",
    "PolicyValueNet",
    "SweepConfig",
    "TrainBatch",
    "TrainConfig",
    "TrainState",
    "TrainStep",
    "compute_dtype",
    "data_mesh",
    "forward_flops_per_position",
    "init_params",
    "list_checkpoints",
    "load_sweep_config",
    "load_train_config",
    "make_optimizer",
    "make_train_step",
    "param_count",
    "restore_state",
    "run_configs",
    "run_sweep",
    "status_rows",
    "steps_for_budget",
    "supervised_batch",
    "train",
    "train_flops_per_position",
]
