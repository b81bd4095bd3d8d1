"""Run by tests/test_node_loss.py in a process of its own (it owns a two-node Ray cluster):
``python -m tests._node_loss sweep DIR DATA``. Prints one JSON line: what happened."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcts.run_config import SelfPlayRunConfig
    from scaling.sweep import SweepJob


def _kill_when(
    cluster: Any, node: Any, ready: Callable[[], bool], log: list[str]
) -> threading.Thread:
    def watch() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not ready():
            time.sleep(0.2)
        cluster.remove_node(node, allow_graceful=False)
        log.append(f"killed the worker node at {time.strftime('%X')}")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def sweep_job(out: Path, data: Path) -> SweepJob:
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
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    job = sweep_job(out, data)
    runs = [Path(c.out_dir) for c in run_configs(job)]

    def on_worker_started() -> bool:  # both trials are training, one on the doomed node
        return all(any((r / "checkpoints").glob("[0-9]*")) for r in runs)

    log: list[str] = []
    killer = _kill_when(cluster, worker, on_worker_started, log)
    results = run_sweep(job, RayExecutor(), progress=False)
    killer.join(timeout=5)
    hosts = [json.loads((r / "plan.json").read_text())["pid"] for r in runs]
    ray.shutdown()
    cluster.shutdown()
    return {"killed": log, "results": results, "pids": hosts, "runs": [str(r) for r in runs]}


def selfplay_cfg(out: Path, **kw: Any) -> SelfPlayRunConfig:
    import dataclasses

    from mcts.loop import SelfPlayRunConfig
    from mcts.search import SearchConfig
    from scaling.model import NAMED_SIZES

    base = SelfPlayRunConfig(
        out_dir=str(out),
        model=NAMED_SIZES["10k"],
        search=SearchConfig(num_simulations=4),
        games=4,
        max_plies=16,
        train_batch=16,
        budget_flops=3e9,
        milestones=3,
    )
    return dataclasses.replace(base, **kw)


def selfplay(out: Path, _: Path) -> dict[str, object]:
    """A Ray-mode self-play run whose actor's node dies: the head holds no CPU, three worker
    nodes one each (the learner, the self-play actor, a spare); when two iterations are done
    the node running the self-play actor is removed, the actor is restarted on the spare and
    the run spends its whole budget."""
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors

    from mcts.loop import run_selfplay

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(3)]
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    cfg = selfplay_cfg(out, actors=1, max_actor_failures=2)
    log: list[str] = []

    def iterations() -> int:
        path = out / "metrics.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def kill_the_actor_s_node() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and iterations() < 2:
            time.sleep(0.2)
        alive = [a for a in list_actors() if a.class_name == "SelfPlayActor" and a.state == "ALIVE"]
        node = next(w for w in workers if w.node_id == alive[0].node_id)
        cluster.remove_node(node, allow_graceful=False)
        log.append(f"killed the self-play actor's node after {iterations()} iterations")

    killer = threading.Thread(target=kill_the_actor_s_node, daemon=True)
    killer.start()
    result = run_selfplay(cfg, progress=False)
    killer.join(timeout=5)
    ray.shutdown()
    cluster.shutdown()
    return {"killed": log, "result": result}


if __name__ == "__main__":
    what, out, data = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print(json.dumps({"sweep": sweep, "selfplay": selfplay}[what](out, data), default=str))
