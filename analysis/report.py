"""The study's report: one HTML page with the figures beside it and the fitted parameters.

``run_analysis(workdir, ...)`` loads the registry, draws Elo replicates from the chosen source
(``REPLICATE_SOURCES``) and fits everything; ``write_report(workdir, out_dir)`` writes
``index.html``, ``fits.json`` and every figure as PNG and SVG into ``out_dir`` (default
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compare import AnalysisConfig, StudyAnalysis, analyze
from analysis.fits import Estimate, SlopeComparison
from analysis.plots import write_figures
from analysis.registry import (
    load_metrics,
    load_study,
    replicates_from_games,
    replicates_from_intervals,
)
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
    """Loads the study in ``workdir`` and fits it (see ``analysis.compare.analyze``)."""
    cfg = config or ReportConfig()
    study = load_study(workdir, level=cfg.rating_level)
    samples = REPLICATE_SOURCES[cfg.replicates](Path(workdir), study, cfg)
    return analyze(study, samples, cfg.analysis)


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


def _fmt(x: float, digits: int = 0) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:,.{digits}f}"


def _est(e: Estimate, digits: int = 0) -> str:
    if not np.isfinite(e.lo):
        return _fmt(e.value, digits)
    return f"{_fmt(e.value, digits)} [{_fmt(e.lo, digits)}, {_fmt(e.hi, digits)}]"


def _sentence(c: SlopeComparison, level: float, replicates: int) -> str:
    p = f"p < {1 / replicates:.3g}" if c.p_value == 0 and replicates else f"p = {c.p_value:.3f}"
    verdict = (
        "no test without bootstrap replicates"
        if c.real is None
        else f"{p}: "
        + ("a real change" if c.real else "no significant change")
        + f" at the {c.alpha:.0%} level"
    )
    text = (
        f"<b>{html.escape(c.label)}</b> ({html.escape(c.method)}): "
        f"{html.escape(c.first_name)} {_est(c.first)} Elo/decade, "
        f"{html.escape(c.second_name)} {_est(c.second)} Elo/decade; difference "
        f"{_est(c.difference)} ({level:.0%} intervals), {verdict}. Compute for the next "
        f"{c.elo_gain:g} Elo: x{_est(c.multiplier_first, 2)} vs "
        f"x{_est(c.multiplier_second, 2)}."
    )
    if c.gap is not None and c.gap_at is not None:
        text += f" Elo gap at 10^{c.gap_at:.2f} FLOPs: {_est(c.gap)}."
    return text


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


def render_html(
    analysis: StudyAnalysis, figures: dict[str, list[Path]], workdir: Path, source: str
) -> str:
    """The report page; figures are referenced by file name (they lie beside it)."""
    cfg = analysis.config
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>elocap study report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>elocap study report</h1>",
        f"<p>Study <code>{html.escape(str(workdir))}</code>: {len(analysis.study)} checkpoints, "
        f"{int(np.isfinite(analysis.study['elo']).sum())} rated; "
        f"{analysis.n_replicates} bootstrap replicates (source: {html.escape(source)}); "
        f"{cfg.level:.0%} intervals; tests at the {cfg.alpha:.0%} level.</p>",
        "<h2>Does the slope change at the switch?</h2>",
    ]
    comparisons = (*analysis.switch, *analysis.selfplay)
    if comparisons:
        parts.append("<ul>")
        parts += [f"<li>{_sentence(c, cfg.level, analysis.n_replicates)}</li>" for c in comparisons]
        parts.append("</ul>")
    else:
        parts.append("<p>No self-play from a capped checkpoint in this study.</p>")
    parts.append("<h2>Figures</h2>")
    for name, paths in figures.items():
        png = next(p.name for p in paths if p.suffix == ".png")
        svg = next(p.name for p in paths if p.suffix == ".svg")
        parts.append(
            f'<h3>{html.escape(name.replace("_", " "))}</h3><p><a href="{svg}">'
            f'<img src="{png}" alt="{html.escape(name)}"></a> (<a href="{svg}">SVG</a>)</p>'
        )
    frontier = analysis.study[analysis.study["on_frontier"]]
    columns = ["group", "agent", "size", "params", "flops", "elo", "elo_lo", "elo_hi"]
    columns += ["frontier_share"]
    parts += [
        "<h2>Comparisons</h2>",
        _table(analysis.comparison_table()),
        "<h2>Fitted parameters</h2>",
        "<p>x = log10 FLOPs; slopes (b, b1, b2) in Elo per decade of compute; scale = the "
        "lack-of-fit factor applied to the bootstrap deviations.</p>",
        _table(analysis.fit_table()),
        "<h2>Compute-optimal model size</h2>",
        "<p>log10 parameters = log10_coefficient + exponent x log10 FLOPs.</p>",
        _table(analysis.optimal_table()),
        "<h2>The frontier's checkpoints</h2>",
        _table(frontier.loc[:, columns].sort_values(["group", "flops"])),
        '<p>All fitted values: <a href="fits.json">fits.json</a>.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


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
    index = out / "index.html"
    atomic_write_text(index, render_html(analysis, figures, workdir, cfg.replicates))
    return index
