"""The compute-Elo frontier on cases worked out by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from analysis.frontier import (
    COVER_DECADES,
    frontier,
    frontier_curve,
    frontier_masks,
    group_label,
)


def _study(points: Sequence[tuple[str, str, int | None, int, float, float]]) -> pd.DataFrame:
    """points: (run_id, regime, cap, params, log10 FLOPs, Elo)."""
    df = pd.DataFrame(
        [
            {
                "agent": f"{run}@{x}",
                "run_id": run,
                "regime": regime,
                "cap": cap,
                "size": str(params),
                "params": params,
                "flops": 10.0**x,
                "log10_flops": x,
                "elo": elo,
            }
            for run, regime, cap, params, x, elo in points
        ]
    )
    df["cap"] = df["cap"].astype("Int64")
    return df


# Two runs of one group. small: 100 @ 10, 300 @ 11, 400 @ 12; big: 200 @ 11, 500 @ 12, 800 @ 13.
# At 11 the small run leads, at 12 the big one; 10 and 13 have one run each.
CROSSING = [
    ("small", "supervised", 1500, 1_000, 10.0, 100.0),
    ("small", "supervised", 1500, 1_000, 11.0, 300.0),
    ("small", "supervised", 1500, 1_000, 12.0, 400.0),
    ("big", "supervised", 1500, 9_000, 11.0, 200.0),
    ("big", "supervised", 1500, 9_000, 12.0, 500.0),
    ("big", "supervised", 1500, 9_000, 13.0, 800.0),
]


def test_crossing_runs() -> None:
    study = _study(CROSSING)
    mask = frontier_masks(study, study["elo"].to_numpy())
    assert mask.shape == (1, 6)
    np.testing.assert_array_equal(mask[0], [True, True, False, False, True, True])


def test_points_are_compared_with_the_interpolated_curves() -> None:
    """A third run's single checkpoint at 11.5: small's curve passes 350 there, big's 350 too
    (200 -> 500). 340 is below both, 360 above both; a tie counts as on the frontier."""
    for elo, on in ((340.0, False), (350.0, True), (360.0, True)):
        study = _study([*CROSSING, ("mid", "supervised", 1500, 3_000, 11.5, elo)])
        mask = frontier_masks(study, study["elo"].to_numpy())[0]
        assert mask[-1] == on, elo
        # A single checkpoint competes only at its own compute: the others are unchanged.
        np.testing.assert_array_equal(mask[:-1], [True, True, False, False, True, True])


def test_groups_do_not_compete() -> None:
    other = [
        ("sp", "selfplay_cap", 1500, 1_000, 11.0, 900.0),
        ("scr", "selfplay_scratch", None, 1, 12, 999),
    ]
    study = _study([*CROSSING, *other, ("c1000", "supervised", 1000, 5, 11.0, 950.0)])
    mask = frontier_masks(study, study["elo"].to_numpy())[0]
    np.testing.assert_array_equal(mask, [True, True, False, False, True, True, True, True, True])
    framed = frontier(study)
    assert list(framed["group"].iloc[[0, 6, 7, 8]]) == [
        "supervised cap 1500",
        "selfplay_cap cap 1500",
        "selfplay_scratch",
        "supervised cap 1000",
    ]
    assert framed["frontier_share"].isna().all()
    assert group_label("selfplay_scratch", pd.NA) == "selfplay_scratch"


def test_every_replicate_gets_its_own_frontier() -> None:
    study = _study(CROSSING)
    rng = np.random.default_rng(0)
    elo = study["elo"].to_numpy() + rng.normal(0, 80, (50, len(study)))  # f64[50, 6]
    mask = frontier_masks(study, elo)
    for r in range(elo.shape[0]):
        np.testing.assert_array_equal(mask[r], frontier_masks(study, elo[r])[0])
    assert 0 < mask.mean() < 1  # the noise moves the frontier
    share = frontier(study, elo)["frontier_share"].to_numpy()
    np.testing.assert_allclose(share, mask.mean(axis=0))


def test_unrated_checkpoints_and_bad_input() -> None:
    study = _study([*CROSSING[:5], ("big", "supervised", 1500, 9_000, 13.0, np.nan)])
    mask = frontier_masks(study, study["elo"].to_numpy())[0]
    np.testing.assert_array_equal(mask, [True, True, False, False, True, False])
    with pytest.raises(ValueError, match="5 columns for 6"):
        frontier_masks(study, np.zeros((2, 5)))
    elo = np.tile(study["elo"].to_numpy(), (2, 1))
    elo[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN for some replicates"):
        frontier_masks(study, elo)


def test_frontier_curve_on_a_grid() -> None:
    """At 10.5 only small covers (200); at 11.75 small is at 375, big at 425; at 12.5 only big
    (650); at 14 nobody."""
    study = _study(CROSSING)
    rows = np.arange(len(study))
    best, params = frontier_curve(
        study, rows, study["elo"].to_numpy()[None], np.array([10.5, 11.75, 12.5, 14.0])
    )
    np.testing.assert_allclose(best[0, :3], [200.0, 425.0, 650.0])
    assert np.isnan(best[0, 3])
    np.testing.assert_array_equal(params[0, :3], [1_000, 9_000, 9_000])
    assert np.isnan(params[0, 3])


def test_one_checkpoint_per_run_at_one_budget_compete() -> None:
    """An IsoFLOP design: one rated checkpoint per run, two sizes per budget. Runs of one
    nominal budget spend slightly different FLOPs (whole steps); the better of each pair is on
    the frontier, not both. Budgets half a decade apart do not compete."""
    study = _study(
        [
            ("s1", "supervised", 1500, 10_000, 11.000, 390.0),
            ("b1", "supervised", 1500, 30_000, 11.004, 110.0),  # 1% more FLOPs, far weaker
            ("s2", "supervised", 1500, 10_000, 11.500, 590.0),
            ("b2", "supervised", 1500, 30_000, 11.497, 600.0),  # 0.7% fewer FLOPs, stronger
            ("s3", "supervised", 1500, 10_000, 12.000, 100.0),  # weaker than b2, not its budget
        ]
    )
    mask = frontier_masks(study, study["elo"].to_numpy())[0]
    np.testing.assert_array_equal(mask, [True, False, False, True, True])
    # just past the tolerance, the runs no longer compete
    apart = study.copy()
    apart.loc[1, "log10_flops"] = 11.0 + COVER_DECADES * 1.5
    np.testing.assert_array_equal(
        frontier_masks(apart, apart["elo"].to_numpy())[0], [True, True, False, True, True]
    )
