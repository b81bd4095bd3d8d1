"""Trial resources as one typed spec: validation, the up-front "no node can run this" check,
placement on a real two-node local Ray cluster whose nodes declare different resources, and a
training trial over two hosts (a gang) that trains what one process trains and resumes in one."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elocap.execution import InlineExecutor, RayExecutor, Resources, unmet_request
from scaling.config import from_dict, load_toml
from scaling.sweep import SweepConfig, SweepJob, check_renamed_keys, load_sweep_config

# ray.nodes() rows as Ray reports them (the fields unmet_request reads), for the pure checks
TPU_HOST = {
    "Alive": True,
    "NodeID": "aaaa1111",
    "NodeManagerAddress": "10.0.0.1",
    "Resources": {"CPU": 8.0, "TPU": 4.0, "memory": 64.0 * 2**30, "TPU-v6e-16-head": 1.0},
}
GPU_HOST = {
    "Alive": True,
    "NodeID": "bbbb2222",
    "NodeManagerAddress": "10.0.0.2",
    "Resources": {"CPU": 16.0, "GPU": 8.0, "memory": 512.0 * 2**30},
}


def test_resources_validate_by_name() -> None:
    pairs: Any = {"spot": 1.0, "a": 2.0}
    r = Resources(num_cpus=8, num_tpus=4, memory_gib=2, resources=pairs)
    assert r.resources == (("a", 2.0), ("spot", 1.0))  # a dict is kept as sorted pairs
    assert r.per_host() == {"CPU": 8.0, "TPU": 4.0, "memory": 2.0 * 2**30, "a": 2.0, "spot": 1.0}
    opts = r.task_options()
    assert opts["resources"] == {"a": 2.0, "spot": 1.0, "TPU": 4.0} and opts["memory"] == 2**31
    assert Resources(num_cpus=2, num_gpus=1, resources=(("x", 1.0),)).per_host() == {
        "CPU": 2.0,
        "GPU": 1.0,
        "x": 1.0,
    }  # the constructor the self-play learner uses
    bad: dict[str, dict[str, Any]] = {
        "num_cpus must be a finite number >= 0": {"num_cpus": -1},
        "num_tpus must be a finite number >= 0": {"num_tpus": float("nan")},
        "'TPU' is Ray's own; set resources.num_tpus": {"resources": (("TPU", 4.0),)},
        "'memory' is Ray's own": {"resources": (("memory", 4.0),)},
        "is not a Ray resource name": {"resources": (("a b", 1.0),)},
        "spot must be a number > 0": {"resources": (("spot", 0.0),)},
        "hosts must be an integer >= 1": {"hosts": 0},
        "hosts > 1 needs something per host": {"hosts": 2, "num_cpus": 0},
        "tpu_slice must be a TPU pod type": {"tpu_slice": "v6e", "num_tpus": 4},
    }
    for message, kwargs in bad.items():
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            Resources(**kwargs)
    whole = Resources(tpu_slice="v6e-16", hosts=4)
    assert whole.head_resource == "TPU-v6e-16-head" and whole.per_host()["TPU"] == 4.0


def test_unmet_request_names_the_request_and_the_nodes() -> None:
    nodes = [TPU_HOST, GPU_HOST]
    assert unmet_request(Resources(num_tpus=4), nodes) is None
    assert unmet_request(Resources(num_gpus=8, num_cpus=16, memory_gib=500), nodes) is None
    assert unmet_request(Resources(num_cpus=4, hosts=2), nodes) is None
    slice_ = Resources(num_tpus=4, hosts=1, tpu_slice="v6e-16")
    assert unmet_request(slice_, nodes) is None
    problem = unmet_request(Resources(num_tpus=8), nodes)
    assert problem is not None
    assert "TPU=8" in problem and "0 node(s) have it, 1 needed" in problem
    assert "10.0.0.1" in problem and "TPU=4" in problem and "GPU=8" in problem  # the nodes
    problem = unmet_request(Resources(num_tpus=4, hosts=2), nodes)
    assert problem is not None and "on each of 2 distinct nodes" in problem
    problem = unmet_request(Resources(num_tpus=4, tpu_slice="v5litepod-16"), nodes)
    assert problem is not None and "no node has TPU-v5litepod-16-head" in problem
    problem = unmet_request(Resources(num_cpus=1), [{**GPU_HOST, "Alive": False}])
    assert problem is not None and "(no alive node)" in problem


def test_sweep_and_arena_resources_load_from_toml(tmp_path: Path) -> None:
    from mcts.arena import ArenaConfig

    toml = tmp_path / "sweep.toml"
    toml.write_text(
        'out_dir = "runs"\ndata_dirs = {"1800" = "d"}\nsizes = ["10k"]\nbudgets = [1e12]\n'
        '[resources]\nnum_cpus = 8\nnum_tpus = 4\nhosts = 4\ntpu_slice = "v6e-16"\n'
        'resources = {"spot" = 1}\n'
    )
    job = load_sweep_config(toml)
    assert job.resources == Resources(
        num_cpus=8.0, num_tpus=4.0, hosts=4, tpu_slice="v6e-16", resources=(("spot", 1.0),)
    )
    arena = from_dict(ArenaConfig, {"resources": {"num_cpus": 2, "num_gpus": 0.25}})
    assert arena.resources == Resources(num_cpus=2.0, num_gpus=0.25)
    # the old keys: an error saying where they went (the sweep file and a study's table)
    toml.write_text('out_dir = "r"\ndata_dirs = {"1" = "d"}\ncpus_per_trial = 8.0\n')
    with pytest.raises(ValueError, match=r"cpus_per_trial -> \[resources\] num_cpus"):
        load_sweep_config(toml)
    with pytest.raises(ValueError, match=r"resources\.TPU.*\[supervised\.resources\]"):
        check_renamed_keys({"resources": {"TPU": 4.0}}, "supervised.")
    toml.write_text("[resources]\nnum_tpus = -4\n")
    with pytest.raises(ValueError, match="num_tpus must be a finite number >= 0"):
        load_toml(SweepConfig, toml)
    with pytest.raises(ValueError, match="needs a Ray cluster"):
        list(InlineExecutor().map_unordered(str, [(1,)], resources=Resources(hosts=2)))


# --- a real two-node Ray cluster on this host ---------------------------------------------------


@pytest.fixture
def two_nodes() -> Iterator[dict[str, str]]:
    """A head node declaring {"TPU": 4} and a worker declaring {"pool_b": 1}, both 2 CPUs; the
    session's embedded cluster (tests.conftest.ray_cluster), if up, is restarted after."""
    import ray
    from ray.cluster_utils import Cluster

    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"TPU": 4}, "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=2, resources={"pool_b": 1})
    ray.init(address=cluster.address, logging_level=logging.ERROR)
    cluster.wait_for_nodes()
    try:
        assert cluster.head_node is not None
        yield {"head": cluster.head_node.node_id, "worker": worker.node_id}
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was_up:
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)


