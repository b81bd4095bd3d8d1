"""Self-play from a random initialisation against the random agent: does Elo rise with compute?

A self-play run from a random initialisation (the study's control regime; by default
``jobs/selfplay/scratch-10k.toml``) spends its FLOP budget on CPU (wall time reported); then the
arena plays, from ECO openings with colours alternated, the random agent against the run's
starting network (step 0, the parameters the run starts from) and against its checkpoints
(``--all-milestones``: every kept one, at added FLOPs doubling up to the budget, each also
against the previous one; otherwise the last), each network as the raw policy (N = 0, argmax)
and with search (N > 0, contract 3). Ratings: one Ordo-compatible fit over all those games,
random = 0, 90% Hessian intervals; and each agent's score against random with a 90% normal
interval. The game-end table (checkmates, rule draws, resignations, false resignations, games at
the cap) is summed from the run's metrics.jsonl.

    .venv/bin/python benchmarks/bench_selfplay_strength.py [--config TOML] [--budget FLOPS]
        [--eval-games 64] [--eval-sims 0,16] [--move-cap 300] [--workdir DIR]
        [--all-milestones] [--seed S]

The run is deterministic on CPU for a given config (its FLOP budget, not the wall time, ends
it); a second call with the same --workdir reuses the run and the games already played.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
from _common import machine, run_in_scratch, table

from analysis.rating_io import Games, read_pgn_results
from analysis.ratings import fit_ratings
from elocap.execution import InlineExecutor
from mcts.agents import AgentSpec, NetworkAgent, RandomAgent, agent_flops
from mcts.arena import ArenaConfig, run_tournament
from mcts.loop import SelfPlayRunConfig, run_selfplay, save_start
from mcts.openings import eco_openings
from mcts.scheduler import pairing_games
from scaling.checkpoints import list_checkpoints
from scaling.config import load_toml, to_dict


def score_interval(points: float, games: int, z: float = 1.645) -> tuple[float, float, float]:
    """Score fraction and its 90% normal-approximation interval."""
    p = points / games
    half = z * math.sqrt(max(p * (1 - p), 1e-12) / games)
    return p, max(0.0, p - half), min(1.0, p + half)


def record(games: Games, player: int, against: int) -> tuple[int, int, int]:
    """Wins, draws and losses of ``player`` in its games against ``against``."""
    mine = ((games.white == player) & (games.black == against)) | (
        (games.black == player) & (games.white == against)
    )
    own = np.where(games.white[mine] == player, games.score[mine], 1 - games.score[mine])
    return int((own == 1).sum()), int((own == 0.5).sum()), int((own == 0).sum())


ENDS = (
    "games",
    "checkmates",
    "rule_draws",
    "repetitions",
    "resignations",
    "no_resign",
    "would_resign",
    "false_resignations",
    "at_cap",
)


def game_end_table(run: Path) -> str:
    """How the run's self-play games ended, summed over iterations (first half / second half /
    all), from its metrics.jsonl."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    half = len(rows) // 2
    out = []
    for name, part in (("first half", rows[:half]), ("second half", rows[half:]), ("all", rows)):
        sums = [sum(int(r.get(k, 0)) for r in part) for k in ENDS]
        would, false = sums[ENDS.index("would_resign")], sums[ENDS.index("false_resignations")]
        rate = f"{false / would:.1%}" if would else "n/a"
        done = [(r["game_length"], r["games"]) for r in part if r.get("game_length") is not None]
        games = sum(n for _, n in done)  # continuous self-play: iterations may finish no game
        length = sum(x * n for x, n in done) / games if games else float("nan")
        out.append([name, str(len(part)), *map(str, sums), rate, f"{length:.0f}"])
    head = ["iterations", "n", *ENDS, "false resign rate", "mean plies"]
    return "\n### Self-play game ends\n\n" + table(head, out)


def main(root: Path) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=Path("jobs/selfplay/scratch-10k.toml"))
    ap.add_argument("--budget", type=float, default=None, help="FLOPs (default: the config's)")
    ap.add_argument("--eval-games", type=int, default=64)
    ap.add_argument("--eval-sims", default="0,16")
    ap.add_argument("--move-cap", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--all-milestones", action="store_true")
    ap.add_argument("--seed", type=int, default=None, help="the run's seed (default: config's)")
    args = ap.parse_args()
    root = args.workdir or root
    cfg = dataclasses.replace(
        load_toml(SelfPlayRunConfig, args.config), out_dir=str(root / "scratch")
    )
    if cfg.init_run:
        raise SystemExit(
            f"{args.config} continues {cfg.init_run}: this benchmark starts from scratch"
        )
    if args.budget:
        cfg = dataclasses.replace(cfg, budget_flops=args.budget)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    print(f"{machine()}\nself-play config: {json.dumps(to_dict(cfg), default=str)}")
    t0 = time.perf_counter()
    result = run_selfplay(cfg, progress=False)
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"self-play: {result['flops']:.3g} FLOPs, {result['iterations']} iterations, "
        f"{result['steps']} learner steps, {result['generated']} positions in {minutes:.1f} min"
        " (0 if the run already existed)"
    )
    start_run = save_start(cfg, root / "start")
    print(game_end_table(Path(cfg.out_dir)))
    steps: list[int | None] = [None]
    if args.all_milestones:
        steps = [int(c["step"]) for c in list_checkpoints(Path(cfg.out_dir))]
    agents: list[AgentSpec] = [RandomAgent()]
    openings = eco_openings()
    jobs = []
    for n in [int(x) for x in args.eval_sims.split(",")]:
        line: list[AgentSpec] = [NetworkAgent(run=str(start_run), sims=n)]
        line += [NetworkAgent(run=cfg.out_dir, step=s, sims=n) for s in steps]
        for i, agent in enumerate(line):
            jobs += pairing_games(agents[0], agent, openings, args.eval_games)
            if i:  # and the previous point of the curve: one connected pool
                jobs += pairing_games(line[i - 1], agent, openings, args.eval_games // 2)
        agents += line
    log = root / "arena.pgn"
    arena = ArenaConfig(move_cap=args.move_cap, batch=args.eval_games, seed=cfg.seed)
    t1 = time.perf_counter()
    report = run_tournament(jobs, log, arena, InlineExecutor(), progress=False)
    print(f"arena: {report.played} games played in {(time.perf_counter() - t1) / 60:.1f} min")
    games, rejected = read_pgn_results([log])
    if rejected:
        raise SystemExit(f"unreadable arena games: {rejected}")
    ratings = fit_ratings(games, "ordo", anchors={"random": 0.0})
    by_name = {n: i for i, n in enumerate(ratings.names)}
    rows = []
    for agent in agents[1:]:
        i = by_name[agent.name]
        wins, draws, losses = record(games, i, by_name[agents[0].name])
        n, points = wins + draws + losses, wins + draws / 2
        p, lo, hi = score_interval(points, n)
        rows.append(
            [
                agent.name,
                f"{agent_flops(agent):.3g}",
                f"+{wins} ={draws} -{losses}",
                f"{points:g}/{n} = {p:.2f} [{lo:.2f}, {hi:.2f}]",
                f"{ratings.rating[i]:+.0f} [{ratings.lower[i]:+.0f}, {ratings.upper[i]:+.0f}]",
            ]
        )
    print(
        f"\n### Against the random agent ({args.eval_games} games each, move cap {args.move_cap});"
        " Elo from all the pool's games\n"
    )
    head = ["agent", "FLOPs", "W D L vs random", "score vs random [90%]", "Elo, random = 0 [90%]"]
    print(table(head, rows))


if __name__ == "__main__":
    run_in_scratch(main)
