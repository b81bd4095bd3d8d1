"""Training step fed by the real grain loader vs the same step on batches held in memory (CPU).

Target (issue 3): the loader costs at most 5% of step time. Both arms run the same compiled,
donated train step of ``scaling.train`` on shards built from the 2021-10 slice; they alternate
within each repeat and the ratio of medians is quoted.

    .venv/bin/python benchmarks/bench_train_loader.py [--sizes 10k,1m] [--batch 256] [--steps 20]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from _common import SLICE_2021, library_version, machine, median, require, runs, scratch_dir, table
from jax.sharding import Mesh

from data_pipeline.build import BuildConfig, build
from data_pipeline.filters import FilterConfig
from data_pipeline.loader import LoaderConfig, dataset
from scaling.batch import BatchSpec, supervised_batch
from scaling.config import TrainConfig
from scaling.model import NAMED_SIZES, init_params
from scaling.step import TrainState, TrainStep, make_train_step


def _time_steps(
    fns: TrainStep, state: TrainState, batches: Iterator[dict[str, np.ndarray]], steps: int
) -> tuple[TrainState, float]:
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = fns.train_step(state, fns.put(supervised_batch(next(batches))))
    jax.block_until_ready(metrics)
    return state, (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10k,1m")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="grain worker processes")
    a = p.parse_args()
    print(machine(), library_version())
    rows = []
    with scratch_dir() as tmp:
        data = Path(tmp) / "shards"
        build([str(require(SLICE_2021))], data, BuildConfig(filters=FilterConfig()), use_ray=False)
        for size in a.sizes.split(","):
            cfg = TrainConfig(
                data_dir=str(data),
                out_dir=str(tmp),
                model=NAMED_SIZES[size],
                batch_size=a.batch,
                steps=1000,
            )
            fns = make_train_step(
                cfg.model,
                cfg.optim,
                total_steps=1000,
                spec=BatchSpec(batch_size=a.batch),
                mesh=Mesh(np.array(jax.devices()), ("data",)),
                dtype="float32",
            )
            state = fns.init(init_params(cfg.model, jax.random.PRNGKey(0)), jax.random.PRNGKey(0))
            loader_cfg = LoaderConfig(batch_size=a.batch, worker_count=a.workers)
            loader = iter(dataset(data, "train", loader_cfg))
            held = itertools.cycle([next(loader) for _ in range(8)])
            start = time.perf_counter()  # the loader alone: batches drawn, nothing computed
            for _ in range(200):
                next(loader)
            alone = (time.perf_counter() - start) / 200
            print(f"{size}: the loader alone, {alone * 1e3:.3f} ms per batch of {a.batch}")
            state, _ = _time_steps(fns, state, held, 3)  # warm-up
            with_loader, in_memory = [], []
            for _ in range(a.repeat):
                state, t = _time_steps(fns, state, loader, a.steps)
                with_loader.append(t)
                state, t = _time_steps(fns, state, held, a.steps)
                in_memory.append(t)
            cost = median(with_loader) / median(in_memory) - 1
            verdict = "met" if cost <= 0.05 else "MISSED"
            loader_runs = runs([x * 1e3 for x in with_loader], 1)
            rows.append(
                [
                    size,
                    a.batch,
                    f"{median(in_memory) * 1e3:.1f}",
                    f"{median(with_loader) * 1e3:.1f}",
                    f"{cost:+.1%}",
                    verdict,
                    loader_runs,
                ]
            )
    print(
        table(
            [
                "size",
                "batch",
                "in-memory ms/step",
                "loader ms/step",
                "loader cost",
                "target <= 5%",
                "loader runs (ms)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
