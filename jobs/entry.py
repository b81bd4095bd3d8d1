"""What every entry point does before its work: start or join Ray once (``jobs.ray_session``)
and hand the library an executor. Library code never starts Ray itself."""

from __future__ import annotations

from pathlib import Path

from elocap.execution import Executor, InlineExecutor, RayExecutor


def executor(
    no_ray: bool = False, *, log_dir: Path | None = None, verbose: bool = False
) -> Executor:
    """An InlineExecutor with ``no_ray``; else a RayExecutor on the cluster of $RAY_ADDRESS or
    on an embedded local one (127.0.0.1 only), whose worker logs go to ``log_dir`` (and to this
    terminal too when ``verbose``)."""
    if no_ray:
        return InlineExecutor()
    from jobs.ray_session import start_or_join

    start_or_join(log_dir=log_dir, verbose=verbose)
    return RayExecutor()
