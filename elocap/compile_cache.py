"""JAX's persistent compilation cache for every elocap process.

Compiling a search or a game loop costs 10-45 s on a CPU and every process (each Ray worker, each
stage of a study, each rerun) compiled the same programs again. ``enable()`` points JAX at one
on-disk cache (``$JAX_COMPILATION_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/elocap/jax`` or
``~/.cache/elocap/jax``) before the first compilation, and exports it in the environment so that
the workers of an embedded Ray cluster started later by this process use it too. The cache is
keyed by the program, the compiler options and the machine, so an entry only ever stands in for
the same compilation; where JAX cannot load an entry it compiles again. ``ELOCAP_JAX_CACHE=0``
turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
MIN_SECONDS_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
SWITCH_ENV = "ELOCAP_JAX_CACHE"


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "elocap" / "jax"


def enable(path: Path | None = None) -> Path | None:
    """Turns the cache on for this process and its children; the directory, or None when off."""
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return None
    where = Path(path or os.environ.get(CACHE_ENV) or default_dir())
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache only costs compile time
    os.environ[CACHE_ENV] = str(where)
    os.environ.setdefault(MIN_SECONDS_ENV, "1")  # small programs are not worth a file
    import jax

    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs", float(os.environ[MIN_SECONDS_ENV])
    )
    return where
