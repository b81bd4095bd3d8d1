"""What a study's stages run, derived from its config and its workdir (pure functions, apart
from reading the records earlier stages wrote): the sweep, the self-play runs, the arena's
agents and the registry rows. Paths come from ``elocap.workdir``; nothing is copied by hand
between configs (stage configs are nested unchanged in ``StudyConfig``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elocap.workdir import CheckpointRow, Workdir, checkpoint_id, selfplay_run_name
from jobs.study_config import StudyConfig
from mcts.agents import AgentSpec, NetworkAgent, parse_agent
from mcts.loop import SelfPlayRunConfig
from mcts.run_config import without_later_defaults
from scaling.config import ModelConfig, RunInfo, TrainConfig, config_hash, from_dict, to_dict
from scaling.sweep import SweepConfig, SweepJob, run_configs


def sweep_job(cfg: StudyConfig, wd: Workdir) -> SweepJob:
    fields = {f.name: getattr(cfg.supervised, f.name) for f in dataclasses.fields(SweepConfig)}
    data_dirs = {str(cap): str(wd.data_dir(cap)) for cap in cfg.data.caps}
    return SweepJob(**fields, out_dir=str(wd.runs_dir), data_dirs=data_dirs)


def supervised_runs(cfg: StudyConfig, wd: Workdir) -> list[TrainConfig]:
    return run_configs(sweep_job(cfg, wd))


def selfplay_runs(cfg: StudyConfig, wd: Workdir) -> list[SelfPlayRunConfig]:
    """Per cap, self-play continued from the last checkpoint of the supervised run with the
    largest model and budget (with ``corpus_mix``, mixing the cap's data into its batches),
    and (``scratch``) the control from a random initialisation of the same model, from its
    own games alone; run ids hash the resolved config without its directories."""
    s = cfg.selfplay
    if not s.enabled:
        return []
    out: dict[str, SelfPlayRunConfig] = {}
    runs = supervised_runs(cfg, wd)
    for cap in cfg.data.caps:
        mine = [r for r in runs if r.info.cap == cap]
        parent = max(mine, key=lambda r: (r.model.width * r.model.depth, r.budget_flops or 0))
        arms: list[tuple[str, int | None, str]] = [("selfplay_cap", cap, parent.out_dir)]
        if s.scratch:
            arms.append(("selfplay_scratch", None, ""))
        for regime, arm_cap, init in arms:
            cap_text = "" if arm_cap is None else str(arm_cap)
            study = {"cap": cap_text, "regime": regime, "size": parent.info.size}
            run = dataclasses.replace(s.run, init_run=init, model=parent.model, study=study)
            if arm_cap is None:  # the control learns from its own games alone
                run = dataclasses.replace(run, corpus_mix=0.0)
            elif run.corpus_mix > 0:  # the cap's own data, the parent's training set
                run = dataclasses.replace(run, corpus_dir=str(wd.data_dir(arm_cap)))
            data = to_dict(run)
            data.pop("out_dir")
            data["init_run"] = Path(init).name  # the parent's id, not where it lies
            if run.corpus_dir:
                data["corpus_dir"] = cap_text  # which cap's data, not where it lies
            data = without_later_defaults(data)  # older runs keep their ids
            name = selfplay_run_name(arm_cap, parent.info.size, config_hash(data))
            out[name] = dataclasses.replace(run, out_dir=str(wd.run_dir(name)))
    return list(out.values())


def evaluated_steps(run: Path, count: int) -> list[dict[str, Any]]:
    """``count`` of a run's kept checkpoints, log-spaced in FLOPs; the last one always."""
    from scaling.checkpoints import list_checkpoints

    kept = list_checkpoints(run)
    return [kept[i] for i in log_spaced_picks(len(kept), count)]


def log_spaced_picks(kept: int, count: int) -> list[int]:
    """Indices of ``count`` of ``kept`` checkpoints, log-spaced, the last always (one pick is
    the last one: a run's first kept checkpoint is its untrained network)."""
    if kept <= count:
        return list(range(kept))
    if count == 1:
        return [kept - 1]
    return [int(i) for i in np.unique(np.round(np.geomspace(1, kept, count)).astype(int) - 1)]


def run_info(run: Path) -> tuple[RunInfo, ModelConfig]:
    """What a run's config.json says it is (written when the run was created)."""
    path = run / "config.json"
    try:
        config = json.loads(path.read_text())
        model = from_dict(ModelConfig, config["model"], "model")
        if "info" in config:  # a supervised run
            return from_dict(RunInfo, config["info"], "info"), model
        study = config["study"]  # a self-play run
        cap = int(study["cap"]) if study.get("cap") else None
        info = RunInfo(regime=study["regime"], cap=cap, size=study.get("size", ""))
        return dataclasses.replace(info, parent=study.get("parent", "")), model
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a run config with its registry info ({e})") from None


def registry_rows(run: Path, count: int, sims: int) -> list[CheckpointRow]:
    """The registry rows (one per arena agent) of a run's evaluated checkpoints."""
    from scaling.model import param_count

    info, model = run_info(run)
    rows = []
    for ckpt in evaluated_steps(run, count):
        agent = NetworkAgent(run=str(run), step=int(ckpt["step"]), sims=sims)
        rows.append(
            CheckpointRow(
                agent=agent.name,
                checkpoint=checkpoint_id(run.name, int(ckpt["step"])),
                sims=sims,
                run_id=run.name,
                regime=info.regime,
                cap=info.cap,
                size=info.size,
                params=param_count(model),
                step=int(ckpt["step"]),
                flops=float(ckpt["flops"]),
                parent=info.parent,
            )
        )
    return rows


def arena_rows(run: Path, cfg: StudyConfig) -> list[CheckpointRow]:
    """A run's players in the arena: its evaluated checkpoints at the study's N
    (``arena.sims``), then the test-time variants: the checkpoints ``arena.test_time_checkpoints``
    picks at every other N of ``arena.test_time_sims``."""
    a = cfg.arena
    rows = registry_rows(run, a.checkpoints_per_run, a.sims)
    return rows + variant_rows(rows, a.test_time_sims, a.test_time_checkpoints)


def variant_rows(rows: list[CheckpointRow], sims: Sequence[int], pick: str) -> list[CheckpointRow]:
    """The rows of ``rows`` (one run's, at the study's N, in FLOP order) that ``pick`` chooses
    ("last": the run's last one; "all": every one), played at each N of ``sims`` other than
    theirs: the same checkpoint, another player."""
    if not rows or not sims:
        return []
    chosen = {"last": rows[-1:], "all": rows}[pick]
    return [
        dataclasses.replace(r, agent=_agent_at(r, n), sims=n)
        for r in chosen
        for n in sorted(sims)
        if n != r.sims
    ]


def _agent_at(row: CheckpointRow, sims: int) -> str:
    return NetworkAgent(run=row.run_id, step=row.step, sims=sims).name


def main_rows(rows: list[CheckpointRow], sims: int) -> list[CheckpointRow]:
    """The rows at the study's N: the players of the compute-Elo curves (contract 3)."""
    return [r for r in rows if r.sims == sims]


def variant_chains(rows: list[CheckpointRow], wd: Workdir) -> list[list[NetworkAgent]]:
    """Per checkpoint rated at several N, its players in increasing N: the arena pairs each
    with its neighbours in N, so every variant is linked to its checkpoint at the study's N."""
    by_checkpoint: dict[str, list[CheckpointRow]] = {}
    for r in rows:
        by_checkpoint.setdefault(r.checkpoint, []).append(r)
    return [
        agents_of(sorted(group, key=lambda r: r.sims), wd)
        for group in by_checkpoint.values()
        if len(group) > 1
    ]


def agents_of(rows: list[CheckpointRow], wd: Workdir) -> list[NetworkAgent]:
    return [NetworkAgent(run=str(wd.run_dir(r.run_id)), step=r.step, sims=r.sims) for r in rows]


def anchor_elos(cfg: StudyConfig) -> dict[str, float]:
    """The fixed ratings of the pool: the random mover at 0 (when it plays) and the study's."""
    names = {parse_agent(s).name for s in cfg.arena.anchors}
    fixed = {"random": 0.0} if "random" in names else {}
    return {**fixed, **dict(cfg.arena.anchor_elos)}


def anchor_ladder(cfg: StudyConfig, phase: str) -> list[AgentSpec]:
    """The anchors that play each other in ``phase`` (``[arena.schedule] anchor_games``, in the
    order ``arena.anchors`` lists them): all of them in the supervised phase, whose log later
    phases rate on, none elsewhere (their games are played once)."""
    if phase != "supervised" or not cfg.arena.schedule.anchor_games:
        return []
    anchors = [parse_agent(s) for s in cfg.arena.anchors]
    return anchors if len(anchors) > 1 else []


def ladder_log(cfg: StudyConfig, wd: Workdir) -> list[Path]:
    """The ladder's rating games (an arena log of the study's pool) when it is a source."""
    return [wd.arena_log("ladder")] if "ladder" in cfg.data.sources else []


def rating_logs(cfg: StudyConfig, wd: Workdir) -> list[Path]:
    """Every log the study's ratings are fitted on: the ladder's games (its players are the
    bridges between the corpus's Elo tags and the arena's scale) and each arena phase's."""
    return [*(p for p in ladder_log(cfg, wd) if p.exists()), *wd.arena_logs()]


def ladder_partners(cfg: StudyConfig) -> list[AgentSpec]:
    """The ladder's players (the random mover excepted: it is an anchor already), which every
    arena phase pairs checkpoints with by rating."""
    from mcts.ladder import ladder_players

    if "ladder" not in cfg.data.sources:
        return []
    return [a for a in ladder_players(cfg.data.ladder) if a.name != "random"]


def bridges(cfg: StudyConfig, wd: Workdir) -> tuple[Any, ...]:
    """The report's bridges: the ladder's players with their ratings from the ladder's own fit
    (the corpus's Elo tags), then the ones the study declares."""
    from mcts.ladder import ladder_bridges

    logs = [p for p in ladder_log(cfg, wd) if p.exists()]
    derived = ladder_bridges(logs[0]) if logs else ()
    return (*derived, *cfg.analysis.bridges)
