"""Layers of the report's figures: the cap's band where bridges place it (``draw_cap``), the
fitted forms drawn over a frontier (``draw_fits``) and every rated player of the arena's pool
with its interval (``pool_players``, ``thin_pool``, ``draw_pool``), bridges and anchors marked
apart from the checkpoints. ``analysis.plots`` registers the figures that use them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis.compare import StudyAnalysis
from analysis.report_text import fmt_estimate, fmt_number

REGIME_COLOURS = {
    "supervised": "tab:blue",
    "selfplay_cap": "tab:orange",
    "selfplay_scratch": "tab:gray",
}
# form -> (line style, colour) of its fitted curve; other forms are drawn grey and dotted
FORM_STYLES = {
    "linear": ("--", "tab:orange"),
    "changepoint": ("-.", "tab:brown"),
    "sigmoid": (":", "tab:gray"),
}
MAX_POOL_ROWS = 60  # the pool figure: at most this many players (checkpoints thinned first)


def draw_cap(ax: Any, analysis: StudyAnalysis, cap: int) -> None:
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


def fit_label(analysis: StudyAnalysis, group: str, form: str) -> str:
    """The legend's words for one form's fit of ``group``: its slope with the interval, the
    changepoint's kink; or why it is not drawn."""
    fit = analysis.fits.get(group, {}).get(form)
    if fit is None:
        return f"{form}: not fitted ({analysis.skipped.get(f'{group}: {form}', 'no fit')})"
    if fit.unidentified or not np.isfinite(fit.estimate).all():
        return f"{form}: not identified, not drawn"
    slope = fmt_estimate(fit.param(fit.form.slopes[0]), "slope", "Elo/decade")
    text = f"{form} fit: slope {slope}"
    if "x_kink" in fit.form.params:
        text += f",\nkink at {fmt_number(fit.param('x_kink').value, 'flops')} FLOPs"
    return text


def draw_fits(ax: Any, analysis: StudyAnalysis, group: str, forms: tuple[str, ...]) -> None:
    """Each of ``forms`` fitted to ``group``'s frontier, drawn over the frontier's FLOP range
    (x in FLOPs on a log axis) with its slope's interval in the legend; a form that was not
    fitted or is not identified is not drawn, and the legend says so."""
    for form in forms:
        fit = analysis.fits.get(group, {}).get(form)
        label = fit_label(analysis, group, form)
        if fit is None or fit.unidentified or not np.isfinite(fit.estimate).all():
            ax.add_line(Line2D([], [], ls="none", label=label))  # a legend entry only
            continue
        grid = np.linspace(*fit.x_range, 200)  # log10 FLOPs
        style, colour = FORM_STYLES.get(form, (":", "tab:gray"))
        ax.plot(10.0**grid, fit.predict(grid), style, color=colour, lw=1.4, label=label)


def pool_players(analysis: StudyAnalysis, pool: pd.DataFrame | None) -> pd.DataFrame:
    """Every rated player with its interval and its kind: ``checkpoint`` (at the curves' N;
    ``on_frontier`` says which are on it), ``test-time`` (a checkpoint at another N),
    ``bridge`` (it places a cap), ``anchor`` (any other player: the arena's fixed opponents)
    and ``fixed`` (an anchor whose rating is set, not fitted: it defines the scale). Columns:
    name, elo, lo, hi, kind, regime, on_frontier, label. ``pool``: ratings.csv (None: the
    checkpoints only)."""
    study = analysis.study
    by_agent = study.set_index("agent")
    bridges = {b for placed in analysis.caps.values() for b in placed.bridges}
    test_time = set() if analysis.search is None else set(analysis.search.points["agent"])
    if pool is None:
        pool = pd.DataFrame(
            {
                "name": study["agent"],
                "rating": study["elo"],
                "lower": study["elo_lo"],
                "upper": study["elo_hi"],
            }
        )
    rows = []
    for name, elo, lo, hi in zip(
        pool["name"], pool["rating"], pool["lower"], pool["upper"], strict=True
    ):
        if not np.isfinite(elo):
            continue
        regime, frontier, label = "", False, str(name)
        if name in by_agent.index:
            kind = "checkpoint"
            row = by_agent.loc[name]
            regime, frontier = str(row["regime"]), bool(row["on_frontier"])
            label = f"{name} ({row['size']})"
        elif name in test_time:
            kind = "test-time"
        elif name in bridges:
            kind, label = "bridge", f"{name} [bridge]"
        elif lo == hi == elo:
            kind, label = "fixed", f"{name} [anchor, fixed at {fmt_number(elo, 'elo')}]"
        else:
            kind, label = "anchor", f"{name} [anchor]"
        rows.append((name, elo, lo, hi, kind, regime, frontier, label))
    columns = ["name", "elo", "lo", "hi", "kind", "regime", "on_frontier", "label"]
    return pd.DataFrame(rows, columns=columns).sort_values("elo", kind="stable")


