"""Supervised training across model sizes and compute budgets: the public surface."""

from scaling.checkpoints import list_checkpoints, restore_state
from scaling.config import ModelConfig, OptimConfig, TrainConfig, load_train_config
from scaling.flops import forward_flops_per_position, train_flops_per_position
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params, param_count
from scaling.sweep import SweepConfig, load_sweep_config, run_configs, run_sweep, status_rows
from scaling.train import train

__all__ = [
    "NAMED_SIZES",
    "ModelConfig",
    "OptimConfig",
    "PolicyValueNet",
    "SweepConfig",
    "TrainConfig",
    "forward_flops_per_position",
    "init_params",
    "list_checkpoints",
    "load_sweep_config",
    "load_train_config",
    "param_count",
    "restore_state",
    "run_configs",
    "run_sweep",
    "status_rows",
    "train",
    "train_flops_per_position",
]
