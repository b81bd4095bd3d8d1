"""A study's configuration: typed, frozen, nested by stage, loaded from a TOML file.

``jobs/studies/tiny.toml`` is the embedded default; real studies change values, not code.
Every table is optional: its defaults are the tiny study's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mcts.ladder import LadderConfig
from scaling.config import OptimConfig, load_toml


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSpec:
    sources: tuple[str, ...] = ("ladder",)  # "ladder" (synthetic, offline), paths, lichess:YYYY-MM
    caps: tuple[int, ...] = (1800,)  # Elo caps: one data build and one sweep per cap
    ladder: LadderConfig = dataclasses.field(default_factory=LadderConfig)
    chunk_games: int = 2000  # games per build task and shard
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    cache_dir: str = ""  # download cache for lichess:YYYY-MM ("": $ELOCAP_CACHE or <workdir>/cache)

    def __post_init__(self) -> None:
        if not self.sources or not self.caps:
            raise ValueError("[data] needs at least one source and one cap")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SupervisedSpec:
    sizes: tuple[str, ...] = ("10k", "30k")  # scaling.model.NAMED_SIZES
    budgets: tuple[float, ...] = (1e11, 3e11)  # training FLOPs per run
    batch_size: int = 64
    milestones: int = 4  # kept checkpoints per run (log-spaced in FLOPs)
    elo_buckets: int = 0  # Elo conditioning (0: off)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    checkpoint_every: int = 200
    log_every: int = 10
    eval_batches: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelfPlaySpec:
    enabled: bool = True
    scratch: bool = True  # also the control: self-play from a random initialisation
    budget_flops: float = 3e11  # self-play FLOPs added on top of the starting checkpoint's
    simulations: int = 8  # search simulations per move in self-play
    games_per_batch: int = 16  # games played at once per actor
    max_plies: int = 120  # game-length cap in self-play
    adjudicate_margin: int | None = None  # at the cap: a win for the side this many pawns up
    train_batch: int = 64
    replay_ratio: float = 1.0  # samples trained per sample generated
    milestones: int = 4
    actors: int = 1  # Ray self-play actors (0: single process)
    learning_rate: float = 3e-4

    def __post_init__(self) -> None:
        if self.adjudicate_margin is not None and self.adjudicate_margin < 1:
            raise ValueError(
                f"[selfplay] adjudicate_margin must be >= 1 pawn, got {self.adjudicate_margin}"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArenaSpec:
    sims: int = 0  # N of contract 3: every checkpoint plays as network + N simulations
    checkpoints_per_run: int = 3  # evaluated milestones per run (log-spaced; the last always)
    anchors: tuple[str, ...] = ("random",)  # agent strings; "random" is 0 Elo
    anchor_elos: dict[str, float] = dataclasses.field(default_factory=dict)  # extra fixed ones
    games_per_pair: int = 4  # per round of the adaptive schedule
    neighbours: int = 1  # nearest agents by rating each uncertain agent plays
    target_width: float = 150.0  # Elo: adaptive rounds until every 90% interval is this narrow
    max_rounds: int = 2
    move_cap: int = 200
    batch: int = 8
    workers: int = 2
    openings: int = 8  # from the ECO suite


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnalysisSpec:
    rating_model: str = "ordo"  # analysis.ratings.RATING_MODELS
    bootstrap: int = 30  # replicates over games for every interval of the fits
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyConfig:
    name: str = "tiny"
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    supervised: SupervisedSpec = dataclasses.field(default_factory=SupervisedSpec)
    selfplay: SelfPlaySpec = dataclasses.field(default_factory=SelfPlaySpec)
    arena: ArenaSpec = dataclasses.field(default_factory=ArenaSpec)
    analysis: AnalysisSpec = dataclasses.field(default_factory=AnalysisSpec)


def load_study_config(path: Path) -> StudyConfig:
    """A StudyConfig from TOML; unknown keys and wrong types are errors naming the key."""
    return load_toml(StudyConfig, path, "study config")
