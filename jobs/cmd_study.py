"""``elocap study run CONFIG [--workdir DIR]``, and (jobs.cmd_submit) its cluster submission."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("study", help="a whole study: data -> sweep -> arena -> self-play -> report")
    ssub = p.add_subparsers(dest="study_command", required=True)
    r = ssub.add_parser("run", help="run (or finish) a study here, on a local or joined Ray")
    r.add_argument("config", type=Path, help="a study TOML, e.g. jobs/studies/tiny.toml")
    r.add_argument("--workdir", type=Path, help="where everything goes (default out/study-NAME)")
    r.set_defaults(func=_run)
    from jobs.cmd_submit import register_study_commands

    register_study_commands(ssub)


def _run(a: argparse.Namespace) -> int:
    from elocap.workdir import Workdir
    from jobs.study import run_study
    from jobs.study_config import load_study_config

    cfg = load_study_config(a.config)
    workdir = a.workdir or Path("out") / f"study-{cfg.name}"
    rows = run_study(cfg, workdir)
    ran = [r["stage"] for r in rows if r["status"] == "ran"]
    print(f"study {cfg.name} in {workdir}: ran {', '.join(ran) or 'nothing (all done)'}")
    print(f"report: {Workdir(root=workdir.absolute()).report_dir / 'index.html'}")
    return 0
