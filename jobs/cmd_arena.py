"""``elocap arena``: a round robin or an adaptive tournament between agents, appended to a PGN."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

AGENT_HELP = (
    "an agent: random | net:run=RUN_DIR[,step=S][,sims=N][,temperature=T][,elo=E] | "
    "stockfish[:elo=1350][,skill=K][,nodes=N][,movetime_ms=MS] | uci:path=ENGINE[,label=NAME]"
)


def register(sub: Any) -> None:
    p = sub.add_parser("arena", help="play a tournament between agents (PGN out, resumable)")
    p.add_argument("--agent", action="append", required=True, help=AGENT_HELP)
    p.add_argument("-o", "--out", type=Path, required=True, help="the tournament's PGN log")
    p.add_argument("--games-per-pair", type=int, default=8, help="round robin games per pair")
    p.add_argument(
        "--openings",
        default="eco",
        help="'eco' (a suite of main lines) or a data build directory (its validation split)",
    )
    p.add_argument("--opening-count", type=int, default=8, help="openings in the suite")
    p.add_argument("--opening-plies", type=int, default=8, help="plies per opening from data")
    p.add_argument("--move-cap", type=int, default=300, help="plies before a draw is adjudicated")
    p.add_argument("--batch", type=int, default=64, help="concurrent games per batch")
    p.add_argument("--workers", type=int, default=2, help="Ray tasks at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ray", action="store_true", help="play in this process")
    p.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="AGENT=ELO",
        help="adaptive mode: an anchor agent and its fixed rating (repeatable)",
    )
    p.add_argument(
        "--target-width", type=float, help="adaptive mode: play until every 90%% interval is this"
    )
    p.add_argument("--max-rounds", type=int, default=10, help="adaptive mode: at most this many")
    p.add_argument(
        "--neighbours", type=int, default=2, help="adaptive mode: nearest agents each plays"
    )
    p.set_defaults(func=_arena)


def _arena(a: argparse.Namespace) -> int:
    from jobs.entry import executor
    from mcts.agents import parse_agent
    from mcts.arena import ArenaConfig, run_tournament
    from mcts.openings import eco_openings, openings_from_split
    from mcts.scheduler import ScheduleConfig, round_robin, run_active

    agents = [parse_agent(s).resolve() for s in a.agent]
    if a.openings == "eco":
        openings = eco_openings(a.opening_count)
    else:
        openings = openings_from_split(
            Path(a.openings), plies=a.opening_plies, count=a.opening_count, seed=a.seed
        )
    cfg = ArenaConfig(move_cap=a.move_cap, batch=a.batch, workers=a.workers, seed=a.seed)
    if a.target_width is None:
        if a.anchor:
            raise ValueError("--anchor needs --target-width (adaptive mode)")
        report = run_tournament(
            round_robin(agents, openings, a.games_per_pair), a.out, cfg, executor(a.no_ray)
        )
        print(f"played {report.played}, already in {a.out}: {report.skipped}")
        return 0
    anchors, elos = [], {}
    for item in a.anchor:
        spec, eq, elo = item.rpartition("=")
        if not eq:
            raise ValueError(f"--anchor takes AGENT=ELO, got {item!r}")
        agent = parse_agent(spec).resolve()
        anchors.append(agent)
        elos[agent.name] = float(elo)
    reports = run_active(
        agents,
        anchors,
        openings,
        a.out,
        cfg,
        ScheduleConfig(
            target_width=a.target_width,
            max_rounds=a.max_rounds,
            neighbours=a.neighbours,
            games_per_pair=a.games_per_pair,
        ),
        executor(a.no_ray),
        anchor_elos=elos,
    )
    print(f"rounds {len(reports)}, games played {sum(r.played for r in reports)}")
    return 0
