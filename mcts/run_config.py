"""The config of a self-play run (``mcts.loop``), validated before anything starts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from elocap.execution import Resources
from mcts.search import SearchConfig
from mcts.selfplay import SelfPlayConfig
from scaling.config import ModelConfig, OptimConfig, to_dict

__all__ = [
    "LR_SCHEDULES",
    "RESUME_MAY_CHANGE",
    "SelfPlayRunConfig",
    "actor_resources",
    "check_config",
    "iteration_plies",
    "learner_resources",
    "planned_steps",
    "selfplay_config",
]

LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SelfPlayRunConfig:
    """A self-play run: where it starts, how it plays, how it learns, how much compute."""

    out_dir: str  # the run's directory
    init_run: str = ""  # a supervised (or self-play) run to continue; "": random init
    init_step: int | None = None  # its checkpoint; None: its last
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # random init only
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    games: int = 16  # games per self-play batch (per actor)
    # Game ends (AlphaZero's): the rules end a game; the cap ends almost none; resignation by
    # the root value, with some games played out to measure false resignations.
    max_plies: int = 512  # game-length cap (AlphaZero: 512 plies)
    adjudicate_margin: int | None = None  # at the cap, a win for the side this many pawns up
    resign_value: float | None = -0.9  # resign when the root value is below this; None: never
    no_resign_fraction: float = 0.1  # games played out without resigning (false resignations)
    # The threshold kept where false resignations stay at most resign_target (AlphaZero: 5%),
    # judged on the last resign_window played-out games once a candidate threshold has
    # resign_min_events would-be resignations (mcts.resign); resign_calibrate = false: the
    # threshold stays resign_value.
    resign_calibrate: bool = True
    resign_target: float = 0.05
    resign_window: int = 200
    resign_min_events: int = 20
    # Exploration and targets
    # plies acting stochastically (alphazero: visit sampling; gumbel: Gumbel noise), then greedy.
    # 512 (all): Gumbel MuZero's self-play; greedy after 30 gave 2/3 repetition draws from a
    # random init (BENCHMARKS.md 13b). AlphaZero's own setting, for kind = "alphazero": 30.
    opening_plies: int = 512
    # Continuous self-play (mcts.stream): a slot starts its next game the ply its game ends, so
    # no search is spent on finished games; an iteration is iteration_plies plies of every slot
    # (None: max_plies). False: batches of `games` games in lockstep, each batch until its
    # longest game ends (1.8-2.7 searches per stored position at the 512-ply cap, BENCHMARKS 13b).
    continuous: bool = True
    iteration_plies: int | None = None
    value_target_mix: float = 0.0  # value target: (1 - mix) * outcome + mix * root value
    elo: int | None = None  # Elo-conditioning input during self-play
    train_batch: int = 64  # global batch, split over the learner's local devices
    replay_capacity: int = 50_000  # positions held at most (the memory bound)
    replay_games: int | None = None  # sample from the positions of the last N games (None: all)
    replay_ratio: float = 1.0  # samples trained / samples generated
    # Continuation: this fraction of every learner batch is positions of corpus_dir's train
    # split (a data build; the move played as the policy target, the game's result as the
    # value target), the rest self-play; it keeps the start's knowledge of the capped games
    # (BENCHMARKS.md 13g; replay_ratio counts these rows too). A study sets corpus_dir to the
    # cap's data for the run continued from the cap; its from-scratch control never mixes.
    corpus_mix: float = 0.0
    corpus_dir: str = ""
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)  # peak after warm-up
    lr_schedule: str = "cosine"  # "cosine": to optim.final_lr_fraction at the budget; "constant"
    dtype: str = "auto"  # compute dtype: auto (bf16 on GPU/TPU, f32 on CPU), float32, bfloat16
    budget_flops: float = 1e12  # FLOPs added to the starting checkpoint's
    milestones: int = 8  # kept checkpoints, doubling in added FLOPs up to the budget
    resume_every: int = 1  # iterations between resume checkpoints
    seed: int = 0
    actors: int = 0  # 0: single process; >= 1: Ray self-play actors and a learner
    broadcast_every: int = 10  # learner steps between parameter broadcasts (Ray mode)
    max_actor_failures: int = 3  # Ray mode: actor deaths in one run; the last stops the run
    max_learner_failures: int = 3  # Ray mode: learner deaths (each resumes from resume/)
    learner_cpus: float = 1.0  # Ray mode: the learner actor's request
    learner_gpus: float = 0.0
    actor_cpus: float = 1.0  # Ray mode: each self-play actor's request
    actor_gpus: float = 0.0
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
            "max_learner_failures": 1,
            "opening_plies": 0,
            "resign_window": 1,
            "resign_min_events": 1,
        }
        for name, low in at_least.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"selfplay {name} must be an integer >= {low}, got {value!r}")
        if self.iteration_plies is not None and (
            not isinstance(self.iteration_plies, int) or self.iteration_plies < 1
        ):
            raise ValueError(
                f"selfplay iteration_plies must be >= 1 or unset: {self.iteration_plies!r}"
            )
        if not 0.0 <= self.resign_target < 1.0:
            raise ValueError(f"selfplay resign_target must be in [0, 1), got {self.resign_target}")
        for name in ("continuous", "resign_calibrate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"selfplay {name} must be true or false: {getattr(self, name)!r}")
        if self.replay_games is not None and (
            not isinstance(self.replay_games, int) or self.replay_games < 1
        ):
            raise ValueError(f"selfplay replay_games must be >= 1 or unset: {self.replay_games!r}")
        if not 0.0 <= self.value_target_mix <= 1.0:
            raise ValueError(
                "selfplay value_target_mix must be in [0, 1], got " + repr(self.value_target_mix)
            )
        if not 0.0 <= self.corpus_mix < 1.0:
            raise ValueError(f"selfplay corpus_mix must be in [0, 1), got {self.corpus_mix!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"selfplay lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        for name in ("learner_cpus", "learner_gpus", "actor_cpus", "actor_gpus"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"selfplay {name} must be >= 0, got {getattr(self, name)!r}")
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
        no_resign_fraction=cfg.no_resign_fraction,
        temperature_plies=cfg.opening_plies,
        elo=cfg.elo,
        adjudicate_margin=cfg.adjudicate_margin,
    )


def iteration_plies(cfg: SelfPlayRunConfig) -> int:
    """Plies every slot plays per iteration of continuous self-play."""
    return cfg.iteration_plies or cfg.max_plies


def learner_resources(cfg: SelfPlayRunConfig) -> Resources:
    """What the Ray-mode learner actor asks of the cluster."""
    return Resources(num_cpus=cfg.learner_cpus, num_gpus=cfg.learner_gpus)


def actor_resources(cfg: SelfPlayRunConfig) -> Resources:
    """What each Ray-mode self-play actor asks of the cluster."""
    return Resources(num_cpus=cfg.actor_cpus, num_gpus=cfg.actor_gpus)


def planned_steps(
    cfg: SelfPlayRunConfig, step_flops: float, eval_flops: float, plies_per_position: float = 1.0
) -> int | None:
    """The learner steps the budget pays for, for the cosine schedule (None: constant). Per step
    the run spends ``step_flops`` and the search of ``train_batch / replay_ratio`` positions, each
    ``num_simulations + 1`` evaluations of ``eval_flops``; ``plies_per_position`` >= 1 counts
    the search a batch spends on games already over while its last game plays on."""
    if cfg.lr_schedule == "constant":
        return None
    positions = cfg.train_batch / cfg.replay_ratio
    search = positions * plies_per_position * (cfg.search.num_simulations + 1) * eval_flops
    return max(1, int(cfg.budget_flops / (step_flops + search)))


# Fields a resumed run may change: where it lies (a study moved) and what it asks of a cluster;
# any other difference would continue the run's checkpoints under another config.
RESUME_MAY_CHANGE = frozenset(
    {
        "out_dir",
        "init_run",
        "corpus_dir",
        "learner_cpus",
        "learner_gpus",
        "actor_cpus",
        "actor_gpus",
        "max_actor_failures",
        "max_learner_failures",
    }
)


# Fields added after runs existed, with their defaults: a config at the default is hashed and
# compared without them, so older runs keep their ids and resume (their config.json lacks them).
LATER_FIELDS: dict[tuple[str, ...], Any] = {
    ("corpus_mix",): 0.0,
    ("corpus_dir",): "",
    ("search", "repetition_penalty"): 0.0,
}


def without_later_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A config's dict (``to_dict``) without the ``LATER_FIELDS`` at their defaults."""
    out = json.loads(json.dumps(data, default=str))
    for path, default in LATER_FIELDS.items():
        *parents, name = path
        inner = out
        for key in parents:
            inner = inner.get(key) if isinstance(inner, dict) else None
        if isinstance(inner, dict) and name in inner and inner[name] == default:
            del inner[name]
    return out


