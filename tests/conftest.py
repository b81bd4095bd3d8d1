"""Shared fixtures: the real data folder, Debian's tools, a real local Ray cluster."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chess
import pytest

from elocap import compile_cache

# The tests compile the same searches and train steps in many processes (Ray workers, the CLI's
# subprocesses): one persistent cache for all of them, as the elocap command uses.
compile_cache.enable()

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


# --- the 2021-10 dump slice as bytes, for the source tests ------------------------------------


@pytest.fixture(scope="module")
def dump() -> bytes:
    """The compressed bytes of the 2021-10 slice (a real Lichess .pgn.zst)."""
    return data_file("lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst").read_bytes()


@pytest.fixture(scope="module")
def pgn(dump: bytes) -> bytes:
    """The true decompressed content, through zstandard's one-shot reader."""
    import io

    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(dump)).read()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_blocks(stream: Any, block: int = 1 << 20) -> bytes:
    """All of a stream, read in blocks (so a truncated source raises after its prefix)."""
    return b"".join(iter(lambda: stream.read(block), b""))


# --- a tiny supervised checkpoint, shared by the arena and self-play tests -------------------


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real shards of the 2021-10 slice below a 1500 cap."""
    from data_pipeline.build import BuildConfig, build
    from data_pipeline.filters import FilterConfig

    out = tmp_path_factory.mktemp("tiny") / "data-cap1500"
    slice_ = data_file("lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst")
    cfg = BuildConfig(filters=FilterConfig(cap=1500), chunk_games=500)
    build([str(slice_)], out, cfg, use_ray=False, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10k-parameter network trained for 40 steps on ``tiny_shards``: a real run directory."""
    from scaling.config import TrainConfig
    from scaling.model import NAMED_SIZES
    from scaling.train import train

    out = tmp_path_factory.mktemp("tiny") / "sup-10k"
    cfg = TrainConfig(
        data_dir=str(tiny_shards),
        out_dir=str(out),
        model=NAMED_SIZES["10k"],
        batch_size=32,
        steps=40,
        log_every=10,
        eval_batches=1,
    )
    train(cfg)
    return out


def material_balance(board: chess.Board) -> int:
    """The side to move's material minus the opponent's, in pawns, by python-chess."""
    values = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9}
    return sum(
        v * (len(board.pieces(p, board.turn)) - len(board.pieces(p, not board.turn)))
        for p, v in values.items()
    )


def rules_ending(board: chess.Board, ply: int | None = None, max_plies: int = 512) -> str:
    """The first of pgx's ending rules that python-chess sees in ``board``, in
    ``mcts.env.REASONS`` order ("running" if none); with ``ply``, the plies played, also pgx's
    length limit of ``max_plies``."""
    if board.is_checkmate():
        return "checkmate"
    if board.is_stalemate():
        return "stalemate"
    if board.is_insufficient_material():
        return "insufficient_material"
    if board.halfmove_clock >= 100:
        return "fifty_moves"
    if board.is_repetition(3):
        return "threefold_repetition"
    if ply is not None and ply >= max_plies:
        return "ply_limit"
    return "running"
