"""The compute-optimal model size: log10 params = a + b log10 C of the frontier's run on a grid
of compute, and whether its exponent ``b`` is estimable from the study at all.

An exponent needs the frontier to pass through at least ``MIN_OPTIMAL_SIZES`` distinct sizes
(with two, the frontier's size is a step and any line through it is an artefact of the grid),
and an estimate inside its own bootstrap interval (at an end, the replicates do not bound it on
that side). ``not_estimable`` says which, in words, so that no table prints the number."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.fits import CurveFit, fit_curve
from analysis.forms import Linear
from analysis.frontier import frontier_curve

MIN_OPTIMAL_SIZES = 3  # distinct model sizes on a frontier for a compute-optimal exponent


def optimal_size_fit(
    study: pd.DataFrame,
    rows: np.ndarray,  # int[K] the group's rated rows
    x: np.ndarray,  # f64[N] log10 FLOPs of every row
    elo: np.ndarray,  # f64[N] ratings
    samples: np.ndarray | None,  # f64[R, N] bootstrap replicates of the ratings
    grid: int,
    level: float,
) -> CurveFit | None:
    """The fit on ``grid`` compute points over the group's range; None when fewer than two
    sizes ever reach the frontier."""
    if rows.size == 0 or study["params"].iloc[rows].nunique() < 2:
        return None
    xr = x[rows]
    xq = np.linspace(xr.min(), xr.max(), grid)  # f64[G]
    _, params = frontier_curve(study, rows, elo[None], xq)  # f64[1, G]
    y = np.log10(params[0])
    if np.unique(y[np.isfinite(y)]).size < 2:
        return None
    reps = None
    if samples is not None:
        _, p_rep = frontier_curve(study, rows, samples, xq)  # f64[R, G]
        reps = np.log10(p_rep)
    return fit_curve(
        Linear(),
        xq,
        y,
        mask=np.isfinite(y),
        samples=reps,
        sample_mask=None if reps is None else np.isfinite(reps),
        level=level,
    )


def not_estimable(study: pd.DataFrame, group: str, fit: CurveFit | None) -> str:
    """Why the exponent of ``group`` is not estimable ("" when it is): fewer than
    ``MIN_OPTIMAL_SIZES`` distinct sizes on the frontier, no fit, or an estimate at or outside
    an end of its own interval."""
    f = study[(study["group"] == group) & study["on_frontier"]].sort_values("params")
    sizes = list(dict.fromkeys(f["size"].astype(str)))
    if len(sizes) < MIN_OPTIMAL_SIZES:
        which = f" ({', '.join(sizes)})" if sizes else ""
        return (
            f"{len(sizes)} model size{'s' * (len(sizes) != 1)} on the frontier{which}: the "
            f"frontier's size is a step, and an exponent needs at least {MIN_OPTIMAL_SIZES}"
        )
    if fit is None:
        return "no fit"
    b = fit.param("b")
    if not np.isfinite(b.value):
        return b.why or "no fit"
    if np.isfinite(b.lo) and np.isfinite(b.hi) and not b.lo < b.value < b.hi:
        return (
            f"the estimate lies at or outside an end of its own {fit.level:.0%} bootstrap "
            "interval: the replicates do not bound it on that side"
        )
    return ""
