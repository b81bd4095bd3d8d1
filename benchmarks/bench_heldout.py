"""What checkpoints know of held-out games: policy and value metrics on a build's val split.

A probe apart from the arena: the positions of a data build's (or cap view's) validation split,
the same fixed batches for every checkpoint, scored by the train step's own eval (policy
cross-entropy and accuracy against the move played, value cross-entropy and accuracy against
the game's result). BENCHMARKS.md 13g read self-play continuations with it: a run that forgets
the capped games shows it here first (its value accuracy fell from 0.54 to 0.14).

    .venv/bin/python benchmarks/bench_heldout.py DATA_DIR RUN[@STEP] [RUN[@STEP] ...]
        [--batches 16] [--batch-size 256]

A RUN without @STEP is every kept checkpoint of the run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from _common import machine, table

from data_pipeline import loader
from mcts.agents import load_network
from scaling.batch import BatchSpec, supervised_batch
from scaling.checkpoints import list_checkpoints
from scaling.config import OptimConfig
from scaling.step import make_train_step

KEYS = ("policy_loss", "policy_acc", "policy_acc_legal", "value_loss", "value_acc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="a data build (or cap view) with a val split")
    ap.add_argument("nets", nargs="+", help="RUN_DIR[@STEP]")
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    from absl import logging as absl_logging  # orbax's read-only notices: noise here

    absl_logging.set_verbosity(absl_logging.ERROR)
    print(machine())
    it = iter(loader.dataset(args.data, "val", loader.LoaderConfig(batch_size=args.batch_size)))
    batches = [supervised_batch(next(it)) for _ in range(args.batches)]
    print(f"{args.data}: {args.batches} x {args.batch_size} val positions")
    rows, fns = [], {}
    for spec in args.nets:
        run, _, at = spec.partition("@")
        steps = [int(at)] if at else [int(c["step"]) for c in list_checkpoints(Path(run))]
        for step in steps:
            t0 = time.perf_counter()
            model, params, meta, _ = load_network(Path(run), step)
            key = repr(model)
            if key not in fns:  # one compiled eval per model shape
                spec_ = BatchSpec(batch_size=args.batch_size, policy_slots=1)
                fns[key] = make_train_step(model, OptimConfig(), total_steps=1, spec=spec_)
            f = fns[key]
            out = [jax.device_get(f.eval_step(params, f.put(b))) for b in batches]
            m = {k: float(np.mean([o[k] for o in out])) for k in KEYS}
            rows.append(
                [f"{Path(run).name}@{step}", f"{meta['flops']:.2e}"]
                + [f"{m[k]:.3f}" for k in KEYS]
                + [f"{time.perf_counter() - t0:.1f}"]
            )
            print(table(["checkpoint", "FLOPs", *KEYS, "s"], rows[-1:]), flush=True)
    print()
    print(table(["checkpoint", "FLOPs", *KEYS, "s"], rows))


if __name__ == "__main__":
    main()
