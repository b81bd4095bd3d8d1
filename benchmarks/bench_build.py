"""`build(...)` with Ray: workers=1 vs workers=2 on the same input, fresh output dir each time.

Input: every file of $ELOCAP_DATA/lichess (10,937 games, one of them .zst) plus the decompressed
2021-10 slice replicated to --mb MB of plain PGN. Config: cap --cap (default 1800, the other
filters at their defaults), chunk_games --chunk (default 500: about 50 chunks).

Each measurement is a fresh child process (this script with --child): it imports the library,
calls ``ray.init(address="local", num_cpus=N)`` (timed: "Ray start"), then times
``build(specs, fresh_dir, BuildConfig(...), workers=N, use_ray=True, progress=False)`` ("build",
which reuses the initialised Ray), then ``ray.shutdown()``. The parent also times the child's
whole life ("process": interpreter start, imports, Ray start, build, shutdown). Runs alternate
1, 2, 1, 2, ... --repeat times each. Manifests of all runs must agree (same games, positions).

Target: build time with 2 workers >= 1.7x faster than with 1 worker (excluding Ray start-up).

Run:  .venv/bin/python benchmarks/bench_build.py               (about 3 min)
      .venv/bin/python benchmarks/bench_build.py --mb 55 --repeat 3 --chunk 500

--compare: shard size and build speed against a baseline commit, and one pass for every cap
against one build per cap, in the same run (in-process builds, no Ray, one core each). Input:
every file of $ELOCAP_DATA/lichess (10,937 games). Each measurement is a fresh child process
timing the build into a fresh directory; the baseline runs the same child code against a git
worktree of --ref (its data_pipeline and elocap first on sys.path). Runs alternate baseline,
current, one build per cap, one pass, ... --repeat times; medians are quoted.

      .venv/bin/python benchmarks/bench_build.py --compare [--ref a01f124] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c


def child(args: argparse.Namespace) -> None:
    import ray

    from data_pipeline.build import BuildConfig, build
    from data_pipeline.filters import FilterConfig

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
    cpu0 = cpu_by_role()
    bg = c.Background().__enter__()
    t1 = time.perf_counter()
    cfg = BuildConfig(filters=FilterConfig(cap=args.cap), chunk_games=args.chunk)
    manifest = build(
        args.specs, Path(args.out), cfg, workers=args.workers, use_ray=True, progress=False
    )
    t2 = time.perf_counter()
    bg.__exit__()
    cpu1 = cpu_by_role()
    cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
    others = max(0.0, bg.others - cpu["workers"] - cpu["ray other"])  # Ray's are not waited for
    ray.shutdown()
    t3 = time.perf_counter()
    chunks = sum(s["chunks"] for s in manifest["sources"])
    print(
        json.dumps(
            {
                "ray_init": t1 - t0,
                "build": t2 - t1,
                "shutdown": t3 - t2,
                "games": manifest["games"],
                "kept": manifest["kept"],
                "chunks": chunks,
                "positions": sum(manifest["positions"].values()),
                "cpu": cpu,
                "load": others / (t2 - t1),
            }
        )
    )


def cpu_by_role() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this driver, by Ray's task workers (processes
    named ray::..., agents excepted) and by the rest of Ray (raylet, GCS, agents, monitors)."""
    import psutil

    me = psutil.Process()
    out = {"driver": sum(me.cpu_times()[:2]), "workers": 0.0, "ray other": 0.0}
    for p in me.children(recursive=True):
        try:
            name, t = p.name(), p.cpu_times()
        except psutil.Error:
            continue
        role = "workers" if name.startswith("ray::") and "Agent" not in name else "ray other"
        out[role] += t.user + t.system
    return out


