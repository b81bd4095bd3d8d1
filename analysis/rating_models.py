"""Rating models: the likelihood of one pair-table row as a function of the rating difference.

Every model here is a function of d = R_white - R_black + white advantage (in Elo) for each row of
a :class:`~analysis.rating_io.PairTable`, plus a few global parameters. A model gives the row
log-likelihoods and their first and second derivatives in d; the solver in ``ratings.py`` turns
those into Newton steps over all players at once. Models are chosen through ``RATING_MODELS``.

- ``ordo``: Ordo's model. White's expected score is logistic, E = 1 / (1 + exp(-beta d)) with
  beta = ln(0.76 / 0.24) / 202 (202 Elo = 76 %), draws count as half points, and the ratings
  are the maximum of the binomial quasi-likelihood sum S log E + (n - S) log(1 - E): every
  player's expected score equals their actual score, Ordo's definition. The draw rate does not
  move the ratings; when fitted it is the maximum-likelihood draw rate between equal players of
  the Davidson-type completion P(draw) = k sqrt(P(win) P(loss)), k = 2 D / (1 - D), at the
  fitted expected scores (our completion: Ordo's own draw model was not available to check).
- ``bayeselo``: Remi Coulom's BayesElo model. P(white wins) = f(d - drawelo),
  P(black wins) = f(-d - drawelo), the rest draws, f(x) = 1 / (1 + 10^(-x / 400)); the prior
  adds virtual draws exactly as BayesElo's ``CCondensedResults::AddPrior`` does (to both colours
  of every pair that met); ratings are reported times BayesElo's scale 4x / (1 + x)^2,
  x = 10^(-drawelo / 400), as its ``ratings`` command prints them after ``mm``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, special

from analysis.rating_io import PairTable

LN10_400 = math.log(10.0) / 400.0  # natural-log units per Elo in base-10 logistic models
_TINY = 1e-300  # floor of probabilities inside logarithms


@dataclasses.dataclass(frozen=True, kw_only=True)
class Terms:
    """Per-row log-likelihood and its derivatives in the rating difference d."""

    ll: np.ndarray  # f64[K] log-likelihood of each row
    g: np.ndarray  # f64[K] d ll / d d
    h: np.ndarray  # f64[K] d2 ll / d d2 (<= 0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrdoOptions:
    white_advantage: float = 0.0  # Elo added to white's side of every game
    draw_rate: float = 0.5  # draw rate between equal players (reported; fitted with fit_draw)
    fit_white: bool = False  # fit the white advantage (Ordo -W)
    fit_draw: bool = False  # fit the draw rate (Ordo -D)
    scale: float = 202.0  # Elo difference that gives a 76 % expected score (Ordo -z)

    def __post_init__(self) -> None:
        if not 0.0 < self.draw_rate < 1.0:
            raise ValueError(f"draw_rate must be in (0, 1), got {self.draw_rate}")
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BayesEloOptions:
    white_advantage: float = 32.8  # BayesElo `advantage`
    drawelo: float = 97.3  # BayesElo `drawelo`
    prior: float = 2.0  # BayesElo `prior`: virtual draws
    fit_white: bool = False  # BayesElo `mm 1 0`
    fit_draw: bool = False  # BayesElo `mm 0 1`
    scale: bool = True  # report ratings times BayesElo's EloScale (what `ratings` prints)

    def __post_init__(self) -> None:
        if self.drawelo < 0:
            raise ValueError(f"drawelo must be >= 0, got {self.drawelo}")
        if self.prior < 0:
            raise ValueError(f"prior must be >= 0, got {self.prior}")


class OrdoModel:
    """Logistic expected score, draws as half points (Ordo 1.2)."""

    name: ClassVar[str] = "ordo"
    options_type: ClassVar[type] = OrdoOptions
    default_average: ClassVar[float] = 2300.0

    def __init__(self, options: OrdoOptions) -> None:
        self.options = options
        self.beta = math.log(0.76 / 0.24) / options.scale  # per Elo

    @property
    def needs_strong_connection(self) -> bool:
        return True  # no prior: a player or group that scored 0 % or 100 % has no finite MLE

    def prepare(self, table: PairTable) -> PairTable:
        return table

    def initial_params(self) -> dict[str, float]:
        return {
            "white_advantage": self.options.white_advantage,
            "draw_rate": self.options.draw_rate,
        }

    def display_scale(self, params: dict[str, float]) -> float:
        return 1.0

    def terms(self, d: np.ndarray, table: PairTable, params: dict[str, float]) -> Terms:
        e = special.expit(self.beta * d)  # f64[K]
        n, s = table.games, table.white_points
        ll = s * np.log(np.maximum(e, _TINY)) + (n - s) * np.log(np.maximum(1.0 - e, _TINY))
        return Terms(ll=ll, g=self.beta * (s - n * e), h=-(self.beta**2) * n * e * (1 - e))

    def fit_params(
        self, d: np.ndarray, table: PairTable, params: dict[str, float]
    ) -> dict[str, float]:
        """One update of the fitted global parameters at fixed ratings (d without advantage)."""
        out = dict(params)
        if self.options.fit_white:
            adv = out["white_advantage"]
            for _ in range(50):  # 1-D Newton on the white advantage
                t = self.terms(d + adv, table, out)
                step = float(t.g.sum()) / -float(t.h.sum())
                adv += step
                if abs(step) < 1e-10:
                    break
            out["white_advantage"] = adv
        if self.options.fit_draw:
            e = special.expit(self.beta * (d + out["white_advantage"]))
            out["draw_rate"] = _fit_davidson_draw_rate(e, table)
        return out

    def dispersion(self, d: np.ndarray, table: PairTable) -> float:
        """Quasi-likelihood dispersion: observed / binomial variance of the game scores (< 1 when
        there are draws). The Hessian covariance is multiplied by it."""
        e = special.expit(self.beta * d)
        observed = table.wins * (1 - e) ** 2 + table.draws * (0.5 - e) ** 2 + table.losses * e**2
        expected = table.games * e * (1 - e)
        return float(observed.sum() / max(expected.sum(), 1e-300))

    def simulate(
        self, d: np.ndarray, params: dict[str, float], rng: np.random.Generator
    ) -> np.ndarray:
        """White's score of one game per entry of d (rating difference without advantage)."""
        e = special.expit(self.beta * (d + params["white_advantage"]))
        p_draw = davidson_draw_probability(e, params["draw_rate"])
        return _draw_scores(e - p_draw / 2, p_draw, rng)


