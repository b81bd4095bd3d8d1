"""Curve forms for Elo against x = log10(compute), and the least-squares engine that fits them.

Every form is *separable*: for fixed values of its few nonlinear parameters (a kink, a
breakpoint, a sigmoid's centre and steepness) it is linear in the rest. The engine profiles the
nonlinear parameters over a grid, solving the weighted linear least squares in closed form for
every grid point and every bootstrap replicate at once, then refines each row by a pattern
search on a 9-point local grid per parameter (the step shrinks 4x when the best point is
inside the window, and stays while it is on its edge) down to about 1e-5 of the coarse step.
The point fit and every bootstrap replicate go through exactly this one procedure (a row of
``fit_batch`` each), so an estimate and its replicates differ only by their data. Linear
coefficients marked non-negative (a slope, a sigmoid's height) are held at 0 where the free
solution would be negative.

Parameters a form cannot identify are put in one canonical place (``FitForm.canonical``, per
row, from the row's own data range): a change point without an incline is flat, with its kink
at the first point; a kink past the last point is at the last point (no plateau reached); a
sigmoid without height has its centre mid-range and its smallest steepness. Without this, an
unidentified kink takes any value the grid's tie-break gives, and the estimate and its
replicates scatter independently (an estimate outside its own interval).

Forms live in a registry (``FORMS``; ``make_form("changepoint")``):

- ``linear``: Elo = a + b x.
- ``changepoint`` (Jones 2021): Elo = min(plateau, a + b x), b >= 0; ``x_kink`` is where the
  incline meets the plateau (at the last point when no plateau is reached).
- ``sigmoid``: Elo = floor + (plateau - floor) / (1 + exp(-k (x - x_mid))); ``b`` = the steepest
  slope, (plateau - floor) k / 4 Elo per decade.
- ``segmented``: Elo = a + b1 min(x - x_break, 0) + b2 max(x - x_break, 0), continuous, with the
  breakpoint fitted or fixed (``make_form("segmented", breakpoint=x)``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

FORMS: dict[str, type[FitForm]] = {}
_CHUNK = 4_000_000  # elements of the largest temporary array in one solve


def register_form(name: str) -> Callable[[type[FitForm]], type[FitForm]]:
    def add(cls: type[FitForm]) -> type[FitForm]:
        cls.name = name
        FORMS[name] = cls
        return cls

    return add


def make_form(name: str, **options: Any) -> FitForm:
    """The registered form ``name``, built with ``options`` (e.g. ``breakpoint=`` for segmented)."""
    if name not in FORMS:
        raise ValueError(f"unknown fit form {name!r}; known: {', '.join(sorted(FORMS))}")
    return FORMS[name](**options)


@dataclass(frozen=True, kw_only=True)
class FitForm(abc.ABC):
    """A curve Elo(x) that is linear in ``n_linear`` coefficients given its nonlinear ones."""

    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]]  # the reported parameters, in order
    slopes: ClassVar[tuple[str, ...]]  # the parameters that are Elo per decade of compute
    n_linear: ClassVar[int]
    nonneg: ClassVar[tuple[int, ...]] = ()  # linear coefficients constrained to be >= 0

    @abc.abstractmethod
    def axes(self, x: np.ndarray) -> list[np.ndarray]:
        """Coarse, evenly spaced grids of the nonlinear parameters for data at x f64[N]."""

    @abc.abstractmethod
    def basis(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """x f64[N], theta f64[..., k] -> f64[..., N, n_linear]."""

    @abc.abstractmethod
    def report(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """theta f64[..., k], beta f64[..., n_linear] -> the reported params f64[..., P]."""

    @abc.abstractmethod
    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """params f64[..., P], x f64[Q] -> Elo f64[..., Q]."""

    @abc.abstractmethod
    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of ``report``: params f64[..., P] -> (theta f64[..., k],
        beta f64[..., n_linear])."""

    def n_free(self, x: np.ndarray) -> int:
        return len(self.axes(x)) + self.n_linear

    def canonical(self, params: np.ndarray, x: np.ndarray, used: np.ndarray) -> np.ndarray:
        """params f64[R, P] with parameters the data cannot identify put in one canonical place,
        from each row's own points: x f64[N], used bool[R, N]. The curve on the data is
        unchanged."""
        return params

    def unidentified(self, params: np.ndarray, x: np.ndarray) -> str:
        """Why the fit's parameters f64[P] are not identified by the data x f64[N] (the grid's
        points), or "" when they are."""
        return ""


