"""The study's figures (matplotlib, written as PNG and SVG).

Figures are built on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through
pyplot's global state, so they can be drawn from any thread or process. ``FIGURES`` is the
registry: name -> function(analysis, metrics, pool) -> Figure (``FigureFn``; ``pool``: every
rated player, ratings.csv); ``analysis.figure_files.write_figures`` draws and saves them all.
A figure the study has nothing for is ``NotDrawn`` with the reason, which the report prints in
its place (no empty image).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from textwrap import fill
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.compare import StudyAnalysis
from analysis.frontier import group_label
from analysis.plot_layers import (
    REGIME_COLOURS,
    draw_cap,
    draw_fits,
    draw_pool,
    pool_players,
    thin_pool,
)
from analysis.registry import REGIMES
from analysis.report_text import fmt_estimate, optimal_why


@dataclass(frozen=True)
class NotDrawn:
    """A figure the study has nothing for: the reason, printed by the report in its place."""

    why: str


class FigureFn(Protocol):
    """(analysis, metrics, pool) -> the figure; ``NotDrawn`` where the study has nothing to
    draw in it (the report prints the reason), None where the figure does not apply (the
    report leaves it out); no file of either is left. ``pool``: every rated player
    (ratings.csv, as ``analysis.registry.load_ratings`` reads it); None: the checkpoints'."""

    def __call__(
        self, analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
    ) -> Figure | NotDrawn | None: ...


FIGURES: dict[str, FigureFn] = {}
FORMATS: tuple[str, ...] = ("png", "svg")


def register_figure(name: str) -> Callable[[FigureFn], FigureFn]:
    def add(fn: FigureFn) -> FigureFn:
        FIGURES[name] = fn
        return fn

    return add


def _figure(panels: int, width: float = 4.6, height: float = 3.6) -> tuple[Figure, list]:
    cols = min(3, max(1, panels))
    rows = max(1, math.ceil(panels / cols))
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[: max(panels, 1)]


def _legend(ax: Any, below: bool = False) -> None:
    """A legend only where some artist has a label (no empty legend, no warning); ``below``:
    under the axes, off the data, its lines wrapped to the panel's width."""
    handles, labels = ax.get_legend_handles_labels()
    if handles and below:
        labels = [fill(label, 70) for label in labels]
        ax.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.2),
            frameon=False,
        )
    elif handles:
        ax.legend(fontsize=7)


