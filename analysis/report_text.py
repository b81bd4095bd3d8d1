"""The report's numbers and lines as a reader wants them: estimates with their intervals and
units, group names in words, the cap's line and the headline (the main answer in 1-3 lines).
Plain text; ``analysis.report_html`` escapes it into the page."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.compare import StudyAnalysis
from analysis.fits import Estimate, SlopeComparison
from analysis.scale import Bridge


def fmt_number(v: float, kind: str) -> str:
    """One number: ``slope`` and ``diff`` a signed whole number of Elo ("+120", "+3", "0"),
    ``elo`` a whole number of Elo ("640"), ``flops`` from log10 FLOPs ("3.2e12"), ``mult`` a
    compute factor ("x3.2", "x4.2e6"), ``exponent`` two decimals ("0.42"); any other kind
    (e.g. ``k``) a whole number from 9.5 up, else one decimal. Every number of one kind has
    one format, so an interval's bounds read like its estimate (no "+341 [0.0, +1066]")."""
    if kind == "flops":
        return f"{10.0**v:.1e}".replace("e+", "e")
    if kind == "mult":
        if v >= 1e3:
            return "x" + f"{v:.1e}".replace("e+0", "e").replace("e+", "e")
        return f"x{v:.1f}" if v < 9.95 else f"x{v:.0f}"
    if kind in ("slope", "diff"):
        text = f"{v:+.0f}"
    elif kind == "elo":
        text = f"{v:.0f}"
    elif kind == "exponent":
        text = f"{v:.2f}"
    else:
        text = f"{v:.0f}" if abs(v) >= 9.5 else f"{v:.1f}"
    # a value that rounds to zero has no sign ("[+0.0, -0.0]" reads as an interval upside down)
    bare = text.lstrip("+-")
    return bare if not bare.strip("0.") else text


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


PARAM_KINDS = {"b": "slope", "b1": "slope", "b2": "slope", "x_kink": "flops", "x_mid": "flops"}
PARAM_KINDS |= {"x_break": "flops", "k": "k"}
UNITS = {"slope": "Elo/decade", "flops": "FLOPs", "elo": "Elo", "k": "per decade"}


def group_name(label: str) -> str:
    """``supervised cap 1800`` -> ``supervised (cap 1800)``; the self-play regimes in words."""
    words = {"selfplay_cap": "self-play from the cap", "selfplay_scratch": "self-play from scratch"}
    regime, _, cap = label.partition(" cap ")
    name = words.get(regime, regime)
    return f"{name} (cap {cap})" if cap else name


def p_text(c: SlopeComparison, replicates: int) -> str:
    """A comparison's p-value, "p < 0.05" where no replicate reached it."""
    if c.p_value == 0 and replicates:
        return f"p < {1 / replicates:.2g}"
    return f"p = {c.p_value:.2f}" if c.p_value >= 0.01 else f"p = {c.p_value:.1e}"


def cap_line(analysis: StudyAnalysis, cap: int) -> str:
    """The cap on the arena's scale with its interval, or that it is not placed."""
    placed = analysis.caps.get(cap)
    if placed is None or placed.estimate is None:
        why = "no bridge" if placed is None or not placed.bridges else placed.why
        return f"cap {cap}: cap not placed on this scale ({why})"
    via = ", ".join(placed.bridges)
    return f"cap {cap} on this scale: {fmt_estimate(placed.estimate, 'elo')} (bridges: {via})"


