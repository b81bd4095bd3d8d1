"""The cap on the arena's scale (analysis.scale): planted truths recovered by its interval,
through bridge ratings drawn as numbers and through games and the real rating fit."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.rating_io import Games
from analysis.rating_models import make_model
from analysis.ratings import bootstrap_ratings, fit_ratings
from analysis.scale import Bridge, BridgeRatings, place_cap


def test_cap_interval_covers_the_planted_truth() -> None:
    """A planted map (arena = 0.8 (data - 1500) + 600) seen through 3 bridges at 1200, 1600 and
    2000 on the data's scale, with arena errors of 30 Elo and data errors of 40: over 300
    repetitions the 90% interval of the cap 1500 (truth 600) covers it in 85-97% of them
    (measured: 89%)."""
    data_true = np.array([1200.0, 1600.0, 2000.0])
    arena_true = 0.8 * (data_true - 1500.0) + 600.0
    covered, reps = 0, 300
    rng = np.random.default_rng(0)
    for rep in range(reps):
        data_obs = data_true + 40.0 * rng.standard_normal(3)
        arena_obs = arena_true + 30.0 * rng.standard_normal(3)
        boot = arena_obs + 30.0 * rng.standard_normal((200, 3))
        bridges = tuple(Bridge(agent=f"b{i}", elo=d, se=40.0) for i, d in enumerate(data_obs))
        placed = place_cap(
            1500.0, BridgeRatings(bridges=bridges, arena=arena_obs, replicates=boot), seed=rep
        )
        assert placed.estimate is not None
        e = placed.estimate
        assert e.lo <= e.value <= e.hi
        covered += e.lo <= 600.0 <= e.hi
    assert 0.85 <= covered / reps <= 0.97, covered / reps
    assert place_cap(1500.0, None).why.startswith("no bridge")


def _chain_games(truth: np.ndarray, per_pair: int, rng: np.random.Generator) -> Games:
    """Games of a chain of players (each against the next two, colours alternated), drawn from
    the Ordo model at ratings ``truth`` (the arena's scale; player 0 plays the random mover)."""
    white, black = [], []
    for i in range(len(truth)):
        for j in (i + 1, i + 2):
            if j < len(truth):
                white += [i, j] * (per_pair // 2)
                black += [j, i] * (per_pair // 2)
    w, b = np.array(white, np.int32), np.array(black, np.int32)
    model = make_model("ordo")
    score = model.simulate(truth[w] - truth[b], model.initial_params(), rng)
    return Games(tuple(f"p{i}" for i in range(len(truth))), w, b, score)


def _coverage_through_games(shared: bool, reps: int) -> float:
    """A chain of 7 players 150 Elo apart from the random mover (p0 = 0), 32 games a pairing;
    p3-p6 are bridges whose data-scale ratings are their arena ratings + 900, declared with an
    own error of 20 and one conversion error of 100 common to all four (drawn once per
    repetition). The cap 1600 on the data's scale is at 700 on the arena's. Each repetition
    fits the games (Ordo, p0 = 0), bootstraps them 100 times and places the cap; ``shared``:
    the bridges declare the common part as ``shared_se``, else as part of an independent
    ``se`` (the same total error)."""
    truth = 150.0 * np.arange(7)
    bridge = [3, 4, 5, 6]
    data_true = truth[bridge] + 900.0
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(reps):
        games = _chain_games(truth, 32, rng)
        table = fit_ratings(games, "ordo", anchors={"p0": 0.0})
        boot = bootstrap_ratings(games, "ordo", n=100, seed=rep, anchors={"p0": 0.0})
        declared = data_true + 100.0 * rng.standard_normal() + 20.0 * rng.standard_normal(4)
        errors = {"se": 20.0, "shared_se": 100.0} if shared else {"se": float(np.hypot(20, 100))}
        bridges = tuple(
            Bridge(agent=f"p{i}", elo=float(d), **errors)
            for i, d in zip(bridge, declared, strict=True)
        )
        idx = [list(table.names).index(f"p{i}") for i in bridge]
        ratings = BridgeRatings(bridges=bridges, arena=table.rating[idx], replicates=boot[:, idx])
        est = place_cap(1600.0, ratings, seed=rep).estimate
        assert est is not None and est.lo <= est.value <= est.hi
        covered += est.lo <= 700.0 <= est.hi
    return covered / reps


@pytest.mark.slow
def test_a_conversion_error_shared_by_bridges_is_not_averaged_away() -> None:
    """Through real games and the real rating fit (400 repetitions of ``_coverage_through_
    games``): with the common conversion error declared as shared, the cap's 90% interval covers
    the truth in 85-97% of repetitions (measured 86.75%; 88.5% with no data-scale error at all);
    declared as independent errors of the same size, four bridges average it away and the
    interval covers far less often (measured 75.5%)."""
    shared = _coverage_through_games(shared=True, reps=400)
    assert 0.85 <= shared <= 0.97, shared
    independent = _coverage_through_games(shared=False, reps=400)
    assert independent < 0.80, independent


def test_a_bridge_s_errors_are_checked_and_summed() -> None:
    b = Bridge(agent="sf", elo=1350.0, se=30.0, shared_se=40.0)
    assert b.total_se == pytest.approx(50.0)
    with pytest.raises(ValueError, match="bridge 'sf': elo must be finite, se and shared_se"):
        Bridge(agent="sf", elo=1350.0, shared_se=-1.0)
