"""Maximum-likelihood ratings by Newton's method on the pair table, connectivity checks, and the
Hessian covariance.

The log-likelihood is a sum over pair-table rows of a function of d = R_white - R_black (+ white
advantage), so its gradient and Hessian over players are sums of per-row terms scattered with
``np.bincount``: the Hessian is a weighted graph Laplacian. Ratings are defined up to a constant,
so Newton runs on the free players only: the anchored ones, or all but one pinned player when the
pool average is fixed (the caller shifts the result). Up to ``DENSE_MAX_PLAYERS`` the Newton
system is solved by a dense Cholesky factorisation, above it by a sparse LU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import linalg, sparse
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg

from analysis.rating_io import PairTable
from analysis.rating_models import BayesEloModel, OrdoModel

DENSE_MAX_PLAYERS = 2000  # dense Newton systems up to this many free players
COVARIANCE_MAX_PLAYERS = 5000  # Hessian intervals invert a dense matrix of this size at most
_MAX_NEWTON = 200
_TOL = 1e-6  # Elo: stop after a Newton step this small (the next would be ~1e-12)
_MAX_STEP = 400.0  # Elo: the largest change of one rating in one Newton step


class DisconnectedPoolError(ValueError):
    """The games do not determine finite ratings; the message names the players of each group."""


def check_connected(
    table: PairTable, names: Sequence[str], anchored: Sequence[int], strong: bool
) -> None:
    """Raises ``DisconnectedPoolError`` unless every group of players that the games connect
    holds an anchor (or there is one group and no anchor). With ``strong``, an edge i -> j needs
    i to have scored a point or half against j: a group that scored 0 % or 100 % against the rest
    (a single player with all wins or all losses is such a group) has no finite maximum-likelihood
    rating, and is named the same way (Ordo's maximum-likelihood estimate diverges there too)."""
    p = table.num_players
    if strong:
        won = table.white_points > 0  # white took points from black: edge white -> black
        lost = table.games - table.white_points > 0
        rows = np.concatenate([table.white[won], table.black[lost]])
        cols = np.concatenate([table.black[won], table.white[lost]])
    else:
        rows, cols = table.white, table.black
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(p, p)).tocsr()
    n, labels = csgraph.connected_components(
        graph, directed=strong, connection="strong" if strong else "weak"
    )
    if n == 1:
        return
    anchored_groups = set(labels[list(anchored)].tolist())
    if anchored_groups == set(range(n)):
        return
    groups = [[names[int(i)] for i in np.flatnonzero(labels == k)] for k in range(n)]
    groups.sort(key=len, reverse=True)
    listing = "; ".join(f"{{{', '.join(_clip(g))}}}" for g in _clip_groups(groups))
    if strong:
        raise DisconnectedPoolError(
            f"the ratings diverge: the games split the players into {n} groups that each scored "
            f"0% or 100% against another group (players with all wins or all losses stand "
            f"alone): {listing}. Ordo's maximum-likelihood ratings are infinite for such pools; "
            "add games between the groups, anchor a player in every group, or use the bayeselo "
            "model (its prior of virtual draws keeps ratings finite)"
        )
    raise DisconnectedPoolError(
        f"the pool is disconnected: {n} groups of players never met each other: {listing}; "
        "add games between the groups or anchor a player in every group"
    )


def _clip(group: list[str], most: int = 8) -> list[str]:
    return group if len(group) <= most else [*group[:most], f"... {len(group) - most} more"]


def _clip_groups(groups: list[list[str]], most: int = 10) -> list[list[str]]:
    return (
        groups
        if len(groups) <= most
        else [*groups[:most], [f"... {len(groups) - most} more groups"]]
    )


