"""The report's page: ``render_html`` lays out the answer, the cap, the change of slope at the
switch, Elo against test-time simulations N, the figures and the tables of fitted values,
from a fitted ``StudyAnalysis`` and the figures written beside the page."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.compare import StudyAnalysis
from analysis.fits import Estimate, SlopeComparison
from analysis.optimal_size import MIN_OPTIMAL_SIZES
from analysis.plots import TEST_TIME_FIGURE, NotDrawn
from analysis.report_games import endings_section
from analysis.report_text import (
    PARAM_KINDS,
    UNITS,
    cap_section,
    fmt_estimate,
    fmt_number,
    group_name,
    headline,
    optimal_why,
    p_text,
)
from analysis.scale import Bridge
from analysis.search_scaling import SearchScaling


def _sentence(c: SlopeComparison, level: float, replicates: int) -> str:
    verdict = (
        "no test without bootstrap replicates"
        if c.real is None
        else f"{p_text(c, replicates)}: "
        + ("a real change" if c.real else "no significant change")
        + f" at the {c.alpha:.0%} level"
    )
    text = (
        f"{group_name(c.first_name)} {fmt_estimate(c.first, 'slope', 'Elo/decade')}, "
        f"{group_name(c.second_name)} {fmt_estimate(c.second, 'slope', 'Elo/decade')}; "
        f"difference {fmt_estimate(c.difference, 'diff', 'Elo/decade')} ({level:.0%} "
        f"intervals), {verdict}. Compute for the next {c.elo_gain:g} Elo: "
        f"{fmt_estimate(c.multiplier_first, 'mult')} vs "
        f"{fmt_estimate(c.multiplier_second, 'mult')}."
    )
    if (
        c.breakpoint is not None
        and np.isfinite(c.breakpoint.lo)
        and c.breakpoint.lo < c.breakpoint.hi
    ):
        text += f" Fitted break at {fmt_estimate(c.breakpoint, 'flops', 'FLOPs')}."
    if c.gap is not None and c.gap_at is not None:
        text += f" Elo gap at {fmt_number(c.gap_at, 'flops')} FLOPs: {fmt_estimate(c.gap, 'diff')}."
    return f"<b>{html.escape(c.label)}</b> ({html.escape(c.method)}): {html.escape(text)}"


def _fit_rows(analysis: StudyAnalysis) -> pd.DataFrame:
    """The fitted parameters as text: group, form, parameter, estimate [interval], unit."""
    rows = []
    for group, by_form in analysis.fits.items():
        for form, fit in by_form.items():
            for name in fit.form.params:
                kind = PARAM_KINDS.get(name, "elo")
                rows.append(
                    {
                        "group": group_name(group),
                        "form": form,
                        "parameter": name,
                        "estimate [interval]": fmt_estimate(fit.param(name), kind),
                        "unit": UNITS.get(kind, ""),
                        "points": fit.n,
                        "lack-of-fit scale": f"{fit.scale:.2f}",
                    }
                )
    return pd.DataFrame(rows)


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>(none)</p>"
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
li { margin: 0.4em 0; }
"""


def _frontier_rows(analysis: StudyAnalysis) -> pd.DataFrame:
    f = analysis.study[analysis.study["on_frontier"]].sort_values(["group", "flops"])
    return pd.DataFrame(
        {
            "group": [group_name(g) for g in f["group"]],
            "agent": f["agent"],
            "size": f["size"],
            "params": f["params"],
            "FLOPs": [fmt_number(np.log10(v), "flops") for v in f["flops"]],
            "Elo [interval]": [
                fmt_estimate(Estimate(value=e, lo=lo, hi=hi), "elo")
                for e, lo, hi in zip(f["elo"], f["elo_lo"], f["elo_hi"], strict=True)
            ],
            "frontier share": [f"{v:.0%}" if np.isfinite(v) else "" for v in f["frontier_share"]],
        }
    )


def _optimal_rows(analysis: StudyAnalysis) -> pd.DataFrame:
    """The exponent and coefficient of each group's compute-optimal size, or "not estimable"
    with the reason in words (``optimal_why``) and no numbers."""
    rows = []
    for group, fit in analysis.optimal_size.items():
        why = optimal_why(analysis, group)
        rows.append(
            {
                "group": group_name(group),
                "exponent [interval]": (
                    f"not estimable ({why})" if why else fmt_estimate(fit.param("b"), "exponent")
                ),
                "log10 coefficient": "" if why else fmt_number(fit.param("a").value, "exponent"),
            }
        )
    return pd.DataFrame(rows)


