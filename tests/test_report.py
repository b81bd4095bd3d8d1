"""The study registry on disk, the report with every figure, and the fit/report commands."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fits import Estimate
from analysis.plots import FIGURES, FORMATS, TEST_TIME_FIGURE
from analysis.ratings import fit_ratings, read_pgn_results
from analysis.registry import (
    checkpoints_path,
    load_metrics,
    load_study,
    ratings_path,
    replicates_from_games,
    write_checkpoints,
)
from analysis.report import ReportConfig, read_headline, run_analysis, write_report
from analysis.report_text import fmt_estimate, headline
from analysis.scale import Bridge
from jobs import cmd_analysis


def play_games(path: Path, strength: dict[str, float], rng: np.random.Generator) -> None:
    """Writes a PGN of games between players of the given true Elo: each player meets the four
    nearest in strength 12 times, colours alternating; the expected score is the Elo model's,
    with draws taking 40% of the weaker side's chance."""
    names = sorted(strength, key=lambda n: strength[n])
    games = []
    for i, a in enumerate(names):
        for b in names[i + 1 : i + 5]:
            p = 1.0 / (1.0 + 10 ** ((strength[b] - strength[a]) / 400.0))  # a's expected score
            draw = 0.4 * min(p, 1.0 - p)
            for k in range(12):
                u = rng.uniform()
                score_a = 1.0 if u < p - draw / 2 else (0.5 if u < p + draw / 2 else 0.0)
                white, black = (a, b) if k % 2 == 0 else (b, a)
                score_white = score_a if white == a else 1.0 - score_a
                result = {1.0: "1-0", 0.5: "1/2-1/2", 0.0: "0-1"}[score_white]
                games.append(
                    f'[White "{white}"]\n[Black "{black}"]\n[Result "{result}"]\n\n{result}\n'
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(games))


def make_workdir(
    root: Path,
    *,
    selfplay: bool = True,
    seed: int = 0,
    players: dict[str, float] | None = None,
    val: bool = True,
) -> Path:
    """A small study on disk: two supervised sizes at cap 1200, self-play from the best one's
    last checkpoint, self-play from scratch, ratings with anchors, and metrics.jsonl files
    (without the val split when ``val`` is False). ``players``: more arena players (e.g.
    bridges) with their true Elo."""
    rng = np.random.default_rng(seed)
    rows, elo = [], {}
    for size, params, x0, slope, offset in (
        ("10k", 10_000, 11.0, 350, 0),
        ("30k", 30_000, 11.5, 420, -120),
    ):
        run = f"sup-{size}"
        for i, x in enumerate(np.arange(x0, x0 + 2.01, 0.25)):
            agent = f"{run}@{i + 1}"
            rows.append([agent, run, "supervised", 1200, size, params, i + 1, 10**x, ""])
            elo[agent] = min(1250.0, 400 + slope * (x - 11.0) + offset)
    if selfplay:
        parent = rows[-1][0]
        for run, regime, cap, x0, e0, slope in (
            ("sp-30k", "selfplay_cap", 1200, 13.5, 1250.0, 180),
            ("scr-30k", "selfplay_scratch", "", 12.0, 300.0, 260),
        ):
            for i, x in enumerate(np.arange(x0 + 0.25, 15.01, 0.25)):
                agent = f"{run}@{i + 1}"
                rows.append(
                    [agent, run, regime, cap, "30k", 30_000, i + 1, 10**x, parent if cap else ""]
                )
                elo[agent] = e0 + slope * (x - x0)
    columns = ["agent", "run_id", "regime", "cap", "size", "params", "step", "flops", "parent"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(1, "checkpoint", frame["agent"])  # played as the raw policy: name = identity
    frame.insert(2, "sims", 0)
    write_checkpoints(root, frame)
    unrated = frame["agent"].iloc[0]  # one checkpoint that played no game
    elo.pop(unrated)
    play_games(root / "arena" / "games.pgn", {**elo, **(players or {}), "random": 0.0}, rng)
    games, _ = read_pgn_results([root / "arena" / "games.pgn"])
    fit_ratings(games).write_csv(ratings_path(root))
    for run in frame["run_id"].unique():
        lines = [
            json.dumps(
                {"split": split, "step": s, "flops": 1e10 * s, "loss": 3.0 / s + (split == "val")}
            )
            for s in range(1, 6)
            for split in ("train", "val")[: 2 if val else 1]
        ]
        path = root / "runs" / run / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + '\n{"split": "tra')  # the last line cut by a kill
    return root


