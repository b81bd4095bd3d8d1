"""Peak memory as the input grows tenfold: is it flat, and under 1 GB?

Inputs: the decompressed 2021-10 slice replicated to --small MB and to --large MB (default 10
and 100) of plain PGN. For each input, three runs, each a fresh process:

- ``filter``: ``/usr/bin/time -v elocap data filter BIG.pgn --cap C --only-elo -o out.pgn``;
  the figure is GNU time's "Maximum resident set size" of the process.
- ``build, no Ray``: ``/usr/bin/time -v python bench_memory.py --child inline ...``, an
  in-process ``build(..., use_ray=False)`` (cap C, chunk_games --chunk); GNU time's max RSS.
- ``build, Ray``: ``python bench_memory.py --child ray ...`` (``ray.init(num_cpus=W)``, then
  ``build(..., workers=W, use_ray=True)``), while this script samples the whole process tree
  (driver, raylet, GCS, agents, workers) with psutil every --interval s. Figures: peak of the
  driver's RSS, peak RSS of the largest single ``ray::`` worker, peak of the tree's summed RSS
  and summed PSS (/proc/PID/smaps_rollup: shared pages split between the processes that map
  them; summed RSS counts Ray's shared libraries and object-store pages once per process).

Target: flat (the 10x input costs about the same memory) and under 1 GB.

Run:  .venv/bin/python benchmarks/bench_memory.py               (about 2 min)
      .venv/bin/python benchmarks/bench_memory.py --small 10 --large 100 --workers 2
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import _common as c

MIB = 1 << 20


def child(args: argparse.Namespace) -> None:
    from data_pipeline.build import BuildConfig, build
    from data_pipeline.filters import FilterConfig

    cfg = BuildConfig(filters=FilterConfig(cap=args.cap), chunk_games=args.chunk)
    if args.child == "ray":
        import psutil
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
        time.sleep(1.0)  # let the prestarted workers finish starting
        me = psutil.Process()
        tree = [me, *me.children(recursive=True)]
        pss = sum(pss_bytes(p.pid) for p in tree) / MIB
        rss = sum(p.memory_info().rss for p in tree) / MIB
        print(f"RAY_IDLE processes={len(tree)} pss={pss:.0f} rss={rss:.0f}", flush=True)
    t = time.perf_counter()
    m = build(
        [args.input],
        Path(args.out),
        cfg,
        workers=args.workers,
        use_ray=args.child == "ray",
        progress=False,
    )
    print(
        f"RESULT games={m['games']} kept={m['kept']} positions={sum(m['positions'].values())} "
        f"build_s={time.perf_counter() - t:.1f}"
    )


def gnu_time(cmd: list[str]) -> tuple[float, float, str]:
    """(max RSS in MiB, wall s, stdout+stderr) of ``/usr/bin/time -v cmd``."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr[-3000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return kb * 1024 / MIB, wall, p.stdout + p.stderr


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0  # the process is gone
    return 0


def sampled(cmd: list[str], interval: float) -> tuple[dict[str, float], float, str]:
    """Runs ``cmd``; samples its process tree; (peaks in MiB, wall s, output)."""
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    peak = {"driver RSS": 0.0, "largest worker RSS": 0.0, "tree RSS": 0.0, "tree PSS": 0.0}
    n_procs = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss_sum = pss_sum = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
                name = p.name()
                cmdline = " ".join(p.cmdline()[:1])
            except psutil.Error:
                continue
            rss_sum += rss
            pss_sum += pss_bytes(p.pid)
            if p.pid == root.pid:
                peak["driver RSS"] = max(peak["driver RSS"], rss / MIB)
            elif (name.startswith("ray::") or cmdline.startswith("ray::")) and "Agent" not in name:
                peak["largest worker RSS"] = max(peak["largest worker RSS"], rss / MIB)
        n_procs = max(n_procs, len(procs))
        peak["tree RSS"] = max(peak["tree RSS"], rss_sum / MIB)
        peak["tree PSS"] = max(peak["tree PSS"], pss_sum / MIB)
        time.sleep(interval)
    proc.wait()
    reader.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {''.join(out)[-3000:]}")
    peak["processes"] = n_procs
    return peak, time.perf_counter() - t, "".join(out)


