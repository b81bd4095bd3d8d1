"""One Elo scale: the arena's ratings are on one named scale, and the cap is placed on it only
through bridges.

The arena's scale is set by its fixed anchors (by default the uniformly random mover at 0). The
cap is a rating on the *data's* scale (the Elo tags of the training games: Lichess, or a
synthetic corpus's players); it is a number on the arena's scale only through *bridges*: arena
players whose ratings on the data's scale are known with an uncertainty (a synthetic corpus's
own players, rated in the same pool; for Lichess, e.g. Stockfish ``UCI_Elo`` levels with a
documented conversion). Without a bridge the cap is not placed, and nothing draws it.

The map from the data's scale to the arena's is fitted through the bridges: with one bridge an
offset (arena = data + c: Elo differences are taken as equal on both scales), with two or more
bridges at distinct data ratings a line arena = alpha + beta (data - cap), weighted by
1 / (se_arena^2 + se_data^2), so the cap is at alpha. Its interval refits the map on every
bootstrap replicate of the arena ratings (the same bootstrap over games as the study's
checkpoints) with the bridges' data ratings drawn from their errors: each bridge's own error
(``se``) independently, and an error common to several bridges (``shared_se``: one conversion
from an engine's rating list to the data's scale, the same for every level of the engine) as
one draw per replicate for all that declare it, so that more bridges behind one conversion do
not average its error away; with three or more bridges
the arena deviations are widened by the Particle Data Group's scale factor max(1, sqrt(chi2 /
dof)) when the bridges scatter about the line more than their declared errors allow (the errors
are declared, so no Student-t factor: it would widen a consistent set of three bridges 3.8x).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.fits import Estimate

RANDOM_NAME = "random"  # the arena's name of the uniformly random legal mover


def scale_label(anchors: Mapping[str, float] | None = None) -> str:
    """The axis label of the arena's scale, naming its fixed players: ``Elo (random mover =
    0)`` by default."""
    fixed = dict(anchors or {}) or {RANDOM_NAME: 0.0}
    names = [
        f"{'random mover' if name == RANDOM_NAME else name} = {value:g}"
        for name, value in sorted(fixed.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    return f"Elo ({', '.join(names)})"


@dataclass(frozen=True, kw_only=True)
class Bridge:
    """An arena player whose rating on the data's scale is known."""

    agent: str  # its name in the arena (ratings.csv)
    elo: float  # its rating on the data's scale (the scale of the games' Elo tags)
    se: float = 0.0  # the standard error of that rating of its own (its calibration)
    # the standard error of a part common to every bridge that declares one (one conversion
    # between rating lists): drawn once per replicate for all of them, not averaged away
    shared_se: float = 0.0
    source: str = ""  # where the rating comes from (rating list, conditions, conversion)

    def __post_init__(self) -> None:
        if not self.agent:
            raise ValueError("a bridge needs the arena name of its agent")
        errors = np.array([self.se, self.shared_se])
        if not np.isfinite(self.elo) or not (np.isfinite(errors).all() and (errors >= 0).all()):
            raise ValueError(
                f"bridge {self.agent!r}: elo must be finite, se and shared_se finite and >= 0"
            )

    @property
    def total_se(self) -> float:
        """The whole standard error of its data-scale rating (own and shared)."""
        return float(np.hypot(self.se, self.shared_se))


@dataclass(frozen=True, kw_only=True)
class BridgeRatings:
    """The bridges with their arena ratings: arena f64[B] (NaN: not rated in the arena),
    replicates f64[R, B] from the same bootstrap as the study's (None without one)."""

    bridges: tuple[Bridge, ...]
    arena: np.ndarray  # f64[B]
    replicates: np.ndarray | None  # f64[R, B]


@dataclass(frozen=True, kw_only=True)
class CapPlacement:
    """The cap on the arena's scale, or why it is not placed."""

    cap: float  # on the data's scale
    estimate: Estimate | None  # on the arena's scale; None when not placed
    why: str  # why it is not placed ("" when it is)
    bridges: tuple[str, ...]  # the bridges used

    def to_dict(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "arena": None if self.estimate is None else self.estimate.to_dict(),
            "not_placed": self.why or None,
            "bridges": list(self.bridges),
        }


def _map_at(cap: float, arena: np.ndarray, data: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The arena rating at data rating ``cap`` per row: arena, data f64[R, B], w f64[B]."""
    if arena.shape[1] == 1 or np.ptp(data[0]) < 1e-9:
        return np.sum(w * (arena - data), axis=1) / np.sum(w) + cap  # an offset
    sw = np.sum(w)
    dm = np.sum(w * (data - cap), axis=1, keepdims=True) / sw
    am = np.sum(w * arena, axis=1, keepdims=True) / sw
    beta = np.sum(w * (data - cap - dm) * (arena - am), axis=1) / np.sum(
        w * (data - cap - dm) ** 2, axis=1
    )
    return am[:, 0] - beta * dm[:, 0]


def place_cap(
    cap: float, bridges: BridgeRatings | None, *, level: float = 0.90, seed: int = 0
) -> CapPlacement:
    """The cap's arena rating with its ``level`` interval (see the module docstring)."""
    if bridges is None or not bridges.bridges:
        return CapPlacement(
            cap=cap,
            estimate=None,
            why="no bridge between the data's and the arena's scale",
            bridges=(),
        )
    names = tuple(b.agent for b in bridges.bridges)
    unrated = [n for n, a in zip(names, bridges.arena, strict=True) if not np.isfinite(a)]
    if unrated:
        return CapPlacement(
            cap=cap,
            estimate=None,
            why=f"bridge {unrated[0]!r} has no arena rating",
            bridges=names,
        )
    data = np.array([b.elo for b in bridges.bridges])
    data_se = np.array([b.se for b in bridges.bridges])
    reps = bridges.replicates
    arena_se = np.ones(data.size) if reps is None or reps.shape[0] < 2 else reps.std(0, ddof=1)
    w = 1.0 / (np.maximum(arena_se, 1.0) ** 2 + data_se**2)
    value = float(_map_at(cap, bridges.arena[None], data[None], w)[0])
    if reps is None:
        return CapPlacement(
            cap=cap,
            estimate=Estimate(value=value, lo=np.nan, hi=np.nan, why="no bootstrap replicates"),
            why="",
            bridges=names,
        )
    scale = 1.0
    if data.size >= 3 and np.ptp(data) > 1e-9:
        coef = np.polyfit(data - cap, bridges.arena, 1, w=np.sqrt(w))
        chi2 = float(np.sum(w * (np.polyval(coef, data - cap) - bridges.arena) ** 2))
        scale = float(max(1.0, np.sqrt(chi2 / (data.size - 2))))
    rng = np.random.default_rng(seed)
    arena_r = bridges.arena + scale * (reps - bridges.arena)
    shared_se = np.array([b.shared_se for b in bridges.bridges])
    data_r = (
        data
        + data_se * rng.standard_normal(reps.shape)
        + shared_se * rng.standard_normal((reps.shape[0], 1))  # one draw for them all
    )
    return CapPlacement(
        cap=cap,
        estimate=Estimate.of(value, _map_at(cap, arena_r, data_r, w), level),
        why="",
        bridges=names,
    )
