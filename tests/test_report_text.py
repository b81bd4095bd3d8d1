"""The report's words: numbers of one kind in one format, a slope's interval judged against 0
in words, the cap's section with its bridges' evidence (not the headline again), and a
compute-optimal exponent that two sizes cannot give reported as not estimable."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.compare import StudyAnalysis
from analysis.fits import Estimate, fit_curve
from analysis.forms import Linear
from analysis.registry import load_ratings
from analysis.report import ReportConfig, run_analysis, write_report
from analysis.report_text import (
    cap_section,
    fmt_estimate,
    fmt_number,
    headline,
    optimal_why,
    zero_verdict,
)
from analysis.scale import Bridge
from tests.test_report import make_workdir


def _text(page: str, start: str, end: str) -> str:
    """The plain text of the page between two headings."""
    part = page[page.index(start) : page.index(end)]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", part)))


def test_bounds_are_formatted_like_their_estimate() -> None:
    """Elo per decade is a signed whole number everywhere, bounds included, and 0 has no sign
    and no decimal (was "+341 [0.0, +1066]")."""
    e = Estimate
    assert fmt_estimate(e(value=341.2, lo=0.0, hi=1066.4), "slope") == "+341 [0, +1066]"
    assert fmt_estimate(e(value=3.4, lo=-2.2, hi=8.8), "slope") == "+3 [-2, +9]"
    assert fmt_estimate(e(value=-0.3, lo=-4.6, hi=0.2), "diff") == "0 [-5, 0]"
    assert fmt_estimate(e(value=0.4, lo=-7.0, hi=5.5), "elo") == "0 [-7, 6]"
    assert fmt_number(0.4194, "exponent") == "0.42" and fmt_number(-0.001, "exponent") == "0.00"
    assert fmt_number(np.log10(3.2e12), "flops") == "3.2e12"


def test_zero_verdict_in_words() -> None:
    e = Estimate
    assert zero_verdict(e(value=76, lo=-46, hi=298), 0.9) == "not distinguishable from 0 at 90%"
    assert zero_verdict(e(value=341, lo=0.0, hi=1066), 0.9) == "not distinguishable from 0 at 90%"
    assert zero_verdict(e(value=120, lo=38, hi=210), 0.8) == "above 0 at 80%"
    assert zero_verdict(e(value=-50, lo=-90, hi=-10), 0.9) == "below 0 at 90%"
    assert zero_verdict(e(value=120, lo=np.nan, hi=np.nan, why="no replicates"), 0.9) == ""
    assert zero_verdict(e(value=np.nan, lo=np.nan, hi=np.nan, why="no fit"), 0.9) == ""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyAnalysis]:
    root = make_workdir(tmp_path_factory.mktemp("study"), players={"bridge-a": 700.0})
    bridges = (Bridge(agent="bridge-a", elo=1000.0, se=150.0, source="planted"),)
    cfg = ReportConfig(replicates="intervals", n_replicates=30, bridges=bridges)
    return root, run_analysis(root, cfg)


def test_the_headline_says_where_each_slope_lies_against_0(fitted) -> None:
    """The planted supervised slope (350-420 Elo/decade) is above 0; a slope whose interval
    holds 0 is said to be not distinguishable from it."""
    _, analysis = fitted
    first = headline(analysis)[0]
    supervised = analysis.slope("supervised cap 1200")
    assert supervised.lo > 0
    assert f"supervised (cap 1200) {fmt_estimate(supervised, 'slope')}: above 0 at 90%" in first
    group = "selfplay_scratch"
    fit = analysis.fits[group]["linear"]
    assert fit.replicates is not None
    reps = fit.replicates.copy()
    reps[:, 1] -= np.median(reps[:, 1])  # the slope's replicates centred on 0
    estimate = fit.estimate.copy()
    estimate[1] = 1.0
    flat = dataclasses.replace(fit, replicates=reps, estimate=estimate)
    fits = {g: dict(d) for g, d in analysis.fits.items()}
    fits[group]["linear"] = flat
    first = headline(dataclasses.replace(analysis, fits=fits))[0]
    slope = fmt_estimate(flat.param("b"), "slope")
    assert f"self-play from scratch {slope}: not distinguishable from 0 at 90%" in first


def test_the_cap_section_gives_the_bridges_evidence_not_the_headline(fitted) -> None:
    """One bridge: its arena rating with ratings.csv's interval, its nominal data-scale rating
    with the conversion's error and source, the offset's arithmetic, and which error source
    dominates; the headline's cap line is not repeated."""
    root, analysis = fitted
    pool = load_ratings(root)
    bridge = Bridge(agent="bridge-a", elo=1000.0, se=150.0, source="planted")
    lines = cap_section(analysis, (bridge,), pool, 0.90)
    text = " ".join(lines)
    assert headline(analysis)[-1] not in text
    row = pool.set_index("name").loc["bridge-a"]
    arena = fmt_estimate(Estimate(value=row["rating"], lo=row["lower"], hi=row["upper"]), "elo")
    assert f"bridge bridge-a: {arena} on this scale (ratings.csv, 90% interval" in text
    assert "1000 ± 150 on the data's scale" in text and "planted" in text
    est = analysis.caps[1200].estimate
    assert est is not None
    m = re.search(r"the cap lies at 1200 \+ \((\d+) - 1000\) = (\d+)", text)
    assert m is not None, text
    assert int(m[1]) == round(row["rating"]) and int(m[2]) == round(est.value)
    assert abs(1200 + int(m[1]) - 1000 - int(m[2])) <= 1
    assert f"{fmt_estimate(est, 'elo')} on the arena's scale (90% interval)" in text
    assert "bootstrap replicates" in text and "outweighs" in text  # 150 x 1.64 > the arena's
    # written into the page, in the cap's section
    out = root / "report"
    page = write_report(root, out, dataclasses.replace(_cfg(bridge), n_replicates=20))
    section = _text(page.read_text(), "<h2>The cap on this scale", "<h2>Does the slope")
    assert "bridge bridge-a:" in section and "offset" in section
    assert (out / "headline.txt").read_text().splitlines()[-1] not in section


