"""Rows of a data build mixed into the self-play learner's batches (``corpus_mix``).

A run continued from a supervised checkpoint forgets what the capped games taught it when it
learns from its own few hundred games alone: on held-out positions of the cap's data its value
head fell from 0.54 to 0.14 accuracy within 200 learner steps and its Elo by 430
(BENCHMARKS.md 13f, 13g). Mixing a fixed fraction of the corpus into every batch keeps that
knowledge in the loss beside the search's targets (a behavioural-cloning term, the data-side
form of the KL to its supervised policy that AlphaStar kept); measured, it stops the collapse
but has not made continuation rise above its start. Rows are drawn uniformly with replacement
from the build's train split by the learner's own per-iteration generator, so a resumed run
draws the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_pipeline.encoding import NUM_ACTIONS
from mcts.env import MAX_MOVES
from scaling.batch import TrainBatch, supervised_batch

if TYPE_CHECKING:
    from mcts.run_config import SelfPlayRunConfig

__all__ = ["Corpus", "concat"]


class Corpus:
    """Random access to the train split of a data build (or a cap view of one)."""

    def __init__(self, data_dir: str | Path) -> None:
        from data_pipeline.loader import BatchSource, LoaderConfig, split_shards

        self.data_dir = Path(data_dir)
        shards, select = split_shards(self.data_dir, "train")  # names the file if it is missing
        self.source = BatchSource(shards, select, LoaderConfig(batch_size=1), split="train")
        self.size = self.source.num_records

    @classmethod
    def of(cls, cfg: SelfPlayRunConfig) -> Corpus:
        """The corpus of a run with ``corpus_mix`` > 0 (a one-line error without one)."""
        if not cfg.corpus_dir:
            raise ValueError(
                f"selfplay corpus_mix = {cfg.corpus_mix} needs corpus_dir, the data build "
                "whose train split is mixed into the learner's batches"
            )
        return cls(cfg.corpus_dir)

    def sample(self, rng: np.random.Generator, n: int) -> TrainBatch:
        """``n`` positions, the move played as a one-slot target padded to ``MAX_MOVES`` slots
        (the replay buffer's batch shape)."""
        idx = np.sort(rng.integers(0, self.size, n))  # sorted: reads in stored order
        b = supervised_batch(self.source.take(idx))
        index = np.full((n, MAX_MOVES), NUM_ACTIONS, np.int32)
        weight = np.zeros((n, MAX_MOVES), np.float32)
        index[:, :1], weight[:, :1] = b.policy_index, b.policy_weight
        return TrainBatch(
            obs=b.obs,
            policy_index=index,
            policy_weight=weight,
            result=b.result,
            mover_elo=b.mover_elo,
        )


def concat(a: TrainBatch, b: TrainBatch) -> TrainBatch:
    """The rows of ``a`` then those of ``b``."""
    return TrainBatch(
        obs=np.concatenate([a.obs, b.obs]),
        policy_index=np.concatenate([a.policy_index, b.policy_index]),
        policy_weight=np.concatenate([a.policy_weight, b.policy_weight]),
        result=np.concatenate([a.result, b.result]),
        mover_elo=np.concatenate([a.mover_elo, b.mover_elo]),
    )
