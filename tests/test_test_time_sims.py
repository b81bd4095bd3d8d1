"""Test-time search as a knob (``[arena] test_time_sims``): the config's checks, the extra
players' rows and their schedule, one pool and one rating fit with the study's checkpoints, the
compute-Elo curves without them, and the report's "Elo against test-time simulations N"."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.compare import analyze
from analysis.ratings import fit_ratings, read_pgn_results
from analysis.registry import (
    load_checkpoints,
    load_ratings,
    load_study,
    ratings_path,
    write_checkpoints,
)
from analysis.report import ReportConfig, run_analysis, write_report
from analysis.search_scaling import curve_sims, split_by_sims
from elocap.execution import InlineExecutor
from elocap.workdir import CheckpointRow, Workdir
from jobs import study_plan
from jobs.cli import main as cli_main
from jobs.study_config import ArenaStage, load_study_config
from mcts.agents import MixedAgent, NetworkAgent, parse_agent
from mcts.arena import ArenaConfig
from mcts.games import recover_log
from mcts.openings import eco_openings
from mcts.scheduler import ScheduleConfig, active_round, run_active
from tests.conftest import debian_tool
from tests.test_report import _cli, play_games

# --- the config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test_time_sims = [0, -2]", r"arena\.test_time_sims must be distinct N >= 0"),
        ("test_time_sims = [2, 2]", r"arena\.test_time_sims must be distinct N >= 0"),
        ("test_time_sims = [8]", r"arena\.test_time_sims needs an N other than arena\.sims"),
        ('test_time_checkpoints = "first"', r"arena\.test_time_checkpoints must be one of"),
        ('test_time_sims = "0, 2"', r"test_time_sims"),
    ],
)
def test_bad_test_time_settings_are_one_line_errors_naming_the_key(
    text: str, message: str, tmp_path: Path
) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(f"[arena]\nsims = 8\n{text}\n")
    with pytest.raises(ValueError, match=message) as err:
        load_study_config(toml)
    assert "\n" not in str(err.value)


def test_test_time_settings_load_and_the_curves_n_is_the_arena_s(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[arena]\nsims = 8\ntest_time_sims = [0, 2, 8, 32]\ntest_time_checkpoints = "all"\n'
    )
    arena = load_study_config(toml).arena
    assert arena.test_time_sims == (0, 2, 8, 32) and arena.test_time_checkpoints == "all"
    assert ArenaStage().test_time_sims == ()  # off by default (the default's time budget)
    toml.write_text("[analysis]\nsims = 4\n")
    with pytest.raises(ValueError, match=r"analysis\.sims is set from the arena: use arena\.sims"):
        load_study_config(toml)


# --- the extra players and their schedule ------------------------------------------------------


def _rows(run: str, steps: list[int], sims: int = 8) -> list[CheckpointRow]:
    return [
        CheckpointRow(
            agent=NetworkAgent(run=run, step=s, sims=sims).name,
            checkpoint=f"{run}@{s}",
            sims=sims,
            run_id=run,
            regime="supervised",
            cap=450,
            size="10k",
            params=10_000,
            step=s,
            flops=1e10 * s,
            parent="",
        )
        for s in steps
    ]


def test_each_run_s_last_checkpoint_is_a_player_at_every_other_n(tmp_path: Path) -> None:
    rows = _rows("sup-a", [10, 40])
    extra = study_plan.variant_rows(rows, (0, 2, 8, 32), "last")
    assert [(r.agent, r.sims) for r in extra] == [
        ("sup-a@40", 0),
        ("sup-a@40-s2", 2),
        ("sup-a@40-s32", 32),
    ]
    assert {(r.checkpoint, r.flops, r.run_id) for r in extra} == {("sup-a@40", 4e11, "sup-a")}
    every = study_plan.variant_rows(rows, (0, 32), "all")
    assert sorted(r.agent for r in every) == [
        "sup-a@10",
        "sup-a@10-s32",
        "sup-a@40",
        "sup-a@40-s32",
    ]
    assert study_plan.variant_rows(rows, (), "last") == []
    both = rows + extra + _rows("sup-b", [5])
    assert study_plan.main_rows(both, 8) == rows + _rows("sup-b", [5])
    chains = study_plan.variant_chains(both, Workdir(root=tmp_path))
    assert [[a.name for a in chain] for chain in chains] == [
        ["sup-a@40", "sup-a@40-s2", "sup-a@40-s8", "sup-a@40-s32"]
    ]  # one checkpoint, increasing N, its study-N player inside


def test_a_chain_s_neighbours_in_n_play_while_uncertain() -> None:
    """Each variant meets its neighbours in N (and so its study-N player) whatever their
    ratings, beside its neighbours by rating and the nearest anchor."""
    random = parse_agent("random")
    chain = [MixedAgent(p=p) for p in (0.9, 0.6, 0.3)]  # stand-ins: one checkpoint at N = 0, 8, 32
    ratings = {random.name: (0.0, 0.0, 0.0)}
    ratings |= {a.name: (400.0 * i, 400.0 * i - 90, 400.0 * i + 90) for i, a in enumerate(chain)}
    others = [MixedAgent(p=p) for p in (0.85, 0.8)]
    ratings |= {a.name: (30.0 + 5 * i, 0.0, 60.0 + 5 * i) for i, a in enumerate(others)}
    agents = [*chain, *others]

    def schedule(players: list[MixedAgent], chains: list[list[MixedAgent]], r: dict) -> set:
        jobs = active_round(
            players, r, [random], eco_openings(2), target_width=100.0, neighbours=0,
            games_per_pair=2, round_index=0, chains=chains,
        )  # fmt: skip
        return {frozenset((j.white.name, j.black.name)) for j in jobs}

    added = schedule(agents, [chain], ratings) - schedule(agents, [], ratings)
    assert added == {
        frozenset((chain[0].name, chain[1].name)),
        frozenset((chain[1].name, chain[2].name)),
    }
    narrow = {k: (v[0], v[0] - 1, v[0] + 1) for k, v in ratings.items()}
    assert schedule(agents, [chain], narrow) == set()
    with pytest.raises(ValueError, match="not in the pool"):
        schedule(others, [chain], ratings)


@pytest.mark.slow
def test_chained_players_are_played_and_rated_in_one_pool(tmp_path: Path) -> None:
    """A real adaptive arena (engines over UCI, one process): a chain of three players far
    apart in strength is linked game by game, and one fit rates every player on one scale."""
    stockfish = debian_tool("stockfish")
    chain = [MixedAgent(p=p, nodes=1, path=stockfish) for p in (1.0, 0.5, 0.0)]
    random = parse_agent("random")
    pgn = tmp_path / "arena.pgn"
    run_active(
        chain,
        [random],
        eco_openings(4),
        pgn,
        ArenaConfig(move_cap=40, batch=4, workers=1),
        ScheduleConfig(games_per_pair=4, max_rounds=1, neighbours=0, target_width=50.0),
        InlineExecutor(),
        anchor_elos={"random": 0.0},
        chains=[chain],
        progress=False,
    )
    played = {frozenset(game_id.split("|")[:2]) for game_id in recover_log(pgn)}
    names = [a.name for a in chain]
    assert frozenset(names[:2]) in played and frozenset(names[1:]) in played
    games, rejected = read_pgn_results([pgn])
    table = fit_ratings(games, "ordo", anchors={"random": 0.0})
    assert set(table.names) == {*names, "random"} and not sum(rejected.values())


# --- ratings, curves and the report ------------------------------------------------------------


def _study_with_variants(root: Path, *, variants: bool = True, seed: int = 0) -> Path:
    """Three supervised runs at cap 1200, four checkpoints each, rated at the study's N = 8;
    with ``variants``, each run's last checkpoint also at N = 0, 2 and 32, planted far above
    (and below) the curve so that a curve which took them in would show it."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for size, params, x0 in (("10k", 10_000, 11.0), ("30k", 30_000, 11.5), ("100k", 100_000, 12.0)):
        run = f"sup-{size}"
        for i, x in enumerate(np.arange(x0, x0 + 1.6, 0.5)):
            ckpt = f"{run}@{i + 1}"
            elo = 200 + 250 * (x - 11.0)
            points = {8: elo} | (
                {0: elo - 300, 2: elo - 120, 32: elo + 500} if variants and i == 3 else {}
            )
            for n, e in points.items():
                agent = ckpt if n == 0 else f"{ckpt}-s{n}"
                rows.append(
                    [agent, ckpt, n, run, "supervised", 1200, size, params, i + 1, 10**x, ""]
                )
                truth[agent] = e
    columns = ["agent", "checkpoint", "sims", "run_id", "regime", "cap", "size", "params", "step"]
    write_checkpoints(root, pd.DataFrame(rows, columns=[*columns, "flops", "parent"]))
    pgn = Workdir(root=root).arena_log("supervised")
    play_games(pgn, {**truth, "random": 0.0}, rng)
    games, _ = read_pgn_results([pgn])
    fit_ratings(games, "ordo", anchors={"random": 0.0}).write_csv(ratings_path(root))
    return root


