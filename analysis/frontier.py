"""The compute-Elo frontier: the best Elo reached at each compute across model sizes.

Within a group (one regime and cap), every run is a learning curve: Elo against log10 FLOPs
through its checkpoints, linearly interpolated between them. The frontier at a compute C is the
highest of the curves that cover C; a checkpoint is *on the frontier* when no other run of its
group is interpolated above it at its own compute. (No running maximum over compute: a run that
stopped earlier does not compete past its last checkpoint, so noise in one early checkpoint
never hides the later ones.) A run covers its checkpoints' compute widened by ``COVER_DECADES``
either side, held flat there: runs of one nominal budget spend slightly different FLOPs (whole
steps of different sizes), and a study that rates one checkpoint per run (an IsoFLOP design)
must compare them, where exact coverage would put every one of them on the frontier.

Everything is computed for a whole matrix of Elo replicates at once (``elo f64[R, N]``, one row
per bootstrap replicate), so the bootstrap re-selects the frontier in every replicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

GROUP_COLUMNS: tuple[str, str] = ("regime", "cap")
_TOL = 1e-9  # Elo: ties within this count as on the frontier
# log10 FLOPs: how far past its first and last checkpoints a run competes (0.02 decade, 4.7%;
# one nominal budget's runs differ by under 1%, a study's budgets by 0.25 decade or more)
COVER_DECADES = 0.02


def group_label(regime: str, cap: Any) -> str:
    """``supervised cap 1500``, ``selfplay_scratch``: how groups are named in tables."""
    return regime if cap is None or pd.isna(cap) else f"{regime} cap {int(cap)}"


@dataclass(frozen=True, kw_only=True)
class Groups:
    """Row positions of the study frame split by (regime, cap) and, inside, by run."""

    keys: tuple[tuple[str, object], ...]  # (regime, cap) per group; cap is NaN for scratch
    group: np.ndarray  # i64[N]: group index of each row
    curve: np.ndarray  # i64[N]: run index of each row (global over groups)


def groups(study: pd.DataFrame) -> Groups:
    """Groups of the rows by (regime, cap) and by run_id."""
    regime_codes, regimes = pd.factorize(study["regime"], sort=True)
    cap = study["cap"].to_numpy(dtype=float, na_value=np.nan)
    pairs = np.stack([regime_codes.astype(float), np.where(np.isnan(cap), -1.0, cap)], -1)
    unique, gid = np.unique(pairs.reshape(-1, 2), axis=0, return_inverse=True)
    keys = tuple((str(regimes[int(r)]), np.nan if c < 0 else int(c)) for r, c in unique.tolist())
    curve = pd.factorize(study["run_id"], sort=True)[0].astype(np.int64)
    return Groups(keys=keys, group=gid.reshape(-1).astype(np.int64), curve=curve)


def _envelope(
    xq: np.ndarray, x: np.ndarray, curve: np.ndarray, elo: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The upper envelope of the curves at the query points.

    xq f64[Q] sorted; x f64[n], curve i64[n], elo f64[R, n]: the points of one group.
    Returns (best f64[R, Q], which i64[R, Q]): the highest interpolated Elo (-inf where no
    curve covers the point) and the curve it comes from (-1 there).
    """
    best = np.full((elo.shape[0], xq.size), -np.inf)
    which = np.full((elo.shape[0], xq.size), -1, dtype=np.int64)
    order = np.lexsort((x, curve))
    x, curve, elo = x[order], curve[order], elo[:, order]
    bounds = np.flatnonzero(np.diff(curve)) + 1
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, x.size], strict=True):
        xs, ys = x[start:stop], elo[:, start:stop]  # f64[n_c], f64[R, n_c]
        q0 = np.searchsorted(xq, xs[0] - COVER_DECADES, "left")
        q1 = np.searchsorted(xq, xs[-1] + COVER_DECADES, "right")
        if q1 <= q0:
            continue
        xc = xq[q0:q1]
        if xs.size == 1:
            val = np.repeat(ys[:, :1], q1 - q0, axis=1)
        else:
            i = np.clip(np.searchsorted(xs, xc, "right") - 1, 0, xs.size - 2)
            dx = xs[i + 1] - xs[i]
            t = np.divide(xc - xs[i], dx, out=np.zeros_like(xc), where=dx > 0)
            t = np.clip(t, 0.0, 1.0)  # flat past the ends (within COVER_DECADES)
            val = ys[:, i] * (1.0 - t) + ys[:, i + 1] * t  # f64[R, q]
        better = val > best[:, q0:q1]
        best[:, q0:q1] = np.where(better, val, best[:, q0:q1])
        which[:, q0:q1] = np.where(better, curve[start], which[:, q0:q1])
    return best, which


