"""Continuous self-play against lockstep batches (issue 14, item 4): searches per stored
position and stored positions per second, in the same run.

Both arms play the self-play run defaults' games (``SelfPlayRunConfig``: rules' ends under a
512-ply cap, resignation at -0.9 with 10% played out, Gumbel noise throughout) with one network
(a randomly initialised ``--size`` model, the start of a run from scratch) at ``--sims``
simulations and ``--games`` slots:

- lockstep: one jitted ``mcts.selfplay.play_games`` call, every slot searching until the
  batch's longest game ends; stored positions = the games' lengths;
- continuous: ``mcts.stream.Stream`` calls of ``--plies`` plies after ``--warmup`` calls (so
  the slots hold games of every age, as in a long run); stored positions = the rows of the games
  that finished in the timed calls.

Searches per stored position is exact (it does not depend on the machine's load); positions/s
are medians over ``--repeat`` alternating repeats, with the load of other processes.

    .venv/bin/python benchmarks/bench_stream.py [--size 10k] [--sims 16] [--games 32]
        [--plies 128] [--calls 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from _common import Background, loads, machine, median, runs, table

from mcts.run_config import SelfPlayRunConfig, selfplay_config
from mcts.search import SearchConfig
from mcts.selfplay import play_games
from mcts.stream import Stream
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="10k")
    ap.add_argument("--sims", type=int, default=16)
    ap.add_argument("--games", type=int, default=32)
    ap.add_argument("--plies", type=int, default=128, help="plies per continuous call")
    ap.add_argument("--warmup", type=int, default=4, help="continuous calls before timing")
    ap.add_argument("--calls", type=int, default=4, help="timed continuous calls per repeat")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    run = SelfPlayRunConfig(
        out_dir="unused",
        search=SearchConfig(kind="gumbel", num_simulations=args.sims),
        games=args.games,
    )
    sp = selfplay_config(run)
    model = NAMED_SIZES[args.size]
    net = PolicyValueNet(model)
    params = init_params(model, jax.random.key(0))
    batch = jax.jit(lambda p, k: play_games(net, p, k, sp))
    stream = Stream(net, sp, args.plies, jax.random.key(1))
    keys = iter(jax.random.split(jax.random.key(2), 10_000))

    jax.block_until_ready(batch(params, next(keys)))  # compile
    for _ in range(args.warmup):
        stream.play(params, next(keys))

    rows: dict[str, list[tuple[float, int, int, Background]]] = {"lockstep": [], "continuous": []}
    for _ in range(args.repeat):
        with Background() as bg:
            t0 = time.perf_counter()
            traj = jax.device_get(batch(params, next(keys)))
            s = time.perf_counter() - t0
        rows["lockstep"].append(
            (s, int(traj.plies_run) * sp.batch_size, int(traj.length.sum()), bg)
        )
        with Background() as bg:
            t0, searched, stored = time.perf_counter(), 0, 0
            for _ in range(args.calls):
                games, _ = stream.play(params, next(keys))
                searched += args.plies * sp.batch_size
                stored += int(np.asarray(games.length).sum())
            s = time.perf_counter() - t0
        rows["continuous"].append((s, searched, stored, bg))

    out = []
    rate = {}
    for arm, rs in rows.items():
        searched, stored = sum(r[1] for r in rs), sum(r[2] for r in rs)
        per_s = [r[2] / r[0] for r in rs]
        rate[arm] = median(per_s)
        out.append(
            [
                arm,
                searched,
                stored,
                f"{searched / stored:.2f}",
                f"{rate[arm]:.0f}",
                runs(per_s, 0),
                loads([r[3] for r in rs]),
            ]
        )
    print(machine())
    print(
        f"{args.size}, Gumbel {args.sims} simulations, {args.games} slots, cap {sp.max_plies}, "
        f"continuous calls of {args.plies} plies ({args.warmup} warm-up), {args.repeat} repeats"
    )
    print(
        table(
            [
                "arm",
                "searched",
                "stored",
                "searched/stored",
                "stored/s (median)",
                "runs",
                "others' load",
            ],
            out,
        )
    )
    print(
        "continuous / lockstep, stored positions per second: "
        f"{rate['continuous'] / rate['lockstep']:.2f}x"
    )


if __name__ == "__main__":
    main()