def test_load_study_joins_the_ratings(tmp_path: Path) -> None:
    study = load_study(make_workdir(tmp_path))
    assert len(study) == 9 + 9 + 6 + 12
    assert str(study["cap"].dtype) == "Int64" and str(study["params"].dtype) == "Int64"
    assert study["cap"][study["regime"] == "selfplay_scratch"].isna().all()
    assert np.isnan(study["elo"].iloc[0]) and np.isfinite(study["elo"].iloc[1:]).all()
    assert "random" not in set(study["agent"])
    np.testing.assert_allclose(
        study["elo_se"].iloc[1:],
        (study["elo_hi"] - study["elo_lo"]).iloc[1:] / (2 * 1.644854),
        rtol=1e-6,
    )
    np.testing.assert_allclose(study["log10_flops"], np.log10(study["flops"]))


def test_load_metrics_skips_cut_lines(tmp_path: Path) -> None:
    metrics = load_metrics(make_workdir(tmp_path), ["sup-10k", "absent"])
    assert len(metrics) == 10
    assert set(metrics["run_id"]) == {"sup-10k"} and set(metrics["split"]) == {"train", "val"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("selfplay_cap", "selfplay"), "regime 'selfplay' is not one of"),
        (lambda t: t.replace(",parent\n", "\n", 1), "missing column"),
        (lambda t: t.replace("sup-10k@2,", "sup-10k@1,", 1), "appears more than once"),
        (lambda t: t.replace(",1200,10k,10000,1,", ",1200,10k,ten,1,", 1), "row 2, column params"),
        (lambda t: t.replace(",supervised,1200,", ",supervised,,", 1), "needs a cap"),
        (lambda t: "", "not a readable CSV"),
    ],
)
def test_bad_registries_fail_clearly(tmp_path: Path, edit, message: str) -> None:
    root = make_workdir(tmp_path)
    path = checkpoints_path(root)
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=message):
        load_study(root)


def test_missing_files_and_bad_ratings(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="checkpoint registry not found"):
        load_study(tmp_path)
    root = make_workdir(tmp_path)
    text = ratings_path(root).read_text()
    ratings_path(root).write_text(text + text.splitlines()[-1] + "\n")
    with pytest.raises(ValueError, match="appears more than once"):
        load_study(root)
    ratings_path(root).unlink()
    with pytest.raises(OSError, match="ratings table not found"):
        load_study(root)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs |= {v for k, v in attrs if k in ("src", "href") and v}


def _check_report(out: Path, index: Path, absent: tuple[str, ...] = (TEST_TIME_FIGURE,)) -> dict:
    """Every figure but ``absent`` (by default the test-time figure, for a study without
    test-time players) written and referenced; the absent ones not there at all."""
    assert index == out / "index.html"
    parser = _Refs()
    parser.feed(index.read_text())
    for name in absent:
        assert not list(out.glob(f"{name}.*")) and f"{name}.png" not in parser.refs
    for name in (n for n in FIGURES if n not in absent):
        for fmt in FORMATS:
            path = out / f"{name}.{fmt}"
            assert path.stat().st_size > 1000, path
            assert path.name in parser.refs, path.name
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ET.parse(out / f"{name}.svg").getroot().tag.endswith("svg")
    assert "fits.json" in parser.refs
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    return json.loads((out / "fits.json").read_text(), parse_constant=lambda c: pytest.fail(c))


@pytest.mark.slow
def test_report_writes_every_figure_and_table(tmp_path: Path) -> None:
    root = make_workdir(tmp_path / "study")
    out = tmp_path / "report"
    index = write_report(root, out, ReportConfig(n_replicates=40, seed=1))
    fits = _check_report(out, index)
    assert fits["replicates"] == 40 and fits["checkpoints"] == 36
    assert {c["method"] for c in fits["switch"]} == {
        "segmented_at_switch",
        "segmented_fitted",
        "incline_vs_selfplay",
    }
    assert fits["selfplay"][0]["label"] == "cap 1200: self-play from the cap vs from scratch"
    assert set(fits["fits"]) == {"supervised cap 1200", "selfplay_cap cap 1200", "selfplay_scratch"}
    assert "supervised cap 1200" in fits["optimal_size"]
    text = index.read_text()
    assert "cap 1200: supervised -&gt; self-play" in text and "Elo/decade" in text
    # Written again, over the old report: the same files, replaced.
    before = (out / "switch.svg").stat().st_mtime_ns
    write_report(root, out, ReportConfig(replicates="none"))
    assert (out / "switch.svg").stat().st_mtime_ns >= before
    assert json.loads((out / "fits.json").read_text())["replicates"] == 0


