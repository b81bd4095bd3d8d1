"""``elocap study run|plan CONFIG [--workdir DIR]``, and (jobs.cmd_submit) its cluster
submission."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("study", help="a whole study: data -> sweep -> arena -> self-play -> report")
    ssub = p.add_subparsers(dest="study_command", required=True)
    r = ssub.add_parser("run", help="run (or finish) a study here, on a local or joined Ray")
    r.add_argument("config", type=Path, help="a study TOML, e.g. jobs/studies/tiny.toml")
    r.add_argument("--workdir", type=Path, help="where everything goes (default out/study-NAME)")
    r.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray workers' output, library logging and warnings here (else: logs/study.log)",
    )
    r.add_argument("--no-ray", action="store_true", help="every stage in this process, no Ray")
    r.set_defaults(func=_run)
    pl = ssub.add_parser("plan", help="check a study config and show what running it would do")
    pl.add_argument("config", type=Path)
    pl.add_argument("--workdir", type=Path, help="the study directory (default out/study-NAME)")
    pl.set_defaults(func=_plan)
    from jobs.cmd_submit import register_study_commands

    register_study_commands(ssub)


def _workdir(a: argparse.Namespace, name: str) -> Path:
    return Path(a.workdir or Path("out") / f"study-{name}").absolute()


def _log_to_file(path: Path) -> None:
    """Library logging and Python warnings (JAX, orbax, absl, matplotlib) go to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("absl", "jax", "orbax"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def _run(a: argparse.Namespace) -> int:
    from analysis.report import read_headline
    from elocap.workdir import Workdir
    from jobs.entry import executor
    from jobs.progress import StudyView
    from jobs.study import run_study
    from jobs.study_config import load_study_config

    cfg = load_study_config(a.config)  # every key checked before any work
    wd = Workdir(root=_workdir(a, cfg.name))
    log_file = wd.logs_dir / "study.log"
    if not a.verbose:
        _log_to_file(log_file)
        # JAX warns at every fork; the study forks only through subprocess (engines, Ray),
        # which execs at once, so the warning says nothing here.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=Warning)
    view = StudyView(cfg, wd)
    view.header(f"study {cfg.name} in {wd.root}" + ("" if a.verbose else f" (log: {log_file})"))
    ex = executor(a.no_ray, log_dir=wd.logs_dir, verbose=a.verbose)
    rows = run_study(cfg, wd.root, ex, view=view)
    ran = [r["stage"] for r in rows if r["status"] == "ran"]
    print(f"study {cfg.name}: ran {', '.join(ran) or 'nothing (all done)'}")
    report = wd.report_dir / "index.html"
    print(f"report: {report}")
    try:
        lines = read_headline(wd.report_dir)
    except OSError as e:  # a report written before the headline existed
        lines = [f"(no headline: {e}; `elocap report {wd.root}` writes it)"]
    for line in lines:
        print(f"  {line}")
    sys.stdout.flush()
    return 0


def _plan(a: argparse.Namespace) -> int:
    from elocap.workdir import Workdir, read_stage
    from jobs import study_plan as plan
    from jobs.study import STAGES
    from jobs.study_config import load_study_config
    from jobs.study_cost import cost_lines
    from mcts.agents import parse_agent

    cfg = load_study_config(a.config)
    wd = Workdir(root=_workdir(a, cfg.name))
    print(f"study {cfg.name} ({a.config}) in {wd.root}: the config is valid")
    print(f"data: {', '.join(cfg.data.sources)} -> caps {', '.join(map(str, cfg.data.caps))}")
    for line in cost_lines(cfg):
        print(line)
    try:
        runs = plan.supervised_runs(cfg, wd)  # their ids need the data's identity
    except OSError:
        runs = []
        print("  (run ids once the data stage has run)")
    for r in runs:
        state = "done" if (Path(r.out_dir) / "result.json").exists() else "to run"
        print(f"  {Path(r.out_dir).name:<40} {float(r.budget_flops or 0):>8.2g} FLOPs  {state}")
    anchors = ", ".join(parse_agent(x).name for x in cfg.arena.anchors)
    print(f"arena anchors: {anchors}")
    for name, _, _ in STAGES:
        record = read_stage(wd, name)
        problems = record.problems(wd) if record is not None else []
        state = "not run" if record is None else ("damaged" if problems else "done before")
        print(f"  stage {name:<16} {state}")
    return 0