def _bridge_line(b: Bridge, pool: pd.DataFrame | None, rating_level: float) -> str:
    """One bridge: its arena rating with ratings.csv's interval, and its nominal rating on the
    data's scale with the conversion's error and source."""
    row = None if pool is None else pool.set_index("name").reindex([b.agent]).iloc[0]
    if row is None:
        arena = "arena rating not given"
    elif not np.isfinite(row["rating"]):
        arena = "not rated in the arena"
    else:
        rated = Estimate(value=row["rating"], lo=row["lower"], hi=row["upper"])
        arena = (
            f"{fmt_estimate(rated, 'elo')} on this scale (ratings.csv, {rating_level:.0%} "
            f"interval, {row['games']:.0f} games)"
        )
    source = f"; {b.source}" if b.source else ""
    if b.shared_se > 0:
        nominal = (
            f"{fmt_number(b.elo, 'elo')} ± {fmt_number(b.total_se, 'elo')} on the data's scale "
            f"(± one standard error: its own ± {fmt_number(b.se, 'elo')} and ± "
            f"{fmt_number(b.shared_se, 'elo')} shared with the other bridges that declare one, "
            f"drawn once for them all{source})"
        )
    elif b.se > 0:
        nominal = (
            f"{fmt_number(b.elo, 'elo')} ± {fmt_number(b.se, 'elo')} on the data's scale (± one "
            f"standard error of its calibration and conversion{source})"
        )
    else:
        nominal = (
            f"{fmt_number(b.elo, 'elo')} on the data's scale (no error given for its "
            f"calibration and conversion: taken as exact{source})"
        )
    return f"bridge {b.agent}: {arena}; {nominal}"


def _how_line(
    analysis: StudyAnalysis,
    cap: int,
    used: list[Bridge],
    pool: pd.DataFrame | None,
    rating_level: float,
) -> str:
    """How the cap's value and interval follow from the bridges (``analysis.scale``'s map)."""
    placed = analysis.caps[cap]
    est = placed.estimate
    assert est is not None
    level = analysis.config.level
    rated = None if pool is None else pool.set_index("name").reindex([b.agent for b in used])
    data = np.array([b.elo for b in used])
    if len(used) == 1 or np.ptp(data) < 1e-9:
        text = (
            "With one bridge the map between the scales is an offset"
            if len(used) == 1
            else f"With {len(used)} bridges at one data-scale rating the map between the scales "
            "is an offset (their weighted mean)"
        ) + ": Elo differences are taken as equal on both scales"
        if len(used) == 1 and rated is not None:
            a, d = float(rated["rating"].iloc[0]), used[0].elo
            text += (
                f", so the cap lies at {cap} + ({fmt_number(a, 'elo')} - {fmt_number(d, 'elo')})"
                f" = {fmt_number(est.value, 'elo')}"
            )
    else:
        text = (
            f"With {len(used)} bridges at distinct data-scale ratings the map is a line, arena "
            f"= alpha + beta (data - {cap}), weighted by 1 / (se_arena² + se_data²); the cap "
            "lies at alpha"
        )
    if np.isnan(est.lo) or np.isnan(est.hi):
        return f"{text}. No interval: {est.why or 'no bootstrap replicates'}."
    text += (
        f". Its {level:.0%} interval is the spread of the cap over the "
        f"{analysis.n_replicates} bootstrap replicates of the arena's games, the map refitted on "
        "each with the bridges' data-scale ratings drawn from their errors"
    )
    if sum(b.shared_se > 0 for b in used) > 1:
        text += " (the error they share drawn once per replicate for all of them)"
    if len(used) >= 3:
        text += (
            " (the arena deviations widened by the Particle Data Group's scale factor where the "
            "bridges scatter about the line more than their errors allow)"
        )
    if len(used) == 1 and rated is not None and used[0].total_se > 0:
        z = float(stats.norm.ppf(0.5 + level / 2))
        z_rating = float(stats.norm.ppf(0.5 + rating_level / 2))
        conversion = z * used[0].total_se  # both half widths at ``level``
        arena_half = z * float(rated["upper"].iloc[0] - rated["lower"].iloc[0]) / 2 / z_rating
        larger = conversion > arena_half
        text += (
            f". Of its two sources, the conversion's error (± {fmt_number(used[0].total_se, 'elo')}"
            f" standard error: ± {fmt_number(conversion, 'elo')} at {level:.0%}) "
            + ("outweighs" if larger else "is smaller than")
            + f" the bridge's arena rating's (± {fmt_number(arena_half, 'elo')} at {level:.0%})"
            + (": a better-calibrated bridge, more than more games, would narrow it" * larger)
        )
        if (est.hi - est.lo) / 2 < conversion:
            text += (
                f". The interval is narrower than the conversion's error alone: a percentile "
                f"interval of {analysis.n_replicates} replicates, its ends carry Monte Carlo "
                "noise, which more replicates would reduce"
            )
    return text + "."


