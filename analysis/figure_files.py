"""The study's figures written as files: every registered figure of ``analysis.plots`` drawn
and saved as PNG and SVG (each atomically), or its reason when it is not drawn."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.compare import StudyAnalysis
from analysis.plots import FIGURES, FORMATS, NotDrawn


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
    analysis: StudyAnalysis,
    metrics: pd.DataFrame,
    out_dir: Path,
    pool: pd.DataFrame | None = None,
) -> dict[str, list[Path] | NotDrawn]:
    """Draws every registered figure into ``out_dir``: name -> [png, svg], or the ``NotDrawn``
    reason of a figure the study has nothing for; a figure that does not apply (None) is left
    out. Files of a figure not drawn now, from an earlier report, are removed. ``pool``: every
    rated player (ratings.csv), for the rating-interval figure."""
    out: dict[str, list[Path] | NotDrawn] = {}
    for name, fn in FIGURES.items():
        fig = fn(analysis, metrics, pool)
        if not isinstance(fig, Figure):
            for fmt in FORMATS:
                (out_dir / f"{name}.{fmt}").unlink(missing_ok=True)
            if fig is not None:
                out[name] = fig
            continue
        out[name] = save_figure(fig, out_dir, name)
    return out