class BayesEloModel:
    """Coulom's model with advantage, drawelo and a prior of virtual draws (BayesElo 0057)."""

    name: ClassVar[str] = "bayeselo"
    options_type: ClassVar[type] = BayesEloOptions
    default_average: ClassVar[float] = 0.0

    def __init__(self, options: BayesEloOptions) -> None:
        self.options = options

    @property
    def needs_strong_connection(self) -> bool:
        return self.options.prior <= 0

    def prepare(self, table: PairTable) -> PairTable:
        """Adds BayesElo's virtual draws: for players a and b who met n_ab times (both colours),
        prior / 4 * n_ab * (1 / N_a + 1 / N_b) draws to each colour order, N = games played."""
        if self.options.prior <= 0:
            return table
        p = table.num_players
        lo, hi = np.minimum(table.white, table.black), np.maximum(table.white, table.black)
        keys, inverse = np.unique(lo * p + hi, return_inverse=True)
        n_pair = np.bincount(inverse, table.games, minlength=len(keys))  # f64[U] games per pair
        a, b = keys // p, keys % p  # int64[U]
        n_player = np.bincount(a, n_pair, minlength=p) + np.bincount(b, n_pair, minlength=p)
        virtual = self.options.prior * 0.25 * n_pair * (1 / n_player[a] + 1 / n_player[b])
        # Both colour orders of every pair, with the observed counts where the order was played.
        white, black = np.concatenate([a, b]), np.concatenate([b, a])  # int64[2U]
        order = np.argsort(white * p + black)
        white, black = white[order], black[order]
        row = np.searchsorted(white * p + black, table.white * p + table.black)  # int64[K]
        wins, draws, losses = np.zeros(len(white)), np.zeros(len(white)), np.zeros(len(white))
        wins[row], draws[row], losses[row] = table.wins, table.draws, table.losses
        draws += np.concatenate([virtual, virtual])[order]
        return PairTable(p, white, black, wins, draws, losses)

    def initial_params(self) -> dict[str, float]:
        return {"white_advantage": self.options.white_advantage, "drawelo": self.options.drawelo}

    def display_scale(self, params: dict[str, float]) -> float:
        if not self.options.scale:
            return 1.0
        x = 10.0 ** (-params["drawelo"] / 400.0)
        return 4.0 * x / (1.0 + x) ** 2

    def terms(self, d: np.ndarray, table: PairTable, params: dict[str, float]) -> Terms:
        c, delta = LN10_400, params["drawelo"]
        pw, pl = special.expit(c * (d - delta)), special.expit(-c * (d + delta))  # f64[K]
        # 1 - pW - pL without cancellation: 1 - pW = expit(-c (d - delta))
        pd = np.maximum(special.expit(-c * (d - delta)) - pl, _TINY)
        vw, vl = pw * (1 - pw), pl * (1 - pl)  # logistic variances
        dpd = -c * (vw - vl)  # d pD / d d
        d2pd = -(c**2) * (vw * (1 - 2 * pw) + vl * (1 - 2 * pl))
        w, dr, lo = table.wins, table.draws, table.losses
        ll = (
            w * np.log(np.maximum(pw, _TINY)) + dr * np.log(pd) + lo * np.log(np.maximum(pl, _TINY))
        )
        g = w * c * (1 - pw) - lo * c * (1 - pl) + dr * dpd / pd
        h = -w * c**2 * vw - lo * c**2 * vl + dr * (d2pd / pd - (dpd / pd) ** 2)
        return Terms(ll=ll, g=g, h=h)

    def fit_params(
        self, d: np.ndarray, table: PairTable, params: dict[str, float]
    ) -> dict[str, float]:
        names = [
            k
            for k, f in (
                ("white_advantage", self.options.fit_white),
                ("drawelo", self.options.fit_draw),
            )
            if f
        ]
        if not names:
            return dict(params)

        def negll(x: np.ndarray) -> float:
            trial = {**params, **dict(zip(names, x.tolist(), strict=True))}
            return -float(self.terms(d + trial["white_advantage"], table, trial).ll.sum())

        bounds = [(-1000.0, 1000.0) if k == "white_advantage" else (0.0, 2000.0) for k in names]
        x0 = np.array([params[k] for k in names])
        res = optimize.minimize(
            negll, x0, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-15, "gtol": 1e-10}
        )
        return {**params, **dict(zip(names, res.x.tolist(), strict=True))}

    def dispersion(self, d: np.ndarray, table: PairTable) -> float:
        return 1.0  # a full W/D/L likelihood: the Hessian is the information

    def simulate(
        self, d: np.ndarray, params: dict[str, float], rng: np.random.Generator
    ) -> np.ndarray:
        x = d + params["white_advantage"]
        pw = special.expit(LN10_400 * (x - params["drawelo"]))
        pl = special.expit(-LN10_400 * (x + params["drawelo"]))
        return _draw_scores(pw, 1.0 - pw - pl, rng)


