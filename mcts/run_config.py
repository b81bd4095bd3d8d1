"""The config of a self-play run (``mcts.loop``), validated before anything starts."""

from __future__ import annotations

import dataclasses

from mcts.search import SearchConfig
from mcts.selfplay import SelfPlayConfig
from scaling.config import ModelConfig, OptimConfig

__all__ = ["SelfPlayRunConfig", "selfplay_config"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelfPlayRunConfig:
    """A self-play run: where it starts, how it plays, how it learns, how much compute."""

    out_dir: str  # the run's directory
    init_run: str = ""  # a supervised (or self-play) run to continue; "": random init
    init_step: int | None = None  # its checkpoint; None: its last
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # random init only
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    games: int = 16  # games per self-play batch (per actor)
    max_plies: int = 160  # game-length cap
    adjudicate_margin: int | None = None  # at the cap, a win for the side this many pawns up
    resign_value: float | None = None  # resign when the root value is below this
    elo: int | None = None  # Elo-conditioning input during self-play
    train_batch: int = 64  # global batch, split over the learner's local devices
    replay_capacity: int = 50_000  # positions
    replay_ratio: float = 1.0  # samples trained / samples generated
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)  # peak after warm-up
    dtype: str = "auto"  # compute dtype: auto (bf16 on GPU/TPU, f32 on CPU), float32, bfloat16
    budget_flops: float = 1e12  # FLOPs added to the starting checkpoint's
    milestones: int = 8  # kept checkpoints, doubling in added FLOPs up to the budget
    resume_every: int = 1  # iterations between resume checkpoints
    seed: int = 0
    actors: int = 0  # 0: single process; >= 1: Ray self-play actors and a learner
    broadcast_every: int = 10  # learner steps between parameter broadcasts (Ray mode)
    max_actor_failures: int = 3  # Ray mode: actor deaths in one run; the last stops the run
    study: dict[str, str] = dataclasses.field(default_factory=dict)  # cap, parent, regime

    def __post_init__(self) -> None:
        at_least = {
            "games": 1,
            "max_plies": 1,
            "train_batch": 1,
            "replay_capacity": 1,
            "milestones": 1,
            "resume_every": 1,
            "actors": 0,
            "broadcast_every": 1,
            "max_actor_failures": 1,
        }
        for name, low in at_least.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"selfplay {name} must be an integer >= {low}, got {value!r}")
        for name in ("budget_flops", "replay_ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"selfplay {name} must be > 0, got {getattr(self, name)!r}")
        if self.init_step is not None and self.init_step < 0:
            raise ValueError(f"selfplay init_step must be >= 0 or unset, got {self.init_step}")
        if self.adjudicate_margin is not None and self.adjudicate_margin < 1:
            raise ValueError(
                f"selfplay adjudicate_margin must be >= 1 pawn, got {self.adjudicate_margin}"
            )
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"selfplay dtype must be auto, float32 or bfloat16: {self.dtype!r}")
        selfplay_config(self)  # the games' own checks (resign_value, ...), before any actor


def selfplay_config(cfg: SelfPlayRunConfig) -> SelfPlayConfig:
    """The config of one batch of the run's games."""
    return SelfPlayConfig(
        batch_size=cfg.games,
        max_plies=cfg.max_plies,
        search=cfg.search,
        resign_value=cfg.resign_value,
        elo=cfg.elo,
        adjudicate_margin=cfg.adjudicate_margin,
    )
