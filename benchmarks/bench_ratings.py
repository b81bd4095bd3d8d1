"""Rating fit on ONE core: 1,000 players and 1,000,000 games, both models, Hessian intervals.

The games are simulated (seeded) from the BayesElo model between random pairs of players whose
true ratings are drawn from N(0, 300); colours are random. In this process pinned to core 0,
--repeat times each, in alternation:

- ``aggregate`` (baseline): ``pair_table`` alone, the one pass over all games that any fit needs;
- ``ordo``: ``fit_ratings(games, "ordo")`` (aggregation, Newton, 90 % Hessian intervals);
- ``bayeselo``: ``fit_ratings(games, "bayeselo", scale=False)``, same work plus virtual draws.

Reported: median seconds and the individual runs, the ratio to the 5 s target, the ratio to the
aggregation baseline, and the RMS error of the BayesElo fit against the true ratings (a check
that the timed fit is a real one).

Target: each model's fit <= 5 s.

Run:  .venv/bin/python benchmarks/bench_ratings.py               (about 30 s)
      .venv/bin/python benchmarks/bench_ratings.py --players 1000 --games 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import _common as c
import numpy as np

from analysis.rating_io import Games, pair_table
from analysis.rating_models import make_model
from analysis.ratings import fit_ratings

TARGET_S = 5.0


def simulate(players: int, games: int, seed: int) -> tuple[Games, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 300.0, players)
    truth -= truth.mean()
    white = rng.integers(0, players, games)
    black = (white + rng.integers(1, players, games)) % players
    model = make_model("bayeselo")
    score = model.simulate(truth[white] - truth[black], model.initial_params(), rng)
    names = tuple(f"player{i:04d}" for i in range(players))
    return Games(names, white.astype(np.int32), black.astype(np.int32), score), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--players", type=int, default=1000)
    ap.add_argument("--games", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    pinned = c.pin_to_core(0)
    print(c.machine())
    print(f"pinned to core 0: {pinned}; {args.players} players, {args.games:,} games")
    games, truth = simulate(args.players, args.games, args.seed)
    print(f"pair-table rows: {len(pair_table(games).wins):,}")

    cases: dict[str, Callable[[], object]] = {
        "aggregate (baseline)": lambda: pair_table(games),
        "ordo": lambda: fit_ratings(games, "ordo"),
        "bayeselo": lambda: fit_ratings(games, "bayeselo", scale=False),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    busy = []
    for _ in range(args.repeat):
        busy.append(c.wait_quiet())
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)

    fit = fit_ratings(games, "bayeselo", scale=False)
    rms = float(np.sqrt(np.mean((fit.rating - truth) ** 2)))
    base = c.median(times["aggregate (baseline)"])
    rows = []
    for name, ts in times.items():
        med = c.median(ts)
        rows.append([name, med, c.runs(ts), med / TARGET_S, med / base])
    print(c.table(["case", "median s", "runs s", "x 5 s target", "x baseline"], rows))
    print(
        f"BayesElo fit vs truth: RMS error {rms:.2f} Elo; "
        f"others' CPU load before runs: {c.runs(busy)}"
    )


if __name__ == "__main__":
    main()