def _main(tmp: Path) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=float, default=10, help="MB of the small input")
    ap.add_argument("--large", type=float, default=100, help="MB of the large input")
    ap.add_argument("--cap", type=int, default=1800)
    ap.add_argument("--chunk", type=int, default=2000, help="chunk_games (the CLI default)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.25, help="psutil sampling period, s")
    ap.add_argument("--child", choices=("inline", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    print(c.machine())
    data = c.read_pgn_bytes(c.SLICE_2021)
    rows = []
    peaks: dict[str, list[float]] = {}
    for label, mb in (("small", args.small), ("large", args.large)):
        big, copies = c.replicate(data, int(mb * c.MB), tmp / f"{label}.pgn")
        size = big.stat().st_size / c.MB
        print(f"{label}: {size:.1f} MB, {copies * 999} games", flush=True)
        common = [
            "--cap",
            str(args.cap),
            "--chunk",
            str(args.chunk),
            "--workers",
            str(args.workers),
            "--input",
            str(big),
        ]
        rss, wall, _ = gnu_time(
            [
                c.ELOCAP,
                "data",
                "filter",
                str(big),
                "--cap",
                str(args.cap),
                "--only-elo",
                "-o",
                str(tmp / f"{label}.out.pgn"),
            ]
        )
        rows.append(
            [f"{size:.0f} MB", "elocap data filter --only-elo", "max RSS (GNU time)", rss, wall]
        )
        peaks.setdefault("filter", []).append(rss)
        rss, wall, out = gnu_time(
            [
                c.PYTHON,
                __file__,
                "--child",
                "inline",
                "--out",
                str(tmp / f"{label}-inline"),
                *common,
            ]
        )
        rows.append([f"{size:.0f} MB", "build, use_ray=False", "max RSS (GNU time)", rss, wall])
        peaks.setdefault("inline", []).append(rss)
        print(
            "  ",
            out.strip().splitlines()[0]
            if out.startswith("RESULT")
            else re.search(r"RESULT.*", out).group(0),
            flush=True,
        )
        pk, wall, out = sampled(
            [c.PYTHON, __file__, "--child", "ray", "--out", str(tmp / f"{label}-ray"), *common],
            args.interval,
        )
        for k in ("driver RSS", "largest worker RSS", "tree RSS", "tree PSS"):
            rows.append(
                [f"{size:.0f} MB", f"build, Ray, {args.workers} workers", f"peak {k}", pk[k], wall]
            )
            peaks.setdefault(f"ray {k}", []).append(pk[k])
        idle = re.search(r"RAY_IDLE processes=(\d+) pss=(\d+) rss=(\d+)", out)
        print(
            "  ", re.search(r"RESULT.*", out).group(0), f"({pk['processes']} processes)", flush=True
        )
        rows.append(
            [
                f"{size:.0f} MB",
                "(Ray idle after ray.init, before build)",
                "tree PSS / RSS",
                f"{idle.group(2)} / {idle.group(3)}",
                "",
            ]
        )
    print()
    print(c.table(["input", "run", "figure", "MiB", "wall s"], rows))
    print()
    worst = 0.0
    for k, (small, large) in peaks.items():
        print(
            f"{k}: {small:.0f} -> {large:.0f} MiB ({large / small:.2f}x for "
            f"{args.large / args.small:.0f}x input)"
        )
        if k != "ray tree RSS":
            worst = max(worst, large / small)
    under = all(v[1] < 1024 for k, v in peaks.items() if k != "ray tree RSS")
    print(
        f"flat (every figure but summed RSS grows < 1.25x): {worst < 1.25}; "
        f"every per-process peak and the tree's PSS under 1 GiB: {under}"
    )


if __name__ == "__main__":
    c.run_in_scratch(_main)
