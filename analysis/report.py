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

The page itself is ``analysis.report_html``; its numbers and lines (``fmt_estimate``,
``headline``) are ``analysis.report_text``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compare import AnalysisConfig, StudyAnalysis, analyze
from analysis.figure_files import write_figures
from analysis.registry import (
    arena_games,
    load_metrics,
    load_ratings,
    load_study,
    replicates_from_games,
    replicates_from_intervals,
)
from analysis.report_games import game_endings
from analysis.report_html import render_html
from analysis.report_text import headline
from analysis.scale import Bridge, BridgeRatings, scale_label
from analysis.search_scaling import split_by_sims
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
    # cap is not placed). In TOML: [[analysis.bridges]] agent = "...", elo = 1500, se = 30
    # (its own error), shared_se = 100 (an error common to every bridge that declares one).
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
    """The fitted parameters as strict JSON (NaN -> null, infinity -> "inf"); each
    compute-optimal size fit says whether its exponent is estimable (``not_estimable``: why
    not, or null; see ``analysis.optimal_size.not_estimable``)."""
    tree = analysis.to_dict()
    return json.dumps(_json_safe(tree), indent=1, allow_nan=False)


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
    pool = load_ratings(workdir, level=cfg.rating_level)
    figures = write_figures(analysis, metrics, out, pool)
    atomic_write_text(out / "fits.json", fits_json(analysis))
    atomic_write_text(out / HEADLINE, "\n".join(headline(analysis)) + "\n")
    index = out / "index.html"
    checkpoints = set(analysis.study["agent"])  # at every N: test-time variants too
    if analysis.search is not None:
        checkpoints |= set(analysis.search.points["agent"])
    page = render_html(
        analysis,
        figures,
        workdir,
        cfg.replicates,
        bridges=cfg.bridges,
        pool=pool,
        rating_level=cfg.rating_level,
        endings=game_endings(arena_games(workdir), checkpoints),
    )
    atomic_write_text(index, page)
    return index
