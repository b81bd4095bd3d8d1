"""The study's analysis: fits per regime, the switch comparison, the compute-optimal size.

``analyze(study, elo_samples, config)`` takes the frame of ``load_study`` and (optionally) a
matrix of Elo replicates ``f64[R, N]`` aligned with its rows (a bootstrap over games), and fits:

- every form of ``config.forms`` to the frontier of each group (regime and cap);
- for each cap, the comparison before/after the switch, by every method of ``SWITCH_METHODS``:
  ``segmented_at_switch`` (one continuous line with a break fixed at the switch's compute, over
  the supervised frontier up to the switch and the capped self-play frontier from it),
  ``segmented_fitted`` (the same with the break fitted) and ``incline_vs_selfplay`` (the
  supervised incline of Jones's change-point fit against a line through self-play);
- for each cap, self-play from the cap against self-play from scratch (two lines, their slopes
  and the Elo gap at the largest compute both reach);
- the compute-optimal model size against compute: log10 params = a + b log10 C on a grid of
  compute, taking at each compute the size of the run that is on the frontier there.

The switch's compute is the median FLOPs of the checkpoints the capped self-play runs continued
from (``parent``), or, where the parent is not in the registry, of each run's first checkpoint.
A form (or a switch method) is left out where a frontier has fewer points than it has free
parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.fits import CurveFit, Estimate, SlopeComparison, compare_slopes, fit_curve
from analysis.forms import FORMS, make_form
from analysis.frontier import frontier_frame, frontier_masks, group_label
from analysis.optimal_size import not_estimable, optimal_size_fit
from analysis.scale import BridgeRatings, CapPlacement, place_cap, scale_label
from analysis.search_scaling import SearchScaling


@dataclass(frozen=True, kw_only=True)
class AnalysisConfig:
    forms: tuple[str, ...] = ("linear", "changepoint", "sigmoid")  # fitted to every frontier
    level: float = 0.90  # confidence level of every interval
    alpha: float = 0.10  # test level of "the slope changes"
    elo_gain: float = 100.0  # the compute multiplier is quoted for this many Elo
    optimal_grid: int = 32  # compute points of the compute-optimal size fit

    def __post_init__(self) -> None:
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown:
            raise ValueError(f"unknown fit form(s) {unknown}; known: {sorted(FORMS)}")
        if not 0.0 < self.level < 1.0 or not 0.0 < self.alpha < 1.0:
            raise ValueError("level and alpha must lie in (0, 1)")
        if self.elo_gain <= 0 or self.optimal_grid < 2:
            raise ValueError("elo_gain must be positive and optimal_grid at least 2")


@dataclass(frozen=True, kw_only=True)
class _Data:
    """Rows of the study prepared for fitting: everything aligned with the study's rows."""

    x: np.ndarray  # f64[N] log10 FLOPs
    elo: np.ndarray  # f64[N]
    se: np.ndarray | None  # f64[N] rating standard errors (None: unknown)
    on: np.ndarray  # bool[N] on the frontier of the point estimate
    samples: np.ndarray | None  # f64[R, N]
    on_rep: np.ndarray | None  # bool[R, N] on the frontier in each replicate

    def fit(self, form_name: str, rows: np.ndarray, level: float, **options: Any) -> CurveFit:
        """Fits a form to the frontier points among ``rows`` (bool[N])."""
        return fit_curve(
            make_form(form_name, **options),
            self.x,
            self.elo,
            se=self.se,
            mask=self.on & rows,
            samples=self.samples,
            sample_mask=None if self.on_rep is None else self.on_rep & rows,
            level=level,
        )