def _where() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _gang_probe() -> dict[str, Any]:
    """One process of a gang: joins jax.distributed from its environment and sums over it."""
    import ray

    from scaling import distributed

    distributed.initialize(timeout_s=60)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = np.arange(4.0 * jax.process_count(), dtype=np.float32)
    x = distributed.put_global(rows, NamedSharding(mesh, P("data")))
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)
    return {
        "rank": jax.process_index(),
        "size": jax.process_count(),
        "node": str(ray.get_runtime_context().get_node_id()),
        "sum": float(total),
        "pid": os.getpid(),
    }


@pytest.mark.ray
@pytest.mark.slow
def test_trials_land_where_their_request_fits(two_nodes: dict[str, str], tmp_path: Path) -> None:
    ex = RayExecutor()
    items = [() for _ in range(4)]
    on_tpu = dict(ex.map_unordered(_where, items, resources=Resources(num_tpus=4), window=4))
    on_b = dict(ex.map_unordered(_where, items, resources=Resources(resources=(("pool_b", 1.0),))))
    assert set(on_tpu.values()) == {two_nodes["head"]} and len(on_tpu) == 4
    assert set(on_b.values()) == {two_nodes["worker"]} and len(on_b) == 4
    # a request no node can meet fails at once, naming it and the nodes; nothing waits
    for request, words in [
        (Resources(num_tpus=8), "TPU=8"),
        (Resources(num_tpus=4, resources=(("pool_b", 1.0),)), "pool_b=1"),
        (Resources(num_cpus=1, hosts=3), "on each of 3 distinct nodes"),
        (Resources(num_tpus=4, tpu_slice="v6e-16"), "no node has TPU-v6e-16-head"),
    ]:
        start = time.monotonic()
        with pytest.raises(ValueError, match="no node of the cluster can run") as e:
            next(iter(ex.map_unordered(_where, items, resources=request)))
        assert words in str(e.value) and "pool_b=1" in str(e.value) and "TPU=4" in str(e.value)
        assert time.monotonic() - start < 5
    # a gang over both nodes: one process per node, one jax.distributed group
    gang = Resources(num_cpus=1, hosts=2)
    (index, result), *_ = list(ex.map_unordered(_gang_probe, [()], resources=gang))
    assert index == 0 and result["rank"] == 0 and result["size"] == 2
    assert result["sum"] == sum(range(8))  # both processes' rows took part


