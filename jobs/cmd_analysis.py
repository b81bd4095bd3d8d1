"""``elocap fit`` and ``elocap report``: the study's fits and its HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.report import ReportConfig


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("workdir", type=Path, help="the study's work directory")
    p.add_argument(
        "--replicates",
        default="games",
        help="where the bootstrap's Elo replicates come from: games (refit the ratings on "
        "resampled arena games; default), intervals (normal draws from the rating intervals) "
        "or none (point estimates only)",
    )
    p.add_argument("--rating-model", default="ordo", help="the ratings' model (ordo or bayeselo)")
    p.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="NAME=ELO",
        help="the ratings' anchor (repeatable; default: random at 0)",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="replicates (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rating-level",
        type=float,
        default=0.90,
        help="confidence level of the intervals in ratings.csv (default 0.90)",
    )
    p.add_argument("--level", type=float, default=0.90, help="level of the fitted intervals")
    p.add_argument("--alpha", type=float, default=0.10, help="level of the change-of-slope test")
    p.add_argument(
        "--sims",
        type=int,
        metavar="N",
        help="the compute-Elo curves' N: they take the checkpoints rated at N simulations (a "
        "study's arena.sims), the players at other N are reported as test-time search; needed "
        "where the registry rates every checkpoint at several N (default: the one N every "
        "checkpoint has)",
    )


def _config(a: argparse.Namespace) -> ReportConfig:
    from analysis.compare import AnalysisConfig
    from analysis.report import ReportConfig

    anchors = []
    for text in a.anchor:
        name, sep, value = text.rpartition("=")
        try:
            anchors.append((name.strip(), float(value)))
        except ValueError:
            raise ValueError(f"--anchor wants NAME=ELO, got {text!r}") from None
        if not sep or not name.strip():
            raise ValueError(f"--anchor wants NAME=ELO, got {text!r}")
    _check_sims(a.workdir, a.sims)
    return ReportConfig(
        replicates=a.replicates,
        rating_model=a.rating_model,
        anchors=tuple(anchors),
        n_replicates=a.bootstrap,
        seed=a.seed,
        rating_level=a.rating_level,
        sims=a.sims,
        analysis=AnalysisConfig(level=a.level, alpha=a.alpha),
    )


def _check_sims(workdir: Path, sims: int | None) -> None:
    """The curves' N against the registry, so that an N it does not have, or a registry that
    cannot tell its N, is a one-line error naming ``--sims``."""
    from analysis.registry import load_checkpoints
    from analysis.search_scaling import curve_sims

    try:
        curve_sims(load_checkpoints(workdir), sims)
    except ValueError as e:
        raise ValueError(f"--sims: {e}") from None


def _fit(a: argparse.Namespace) -> int:
    from analysis.report import fits_json, run_analysis
    from elocap.files import atomic_write_text

    analysis = run_analysis(a.workdir, _config(a))
    text = fits_json(analysis)
    out = a.out if a.out is not None else a.workdir / "fits" / "fits.json"
    atomic_write_text(out, text)
    if a.json:
        print(text, end="")
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(analysis.comparison_table().to_string(index=False, float_format="%.4g"))
        print()
        print(analysis.fit_table().to_string(index=False, float_format="%.4g"))
        print()
        print(analysis.optimal_table().to_string(index=False, float_format="%.4g"))
    print(f"\nwritten: {out}")
    return 0


def _report(a: argparse.Namespace) -> int:
    from analysis.report import write_report

    print(write_report(a.workdir, a.out, _config(a)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fit", help="fit the study's compute-Elo curves and compare the regimes")
    _add_common(f)
    f.add_argument("--json", action="store_true", help="print every fitted value as JSON")
    f.add_argument("--out", type=Path, help="where to write fits.json (default WORKDIR/fits/)")
    f.set_defaults(func=_fit)
    r = sub.add_parser("report", help="write the study's HTML report with its figures")
    _add_common(r)
    r.add_argument("--out", type=Path, help="report directory (default WORKDIR/report)")
    r.set_defaults(func=_report)