@dataclass(frozen=True, kw_only=True)
class StudyAnalysis:
    """Everything ``analyze`` fitted; ``*_table()`` give DataFrames, ``to_dict()`` JSON."""

    config: AnalysisConfig
    study: pd.DataFrame  # the study frame with group, on_frontier, frontier_share
    n_replicates: int
    fits: dict[str, dict[str, CurveFit]]  # group label -> form -> fit
    switch_fits: dict[tuple[str, str], CurveFit]  # (label, method) -> the segmented fit
    switch: tuple[SlopeComparison, ...]
    selfplay: tuple[SlopeComparison, ...]
    optimal_size: dict[str, CurveFit]  # group label -> log10 params vs log10 FLOPs
    switch_x: dict[int, float] = field(default_factory=dict)  # cap -> log10 FLOPs of the switch
    skipped: dict[str, str] = field(default_factory=dict)  # "group: form" -> why not fitted
    caps: dict[int, CapPlacement] = field(default_factory=dict)  # cap -> on the arena's scale
    scale: str = field(default_factory=scale_label)  # the arena's Elo scale, named
    # the checkpoints also rated at other test-time N (not in the curves); None: not looked at
    search: SearchScaling | None = None

    def slope(self, group: str, form: str = "linear") -> Estimate:
        """The slope of ``form`` fitted to ``group``'s frontier (Elo per decade of FLOPs), or
        NaN with ``why`` when it was not fitted."""
        fit = self.fits.get(group, {}).get(form)
        if fit is None:
            why = self.skipped.get(f"{group}: {form}", f"no {group} checkpoints")
            return Estimate(value=np.nan, lo=np.nan, hi=np.nan, why=why)
        return fit.param(fit.form.slopes[0])

    def fit_table(self) -> pd.DataFrame:
        rows = []
        for group, by_form in self.fits.items():
            for form, fit in by_form.items():
                for name in fit.form.params:
                    est = fit.param(name)
                    rows.append(
                        {
                            "group": group,
                            "form": form,
                            "param": name,
                            "estimate": est.value,
                            "lo": est.lo,
                            "hi": est.hi,
                            "n": fit.n,
                            "chi2_dof": fit.chi2 / fit.dof if fit.dof > 0 else np.nan,
                            "scale": fit.scale,
                        }
                    )
        return pd.DataFrame(rows)

    def comparison_table(self) -> pd.DataFrame:
        rows = []
        for c in (*self.switch, *self.selfplay):
            rows.append(
                {
                    "comparison": c.label,
                    "method": c.method,
                    "first": c.first_name,
                    "slope_first": c.first.value,
                    "slope_first_lo": c.first.lo,
                    "slope_first_hi": c.first.hi,
                    "second": c.second_name,
                    "slope_second": c.second.value,
                    "slope_second_lo": c.second.lo,
                    "slope_second_hi": c.second.hi,
                    "difference": c.difference.value,
                    "difference_lo": c.difference.lo,
                    "difference_hi": c.difference.hi,
                    "p_value": c.p_value,
                    "real": c.real,
                    f"x_first_{c.elo_gain:g}_elo": c.multiplier_first.value,
                    f"x_second_{c.elo_gain:g}_elo": c.multiplier_second.value,
                }
            )
        return pd.DataFrame(rows)

    def optimal_why(self, group: str) -> str:
        """Why the compute-optimal size exponent of ``group`` is not estimable ("" when it is;
        ``analysis.optimal_size.not_estimable``)."""
        return not_estimable(self.study, group, self.optimal_size.get(group))

    def optimal_table(self) -> pd.DataFrame:
        """One row per group with a fit; where the exponent is not estimable its numbers are
        NaN and ``not_estimable`` says why."""
        rows = []
        for group, fit in self.optimal_size.items():
            b, a = fit.param("b"), fit.param("a")
            why = self.optimal_why(group)
            nan = float("nan")
            rows.append(
                {
                    "group": group,
                    "exponent": nan if why else b.value,
                    "exponent_lo": nan if why else b.lo,
                    "exponent_hi": nan if why else b.hi,
                    "log10_coefficient": nan if why else a.value,
                    "not_estimable": why,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": {
                "forms": list(self.config.forms),
                "level": self.config.level,
                "alpha": self.config.alpha,
                "elo_gain": self.config.elo_gain,
            },
            "replicates": self.n_replicates,
            "checkpoints": len(self.study),
            "fits": {g: {f: fit.to_dict() for f, fit in d.items()} for g, d in self.fits.items()},
            "switch": [c.to_dict() for c in self.switch],
            "selfplay": [c.to_dict() for c in self.selfplay],
            "optimal_size": {
                g: {**fit.to_dict(), "not_estimable": self.optimal_why(g) or None}
                for g, fit in self.optimal_size.items()
            },
            "switch_log10_flops": {str(k): v for k, v in self.switch_x.items()},
            "not_fitted": dict(self.skipped),
            "scale": self.scale,
            "caps": {str(k): v.to_dict() for k, v in self.caps.items()},
            "test_time": (
                {"why": "not analysed"} if self.search is None else self.search.to_dict()
            ),
        }