def test_report_of_a_study_without_selfplay_or_metrics(tmp_path: Path) -> None:
    root = make_workdir(tmp_path / "study", selfplay=False)
    for path in (root / "runs").glob("*/metrics.jsonl"):
        path.unlink()
    out = tmp_path / "report"
    index = write_report(root, out, ReportConfig(n_replicates=20))
    fits = _check_report(out, index, absent=(TEST_TIME_FIGURE, "switch", "learning_curves"))
    assert fits["switch"] == [] and fits["selfplay"] == []
    page = index.read_text()  # the figures it has nothing for: the reason, no empty image
    assert "<h3>switch</h3><p>Not drawn: no self-play from a capped checkpoint.</p>" in page
    assert "<h3>learning curves</h3><p>Not drawn: no metrics.jsonl with a loss.</p>" in page


def _cli(argv: list[str]) -> str:
    p = argparse.ArgumentParser()
    cmd_analysis.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert args.func(args) == 0
    return buf.getvalue()


@pytest.mark.slow
def test_fit_and_report_commands(tmp_path: Path) -> None:
    root = make_workdir(tmp_path / "study")
    printed = json.loads(_cli(["fit", str(root), "--json", "--bootstrap", "20"]))
    assert printed == json.loads((root / "fits" / "fits.json").read_text())
    assert printed["config"]["level"] == 0.9 and printed["replicates"] == 20
    table = _cli(["fit", str(root), "--replicates", "none", "--level", "0.8"])
    assert "segmented_at_switch" in table and "changepoint" in table
    index = Path(
        _cli(["report", str(root), "--out", str(tmp_path / "r"), "--bootstrap", "20"]).strip()
    )
    _check_report(tmp_path / "r", index)
    with pytest.raises(ValueError, match="unknown replicate source"):
        _cli(["fit", str(root), "--replicates", "magic"])


def test_replicates_from_the_arena_games(tmp_path: Path) -> None:
    root = make_workdir(tmp_path)
    study = load_study(root)
    reps = replicates_from_games(root, study, 30, seed=0)
    assert reps.shape == (30, len(study))
    assert np.isnan(reps[:, 0]).all()  # the unrated checkpoint
    rated = reps[:, 1:]
    centre = np.median(rated, axis=0) - study["elo"].to_numpy()[1:]
    assert np.median(np.abs(centre) / rated.std(axis=0)) < 0.5
    # Ratings fitted with other anchors than the bootstrap's are caught...
    games, _ = read_pgn_results([root / "arena" / "games.pgn"])
    fit_ratings(games, anchors={"random": 500.0}).write_csv(ratings_path(root))
    with pytest.raises(ValueError, match=r"not centred on ratings\.csv"):
        replicates_from_games(root, load_study(root), 10, seed=0)
    # ... and pass when the bootstrap is told them.
    shifted = replicates_from_games(root, load_study(root), 10, seed=0, anchors={"random": 500.0})
    np.testing.assert_allclose(shifted[:, 1:], reps[:10, 1:] + 500.0, atol=1e-6)
    (root / "arena" / "games.pgn").unlink()
    with pytest.raises(OSError, match="no arena games"):
        replicates_from_games(root, study, 10, seed=0)


def test_a_rated_checkpoint_without_games_is_an_error(tmp_path: Path) -> None:
    root = make_workdir(tmp_path)
    text = ratings_path(root).read_text()
    ratings_path(root).write_text(text + "sup-10k@1,100,50,150,0,0\n")  # rated, never played
    with pytest.raises(ValueError, match="'sup-10k@1' has a rating but no game"):
        replicates_from_games(root, load_study(root), 10, seed=0)


# --- a report that reads well, on one Elo scale ------------------------------------------------


def test_numbers_read_with_units_and_reasons() -> None:
    e = Estimate
    assert fmt_estimate(e(value=3.2, lo=2.1, hi=5.0), "mult") == "x3.2 [x2.1, x5.0]"
    assert fmt_estimate(e(value=4.2e6, lo=2.0e5, hi=3.1e9), "mult") == "x4.2e6 [x2.0e5, x3.1e9]"
    slope = e(value=120.4, lo=38.0, hi=-5.0 + 215.0)
    assert fmt_estimate(slope, "slope", "Elo/decade") == "+120 [+38, +210] Elo/decade"
    assert fmt_estimate(e(value=np.log10(3.2e12), lo=12.0, hi=13.0), "flops") == (
        "3.2e12 [1.0e12, 1.0e13]"
    )
    missing = e(value=np.nan, lo=np.nan, hi=np.nan, why="too few points: 1 on the frontier")
    assert fmt_estimate(missing, "slope") == "not estimable (too few points: 1 on the frontier)"
    unbounded = e(
        value=3.2, lo=2.1, hi=np.inf, why="no upper bound: the slope's interval reaches 0"
    )
    assert fmt_estimate(unbounded, "mult") == (
        "x3.2 [x2.1, unbounded] (no upper bound: the slope's interval reaches 0)"
    )
    bare = e(value=640.0, lo=np.nan, hi=np.nan, why="no bootstrap replicates")
    assert fmt_estimate(bare, "elo") == "640 (no interval: no bootstrap replicates)"


