"""The report's figures carry the evidence: the fitted forms over each frontier, every rated
player of the pool (bridges and anchors marked apart) beside the cap's band, and no
compute-optimal exponent where two sizes cannot give one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.compare import StudyAnalysis
from analysis.plot_layers import MAX_POOL_ROWS, thin_pool
from analysis.plots import FIGURES
from analysis.registry import load_metrics, load_ratings
from analysis.report import ReportConfig, run_analysis
from analysis.report_text import fmt_estimate
from analysis.scale import Bridge
from tests.test_report import make_workdir

BRIDGES = (Bridge(agent="bridge-a", elo=1000.0, se=20.0), Bridge(agent="bridge-b", elo=1400.0))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyAnalysis]:
    """The test study of test_report (two sizes, self-play from the cap and from scratch)
    with two bridges, fitted on 30 replicates from the rating intervals."""
    root = make_workdir(
        tmp_path_factory.mktemp("study"), players={"bridge-a": 700.0, "bridge-b": 1100.0}
    )
    cfg = ReportConfig(replicates="intervals", n_replicates=30, bridges=BRIDGES)
    return root, run_analysis(root, cfg)


def _lines(ax) -> dict[str, object]:
    return {str(ln.get_label()): ln for ln in ax.lines}


def test_elo_vs_compute_draws_each_groups_fits_over_its_frontier(study) -> None:
    """Each panel draws the linear fit (and the changepoint where identified) over exactly the
    frontier's FLOP range, at the fitted values, its slope's interval in the legend."""
    root, analysis = study
    fig = FIGURES["elo_vs_compute"](analysis, load_metrics(root, []))
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == set(analysis.fits)
    drawn = 0
    for group, ax in panels.items():
        assert ax.get_ylabel() == analysis.scale == "Elo (random mover = 0)"
        lines = _lines(ax)
        for form, fit in analysis.fits[group].items():
            labels = [k for k in lines if k.startswith(f"{form} fit: ")]
            if fit.unidentified:
                assert not labels and f"{form}: not identified, not drawn" in lines
                continue
            assert len(labels) == 1, (group, form, list(lines))
            slope = fmt_estimate(fit.param(fit.form.slopes[0]), "slope", "Elo/decade")
            assert slope in labels[0] and "[" in slope
            line = lines[labels[0]]
            x = np.asarray(line.get_xdata(), dtype=float)
            np.testing.assert_allclose(np.log10(x[[0, -1]]), fit.x_range)
            np.testing.assert_allclose(line.get_ydata(), fit.predict(np.log10(x)))
            drawn += 1
    assert drawn >= 3  # at least the linear fit of each of the three groups


def test_an_unidentified_form_is_named_but_not_drawn(study) -> None:
    _, analysis = study
    group = "supervised cap 1200"
    fits = {g: dict(d) for g, d in analysis.fits.items()}
    fits[group]["changepoint"] = dataclasses.replace(
        fits[group]["changepoint"], unidentified="planted: no kink in the data"
    )
    fig = FIGURES["elo_vs_compute"](dataclasses.replace(analysis, fits=fits), pd.DataFrame())
    ax = next(a for a in fig.axes if a.get_title() == group)
    lines = _lines(ax)
    assert not [k for k in lines if k.startswith("changepoint fit")]
    assert "changepoint: not identified, not drawn" in lines
    assert len(np.asarray(lines["changepoint: not identified, not drawn"].get_xdata())) == 0
    assert [k for k in lines if k.startswith("linear fit: slope +")]


def test_rating_intervals_show_every_rated_player_bridges_and_anchors_apart(study) -> None:
    """Every player of ratings.csv is a row, checkpoints and not; the bridges and the fixed
    anchor are named as such; the cap's band is drawn where the bridges place it."""
    root, analysis = study
    pool = load_ratings(root)
    fig = FIGURES["rating_intervals"](analysis, pd.DataFrame(), pool)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    rated = pool[np.isfinite(pool["rating"])]
    assert len(ticks) == len(rated) == len(analysis.study) - 1 + 3  # one checkpoint unrated
    assert "bridge-a [bridge]" in ticks and "bridge-b [bridge]" in ticks
    assert "random [anchor, fixed at 0]" in ticks
    bridge_tick = next(t for t in ax.get_yticklabels() if t.get_text() == "bridge-a [bridge]")
    assert bridge_tick.get_color() == "tab:red"
    # sorted by rating, bottom up
    order = rated.set_index("name")["rating"]
    names = [t.split(" ")[0] for t in ticks]
    assert list(order.loc[names]) == sorted(order)
    labels = {str(c.get_label()) for c in ax.collections}
    assert {"bridge (rated on the data's scale too)", "anchor fixed by definition"} <= labels
    est = analysis.caps[1200].estimate
    assert est is not None
    band = next(p for p in ax.patches if str(p.get_label()).startswith("cap 1200 on this scale"))
    xs = band.get_path().vertices[:, 0]
    x0, x1 = band.get_transform().transform([[xs.min(), 0], [xs.max(), 0]])[:, 0]
    lo, hi = ax.transData.inverted().transform([[x0, 0], [x1, 0]])[:, 0]
    assert lo == pytest.approx(est.lo, abs=1e-6) and hi == pytest.approx(est.hi, abs=1e-6)
    # the legend lies under the plot (in a corner it covered the top rows' intervals), and it
    # and every row's name lie inside the figure (constrained layout clips what does not fit)
    fig.canvas.draw()
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend, frame = fig.legends[0].get_window_extent(), ax.get_window_extent()
    assert legend.y1 <= frame.y0 and legend.y0 >= fig.bbox.y0 - 1, (legend, frame, fig.bbox)
    assert fig.bbox.x0 - 1 <= legend.x0 and legend.x1 <= fig.bbox.x1 + 1, (legend, fig.bbox)
    names = [t.get_window_extent() for t in ax.get_yticklabels()]
    assert min(b.x0 for b in names) >= fig.bbox.x0 - 1, names


