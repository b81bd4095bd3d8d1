"""The capped corpus mixed into the self-play learner's batches (``corpus_mix``): which rows a
batch holds, their targets, the errors before any game, and the study's arms."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from data_pipeline.encoding import NUM_ACTIONS
from data_pipeline.loader import read_examples
from mcts.corpus import Corpus
from mcts.env import MAX_MOVES
from mcts.learner import Learner, starting_point
from mcts.loop import run_selfplay
from mcts.run_config import check_config
from scaling.config import to_dict
from tests.test_loop import _cfg
from tests.test_replay_buffer import Traj


def test_corpus_rows_are_the_builds_train_positions(tiny_shards: Path) -> None:
    corpus = Corpus(tiny_shards)
    train = read_examples(tiny_shards, "train")
    assert corpus.size == len(train) > 0
    batch = corpus.sample(np.random.default_rng([0, 1]), 40)
    assert batch.policy_index.shape == batch.policy_weight.shape == (40, MAX_MOVES)
    # one slot: the move played, at weight 1; the rest padding at weight 0
    assert (batch.policy_weight[:, 0] == 1).all() and (batch.policy_weight[:, 1:] == 0).all()
    assert (batch.policy_index[:, 1:] == NUM_ACTIONS).all()
    rows = {(r["obs"].tobytes(), int(r["action"]), int(r["result"])) for r in train}
    drawn = zip(batch.obs, batch.policy_index[:, 0], batch.result, strict=True)
    assert all((o.tobytes(), int(a), int(r)) in rows for o, a, r in drawn)
    again = corpus.sample(np.random.default_rng([0, 1]), 40)  # the same generator, the same rows
    np.testing.assert_array_equal(again.obs, batch.obs)


def test_learner_batches_mix_replay_and_corpus(tiny_run: Path, tiny_shards: Path) -> None:
    cfg = _cfg(Path("unused"), str(tiny_run), corpus_mix=0.25, corpus_dir=str(tiny_shards))
    learner = Learner(cfg, starting_point(cfg))
    assert learner.corpus_rows == 4  # of train_batch 16
    learner.replay.add(Traj)
    batch = learner.batch(np.random.default_rng(0))
    assert batch.obs.shape[0] == 16
    own, corpus = slice(0, 12), slice(12, 16)
    np.testing.assert_array_equal(batch.policy_index[own, :2], [[7, 9]] * 12)  # the replay's
    assert set(batch.obs[own, 0].tolist()) <= {0, 1, 2} and (batch.mover_elo[own] == -1).all()
    assert (batch.policy_weight[corpus, 0] == 1).all()  # the corpus's: the move played
    assert (batch.policy_weight[corpus, 1:] == 0).all()
    metrics = learner.train(np.random.default_rng(1), 2)  # the compiled step takes that batch
    assert int(learner.state.step) == 2 and np.isfinite(metrics["loss"])


def test_a_mix_without_its_corpus_is_refused_before_any_game(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"corpus_mix = 0\.5 needs corpus_dir"):
        run_selfplay(_cfg(tmp_path / "a", corpus_mix=0.5), progress=False)
    with pytest.raises(FileNotFoundError, match=r"manifest\.json not found"):
        run_selfplay(_cfg(tmp_path / "b", corpus_mix=0.5, corpus_dir=str(tmp_path)), progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="corpus_mix must be in"):
        _cfg(tmp_path, corpus_mix=1.0)


def test_a_run_started_before_the_field_existed_resumes(tmp_path: Path) -> None:
    """A config.json without the fields added since (mcts.run_config.LATER_FIELDS: the corpus
    mix, the search's repetition penalty) reads as their defaults: not another config."""
    cfg = _cfg(tmp_path)
    (tmp_path / "checkpoints" / "1").mkdir(parents=True)
    old = json.loads(json.dumps(to_dict(cfg), default=str))
    del old["corpus_mix"], old["corpus_dir"], old["search"]["repetition_penalty"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    check_config(cfg)
    with pytest.raises(ValueError, match=r"\(corpus_mix differ\)"):
        check_config(dataclasses.replace(cfg, corpus_mix=0.5, corpus_dir="elsewhere"))
    contempt = dataclasses.replace(cfg.search, repetition_penalty=0.1)
    with pytest.raises(ValueError, match=r"\(search differ\)"):
        check_config(dataclasses.replace(cfg, search=contempt))


@pytest.mark.slow
def test_a_continued_run_with_a_mix_runs_to_its_budget(
    tiny_run: Path, tiny_shards: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path / "sp", str(tiny_run), corpus_mix=0.5, corpus_dir=str(tiny_shards))
    result = run_selfplay(cfg, progress=False)
    assert result["flops"] >= result["start_flops"] + cfg.budget_flops
    config = json.loads((tmp_path / "sp" / "config.json").read_text())
    assert config["corpus_mix"] == 0.5 and config["corpus_dir"] == str(tiny_shards)
    # the corpus may move (a study moved): the finished run is still its config's result
    moved = dataclasses.replace(cfg, corpus_dir=str(tmp_path / "elsewhere"))
    assert run_selfplay(moved, progress=False) == result
