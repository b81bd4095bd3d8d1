"""Run by tests/test_node_loss.py in a process of its own (it owns a two-node Ray cluster):
``python -m tests._node_loss sweep DIR DATA``. Prints one JSON line: what happened."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def _kill_when(cluster: object, node: object, ready: object, log: list[str]) -> threading.Thread:
    def watch() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not ready():  # type: ignore[operator]
            time.sleep(0.2)
        cluster.remove_node(node, allow_graceful=False)  # type: ignore[attr-defined]
        log.append(f"killed the worker node at {time.strftime('%X')}")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def sweep_job(out: Path, data: Path) -> object:
    from scaling.sweep import SweepJob

    return SweepJob(
        sizes=("10k",),
        budgets=(2e10, 2.1e10),
        batch_size=32,
        milestones=3,
        checkpoint_every=5,
        eval_batches=1,
        max_retries=3,
        out_dir=str(out),
        data_dirs={"2000": str(data)},
    )


def sweep(out: Path, data: Path) -> dict[str, object]:
    import ray
    from ray.cluster_utils import Cluster

    from elocap.execution import RayExecutor
    from scaling.sweep import run_configs, run_sweep

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1, resources={"doomed": 1})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    job = sweep_job(out, data)
    runs = [Path(c.out_dir) for c in run_configs(job)]  # type: ignore[arg-type]

    def on_worker_started() -> bool:  # both trials are training, one on the doomed node
        return all(any((r / "checkpoints").glob("[0-9]*")) for r in runs)

    log: list[str] = []
    killer = _kill_when(cluster, worker, on_worker_started, log)
    results = run_sweep(job, RayExecutor(), progress=False)  # type: ignore[arg-type]
    killer.join(timeout=5)
    hosts = [json.loads((r / "plan.json").read_text())["pid"] for r in runs]
    ray.shutdown()
    cluster.shutdown()
    return {"killed": log, "results": results, "pids": hosts, "runs": [str(r) for r in runs]}


if __name__ == "__main__":
    what, out, data = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print(json.dumps({"sweep": sweep}[what](out, data)))
