"""Fault injection: damage a finished study (or run) the way disks, kills and people do, run it
again, and check that it either repairs itself with nothing lost and a result equal to the
undamaged one's, or stops with one line naming the file.

Every fault runs on a copy of one finished study at another path (so each also checks that a
moved study resumes).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import chess.pgn
import jax
import numpy as np
import pytest

from data_pipeline.build import BuildError
from elocap.execution import InlineExecutor
from elocap.workdir import Workdir, read_checkpoints
from jobs.study import run_study
from jobs.study_config import StudyConfig, load_study_config
from scaling import checkpoints
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"

STUDY = """
name = "faults"
[data]
caps = [2000]
[data.build]
chunk_games = 400
[supervised]
sizes = ["10k"]
budgets = [2e10, 6e10]
batch_size = 32
milestones = 3
eval_batches = 1
[selfplay]
enabled = false
[arena]
sims = 0
checkpoints_per_run = 2
anchors = ["random"]
openings = 4
[arena.games]
move_cap = 60
batch = 4
workers = 1
[arena.schedule]
games_per_pair = 4
neighbours = 1
max_rounds = 1
[analysis]
n_replicates = 30
"""


def _run(cfg: StudyConfig, root: Path) -> list[dict]:
    return run_study(cfg, root, InlineExecutor(), log=lambda _: None)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyConfig, Path]:
    base = tmp_path_factory.mktemp("faults")
    source = base / "games.pgn.zst"
    shutil.copyfile(data_file(SLICE), source)
    raw = STUDY.replace("[data]\n", f'[data]\nsources = ["{source}"]\n')
    (base / "faults.toml").write_text(raw)
    cfg = load_study_config(base / "faults.toml")
    root = base / "study"
    _run(cfg, root)
    return cfg, root


def _copy(finished: tuple[StudyConfig, Path], tmp_path: Path) -> tuple[StudyConfig, Workdir]:
    cfg, root = finished
    dest = tmp_path / "moved"
    shutil.copytree(root, dest)  # copy2: sizes and mtimes kept, the path is another
    return cfg, Workdir(root=dest)


def _ran(rows: list[dict]) -> list[str]:
    return [r["stage"] for r in rows if r["status"] == "ran"]


def _params(run: Path, step: int) -> list[np.ndarray]:
    state, _ = checkpoints.restore_state(run, step)
    return [np.asarray(x) for x in jax.tree.leaves(state["params"])]


def _games(pgn: Path) -> list[tuple[str, str, str]]:
    """(GameId, result, moves) of every complete game of an arena log, sorted."""
    games = []
    with open(pgn, encoding="utf-8") as f:
        while (game := chess.pgn.read_game(f)) is not None:
            if game.headers.get("Result", "*") != "*" and not game.errors:
                moves = " ".join(m.uci() for m in game.mainline_moves())
                games.append((game.headers["GameId"], game.headers["Result"], moves))
    return sorted(games)


def _ratings(wd: Workdir) -> str:
    return wd.ratings_csv.read_text()


def test_an_undamaged_moved_study_does_no_work(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    assert _ran(_run(cfg, wd.root)) == []


def test_a_deleted_checkpoint_is_trained_again_equal(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    run = Path(read_checkpoints(wd.checkpoints_csv)[0].run_id)
    run = wd.run_dir(str(run))
    steps = [c["step"] for c in checkpoints.list_checkpoints(run)]
    before = {s: _params(run, s) for s in steps}
    shutil.rmtree(run / "checkpoints" / str(steps[1]))
    ratings = _ratings(wd)
    rows = _run(cfg, wd.root)
    assert "supervised" in _ran(rows)
    assert [c["step"] for c in checkpoints.list_checkpoints(run)] == steps
    for s in steps:
        for a, b in zip(before[s], _params(run, s), strict=True):
            np.testing.assert_array_equal(a, b)
    assert _ratings(wd) == ratings
    assert _ran(_run(cfg, wd.root)) == []


def test_a_truncated_checkpoint_file_is_trained_again(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    run = wd.run_dir(read_checkpoints(wd.checkpoints_csv)[-1].run_id)
    last = checkpoints.list_checkpoints(run)[-1]["step"]
    before = _params(run, last)
    victim = max((run / "checkpoints" / str(last)).rglob("*"), key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    rows = _run(cfg, wd.root)
    assert "supervised" in _ran(rows)
    for a, b in zip(before, _params(run, last), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_cut_arena_log_plays_the_missing_games(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    log = wd.arena_log("supervised")
    games, ratings = _games(log), _ratings(wd)
    text = log.read_bytes()
    log.write_bytes(text[: len(text) // 2])  # the middle of some game
    assert len(_games(log)) < len(games)
    rows = _run(cfg, wd.root)
    assert "arena-supervised" in _ran(rows)
    assert _games(log) == games  # the same games again: the later stages hold
    assert _ratings(wd) == ratings


def test_a_deleted_shard_is_built_again_and_nothing_else(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    manifest = json.loads((wd.data_dir(2000) / "manifest.json").read_text())
    shard = wd.data_dir(2000) / manifest["shards"][0]["path"]
    content = shard.read_bytes()
    shard.unlink()
    rows = _run(cfg, wd.root)
    assert _ran(rows) == ["data"]  # the same shard again: nothing downstream changed
    assert shard.read_bytes() == content


def test_deleted_ratings_are_fitted_again_equal(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    ratings = _ratings(wd)
    wd.ratings_csv.unlink()
    assert _ran(_run(cfg, wd.root)) == ["ratings"]
    assert _ratings(wd) == ratings


def test_a_changed_config_reruns_that_stage_and_the_later_ones(finished, tmp_path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    analysis = dataclasses.replace(cfg.analysis, n_replicates=31)
    rows = _run(dataclasses.replace(cfg, analysis=analysis), wd.root)
    assert _ran(rows) == ["ratings", "report"]


def _one_line_error(run: Callable[[], object], *names: str) -> str:
    with pytest.raises((ValueError, OSError, RuntimeError, BuildError)) as e:
        run()
    message = str(e.value)
    assert "\n" not in message.strip(), message
    for name in names:
        assert name in message, message
    return message


def test_a_corrupt_stage_record_is_one_line_naming_it(finished, tmp_path: Path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    record = wd.stage_record("arena-supervised")
    for garbage in ("{not json", '{"stage": "arena-supervised"}', "[]", ""):
        record.write_text(garbage)
        _one_line_error(lambda: _run(cfg, wd.root), str(record))


def test_a_source_changed_under_a_finished_build_stops_naming_it(finished, tmp_path) -> None:
    cfg, wd = _copy(finished, tmp_path)
    changed = tmp_path / "changed.pgn.zst"
    shutil.copyfile(cfg.data.sources[0], changed)
    data = dataclasses.replace(cfg.data, sources=(str(changed),))
    cfg = dataclasses.replace(cfg, data=data)
    _run(cfg, wd.root)  # the same content under another name: no new data, nothing trained
    runs = sorted(p.name for p in wd.runs_dir.iterdir())
    with open(changed, "ab") as f:
        f.write(b"\0")
    message = _one_line_error(lambda: _run(cfg, wd.root), str(wd.data_root), str(changed))
    assert "changed" in message or "differ" in message, message
    assert sorted(p.name for p in wd.runs_dir.iterdir()) == runs


def test_train_with_a_missing_data_dir_writes_nothing(tmp_path: Path) -> None:
    from scaling.config import TrainConfig
    from scaling.model import NAMED_SIZES
    from scaling.train import train

    cfg = TrainConfig(
        data_dir=str(tmp_path / "nowhere"),
        out_dir=str(tmp_path / "run"),
        model=NAMED_SIZES["10k"],
        steps=2,
    )
    _one_line_error(lambda: train(cfg), str(tmp_path / "nowhere"))
    assert not (tmp_path / "run").exists()
