"""The study's figures (matplotlib, written as PNG and SVG).

Figures are built on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through
pyplot's global state, so they can be drawn from any thread or process. ``FIGURES`` is the
registry: name -> function(analysis, metrics) -> Figure; ``write_figures`` draws them all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.compare import StudyAnalysis
from analysis.frontier import group_label
from analysis.registry import REGIMES

FigureFn = Callable[[StudyAnalysis, pd.DataFrame], Figure]
FIGURES: dict[str, FigureFn] = {}
FORMATS: tuple[str, ...] = ("png", "svg")
_MAX_INTERVAL_ROWS = 60  # rating-interval figure: at most this many players
_REGIME_COLOURS = {
    "supervised": "tab:blue",
    "selfplay_cap": "tab:orange",
    "selfplay_scratch": "tab:gray",
}


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


def _empty(fig_axes: tuple[Figure, list], message: str) -> Figure:
    fig, axes = fig_axes
    axes[0].text(0.5, 0.5, message, ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_axis_off()
    return fig


def _legend(ax: Any) -> None:
    """A legend only where some artist has a label (no empty legend, no warning)."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7)


def _cap(ax: Any, analysis: StudyAnalysis, cap: int) -> None:
    """The cap as a band on the arena's scale where bridges place it; otherwise a note, and no
    line (its nominal number is on the data's scale, not this axis's)."""
    placed = analysis.caps.get(cap)
    est = None if placed is None else placed.estimate
    if est is None:
        why = "no bridge" if placed is None or not placed.bridges else placed.why
        ax.text(
            0.02,
            0.02,
            f"cap {cap} not placed on this scale ({why})",
            transform=ax.transAxes,
            fontsize=7,
            color="tab:red",
        )
        return
    if np.isfinite(est.lo) and np.isfinite(est.hi):
        ax.axhspan(est.lo, est.hi, color="tab:red", alpha=0.12, lw=0, label=f"cap {cap}")
        ax.axhline(est.value, color="tab:red", ls="--", lw=1)
    else:
        ax.axhline(est.value, color="tab:red", ls="--", lw=1, label=f"cap {cap} (no interval)")