def _estimates(tree: object) -> list[dict]:
    """Every {"value", "lo", "hi"} in fits.json."""
    if isinstance(tree, dict):
        here = [tree] if {"value", "lo", "hi"} <= set(tree) else []
        return here + [e for v in tree.values() for e in _estimates(v)]
    if isinstance(tree, list):
        return [e for v in tree for e in _estimates(v)]
    return []


def test_report_reads_well_without_a_bridge(tmp_path: Path) -> None:
    """Warnings are errors while the report is written (no empty legend: this study has no
    validation losses to label). Every estimate with an interval lies inside it, no "n/a",
    the axes name the scale, and the cap (1200 on the data's scale) is not drawn at 1200 on
    an axis whose 0 is the random mover: the report says it is not placed."""
    root = make_workdir(tmp_path / "study", val=False)
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fits = _check_report(out, write_report(root, out, ReportConfig(n_replicates=20)))
    estimates = _estimates(fits)
    assert len(estimates) > 40
    for est in estimates:
        if est["lo"] is not None and est["value"] is not None:
            assert est["lo"] <= est["value"] <= est["hi"], est
    text = (out / "index.html").read_text()
    assert "n/a" not in text and "nan" not in text.lower().replace("nanoseconds", "")
    assert "cap 1200: cap not placed on this scale (no bridge)" in text
    assert "Elo (random mover = 0)" in text
    lines = read_headline(out)
    assert 1 <= len(lines) <= 3 and lines[0].startswith("Elo/decade of FLOPs (90% intervals)")
    assert "supervised (cap 1200) +" in lines[0] and lines[-1].startswith("cap 1200: cap not")
    svg = (out / "switch.svg").read_text()
    assert "Elo (random mover = 0)" in svg and "not placed on this scale" in svg
    analysis = run_analysis(root, ReportConfig(replicates="none"))
    fig = FIGURES["switch"](analysis, load_metrics(root, []))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Elo (random mover = 0)"
    horizontal = [ln for ln in ax.lines if np.ptp(np.asarray(ln.get_ydata(), float)) == 0]
    assert not [ln for ln in horizontal if np.asarray(ln.get_ydata(), float)[0] == 1200]
    assert headline(analysis)[0].count("(no interval: no bootstrap replicates)") == 3


def test_bridges_place_the_cap_as_a_band(tmp_path: Path) -> None:
    """Two bridges with true arena ratings 700 and 1100, rated 1000 and 1400 on the data's
    scale (data = arena + 300): the cap 1200 lies at 900 on the arena's scale; its interval
    holds that and the estimate, and the switch figure draws it as a band there."""
    players = {"bridge-a": 700.0, "bridge-b": 1100.0}
    root = make_workdir(tmp_path / "study", players=players)
    bridges = (Bridge(agent="bridge-a", elo=1000.0, se=20.0), Bridge(agent="bridge-b", elo=1400.0))
    cfg = ReportConfig(n_replicates=30, bridges=bridges)
    analysis = run_analysis(root, cfg)
    est = analysis.caps[1200].estimate
    assert est is not None and analysis.caps[1200].bridges == ("bridge-a", "bridge-b")
    assert est.lo <= est.value <= est.hi and est.lo < 900.0 < est.hi, est
    assert headline(analysis)[-1].startswith("cap 1200 on this scale: ")
    fig = FIGURES["switch"](analysis, load_metrics(root, []))
    bands = [p for p in fig.axes[0].patches if p.get_label() == "cap 1200"]
    assert len(bands) == 1
    ys = bands[0].get_path().vertices[:, 1]
    y0, y1 = bands[0].get_transform().transform([[0, ys.min()], [0, ys.max()]])[:, 1]
    lo, hi = fig.axes[0].transData.inverted().transform([[0, y0], [0, y1]])[:, 1]
    assert lo == pytest.approx(est.lo, abs=1e-6) and hi == pytest.approx(est.hi, abs=1e-6)


def test_the_analysis_package_exports_each_public_name_once() -> None:
    """``analysis/__init__.py`` imports its public names and lists them in ``__all__``: the two
    must agree (a name imported but not listed, or listed but not there, fails), and the
    test-time search's names are among them."""
    import types

    import analysis
    from analysis import search_scaling

    assert len(set(analysis.__all__)) == len(analysis.__all__)
    bound = {
        name
        for name, value in vars(analysis).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(analysis.__all__) == bound
    for name in ("POINT_COLUMNS", "SearchScaling", "curve_sims", "split_by_sims"):
        assert getattr(analysis, name) is getattr(search_scaling, name)