def frontier_masks(study: pd.DataFrame, elo: np.ndarray) -> np.ndarray:
    """bool[R, N]: row n is on its group's frontier in replicate r. ``elo`` is f64[R, N]
    aligned with the rows of ``study``; rows with a NaN Elo are never on the frontier (and must
    be NaN in every replicate or in none)."""
    elo = np.atleast_2d(np.asarray(elo, dtype=float))
    if elo.shape[1] != len(study):
        raise ValueError(f"Elo matrix has {elo.shape[1]} columns for {len(study)} checkpoints")
    finite = np.isfinite(elo)
    rated = finite.all(axis=0)
    if (finite.any(axis=0) & ~rated).any():
        raise ValueError("Elo replicates are NaN for some replicates of a rated checkpoint")
    g = groups(study)
    x = study["log10_flops"].to_numpy(dtype=float)
    mask = np.zeros(elo.shape, dtype=bool)
    for k in range(len(g.keys)):
        rows = np.flatnonzero((g.group == k) & rated)
        if rows.size == 0:
            continue
        order = rows[np.argsort(x[rows], kind="stable")]
        best, _ = _envelope(x[order], x[order], g.curve[order], elo[:, order])
        mask[:, order] = elo[:, order] >= np.maximum(best, elo[:, order]) - _TOL
    return mask


def frontier(study: pd.DataFrame, elo_samples: np.ndarray | None = None) -> pd.DataFrame:
    """The study frame with ``group`` (label), ``on_frontier`` (from the rated Elo) and
    ``frontier_share`` (fraction of replicates in which the row is on the frontier; NaN without
    replicates)."""
    on = frontier_masks(study, study["elo"].to_numpy(dtype=float))[0]
    on_rep = None if elo_samples is None else frontier_masks(study, elo_samples)
    return frontier_frame(study, on, on_rep)


def frontier_frame(study: pd.DataFrame, on: np.ndarray, on_rep: np.ndarray | None) -> pd.DataFrame:
    """``frontier``'s frame from masks already computed: on bool[N], on_rep bool[R, N]."""
    out = study.copy()
    out["group"] = [group_label(r, c) for r, c in zip(out["regime"], out["cap"], strict=True)]
    out["on_frontier"] = on
    out["frontier_share"] = np.nan if on_rep is None else on_rep.mean(axis=0)
    return out


def frontier_curve(
    study: pd.DataFrame, rows: np.ndarray, elo: np.ndarray, xq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The frontier of the given rows (one group) on a grid of log10 FLOPs.

    rows i64[n] positions in ``study``; elo f64[R, N] (all rows); xq f64[Q] sorted. Returns
    (best f64[R, Q], params f64[R, Q]): the frontier Elo and the parameter count of the run that
    reaches it (NaN and NaN where no run covers the compute).
    """
    elo = np.atleast_2d(np.asarray(elo, dtype=float))
    x = study["log10_flops"].to_numpy(dtype=float)[rows]
    curve = groups(study).curve[rows]
    best, which = _envelope(np.asarray(xq, dtype=float), x, curve, elo[:, rows])
    params_of_curve = np.full(int(curve.max()) + 1 if rows.size else 1, np.nan)
    params_of_curve[curve] = study["params"].to_numpy(dtype=float)[rows]
    params = np.where(which >= 0, params_of_curve[which], np.nan)
    return np.where(np.isfinite(best), best, np.nan), params
