"""The stages of a study (see ``jobs.study``): each takes the config, the workdir and the
executor the entry point made, does the work that is not yet done (what to run comes from
``jobs.study_plan``), and returns a small summary for the progress view."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from elocap.execution import Executor
from elocap.workdir import (
    CheckpointRow,
    RatingRow,
    Workdir,
    read_checkpoints,
    write_checkpoints,
    write_ratings,
)
from jobs import study_plan as plan
from jobs.study_config import StudyConfig


def data(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    from data_pipeline.views import build_caps
    from mcts.ladder import build_ladder

    sources, summary = [], {}
    for source in cfg.data.sources:
        if source == "ladder":
            log = plan.ladder_log(cfg, wd)[0]
            report = build_ladder(cfg.data.ladder, wd.corpus("ladder"), log, ex, progress=False)
            summary.update(_ladder_summary(report))
            sources.append(str(wd.corpus("ladder")))
        else:
            sources.append(source)
    cache = Path(cfg.data.cache_dir or os.environ.get("ELOCAP_CACHE", "") or wd.cache_dir)
    # One pass for every cap: the shared build of all kept games, and per cap a view of it in
    # wd.data_dir(cap), which the sweep reads as a build.
    shared_dir = wd.data_shared
    caps = list(cfg.data.caps)
    build_cfg = sized_build(cfg, sources, cache) if cfg.data.epochs > 0 else cfg.data.build
    out = build_caps(
        sources, shared_dir, build_cfg, caps, [wd.data_dir(c) for c in caps],
        use_ray=ex.distributed, cache_dir=cache,
    )  # fmt: skip
    errors = [s for s in out["shared"]["sources"] if s["error"]]
    if errors:
        raise RuntimeError(f"data build failed on sources: {errors}")
    for cap in caps:
        summary[f"train_positions_cap{cap}"] = int(out["views"][cap]["positions"]["train"])
    return summary


def sized_build(cfg: StudyConfig, sources: list[str], cache: Path) -> Any:
    """The data build's config sampled to what the sweep reads: the run reading the most
    positions (budget / training FLOPs per position), ``data.epochs`` passes allowed."""
    from data_pipeline import budget
    from scaling.flops import train_flops_per_position
    from scaling.model import NAMED_SIZES

    s = cfg.supervised
    per_position = {size: train_flops_per_position(NAMED_SIZES[size]) for size in s.sizes}
    reads = budget.positions_consumed((b, per_position[z]) for z in s.sizes for b in s.budgets)
    size = max(s.sizes, key=lambda z: max(s.budgets) / per_position[z])
    note = f"{size} at {max(s.budgets):g} FLOPs, {per_position[size]:.3g} FLOPs/position"
    need = budget.DataBudget(positions=reads, epochs=cfg.data.epochs, note=note)
    filters = cfg.data.build.filters
    estimate = budget.estimate_positions(sources, filters, cfg.data.caps, cache_dir=cache)
    return budget.sampled_config(cfg.data.build, need, estimate)


def supervised(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    from scaling.sweep import run_sweep

    results = run_sweep(plan.sweep_job(cfg, wd), ex, progress=False)
    return {"runs": len(results), "flops": float(sum(r["flops"] for r in results))}


def arena_supervised(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    runs = [Path(r.out_dir) for r in plan.supervised_runs(cfg, wd)]
    rows = [row for run in runs for row in plan.arena_rows(run, cfg)]
    return _arena_phase(cfg, wd, ex, "supervised", rows, [])


def selfplay(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    from mcts.loop import run_selfplay

    results = [run_selfplay(c, progress=False) for c in plan.selfplay_runs(cfg, wd)]
    added = sum(r["flops"] - r["start_flops"] for r in results)
    return {"runs": len(results), "flops": float(added)}


def arena_selfplay(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    runs = [Path(c.out_dir) for c in plan.selfplay_runs(cfg, wd)]
    rows = [row for run in runs for row in plan.arena_rows(run, cfg)]
    if not rows:
        write_checkpoints(wd.phase_registry("selfplay"), rows)
        return {"agents": 0}
    # the supervised checkpoints at the study's N (their test-time variants are not partners)
    supervised = read_checkpoints(wd.phase_registry("supervised"))
    partners = plan.agents_of(plan.main_rows(supervised, cfg.arena.sims), wd)
    return _arena_phase(cfg, wd, ex, "selfplay", rows, partners)


def ratings(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    from analysis.ratings import fit_ratings, read_pgn_results

    games, rejected = read_pgn_results(plan.rating_logs(cfg, wd))
    table = fit_ratings(games, cfg.analysis.rating_model, anchors=plan.anchor_elos(cfg))
    write_ratings(wd.ratings_csv, [RatingRow(**row) for row in table.to_rows()])
    rows = [r for phase in ("supervised", "selfplay") for r in _phase_rows(wd, phase)]
    write_checkpoints(wd.checkpoints_csv, rows)
    return {
        "players": len(table.names),
        "games": len(games.white),
        "rejected": sum(rejected.values()),
    }


def report(cfg: StudyConfig, wd: Workdir, ex: Executor) -> dict[str, Any]:
    import dataclasses

    from analysis.report import write_report

    rc = dataclasses.replace(
        cfg.analysis,
        anchors=tuple(plan.anchor_elos(cfg).items()),
        bridges=plan.bridges(cfg, wd),
        sims=cfg.arena.sims,  # the curves' N; the test-time variants are reported apart
    )
    return {"report": str(write_report(wd.root, wd.report_dir, rc))}


def _ladder_summary(report: Any) -> dict[str, Any]:
    """Games, their speed and the players' fitted ratings (random = 0) for the progress view."""
    out: dict[str, Any] = {"ladder_games": report.played + report.skipped}
    if report.played:
        out["ladder_games_per_s"] = round(report.played / max(report.seconds, 1e-9), 2)
    out["ladder_elo"] = {n: round(r[0]) for n, r in report.ratings.items()}
    return out


def _phase_rows(wd: Workdir, phase: str) -> list[CheckpointRow]:
    path = wd.phase_registry(phase)
    return read_checkpoints(path) if path.exists() else []


def _arena_phase(
    cfg: StudyConfig,
    wd: Workdir,
    ex: Executor,
    phase: str,
    rows: list[CheckpointRow],
    partners: list[Any],
) -> dict[str, Any]:
    from mcts.agents import parse_agent
    from mcts.games import keep_players, recover_log
    from mcts.openings import eco_openings
    from mcts.scheduler import run_active

    write_checkpoints(wd.phase_registry(phase), rows)
    pgn = wd.arena_log(phase)
    agents = plan.agents_of(rows, wd)
    pool = [*(parse_agent(s) for s in cfg.arena.anchors), *plan.ladder_partners(cfg), *partners]
    # the anchors' own games ([arena.schedule] anchor_games), once: in the first phase's log,
    # which every later phase rates on as its history
    among = plan.anchor_ladder(cfg, phase)
    # a log left by another arena config (other simulations, other checkpoints) keeps only the
    # games between this phase's players; the rest would be rated as if they belonged here
    dropped = keep_players(pgn, [a.name for a in (*agents, *pool)])
    reports = run_active(
        agents,
        pool,
        eco_openings(cfg.arena.openings),
        pgn,
        cfg.arena.games,
        cfg.arena.schedule,
        ex,
        anchor_elos=plan.anchor_elos(cfg),
        history=[p for p in plan.rating_logs(cfg, wd) if p != pgn],
        chains=plan.variant_chains(rows, wd),
        ladder=among,
        progress=False,
    )
    rounds = len(reports) - int(bool(among))
    summary = {"agents": len(rows), "rounds": rounds, "games": len(recover_log(pgn))}
    summary |= {"anchor_games": reports[0].played + reports[0].skipped} if among else {}
    variants = len(rows) - len(plan.main_rows(rows, cfg.arena.sims))
    summary |= {"test_time_players": variants} if variants else {}
    return summary | ({"dropped_other_config_games": dropped} if dropped else {})