def test_the_pool_is_thinned_by_checkpoints_only() -> None:
    n_ckpt, n_other = 100, 12
    players = pd.DataFrame(
        {
            "name": [f"p{i}" for i in range(n_ckpt + n_other)],
            "elo": np.arange(n_ckpt + n_other, dtype=float),
            "kind": ["checkpoint"] * n_ckpt + ["anchor"] * (n_other - 2) + ["bridge", "fixed"],
            "on_frontier": [i % 10 == 0 for i in range(n_ckpt)] + [False] * n_other,
        }
    )
    shown, note = thin_pool(players)
    assert len(shown) == MAX_POOL_ROWS
    assert (shown["kind"] != "checkpoint").sum() == n_other  # every bridge and anchor
    assert shown["on_frontier"].sum() == 10  # every frontier checkpoint
    assert (
        note
        == f"{n_ckpt - (MAX_POOL_ROWS - n_other)} of {n_ckpt} checkpoints left out, evenly thinned"
    )
    few, none_left = thin_pool(players.iloc[:MAX_POOL_ROWS])
    assert len(few) == MAX_POOL_ROWS and none_left == ""


def test_optimal_size_with_two_sizes_draws_no_exponent(study) -> None:
    """Two model sizes on the frontier: the figure shows the frontier's sizes and says the
    exponent is not estimable; no fitted line, no number."""
    _, analysis = study
    assert "supervised cap 1200" in analysis.optimal_size
    fig = FIGURES["optimal_size"](analysis, pd.DataFrame())
    ax = next(a for a in fig.axes if a.get_title() == "supervised cap 1200")
    assert not ax.lines  # the power law is not drawn
    texts = " ".join(t.get_text() for t in ax.texts).replace("\n", " ")
    assert "exponent not estimable: 2 model sizes on the frontier (10k, 30k)" in texts
