"""Elo ratings with confidence intervals from game results (Ordo- and BayesElo-compatible).

``fit_ratings(games, "ordo" | "bayeselo", anchors=..., average=...)`` returns a
:class:`RatingTable`: one rating per player with an interval from the Hessian (the inverse
information) or from a bootstrap over games. Anchoring follows the study's contract: named
anchors are fixed; otherwise a given pool average is fixed; with neither, a player named
``random`` (the uniformly random mover) is anchored at 0, and without one the pool average is the
model's default (Ordo's 2300, BayesElo's 0). ``bootstrap_ratings`` refits on games resampled with
replacement, for the analysis stage to carry rating uncertainty into its fits.

Models live in ``rating_models.py`` (``RATING_MODELS``), the Newton solver and the connectivity
checks in ``rating_solver.py``, PGN reading and the pair table in ``rating_io.py``.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from analysis.rating_io import Games, PairTable, pair_table, read_pgn_results, resample_pairs
from analysis.rating_models import RATING_MODELS, BayesEloModel, OrdoModel, make_model
from analysis.rating_solver import DisconnectedPoolError, check_connected, newton, rating_variances

__all__ = [
    "DEFAULT_ANCHOR",
    "RATING_MODELS",
    "DisconnectedPoolError",
    "Games",
    "RatingTable",
    "bootstrap_ratings",
    "fit_ratings",
    "read_pgn_results",
]

DEFAULT_ANCHOR = "random"  # anchored at 0 Elo when no anchor or average is given (contract 5)
CSV_COLUMNS = ("name", "rating", "lower", "upper", "games", "score")
_MAX_OUTER = 100  # alternations between ratings and fitted global parameters


@dataclasses.dataclass(frozen=True)
class RatingTable:
    """Ratings of a pool with intervals at ``confidence``."""

    names: tuple[str, ...]  # player names
    rating: np.ndarray  # f64[P] Elo
    lower: np.ndarray  # f64[P] lower end of the interval
    upper: np.ndarray  # f64[P] upper end of the interval
    games: np.ndarray  # int64[P] games played
    score: np.ndarray  # f64[P] points scored (win 1, draw 0.5)
    model: str  # RATING_MODELS key
    confidence: float  # coverage of [lower, upper]
    interval: str  # "hessian" or "bootstrap"
    params: dict[str, float]  # global model parameters used (fixed or fitted), e.g. white_advantage
    anchors: dict[str, float]  # fixed ratings (empty when the pool average is fixed)
    average: float | None  # fixed pool average (None when anchored)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per player with the CSV columns, strongest first."""
        order = np.argsort(-self.rating, kind="stable")
        return [
            {
                "name": self.names[i],
                "rating": float(self.rating[i]),
                "lower": float(self.lower[i]),
                "upper": float(self.upper[i]),
                "games": int(self.games[i]),
                "score": float(self.score[i]),
            }
            for i in order
        ]

    def to_csv(self) -> str:
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.to_rows():
            writer.writerow(
                [
                    row["name"],
                    f"{row['rating']:.2f}",
                    f"{row['lower']:.2f}",
                    f"{row['upper']:.2f}",
                    row["games"],
                    f"{row['score']:g}",
                ]
            )
        return buf.getvalue()

    def write_csv(self, path: Path) -> None:
        """Writes the CSV atomically (columns name,rating,lower,upper,games,score)."""
        from elocap.files import atomic_write_text

        atomic_write_text(Path(path), self.to_csv())

    def format(self) -> str:
        """A plain-text table for people."""
        width = max([4, *(len(n) for n in self.names)])
        pct = round(100 * self.confidence)
        head = f"{pct}% interval"
        lines = [f"{'#':>4} {'name':<{width}} {'rating':>8} {head:>20} {'games':>6} {'score':>7}"]
        for k, row in enumerate(self.to_rows(), 1):
            interval = f"[{row['lower']:.1f}, {row['upper']:.1f}]"
            lines.append(
                f"{k:>4} {row['name']:<{width}} {row['rating']:>8.1f} {interval:>20} "
                f"{row['games']:>6} {row['score']:>7g}"
            )
        extra = ", ".join(f"{k} {v:.4g}" for k, v in self.params.items())
        anchor = (
            ", ".join(f"{k} = {v:g}" for k, v in self.anchors.items())
            if self.anchors
            else f"pool average {self.average:g}"
        )
        lines.append(f"model {self.model} ({extra}); {anchor}; intervals: {self.interval}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Anchoring:
    fixed: dict[int, float]  # player id -> rating (reported units)
    average: float | None


def _anchoring(
    games: Games,
    model: OrdoModel | BayesEloModel,
    anchors: Mapping[str, float] | None,
    average: float | None,
) -> _Anchoring:
    if anchors and average is not None:
        raise ValueError("give either anchors or a pool average, not both")
    if anchors:
        index = {n: i for i, n in enumerate(games.names)}
        missing = sorted(set(anchors) - set(index))
        if missing:
            raise ValueError(f"anchor(s) {missing} played no game in this pool")
        return _Anchoring({index[n]: float(v) for n, v in anchors.items()}, None)
    if average is None and DEFAULT_ANCHOR in games.names:
        return _Anchoring({games.names.index(DEFAULT_ANCHOR): 0.0}, None)
    return _Anchoring({}, model.default_average if average is None else float(average))


def _fit(
    model: OrdoModel | BayesEloModel,
    raw: PairTable,
    anchoring: _Anchoring,
    names: tuple[str, ...],
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float], PairTable, np.ndarray]:
    """Reported ratings f64[P], parameters, the prepared table and the model-unit ratings."""
    check_connected(raw, names, list(anchoring.fixed), strong=model.needs_strong_connection)
    table = model.prepare(raw)
    params = model.initial_params()
    r = _initial_ratings(raw) if init is None else init
    for _ in range(_MAX_OUTER):
        scale = model.display_scale(params)
        fixed = {i: v / scale for i, v in anchoring.fixed.items()}
        r = newton(model, table, params, fixed, r)
        new = model.fit_params(r[table.white] - r[table.black], table, params)
        done = all(abs(new[k] - params[k]) < 1e-9 for k in params)
        params = new
        if done:
            break
    scale = model.display_scale(params)
    rating = scale * r
    if anchoring.average is not None:
        rating += anchoring.average - rating.mean()
    return rating, {**params, "scale": scale}, table, r