def check_config(cfg: SelfPlayRunConfig, data: dict[str, Any] | None = None) -> None:
    """A run that has started (a checkpoint or a resume point in its ``out_dir``) goes on only
    with the config it was started with, but for ``RESUME_MAY_CHANGE``: else a one-line error
    names the fields that differ, before any work. ``data``: the config.json about to be
    written; None: ``cfg``'s own fields, with what its start adds (a continued run's model, the
    study's parent and start FLOPs) taken as they were."""
    out = Path(cfg.out_dir)
    path = out / "config.json"
    started = any(
        (out / d).is_dir() and any((out / d).iterdir()) for d in ("checkpoints", "resume")
    )
    if not (path.exists() and started):
        return
    old = json.loads(path.read_text())
    new = data
    if new is None:
        new = json.loads(json.dumps(to_dict(cfg), default=str))
        new["study"] = {**old.get("study", {}), **new["study"]}
        if cfg.init_run:  # the model is the start's, whatever cfg.model says
            new["model"] = old.get("model")
    old, new = without_later_defaults(old), without_later_defaults(new)
    keys = sorted((set(old) | set(new)) - RESUME_MAY_CHANGE)
    differ = [k for k in keys if old.get(k) != new.get(k)]
    if differ:
        raise ValueError(
            f"{out} holds a self-play run started with another config ({', '.join(differ)} "
            "differ); use another out_dir, or that run's config"
        )
