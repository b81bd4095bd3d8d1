"""A simulated Lichess month: the driver's ceiling, the workers' rate, one pass vs four builds.

The input is the 2021-10 slice (999 games, 358 KB .zst, 2.32 MB of PGN) replicated into one
zstd stream until it reaches --gb GB: each copy's ``Site`` URLs get a suffix (the copy number),
so every game has its own id (the build does not deduplicate games: two copies of a game with
one id would both be kept, in the same split). zstd level 3 with a 1 MiB window, so copies 2.3
MB apart do not compress against each other: the ratio stays that of the real slice (~6.5).

Modes (each measurement a fresh child process, one at a time; the parent reads its JSON line):

--driver   The driver's share alone, one core: ``chunks.iter_chunks`` (decompress, SHA-256,
           find the game boundaries, cut runs of --chunk games) with each run pickled as Ray
           would ship it; against the old driver (``iter_raw_games`` making a ``RawGame`` per
           game, a list of them pickled per chunk). Games/s and MB/s of PGN.
--workers  One worker's rate, one core: ``chunks.process_chunk`` on the first --worker-games
           games, with every game decoded (no cap, no sample) and with a 1% sample (the header
           pass: what every game costs a worker even when it is not decoded).
--month    ``build_caps`` of the month for four caps with --nworkers Ray workers and the sample
           fraction derived from the budget of the run that reads the most (--size at
           --budget FLOPs, --epochs allowed; ``data_pipeline.budget``), in a child process whose
           tree is sampled every 0.5 s (peak summed RSS, largest process, CPU seconds); with
           --percap, then four per-cap builds of the same input and config in the same run.

Run:  .venv/bin/python benchmarks/bench_month.py --driver --gb 0.2
      .venv/bin/python benchmarks/bench_month.py --workers
      .venv/bin/python benchmarks/bench_month.py --month --gb 2 --budget 1e15
      .venv/bin/python benchmarks/bench_month.py --month --gb 0.2 --budget 1e14 --percap
Set ELOCAP_MONTH to an existing file to reuse it (it is made at /tmp/elocap-month-<gb>.pgn.zst
otherwise, and kept: making 2 GB takes minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c

CAPS = (1200, 1500, 1800, 2000)
_SITE = re.compile(rb'(\[Site "https://lichess\.org/[A-Za-z0-9]+)"')


def make_month(target_bytes: int, out: Path) -> tuple[int, int]:
    """Writes the replicated slice (one zstd stream) to ``out``; (copies, PGN bytes)."""
    import zstandard

    data = c.read_pgn_bytes(c.SLICE_2021)
    data = data.rstrip(b"\n") + b"\n\n"
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=20)
    tmp = out.with_suffix(".part")
    copies = pgn = 0
    with (
        open(tmp, "wb") as f,
        zstandard.ZstdCompressor(compression_params=params).stream_writer(f, closefd=False) as z,
    ):
        while f.tell() < target_bytes:
            copy = _SITE.sub(rb"\1" + f"x{copies:06d}".encode() + b'"', data)
            z.write(copy)
            copies, pgn = copies + 1, pgn + len(copy)
            if copies % 64 == 0:
                z.flush()
    os.replace(tmp, out)
    return copies, pgn


def month_file(gb: float) -> Path:
    given = os.environ.get("ELOCAP_MONTH")
    if given:
        return Path(given)
    out = Path(f"/tmp/elocap-month-{gb:g}.pgn.zst")
    if not out.exists():
        t = time.perf_counter()
        copies, pgn = make_month(int(gb * 1e9), out)
        print(f"made {out}: {copies} copies, {pgn / 1e9:.2f} GB of PGN, "
              f"{out.stat().st_size / 1e9:.2f} GB .zst in {time.perf_counter() - t:.0f} s",
              flush=True)  # fmt: skip
    return out


# --- children ---------------------------------------------------------------------------------


def driver_child(args: argparse.Namespace) -> dict:
    from data_pipeline import sources
    from data_pipeline.chunks import SourceScan, iter_chunks
    from data_pipeline.pgn import iter_raw_games

    src = sources.resolve_sources([args.path])[0]
    games = chunks = shipped = 0
    t = time.perf_counter()
    cpu = time.process_time()
    if args.arm == "runs":
        scan = SourceScan(source=src)
        for _key, run in iter_chunks(scan, 0, args.chunk):
            shipped += len(pickle.dumps(run, protocol=5))
            games, chunks = games + len(run), chunks + 1
        pgn = None
    else:  # the driver before: a RawGame per game, a list per chunk
        with sources.open_source(src) as stream:
            batch: list = []
            for g in iter_raw_games(stream, stray_text=False):
                batch.append(g)
                if len(batch) == args.chunk:
                    shipped += len(pickle.dumps(batch, protocol=5))
                    games, chunks, batch = games + len(batch), chunks + 1, []
            if batch:
                shipped += len(pickle.dumps(batch, protocol=5))
                games, chunks = games + len(batch), chunks + 1
            pgn = stream.decompressed_bytes_read
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"games": games, "chunks": chunks, "shipped": shipped, "wall": wall, "cpu": cpu,
            "pgn": pgn}  # fmt: skip


def workers_child(args: argparse.Namespace) -> dict:
    import tempfile

    from data_pipeline import sources
    from data_pipeline.chunks import BuildConfig, process_chunk
    from data_pipeline.pgn import iter_game_runs
    from data_pipeline.views import shared_config

    c.pin_to_core(0)
    src = sources.resolve_sources([args.path or str(c.SLICE_2021)])[0]
    with sources.open_source(src) as stream:
        run = next(iter_game_runs(stream, args.worker_games))
    cfg = shared_config(BuildConfig(chunk_games=args.worker_games))
    cfg = dataclasses.replace(cfg, sample_fraction=args.fraction)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        rec = process_chunk(run, cfg, out, "s0000-c000000")
        wall = time.perf_counter() - t
    stored = sum(s["records"] - 1 for s in rec["shards"])  # positions (the games table is last)
    return {"games": rec["games"], "kept": rec["kept"], "positions": stored, "wall": wall}


def month_child(args: argparse.Namespace) -> dict:
    import ray

    from data_pipeline import budget
    from data_pipeline.build import build
    from data_pipeline.chunks import BuildConfig
    from data_pipeline.views import build_caps
    from scaling.flops import train_flops_per_position
    from scaling.model import NAMED_SIZES

    out = Path(args.out)
    base = BuildConfig(chunk_games=args.chunk)
    t = time.perf_counter()
    per_position = train_flops_per_position(NAMED_SIZES[args.size])
    reads = budget.positions_consumed([(args.budget, per_position)])
    note = f"the {args.size} model at {args.budget:g} FLOPs, {per_position:.3g} FLOPs/position"
    need = budget.DataBudget(positions=reads, epochs=args.epochs, note=note)
    estimate = budget.estimate_positions([args.path], base.filters, CAPS)
    cfg = budget.sampled_config(base, need, estimate)
    t_estimate = time.perf_counter() - t
    ray.init(
        address="local", num_cpus=args.nworkers, include_dashboard=False, logging_level="ERROR"
    )
    t = time.perf_counter()
    if args.arm == "caps":
        res = build_caps([args.path], out / "all", cfg, CAPS, [out / f"cap{k}" for k in CAPS],
                         workers=args.nworkers, progress=False)  # fmt: skip
        train = {k: res["views"][k]["positions"]["train"] for k in CAPS}
        games, kept = res["shared"]["games"], res["shared"]["kept"]
    else:
        train, kept = {}, 0
        for k in CAPS:
            one = dataclasses.replace(cfg, filters=dataclasses.replace(cfg.filters, cap=k))
            m = build([args.path], out / f"cap{k}", one, workers=args.nworkers, progress=False)
            train[k], games, kept = m["positions"]["train"], m["games"], kept + m["kept"]
    wall = time.perf_counter() - t
    ray.shutdown()
    return {
        "wall": wall,
        "estimate_s": t_estimate,
        "games": games,
        "kept": kept,
        "train_positions": train,
        "needed": need.needed,
        "fraction": cfg.sample_fraction,
        "estimate": estimate,
        "note": cfg.sample_note,
        "shard_bytes": sum(p.stat().st_size for p in out.rglob("*.array_record")),
    }


class TreeSampler:
    """Samples a process tree every 0.5 s: peak summed RSS, peak single RSS, CPU seconds."""

    def __init__(self, pid: int) -> None:
        import threading

        import psutil

        self._root = psutil.Process(pid)
        self.peak_sum = self.peak_one = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                try:
                    rss, t = p.memory_info().rss, p.cpu_times()
                except psutil.Error:
                    continue
                total += rss
                self.peak_one = max(self.peak_one, rss)
                self._cpu[p.pid] = t.user + t.system
            self.peak_sum = max(self.peak_sum, total)
            self._stop.wait(0.5)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"tree_peak_rss_mib": self.peak_sum / 2**20, "peak_rss_mib": self.peak_one / 2**20,
                "tree_cpu_s": sum(self._cpu.values())}  # fmt: skip


# --- the parent ---------------------------------------------------------------------------------


def child_run(args: argparse.Namespace, *extra: str, sample: bool = False) -> dict:
    cmd = [c.PYTHON, __file__, "--child", *extra]
    c.wait_quiet()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(p.pid) if sample else None
    stdout, stderr = p.communicate()
    wall = time.perf_counter() - t
    tree = sampler.stop() if sampler else {}
    if p.returncode != 0:
        sys.exit(f"child failed: {stderr[-3000:]}")
    rec = dict(json.loads(stdout.strip().splitlines()[-1]))
    rec.update(process=wall, **tree)
    return rec


def main(tmp: Path) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", action="store_true")
    ap.add_argument("--workers", action="store_true")
    ap.add_argument("--month", action="store_true")
    ap.add_argument("--percap", action="store_true", help="with --month: four per-cap builds too")
    ap.add_argument("--gb", type=float, default=0.2, help="size of the replicated .zst, GB")
    ap.add_argument("--chunk", type=int, default=2000, help="chunk_games")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--worker-games", type=int, default=999)
    ap.add_argument("--nworkers", type=int, default=2)
    ap.add_argument("--size", default="1m", help="--month: the model that reads the most")
    ap.add_argument("--budget", type=float, default=1e15, help="--month: its FLOPs budget")
    ap.add_argument("--epochs", type=float, default=1.0, help="--month: epochs allowed")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arm", default="", help=argparse.SUPPRESS)
    ap.add_argument("--path", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"runs": driver_child, "raw": driver_child, "worker": workers_child}.get(
            args.arm, month_child
        )
        print(json.dumps(fn(args)))
        return
    print(c.machine(), flush=True)
    common = ["--chunk", str(args.chunk), "--nworkers", str(args.nworkers)]
    if args.driver:
        path = month_file(args.gb)
        res: dict[str, list[dict]] = {"raw": [], "runs": []}
        for _ in range(args.repeat):
            for arm in ("raw", "runs"):
                res[arm].append(child_run(args, "--arm", arm, "--path", str(path), *common))
        pgn = res["raw"][0]["pgn"]
        print(f"\n{path}: {path.stat().st_size / 1e6:.0f} MB .zst, {pgn / 1e6:.0f} MB of PGN, "
              f"{res['runs'][0]['games']} games, chunk_games {args.chunk}")  # fmt: skip
        rows = []
        for arm in ("raw", "runs"):
            r = res[arm]
            assert all(x["games"] == res["runs"][0]["games"] for x in r)
            wall = c.median(x["wall"] for x in r)
            rows.append([{"raw": "before (RawGame list)", "runs": "now (GameRun)"}[arm],
                         f"{wall:.1f}", f"{c.median(x['cpu'] for x in r):.1f}",
                         f"{r[0]['games'] / wall:,.0f}", f"{pgn / 1e6 / wall:.0f}",
                         f"{r[0]['shipped'] / r[0]['chunks'] / 1e6:.2f}",
                         c.runs([x["wall"] for x in r], 1)])  # fmt: skip
        print(c.table(["driver", "wall s", "cpu s", "games/s", "PGN MB/s", "MB per chunk",
                       "runs"], rows))  # fmt: skip
    if args.workers:
        rows = []
        for fraction in (1.0, 0.01):
            arm = [
                "--arm",
                "worker",
                "--fraction",
                str(fraction),
                "--path",
                str(month_file(args.gb)),
            ]
            arm += ["--worker-games", str(args.worker_games)]
            r = [child_run(args, *arm) for _ in range(args.repeat)]
            wall = c.median(x["wall"] for x in r)
            rows.append([fraction, r[0]["games"], r[0]["kept"], r[0]["positions"], f"{wall:.2f}",
                         f"{r[0]['games'] / wall:,.0f}", f"{r[0]['positions'] / wall:,.0f}",
                         c.runs([x["wall"] for x in r], 2)])  # fmt: skip
        print(
            f"\nprocess_chunk, one core, the first {args.worker_games} games of the month, no cap:"
        )
        print(c.table(["sample", "games", "kept", "positions", "s", "games/s", "positions/s",
                       "runs"], rows))  # fmt: skip
    if args.month:
        path = month_file(args.gb)
        print(f"{path}: {path.stat().st_size / 1e9:.2f} GB .zst; caps {CAPS}; the {args.size} "
              f"model at {args.budget:g} FLOPs, {args.epochs:g} epochs", flush=True)  # fmt: skip
        for arm in ["caps", "percap"] if args.percap else ["caps"]:
            out = tmp / f"month-{arm}"
            extra = ["--arm", arm, "--path", str(path), "--out", str(out), "--size", args.size]
            extra += ["--budget", str(args.budget), "--epochs", str(args.epochs), *common]
            r = child_run(args, *extra, sample=True)
            shutil.rmtree(out, ignore_errors=True)
            print(f"\n{arm}: " + json.dumps(r), flush=True)


if __name__ == "__main__":
    c.run_in_scratch(main)