def render_html(
    analysis: StudyAnalysis,
    figures: Mapping[str, list[Path] | NotDrawn],
    workdir: Path,
    source: str,
    *,
    bridges: Sequence[Bridge] = (),
    pool: pd.DataFrame | None = None,
    rating_level: float = 0.90,
    endings: pd.DataFrame | None = None,
) -> str:
    """The report page; figures are referenced by file name (they lie beside it). ``bridges``:
    the study's bridges; ``pool``: every rated player (ratings.csv, intervals at
    ``rating_level``), for the cap's evidence; ``endings``: how the arena's games ended
    (``analysis.report_games.game_endings``; None: not counted)."""
    cfg = analysis.config
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>elocap study report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>elocap study report</h1>",
        f"<p>Study <code>{esc(str(workdir))}</code>: {len(analysis.study)} checkpoints, "
        f"{int(np.isfinite(analysis.study['elo']).sum())} rated; "
        f"{analysis.n_replicates} bootstrap replicates (source: {esc(source)}); "
        f"{cfg.level:.0%} intervals; tests at the {cfg.alpha:.0%} level. Every rating is on "
        f"one scale: <b>{esc(analysis.scale)}</b>.</p>",
        "<h2>The answer</h2><ul>",
        *(f"<li>{esc(line)}</li>" for line in headline(analysis)),
        "</ul>",
        "<h2>The cap on this scale</h2>",
        "<p>The cap is a rating on the data's scale (the games' Elo tags); it is placed on the "
        "arena's scale only through bridges, players rated on both, and then with an "
        "interval.</p><ul>",
        *(f"<li>{esc(line)}</li>" for line in cap_section(analysis, bridges, pool, rating_level)),
        "</ul>",
        "<h2>Does the slope change at the switch?</h2>",
    ]
    comparisons = (*analysis.switch, *analysis.selfplay)
    if comparisons:
        parts.append("<ul>")
        parts += [f"<li>{_sentence(c, cfg.level, analysis.n_replicates)}</li>" for c in comparisons]
        parts.append("</ul>")
    else:
        parts.append("<p>No self-play from a capped checkpoint in this study.</p>")
    if analysis.skipped:
        parts.append("<p>Not fitted:</p><ul>")
        parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in analysis.skipped.items()]
        parts.append("</ul>")
    test_time = figures.get(TEST_TIME_FIGURE, [])
    parts += _test_time_section(analysis.search, test_time if isinstance(test_time, list) else [])
    parts.append("<h2>Figures</h2>")
    for name, paths in figures.items():
        if name == TEST_TIME_FIGURE:
            continue  # in its own section
        if isinstance(paths, NotDrawn):
            parts.append(
                f"<h3>{esc(name.replace('_', ' '))}</h3><p>Not drawn: {esc(paths.why)}.</p>"
            )
            continue
        png = next(p.name for p in paths if p.suffix == ".png")
        svg = next(p.name for p in paths if p.suffix == ".svg")
        parts.append(
            f'<h3>{esc(name.replace("_", " "))}</h3><p><a href="{svg}">'
            f'<img src="{png}" alt="{esc(name)}"></a> (<a href="{svg}">SVG</a>)</p>'
        )
    parts += [
        "<h2>Fitted parameters</h2>",
        "<p>Fits of Elo against log10 FLOPs on each frontier; slopes (b, b1, b2) in Elo per "
        "decade of compute; kinks and breaks as FLOPs; a and floor are Elo (a at 1 FLOP, "
        "extrapolated); lack-of-fit scale = the factor the replicates' rating deviations are "
        "widened by before they are refitted.</p>",
        _table(_fit_rows(analysis)),
        "<h2>Compute-optimal model size</h2>",
        "<p>log10 parameters = log10 coefficient + exponent x log10 FLOPs, fitted to the size "
        "of the frontier's run on a grid of compute; not estimable with fewer than "
        f"{MIN_OPTIMAL_SIZES} sizes on the frontier or with an estimate at its interval's "
        "end.</p>",
        _table(_optimal_rows(analysis)),
        "<h2>The frontier's checkpoints</h2>",
        _table(_frontier_rows(analysis)),
        *endings_section(endings),
        '<p>All fitted values: <a href="fits.json">fits.json</a>.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _test_time_section(search: SearchScaling | None, figure: list[Path]) -> list[str]:
    """Elo against test-time simulations N: the figure and a table, or a line saying why not."""
    parts = ["<h2>Elo against test-time simulations N</h2>"]
    if search is None or search.why:
        why = "not analysed" if search is None else search.why
        return [*parts, f"<p>Not shown: {html.escape(why)}.</p>"]
    parts.append(
        f"<p>{len(search.checkpoints)} checkpoints also played as network + N simulations at "
        "other N, in the same pool and rating fit as every player (one scale). The compute-Elo "
        f"curves and fits above use only N = {search.curve_sims}; intervals are "
        f"{search.level:.0%} intervals of ratings.csv.</p>"
    )
    if figure:
        png = next(p.name for p in figure if p.suffix == ".png")
        svg = next(p.name for p in figure if p.suffix == ".svg")
        parts.append(
            f'<p><a href="{svg}"><img src="{png}" alt="{TEST_TIME_FIGURE}"></a> '
            f'(<a href="{svg}">SVG</a>)</p>'
        )
    p = search.points
    rows = pd.DataFrame(
        {
            "checkpoint": p["checkpoint"],
            "regime": [group_name(str(r)) for r in p["regime"]],
            "size": p["size"],
            "FLOPs": [fmt_number(np.log10(v), "flops") for v in p["flops"]],
            "N": p["sims"],
            "player": p["agent"],
            "Elo [interval]": [
                fmt_estimate(Estimate(value=e, lo=lo, hi=hi), "elo")
                if np.isfinite(e)
                else "not rated"
                for e, lo, hi in zip(p["elo"], p["elo_lo"], p["elo_hi"], strict=True)
            ],
            "games": p["rating_games"],
        }
    )
    return [*parts, _table(rows)]
