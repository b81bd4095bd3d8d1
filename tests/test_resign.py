"""``mcts.resign``: the resignation threshold is the highest candidate whose false-resignation
rate, counted on played-out games, stays at most the target (and so at every lower judged
candidate); without enough evidence the configured threshold stays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mcts.resign import GRID, ResignCalibrator


@dataclasses.dataclass
class Games:  # the Trajectory fields the calibrator reads, [T, G]
    value: np.ndarray
    valid: np.ndarray
    result: np.ndarray
    resign_allowed: np.ndarray


def games(rows: list[tuple[list[float], int]], allowed: bool = False) -> Games:
    """Played-out games: each the root values of its rows (white's at even rows) and its
    result from white's view."""
    t = max(len(v) for v, _ in rows)
    value = np.zeros((t, len(rows)), np.float32)
    valid = np.zeros((t, len(rows)), bool)
    for g, (v, _) in enumerate(rows):
        value[: len(v), g], valid[: len(v), g] = v, True
    result = np.array([r for _, r in rows], np.int8)
    return Games(value, valid, result, np.full(len(rows), allowed))


def test_the_threshold_stops_where_false_resignations_begin() -> None:
    """Planted truth: white falls to -0.95 and loses in 30 games (right to resign at any
    threshold above -0.95); in 10 more white dips to -0.75 and then draws (wrong for any
    threshold above -0.75). At -0.75 or below only the 30 true ones count (0%); above, 10 of
    40 (25%) would be false: the threshold is the last candidate below -0.75."""
    true = [([0.0, 0.1, -0.95, 0.2, -0.97], -1)] * 30
    false = [([0.0, 0.1, -0.75, 0.3, 0.0], 0)] * 10
    cal = ResignCalibrator(target=0.05, window=100, min_events=20, value=-0.9)
    cal.add(games(true + false))
    n, wrong = cal.rates()
    k_low, k_high = int(np.searchsorted(GRID, -0.75)), int(np.searchsorted(GRID, -0.74))
    assert n[k_low] == 30 and wrong[k_low] == 0  # v = -0.75: the draws' -0.75 is not below it
    assert n[k_high] == 40 and wrong[k_high] == 10
    assert cal.update() == pytest.approx(-0.75)
    assert n[int(np.searchsorted(GRID, -0.97))] == 0  # nobody is below -0.97 itself


def test_resign_allowed_games_and_black_s_side_are_read_right() -> None:
    """Black (odd rows) dips and wins: a false resignation of black's; games that could resign
    are not evidence (their endings are what resigning made them)."""
    cal = ResignCalibrator(target=0.05, window=100, min_events=1, value=-0.9)
    cal.add(games([([0.0, -0.8, 0.0], -1)]))  # black below -0.8 at row 1, black won: false
    cal.add(games([([0.0, -0.99, 0.0], 1)] * 5, allowed=True))  # not played out: ignored
    n, wrong = cal.rates()
    k = int(np.searchsorted(GRID, -0.7))
    assert (n[k], wrong[k]) == (1, 1)
    assert cal.games == 1
    assert cal.update() == -0.9  # every judged candidate above -0.8 is unsafe: kept as it was


def test_without_evidence_the_configured_threshold_stays_and_the_window_forgets() -> None:
    cal = ResignCalibrator(target=0.05, window=10, min_events=20, value=-0.9)
    cal.add(games([([0.0, 0.0, -0.6, 0.0], -1)] * 15))
    assert cal.update() == -0.9  # 10 held (the window), fewer than min_events
    assert cal.rates()[0].max() == 10
    cal2 = ResignCalibrator(target=0.05, window=25, min_events=20, value=-0.9)
    cal2.add(games([([0.0, 0.0, -0.6, 0.0], -1)] * 25))
    assert cal2.update() == GRID[-1]  # -0.6 losses only: safe up to the top of the grid


def test_state_round_trips_and_bad_settings_are_refused() -> None:
    cal = ResignCalibrator(target=0.05, window=8, min_events=2, value=-0.9)
    cal.add(games([([0.0, 0.0, -0.9, 0.0], -1)] * 3))
    cal.update()
    other = ResignCalibrator(target=0.05, window=8, min_events=2, value=-0.5)
    other.load({k: np.array(v) for k, v in cal.arrays().items()})
    assert (other.value, other.games) == (cal.value, cal.games)
    np.testing.assert_array_equal(other.first, cal.first)
    with pytest.raises(ValueError, match="resign_target"):
        ResignCalibrator(target=1.5, window=8, min_events=2, value=-0.9)
    with pytest.raises(ValueError, match="resign_window"):
        ResignCalibrator(target=0.05, window=0, min_events=2, value=-0.9)
