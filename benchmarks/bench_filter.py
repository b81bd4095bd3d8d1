"""Elo-only filter on ONE core: `elocap data filter --only-elo` vs pgn-extract's tag criteria.

Input: the decompressed 2021-10 Lichess slice (999 games) replicated to at least --mb MB of plain
PGN in a temporary folder. Every contender runs pinned to core 0, in alternation, --repeat times:

- ``elocap CLI``: ``taskset -c 0 elocap data filter BIG.pgn --cap 1500 --only-elo -o out.pgn``
  as a subprocess (Python start-up, imports and the final fsync included);
- ``elocap filter_games``: the same work in-process (this process pinned to core 0), which is the
  library's throughput without start-up;
- ``pgn-extract``: ``taskset -c 0 pgn-extract -t tags.txt -s -o out.pgn BIG.pgn`` with tags.txt =
  ``WhiteElo <= "1500"`` / ``BlackElo <= "1500"``.

Both outputs are checked to hold the same number of games, and the same games (Site tags).
Target: elocap CLI games/s >= 1.0x pgn-extract's (goal 1.5x).

Run:  .venv/bin/python benchmarks/bench_filter.py            (about 30 s)
      .venv/bin/python benchmarks/bench_filter.py --mb 50 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from pathlib import Path

import _common as c


def count_games(path: Path) -> tuple[int, set[str]]:
    """Games in a PGN file (elocap's splitter) and their Site tags."""
    from data_pipeline.pgn import iter_raw_games

    sites: set[str] = set()
    n = 0
    with open(path, "rb") as f:
        for g in iter_raw_games(f):
            n += 1
            sites.add(g.headers().get("Site", f"#{n}"))
    return n, sites


def run_timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt, p.stderr


def _main(tmp: Path) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50, help="minimum input size in MB (default 50)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cap", type=int, default=1500)
    args = ap.parse_args()

    from data_pipeline.extract import filter_games
    from data_pipeline.filters import FilterConfig

    print(c.machine())
    big, copies = c.replicate(c.read_pgn_bytes(c.SLICE_2021), int(args.mb * c.MB), tmp / "big.pgn")
    size = big.stat().st_size
    games = 999 * copies
    tags = tmp / "tags.txt"
    tags.write_text(f'WhiteElo <= "{args.cap}"\nBlackElo <= "{args.cap}"\n')
    out_e, out_i, out_p = tmp / "out_elocap.pgn", tmp / "out_inproc.pgn", tmp / "out_pgnextract.pgn"
    cli = [
        "taskset",
        "-c",
        "0",
        c.ELOCAP,
        "data",
        "filter",
        str(big),
        "--cap",
        str(args.cap),
        "--only-elo",
        "-o",
        str(out_e),
    ]
    pgx = ["taskset", "-c", "0", c.PGN_EXTRACT, "-t", str(tags), "-s", "-o", str(out_p), str(big)]
    startup = ["taskset", "-c", "0", c.ELOCAP, "data", "filter", "--help"]
    print(f"input: {big} ({size / c.MB:.1f} MB, {copies} copies, {games} games)")
    print("elocap CLI :", " ".join(cli))
    print("pgn-extract:", " ".join(pgx))

    cfg = FilterConfig(cap=args.cap, only_elo=True)
    affinity = os.sched_getaffinity(0)
    t_cli, t_inp, t_pgx, t_start = [], [], [], []
    kept_cli = kept_inp = None
    run_timed(cli)  # warm the page cache and Python's bytecode cache once
    busy, bgs = [], []
    for _ in range(args.repeat):
        busy.append(c.wait_quiet())
        bg = c.Background().__enter__()
        dt, err = run_timed(cli)
        t_cli.append(dt)
        kept_cli = int(re.search(r"kept (\d+)", err).group(1))
        t_pgx.append(run_timed(pgx)[0])
        c.pin_to_core(0)
        t = time.perf_counter()
        with open(out_i, "wb") as f:
            report = filter_games([str(big)], f, cfg)
        t_inp.append(time.perf_counter() - t)
        os.sched_setaffinity(0, affinity)
        kept_inp = report.kept
        t_start.append(run_timed(startup)[0])
        bg.__exit__()
        bgs.append(bg)

    n_e, sites_e = count_games(out_e)
    n_p, sites_p = count_games(out_p)
    assert kept_cli == kept_inp == n_e, (kept_cli, kept_inp, n_e)
    same = n_e == n_p and sites_e == sites_p

    m_cli, m_inp, m_pgx = c.median(t_cli), c.median(t_inp), c.median(t_pgx)
    rows = [
        [
            "elocap CLI (subprocess, taskset -c 0)",
            m_cli,
            games / m_cli,
            size / m_cli / c.MB,
            m_pgx / m_cli,
            n_e,
            c.runs(t_cli),
        ],
        [
            "elocap filter_games (in-process, core 0)",
            m_inp,
            games / m_inp,
            size / m_inp / c.MB,
            m_pgx / m_inp,
            kept_inp,
            c.runs(t_inp),
        ],
        [
            "pgn-extract -t tags.txt -s (taskset -c 0)",
            m_pgx,
            games / m_pgx,
            size / m_pgx / c.MB,
            1.0,
            n_p,
            c.runs(t_pgx),
        ],
    ]
    print()
    print(
        c.table(
            ["contender", "median s", "games/s", "MB/s", "x pgn-extract", "kept", "runs (s)"], rows
        )
    )
    print(f"\nothers' CPU load (cores busy elsewhere) during each repeat: {c.loads(bgs)}")
    print(f"elocap CLI start-up (`elocap data filter --help`): median {c.median(t_start):.2f} s")
    paired = sorted(p / e for p, e in zip(t_pgx, t_cli, strict=False))
    print(
        f"median of the paired (same-repeat) ratios elocap CLI / pgn-extract: "
        f"{c.median(paired):.2f}x"
    )
    print(f"same kept games (count and Site tags): {same} ({n_e} vs {n_p})")
    ratio = m_pgx / m_cli
    verdict = "goal met" if ratio >= 1.5 else "target met" if ratio >= 1.0 else "target MISSED"
    print(f"elocap CLI / pgn-extract games/s: {ratio:.2f}x (target >= 1.0, goal 1.5): {verdict}")


if __name__ == "__main__":
    c.run_in_scratch(_main)