def test_variants_are_rated_in_the_one_fit_but_kept_out_of_the_curves(tmp_path: Path) -> None:
    root = _study_with_variants(tmp_path / "study")
    registry = load_study(root)
    assert len(registry) == 12 + 3 * 3
    with pytest.raises(ValueError, match="one N for every checkpoint"):
        analyze(registry)  # the curves refuse a registry of several N
    with pytest.raises(ValueError, match="rated at sims = 4"):
        curve_sims(registry, 4)
    assert curve_sims(registry) == 8  # the one N every checkpoint has
    last = registry[registry["checkpoint"].str.endswith("@4")]  # each at every N: ambiguous
    with pytest.raises(ValueError, match="name the compute-Elo curves' N"):
        curve_sims(last)
    assert curve_sims(last, 2) == 2 and curve_sims(registry.iloc[:0], 8) == 8
    curves, search = split_by_sims(registry, 8)
    assert len(curves) == 12 and set(curves["sims"]) == {8}
    assert search.checkpoints == ["sup-10k@4", "sup-30k@4", "sup-100k@4"]
    assert list(search.points["sims"]) == [0, 2, 8, 32] * 3
    rated = load_ratings(root).set_index("name")
    np.testing.assert_allclose(search.points["elo"], rated.loc[search.points["agent"], "rating"])
    for _, rows in search.points.groupby("checkpoint"):  # planted: N = 32 far above N = 0
        assert rows["elo_lo"].iloc[-1] > rows["elo_hi"].iloc[0]

    analysis = run_analysis(root, ReportConfig(replicates="intervals", n_replicates=20, sims=8))
    assert set(analysis.study["agent"]) == set(curves["agent"])  # no variant in any curve
    fit = analysis.fits["supervised cap 1200"]["linear"]
    on = analysis.study[analysis.study["on_frontier"]]
    assert fit.n == len(on) and on["elo"].max() < rated.loc["sup-100k@4-s32", "lower"]
    one_n = run_analysis(root, ReportConfig(replicates="none", sims=8))
    alone = analyze(curves)
    np.testing.assert_allclose(
        one_n.slope("supervised cap 1200").value, alone.slope("supervised cap 1200").value
    )