def _size_colours(study: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    from matplotlib import colormaps

    sizes = study.drop_duplicates("size").sort_values("params")["size"].tolist()
    cmap = colormaps["viridis"]
    return {s: cmap(0.85 * i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}


@register_figure("elo_vs_compute")
def elo_vs_compute(analysis: StudyAnalysis, metrics: pd.DataFrame) -> Figure:
    """Elo against compute, one line per run coloured by size, the frontier in black."""
    study = analysis.study[np.isfinite(analysis.study["elo"])]
    order = study["regime"].map(REGIMES.index) * 1e6 + study["cap"].astype(float).fillna(0.0)
    labels = list(dict.fromkeys(study["group"].iloc[np.argsort(order.to_numpy(), kind="stable")]))
    if not labels:
        return _empty(_figure(1), "no rated checkpoints")
    fig, axes = _figure(len(labels))
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
        caps = g["cap"].dropna().unique()
        if len(caps) == 1 and g["regime"].iloc[0] != "selfplay_scratch":
            _cap(ax, analysis, int(caps[0]))
        ax.set_xscale("log")
        ax.set_title(label)
        ax.set_xlabel("compute (FLOPs)")
        ax.set_ylabel(analysis.scale)
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


@register_figure("switch")
def switch(analysis: StudyAnalysis, metrics: pd.DataFrame) -> Figure:
    """Before and after the switch: the frontiers, the segmented fits with their bands, the
    switch's compute and the cap."""
    caps = sorted(analysis.switch_x)
    if not caps:
        return _empty(_figure(1), "no self-play from a capped checkpoint")
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
                color=_REGIME_COLOURS[regime],
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
        _cap(ax, analysis, cap)
        ax.set_title(title)
        ax.set_xlabel("log10 compute (FLOPs)")
        ax.set_ylabel(analysis.scale)
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


@register_figure("rating_intervals")
def rating_intervals(analysis: StudyAnalysis, metrics: pd.DataFrame) -> Figure:
    """Ratings with their intervals: the frontier's checkpoints (evenly thinned to at most
    60), sorted by rating."""
    study = analysis.study[np.isfinite(analysis.study["elo"])]
    shown = study[study["on_frontier"]].sort_values("elo")
    if len(shown) > _MAX_INTERVAL_ROWS:
        keep = np.unique(np.linspace(0, len(shown) - 1, _MAX_INTERVAL_ROWS).round().astype(int))
        shown = shown.iloc[keep]
    if shown.empty:
        return _empty(_figure(1), "no rated checkpoints")
    fig = Figure(figsize=(7.5, 1.5 + 0.18 * len(shown)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    y = np.arange(len(shown))
    colours = [_REGIME_COLOURS[r] for r in shown["regime"]]
    ax.hlines(y, shown["elo_lo"], shown["elo_hi"], colors=colours, lw=1.2)
    ax.scatter(shown["elo"], y, c=colours, s=12, zorder=3)
    ax.set_yticks(y, [f"{a} ({s})" for a, s in zip(shown["agent"], shown["size"], strict=True)])
    ax.tick_params(axis="y", labelsize=6)
    ax.set_xlabel(analysis.scale)
    ax.set_title("ratings of the frontier's checkpoints (intervals of ratings.csv)")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


@register_figure("learning_curves")
def learning_curves(analysis: StudyAnalysis, metrics: pd.DataFrame) -> Figure:
    """Loss against compute for every run with a metrics.jsonl, one panel per regime."""
    runs = analysis.study.drop_duplicates("run_id").set_index("run_id")
    have = metrics[metrics["run_id"].isin(runs.index) & metrics["loss"].notna()]
    if have.empty:
        return _empty(_figure(1), "no metrics.jsonl with a loss")
    regimes = [r for r in _REGIME_COLOURS if r in set(runs.loc[have["run_id"], "regime"])]
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
def optimal_size(analysis: StudyAnalysis, metrics: pd.DataFrame) -> Figure:
    """The size of the frontier's run against compute, with the power-law fit."""
    labels = list(analysis.optimal_size)
    if not labels:
        return _empty(_figure(1), "fewer than two sizes on every frontier")
    fig, axes = _figure(len(labels))
    study = analysis.study
    for ax, label in zip(axes, labels, strict=True):
        fit = analysis.optimal_size[label]
        f = study[(study["group"] == label) & study["on_frontier"]]
        ax.scatter(f["log10_flops"], np.log10(f["params"].astype(float)), s=10, label="frontier")
        grid = np.linspace(*fit.x_range, 100)
        b = fit.param("b")
        ax.plot(grid, fit.predict(grid), color="black", label=f"N ~ C^{b.value:.2f}")
        lo, hi = fit.band(grid)
        if np.isfinite(lo).all():
            ax.fill_between(grid, lo, hi, color="black", alpha=0.12, lw=0)
        ax.set_title(label)
        ax.set_xlabel("log10 compute (FLOPs)")
        ax.set_ylabel("log10 parameters")
        ax.grid(True, alpha=0.3)
        _legend(ax)
    return fig


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Writes ``stem.png`` and ``stem.svg`` into ``out_dir``, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        tmp = out_dir / f".{stem}.{os.getpid()}.tmp.{fmt}"
        fig.savefig(tmp, format=fmt, dpi=120)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def write_figures(
    analysis: StudyAnalysis, metrics: pd.DataFrame, out_dir: Path
) -> dict[str, list[Path]]:
    """Draws every registered figure into ``out_dir``: name -> [png, svg]."""
    return {name: save_figure(fn(analysis, metrics), out_dir, name) for name, fn in FIGURES.items()}