def switch_compute(study: pd.DataFrame, cap: int) -> float | None:
    """log10 FLOPs of the switch to self-play for ``cap`` (see the module docstring)."""
    caps = study["cap"].to_numpy(dtype=float, na_value=np.nan)
    sp = study[(study["regime"].to_numpy() == "selfplay_cap") & (caps == float(cap))]
    if sp.empty:
        return None
    flops_of = dict(zip(study["checkpoint"], study["flops"], strict=True))  # any sims: same
    starts = []
    for _, run in sp.groupby("run_id"):
        parents = [p for p in run["parent"] if p in flops_of]
        starts.append(flops_of[parents[0]] if parents else float(run["flops"].min()))
    return float(np.log10(np.median(starts)))


# A switch method: (data, rows before, rows after, x of the switch, config, label) ->
# (comparison, the fit to draw or None). Rows are bool[N].
SwitchMethod = Callable[
    [_Data, np.ndarray, np.ndarray, float, AnalysisConfig, str],
    tuple[SlopeComparison, CurveFit | None],
]
SWITCH_METHODS: dict[str, SwitchMethod] = {}


def register_switch_method(name: str) -> Callable[[SwitchMethod], SwitchMethod]:
    def add(fn: SwitchMethod) -> SwitchMethod:
        SWITCH_METHODS[name] = fn
        return fn

    return add


def _until(data: _Data, rows: np.ndarray, xs: float) -> np.ndarray:
    return rows & (data.x <= xs + 1e-9)


def _from(data: _Data, rows: np.ndarray, xs: float) -> np.ndarray:
    return rows & (data.x >= xs - 1e-9)


@register_switch_method("segmented_at_switch")
def _at_switch(
    data: _Data, before: np.ndarray, after: np.ndarray, xs: float, cfg: AnalysisConfig, label: str
) -> tuple[SlopeComparison, CurveFit | None]:
    rows = _until(data, before, xs) | _from(data, after, xs)
    fit = data.fit("segmented", rows, cfg.level, breakpoint=xs)
    cmp = compare_slopes(
        label=label,
        method="segmented_at_switch",
        first=("supervised", fit, "b1"),
        second=("selfplay_cap", fit, "b2"),
        alpha=cfg.alpha,
        elo_gain=cfg.elo_gain,
        breakpoint=Estimate(value=xs, lo=xs, hi=xs),
    )
    return cmp, fit


@register_switch_method("segmented_fitted")
def _fitted(
    data: _Data, before: np.ndarray, after: np.ndarray, xs: float, cfg: AnalysisConfig, label: str
) -> tuple[SlopeComparison, CurveFit | None]:
    fit = data.fit("segmented", _until(data, before, xs) | after, cfg.level)
    cmp = compare_slopes(
        label=label,
        method="segmented_fitted",
        first=("supervised", fit, "b1"),
        second=("selfplay_cap", fit, "b2"),
        alpha=cfg.alpha,
        elo_gain=cfg.elo_gain,
        breakpoint=fit.param("x_break"),
    )
    return cmp, fit


@register_switch_method("incline_vs_selfplay")
def _incline(
    data: _Data, before: np.ndarray, after: np.ndarray, xs: float, cfg: AnalysisConfig, label: str
) -> tuple[SlopeComparison, CurveFit | None]:
    incline = data.fit("changepoint", _until(data, before, xs), cfg.level)
    line = data.fit("linear", after, cfg.level)
    cmp = compare_slopes(
        label=label,
        method="incline_vs_selfplay",
        first=("supervised", incline, "b"),
        second=("selfplay_cap", line, "b"),
        alpha=cfg.alpha,
        elo_gain=cfg.elo_gain,
    )
    return cmp, None