def _main(tmp: Path) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=55, help="MB of replicated 2021-10 slice")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cap", type=int, default=1800)
    ap.add_argument("--chunk", type=int, default=500, help="chunk_games")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("specs", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    import ray

    print(c.machine(), f"; Ray {ray.__version__}")
    big, copies = c.replicate(
        c.read_pgn_bytes(c.SLICE_2021), int(args.mb * c.MB), tmp / "in" / "big.pgn"
    )
    specs = [str(c.LICHESS), str(big)]
    size = sum(p.stat().st_size for p in c.LICHESS.iterdir()) + big.stat().st_size
    print(
        f"input: {c.LICHESS}/* + {big} ({copies} copies of the 2021-10 slice); "
        f"{size / c.MB:.1f} MB on disk; cap {args.cap}, chunk_games {args.chunk}"
    )
    c.wait_quiet()
    ceiling_before = c.parallel_ceiling()
    print(
        f"2-process CPU-bound speed-up ceiling now: {ceiling_before[0]:.2f}x "
        f"({c.runs(ceiling_before[1])})",
        flush=True,
    )
    res: dict[int, list[dict]] = {1: [], 2: []}
    for r in range(args.repeat):
        for w in (1, 2):
            out = tmp / f"out-w{w}-r{r}"
            cmd = [
                c.PYTHON,
                __file__,
                "--child",
                "--workers",
                str(w),
                "--out",
                str(out),
                "--cap",
                str(args.cap),
                "--chunk",
                str(args.chunk),
                *specs,
            ]
            c.wait_quiet()
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if p.returncode != 0:
                sys.exit(f"child failed: {p.stderr[-3000:]}")
            rec = json.loads(p.stdout.strip().splitlines()[-1])
            rec["process"] = wall
            res[w].append(rec)
            print(
                f"  run {r + 1} workers={w}: build {rec['build']:.1f} s, Ray start "
                f"{rec['ray_init']:.1f} s, process {wall:.1f} s; others' load during the build "
                f"{rec['load']:.2f} cores",
                flush=True,
            )
            shutil.rmtree(out)
    first = res[1][0]
    for rec in res[1] + res[2]:
        assert all(rec[k] == first[k] for k in ("games", "kept", "positions", "chunks")), rec
    print(
        f"\n{first['games']} games, {first['kept']} kept, {first['positions']} positions, "
        f"{first['chunks']} chunks (identical in every run)"
    )

    def med(w, k):
        return c.median(r[k] for r in res[w])

    rows = []
    for w in (1, 2):
        rows.append(
            [
                w,
                med(w, "build"),
                first["positions"] / med(w, "build"),
                med(w, "ray_init"),
                med(w, "process"),
                c.runs([r["build"] for r in res[w]], 1),
                c.runs([r["process"] for r in res[w]], 1),
            ]
        )
    print(
        c.table(
            [
                "workers",
                "build s (median)",
                "positions/s",
                "Ray start s",
                "process s",
                "build runs",
                "process runs",
            ],
            rows,
        )
    )
    print("CPU seconds used during the build (medians; the machine offers 2 x build s):")
    for w in (1, 2):
        used = {
            k: c.median(r["cpu"][k] for r in res[w]) for k in ("driver", "workers", "ray other")
        }
        print(
            f"  workers={w}: "
            + ", ".join(f"{k} {v:.1f}" for k, v in used.items())
            + f"; total {sum(used.values()):.1f} of {2 * med(w, 'build'):.1f}"
        )
    ceiling_after = c.parallel_ceiling()
    print(
        f"2-process CPU-bound speed-up ceiling: {ceiling_before[0]:.2f}x before, "
        f"{ceiling_after[0]:.2f}x after the runs"
    )
    speed = med(1, "build") / med(2, "build")
    speed_all = med(1, "process") / med(2, "process")
    paired = c.median(a["build"] / b["build"] for a, b in zip(res[1], res[2], strict=False))
    print(
        f"speed-up 2 vs 1 workers, build only: {speed:.2f}x (median of paired ratios "
        f"{paired:.2f}x); whole process incl. Ray start: {speed_all:.2f}x; "
        f"target >= 1.7x: {'met' if speed >= 1.7 else 'MISSED'}"
    )


def format_child(args: argparse.Namespace) -> None:
    if args.path:
        sys.path.insert(0, args.path)
    from data_pipeline.build import BuildConfig, build
    from data_pipeline.filters import FilterConfig

    out = Path(args.out)
    t = time.perf_counter()
    if args.arm == "caps":
        from data_pipeline.views import build_caps

        caps = [int(x) for x in args.caps.split(",")]
        views = [out / f"cap{cap}" for cap in caps]
        cfg = BuildConfig(chunk_games=args.chunk)
        res = build_caps(
            [str(c.LICHESS)], out / "all", cfg, caps, views, use_ray=False, progress=False
        )
        manifests = [res["shared"]]
        positions = {cap: sum(res["views"][cap]["positions"].values()) for cap in caps}
    elif args.arm == "percap":
        manifests, positions = [], {}
        for cap in (int(x) for x in args.caps.split(",")):
            cfg = BuildConfig(filters=FilterConfig(cap=cap), chunk_games=args.chunk)
            m = build([str(c.LICHESS)], out / f"cap{cap}", cfg, use_ray=False, progress=False)
            manifests.append(m)
            positions[cap] = sum(m["positions"].values())
    else:
        cfg = BuildConfig(filters=FilterConfig(cap=args.cap), chunk_games=args.chunk)
        m = build([str(c.LICHESS)], out, cfg, use_ray=False, progress=False)
        manifests, positions = [m], {args.cap: sum(m["positions"].values())}
    wall = time.perf_counter() - t
    files = [p for p in out.rglob("*.array_record") if p.is_file()]
    stored = sum(s.get("records", 0) for m in manifests for s in m["shards"])
    print(
        json.dumps(
            {
                "wall": wall,
                "positions": positions,
                "stored_positions": stored or sum(positions.values()),
                "shard_bytes": sum(p.stat().st_size for p in files),
                "files": len(files),
            }
        )
    )


def format_run(args: argparse.Namespace, arm: str, out: Path, path: str = "") -> dict:
    cmd = [
        c.PYTHON,
        __file__,
        "--compare",
        "--child",
        "--arm",
        arm,
        "--out",
        str(out),
        "--path",
        path,
    ]
    cmd += ["--cap", str(args.cap), "--chunk", str(args.chunk), "--caps", args.caps]
    c.wait_quiet()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=path or None)
    if p.returncode != 0:
        sys.exit(f"child failed: {p.stderr[-3000:]}")
    shutil.rmtree(out)
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def format_main(tmp: Path) -> None:
    ap = argparse.ArgumentParser(description="the format and one-pass comparison")
    ap.add_argument("--ref", default="a01f124", help="baseline commit (the format before)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cap", type=int, default=2000)
    ap.add_argument("--caps", default="1200,1500,1800,2000")
    ap.add_argument("--chunk", type=int, default=2000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arm", default="format", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--path", default="", help=argparse.SUPPRESS)
    ap.add_argument("--compare", action="store_true", help="this mode (see the docstring)")
    args = ap.parse_args()
    if args.child:
        format_child(args)
        return
    print(c.machine())
    base = tmp / "baseline"
    subprocess.run(["git", "-C", str(c.REPO), "worktree", "add", "--detach", str(base), args.ref],
                   check=True, capture_output=True)  # fmt: skip
    try:
        res: dict[str, list[dict]] = {"baseline": [], "current": [], "caps": [], "percap": []}
        for r in range(args.repeat):
            res["baseline"].append(format_run(args, "format", tmp / f"b{r}", str(base)))
            res["current"].append(format_run(args, "format", tmp / f"c{r}"))
            res["percap"].append(format_run(args, "percap", tmp / f"p{r}"))
            res["caps"].append(format_run(args, "caps", tmp / f"a{r}"))
            walls = ", ".join(f"{k} {v[-1]['wall']:.2f} s" for k, v in res.items())
            print(f"  repeat {r + 1}: {walls}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(c.REPO), "worktree", "remove", "--force", str(base)],
                       check=False, capture_output=True)  # fmt: skip
    for key in ("baseline", "current"):
        a, b = res[key][0], res[key]
        assert all(x["positions"] == a["positions"] for x in b)
    assert res["baseline"][0]["positions"] == res["current"][0]["positions"]
    assert res["caps"][0]["positions"] == res["percap"][0]["positions"]
    rows = []
    for key in ("baseline", "current"):
        first = res[key][0]
        wall = c.median(x["wall"] for x in res[key])
        n = sum(first["positions"].values())
        rows.append([f"{key} ({args.ref})" if key == "baseline" else key, n,
                     f"{first['shard_bytes'] / first['stored_positions']:.1f}",
                     first["files"], f"{wall:.2f}", f"{n / wall:,.0f}",
                     c.runs([x["wall"] for x in res[key]], 2)])  # fmt: skip
    print(f"\ncap {args.cap}, chunk_games {args.chunk}, every file of {c.LICHESS}:")
    print(c.table(["code", "positions", "bytes/position", "files", "build s (median)",
                   "positions/s", "runs"], rows))  # fmt: skip
    ratio = c.median(x["wall"] for x in res["current"]) / c.median(
        x["wall"] for x in res["baseline"]
    )
    print(f"build time current / baseline: {ratio:.2f}x")
    rows = []
    for key in ("percap", "caps"):
        first = res[key][0]
        wall = c.median(x["wall"] for x in res[key])
        rows.append([key, f"{first['shard_bytes'] / 1e6:.2f}", first["files"], f"{wall:.2f}",
                     c.runs([x["wall"] for x in res[key]], 2)])  # fmt: skip
    print(f"\ncaps {args.caps} (positions per cap {res['caps'][0]['positions']}, equal in both):")
    print(c.table(["arm", "shard MB", "files", "wall s (median)", "runs"], rows))
    speed = c.median(x["wall"] for x in res["percap"]) / c.median(x["wall"] for x in res["caps"])
    print(f"one pass for every cap vs one build per cap: {speed:.2f}x faster")


if __name__ == "__main__":
    c.run_in_scratch(format_main if "--compare" in sys.argv else _main)