def newton(
    model: OrdoModel | BayesEloModel,
    table: PairTable,
    params: Mapping[str, float],
    fixed: Mapping[int, float],
    init: np.ndarray,
) -> np.ndarray:
    """Maximum-likelihood ratings (Elo, model units) f64[P] with ``fixed`` players held at their
    values; with nothing fixed, player 0 is pinned at its ``init`` value."""
    p = table.num_players
    r = init.astype(np.float64).copy()  # f64[P]
    if fixed and not np.any(r):  # cold start next to the anchors, not at 0
        r[:] = np.mean(list(fixed.values()))
    for i, v in fixed.items():
        r[i] = v
    pinned = np.zeros(p, dtype=bool)
    pinned[list(fixed) if fixed else [0]] = True
    free = np.flatnonzero(~pinned)  # int64[F]
    adv = params["white_advantage"]
    dict_params = dict(params)
    t = model.terms(r[table.white] - r[table.black] + adv, table, dict_params)
    ll = float(t.ll.sum())
    for _ in range(_MAX_NEWTON):
        grad = table.per_player(t.g, -t.g)[free]  # f64[F]
        step = _solve(information(table, t.h, free), grad)  # f64[F]
        largest = float(np.max(np.abs(step), initial=0.0))
        scale = min(1.0, _MAX_STEP / largest) if largest > 0 else 1.0  # a trust region
        for _ in range(60):  # backtracking line search on the log-likelihood
            trial = r.copy()
            trial[free] += scale * step
            with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
                t_trial = model.terms(
                    trial[table.white] - trial[table.black] + adv, table, dict_params
                )
            new_ll = float(t_trial.ll.sum())
            if np.isfinite(new_ll) and new_ll >= ll - 1e-12 * abs(ll):
                break
            scale /= 2
        r, ll, t = trial, new_ll, t_trial
        if float(np.max(np.abs(scale * step), initial=0.0)) < _TOL:
            break
    return r


def information(
    table: PairTable, h: np.ndarray, free: np.ndarray
) -> np.ndarray | sparse.csr_matrix:
    """The observed information (minus the Hessian of the log-likelihood) over the free players,
    f64[F, F], dense up to DENSE_MAX_PLAYERS free players, sparse above."""
    p = table.num_players
    w, b = table.white, table.black
    if len(free) <= DENSE_MAX_PLAYERS:
        off = np.bincount(w * p + b, h, minlength=p * p).reshape(p, p)  # h at (white, black)
        full = off + off.T
        full[np.diag_indices(p)] = table.per_player(-h, -h)
        if len(free) == p - 1 and free[0] == 1:  # player 0 pinned: a view, no copy
            return full[1:, 1:]
        return full[np.ix_(free, free)]
    rows = np.concatenate([w, b, w, b])
    cols = np.concatenate([w, b, b, w])
    vals = np.concatenate([-h, -h, h, h])
    mat = sparse.coo_matrix((vals, (rows, cols)), shape=(p, p)).tocsr()
    return mat[free][:, free]


def _solve(info: np.ndarray | sparse.csr_matrix, grad: np.ndarray) -> np.ndarray:
    if isinstance(info, sparse.csr_matrix):
        return np.asarray(sparse_linalg.spsolve(info.tocsc(), grad))
    try:
        return linalg.cho_solve(
            linalg.cho_factor(info, check_finite=False), grad, check_finite=False
        )
    except linalg.LinAlgError:  # not positive definite far from the optimum: least squares
        return linalg.lstsq(info, grad, check_finite=False)[0]


def rating_variances(
    model: OrdoModel | BayesEloModel,
    table: PairTable,
    params: Mapping[str, float],
    r: np.ndarray,
    fixed: Sequence[int],
) -> np.ndarray:
    """Variances f64[P] (model Elo units squared) of the maximum-likelihood ratings from the
    inverse information: of each rating with the anchors held fixed (0 for the anchors), or, with
    no anchor, of each rating minus the pool mean. Multiplied by the model's dispersion."""
    p = table.num_players
    if p - max(len(fixed), 1) > COVARIANCE_MAX_PLAYERS:
        raise ValueError(
            f"Hessian intervals for more than {COVARIANCE_MAX_PLAYERS} free players are not "
            "supported (a dense inverse); use interval='bootstrap'"
        )
    pinned = np.zeros(p, dtype=bool)
    pinned[list(fixed) if fixed else [0]] = True
    free = np.flatnonzero(~pinned)
    d = r[table.white] - r[table.black] + params["white_advantage"]
    t = model.terms(d, table, dict(params))
    info = information(table, t.h, free)
    dense = info.toarray() if isinstance(info, sparse.csr_matrix) else info
    cov_free = linalg.inv(dense)  # f64[F, F]
    cov = np.zeros((p, p))
    cov[np.ix_(free, free)] = cov_free
    if not fixed:  # variance of R_i - mean(R): (A C A^T)_ii with A = I - 1/P
        row_mean = cov.mean(axis=1)
        var = np.diag(cov) - 2 * row_mean + cov.mean()
    else:
        var = np.diag(cov).copy()
    return np.maximum(var, 0.0) * model.dispersion(d, table)