def analyze(
    study: pd.DataFrame,
    elo_samples: np.ndarray | None = None,
    config: AnalysisConfig | None = None,
    *,
    bridges: BridgeRatings | None = None,
    scale: str | None = None,
) -> StudyAnalysis:
    """Fits everything (see the module docstring). ``elo_samples`` f64[R, N]: Elo replicates
    aligned with the rows of ``study``; None: point estimates only (intervals are NaN).
    ``bridges``: players rated on the data's scale and in the arena (with replicates from the
    same bootstrap) that place each cap on the arena's scale; None: the caps are not placed.
    ``scale``: the arena scale's name (default: the random mover at 0)."""
    cfg = config or AnalysisConfig()
    if "sims" in study and study["sims"].nunique() > 1:
        raise ValueError(
            "the compute-Elo curves need one N for every checkpoint (contract 3), got sims "
            f"{sorted(set(study['sims']))}: split the registry first "
            "(analysis.search_scaling.split_by_sims)"
        )
    elo = study["elo"].to_numpy(dtype=float)
    samples = None if elo_samples is None else np.asarray(elo_samples, dtype=float)
    if samples is not None and samples.shape[1:] != elo.shape:
        raise ValueError(f"replicates of shape {samples.shape} for {elo.size} checkpoints")
    if samples is not None and samples.shape[0] >= 2:
        se: np.ndarray | None = samples.std(axis=0, ddof=1)
    else:
        se = study["elo_se"].to_numpy(dtype=float) if "elo_se" in study else None
    data = _Data(
        x=study["log10_flops"].to_numpy(dtype=float),
        elo=elo,
        se=se,
        on=frontier_masks(study, elo)[0],
        samples=samples,
        on_rep=None if samples is None else frontier_masks(study, samples),
    )
    regime = study["regime"].to_numpy()
    cap = study["cap"].to_numpy(dtype=float, na_value=np.nan)
    rated = np.isfinite(elo)
    fits: dict[str, dict[str, CurveFit]] = {}
    optimal: dict[str, CurveFit] = {}
    skipped: dict[str, str] = {}
    keys = study.loc[rated, ["regime", "cap"]].drop_duplicates().itertuples(index=False)
    for r, c in sorted(keys, key=lambda k: (str(k[0]), -1 if pd.isna(k[1]) else int(k[1]))):
        rows = (regime == r) & (np.isnan(cap) if pd.isna(c) else cap == float(c))
        label = group_label(str(r), c)
        fits[label] = {}
        for form in cfg.forms:
            on = data.on & rows
            try:
                need = make_form(form).n_free(data.x[on])
            except ValueError as e:  # e.g. too few distinct compute values
                skipped[f"{label}: {form}"] = str(e)
                continue
            if on.sum() >= need:
                fits[label][form] = data.fit(form, rows, cfg.level)
            else:
                skipped[f"{label}: {form}"] = (
                    f"too few points: {int(on.sum())} on the frontier, {form} needs {need}"
                )
        size_fit = optimal_size_fit(
            study,
            np.flatnonzero(rows & rated),
            data.x,
            data.elo,
            data.samples,
            cfg.optimal_grid,
            cfg.level,
        )
        if size_fit is not None:
            optimal[label] = size_fit
    switch, switch_fits, switch_x = [], {}, {}
    selfplay = []
    caps = sorted({int(c) for c in cap[(regime == "selfplay_cap") & rated]})
    scratch = (regime == "selfplay_scratch") & rated
    for c in caps:
        before = (regime == "supervised") & (cap == c) & rated
        after = (regime == "selfplay_cap") & (cap == c) & rated
        xs = switch_compute(study, c)
        if xs is None:
            continue
        switch_x[c] = xs
        label = f"cap {c}: supervised -> self-play"
        for name, method in SWITCH_METHODS.items():
            try:
                cmp, fit = method(data, before, after, xs, cfg, label)
            except ValueError as e:  # too few points for this method: the others still report
                skipped[f"{label}: {name}"] = str(e)
                continue
            switch.append(cmp)
            if fit is not None:
                switch_fits[(label, name)] = fit
        n_scratch, n_after = int((data.on & scratch).sum()), int((data.on & after).sum())
        if scratch.any() and min(n_scratch, n_after) < 2:
            skipped[f"cap {c}: self-play from the cap vs from scratch"] = (
                f"too few points: {n_after} from the cap and {n_scratch} from scratch on the "
                "frontier, a line needs 2 each"
            )
        if n_scratch >= 2 and n_after >= 2:
            first, second = (
                data.fit("linear", scratch, cfg.level),
                data.fit("linear", after, cfg.level),
            )
            selfplay.append(
                compare_slopes(
                    label=f"cap {c}: self-play from the cap vs from scratch",
                    method="linear",
                    first=("selfplay_scratch", first, "b"),
                    second=("selfplay_cap", second, "b"),
                    alpha=cfg.alpha,
                    elo_gain=cfg.elo_gain,
                    gap_at=min(first.x_range[1], second.x_range[1]),
                )
            )
    return StudyAnalysis(
        config=cfg,
        study=frontier_frame(study, data.on, data.on_rep),
        n_replicates=0 if samples is None else samples.shape[0],
        fits=fits,
        switch_fits=switch_fits,
        switch=tuple(switch),
        selfplay=tuple(selfplay),
        optimal_size=optimal,
        switch_x=switch_x,
        skipped=skipped,
        caps={
            c: place_cap(float(c), bridges, level=cfg.level)
            for c in sorted({int(c) for c in cap[np.isfinite(cap)]})
        },
        scale=scale or scale_label(),
    )
