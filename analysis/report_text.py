"""The report's numbers and lines as a reader wants them: estimates with their intervals and
units, group names in words, the cap's line and the headline (the main answer in 1-3 lines).
Plain text; ``analysis.report_html`` escapes it into the page."""

from __future__ import annotations

import numpy as np

from analysis.compare import StudyAnalysis
from analysis.fits import Estimate, SlopeComparison


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


def headline(analysis: StudyAnalysis) -> list[str]:
    """The report's main answer in 1-3 short lines: the slope of each regime's frontier (a
    line through it, Elo per decade of FLOPs) with its interval or why it is not estimable; the
    change of slope at the switch; where each cap lies on the arena's scale."""
    level = f"{analysis.config.level:.0%}"
    order = ("supervised", "selfplay_cap", "selfplay_scratch")
    groups = sorted(analysis.fits, key=lambda g: (order.index(g.split()[0]), g))
    slopes = [f"{group_name(g)} {fmt_estimate(analysis.slope(g), 'slope')}" for g in groups]
    lines = [f"Elo/decade of FLOPs ({level} intervals): " + "; ".join(slopes or ["no fits"])]
    changes = [c for c in analysis.switch if c.method == "segmented_at_switch"]
    if changes:
        lines.append(
            "change at the switch: "
            + "; ".join(
                f"{c.label.split(':')[0]} {fmt_estimate(c.difference, 'diff', 'Elo/decade')}"
                + ("" if c.real is None else f" ({p_text(c, analysis.n_replicates)})")
                for c in changes
            )
        )
    if analysis.caps:
        lines.append("; ".join(cap_line(analysis, c) for c in analysis.caps))
    return lines
