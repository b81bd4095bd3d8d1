"""Curve fits with bootstrap intervals, and the comparison of two slopes.

Uncertainty comes from a matrix of Elo replicates ``f64[R, N]`` (a bootstrap over games: the
ratings refitted on resampled games, one row per replicate): every replicate is refitted, and an
interval is the percentile interval of the refitted parameters. The bootstrap over games covers
the noise of the ratings only, so for lack of fit the replicates' deviations from the observed
ratings are widened before they are refitted (the data's noise is inflated, not the fitted
parameters: bounds, such as a slope's 0, and unidentified parameters are then handled by the
fit itself, exactly as in the point fit, which is row 0 of the same batch): by
max(1, sqrt(chi2 / dof) * t_dof / z) (the Particle Data Group's scale factor, chi2 weighing the
residuals by the replicates' standard deviations, times t_dof / z at the interval's level since
that scatter is estimated from dof degrees of freedom; the floor of 1 is the ratings' own,
known noise). Intervals are widened, never narrowed.

A change of slope is declared real at level alpha when the (1 - alpha) interval of the
difference excludes 0, i.e. when the two-sided bootstrap p-value is below alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from analysis.forms import FitForm, fit_batch


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A point estimate with its percentile interval; ``why`` says why a value or the interval
    is missing (NaN) or unbounded ("" when both are there)."""

    value: float
    lo: float
    hi: float
    why: str = ""

    @staticmethod
    def of(value: float, replicates: np.ndarray | None, level: float) -> Estimate:
        """replicates f64[R]; NaN entries are failed refits. They are left out while they are
        at most half of the interval's tails, (1 - level) / 2 of the replicates (a refit fails
        where a replicate's frontier has too few points); with more, which side they would
        fall on decides the interval, so there is none."""
        if np.isnan(value):
            return Estimate(value=np.nan, lo=np.nan, hi=np.nan, why="no fit")
        if replicates is None:
            return Estimate(value=float(value), lo=np.nan, hi=np.nan, why="no bootstrap replicates")
        r = np.asarray(replicates, dtype=float)
        failed = int(np.isnan(r).sum())
        if r.size - failed < 2 or failed > (1.0 - level) / 2 * r.size:
            why = f"{failed} of {r.size} bootstrap refits failed (too few frontier points)"
            return Estimate(value=float(value), lo=np.nan, hi=np.nan, why=why)
        lo, hi = interval(r, level)
        # Replicates equal to the estimate (the same frontier, the same fit) differ from it by
        # rounding only, where the batch's matrix products sum in another order.
        eps = 1e-9 * (1.0 + abs(float(value)))
        lo = float(value) if 0 < lo - value <= eps else lo
        hi = float(value) if 0 < value - hi <= eps else hi
        return Estimate(value=float(value), lo=lo, hi=hi)

    def to_dict(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"value": self.value, "lo": self.lo, "hi": self.hi}
        if self.why:
            out["why"] = self.why
        return out


