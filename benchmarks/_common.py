"""Shared helpers of the benchmark scripts: data paths, replicated inputs, machine facts, tables.

Not a benchmark itself. Every script in this folder imports it (the script's own folder is on
``sys.path`` when it runs as ``python benchmarks/bench_X.py``).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ELOCAP_DATA", REPO.parent / "shared" / "data"))
LICHESS = DATA / "lichess"
SLICE_2021 = LICHESS / "lichess_db_standard_rated_2021-10.first999.pgn.zst"
ANALYSED_2026 = LICHESS / "lichess_db_standard_rated_2026-06.analysed500.pgn"
PYTHON = sys.executable
ELOCAP = str(Path(sys.executable).with_name("elocap"))
PGN_EXTRACT = os.environ.get("PGN_EXTRACT", "/usr/games/pgn-extract")
MB = 1_000_000


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"missing data file {path} (set ELOCAP_DATA to the shared data folder)")
    return path


def read_pgn_bytes(path: Path) -> bytes:
    """The decompressed bytes of a PGN file (plain or .zst)."""
    raw = require(path).read_bytes()
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw


def replicate(data: bytes, min_bytes: int, out: Path) -> tuple[Path, int]:
    """Writes ``data`` repeated until the file holds at least ``min_bytes``; (path, copies)."""
    if not data.endswith(b"\n\n"):
        data = data.rstrip(b"\n") + b"\n\n"
    copies = max(1, -(-min_bytes // len(data)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        for _ in range(copies):
            f.write(data)
    return out, copies


def pin_to_core(core: int = 0) -> bool:
    """Pins this process to one core (Linux); False where that is not possible."""
    try:
        os.sched_setaffinity(0, {core})
        return True
    except (AttributeError, OSError):
        return False


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (
        f"{cpu}, nproc={nproc}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; library: {library_version()}"
    )


def library_version() -> str:
    """The commit the library code comes from, and whether data_pipeline/ differs from it.

    Read-only git calls (``--no-optional-locks``: never touches the index).
    """
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--", "data_pipeline", "jobs"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}" + (" + uncommitted changes in data_pipeline/ or jobs/" if dirty else "")


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        if c >= 1000:
            return f"{c:,.0f}"
        if c >= 100:
            return f"{c:.0f}"
        if c >= 10:
            return f"{c:.1f}"
        return f"{c:.2f}"
    if isinstance(c, int):
        return f"{c:,}"
    return str(c)


def runs(xs: Sequence[float], digits: int = 2) -> str:
    """The individual repeats, for the record: '0.81/0.79/0.84'."""
    return "/".join(f"{x:.{digits}f}" for x in xs)