def _cfg(bridge: Bridge) -> ReportConfig:
    return ReportConfig(replicates="intervals", n_replicates=30, bridges=(bridge,))


def test_two_bridges_are_a_line_and_no_bridge_says_why(fitted) -> None:
    _, analysis = fitted
    two = (Bridge(agent="bridge-a", elo=1000.0), Bridge(agent="bridge-b", elo=1400.0))
    names = ("bridge-a", "bridge-b")
    placed = dataclasses.replace(analysis.caps[1200], bridges=names)
    pool = load_ratings(fitted[0])  # bridge-b never played
    text = " ".join(cap_section(dataclasses.replace(analysis, caps={1200: placed}), two, pool))
    assert "With 2 bridges at distinct data-scale ratings the map is a line" in text
    assert "bridge bridge-b: not rated in the arena" in text
    assert "1400 on the data's scale (no error given" in text  # se 0: no "± 0"
    assert "± 0 " not in text
    unplaced = dataclasses.replace(placed, estimate=None, why="no bridge", bridges=())
    lines = cap_section(dataclasses.replace(analysis, caps={1200: unplaced}))
    assert lines[0].startswith("cap 1200 (on the data's scale) is not placed on the arena's")
    assert "no bridge" in lines[0] and headline(analysis)[-1] not in lines[0]


def test_two_sizes_give_no_optimal_exponent(fitted, tmp_path: Path) -> None:
    """With 2 sizes on the frontier the exponent is "not estimable" with the reason, in the
    table and in fits.json, and its numbers are not printed."""
    root, analysis = fitted
    why = optimal_why(analysis, "supervised cap 1200")
    assert why.startswith("2 model sizes on the frontier (10k, 30k)")
    out = tmp_path / "report"
    page = write_report(root, out, ReportConfig(replicates="intervals", n_replicates=20))
    section = _text(page.read_text(), "<h2>Compute-optimal", "<h2>The frontier")
    assert f"not estimable ({why})" in section
    assert not re.search(r"\d\.\d+ \[", section)  # no exponent with an interval
    fits = json.loads((out / "fits.json").read_text())
    assert fits["optimal_size"]["supervised cap 1200"]["not_estimable"] == why
    # `elocap fit` prints analysis.optimal_table() and writes analysis.to_dict(): no number
    row = analysis.optimal_table().set_index("group").loc["supervised cap 1200"]
    assert row["not_estimable"] == why
    assert row[["exponent", "exponent_lo", "exponent_hi", "log10_coefficient"]].isna().all()
    assert analysis.to_dict()["optimal_size"]["supervised cap 1200"]["not_estimable"] == why


def test_an_exponent_at_its_intervals_end_is_not_estimable(fitted) -> None:
    """Three sizes on the frontier, but every replicate's exponent at or above the estimate:
    the estimate is the interval's lower end, and the report says it is not estimable; with
    replicates on both sides the exponent is reported with its interval."""
    _, analysis = fitted
    group = "supervised cap 1200"
    study = analysis.study.copy()
    on = np.flatnonzero((study["group"] == group) & study["on_frontier"])
    study.loc[study.index[on[: len(on) // 3]], "size"] = "3k"
    x = np.linspace(11.0, 13.0, 8)
    y = 4.0 + 0.5 * (x - 11.0)
    rng = np.random.default_rng(0)
    for k, expect in (
        (np.abs(rng.normal(0.0, 0.1, 40)), "at or outside an end"),
        (rng.normal(0, 0.1, 40), ""),
    ):
        samples = y + k[:, None] * (x - x.mean())
        fit = fit_curve(Linear(), x, y, samples=samples, level=0.9)
        changed = dataclasses.replace(analysis, study=study, optimal_size={group: fit})
        why = optimal_why(changed, group)
        if expect:
            assert expect in why, why
        else:
            assert why == "", why


def test_a_cap_interval_narrower_than_its_conversion_error_is_flagged(fitted) -> None:
    """One bridge with a data-scale error of 150 (± 247 at 90%): a cap interval of ± 100 is
    narrower than that error alone, which only the bootstrap's Monte Carlo noise explains, and
    the section says so; an interval of ± 400 is not flagged."""
    root, analysis = fitted
    bridge = Bridge(agent="bridge-a", elo=1000.0, se=150.0)
    placed = analysis.caps[1200]
    assert placed.estimate is not None
    v = placed.estimate.value
    for half, flagged in ((100.0, True), (400.0, False)):
        est = Estimate(value=v, lo=v - half, hi=v + half)
        changed = dataclasses.replace(
            analysis, caps={1200: dataclasses.replace(placed, estimate=est)}
        )
        text = " ".join(cap_section(changed, (bridge,), load_ratings(root)))
        assert ("narrower than the conversion's error alone" in text) is flagged, text
        assert ("Monte Carlo noise" in text) is flagged
