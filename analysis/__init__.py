"""Ratings, compute-Elo frontiers, fits, figures and the study report: the public surface.

A study's analysis from a script::

    from analysis import analyze, load_study, replicates_from_games

    study = load_study(workdir)                                  # checkpoints + ratings
    reps = replicates_from_games(workdir, study, n=200, seed=0)  # bootstrap over games
    result = analyze(study, reps)                                # frontier, fits, comparisons
    print(result.comparison_table())

or ``write_report(workdir)`` for the HTML report (``elocap report WORKDIR``). A registry that
also rates checkpoints at other test-time simulations N (``[arena] test_time_sims``) is taken
apart first: ``curves, search = split_by_sims(study, sims)``, the curves at one N, ``search`` a
``SearchScaling`` of Elo against N.
"""

from analysis.compare import SWITCH_METHODS, AnalysisConfig, StudyAnalysis, analyze
from analysis.figure_files import write_figures
from analysis.fits import CurveFit, Estimate, SlopeComparison, compare_slopes, fit_curve
from analysis.forms import FORMS, FitForm, fit_batch, make_form, register_form
from analysis.frontier import frontier, frontier_curve, frontier_masks
from analysis.plots import FIGURES
from analysis.ratings import (
    DEFAULT_ANCHOR,
    RATING_MODELS,
    DisconnectedPoolError,
    Games,
    RatingTable,
    bootstrap_ratings,
    fit_ratings,
    read_pgn_results,
)
from analysis.registry import (
    REGIMES,
    load_checkpoints,
    load_metrics,
    load_ratings,
    load_study,
    replicates_from_games,
    replicates_from_intervals,
    write_checkpoints,
    write_ratings,
)
from analysis.report import REPLICATE_SOURCES, ReportConfig, run_analysis, write_report
from analysis.search_scaling import POINT_COLUMNS, SearchScaling, curve_sims, split_by_sims

__all__ = [
    "DEFAULT_ANCHOR",
    "FIGURES",
    "FORMS",
    "POINT_COLUMNS",
    "RATING_MODELS",
    "REGIMES",
    "REPLICATE_SOURCES",
    "SWITCH_METHODS",
    "AnalysisConfig",
    "CurveFit",
    "DisconnectedPoolError",
    "Estimate",
    "FitForm",
    "Games",
    "RatingTable",
    "ReportConfig",
    "SearchScaling",
    "SlopeComparison",
    "StudyAnalysis",
    "analyze",
    "bootstrap_ratings",
    "compare_slopes",
    "curve_sims",
    "fit_batch",
    "fit_curve",
    "fit_ratings",
    "frontier",
    "frontier_curve",
    "frontier_masks",
    "load_checkpoints",
    "load_metrics",
    "load_ratings",
    "load_study",
    "make_form",
    "read_pgn_results",
    "register_form",
    "replicates_from_games",
    "replicates_from_intervals",
    "run_analysis",
    "split_by_sims",
    "write_checkpoints",
    "write_figures",
    "write_ratings",
    "write_report",
]
