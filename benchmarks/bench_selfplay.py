"""Search and self-play throughput on the device (issue 5): simulations/s and self-play
positions/s, against a plain PUCT search over python-chess boards in the same run.

For each (size, batch B, simulations S), on the same B positions (random 8-ply openings):

- ours: one jitted ``mcts.search.search`` call over B games (pgx rules + mctx, ``--kind``);
- baseline: ``puct_baseline.run_search`` (python-chess trees, one batched network call per
  simulation, the same jitted network);
- self-play: one jitted ``play_games`` call of ``--plies`` plies from those positions.

Simulations/s = B * S / seconds per search (the root evaluation of each game is not counted in
either arm). The arms alternate within each repeat; medians are quoted with the repeats and the
CPU load that other processes put on the machine meanwhile (2 shared cores here). Tree memory
is mctx's tree per game per simulation (one node each), from the compiled shapes.

    .venv/bin/python benchmarks/bench_selfplay.py --quick     # B=64, S=32
    .venv/bin/python benchmarks/bench_selfplay.py [--sizes 1m] [--batches 64,256,1024]
        [--sims 32,128] [--kind alphazero] [--plies 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Callable
from typing import Any

import chess
import jax
import jax.numpy as jnp
import numpy as np
from _common import Background, loads, machine, median, runs, table, wait_quiet
from puct_baseline import run_search

from mcts.env import from_boards
from mcts.search import SearchConfig, evaluate, search, tree_memory
from mcts.selfplay import SelfPlayConfig, play_games
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params, param_count


def openings(n: int, plies: int = 8, seed: int = 0) -> list[chess.Board]:
    """``n`` positions after ``plies`` random legal moves (seeded; games that end are redrawn)."""
    rng = random.Random(seed)
    boards: list[chess.Board] = []
    while len(boards) < n:
        board = chess.Board()
        for _ in range(plies):
            board.push(rng.choice(list(board.legal_moves)))
        if not board.is_game_over():
            boards.append(board)
    return boards


def timed(fn: Callable[[], Any]) -> tuple[float, Background, Any]:
    """Seconds of one call (results ready), the others' load meanwhile, and the result."""
    with Background() as bg:
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        seconds = time.perf_counter() - start
    return seconds, bg, out


def bench(size: str, batch: int, sims: int, a: argparse.Namespace) -> list[object]:
    model = NAMED_SIZES[size]
    net = PolicyValueNet(model)
    params = init_params(model, jax.random.key(0))
    cfg = SearchConfig(kind=a.kind, num_simulations=sims)
    boards = openings(batch)
    states = from_boards(boards)
    key = jax.random.key(1)

    t0 = time.perf_counter()
    ours = jax.jit(lambda p, s, k: search(net, p, s, k, cfg)).lower(params, states, key).compile()
    play_cfg = SelfPlayConfig(batch_size=batch, max_plies=a.plies, search=cfg)
    play = (
        jax.jit(lambda p, k, s: play_games(net, p, k, play_cfg, s))
        .lower(params, key, states)
        .compile()
    )
    net_fn = jax.jit(lambda p, o: evaluate(net, p, o))
    jax.block_until_ready(net_fn(params, jnp.zeros((batch, 67), jnp.uint8)))
    compile_s = time.perf_counter() - t0

    def baseline_eval(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, value = net_fn(params, jnp.asarray(obs))
        return np.asarray(logits), np.asarray(value)

    mem = tree_memory(net, cfg, batch)
    busy = wait_quiet()
    ours_s, base_s, bgs = [], [], []
    for r in range(a.repeat):
        s, bg, _ = timed(functools.partial(ours, params, states, jax.random.key(r)))
        ours_s.append(s)
        bgs.append(bg)
        s, bg, _ = timed(functools.partial(run_search, baseline_eval, boards, sims))
        base_s.append(s)
        bgs.append(bg)
    play_s, play_bg, traj = timed(functools.partial(play, params, key, states))
    positions = int(np.asarray(traj.valid).sum())
    work = batch * sims
    ours_rate, base_rate = work / median(ours_s), work / median(base_s)
    return [
        f"{size} ({param_count(model) / 1e6:.2f}M)",
        batch,
        sims,
        ours_rate,
        base_rate,
        f"{ours_rate / base_rate:.2f}x",
        positions / play_s,
        f"{mem.bytes_per_node:,.0f}",
        f"{compile_s:.0f}",
        f"{runs(ours_s, 1)} | {runs(base_s, 1)}",
        f"{busy:.2f} / {loads([*bgs, play_bg])}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1m")
    p.add_argument("--batches", default="64,256,1024")
    p.add_argument("--sims", default="32,128")
    p.add_argument("--kind", default="alphazero", help="search variant (the baseline is PUCT)")
    p.add_argument("--plies", type=int, default=4, help="self-play plies timed per config")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="only B=64 with 32 simulations")
    a = p.parse_args()
    if a.quick:
        a.batches, a.sims = "64", "32"
    print(machine(), "| jax", jax.__version__, jax.devices()[0].platform)
    rows = []
    for size in a.sizes.split(","):
        for batch in (int(x) for x in a.batches.split(",")):
            for sims in (int(x) for x in a.sims.split(",")):
                rows.append(bench(size, batch, sims, a))
                print(rows[-1], flush=True)
    print(
        table(
            [
                "net",
                "B",
                "sims",
                "ours sims/s",
                "baseline sims/s",
                "ours/baseline",
                "self-play positions/s",
                "tree bytes/game/sim",
                "compile s",
                "runs s (ours | baseline)",
                "busy before / others' load",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