RATING_MODELS: dict[str, type[OrdoModel] | type[BayesEloModel]] = {
    OrdoModel.name: OrdoModel,
    BayesEloModel.name: BayesEloModel,
}


def make_model(name: str, **options: Any) -> OrdoModel | BayesEloModel:
    """The model ``name`` with its options; unknown names and options raise ``ValueError``."""
    if name not in RATING_MODELS:
        raise ValueError(f"unknown rating model {name!r}; choose one of {sorted(RATING_MODELS)}")
    cls = RATING_MODELS[name]
    known = {f.name for f in dataclasses.fields(cls.options_type)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; it takes {sorted(known)}")
    return cls(cls.options_type(**options))


def davidson_draw_probability(e: np.ndarray, draw_rate: float) -> np.ndarray:
    """P(draw) with expected score e: pD = k sqrt(pW pL), pW + pD / 2 = e, k = 2D / (1 - D)."""
    k2 = (2.0 * draw_rate / (1.0 - draw_rate)) ** 2
    a, b, c = 1.0 - k2 / 4.0, k2 / 2.0, k2 * e * (1.0 - e)
    return 2.0 * c / (b + np.sqrt(b * b + 4.0 * a * c))  # root of a x^2 + b x - c = 0


def _fit_davidson_draw_rate(e: np.ndarray, table: PairTable) -> float:
    def negll(draw_rate: float) -> float:
        pd = davidson_draw_probability(e, draw_rate)
        pw, pl = np.maximum(e - pd / 2, 1e-300), np.maximum(1 - e - pd / 2, 1e-300)
        ll = (
            special.xlogy(table.wins, pw)
            + special.xlogy(table.draws, pd)
            + special.xlogy(table.losses, pl)
        )
        return -float(ll.sum())

    res = optimize.minimize_scalar(
        negll, bounds=(1e-6, 1 - 1e-6), method="bounded", options={"xatol": 1e-9}
    )
    return float(res.x)


def _draw_scores(p_win: np.ndarray, p_draw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(len(p_win))
    return np.where(u < p_win, 1.0, np.where(u < p_win + p_draw, 0.5, 0.0))
