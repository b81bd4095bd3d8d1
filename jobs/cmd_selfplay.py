"""``elocap selfplay CONFIG``: one self-play run (continued from a checkpoint, or from scratch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("selfplay", help="MCTS self-play and learning from a TOML config")
    p.add_argument("config", type=Path, help="a SelfPlayRunConfig as TOML ([search], [optim])")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_selfplay)


def load_selfplay_config(path: Path) -> Any:
    from mcts.loop import SelfPlayRunConfig
    from scaling.config import load_toml

    return load_toml(SelfPlayRunConfig, path, "self-play config")


def _selfplay(a: argparse.Namespace) -> int:
    from mcts.loop import run_selfplay

    cfg = load_selfplay_config(a.config)  # validated before Ray starts
    if cfg.actors > 0:  # Ray-mode self-play: this entry point starts or joins the cluster
        from jobs.entry import executor

        executor()
    result = run_selfplay(cfg, progress=not a.no_progress)
    print(json.dumps(result, indent=1))
    return 0
