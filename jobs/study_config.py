"""A study's configuration: the stage configs nested as they are, loaded from a TOML file.

Each table holds one stage's own config class, unchanged, so every knob a stage has can be set
from a study (``[supervised]`` is a ``scaling.sweep.SweepConfig``, ``[selfplay.run]`` a
``mcts.loop.SelfPlayRunConfig``, ``[arena.games]`` a ``mcts.arena.ArenaConfig``, ...). The
study runner derives every path and every field that links the stages (which checkpoint a
self-play run continues, the cap of each build); a study that sets one of those is an error
naming the key. Defaults are the tiny study's (``jobs/studies/tiny.toml``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from analysis.report import ReportConfig
from data_pipeline.build import BuildConfig
from mcts.arena import ArenaConfig
from mcts.ladder import LadderConfig
from mcts.loop import SelfPlayRunConfig
from mcts.scheduler import ScheduleConfig
from mcts.search import SearchConfig
from scaling.config import OptimConfig, load_toml
from scaling.sweep import SweepConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataStage:
    sources: tuple[str, ...] = ("ladder",)  # "ladder" (synthetic, offline), paths, lichess:YYYY-MM
    # Elo caps on the data's scale (the games' Elo tags; for the ladder, ratings with the random
    # mover = 0): one data build and one sweep per cap
    caps: tuple[int, ...] = (450,)
    ladder: LadderConfig = dataclasses.field(default_factory=LadderConfig)
    build: BuildConfig = dataclasses.field(default_factory=BuildConfig)  # cap: from `caps`
    cache_dir: str = ""  # download cache for lichess:YYYY-MM ("": $ELOCAP_CACHE or <workdir>/cache)
    # passes the sweep's largest run may make over its cap's training data: > 0 samples the
    # build (a hash of the game) to what the budgets read (data_pipeline.budget); 0: every game
    epochs: float = 0.0

    def __post_init__(self) -> None:
        if not self.sources or not self.caps:
            raise ValueError("[data] needs at least one source and one cap")
        if self.build.filters.cap is not None:
            raise ValueError("data.build.filters.cap is set from data.caps; list caps there")
        if len(set(self.caps)) != len(self.caps) or any(c < 1 for c in self.caps):
            raise ValueError(f"data.caps must be distinct positive Elo values, got {self.caps}")
        if self.epochs < 0:
            raise ValueError(f"data.epochs must be >= 0 (0: no sample), got {self.epochs}")
        if self.epochs > 0 and self.build.sample_fraction < 1.0:
            raise ValueError("set data.epochs or data.build.sample_fraction, not both")


def _tiny_selfplay() -> SelfPlayRunConfig:
    return SelfPlayRunConfig(
        out_dir="",
        search=SearchConfig(kind="gumbel", num_simulations=8),
        games=16,
        max_plies=120,
        adjudicate_margin=3,
        train_batch=64,
        milestones=4,
        actors=1,
        budget_flops=3e11,
        optim=OptimConfig(learning_rate=3e-4, warmup_steps=10),
    )


# Fields of SelfPlayRunConfig that the runner sets (the run's place and its starting point).
SELFPLAY_DERIVED: tuple[str, ...] = (
    "out_dir",
    "init_run",
    "init_step",
    "model",
    "study",
    "corpus_dir",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelfPlayStage:
    enabled: bool = True
    scratch: bool = True  # also the control: self-play from a random initialisation
    run: SelfPlayRunConfig = dataclasses.field(default_factory=_tiny_selfplay)

    def __post_init__(self) -> None:
        default = SelfPlayRunConfig(out_dir="")
        for name in SELFPLAY_DERIVED:
            if getattr(self.run, name) != getattr(default, name):
                raise ValueError(
                    f"selfplay.run.{name} is set by the study runner (each cap's self-play "
                    "continues the last checkpoint of its largest supervised run)"
                )


# Which evaluated checkpoints ``arena.test_time_sims`` rates at every N: "last", the last
# checkpoint of every run (supervised and self-play; across the sweep's sizes and budgets, the
# points of Jones's train-against-test-compute trade), or "all", every evaluated checkpoint.
TEST_TIME_CHECKPOINTS: tuple[str, ...] = ("last", "all")


def _tiny_games() -> ArenaConfig:
    return ArenaConfig(move_cap=200, batch=8, workers=2)


def _tiny_schedule() -> ScheduleConfig:
    return ScheduleConfig(games_per_pair=8, max_rounds=3, target_width=100.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArenaStage:
    # N of contract 3: every checkpoint plays as network + N simulations. The raw policy
    # (N = 0) cannot tell weak networks apart (argmax play ends most games in repetitions).
    sims: int = 8
    checkpoints_per_run: int = 2  # evaluated milestones per run (log-spaced; the last always)
    anchors: tuple[str, ...] = ("random",)  # agent strings; "random" is 0 Elo
    anchor_elos: tuple[tuple[str, float], ...] = ()  # fixed ratings of anchors (a TOML table)
    openings: int = 16  # from the ECO suite (16 lines: 32 distinct games per pairing)
    games: ArenaConfig = dataclasses.field(default_factory=_tiny_games)
    schedule: ScheduleConfig = dataclasses.field(default_factory=_tiny_schedule)
    # Test-time search as a knob: the checkpoints that ``test_time_checkpoints`` picks are also
    # rated as network + N simulations for each N here (``sims`` itself may be listed), in the
    # same pool and rating fit as every checkpoint, for the report's "Elo against test-time
    # simulations N". Only the N = ``sims`` players enter the compute-Elo curves. () = off.
    test_time_sims: tuple[int, ...] = ()
    test_time_checkpoints: str = "last"  # a key of TEST_TIME_CHECKPOINTS

    def __post_init__(self) -> None:
        from mcts.agents import parse_agent

        if self.sims < 0 or self.checkpoints_per_run < 1 or self.openings < 1:
            raise ValueError("arena sims must be >= 0, checkpoints_per_run and openings >= 1")
        n = self.test_time_sims
        if any(s < 0 for s in n) or len(set(n)) != len(n):
            raise ValueError(f"arena.test_time_sims must be distinct N >= 0, got {list(n)}")
        if n and set(n) <= {self.sims}:
            raise ValueError(f"arena.test_time_sims needs an N other than arena.sims ({self.sims})")
        if self.test_time_checkpoints not in TEST_TIME_CHECKPOINTS:
            known = ", ".join(TEST_TIME_CHECKPOINTS)
            raise ValueError(
                f"arena.test_time_checkpoints must be one of {known}, "
                f"got {self.test_time_checkpoints!r}"
            )
        names = set()
        for text in self.anchors:
            try:
                names.add(parse_agent(text).name)
            except ValueError as e:
                raise ValueError(f"arena.anchors: {e}") from None
        unknown = [n for n, _ in self.anchor_elos if n not in names]
        if unknown:
            raise ValueError(f"arena.anchor_elos: {unknown} are not anchors ({sorted(names)})")


def _tiny_report() -> ReportConfig:
    return ReportConfig(n_replicates=30)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyConfig:
    name: str = "tiny"
    data: DataStage = dataclasses.field(default_factory=DataStage)
    supervised: SweepConfig = dataclasses.field(
        default_factory=lambda: SweepConfig(batch_size=64, milestones=4)
    )
    selfplay: SelfPlayStage = dataclasses.field(default_factory=SelfPlayStage)
    arena: ArenaStage = dataclasses.field(default_factory=ArenaStage)
    analysis: ReportConfig = dataclasses.field(default_factory=_tiny_report)

    def __post_init__(self) -> None:
        if self.analysis.anchors:
            raise ValueError("analysis.anchors is set from the arena: use arena.anchor_elos")
        if self.analysis.sims is not None:
            raise ValueError("analysis.sims is set from the arena: use arena.sims")


def load_study_config(path: Path) -> StudyConfig:
    """A StudyConfig from TOML; unknown keys and wrong types are errors naming the key."""
    return load_toml(StudyConfig, path, "study config")
