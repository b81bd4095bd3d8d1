"""Arena throughput (issue 4): games per minute.

1. Network vs network at 64 concurrent games: the batched pgx loop on the device (what the arena
   does) against the same games on python-chess boards with the network calls batched (the
   host path the arena uses when an engine takes part), in the same run.
2. Engine games (a network vs Stockfish at UCI_Elo 1350) on a local Ray cluster: 2 workers
   against 1 worker, in the same run.

Networks are freshly initialised and saved as real orbax checkpoints (their strength does not
matter here, only the cost of their moves); games run to the rules or the move cap.

    .venv/bin/python benchmarks/bench_arena.py [--sizes 10k,1m] [--games 64] [--move-cap 200]
        [--engine-games 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import jax
from _common import machine, median, run_in_scratch, runs, table

from elocap.execution import RayExecutor
from mcts.agents import NetworkAgent, StockfishAgent
from mcts.arena import ArenaConfig, GameJob, _play_on_device, _play_on_host, run_tournament
from mcts.games import GameRecord
from mcts.openings import eco_openings
from mcts.scheduler import round_robin
from scaling import checkpoints
from scaling.config import to_dict
from scaling.model import NAMED_SIZES, init_params


def make_run(root: Path, size: str, seed: int) -> Path:
    """A run directory holding one real checkpoint of a freshly initialised network."""
    run = root / f"{size}-seed{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": to_dict(NAMED_SIZES[size])}))
    params = init_params(NAMED_SIZES[size], jax.random.key(seed))
    mgr = checkpoints.manager(run / "checkpoints", [])
    checkpoints.save(mgr, 0, {"params": params}, None, 0.0)
    mgr.close()
    return run


def jobs_between(a: NetworkAgent, b: NetworkAgent, games: int) -> list[GameJob]:
    ops = eco_openings()
    return [
        GameJob(*((a, b) if i % 2 == 0 else (b, a)), ops[(i // 2) % len(ops)], i // 32)
        for i in range(games)
    ]


def timed(
    fn: Callable[[list[GameJob], ArenaConfig], list[GameRecord]],
    jobs: list[GameJob],
    cfg: ArenaConfig,
) -> tuple[float, int]:
    start = time.perf_counter()
    records = fn(jobs, cfg)
    return time.perf_counter() - start, sum(len(r.moves) for r in records)


def bench_networks(tmp: Path, sizes: list[str], games: int, cap: int, repeat: int) -> None:
    cfg = ArenaConfig(move_cap=cap, batch=games)
    rows = []
    for size in sizes:
        a = NetworkAgent(run=str(make_run(tmp, size, 1)), temperature=1.0)
        b = NetworkAgent(run=str(make_run(tmp, size, 2)), temperature=1.0)
        jobs = jobs_between(a, b, games)
        _play_on_device(jobs[:games], cfg)  # compile
        _play_on_host(jobs[:2], cfg)
        dev, host = [], []
        plies = 0
        for r in range(repeat):
            seeded = ArenaConfig(move_cap=cap, batch=games, seed=r)
            t, plies = timed(_play_on_device, jobs, seeded)
            dev.append(games / t * 60)
            t, _ = timed(_play_on_host, jobs, seeded)
            host.append(games / t * 60)
        rows.append(
            [size, games, cap, plies, runs(dev, 0), runs(host, 0), median(dev) / median(host)]
        )
    print(f"\n### Network vs network, {games} concurrent games (games/min)\n")
    print(
        table(
            ["size", "games", "move cap", "plies (last)", "device (pgx)", "host boards", "ratio"],
            rows,
        )
    )


def bench_engines(tmp: Path, games: int, repeat: int) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    net = NetworkAgent(run=str(make_run(tmp, "10k", 3)), temperature=1.0)
    sf = StockfishAgent(elo=1350, movetime_ms=10)
    per_workers: dict[int, list[float]] = {1: [], 2: []}
    for r in range(repeat):
        for workers in (1, 2):
            jobs = round_robin([net, sf], eco_openings(), games)
            log = tmp / f"engine-{r}-{workers}.pgn"
            cfg = ArenaConfig(move_cap=200, batch=8, workers=workers, seed=r)
            report = run_tournament(jobs, log, cfg, RayExecutor(), progress=False)
            per_workers[workers].append(report.played / report.seconds * 60)
    ray.shutdown()
    print(f"\n### Engine games ({net.name} vs {sf.name}), {games} games per run (games/min)\n")
    rows = [[w, runs(v, 1), median(v)] for w, v in per_workers.items()]
    print(table(["Ray workers", "runs", "median"], rows))
    print(f"\n2 workers / 1 worker: {median(per_workers[2]) / median(per_workers[1]):.2f}x")


def main(tmp: Path) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10k,1m")
    p.add_argument("--games", type=int, default=64)
    p.add_argument("--move-cap", type=int, default=200)
    p.add_argument("--engine-games", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    print(f"machine: {machine()}; JAX backend {jax.default_backend()}")
    bench_networks(tmp, a.sizes.split(","), a.games, a.move_cap, a.repeat)
    bench_engines(tmp, a.engine_games, a.repeat)


if __name__ == "__main__":
    run_in_scratch(main)
