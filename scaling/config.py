"""Typed, frozen configs of the supervised stage: model, optimiser, one run, a sweep.

Configs load from TOML (``load_train_config``); unknown keys and wrong types are errors with the
key's path in the message. Derived values (steps from a FLOP budget, run ids) are functions in
``scaling.flops`` and ``scaling.sweep``, never fields mutated after load.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A transformer over the 67 position tokens (see data_pipeline.encoding)."""

    width: int = 64  # model dimension
    depth: int = 2  # transformer blocks
    heads: int = 4  # attention heads; width % heads == 0
    mlp_ratio: int = 4  # hidden width of each MLP / width
    elo_buckets: int = 0  # 0: no Elo conditioning; else buckets of the mover's rating
    elo_bucket_width: int = 100  # rating per bucket; bucket = clip(elo // width, 0, buckets - 1)

    def __post_init__(self) -> None:
        for name in ("width", "depth", "heads", "mlp_ratio", "elo_bucket_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(
                f"model.width ({self.width}) must be a multiple of heads ({self.heads})"
            )
        if self.elo_buckets < 0:
            raise ValueError(f"model.elo_buckets must be >= 0, got {self.elo_buckets}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """AdamW with linear warm-up, cosine decay and global-norm clipping."""

    learning_rate: float = 1e-3  # peak
    warmup_steps: int = 100
    final_lr_fraction: float = 0.1  # cosine decays to this fraction of the peak
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.95
    clip_norm: float = 1.0
    value_loss_weight: float = 1.0  # loss = policy CE + weight * value CE

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"optim.learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("optim.final_lr_fraction must be in [0, 1]")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What a run is, for the study's registry: written into its config.json when it is
    created, so that nothing downstream parses it out of a directory name."""

    regime: str = "supervised"  # supervised, selfplay_cap or selfplay_scratch
    cap: int | None = None  # the Elo cap of its data (None: uncapped, or self-play from scratch)
    size: str = ""  # the named model size (scaling.model.NAMED_SIZES), "" for a custom model
    parent: str = ""  # the checkpoint (<run id>@<step>) a run continued from
    data: str = ""  # the identity of its training data (scaling.sweep.data_identity)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """The knobs of a supervised run that a sweep shares between all its runs."""

    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    batch_size: int = 256  # global batch, split over all local devices
    seed: int = 0  # parameters, data order, everything
    milestones: int = 16  # permanent checkpoints at log-spaced cumulative FLOPs
    checkpoint_every: int = 200  # steps between "latest" checkpoints (for resuming)
    log_every: int = 10  # steps between metrics lines
    eval_every: int = 0  # steps between validation passes (0: only at the end)
    eval_batches: int = 8  # validation batches per pass
    dtype: str = "auto"  # compute dtype: auto (bf16 on GPU/TPU, f32 on CPU), float32, bfloat16
    loader_workers: int = 0  # grain worker processes
    fsdp: bool = False  # shard parameters and optimiser state over all devices (FSDP, ZeRO-3)
    #                     instead of replicating them, for a state too big for one device

    def __post_init__(self) -> None:
        for name in ("batch_size", "milestones", "log_every", "checkpoint_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "loader_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")


def settings_of(cfg: TrainSettings) -> dict[str, Any]:
    """The TrainSettings fields of ``cfg`` (a TrainSettings or any subclass), unconverted."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainSettings)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainSettings):
    """One supervised run: data, model, the shared settings and a compute budget."""

    data_dir: str  # a finished `elocap data build` directory
    out_dir: str  # the run's directory (config, metrics.jsonl, checkpoints)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    budget_flops: float | None = None  # training FLOPs; the number of steps follows from it
    steps: int | None = None  # or a number of steps (exactly one of the two)
    info: RunInfo = dataclasses.field(default_factory=RunInfo)  # for the registry

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.budget_flops is None) == (self.steps is None):
            raise ValueError("give exactly one of budget_flops and steps")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.budget_flops is not None and self.budget_flops <= 0:
            raise ValueError(f"budget_flops must be > 0, got {self.budget_flops}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain data (for TOML/JSON and for hashing): sets become sorted lists, so
    the same config always gives the same text."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(cfg)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def config_hash(data: Any, length: int = 12) -> str:
    """A short sha256 of plain data (``to_dict`` of a config, or any JSON-able value)."""
    import hashlib
    import json

    text = json.dumps(_plain(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def from_dict(cls: type[T], data: dict[str, Any], path: str = "", base: T | None = None) -> T:
    """Builds a (nested) config dataclass from plain data, with clear errors. Keys override
    ``base`` (default: the class's defaults); a nested table overrides its field's default,
    so a partial table keeps the defaults of the keys it does not name."""
    if not isinstance(data, dict):
        raise ValueError(f"{path or 'config'} must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(typing.cast(Any, cls))}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown keys in {path or 'config'}: {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint, field_path = hints[name], f"{path}{name}"
        if dataclasses.is_dataclass(hint) and isinstance(hint, type) and isinstance(value, dict):
            inner = getattr(base, name) if base is not None else _field_default(fields[name])
            kwargs[name] = from_dict(hint, value, field_path + ".", inner)
        else:
            kwargs[name] = _coerce(hint, value, field_path)
    if base is not None:
        return typing.cast(T, dataclasses.replace(typing.cast(Any, base), **kwargs))
    return cls(**kwargs)


def _field_default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    if field.default is not dataclasses.MISSING:
        return field.default
    return None


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value, path + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict and isinstance(value, dict):
        return {str(k): _coerce(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple and isinstance(value, dict) and typing.get_origin(args[0]) is tuple:
        key_t, value_t = typing.get_args(args[0])  # a table as sorted (key, value) pairs
        return tuple(
            (_coerce(key_t, k, f"{path}.{k}"), _coerce(value_t, v, f"{path}.{k}"))
            for k, v in sorted(value.items())
        )
    if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:  # a fixed-length tuple
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ValueError(f"{path} must be a list of {len(args)} values, got {value!r}")
        return tuple(
            _coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (tuple, frozenset) and isinstance(value, list | tuple | frozenset):
        items = [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else frozenset(items)
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if len(options) > 1 and value is not None:  # e.g. frozenset[str] | None
        for option in options:
            if option is not type(None) and typing.get_origin(option) is not None:
                return _coerce(option, value, path)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option in (int, str, bool) and type(value) is option:
            return value
    raise ValueError(f"{path} must be {hint}, got {value!r}")


def load_toml(cls: type[T], path: Path, what: str = "config") -> T:
    """A config dataclass from a TOML file: a missing file, bad TOML, unknown keys and wrong
    types are errors naming the file or the key."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
    return from_dict(cls, data)


def load_train_config(path: Path) -> TrainConfig:
    """A TrainConfig from a TOML file (tables [model] and [optim] nest)."""
    return load_toml(TrainConfig, path, "train config")
