"""Test-time search as a knob: Elo against the arena's simulations N for chosen checkpoints.

A study may rate some checkpoints at several N (``[arena] test_time_sims``): each (checkpoint,
N) is a player of its own (``<run id>@<step>-s<N>``) in the same pool and rating fit as every
other, so its Elo is on the study's one scale. Only the players at the study's N (contract 3:
the same N for every checkpoint) enter the compute-Elo curves; ``split_by_sims`` takes the
registry frame of ``analysis.registry.load_study`` apart into those rows and a
``SearchScaling``: every rated point of the checkpoints that have more than one N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# the columns of SearchScaling.points, one row per (checkpoint, N)
POINT_COLUMNS: tuple[str, ...] = (
    "checkpoint",
    "agent",
    "sims",
    "regime",
    "cap",
    "size",
    "params",
    "flops",
    "elo",
    "elo_lo",
    "elo_hi",
    "rating_games",
)


@dataclass(frozen=True, kw_only=True)
class SearchScaling:
    """The checkpoints rated at several N, each N with its rating and interval."""

    curve_sims: int  # the N of the compute-Elo curves (contract 3)
    points: pd.DataFrame  # POINT_COLUMNS, sorted by FLOPs, checkpoint and N; empty when none
    level: float  # the level of the intervals (those of ratings.csv)
    why: str = ""  # why there are no points (empty when there are)

    @property
    def checkpoints(self) -> list[str]:
        return list(dict.fromkeys(self.points["checkpoint"]))

    def to_dict(self) -> dict[str, Any]:
        """For fits.json: per checkpoint its identity and compute, and per N the player's name,
        Elo, interval bounds (``level``) and games; ``why`` when there is none."""
        checkpoints = []
        for checkpoint, rows in self.points.groupby("checkpoint", sort=False):
            first = rows.iloc[0]
            checkpoints.append(
                {
                    "checkpoint": str(checkpoint),
                    "regime": str(first["regime"]),
                    "cap": None if pd.isna(first["cap"]) else int(first["cap"]),
                    "size": str(first["size"]),
                    "params": int(first["params"]),
                    "flops": float(first["flops"]),
                    "points": [
                        {
                            "sims": int(r["sims"]),
                            "agent": str(r["agent"]),
                            "elo": float(r["elo"]),
                            "lo": float(r["elo_lo"]),
                            "hi": float(r["elo_hi"]),
                            "games": float(r["rating_games"]),
                        }
                        for _, r in rows.iterrows()
                    ],
                }
            )
        out: dict[str, Any] = {
            "curve_sims": self.curve_sims,
            "level": self.level,
            "checkpoints": checkpoints,
        }
        return out | ({"why": self.why} if self.why else {})


def curve_sims(study: pd.DataFrame, sims: int | None = None) -> int:
    """The N of the compute-Elo curves: ``sims`` when given (a registry with checkpoints must
    rate some at it); otherwise the one N every checkpoint of the registry is rated at. An
    error where the registry cannot tell (several such N)."""
    rated_at = pd.to_numeric(study["sims"]).astype(int)
    values = sorted({int(v) for v in rated_at})
    if sims is not None:
        if values and sims not in values:
            raise ValueError(f"no checkpoint of the registry is rated at sims = {sims} ({values})")
        return sims
    if len(values) <= 1:
        return values[0] if values else 0
    every = study.groupby(rated_at)["checkpoint"].nunique()
    full = [int(n) for n, count in every.items() if count == study["checkpoint"].nunique()]
    if len(full) != 1:
        raise ValueError(
            f"the registry rates checkpoints at sims {values}: name the compute-Elo curves' N "
            "(ReportConfig.sims; a study sets it from arena.sims)"
        )
    return full[0]


def split_by_sims(
    study: pd.DataFrame, sims: int | None = None, *, level: float = 0.90
) -> tuple[pd.DataFrame, SearchScaling]:
    """The rows at the curves' N (see ``curve_sims``; index reset) and the test-time points:
    every row of each checkpoint rated at more than one N. ``level``: of the intervals."""
    n = curve_sims(study, sims)
    rated_at = pd.to_numeric(study["sims"]).astype(int)
    curves = study[(rated_at == n).to_numpy()].reset_index(drop=True)
    counts = study.groupby("checkpoint")["sims"].nunique()
    several = study["checkpoint"].map(counts).to_numpy() > 1
    points = study.loc[several, list(POINT_COLUMNS)].copy()
    points["sims"] = points["sims"].astype(int)
    points = points.sort_values(["flops", "checkpoint", "sims"], kind="stable")
    why = "" if len(points) else "no checkpoint is rated at more than one N (arena.test_time_sims)"
    if len(points) and not np.isfinite(points["elo"].to_numpy(dtype=float)).any():
        why = "no test-time player is rated yet"
    scaling = SearchScaling(
        curve_sims=n, points=points.reset_index(drop=True), level=level, why=why
    )
    return curves, scaling
