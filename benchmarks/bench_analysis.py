"""Analysis of a large study without bootstrap: load the registry, the frontier, every fit.

Target (issue 6): 10,000 checkpoints in at most 10 s. A synthetic registry is written to disk
(``registry/checkpoints.csv`` and ``ratings/ratings.csv``): 4 caps x 10 sizes x 5 budgets of
supervised runs with 30 checkpoints each, 5 self-play runs per cap and 20 from scratch with 100
checkpoints each, scaled to the requested count. Timed per repeat: ``load_study`` (CSV reading,
validation, join), ``frontier`` (every group's frontier) and ``analyze`` (its own frontier, the
linear, change-point and sigmoid fits of every group, the switch comparisons, self-play from the
cap vs scratch, the compute-optimal size). Baseline in the same run: bare ``pandas.read_csv`` of
the two files and a merge.

    .venv/bin/python benchmarks/bench_analysis.py [--checkpoints 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine, median, runs, scratch_dir, table, wait_quiet

from analysis.compare import analyze
from analysis.frontier import frontier
from analysis.registry import load_study, write_checkpoints, write_ratings

CAPS = (1000, 1300, 1500, 1800)


def synthetic_registry(root: Path, n: int, seed: int = 0) -> int:
    """Writes a study of about ``n`` checkpoints into ``root``; returns the exact count."""
    rng = np.random.default_rng(seed)
    scale = n / 10_000
    per_sup, per_sp = max(2, round(30 * scale)), max(2, round(100 * scale))
    rows: list[list[object]] = []
    elo: list[float] = []
    for cap in CAPS:
        for j in range(10):
            log_n = 4.0 + 0.3 * j
            for k in range(5):
                run = f"sup-{cap}-{j}-{k}"
                x = np.linspace(10.0 + 0.5 * j, 12.0 + 0.5 * j + 0.5 * k, per_sup)
                truth = np.minimum(cap + 100, 300 * (x - 10) - 40 * (log_n - 0.4 * x + 0.5) ** 2)
                for i, xi in enumerate(x):
                    rows.append(
                        [
                            f"{run}@{i}",
                            run,
                            "supervised",
                            cap,
                            f"s{j}",
                            int(10**log_n),
                            i,
                            10**xi,
                            "",
                        ]
                    )
                elo.extend(truth)
        for k in range(5):
            run = f"sp-{cap}-{k}"
            x = np.linspace(15.0 + 0.01, 17.0 + 0.2 * k, per_sp)
            for i, xi in enumerate(x):
                rows.append(
                    [
                        f"{run}@{i}",
                        run,
                        "selfplay_cap",
                        cap,
                        "s9",
                        int(10**6.7),
                        i,
                        10**xi,
                        f"sup-{cap}-9-4@0",
                    ]
                )
            elo.extend(cap + 100 + 150 * (x - 15.0))
    for k in range(20):
        run = f"scr-{k}"
        x = np.linspace(12.0, 17.0, per_sp)
        for i, xi in enumerate(x):
            rows.append(
                [f"{run}@{i}", run, "selfplay_scratch", "", f"s{k % 10}", 10**6, i, 10**xi, ""]
            )
        elo.extend(200 * (x - 12.0))
    columns = ["agent", "run_id", "regime", "cap", "size", "params", "step", "flops", "parent"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(1, "checkpoint", frame["agent"])
    frame.insert(2, "sims", 0)
    write_checkpoints(root, frame)
    se = rng.uniform(15, 40, len(frame))
    rating = np.asarray(elo) + se * rng.standard_normal(len(frame))
    ratings = pd.DataFrame(
        {
            "name": frame["agent"],
            "rating": rating,
            "lower": rating - 1.645 * se,
            "upper": rating + 1.645 * se,
            "games": 100,
            "score": 0.5,
        }
    )
    write_ratings(root, ratings)
    return len(frame)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoints", default="1000,10000", help="comma-separated study sizes")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    print(machine())
    print(f"others' CPU load before the run: {wait_quiet():.0%} of all cores")
    rows = []
    with scratch_dir() as tmp:
        for n in (int(v) for v in a.checkpoints.split(",")):
            root = tmp / f"study-{n}"
            count = synthetic_registry(root, n)
            base, load, front, fits, total = [], [], [], [], []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                c = pd.read_csv(root / "registry" / "checkpoints.csv")
                r = pd.read_csv(root / "ratings" / "ratings.csv")
                c.merge(r, left_on="agent", right_on="name", how="left")
                t1 = time.perf_counter()
                study = load_study(root)
                t2 = time.perf_counter()
                frontier(study)
                t3 = time.perf_counter()
                result = analyze(study)
                t4 = time.perf_counter()
                base.append(t1 - t0)
                load.append(t2 - t1)
                front.append(t3 - t2)
                fits.append(t4 - t3)
                total.append(t2 - t1 + t4 - t3)  # load + analyze (which finds the frontier)
            assert len(result.switch) == 3 * len(CAPS) and len(result.selfplay) == len(CAPS)
            verdict = "met" if median(total) <= 10.0 or count < 10_000 else "MISSED"
            rows.append(
                [
                    count,
                    f"{median(base) * 1e3:.0f}",
                    f"{median(load) * 1e3:.0f}",
                    f"{median(front) * 1e3:.0f}",
                    f"{median(fits) * 1e3:.0f}",
                    f"{median(total):.2f}",
                    f"{median(total) / median(base):.0f}x",
                    verdict if count >= 10_000 else "-",
                    runs(total),
                ]
            )
    print(
        table(
            [
                "checkpoints",
                "read_csv+merge ms",
                "load_study ms",
                "frontier ms",
                "analyze ms",
                "load+analyze s",
                "vs read_csv",
                "target <= 10 s",
                "runs (s)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