def cap_section(
    analysis: StudyAnalysis,
    bridges: Sequence[Bridge] = (),
    pool: pd.DataFrame | None = None,
    rating_level: float = 0.90,
) -> list[str]:
    """The cap's evidence, for the report's "The cap on this scale": per cap, where it lies on
    the arena's scale, each bridge it was placed through (its arena rating from ``pool``,
    ratings.csv, and its nominal rating on the data's scale with the conversion's error), and
    how the cap's value and interval follow from them; or why it is not placed. ``bridges``:
    the study's configured bridges."""
    by_name = {b.agent: b for b in bridges}
    lines = []
    for cap, placed in analysis.caps.items():
        used = [by_name[n] for n in placed.bridges if n in by_name]
        if placed.estimate is None:
            why = placed.why or "no bridge"
            lines.append(
                f"cap {cap} (on the data's scale) is not placed on the arena's scale: {why}; "
                "no figure draws it. A bridge, a player of known data-scale rating rated in "
                "the arena ([[analysis.bridges]]), would place it."
            )
            lines += [_bridge_line(b, pool, rating_level) for b in used]
            continue
        n = len(placed.bridges)
        lines.append(
            f"cap {cap} (on the data's scale) lies at "
            f"{fmt_estimate(placed.estimate, 'elo')} on the arena's scale "
            f"({analysis.config.level:.0%} interval), through {n} bridge{'s' * (n != 1)}:"
        )
        lines += [_bridge_line(b, pool, rating_level) for b in used]
        if len(used) == n:
            lines.append(_how_line(analysis, cap, used, pool, rating_level))
    return lines


def zero_verdict(e: Estimate, level: float) -> str:
    """Where a slope's (or a change's) ``level`` interval lies against 0, in words: "above 0
    at 90%", "below 0 at 90%" or "not distinguishable from 0 at 90%" (the interval holds 0,
    bounds included); "" where there is no value or no interval to judge by."""
    if not np.isfinite(e.value) or np.isnan(e.lo) or np.isnan(e.hi):
        return ""
    at = f"at {level:.0%}"
    if e.lo > 0:
        return f"above 0 {at}"
    if e.hi < 0:
        return f"below 0 {at}"
    return f"not distinguishable from 0 {at}"


def _judged(text: str, e: Estimate, level: float) -> str:
    verdict = zero_verdict(e, level)
    return f"{text}: {verdict}" if verdict else text


def headline(analysis: StudyAnalysis) -> list[str]:
    """The report's main answer in 1-3 short lines: the slope of each regime's frontier (a
    line through it, Elo per decade of FLOPs) with its interval or why it is not estimable, and
    in words whether that interval lies above 0 or holds it; the change of slope at the
    switch, judged the same way; where each cap lies on the arena's scale."""
    level = analysis.config.level
    order = ("supervised", "selfplay_cap", "selfplay_scratch")
    groups = sorted(analysis.fits, key=lambda g: (order.index(g.split()[0]), g))
    slopes = [
        _judged(
            f"{group_name(g)} {fmt_estimate(analysis.slope(g), 'slope')}", analysis.slope(g), level
        )
        for g in groups
    ]
    lines = [f"Elo/decade of FLOPs ({level:.0%} intervals): " + "; ".join(slopes or ["no fits"])]
    changes = [c for c in analysis.switch if c.method == "segmented_at_switch"]
    if changes:
        lines.append(
            "change at the switch: "
            + "; ".join(
                _judged(
                    f"{c.label.split(':')[0]} {fmt_estimate(c.difference, 'diff', 'Elo/decade')}"
                    + ("" if c.real is None else f" ({p_text(c, analysis.n_replicates)})"),
                    c.difference,
                    level,
                )
                for c in changes
            )
        )
    if analysis.caps:
        lines.append("; ".join(cap_line(analysis, c) for c in analysis.caps))
    return lines


def optimal_why(analysis: StudyAnalysis, group: str) -> str:
    """Why the compute-optimal size exponent of ``group`` is not estimable ("" when it is):
    ``analysis.optimal_size.not_estimable``."""
    return analysis.optimal_why(group)