_FLAT = 1e-6  # Elo: a rise below this over the data range is no rise (the slope is 0)


@register_form("linear")
@dataclass(frozen=True, kw_only=True)
class Linear(FitForm):
    params = ("a", "b")
    slopes = ("b",)
    n_linear = 2

    def axes(self, x: np.ndarray) -> list[np.ndarray]:
        return []

    def basis(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        one = np.ones_like(x)
        return np.broadcast_to(np.stack([one, x], -1), (*theta.shape[:-1], x.size, 2))

    def report(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return beta

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((*params.shape[:-1], 0)), params[..., :2]

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        return params[..., :1] + params[..., 1:2] * x


def _distinct(x: np.ndarray) -> np.ndarray:
    return np.unique(np.round(x[np.isfinite(x)], 9))


@register_form("changepoint")
@dataclass(frozen=True, kw_only=True)
class ChangePoint(FitForm):
    params = ("a", "b", "plateau", "x_kink")
    slopes = ("b",)
    n_linear = 2
    nonneg = (1,)

    def axes(self, x: np.ndarray) -> list[np.ndarray]:
        # From the second point: a kink before it leaves one point on the incline, which any
        # kink up to the second point fits as well (with a steeper slope). The data points are
        # on the grid too: an optimum at a point (the profile has a corner there) is exact.
        u = _distinct(x)
        lo = u[min(1, u.size - 1)]
        return [np.union1d(np.linspace(lo, u[-1], 48), u[u >= lo])]

    def basis(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        hinge = np.minimum(x - theta[..., :1], 0.0)  # f64[..., N]
        return np.stack([np.ones_like(hinge), hinge], -1)

    def report(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        plateau, b, xk = beta[..., 0], beta[..., 1], theta[..., 0]
        return np.stack([plateau - b * xk, b, plateau, xk], -1)

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return params[..., 3:4], np.stack([params[..., 2], params[..., 1]], -1)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.minimum(params[..., 2:3], params[..., :1] + params[..., 1:2] * x)

    def canonical(self, params: np.ndarray, x: np.ndarray, used: np.ndarray) -> np.ndarray:
        """x_kink within the row's points [lo, hi]: past the last point it is the last point
        (the plateau is the incline's value there); before the second point it is the second
        point (one point on the incline: the same fit with a shallower slope); without an
        incline (b = 0, or a kink at or before the first point, where every point is on the
        plateau) the fit is flat and x_kink is ``lo``."""
        a, b, plateau, xk = (params[..., i] for i in range(4))
        lo, hi = row_range(x, used)
        second = np.where(used & (x > lo[:, None] + 1e-9), x, np.inf).min(axis=1)
        second = np.minimum(second, hi)
        plateau = np.where(xk > hi, a + b * hi, plateau)
        flat = (b * (hi - lo) < _FLAT) | (xk <= lo)
        # One point on the incline: the prediction there, plateau - b (xk - lo), is kept.
        ridge = ~flat & (xk < second)
        b = np.where(ridge, b * (xk - lo) / np.maximum(second - lo, 1e-12), b)
        xk = np.where(ridge, second, xk)
        b = np.where(flat, 0.0, b)
        xk = np.where(flat, lo, np.minimum(xk, hi))
        return np.stack([plateau - b * xk, b, plateau, xk], -1)


@register_form("sigmoid")
@dataclass(frozen=True, kw_only=True)
class Sigmoid(FitForm):
    params = ("floor", "plateau", "x_mid", "k", "b")
    slopes = ("b",)
    n_linear = 2
    nonneg = (1,)

    def axes(self, x: np.ndarray) -> list[np.ndarray]:
        u = _distinct(x)
        r = max(float(u[-1] - u[0]), 1e-3)
        mid = np.linspace(u[0] - 0.25 * r, u[-1] + 0.25 * r, 32)
        log_k = np.linspace(np.log10(1.0 / r), np.log10(40.0 / r), 24)
        return [mid, log_k]

    def basis(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        z = 10.0 ** theta[..., 1:2] * (x - theta[..., :1])  # f64[..., N]
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, overflow-free
        return np.stack([np.ones_like(s), s], -1)

    def report(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        floor, span = beta[..., 0], beta[..., 1]
        k = 10.0 ** theta[..., 1]
        return np.stack([floor, floor + span, theta[..., 0], k, span * k / 4.0], -1)

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.stack([params[..., 2], np.log10(params[..., 3])], -1)
        return theta, np.stack([params[..., 0], params[..., 1] - params[..., 0]], -1)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        floor, plateau = params[..., :1], params[..., 1:2]
        z = params[..., 3:4] * (x - params[..., 2:3])
        return floor + (plateau - floor) * 0.5 * (1.0 + np.tanh(0.5 * z))

    def unidentified(self, params: np.ndarray, x: np.ndarray) -> str:
        """At the edge of the grid's box (a centre 0.25 ranges outside the data, the smallest or
        the largest steepness) the data show no curvature the sigmoid could place: a shallower
        sigmoid centred further out fits as well, and every parameter is set by the box."""
        mid, log_k = self.axes(x)
        theta = np.array([params[2], np.log10(params[3])])
        edge = [mid[0], log_k[0]], [mid[-1], log_k[-1]]
        tol = 1e-6 * np.array([np.ptp(mid), np.ptp(log_k)])
        # at or past an edge: the refinement may step a hair beyond the grid (small-lichess:
        # k = 26.60066 against the box's 26.60011, which an exact-edge test missed)
        if np.any(theta <= np.asarray(edge[0]) + tol) or np.any(theta >= np.asarray(edge[1]) - tol):
            return "no curvature in the data: the sigmoid is at the edge of its range"
        return ""

    def canonical(self, params: np.ndarray, x: np.ndarray, used: np.ndarray) -> np.ndarray:
        """Without height (plateau = floor) x_mid and k are not identified: x_mid mid-range and
        k the grid's smallest, 1 / range."""
        lo, hi = row_range(x, used)
        flat = np.abs(params[..., 1] - params[..., 0]) < _FLAT
        out = params.copy()
        out[..., 2] = np.where(flat, 0.5 * (lo + hi), params[..., 2])
        out[..., 3] = np.where(flat, 1.0 / np.maximum(hi - lo, 1e-3), params[..., 3])
        out[..., 4] = np.where(flat, 0.0, params[..., 4])
        return out


@register_form("segmented")
@dataclass(frozen=True, kw_only=True)
class Segmented(FitForm):
    breakpoint: float | None = None  # log10 FLOPs of the switch; None: fitted

    params = ("a", "b1", "b2", "x_break")
    slopes = ("b1", "b2")
    n_linear = 3

    def axes(self, x: np.ndarray) -> list[np.ndarray]:
        if self.breakpoint is not None:
            return []
        u = _distinct(x)
        if u.size < 4:
            raise ValueError("a fitted breakpoint needs at least 4 distinct compute values")
        return [np.linspace(u[1], u[-2], 48)]

    def _xb(self, theta: np.ndarray) -> np.ndarray:
        if self.breakpoint is None:
            return theta[..., :1]
        return np.full((*theta.shape[:-1], 1), float(self.breakpoint))

    def basis(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        d = x - self._xb(theta)  # f64[..., N]
        return np.stack([np.ones_like(d), np.minimum(d, 0.0), np.maximum(d, 0.0)], -1)

    def report(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        xb = np.broadcast_to(self._xb(theta)[..., 0], beta.shape[:-1])
        return np.concatenate([beta, xb[..., None]], -1)

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = params[..., 3:4] if self.breakpoint is None else params[..., 3:3]
        return theta, params[..., :3]

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        d = x - params[..., 3:4]
        return (
            params[..., :1]
            + params[..., 1:2] * np.minimum(d, 0)
            + params[..., 2:3] * (np.maximum(d, 0))
        )


def _solve(
    form: FitForm, x: np.ndarray, y: np.ndarray, w: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted linear least squares for every replicate and grid point.

    x f64[N]; y, w f64[R, N]; theta f64[R or 1, G, k]. Returns beta f64[R, G, m] and
    rss f64[R, G] (inf where the problem is degenerate).
    """
    basis = form.basis(x, theta)  # f64[R|1, G, N, m]
    g, n, m = basis.shape[1:]
    if basis.shape[0] == 1:  # one grid for every replicate: two matrix products
        b = basis[0]  # f64[G, N, m]
        bb = np.einsum("gni,gnj->ngij", b, b).reshape(n, g * m * m)
        a = (w @ bb).reshape(-1, g, m, m)  # f64[R, G, m, m]
        rhs = ((w * y) @ b.transpose(1, 0, 2).reshape(n, g * m)).reshape(-1, g, m)
    else:
        a = np.einsum("rn,rgni,rgnj->rgij", w, basis, basis, optimize=True)
        rhs = np.einsum("rn,rgni->rgi", w * y, basis)  # f64[R, G, m]
    yy = np.einsum("rn,rn->r", w * y, y)[:, None]  # f64[R, 1]
    scale = np.trace(a, axis1=-2, axis2=-1)[..., None, None] / m + 1e-300
    eye = np.eye(m)
    beta = np.linalg.solve(a + 1e-11 * scale * eye, rhs[..., None])[..., 0]
    for j in form.nonneg:  # the constrained solution where the free one breaks the bound
        a_j, rhs_j = a.copy(), rhs.copy()
        a_j[..., j, :], a_j[..., :, j], rhs_j[..., j] = 0.0, 0.0, 0.0
        a_j[..., j, j] = 1.0
        beta_j = np.linalg.solve(a_j + 1e-11 * scale * eye, rhs_j[..., None])[..., 0]
        beta = np.where(beta[..., j : j + 1] < 0, beta_j, beta)
    quad = np.einsum("rgi,rgij,rgj->rg", beta, a, beta)
    rss = yy - 2.0 * np.einsum("rgi,rgi->rg", beta, rhs) + quad
    rss = np.where(np.isfinite(rss), np.maximum(rss, 0.0), np.inf)
    return beta, rss


def _best(
    form: FitForm, x: np.ndarray, y: np.ndarray, w: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best grid point per replicate, in chunks of replicates: (theta f64[R, k],
    beta f64[R, m], rss f64[R]). theta f64[R or 1, G, k]."""
    r, g, m = y.shape[0], theta.shape[1], form.n_linear
    per_row = g * m * m if theta.shape[0] == 1 else g * x.size * m * m  # temporaries per row
    step = max(1, _CHUNK // max(1, per_row))
    out_t, out_b, out_r = [], [], []
    for s in range(0, r, step):
        th = theta if theta.shape[0] == 1 else theta[s : s + step]
        beta, rss = _solve(form, x, y[s : s + step], w[s : s + step], th)
        i = np.argmin(rss, axis=1)  # i64[r]
        rows = np.arange(i.size)
        out_t.append(np.broadcast_to(th, (i.size, *th.shape[1:]))[rows, i])
        out_b.append(beta[rows, i])
        out_r.append(rss[rows, i])
    return np.concatenate(out_t), np.concatenate(out_b), np.concatenate(out_r)


def fit_batch(
    form: FitForm,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    zoom_points: int = 9,
    precision: float = 1e-5,
    max_steps: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """Fits ``form`` to every row of y at once.

    x f64[N]; y f64[R, N]; w f64[R, N] weights (0 drops a point; NaN y must have weight 0).
    Returns (params f64[R, P], rss f64[R]); NaN params where a row has fewer points with
    weight than the form has free parameters. The pattern search stops when every row's step
    is below ``precision`` times its coarse step (or after ``max_steps`` rounds).
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    w = np.broadcast_to(np.asarray(w, dtype=float), y.shape)
    if x.shape != (y.shape[1],):
        raise ValueError(f"x has shape {x.shape} for data with {y.shape[1]} points")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("fit weights must be finite and non-negative")
    used = w > 0
    if not np.isfinite(y[used]).all():
        raise ValueError("a point with a positive weight has a NaN or infinite Elo")
    y = np.where(used, y, 0.0)
    axes = form.axes(x[used.any(axis=0)] if used.any() else x)
    if axes:
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    else:
        grid = np.zeros((1, 0))  # no nonlinear parameter: one linear solve
    theta, beta, rss = _best(form, x, y, w, grid[None])
    if axes:
        coarse = np.array([np.diff(a).max() if a.size > 1 else 0.0 for a in axes])
        lo, hi = np.array([a[0] for a in axes]), np.array([a[-1] for a in axes])
        steps = np.broadcast_to(coarse, theta.shape).copy()  # f64[R, k]: each row's own
        u = np.linspace(-1.0, 1.0, zoom_points)
        offsets = np.stack(np.meshgrid(*[u] * len(axes), indexing="ij"), -1).reshape(-1, len(axes))
        for _ in range(max_steps):
            active = (steps > precision * coarse).any(axis=1)
            if not active.any():
                break
            rows = np.flatnonzero(active)
            prev, step = theta[rows], steps[rows]
            cand = np.clip(prev[:, None, :] + offsets * step[:, None, :], lo, hi)
            t, b, r = _best(form, x, y[rows], w[rows], cand)
            better = r < rss[rows]  # the current point is a candidate: never worse
            theta[rows] = np.where(better[:, None], t, prev)
            beta[rows] = np.where(better[:, None], b, beta[rows])
            rss[rows] = np.where(better, r, rss[rows])
            # The step shrinks where the best point is inside the window and stays where it is
            # on the window's edge (the optimum may lie further out).
            off = np.divide(t - prev, step, out=np.zeros_like(step), where=step > 0)
            on_edge = better & (np.abs(off) > 1.0 - 1e-9).any(axis=1)
            steps[rows] = np.where(on_edge[:, None], step, step * 2.0 / (zoom_points - 1))
    params = form.report(theta, beta)
    enough = used.sum(axis=1) >= form.n_free(x)
    params = form.canonical(params, x, used)
    params = np.where(enough[:, None], params, np.nan)
    return params, np.where(enough, rss, np.nan)


def row_range(x: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The data range of every row: x f64[N], used bool[R, N] -> (lo f64[R], hi f64[R])
    (NaN for a row without points)."""
    lo = np.where(used, x, np.inf).min(axis=1)
    hi = np.where(used, x, -np.inf).max(axis=1)
    none = ~used.any(axis=1)
    return np.where(none, np.nan, lo), np.where(none, np.nan, hi)


def fit_one(form: FitForm, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """One fit: one row of ``fit_batch``. x, y, w f64[N]; returns (params f64[P], rss)."""
    params, rss = fit_batch(form, x, y[None], w[None])
    return params[0], float(rss[0])
