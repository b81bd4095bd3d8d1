"""The ``elocap`` command line: argument parsing only; the work is in the libraries."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from data_pipeline.build import BuildError
from data_pipeline.filters import ELO_RULES, TIME_CONTROL_CLASSES, FilterConfig
from data_pipeline.sources import SourceError
from jobs.ray_session import RayStartError


def _csv(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--cap", type=int, help="Elo cap (omit to keep every rating)")
    g.add_argument("--elo-rule", choices=ELO_RULES, default="both", help="how the cap applies")
    g.add_argument(
        "--only-elo", action="store_true", help="switch off every filter but the Elo rule"
    )
    g.add_argument(
        "--time-controls",
        type=_csv,
        help=f"allowed classes, comma-separated, of {','.join(TIME_CONTROL_CLASSES)}",
    )
    g.add_argument(
        "--reject-terminations",
        type=_csv,
        default=FilterConfig().reject_terminations,
        help="Termination values rejected, comma-separated (default: Abandoned,Rules infraction)",
    )
    g.add_argument("--min-plies", type=int, default=1, help="minimum plies per game (default 1)")
    g.add_argument("--date-from", help="first date kept, YYYY.MM.DD")
    g.add_argument("--date-to", help="last date kept, YYYY.MM.DD")
    g.add_argument("--allow-casual", action="store_true", help="keep unrated games too")
    g.add_argument("--allow-bots", action="store_true", help="keep games of BOT accounts")
    g.add_argument("--allow-variants", action="store_true", help="keep variants and set-ups")
    g.add_argument("--cache-dir", type=Path, help="download cache for lichess:YYYY-MM sources")


def _filter_config(a: argparse.Namespace) -> FilterConfig:
    return FilterConfig(
        cap=a.cap,
        elo_rule=a.elo_rule,
        only_elo=a.only_elo,
        standard_only=not a.allow_variants,
        rated_only=not a.allow_casual,
        time_controls=a.time_controls,
        reject_terminations=a.reject_terminations,
        exclude_bots=not a.allow_bots,
        min_plies=a.min_plies,
        date_from=a.date_from,
        date_to=a.date_to,
    )


def _data_build(a: argparse.Namespace) -> int:
    from data_pipeline.build import BuildConfig, SplitConfig, build
    from data_pipeline.stats import summary

    cfg = BuildConfig(
        filters=_filter_config(a),
        splits=SplitConfig(val_fraction=a.val_fraction, test_fraction=a.test_fraction),
        chunk_games=a.chunk_games,
    )
    progress = None if not a.no_progress else False
    if not a.no_ray:  # this entry point starts or joins Ray; the build only uses it
        from jobs.entry import executor

        executor()
    manifest = build(
        a.sources,
        a.out,
        cfg,
        workers=a.workers,
        use_ray=not a.no_ray,
        progress=progress,
        cache_dir=a.cache_dir,
    )
    print(summary(manifest))
    return 1 if any(s["error"] for s in manifest["sources"]) else 0


def _data_filter(a: argparse.Namespace) -> int:
    from data_pipeline.extract import atomic_output, filter_games

    with atomic_output(a.out) as out:
        report = filter_games(a.sources, out, _filter_config(a), cache_dir=a.cache_dir)
    rejected = ", ".join(f"{k} {v}" for k, v in report.rejected.items()) or "none"
    print(f"games {report.games}, kept {report.kept}, rejected: {rejected}", file=sys.stderr)
    for name, error in report.errors.items():
        print(f"error in {name}: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def _data_stats(a: argparse.Namespace) -> int:
    from data_pipeline.stats import summary

    manifest = json.loads((a.dir / "manifest.json").read_text())
    print(json.dumps(manifest, indent=1) if a.json else summary(manifest))
    return 0


def _train(a: argparse.Namespace) -> int:
    from scaling.config import load_train_config
    from scaling.train import train

    result = train(load_train_config(a.config), progress=True)
    print(json.dumps(result, indent=1))
    return 0


def _sweep_run(a: argparse.Namespace) -> int:
    from jobs.entry import executor
    from scaling.sweep import format_status, load_sweep_config, run_sweep, status_rows

    sweep = load_sweep_config(a.config)  # validated before Ray starts
    run_sweep(sweep, executor(a.no_ray))
    print(format_status(status_rows(sweep)))
    return 0


def _sweep_status(a: argparse.Namespace) -> int:
    from scaling.sweep import format_status, load_sweep_config, status_rows

    print(format_status(status_rows(load_sweep_config(a.config))))
    return 0


def _sizes(a: argparse.Namespace) -> int:
    from scaling.flops import forward_flops_per_position
    from scaling.model import NAMED_SIZES, param_count

    print(
        f"{'name':>6} {'width':>6} {'depth':>6} {'heads':>6} {'params':>14} {'fwd FLOPs/pos':>14}"
    )
    for name, cfg in NAMED_SIZES.items():
        n, f = param_count(cfg), forward_flops_per_position(cfg)
        print(f"{name:>6} {cfg.width:>6} {cfg.depth:>6} {cfg.heads:>6} {n:>14,} {f:>14.3g}")
    return 0


# Modules that add their own subcommands: each has ``register(subparsers) -> None`` and keeps
# its imports of heavy libraries inside the command functions.
_COMMAND_MODULES: tuple[str, ...] = (
    "jobs.cmd_analysis",
    "jobs.cmd_arena",
    "jobs.cmd_ratings",
    "jobs.cmd_selfplay",
    "jobs.cmd_study",
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="elocap", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="the data stage: PGN -> Elo-capped training shards")
    dsub = data.add_subparsers(dest="data_command", required=True)

    b = dsub.add_parser("build", help="filter, encode and shard PGN sources")
    b.add_argument("sources", nargs="+", help="files, folders, globs, '-' or lichess:YYYY-MM")
    b.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    _add_filter_args(b)
    b.add_argument("--chunk-games", type=int, default=2000, help="games per task and shard")
    b.add_argument("--val-fraction", type=float, default=0.05)
    b.add_argument("--test-fraction", type=float, default=0.05)
    b.add_argument("--workers", type=int, help="parallel tasks (default: all CPU cores)")
    b.add_argument("--no-ray", action="store_true", help="work in this process, without Ray")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_data_build)

    f = dsub.add_parser("filter", help="write the kept games, unchanged, as PGN")
    f.add_argument("sources", nargs="+", help="files, folders, globs, '-' or lichess:YYYY-MM")
    f.add_argument("-o", "--out", default="-", help="output PGN file ('-': standard output)")
    _add_filter_args(f)
    f.set_defaults(func=_data_filter)

    s = dsub.add_parser("stats", help="summarise a build's manifest")
    s.add_argument("dir", type=Path, help="a build's output directory")
    s.add_argument("--json", action="store_true", help="print the whole manifest")
    s.set_defaults(func=_data_stats)

    t = sub.add_parser("train", help="one supervised run from a TOML TrainConfig")
    t.add_argument("config", type=Path)
    t.set_defaults(func=_train)
    w = sub.add_parser("sweep", help="a sweep (caps x sizes x budgets) on Ray, or its status")
    wsub = w.add_subparsers(dest="sweep_command", required=True)
    wr = wsub.add_parser("run", help="run every unfinished run of a sweep TOML (SweepJob)")
    wr.add_argument("config", type=Path)
    wr.add_argument("--no-ray", action="store_true", help="one trial after the other, here")
    wr.set_defaults(func=_sweep_run)
    ws = wsub.add_parser("status", help="one line per run: state, progress, FLOPs, loss")
    ws.add_argument("config", type=Path)
    ws.set_defaults(func=_sweep_status)
    z = sub.add_parser("sizes", help="the named model sizes with parameters and FLOPs")
    z.set_defaults(func=_sizes)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return p


def _quiet_third_party() -> None:
    """orbax logs every read-only checkpoint manager through absl at WARNING: noise to a user."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_third_party()
    from elocap import compile_cache

    compile_cache.enable()  # before anything compiles, and before Ray starts its workers
    try:
        return int(args.func(args))
    except (
        ValueError,
        OSError,
        SourceError,
        BuildError,
        RayStartError,
    ) as e:  # configs, disks, Ray
        print(f"elocap: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