def _size_colours(study: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    from matplotlib import colormaps

    sizes = study.drop_duplicates("size").sort_values("params")["size"].tolist()
    cmap = colormaps["viridis"]
    return {s: cmap(0.85 * i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}


@register_figure("elo_vs_compute")
def elo_vs_compute(
    analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
) -> Figure | NotDrawn:
    """Elo against compute, one line per run coloured by size, the frontier in black, and
    each fitted form of the frontier over its FLOP range (its slope's interval in the
    legend; a form not fitted or not identified is named there and not drawn)."""
    study = analysis.study[np.isfinite(analysis.study["elo"])]
    order = study["regime"].map(REGIMES.index) * 1e6 + study["cap"].astype(float).fillna(0.0)
    labels = list(dict.fromkeys(study["group"].iloc[np.argsort(order.to_numpy(), kind="stable")]))
    if not labels:
        return NotDrawn("no rated checkpoints")
    fig, axes = _figure(len(labels), width=5.2, height=5.2)  # room for the legend below
    colours = _size_colours(study)
    for ax, label in zip(axes, labels, strict=True):
        g = study[study["group"] == label]
        seen: set[str] = set()
        for _, run in g.sort_values("flops").groupby("run_id", sort=False):
            size = str(run["size"].iloc[0])
            ax.plot(
                run["flops"],
                run["elo"],
                "-o",
                ms=3,
                lw=1,
                alpha=0.7,
                color=colours[size],
                label=None if size in seen else size,
            )
            seen.add(size)
        f = g[g["on_frontier"]].sort_values("flops")
        ax.errorbar(
            f["flops"],
            f["elo"],
            yerr=[f["elo"] - f["elo_lo"], f["elo_hi"] - f["elo"]],
            fmt="-",
            color="black",
            lw=1.5,
            elinewidth=0.8,
            capsize=2,
            label="frontier",
        )
        draw_fits(ax, analysis, label, analysis.config.forms)
        caps = g["cap"].dropna().unique()
        if len(caps) == 1 and g["regime"].iloc[0] != "selfplay_scratch":
            draw_cap(ax, analysis, int(caps[0]))
        ax.set_xscale("log")
        ax.set_title(label)
        ax.set_xlabel("compute (FLOPs)")
        ax.set_ylabel(analysis.scale)
        ax.grid(True, alpha=0.3)
        _legend(ax, below=True)
    return fig


@register_figure("switch")
def switch(
    analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
) -> Figure | NotDrawn:
    """Before and after the switch: the frontiers, the segmented fits with their bands, the
    switch's compute and the cap."""
    caps = sorted(analysis.switch_x)
    if not caps:
        return NotDrawn("no self-play from a capped checkpoint")
    fig, axes = _figure(len(caps), width=5.5, height=4.2)
    study = analysis.study[np.isfinite(analysis.study["elo"]) & analysis.study["on_frontier"]]
    for ax, cap in zip(axes, caps, strict=True):
        xs = analysis.switch_x[cap]
        for regime in ("supervised", "selfplay_cap", "selfplay_scratch"):
            label = group_label(regime, None if regime == "selfplay_scratch" else cap)
            g = study[study["group"] == label].sort_values("flops")
            if g.empty:
                continue
            ax.errorbar(
                g["log10_flops"],
                g["elo"],
                yerr=[g["elo"] - g["elo_lo"], g["elo_hi"] - g["elo"]],
                fmt="o",
                ms=4,
                capsize=2,
                color=REGIME_COLOURS[regime],
                label=regime,
            )
        title = f"cap {cap}"
        for method, style in (("segmented_at_switch", "-"), ("segmented_fitted", "--")):
            key = (f"cap {cap}: supervised -> self-play", method)
            fit = analysis.switch_fits.get(key)
            if fit is None:
                continue
            grid = np.linspace(*fit.x_range, 200)
            ax.plot(grid, fit.predict(grid), style, color="black", lw=1.2, label=method)
            lo, hi = fit.band(grid)
            if np.isfinite(lo).all():
                ax.fill_between(grid, lo, hi, color="black", alpha=0.12, lw=0)
            if method == "segmented_at_switch":
                b1, b2 = fit.param("b1").value, fit.param("b2").value
                title += f": {b1:+.0f} -> {b2:+.0f} Elo/decade"
        ax.axvline(xs, color="tab:red", ls=":", lw=1, label="switch")
        draw_cap(ax, analysis, cap)
        ax.set_title(title)
        ax.set_xlabel("log10 compute (FLOPs)")
        ax.set_ylabel(analysis.scale)
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


@register_figure("rating_intervals")
def rating_intervals(
    analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
) -> Figure | NotDrawn:
    """Every rated player of the pool with its interval, sorted by rating: the checkpoints
    (hollow off the frontier), the bridges and the anchors marked apart, and each placed cap
    as a band, so the band's evidence (the bridges) is in sight. At most 60 players: the
    checkpoints are thinned first, and the title says so."""
    players = pool_players(analysis, pool)
    if players.empty:
        return NotDrawn("no rated players")
    shown, note = thin_pool(players)
    # wide enough for the longest name (6-point labels, about 0.05 in a character) beside the
    # plot, tall enough for the legend under it: constrained layout clips what does not fit
    longest = max((len(str(x)) for x in shown["label"]), default=0)
    size = (5.5 + 0.05 * longest, 2.6 + 0.2 * len(shown))
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    draw_pool(ax, analysis, shown)
    ax.set_xlabel(analysis.scale)
    title = f"every rated player of the pool ({len(players)}; intervals of ratings.csv)"
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # under the plot, off the rows (in a corner it covered the top rows' intervals)
        labels = [fill(label, 60) for label in labels]
        fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=2, frameon=False)
    return fig


@register_figure("learning_curves")
def learning_curves(
    analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
) -> Figure | NotDrawn:
    """Loss against compute for every run with a metrics.jsonl, one panel per regime."""
    runs = analysis.study.drop_duplicates("run_id").set_index("run_id")
    have = metrics[metrics["run_id"].isin(runs.index) & metrics["loss"].notna()]
    if have.empty:
        return NotDrawn("no metrics.jsonl with a loss")
    regimes = [r for r in REGIME_COLOURS if r in set(runs.loc[have["run_id"], "regime"])]
    fig, axes = _figure(len(regimes))
    colours = _size_colours(analysis.study)
    for ax, regime in zip(axes, regimes, strict=True):
        seen: set[str] = set()
        for run_id, rows in have.groupby("run_id"):
            if runs.loc[run_id, "regime"] != regime:
                continue
            size = str(runs.loc[run_id, "size"])
            for split, style, alpha in (("train", "-", 0.35), ("val", "-o", 0.9)):
                r = rows[rows["split"] == split].sort_values("flops")
                if r.empty:
                    continue
                show = split == "val" and size not in seen
                ax.plot(
                    r["flops"],
                    r["loss"],
                    style,
                    ms=2,
                    lw=1,
                    alpha=alpha,
                    color=colours.get(size, "black"),
                    label=size if show else None,
                )
                if show:
                    seen.add(size)
        ax.set_xscale("log")
        ax.set_title(f"{regime} (train faint, val with markers)")
        ax.set_xlabel("compute (FLOPs)")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


@register_figure("optimal_size")
def optimal_size(
    analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
) -> Figure | NotDrawn:
    """The size of the frontier's run against compute, with the power-law fit where its
    exponent is estimable (else the points, and why not: ``optimal_why``)."""
    labels = list(analysis.optimal_size)
    if not labels:
        return NotDrawn("fewer than two sizes on every frontier")
    fig, axes = _figure(len(labels))
    study = analysis.study
    for ax, label in zip(axes, labels, strict=True):
        fit = analysis.optimal_size[label]
        f = study[(study["group"] == label) & study["on_frontier"]]
        ax.scatter(f["log10_flops"], np.log10(f["params"].astype(float)), s=10, label="frontier")
        why = optimal_why(analysis, label)
        if why:
            ax.text(  # under the axes: inside them it covered the points
                0.0,
                -0.22,
                fill(f"exponent not estimable: {why}", 70),
                transform=ax.transAxes,
                va="top",
                fontsize=7,
                color="tab:red",
            )
        else:
            grid = np.linspace(*fit.x_range, 100)
            b = fmt_estimate(fit.param("b"), "exponent")
            ax.plot(grid, fit.predict(grid), color="black", label=f"N ~ C^b, b = {b}")
            lo, hi = fit.band(grid)
            if np.isfinite(lo).all():
                ax.fill_between(grid, lo, hi, color="black", alpha=0.12, lw=0)
        ax.set_title(label)
        ax.set_xlabel("log10 compute (FLOPs)")
        ax.set_ylabel("log10 parameters")
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


TEST_TIME_FIGURE = "elo_vs_test_time_sims"
_REGIME_MARKERS = {"supervised": "o", "selfplay_cap": "s", "selfplay_scratch": "^"}


@register_figure(TEST_TIME_FIGURE)
def elo_vs_test_time_sims(
    analysis: StudyAnalysis, metrics: pd.DataFrame, pool: pd.DataFrame | None = None
) -> Figure | None:
    """Elo against the arena's simulations N for the checkpoints rated at several N
    (``[arena] test_time_sims``), one line per checkpoint coloured by its training compute, each
    point with its interval; N on a log axis with 0 (the raw policy) shown. None without such
    checkpoints."""
    from matplotlib import colormaps

    search = analysis.search
    if search is None or search.points.empty:
        return None
    points = search.points[np.isfinite(search.points["elo"].to_numpy(dtype=float))]
    if points.empty:
        return None
    fig, (ax,) = _figure(1, width=6.4, height=4.6)
    x_all = np.log10(points["flops"].to_numpy(dtype=float))
    span = max(float(x_all.max() - x_all.min()), 1e-9)
    groups = list(points.groupby("checkpoint", sort=False))
    for i, (_, rows) in enumerate(groups):
        first = rows.iloc[0]
        shift = 0.05 * (i - (len(groups) - 1) / 2)  # a small offset, so intervals do not overlap
        n = rows["sims"].to_numpy(dtype=float)
        x = np.where(n > 0, n * 2.0**shift, shift)
        colour = colormaps["viridis"](0.85 * (np.log10(float(first["flops"])) - x_all.min()) / span)
        ax.errorbar(
            x,
            rows["elo"],
            yerr=[rows["elo"] - rows["elo_lo"], rows["elo_hi"] - rows["elo"]],
            fmt="-" + _REGIME_MARKERS.get(str(first["regime"]), "o"),
            ms=4,
            lw=1,
            capsize=2,
            color=colour,
            label=f"{first['regime']} {first['size']}, {float(first['flops']):.1e} FLOPs",
        )
    ax.axvline(
        search.curve_sims,
        color="tab:red",
        ls=":",
        lw=1,
        label=f"the curves' N = {search.curve_sims}",
    )
    ticks = sorted({int(v) for v in points["sims"]})
    ax.set_xscale("symlog", linthresh=1, base=2)  # 0 on the axis, logarithmic from 1 up
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("test-time simulations N per move (0: the raw policy)")
    ax.set_ylabel(analysis.scale)
    ax.set_title(f"Elo against test-time simulations N ({search.level:.0%} intervals)")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig
