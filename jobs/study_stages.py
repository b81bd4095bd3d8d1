"""The stages of a study (see ``jobs.study``): each takes the config and the workdir, does the
work that is not yet done, and returns a small summary (numbers for the progress view)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.files import atomic_write_text
from jobs.study_config import StudyConfig

REGISTRY_FIELDS = ("agent", "run_id", "regime", "cap", "size", "params", "step", "flops", "parent")


def ensure_ray() -> None:
    """Joins the cluster of a submitted job (RAY_ADDRESS) or starts a local one."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.ERROR)


def data(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    from data_pipeline.build import BuildConfig, SplitConfig, build
    from data_pipeline.filters import FilterConfig
    from mcts.ladder import build_ladder

    ensure_ray()
    sources, summary = [], {}
    for source in cfg.data.sources:
        if source == "ladder":
            path = wd / "corpus" / "ladder.pgn"
            report = build_ladder(cfg.data.ladder, path)
            summary["ladder_games"] = report.played + report.skipped
            sources.append(str(path))
        else:
            sources.append(source)
    splits = SplitConfig(val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction)
    cache = Path(cfg.data.cache_dir or os.environ.get("ELOCAP_CACHE", "") or wd / "cache")
    for cap in cfg.data.caps:
        build_cfg = BuildConfig(
            filters=FilterConfig(cap=cap), splits=splits, chunk_games=cfg.data.chunk_games
        )
        manifest = build(sources, data_dir(wd, cap), build_cfg, cache_dir=cache)
        errors = [s for s in manifest["sources"] if s["error"]]
        if errors:
            raise RuntimeError(f"data build for cap {cap} failed on sources: {errors}")
        summary[f"cap{cap}_train_positions"] = int(manifest["positions"]["train"])
    return summary


def data_dir(wd: Path, cap: int) -> Path:
    return wd / "data" / f"cap{cap}"


def sweep_config(cfg: StudyConfig, wd: Path) -> Any:
    from scaling.sweep import SweepConfig

    s = cfg.supervised
    return SweepConfig(
        out_dir=str(wd / "runs"),
        data_dirs={str(cap): str(data_dir(wd, cap)) for cap in cfg.data.caps},
        sizes=s.sizes,
        budgets=s.budgets,
        elo_buckets=s.elo_buckets,
        batch_size=s.batch_size,
        optim=s.optim,
        milestones=s.milestones,
        checkpoint_every=s.checkpoint_every,
        log_every=s.log_every,
        eval_batches=s.eval_batches,
        cpus_per_trial=s.cpus_per_trial,
        gpus_per_trial=s.gpus_per_trial,
    )


def supervised(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    from scaling.sweep import run_sweep

    ensure_ray()
    results = run_sweep(sweep_config(cfg, wd))
    return {"runs": len(results), "flops": float(sum(r["flops"] for r in results))}


def _evaluated_steps(run: Path, count: int) -> list[dict[str, Any]]:
    """``count`` of a run's kept checkpoints, log-spaced in FLOPs; the last one always."""
    from scaling.checkpoints import list_checkpoints

    kept = list_checkpoints(run)
    if len(kept) <= count:
        return kept
    picks = np.unique(np.round(np.geomspace(1, len(kept), count)).astype(int) - 1)
    return [kept[i] for i in picks]


def registry_rows(run: Path, regime: str, count: int, sims: int) -> list[dict[str, Any]]:
    """The registry rows (and so the arena agents) of a run's evaluated checkpoints."""
    from mcts.agents import NetworkAgent
    from scaling.config import ModelConfig, from_dict
    from scaling.model import NAMED_SIZES, param_count

    config = json.loads((run / "config.json").read_text())
    meta = config.get("study", {})  # self-play runs: {"cap", "parent"}
    model = from_dict(ModelConfig, config["model"], "model")
    same = [n for n, m in NAMED_SIZES.items() if (m.width, m.depth) == (model.width, model.depth)]
    size = same[0] if same else f"w{model.width}d{model.depth}"
    params = param_count(model)
    rows = []
    for ckpt in _evaluated_steps(run, count):
        agent = NetworkAgent(run=str(run), step=int(ckpt["step"]), sims=sims)
        rows.append(
            {
                "agent": agent.name,
                "run_id": run.name,
                "regime": regime,
                "cap": meta.get("cap", _cap_of(config)),
                "size": size,
                "params": params,
                "step": int(ckpt["step"]),
                "flops": float(ckpt["flops"]),
                "parent": meta.get("parent", ""),
            }
        )
    return rows


def _cap_of(config: dict[str, Any]) -> str:
    name = Path(config.get("data_dir", "")).name
    return name[3:] if name.startswith("cap") else ""


def _agents(rows: Sequence[dict[str, Any]], wd: Path, sims: int) -> list[Any]:
    from mcts.agents import NetworkAgent

    return [
        NetworkAgent(run=str(wd / "runs" / r["run_id"]), step=r["step"], sims=sims) for r in rows
    ]


def _write_registry(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REGISTRY_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, out.getvalue())


def _read_registry(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _arena_phase(
    cfg: StudyConfig, wd: Path, phase: str, rows: list[dict[str, Any]], partners: list[Any]
) -> dict[str, Any]:
    from mcts.agents import parse_agent
    from mcts.arena import ArenaConfig
    from mcts.openings import eco_openings
    from mcts.scheduler import run_active

    ensure_ray()
    a = cfg.arena
    _write_registry(wd / "registry" / f"{phase}.csv", rows)
    anchors = [parse_agent(s) for s in a.anchors]
    arena = ArenaConfig(move_cap=a.move_cap, batch=a.batch, workers=a.workers)
    pgn = wd / "arena" / f"{phase}.pgn"
    reports = run_active(
        _agents(rows, wd, a.sims),
        [*anchors, *partners],
        eco_openings(a.openings),
        pgn,
        arena,
        target_width=a.target_width,
        max_rounds=a.max_rounds,
        neighbours=a.neighbours,
        games_per_pair=a.games_per_pair,
        anchor_elos=anchor_elos(cfg),
        history=sorted(p for p in (wd / "arena").glob("*.pgn") if p != pgn),
    )
    from mcts.games import recover_log

    return {"agents": len(rows), "rounds": len(reports), "games": len(recover_log(pgn))}


def anchor_elos(cfg: StudyConfig) -> dict[str, float]:
    from mcts.agents import parse_agent

    names = {parse_agent(s).name for s in cfg.arena.anchors}
    fixed = {"random": 0.0} if "random" in names else {}
    return {**fixed, **cfg.arena.anchor_elos}


def arena_supervised(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    from scaling.sweep import run_configs

    rows = [
        row
        for run in run_configs(sweep_config(cfg, wd))
        for row in registry_rows(
            Path(run.out_dir), "supervised", cfg.arena.checkpoints_per_run, cfg.arena.sims
        )
    ]
    return _arena_phase(cfg, wd, "supervised", rows, [])


def selfplay_configs(cfg: StudyConfig, wd: Path) -> list[tuple[Any, str]]:
    """(SelfPlayRunConfig, regime) of the study's self-play runs: per cap, one continued from
    the supervised run with the largest size and budget (its last checkpoint), and, when
    ``scratch``, the control from a random initialisation of the same model."""
    import hashlib

    from mcts.loop import SelfPlayRunConfig
    from mcts.search import SearchConfig
    from scaling.config import OptimConfig, to_dict
    from scaling.sweep import run_configs

    s = cfg.selfplay
    if not s.enabled:
        return []
    base = SelfPlayRunConfig(
        out_dir="",
        search=SearchConfig(kind="gumbel", num_simulations=s.simulations),
        games=s.games_per_batch,
        max_plies=s.max_plies,
        adjudicate_margin=s.adjudicate_margin,
        train_batch=s.train_batch,
        replay_ratio=s.replay_ratio,
        milestones=s.milestones,
        actors=s.actors,
        budget_flops=s.budget_flops,
        optim=OptimConfig(learning_rate=s.learning_rate, warmup_steps=10),
    )
    runs = run_configs(sweep_config(cfg, wd))
    out = []
    for cap in cfg.data.caps:
        mine = [r for r in runs if Path(r.data_dir) == data_dir(wd, cap)]
        parent = max(mine, key=lambda r: (r.model.width * r.model.depth, r.budget_flops or 0))
        size = next(n for n in cfg.supervised.sizes if n in Path(parent.out_dir).name)
        arms = [("selfplay_cap", f"cap{cap}", parent.out_dir)]
        if s.scratch:
            arms.append(("selfplay_scratch", "scratch", ""))
        for regime, tag, init in arms:
            study = {"cap": str(cap) if init else "", "regime": regime}
            run = dataclasses.replace(base, init_run=init, model=parent.model, study=study)
            text = json.dumps(to_dict(run), sort_keys=True, default=str)
            digest = hashlib.sha256(text.encode()).hexdigest()[:12]
            out_dir = wd / "runs" / f"selfplay-{tag}-{size}-{digest}"
            out.append((dataclasses.replace(run, out_dir=str(out_dir)), regime))
    return list({c.out_dir: (c, r) for c, r in out}.values())


def selfplay_runs(cfg: StudyConfig, wd: Path) -> list[tuple[Path, str]]:
    return [(Path(c.out_dir), regime) for c, regime in selfplay_configs(cfg, wd)]


def selfplay(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    from mcts.loop import run_selfplay

    ensure_ray()
    results = [run_selfplay(c) for c, _ in selfplay_configs(cfg, wd)]
    return {
        "runs": len(results),
        "flops": float(sum(r["flops"] - r["start_flops"] for r in results)),
    }


def arena_selfplay(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    if not cfg.selfplay.enabled:
        return {"agents": 0}
    rows = [
        row
        for run, regime in selfplay_runs(cfg, wd)
        for row in registry_rows(run, regime, cfg.arena.checkpoints_per_run, cfg.arena.sims)
    ]
    partners = _agents(_read_registry(wd / "registry" / "supervised.csv"), wd, cfg.arena.sims)
    return _arena_phase(cfg, wd, "selfplay", rows, partners)


def ratings(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    from analysis.ratings import fit_ratings, read_pgn_results

    games, rejected = read_pgn_results(sorted((wd / "arena").glob("*.pgn")))
    table = fit_ratings(games, cfg.analysis.rating_model, anchors=anchor_elos(cfg))
    (wd / "ratings").mkdir(parents=True, exist_ok=True)
    table.write_csv(wd / "ratings" / "ratings.csv")
    rows = [
        r
        for phase in ("supervised", "selfplay")
        for r in _read_registry(wd / "registry" / f"{phase}.csv")
    ]
    _write_registry(wd / "registry" / "checkpoints.csv", rows)
    return {
        "players": len(table.names),
        "games": len(games.white),
        "rejected": sum(rejected.values()),
    }


def report(cfg: StudyConfig, wd: Path) -> dict[str, Any]:
    from analysis.report import ReportConfig, write_report

    rc = ReportConfig(
        replicates="games",
        n_replicates=cfg.analysis.bootstrap,
        seed=cfg.analysis.seed,
        rating_model=cfg.analysis.rating_model,
        anchors=tuple(anchor_elos(cfg).items()),
    )
    return {"report": str(write_report(wd, wd / "report", rc))}
