"""The same study config and seed give the same corpus, checkpoints and ratings on CPU.

A reduced copy of the embedded default (jobs/studies/smoke.toml: the same stages, engines by
nodes, Ray with two workers, search in the arena) is run twice in two directories; the corpus,
the data build, every checkpoint's parameters, the registries and the ratings must be
byte-identical, and the arena logs must hold the same games (on Ray they are appended in
completion order)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from elocap.workdir import Workdir
from mcts.agents import load_network
from mcts.games import recover_log
from scaling.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[1]

SMOKE = REPO / "jobs" / "studies" / "smoke.toml"  # the default, reduced


def _run(config: Path, workdir: Path) -> None:
    cmd = [sys.executable, "-m", "jobs.cli", "study", "run", str(config), "--workdir", str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.ray
def test_the_same_config_gives_the_same_corpus_checkpoints_and_ratings(tmp_path: Path) -> None:
    config = SMOKE
    first, second = Workdir(root=tmp_path / "first"), Workdir(root=tmp_path / "second")
    _run(config, first.root)
    _run(config, second.root)

    def same_bytes(relative: Path) -> None:
        a, b = first.root / relative, second.root / relative
        assert a.read_bytes() == b.read_bytes(), f"{relative} differs between the two runs"

    same_bytes(first.corpus("ladder").relative_to(first.root))
    data = sorted(p.relative_to(first.root) for p in first.data_root.rglob("*") if p.is_file())
    assert data
    for relative in data:
        if relative.name not in ("build.json", "manifest.json"):  # they name their directory
            same_bytes(relative)
    for path in (first.checkpoints_csv, first.ratings_csv):
        same_bytes(path.relative_to(first.root))
    runs = sorted(p.name for p in first.runs_dir.iterdir())
    assert runs == sorted(p.name for p in second.runs_dir.iterdir())
    assert any(r.startswith("selfplay") for r in runs)
    for run in runs:
        steps = [c["step"] for c in list_checkpoints(first.run_dir(run))]
        assert steps == [c["step"] for c in list_checkpoints(second.run_dir(run))]
        for step in steps:
            _, pa, _, _ = load_network(first.run_dir(run), step)
            _, pb, _, _ = load_network(second.run_dir(run), step)
            flat_a, flat_b = (np.concatenate([np.ravel(x) for x in _leaves(p)]) for p in (pa, pb))
            assert flat_a.tobytes() == flat_b.tobytes(), f"{run}@{step} differs"
    for log in [first.arena_log("ladder"), *first.arena_logs()]:
        other = second.arena_log(log.stem)
        games_a = sorted(_game_rows(log))
        assert games_a and games_a == sorted(_game_rows(other)), f"{log.name} differs"


def _leaves(tree: object) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _game_rows(log: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(GameId, result, moves) of every game of an arena log."""
    import chess.pgn

    rows = []
    with open(log) as f:
        while (game := chess.pgn.read_game(f)) is not None:
            moves = tuple(m.uci() for m in game.mainline_moves())
            rows.append((game.headers["GameId"], game.headers["Result"], moves))
    assert len(rows) == len(recover_log(log))
    return rows