def _tiny_sweep(tmp_path: Path, **settings: Any) -> SweepJob:
    """One 10k run at 3e8 FLOPs (steps of 16 positions) on the real 2021-10 slice, capped at
    1800 and built here; ``settings`` are the SweepJob fields a test varies."""
    from data_pipeline.build import BuildConfig, build
    from data_pipeline.filters import FilterConfig
    from tests.conftest import data_file

    data = tmp_path / "data"
    source = data_file("lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst")
    build([str(source)], data, BuildConfig(filters=FilterConfig(cap=1800)), use_ray=False)
    return SweepJob(
        out_dir=str(tmp_path / "runs"),
        data_dirs={"1800": str(data)},
        sizes=("10k",),
        budgets=(3e8,),
        batch_size=16,
        log_every=1,
        eval_batches=1,
        **settings,
    )


@pytest.mark.ray
@pytest.mark.slow
def test_a_tiny_sweep_runs_on_the_tpu_node(two_nodes: dict[str, str], tmp_path: Path) -> None:
    from scaling.config import OptimConfig
    from scaling.sweep import run_configs, run_sweep

    sweep = _tiny_sweep(
        tmp_path, optim=OptimConfig(warmup_steps=1), resources=Resources(num_cpus=1, num_tpus=4)
    )
    results = run_sweep(sweep, RayExecutor(), progress=False)
    assert len(results) == 1 and results[0]["steps"] >= 1
    for cfg in run_configs(sweep):
        plan = json.loads((Path(cfg.out_dir) / "plan.json").read_text())
        assert plan["ray_node"] == two_nodes["head"]  # the only node with TPUs


@pytest.fixture
def one_cpu_nodes() -> Iterator[None]:
    """Two nodes of one CPU each (a head and a worker): a gang of two lands one per node."""
    import ray
    from ray.cluster_utils import Cluster

    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level=logging.ERROR)
    cluster.wait_for_nodes()
    try:
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was_up:
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)


@pytest.mark.ray
@pytest.mark.slow
def test_a_trial_over_two_hosts_trains_and_resumes_on_one(
    one_cpu_nodes: None, tmp_path: Path
) -> None:
    """A sweep trial as a gang of two Ray tasks (one per node, jax.distributed over both,
    parameters fully sharded over the two processes' devices) trains what one process trains;
    its checkpoints restore in one process, and the run, cut back to step 2, resumes in one
    process and ends where the unbroken two-process run ended."""
    import dataclasses
    import shutil

    import jax
    import numpy as np

    from scaling import checkpoints
    from scaling.config import OptimConfig
    from scaling.sweep import run_configs, run_sweep
    from scaling.train import train
    from tests.test_fsdp import initial_params, update_gap

    def params(run: Path) -> list[np.ndarray]:  # restored on this process's one device
        tree = checkpoints.restore_state(run)[0]["params"]
        return [np.asarray(x) for x in jax.tree.leaves(tree)]

    sweep = _tiny_sweep(  # 4 steps of 16 positions
        tmp_path,
        optim=OptimConfig(warmup_steps=0),
        fsdp=True,
        resources=Resources(num_cpus=1, hosts=2),
    )
    (gang,) = run_sweep(sweep, RayExecutor(), progress=False)
    (cfg,) = run_configs(sweep)
    run = Path(cfg.out_dir)
    plan = json.loads((run / "plan.json").read_text())
    assert plan["processes"] == 2 and plan["devices"] == 2 and gang["steps"] == 4
    alone = train(dataclasses.replace(cfg, out_dir=str(tmp_path / "alone")))
    assert alone["flops_per_step"] == gang["flops_per_step"]  # one compute axis
    assert alone["milestones"] == gang["milestones"] == [1, 2, 3, 4]
    start = initial_params(cfg)
    two, one = params(run), params(tmp_path / "alone")
    gap = update_gap(one, two, start)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two, strict=True))
    print(f"2-process gang vs 1 process: update gap {gap:.2e}, max |difference| {diff:.2e}")
    # the tolerances of tests/test_fsdp.py (measured: gap 1.6e-3, max difference 1.4e-4)
    assert gap <= 1e-2 and diff <= 5e-4
    assert checkpoints.damaged_steps(run, gang["checkpoint_files"], [1, 2, 3, 4]) == {}

    # cut the run back to its step-2 checkpoint (written by both processes), resume here
    unbroken = tmp_path / "unbroken"
    shutil.copytree(run, unbroken)
    assert checkpoints.drop_from(run, 3) == [3, 4]
    (run / "result.json").unlink()
    resumed = train(cfg)
    assert resumed["steps"] == 4 and resumed["flops"] == gang["flops"]
    gap = update_gap(params(unbroken), params(run), start)
    diff = max(
        float(np.abs(a - b).max()) for a, b in zip(params(unbroken), params(run), strict=True)
    )
    print(f"resumed in 1 process vs the unbroken gang: update gap {gap:.2e}, max |diff| {diff:.2e}")
    assert gap <= 1e-2 and diff <= 5e-4  # measured: 4.5e-4, 3.8e-5
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]
