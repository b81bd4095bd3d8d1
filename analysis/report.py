"""The study's report: one HTML page with the figures beside it and the fitted parameters.

``run_analysis(workdir, ...)`` loads the registry, draws Elo replicates from the chosen source
(``REPLICATE_SOURCES``) and fits everything; ``write_report(workdir, out_dir)`` writes
``index.html``, ``fits.json``, ``headline.txt`` (``headline``: the main answer in 1-3 lines)
and every figure as PNG and SVG into ``out_dir`` (default
``<workdir>/report``). Every file is written to a temporary name and renamed into place,
``index.html`` last, so a reader never sees a partial file.

Replicate sources: ``games`` (the bootstrap over the arena's games: ratings refitted on
resampled games with the ratings stage's model and anchors; the default), ``intervals``
(independent normal draws from the rating intervals; ignores the correlations between
ratings) and ``none`` (point estimates only).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compare import AnalysisConfig, StudyAnalysis, analyze
from analysis.fits import Estimate, SlopeComparison
from analysis.plots import TEST_TIME_FIGURE, write_figures
from analysis.registry import (
    load_metrics,
    load_ratings,
    load_study,
    replicates_from_games,
    replicates_from_intervals,
)
from analysis.scale import Bridge, BridgeRatings, scale_label
from analysis.search_scaling import SearchScaling, split_by_sims
from elocap.files import atomic_write_text
from elocap.workdir import Workdir


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    replicates: str = "games"  # a key of REPLICATE_SOURCES
    n_replicates: int = 200  # bootstrap replicates
    seed: int = 0
    rating_level: float = 0.90  # the level of the intervals in ratings.csv
    rating_model: str = "ordo"  # the ratings stage's model (for the bootstrap over games)
    anchors: tuple[tuple[str, float], ...] = ()  # its anchors; () = its default (random at 0)
    # Arena players rated on the data's scale: they place the cap on the arena's (none: the
    # cap is not placed). In TOML: [[analysis.bridges]] agent = "...", elo = 1500, se = 30.
    bridges: tuple[Bridge, ...] = ()
    # N of the compute-Elo curves (contract 3; a study sets it from arena.sims): the players at
    # other N (test-time search) are reported apart. None: the one N every checkpoint has.
    sims: int | None = None
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __post_init__(self) -> None:
        if self.replicates not in REPLICATE_SOURCES:
            known = ", ".join(sorted(REPLICATE_SOURCES))
            raise ValueError(f"unknown replicate source {self.replicates!r}; known: {known}")
        if self.n_replicates < 2 and self.replicates != "none":
            raise ValueError("at least 2 bootstrap replicates are needed")


# A source of Elo replicates: (workdir, study, config) -> f64[n, N] or None (no bootstrap).
ReplicateSource = Callable[[Path, pd.DataFrame, ReportConfig], np.ndarray | None]
REPLICATE_SOURCES: dict[str, ReplicateSource] = {
    "games": lambda workdir, study, cfg: replicates_from_games(
        workdir,
        study,
        cfg.n_replicates,
        cfg.seed,
        model=cfg.rating_model,
        anchors=dict(cfg.anchors) or None,
    ),
    "intervals": lambda workdir, study, cfg: replicates_from_intervals(
        study, cfg.n_replicates, cfg.seed
    ),
    "none": lambda workdir, study, cfg: None,
}


def run_analysis(workdir: Path, config: ReportConfig | None = None) -> StudyAnalysis:
    """Loads the study in ``workdir`` and fits it (see ``analysis.compare.analyze``); the
    bridges' arena ratings come from ``ratings.csv`` and the same replicates as the study's.
    The curves use the checkpoints at ``config.sims``; those also rated at other N are the
    analysis's ``search`` (``analysis.search_scaling``)."""
    cfg = config or ReportConfig()
    registry = load_study(workdir, level=cfg.rating_level)
    study, search = split_by_sims(registry, cfg.sims, level=cfg.rating_level)
    n = len(study)
    joint = study
    if cfg.bridges:
        rated = load_ratings(workdir, level=cfg.rating_level).set_index("name")
        names = [b.agent for b in cfg.bridges]
        found = rated.reindex(names)
        extra = pd.DataFrame(
            {
                "agent": names,
                "elo": found["rating"].to_numpy(),
                "elo_lo": found["lower"].to_numpy(),
                "elo_hi": found["upper"].to_numpy(),
                "elo_se": found["se"].to_numpy(),
            }
        )
        columns = ["agent", "elo", "elo_lo", "elo_hi", "elo_se"]
        joint = pd.concat([study[columns], extra], ignore_index=True)
    samples = REPLICATE_SOURCES[cfg.replicates](Path(workdir), joint, cfg)
    bridges = None
    if cfg.bridges:
        bridges = BridgeRatings(
            bridges=cfg.bridges,
            arena=joint["elo"].to_numpy(dtype=float)[n:],
            replicates=None if samples is None else samples[:, n:],
        )
    result = analyze(
        study,
        None if samples is None else samples[:, :n],
        cfg.analysis,
        bridges=bridges,
        scale=scale_label(dict(cfg.anchors)),
    )
    return replace(result, search=search)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null/strings: strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        v = float(value)
        return None if math.isnan(v) else ("inf" if v == math.inf else v)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def fits_json(analysis: StudyAnalysis) -> str:
    """The fitted parameters as strict JSON (NaN -> null, infinity -> "inf")."""
    return json.dumps(_json_safe(analysis.to_dict()), indent=1, allow_nan=False)