def interval(replicates: np.ndarray | None, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite-or-infinite replicates f64[R]."""
    if replicates is None:
        return np.nan, np.nan
    r = np.asarray(replicates, dtype=float)
    r = r[~np.isnan(r)]
    if r.size < 2:
        return np.nan, np.nan
    q = np.quantile(r, [0.5 - level / 2, 0.5 + level / 2], method="linear")
    return float(q[0]), float(q[1])


@dataclass(frozen=True, kw_only=True)
class CurveFit:
    """A form fitted to points (x = log10 FLOPs, Elo) with bootstrap replicates."""

    form: FitForm
    estimate: np.ndarray  # f64[P], in the order of form.params
    replicates: np.ndarray | None  # f64[R, P], fitted to data widened for lack of fit; or None
    n: int  # points in the point fit
    chi2: float  # weighted residual sum of squares of the point fit
    dof: int  # n - free parameters
    scale: float  # lack-of-fit factor applied to the replicate deviations (>= 1)
    absolute: bool  # whether the weights were 1 / (rating standard error)^2
    failed: int  # replicates without a fit (too few points on the frontier)
    x_range: tuple[float, float]  # the x of the fitted points
    level: float  # the confidence level of intervals
    unidentified: str = ""  # why the data do not identify the parameters ("" when they do)

    def param(self, name: str) -> Estimate:
        if name not in self.form.params:
            raise ValueError(f"form {self.form.name} has no parameter {name!r}")
        if self.unidentified:
            return Estimate(value=np.nan, lo=np.nan, hi=np.nan, why=self.unidentified)
        i = self.form.params.index(name)
        reps = None if self.replicates is None else self.replicates[:, i]
        return Estimate.of(float(self.estimate[i]), reps, self.level)

    def replicate(self, name: str) -> np.ndarray | None:
        """f64[R] replicates of one parameter (None without bootstrap)."""
        if self.replicates is None:
            return None
        return self.replicates[:, self.form.params.index(name)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The fitted curve at x f64[Q] -> f64[Q]."""
        return self.form.predict(self.estimate, np.asarray(x, dtype=float))

    def band(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the curve at x f64[Q]: (lo f64[Q], hi f64[Q])."""
        x = np.asarray(x, dtype=float)
        if self.replicates is None:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        ok = np.isfinite(self.replicates).all(axis=1)
        curves = self.form.predict(self.replicates[ok], x)  # f64[R', Q]
        if curves.shape[0] < 2:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        q = np.quantile(curves, [0.5 - self.level / 2, 0.5 + self.level / 2], axis=0)
        return q[0], q[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": self.form.name,
            "params": {p: self.param(p).to_dict() for p in self.form.params},
            "n": self.n,
            "chi2": self.chi2,
            "dof": self.dof,
            "scale": self.scale,
            "absolute_weights": self.absolute,
            "failed_replicates": self.failed,
            "unidentified": self.unidentified or None,
            "x_range": list(self.x_range),
        }


def weights_from_se(se: np.ndarray | None, n: int) -> tuple[np.ndarray, bool]:
    """(w f64[n], absolute): 1 / se^2 where every standard error is finite and positive
    (floored at 1 Elo), else equal weights that carry no absolute scale."""
    if se is None:
        return np.ones(n), False
    se = np.asarray(se, dtype=float)
    if se.shape != (n,) or not (np.isfinite(se) & (se > 0)).all():
        return np.ones(n), False
    return 1.0 / np.maximum(se, 1.0) ** 2, True


def fit_curve(
    form: FitForm,
    x: np.ndarray,
    elo: np.ndarray,
    *,
    se: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    samples: np.ndarray | None = None,
    sample_mask: np.ndarray | None = None,
    level: float = 0.90,
) -> CurveFit:
    """Fits ``form`` to the points, and to every bootstrap replicate.

    x f64[N] log10 FLOPs; elo f64[N]; se f64[N] rating standard errors (None: equal weights);
    mask bool[N] the points of the point fit (default: all finite); samples f64[R, N] Elo
    replicates; sample_mask bool[R, N] the points of each replicate's fit (default: mask).
    """
    x = np.asarray(x, dtype=float)
    elo = np.asarray(elo, dtype=float)
    n_all = x.size
    mask = np.isfinite(elo) if mask is None else np.asarray(mask, dtype=bool) & np.isfinite(elo)
    if mask.sum() < form.n_free(x[mask]):
        raise ValueError(
            f"{form.name} fit needs {form.n_free(x[mask])} points, got {int(mask.sum())}"
        )
    smask = None
    used = mask
    if samples is not None:
        samples = np.atleast_2d(np.asarray(samples, dtype=float))
        if samples.shape[1] != n_all:
            raise ValueError(f"replicates have {samples.shape[1]} points, data {n_all}")
        smask = mask[None, :] if sample_mask is None else np.asarray(sample_mask, dtype=bool)
        smask = np.broadcast_to(smask, samples.shape) & np.isfinite(samples)
        used = mask | smask.any(axis=0)
    keep = np.flatnonzero(used)  # only the points some fit uses reach the engine
    x, elo, mask = x[keep], elo[keep], mask[keep]
    w, absolute = weights_from_se(None if se is None else np.asarray(se)[keep], keep.size)
    estimate, chi2, _ = _fit_rows(form, x, elo, mask, w)
    n = int(mask.sum())
    dof = n - form.n_free(x[mask])
    scale = lack_of_fit_scale(chi2, dof, level) if absolute else 1.0
    replicates, failed = None, 0
    if samples is not None and smask is not None:
        smask, samples = smask[:, keep], samples[:, keep]
        # Lack of fit widens the data's noise, not the fitted parameters: each replicate is the
        # observed ratings plus its deviation from them times ``scale``, refitted (bounds and
        # unidentified parameters are then handled by the fit itself, as in the point fit).
        widened = np.where(smask, elo + scale * (samples - elo), 0.0)
        replicates = _fit_rows(form, x, elo, mask, w, widened, smask)[2]
        failed = 0 if replicates is None else int(np.isnan(replicates).any(axis=1).sum())
    xs = x[mask]
    return CurveFit(
        form=form,
        estimate=estimate,
        replicates=replicates,
        n=n,
        chi2=float(chi2),
        dof=dof,
        scale=scale,
        absolute=absolute,
        failed=failed,
        x_range=(float(xs.min()), float(xs.max())),
        level=level,
        unidentified=form.unidentified(estimate, x) if np.isfinite(estimate).all() else "",
    )


def _fit_rows(
    form: FitForm,
    x: np.ndarray,
    elo: np.ndarray,
    mask: np.ndarray,
    w: np.ndarray,
    samples: np.ndarray | None = None,
    smask: np.ndarray | None = None,
) -> tuple[np.ndarray, float, np.ndarray | None]:
    """The point fit and the replicates' fits as rows of one ``fit_batch`` (one procedure, one
    grid): x, elo, w f64[N], mask bool[N]; samples f64[R, N], smask bool[R, N]. Returns
    (estimate f64[P], chi2, replicates f64[R, P] or None)."""
    y, used = np.where(mask, elo, 0.0)[None], mask[None]
    if samples is not None and smask is not None:
        y = np.concatenate([y, np.where(smask, samples, 0.0)])
        used = np.concatenate([used, smask])
    fitted, rss = fit_batch(form, x, y, np.where(used, w, 0.0))
    return fitted[0], float(rss[0]), (fitted[1:] if samples is not None else None)


def lack_of_fit_scale(chi2: float, dof: int, level: float) -> float:
    """The factor that widens replicate deviations: max(1, sqrt(chi2 / dof) * t_dof / z) at
    ``level``. The interval is the wider of two: the ratings' own noise (the bootstrap, known:
    factor 1, right when the curve's form is), and the scatter about the curve estimated from
    dof degrees of freedom (Student's t, right when the points scatter beyond their noise).
    Multiplying the known noise by t / z even when the points scatter less than it would widen
    a 3-point fit 3.8x for an uncertainty that is not estimated. 1 when dof < 1."""
    if dof < 1 or not np.isfinite(chi2):
        return 1.0
    q = 0.5 + level / 2
    t_over_z = float(stats.t.ppf(q, dof) / stats.norm.ppf(q))
    return float(max(1.0, np.sqrt(chi2 / dof) * t_over_z))


@dataclass(frozen=True, kw_only=True)
class SlopeComparison:
    """Two slopes (Elo per decade of compute), their difference (second - first) and a test."""

    label: str  # what is compared, e.g. "cap 1500: supervised -> self-play"
    method: str  # how the slopes were fitted
    first_name: str  # e.g. "supervised" (before the switch) or "selfplay_scratch"
    second_name: str  # e.g. "selfplay_cap" (after the switch)
    first: Estimate
    second: Estimate
    difference: Estimate  # second - first
    p_value: float  # two-sided bootstrap p-value of "no change"; NaN without replicates
    real: bool | None  # p_value < alpha; None without replicates
    alpha: float
    multiplier_first: Estimate  # compute factor for the next `elo_gain` Elo: 10**(gain / b)
    multiplier_second: Estimate
    elo_gain: float
    breakpoint: Estimate | None = None  # log10 FLOPs of the switch (fitted or fixed)
    gap: Estimate | None = None  # second's curve minus first's at log10 FLOPs `gap_at`
    gap_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "method": self.method,
            "first_name": self.first_name,
            "second_name": self.second_name,
        }
        for key in ("first", "second", "difference", "multiplier_first", "multiplier_second"):
            out[key] = getattr(self, key).to_dict()
        out.update(p_value=self.p_value, real=self.real, alpha=self.alpha, elo_gain=self.elo_gain)
        if self.breakpoint is not None:
            out["breakpoint"] = self.breakpoint.to_dict()
        if self.gap is not None:
            out.update(gap=self.gap.to_dict(), gap_at=self.gap_at)
        return out


def multiplier(slope: np.ndarray | float, gain: float) -> np.ndarray:
    """10**(gain / slope): the factor of compute that buys ``gain`` Elo (inf if slope <= 0)."""
    b = np.asarray(slope, dtype=float)
    exponent = np.divide(gain, b, out=np.full(b.shape, np.inf), where=b > 0)
    with np.errstate(over="ignore"):
        return np.where(np.isnan(b), np.nan, 10.0 ** np.minimum(exponent, 400.0))


def bootstrap_p_value(replicates: np.ndarray | None) -> float:
    """Two-sided p-value of "the quantity is 0" from its replicates f64[R]."""
    if replicates is None:
        return np.nan
    r = np.asarray(replicates, dtype=float)
    r = r[~np.isnan(r)]
    if r.size == 0:
        return np.nan
    return float(min(1.0, 2.0 * min(np.mean(r <= 0.0), np.mean(r >= 0.0))))


def compare_slopes(
    *,
    label: str,
    method: str,
    first: tuple[str, CurveFit, str],
    second: tuple[str, CurveFit, str],
    alpha: float = 0.10,
    elo_gain: float = 100.0,
    breakpoint: Estimate | None = None,
    gap_at: float | None = None,
) -> SlopeComparison:
    """Compares two slopes, each given as (name, fit, parameter), e.g.
    ``("supervised", fit, "b1")``. The fits must come from the same replicates (the same
    bootstrap over games), so that the difference is taken replicate by replicate. ``gap_at``:
    also the difference of the two curves at that log10 FLOPs."""
    name_b, fb, nb = first
    name_a, fa, na = second
    level = fa.level
    b0, b1 = fb.param(nb), fa.param(na)
    rb, ra = fb.replicate(nb), fa.replicate(na)
    diff_reps = None if rb is None or ra is None else ra - rb
    if rb is not None and ra is not None and rb.shape != ra.shape:
        raise ValueError("the two fits come from different numbers of replicates")
    p = bootstrap_p_value(diff_reps)

    def mult(est: Estimate) -> Estimate:
        value, lo, hi = (float(multiplier(v, elo_gain)) for v in (est.value, est.hi, est.lo))
        why = est.why
        if est.value <= 0:
            why = "the slope is not positive"
        elif est.lo <= 0:
            why = "no upper bound: the slope's interval reaches 0"
        return Estimate(value=value, lo=lo, hi=hi, why=why)

    gap = None
    if gap_at is not None:
        xq = np.array([gap_at])
        value = float(fa.predict(xq)[0] - fb.predict(xq)[0])
        reps = None
        if fa.replicates is not None and fb.replicates is not None:
            reps = (
                fa.form.predict(fa.replicates, xq)[:, 0] - fb.form.predict(fb.replicates, xq)[:, 0]
            )
        gap = Estimate.of(value, reps, level)
    return SlopeComparison(
        label=label,
        method=method,
        first_name=name_b,
        second_name=name_a,
        first=b0,
        second=b1,
        difference=Estimate.of(b1.value - b0.value, diff_reps, level),
        p_value=p,
        real=None if np.isnan(p) else bool(p < alpha),
        alpha=alpha,
        multiplier_first=mult(b0),
        multiplier_second=mult(b1),
        elo_gain=elo_gain,
        breakpoint=breakpoint,
        gap=gap,
        gap_at=gap_at,
    )
