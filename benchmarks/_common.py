"""Shared helpers of the benchmark scripts: data paths, replicated inputs, machine facts, tables.

Not a benchmark itself. Every script in this folder imports it (the script's own folder is on
``sys.path`` when it runs as ``python benchmarks/bench_X.py``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    with contextlib.suppress(OSError):  # no /proc/cpuinfo: keep platform's name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
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
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "data_pipeline", "jobs"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}" + (" + uncommitted changes in data_pipeline/ or jobs/" if dirty else "")


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |" for r in cells
    ]
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


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` (from /proc/stat): others' load, if we idle."""

    def snap() -> tuple[int, int]:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f), idle

    import time

    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def wait_quiet(limit: float = 0.15, max_wait: float = 30.0) -> float:
    """Waits (up to ``max_wait`` s) until under ``limit`` of the CPUs are busy with other work;
    returns the last busy fraction seen (print it: a noisy neighbour skews every figure)."""
    import time

    end = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > limit and time.monotonic() < end:
        busy = cpu_busy(2.0)
    return busy


class Background:
    """Measures the CPU that OTHER processes used while the ``with`` block ran.

    others = (all CPUs' busy time from /proc/stat) - (this process's CPU time) - (CPU time of
    the children it waited for). ``load`` = others / wall: the average number of cores taken
    by someone else (0 on a quiet machine; 1.0 means a whole core of our 2 was busy elsewhere).
    Children that were not waited for (Ray's processes) count as "others": subtract them.
    """

    def __enter__(self) -> Background:
        import resource
        import time

        self._t = time.perf_counter()
        self._busy = _busy_seconds()
        self._own = time.process_time()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._kids = ru.ru_utime + ru.ru_stime
        return self

    def __exit__(self, *exc: object) -> None:
        import resource
        import time

        self.wall = time.perf_counter() - self._t
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = time.process_time() - self._own + ru.ru_utime + ru.ru_stime - self._kids
        self.others = max(0.0, _busy_seconds() - self._busy - own)
        self.load = self.others / max(self.wall, 1e-9)


def _busy_seconds() -> float:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def loads(bgs: Sequence[Background]) -> str:
    return "/".join(f"{b.load:.2f}" for b in bgs)


_SPIN = "s = 0\nfor i in range(12_000_000):\n    s += i * i\n"


def parallel_ceiling(repeat: int = 3) -> tuple[float, list[float]]:
    """The speed-up two CPU-bound processes get over one on this machine right now:
    2 x t(one spin) / t(two spins at once), median of ``repeat`` (2.0 on two free cores)."""
    import time

    def timed(k: int) -> float:
        t = time.perf_counter()
        procs = [subprocess.Popen([PYTHON, "-c", _SPIN]) for _ in range(k)]
        for p in procs:
            p.wait()
        return time.perf_counter() - t

    ratios = [2 * timed(1) / timed(2) for _ in range(repeat)]
    return median(ratios), ratios


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder for the big inputs and outputs, removed at the end (kept, and its
    path printed, if the environment variable ELOCAP_BENCH_KEEP is set)."""
    path = Path(tempfile.mkdtemp(prefix="elocap-bench-"))
    try:
        yield path
    finally:
        if os.environ.get("ELOCAP_BENCH_KEEP"):
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_in_scratch(main: Callable[[Path], None]) -> None:
    """Runs a benchmark's ``main(tmp)`` with a scratch folder that is removed afterwards."""
    with scratch_dir() as tmp:
        main(tmp)