def thin_pool(players: pd.DataFrame, limit: int = MAX_POOL_ROWS) -> tuple[pd.DataFrame, str]:
    """At most ``limit`` players: every bridge and anchor, the frontier's checkpoints, then the
    others, each set evenly thinned where it does not fit. Returns (shown, a note saying what
    was left out, "" when nothing was)."""
    if len(players) <= limit:
        return players, ""
    is_ckpt = players["kind"].isin(["checkpoint", "test-time"]).to_numpy()
    keep = ~is_ckpt
    for part in (is_ckpt & players["on_frontier"].to_numpy(), is_ckpt & ~players["on_frontier"]):
        room = limit - int(keep.sum())
        idx = np.flatnonzero(part)
        if room <= 0 or idx.size == 0:
            continue
        take = (
            idx if idx.size <= room else idx[np.linspace(0, idx.size - 1, room).round().astype(int)]
        )
        keep[take] = True
    shown = players[keep]
    left = int(is_ckpt.sum() - (is_ckpt & keep).sum())
    return shown, f"{left} of {int(is_ckpt.sum())} checkpoints left out, evenly thinned"


def draw_pool(ax: Any, analysis: StudyAnalysis, shown: pd.DataFrame) -> None:
    """The players as horizontal intervals sorted by rating, each kind marked apart, and each
    placed cap as a vertical band (its evidence: the bridges beside it)."""
    y = np.arange(len(shown))
    styles = {  # kind -> (marker, face colour or None for the regime's colour, hollow)
        "bridge": ("D", "tab:red", False),
        "anchor": ("s", "black", False),
        "fixed": ("*", "black", False),
        "test-time": ("^", None, True),
    }
    seen: set[str] = set()
    for i, (_, p) in enumerate(shown.iterrows()):
        colour = REGIME_COLOURS.get(p["regime"], "tab:blue")
        if p["kind"] == "checkpoint":
            marker, hollow = "o", not p["on_frontier"]
            words = f"{p['regime']} checkpoint" + ("" if p["on_frontier"] else ", off the frontier")
        else:
            marker, face, hollow = styles[p["kind"]]
            colour = face or colour
            words = {
                "bridge": "bridge (rated on the data's scale too)",
                "anchor": "anchor (a fixed opponent)",
                "fixed": "anchor fixed by definition",
                "test-time": "checkpoint at another N",
            }[p["kind"]]
        ax.hlines(i, p["lo"], p["hi"], colors=colour, lw=1.2)
        ax.scatter(
            [p["elo"]],
            [i],
            marker=marker,
            s=30 if p["kind"] in ("bridge", "fixed") else 14,
            facecolors="none" if hollow else colour,
            edgecolors=colour,
            zorder=3,
            label=None if words in seen else words,
        )
        seen.add(words)
    ax.set_yticks(y, list(shown["label"]))
    ax.tick_params(axis="y", labelsize=6)
    for tick, kind in zip(ax.get_yticklabels(), shown["kind"], strict=True):
        if kind == "bridge":
            tick.set_color("tab:red")
    for cap, placed in analysis.caps.items():
        est = placed.estimate
        if est is None:
            continue
        if np.isfinite(est.lo) and np.isfinite(est.hi):
            via = ", ".join(placed.bridges)
            label = f"cap {cap} on this scale (via {via})"
            ax.axvspan(est.lo, est.hi, color="tab:red", alpha=0.10, lw=0, label=label)
        ax.axvline(est.value, color="tab:red", ls="--", lw=1)