def _initial_ratings(raw: PairTable) -> np.ndarray:
    """A starting point f64[P] for Newton: each player's score fraction as a logistic Elo
    difference from the pool (cuts the Newton iterations from about ten to about five)."""
    points = raw.per_player(raw.white_points, raw.games - raw.white_points)
    played = raw.per_player(raw.games, raw.games)
    frac = np.clip(points / np.maximum(played, 1e-12), 0.02, 0.98)
    r = 400.0 / np.log(10.0) * np.log(frac / (1 - frac))
    return r - r.mean()


def fit_ratings(
    games: Games,
    model: str = "ordo",
    *,
    anchors: Mapping[str, float] | None = None,
    average: float | None = None,
    confidence: float = 0.9,
    interval: str = "hessian",
    n_bootstrap: int = 200,
    seed: int = 0,
    **model_options: Any,
) -> RatingTable:
    """Maximum-likelihood ratings of every player in ``games`` under ``model`` (a
    ``RATING_MODELS`` key; ``model_options`` go to its options: ``white_advantage``,
    ``draw_rate``/``drawelo``, ``prior``, ``fit_white``, ``fit_draw``, ``scale``).

    Raises ``DisconnectedPoolError`` (naming the players of each group) when the games do not
    determine finite ratings, and ``ValueError`` for bad arguments.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; choose one of {sorted(INTERVALS)}")
    if games.num_games == 0:
        raise ValueError("no games to rate")
    m = make_model(model, **model_options)
    anchoring = _anchoring(games, m, anchors, average)
    raw = pair_table(games)
    rating, params, table, r = _fit(m, raw, anchoring, games.names)
    lower, upper = INTERVALS[interval](
        _IntervalInput(
            m, raw, table, anchoring, games.names, params, rating, r, confidence, n_bootstrap, seed
        )
    )
    points = raw.per_player(raw.white_points, raw.games - raw.white_points)
    played = raw.per_player(raw.games, raw.games)
    return RatingTable(
        names=games.names,
        rating=rating,
        lower=lower,
        upper=upper,
        games=np.rint(played).astype(np.int64),
        score=points,
        model=model,
        confidence=confidence,
        interval=interval,
        params=params,
        anchors={games.names[i]: v for i, v in anchoring.fixed.items()},
        average=anchoring.average,
    )


@dataclasses.dataclass(frozen=True)
class _IntervalInput:
    model: OrdoModel | BayesEloModel
    raw: PairTable  # observed games
    table: PairTable  # prepared (virtual draws added)
    anchoring: _Anchoring
    names: tuple[str, ...]
    params: dict[str, float]
    rating: np.ndarray  # f64[P] reported
    r: np.ndarray  # f64[P] model units
    confidence: float
    n_bootstrap: int
    seed: int


def _hessian_interval(x: _IntervalInput) -> tuple[np.ndarray, np.ndarray]:
    var = rating_variances(x.model, x.table, x.params, x.r, list(x.anchoring.fixed))
    half = stats.norm.ppf(0.5 + x.confidence / 2) * x.params["scale"] * np.sqrt(var)
    return x.rating - half, x.rating + half


def _bootstrap_interval(x: _IntervalInput) -> tuple[np.ndarray, np.ndarray]:
    samples = _bootstrap(x.model, x.raw, x.anchoring, x.names, x.n_bootstrap, x.seed, x.r)
    tail = (1 - x.confidence) / 2
    lower, upper = np.quantile(samples, [tail, 1 - tail], axis=0)
    return lower, upper


INTERVALS: dict[str, Callable[[_IntervalInput], tuple[np.ndarray, np.ndarray]]] = {
    "hessian": _hessian_interval,
    "bootstrap": _bootstrap_interval,
}


def _bootstrap(
    model: OrdoModel | BayesEloModel,
    raw: PairTable,
    anchoring: _Anchoring,
    names: tuple[str, ...],
    n: int,
    seed: int,
    init: np.ndarray,
) -> np.ndarray:
    """f64[n, P] ratings refitted on game resamples. A resample whose ratings diverge (a player
    who lost every resampled game, under a model without prior) is drawn again; more than ``n``
    such redraws raise the connectivity error of the last one."""
    if n < 1:
        raise ValueError(f"the bootstrap needs n >= 1, got {n}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, raw.num_players))
    redraws = 0
    i = 0
    while i < n:
        try:
            out[i] = _fit(model, resample_pairs(raw, rng), anchoring, names, init.copy())[0]
            i += 1
        except DisconnectedPoolError:
            redraws += 1
            if redraws > n:
                raise
    return out


def bootstrap_ratings(
    games: Games,
    model: str = "ordo",
    *,
    n: int,
    seed: int,
    anchors: Mapping[str, float] | None = None,
    average: float | None = None,
    **model_options: Any,
) -> np.ndarray:
    """f64[n, P] ratings refitted on ``n`` resamples of the games (with replacement), anchored as
    ``fit_ratings`` anchors them. Deterministic for a given ``seed``."""
    m = make_model(model, **model_options)
    anchoring = _anchoring(games, m, anchors, average)
    raw = pair_table(games)
    r = _fit(m, raw, anchoring, games.names)[3]
    return _bootstrap(m, raw, anchoring, games.names, n, seed, r)