def test_the_report_shows_elo_against_n_with_the_players_and_says_why_not_without(
    tmp_path: Path,
) -> None:
    root = _study_with_variants(tmp_path / "study")
    out = tmp_path / "report"
    index = write_report(root, out, ReportConfig(replicates="intervals", n_replicates=20, sims=8))
    text = index.read_text()
    assert "<h2>Elo against test-time simulations N</h2>" in text
    assert 'src="elo_vs_test_time_sims.png"' in text
    assert (out / "elo_vs_test_time_sims.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (out / "elo_vs_test_time_sims.svg").read_text()
    assert "Elo (random mover = 0)" in svg and "test-time simulations N" in svg
    for agent in ("sup-100k@4", "sup-100k@4-s2", "sup-100k@4-s8", "sup-100k@4-s32"):
        assert f"<td>{agent}</td>" in text
    fits = json.loads((out / "fits.json").read_text())
    assert fits["checkpoints"] == 12
    tt = fits["test_time"]
    assert tt["curve_sims"] == 8 and tt["level"] == 0.9 and "why" not in tt
    assert [c["checkpoint"] for c in tt["checkpoints"]] == ["sup-10k@4", "sup-30k@4", "sup-100k@4"]
    point = tt["checkpoints"][2]["points"][3]
    assert point["sims"] == 32 and point["agent"] == "sup-100k@4-s32"
    assert point["lo"] < point["elo"] < point["hi"] and point["games"] > 0

    # The same study without variants: no figure (the old one removed), a line saying why.
    plain = _study_with_variants(tmp_path / "plain", variants=False)
    write_report(plain, out, ReportConfig(replicates="none", sims=8))
    text = (out / "index.html").read_text()
    assert "Not shown: no checkpoint is rated at more than one N (arena.test_time_sims)" in text
    assert not list(out.glob("elo_vs_test_time_sims.*"))
    fits = json.loads((out / "fits.json").read_text())
    assert fits["test_time"]["checkpoints"] == [] and "test_time_sims" in fits["test_time"]["why"]


@pytest.mark.slow
def test_a_real_run_s_arena_players_at_the_study_s_n_and_the_variants(
    tiny_run: Path, tmp_path: Path
) -> None:
    """The arena phase's player list from a real run directory: the evaluated checkpoints at
    ``sims``, then its last checkpoint at the other N, with the same identity and FLOPs."""
    run = tmp_path / "study" / "runs" / "cap1500-10k"
    shutil.copytree(tiny_run, run)  # a copy whose record names the cap it was trained below
    config = json.loads((run / "config.json").read_text())
    config["info"] |= {"cap": 1500, "size": "10k"}
    (run / "config.json").write_text(json.dumps(config))
    toml = tmp_path / "s.toml"
    toml.write_text("[arena]\nsims = 2\ncheckpoints_per_run = 2\ntest_time_sims = [0, 2, 8]\n")
    cfg = load_study_config(toml)
    rows = study_plan.arena_rows(run, cfg)
    main = study_plan.main_rows(rows, 2)
    assert len(main) == 2 and [r.sims for r in rows[2:]] == [0, 8]
    last = main[-1]
    assert all(r.checkpoint == last.checkpoint and r.flops == last.flops for r in rows[2:])
    assert [r.agent for r in rows[2:]] == [last.checkpoint, f"{last.checkpoint}-s8"]
    wd = Workdir(root=tmp_path / "study")
    (chain,) = study_plan.variant_chains(rows, wd)
    assert [a.sims for a in chain] == [0, 2, 8] and {a.checkpoint for a in chain} == {
        last.checkpoint
    }
    assert [a.name for a in chain] == [rows[2].agent, last.agent, rows[3].agent]


def test_the_report_command_takes_the_curves_n_and_names_sims_where_it_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``elocap report --sims N``: a registry that rates every checkpoint at every N cannot tell
    its curves' N, so it must be told; an N the registry does not have is a one-line error
    naming the option (exit status 2), not an empty curve."""
    root = _study_with_variants(tmp_path / "study")
    registry = load_checkpoints(root)
    write_checkpoints(root, registry[registry["checkpoint"].str.endswith("@4")])  # each at every N
    for argv, message in (
        ([], r"--sims: the registry rates checkpoints at sims \[0, 2, 8, 32\]: name the"),
        (["--sims", "4"], r"--sims: no checkpoint of the registry is rated at sims = 4 \(\[0, 2,"),
    ):
        assert cli_main(["report", str(root), "--replicates", "none", *argv]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(rf"elocap: error: {message}[^\n]*\n", err), err
    out = tmp_path / "report"
    printed = _cli(["report", str(root), "--out", str(out), "--replicates", "none", "--sims", "2"])
    assert Path(printed.strip()) == out / "index.html"
    fits = json.loads((out / "fits.json").read_text())
    assert fits["checkpoints"] == 3 and fits["test_time"]["curve_sims"] == 2
    assert [c["checkpoint"] for c in fits["test_time"]["checkpoints"]] == [
        "sup-10k@4",
        "sup-30k@4",
        "sup-100k@4",
    ]
    text = (out / "index.html").read_text()
    assert "The compute-Elo curves and fits above use only N = 2" in text
    fitted = json.loads(_cli(["fit", str(root), "--json", "--replicates", "none", "--sims", "32"]))
    assert fitted["test_time"]["curve_sims"] == 32 and fitted["checkpoints"] == 3
