"""The resignation threshold kept where false resignations stay rare, as AlphaZero kept it.

A fraction of self-play games is played out without resigning (``no_resign_fraction``). From
each such game's root values the calibrator knows, for every candidate threshold v of a grid,
which side would have resigned first had the threshold been v (the first row whose root value,
the mover's view, is below v), and whether that side then lost. A would-be resignation by a
side that did not lose (drew or won) is false. After every iteration the threshold is set to
the highest candidate whose false-resignation rate over the last ``window`` played-out games is
at most ``target``, and so is every lower candidate's with at least ``min_events`` would-be
resignations (a resignation that is safe at -0.8 but not at -0.9 is noise, not safety); a
candidate needs ``min_events`` would-be resignations to be chosen at all. Until some candidate
has them, the configured threshold stays. Games are assumed to start at the standard position
(white moves at even rows), as the self-play loop's do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["GRID", "ResignCalibrator"]

GRID = np.round(np.arange(-0.99, -0.495, 0.01), 2)  # candidate thresholds, ascending
GRID32 = GRID.astype(np.float32)  # compared in the root values' own precision


@dataclasses.dataclass
class ResignCalibrator:
    """Would-be resignations of the last ``window`` played-out games, per candidate threshold."""

    target: float  # the highest false-resignation rate allowed (AlphaZero: 5%)
    window: int  # played-out games remembered
    min_events: int  # would-be resignations a candidate needs to be judged
    value: float  # the threshold in force
    first: np.ndarray = dataclasses.field(init=False)  # int8[W, K] colour first below; -1 none
    lost: np.ndarray = dataclasses.field(init=False)  # bool[W, K] that colour lost the game
    games: int = 0  # played-out games added so far (the ring's head is games % window)

    def __post_init__(self) -> None:
        if not 0.0 <= self.target < 1.0:
            raise ValueError(f"selfplay resign_target must be in [0, 1), got {self.target}")
        if self.window < 1 or self.min_events < 1:
            raise ValueError("selfplay resign_window and resign_min_events must be >= 1")
        self.first = np.full((self.window, len(GRID)), -1, np.int8)
        self.lost = np.zeros((self.window, len(GRID)), np.bool_)

    def add(self, traj: Any) -> None:
        """Records the played-out games of a ``mcts.selfplay.Trajectory`` (host arrays)."""
        out = ~np.asarray(traj.resign_allowed)
        values = np.asarray(traj.value, np.float32)  # f32[T, G], the mover's view
        valid = np.asarray(traj.valid)
        result = np.asarray(traj.result).astype(np.int32)  # white's view
        for g in np.flatnonzero(out):
            below = valid[None, :, g] & (values[None, :, g] < GRID32[:, None])  # [K, T]
            has = below.any(axis=1)
            row = np.argmax(below, axis=1)  # the first row below each candidate
            colour = np.where(has, row % 2, -1).astype(np.int8)
            own = np.where(colour == 0, result[g], -result[g])  # the side's own result
            slot = self.games % self.window
            self.first[slot], self.lost[slot] = colour, has & (own < 0)
            self.games += 1

    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """(would-be resignations int[K], false ones int[K]) over the window."""
        held = min(self.games, self.window)
        would = self.first[:held] >= 0
        return would.sum(axis=0), (would & ~self.lost[:held]).sum(axis=0)

    def update(self) -> float:
        """Sets and returns the threshold (see the module doc)."""
        n, false = self.rates()
        judged = n >= self.min_events
        safe = ~judged | (false <= self.target * n)
        ok = np.cumprod(safe).astype(bool) & judged  # safe here and at every lower candidate
        if ok.any():
            self.value = float(GRID[np.flatnonzero(ok)[-1]])
        return self.value

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "first": self.first,
            "lost": self.lost,
            "games": np.asarray(self.games, np.int64),
            "value": np.asarray(self.value, np.float64),
        }

    def load(self, arrays: dict[str, Any]) -> None:
        self.first = np.array(arrays["first"], np.int8)
        self.lost = np.array(arrays["lost"], np.bool_)
        self.games = int(arrays["games"])
        self.value = float(arrays["value"])