# --- numbers as a reader wants them ------------------------------------------------------------


def fmt_number(v: float, kind: str) -> str:
    """One number: ``slope`` and ``diff`` signed Elo ("+120"), ``elo`` Elo ("640"), ``flops``
    from log10 FLOPs ("3.2e12"), ``mult`` a compute factor ("x3.2", "x4.2e6")."""
    if kind == "flops":
        return f"{10.0**v:.1e}".replace("e+", "e")
    if kind == "mult":
        if v >= 1e3:
            return "x" + f"{v:.1e}".replace("e+0", "e").replace("e+", "e")
        return f"x{v:.1f}" if v < 9.95 else f"x{v:.0f}"
    if kind in ("slope", "diff"):
        text = f"{v:+.0f}" if abs(v) >= 9.5 else f"{v:+.1f}"
    else:
        text = f"{v:.0f}" if abs(v) >= 9.5 else f"{v:.1f}"
    # a value that rounds to zero has no sign ("[+0.0, -0.0]" reads as an interval upside down)
    return text.lstrip("+-") if text.lstrip("+-") in ("0", "0.0") else text


def fmt_estimate(e: Estimate, kind: str, unit: str = "") -> str:
    """An estimate with its interval, "+120 [+40, +210] Elo/decade"; "not estimable (why)"
    where there is no value, "(no interval: why)" where there is no interval."""
    tail = f" {unit}" if unit else ""
    if not np.isfinite(e.value):
        return f"not estimable ({e.why or 'no fit'})"
    value = fmt_number(e.value, kind)
    if np.isnan(e.lo) or np.isnan(e.hi):
        return f"{value}{tail} (no interval: {e.why or 'no bootstrap replicates'})"
    lo = fmt_number(e.lo, kind) if np.isfinite(e.lo) else "unbounded"
    hi = fmt_number(e.hi, kind) if np.isfinite(e.hi) else "unbounded"
    note = f" ({e.why})" if e.why else ""
    return f"{value} [{lo}, {hi}]{tail}{note}"


_KINDS = {"b": "slope", "b1": "slope", "b2": "slope", "x_kink": "flops", "x_mid": "flops"}
_KINDS |= {"x_break": "flops", "k": "k"}
_UNITS = {"slope": "Elo/decade", "flops": "FLOPs", "elo": "Elo", "k": "per decade"}


def _group_name(label: str) -> str:
    """``supervised cap 1800`` -> ``supervised (cap 1800)``; the self-play regimes in words."""
    words = {"selfplay_cap": "self-play from the cap", "selfplay_scratch": "self-play from scratch"}
    regime, _, cap = label.partition(" cap ")
    name = words.get(regime, regime)
    return f"{name} (cap {cap})" if cap else name


def _p(c: SlopeComparison, replicates: int) -> str:
    if c.p_value == 0 and replicates:
        return f"p < {1 / replicates:.2g}"
    return f"p = {c.p_value:.2f}" if c.p_value >= 0.01 else f"p = {c.p_value:.1e}"


