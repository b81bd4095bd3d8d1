"""Shared fixtures: the real data folder, Debian's tools, a real local Ray cluster."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA_DIR = Path(
    os.environ.get("ELOCAP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def data_file(relative: str) -> Path:
    """A file of ../shared/data (or $ELOCAP_DATA): missing is an error in CI, a skip elsewhere."""
    path = DATA_DIR / relative
    if not path.exists():
        message = f"data file {path} is missing (set ELOCAP_DATA to the shared data folder)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def debian_tool(name: str) -> str:
    """Path of a Debian tool that may live off PATH in /usr/games."""
    found = shutil.which(name) or (
        f"/usr/games/{name}" if os.path.exists(f"/usr/games/{name}") else None
    )
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed (.ci/run installs it with apt-get)")
        pytest.skip(f"{name} is not installed")
    return found


LICHESS_FILES = (
    "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst",
    "lichess/lichess_db_standard_rated_2026-06.analysed500.pgn",
    "lichess/lichess-exporter-2016-05.partial-headers.pgn",
    "lichess/lichess-user-export-arenas-2018.variants-and-fen.pgn",
    "lichess/lichess-user-export-2024.low-elo.pgn",
    "lichess/lichess-user-exports-2026.high-elo.pgn",
)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A real embedded local Ray cluster with 2 CPUs, shared by the tests that claim Ray."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()