def _sentence(c: SlopeComparison, level: float, replicates: int) -> str:
    verdict = (
        "no test without bootstrap replicates"
        if c.real is None
        else f"{_p(c, replicates)}: "
        + ("a real change" if c.real else "no significant change")
        + f" at the {c.alpha:.0%} level"
    )
    text = (
        f"{_group_name(c.first_name)} {fmt_estimate(c.first, 'slope', 'Elo/decade')}, "
        f"{_group_name(c.second_name)} {fmt_estimate(c.second, 'slope', 'Elo/decade')}; "
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


def cap_line(analysis: StudyAnalysis, cap: int) -> str:
    """The cap on the arena's scale with its interval, or that it is not placed."""
    placed = analysis.caps.get(cap)
    if placed is None or placed.estimate is None:
        why = "no bridge" if placed is None or not placed.bridges else placed.why
        return f"cap {cap}: cap not placed on this scale ({why})"
    via = ", ".join(placed.bridges)
    return f"cap {cap} on this scale: {fmt_estimate(placed.estimate, 'elo')} (bridges: {via})"


def headline(analysis: StudyAnalysis) -> list[str]:
    """The report's main answer in 1-3 short lines: the slope of each regime's frontier (a
    line through it, Elo per decade of FLOPs) with its interval or why it is not estimable; the
    change of slope at the switch; where each cap lies on the arena's scale."""
    level = f"{analysis.config.level:.0%}"
    order = ("supervised", "selfplay_cap", "selfplay_scratch")
    groups = sorted(analysis.fits, key=lambda g: (order.index(g.split()[0]), g))
    slopes = [f"{_group_name(g)} {fmt_estimate(analysis.slope(g), 'slope')}" for g in groups]
    lines = [f"Elo/decade of FLOPs ({level} intervals): " + "; ".join(slopes or ["no fits"])]
    changes = [c for c in analysis.switch if c.method == "segmented_at_switch"]
    if changes:
        lines.append(
            "change at the switch: "
            + "; ".join(
                f"{c.label.split(':')[0]} {fmt_estimate(c.difference, 'diff', 'Elo/decade')}"
                + ("" if c.real is None else f" ({_p(c, analysis.n_replicates)})")
                for c in changes
            )
        )
    if analysis.caps:
        lines.append("; ".join(cap_line(analysis, c) for c in analysis.caps))
    return lines


def _fit_rows(analysis: StudyAnalysis) -> pd.DataFrame:
    """The fitted parameters as text: group, form, parameter, estimate [interval], unit."""
    rows = []
    for group, by_form in analysis.fits.items():
        for form, fit in by_form.items():
            for name in fit.form.params:
                kind = _KINDS.get(name, "elo")
                rows.append(
                    {
                        "group": _group_name(group),
                        "form": form,
                        "parameter": name,
                        "estimate [interval]": fmt_estimate(fit.param(name), kind),
                        "unit": _UNITS.get(kind, ""),
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
            "group": [_group_name(g) for g in f["group"]],
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
    rows = []
    for group, fit in analysis.optimal_size.items():
        exponent = fit.param("b")
        rows.append(
            {
                "group": _group_name(group),
                "exponent [interval]": fmt_estimate(exponent, "k").replace(" per decade", ""),
                "log10 coefficient": f"{fit.param('a').value:.2f}",
            }
        )
    return pd.DataFrame(rows)


def render_html(
    analysis: StudyAnalysis, figures: dict[str, list[Path]], workdir: Path, source: str
) -> str:
    """The report page; figures are referenced by file name (they lie beside it)."""
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
        *(f"<li>{esc(cap_line(analysis, c))}</li>" for c in analysis.caps),
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
    parts += _test_time_section(analysis.search, figures.get(TEST_TIME_FIGURE, []))
    parts.append("<h2>Figures</h2>")
    for name, paths in figures.items():
        if name == TEST_TIME_FIGURE:
            continue  # in its own section
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
        "<p>log10 parameters = log10 coefficient + exponent x log10 FLOPs.</p>",
        _table(_optimal_rows(analysis)),
        "<h2>The frontier's checkpoints</h2>",
        _table(_frontier_rows(analysis)),
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
            "regime": [_group_name(str(r)) for r in p["regime"]],
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


HEADLINE = "headline.txt"  # the report's main answer, beside index.html


def read_headline(report_dir: Path) -> list[str]:
    """The lines of ``headline`` that ``write_report`` left in ``report_dir``."""
    return (Path(report_dir) / HEADLINE).read_text().splitlines()


def write_report(
    workdir: Path, out_dir: Path | None = None, config: ReportConfig | None = None
) -> Path:
    """Fits the study and writes the report; returns the path of ``index.html``."""
    cfg = config or ReportConfig()
    workdir = Path(workdir)
    out = Path(out_dir) if out_dir is not None else Workdir(root=Path(workdir)).report_dir
    analysis = run_analysis(workdir, cfg)
    metrics = load_metrics(workdir, sorted(set(analysis.study["run_id"])))
    figures = write_figures(analysis, metrics, out)
    atomic_write_text(out / "fits.json", fits_json(analysis))
    atomic_write_text(out / HEADLINE, "\n".join(headline(analysis)) + "\n")
    index = out / "index.html"
    atomic_write_text(index, render_html(analysis, figures, workdir, cfg.replicates))
    return index
