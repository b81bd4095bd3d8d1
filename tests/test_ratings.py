"""Rating fits: analytic cases, anchoring, bad pools, PGN input, the CLI, synthetic recovery and
interval coverage."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from analysis.rating_io import Games
from analysis.rating_models import RATING_MODELS, make_model
from analysis.ratings import (
    DisconnectedPoolError,
    bootstrap_ratings,
    fit_ratings,
    read_pgn_results,
)
from jobs import cmd_ratings

# --- helpers -------------------------------------------------------------------------------


def games_of(*matches: tuple[str, str, int, int, int]) -> Games:
    """(white, black, white wins, draws, black wins) blocks of games."""
    triples = []
    for w, b, wins, draws, losses in matches:
        triples += [(w, b, 1.0)] * wins + [(w, b, 0.5)] * draws + [(w, b, 0.0)] * losses
    return Games.from_results(triples)


def simulate(
    model: str, truth: np.ndarray, n_games: int, rng: np.random.Generator, **params: float
) -> Games:
    """n_games between random pairs of players with ratings ``truth``, from the model itself."""
    p = len(truth)
    white = rng.integers(0, p, n_games)
    black = (white + rng.integers(1, p, n_games)) % p
    m = make_model(model)
    full = {**m.initial_params(), **params}
    score = m.simulate(truth[white] - truth[black], full, rng)
    names = tuple(f"p{i:02d}" for i in range(p))
    return Games(names, white.astype(np.int32), black.astype(np.int32), score)


def by_name(table) -> dict[str, float]:
    return dict(zip(table.names, table.rating.tolist(), strict=True))


PGN_HEADER = '[Event "t"]\n[White "{w}"]\n[Black "{b}"]\n{result}\n{moves}\n\n'


def write_pgn(path: Path, games: list[tuple[str, str, str | None]]) -> Path:
    text = ""
    for w, b, result in games:
        tag = f'[Result "{result}"]' if result is not None else ""
        text += PGN_HEADER.format(w=w, b=b, result=tag, moves=f"1. e4 e5 {result or '*'}")
    path.write_text(text)
    return path


# --- analytic cases ------------------------------------------------------------------------


def test_ordo_76_percent_is_202_elo() -> None:
    """Ordo's scale: 76 % expected score = 202 Elo; half points count like draws."""
    table = fit_ratings(games_of(("A", "B", 38, 0, 12), ("B", "A", 10, 4, 36)), "ordo")
    r = by_name(table)
    assert r["A"] - r["B"] == pytest.approx(202.0, abs=1e-6)  # A scored 76/100
    assert (r["A"] + r["B"]) / 2 == pytest.approx(2300.0)  # Ordo's default pool average
    assert table.score.tolist() == [76.0, 24.0] and table.games.tolist() == [100, 100]


def test_ordo_fitted_white_advantage_balances_white_score() -> None:
    """Equal players, white scores 64 %: all of it is white advantage, none rating."""
    table = fit_ratings(
        games_of(("A", "B", 30, 4, 16), ("B", "A", 30, 4, 16)), "ordo", fit_white=True
    )
    assert table.rating[0] == pytest.approx(table.rating[1], abs=1e-6)
    beta = np.log(0.76 / 0.24) / 202
    assert special.expit(beta * table.params["white_advantage"]) == pytest.approx(0.64, abs=1e-9)


def test_ordo_fitted_draw_rate_between_equal_players() -> None:
    table = fit_ratings(
        games_of(("A", "B", 15, 30, 15), ("B", "A", 15, 30, 15)), "ordo", fit_draw=True
    )
    assert table.params["draw_rate"] == pytest.approx(0.5, abs=1e-6)


def test_bayeselo_prior_keeps_perfect_scores_finite() -> None:
    """BayesElo's 1-0 table: with the prior of 2 virtual draws, n straight wins give a finite gap
    that grows with n (BayesElo's `prior` command prints the same table)."""
    gaps = []
    for n in range(1, 6):
        table = fit_ratings(games_of(("A", "B", n, 0, 0)), "bayeselo", scale=False)
        gaps.append(table.rating[0] - table.rating[1])
    assert all(np.isfinite(gaps)) and np.all(np.diff(gaps) > 0)


# --- anchoring -----------------------------------------------------------------------------

POOL = games_of(("A", "B", 5, 3, 2), ("B", "C", 4, 4, 2), ("C", "A", 1, 2, 7), ("B", "A", 3, 3, 4))


@pytest.mark.parametrize("model", sorted(RATING_MODELS))
def test_anchor_and_average_shift_only(model: str) -> None:
    free = fit_ratings(POOL, model, average=0.0)
    anchored = fit_ratings(POOL, model, anchors={"B": 1500.0})
    assert anchored.rating[POOL.names.index("B")] == 1500.0
    np.testing.assert_allclose(np.diff(anchored.rating), np.diff(free.rating), atol=1e-7)
    assert free.rating.mean() == pytest.approx(0.0, abs=1e-9)
    assert anchored.upper[1] == anchored.lower[1] == 1500.0  # the anchor has no uncertainty


def test_default_anchor_is_random_at_zero() -> None:
    pool = games_of(
        ("random", "sf1350", 0, 0, 6), ("net", "random", 5, 1, 0), ("sf1350", "net", 2, 2, 2)
    )
    table = fit_ratings(pool, "bayeselo")
    assert by_name(table)["random"] == 0.0 and table.anchors == {"random": 0.0}
    assert fit_ratings(pool, "bayeselo", average=100.0).rating.mean() == pytest.approx(100.0)


def test_two_anchors_fix_both() -> None:
    table = fit_ratings(POOL, "ordo", anchors={"A": 2000.0, "C": 1800.0})
    r = by_name(table)
    assert (r["A"], r["C"]) == (2000.0, 1800.0) and 1800.0 < r["B"] < 2100.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="either anchors or a pool average"):
        fit_ratings(POOL, "ordo", anchors={"A": 0.0}, average=0.0)
    with pytest.raises(ValueError, match=r"anchor\(s\) \['Z'\] played no game"):
        fit_ratings(POOL, "ordo", anchors={"Z": 0.0})
    with pytest.raises(ValueError, match="unknown rating model"):
        fit_ratings(POOL, "elostat")
    with pytest.raises(ValueError, match="has no option"):
        fit_ratings(POOL, "ordo", drawelo=90.0)
    with pytest.raises(ValueError, match="draw_rate"):
        fit_ratings(POOL, "ordo", draw_rate=1.5)


# --- pools without finite ratings ----------------------------------------------------------


@pytest.mark.parametrize("model", sorted(RATING_MODELS))
def test_disconnected_pool_names_the_groups(model: str) -> None:
    pool = games_of(("A", "B", 2, 2, 2), ("C", "D", 1, 3, 2))
    with pytest.raises(DisconnectedPoolError, match=r"2 groups.*\{A, B\}; \{C, D\}"):
        fit_ratings(pool, model)
    table = fit_ratings(pool, model, anchors={"A": 0.0, "C": 0.0})  # one anchor per group: fine
    assert np.all(np.isfinite(table.rating))


def test_ordo_perfect_score_names_the_player() -> None:
    pool = games_of(("A", "B", 3, 2, 1), ("A", "W", 0, 0, 4), ("W", "B", 3, 0, 0))
    with pytest.raises(DisconnectedPoolError, match=r"all wins or all losses.*\{W\}"):
        fit_ratings(pool, "ordo")
    assert np.isfinite(fit_ratings(pool, "bayeselo").rating).all()  # the prior keeps it finite
    with pytest.raises(DisconnectedPoolError, match=r"\{W\}"):
        fit_ratings(pool, "bayeselo", prior=0.0)


# --- PGN input -----------------------------------------------------------------------------


def test_bad_pgn_results_are_counted(tmp_path: Path) -> None:
    pgn = write_pgn(
        tmp_path / "mixed.pgn",
        [
            ("A", "B", "1-0"),
            ("B", "A", "1/2-1/2"),
            ("A", "B", "*"),
            ("A", "B", None),
            ("A", "B", "2-0"),
            ("?", "B", "1-0"),
            ("A", "A", "0-1"),
            ("B", "A", "0-1"),
        ],
    )
    games, rejected = read_pgn_results([pgn])
    assert games.num_games == 3 and games.names == ("A", "B")
    assert games.score.tolist() == [1.0, 0.5, 0.0]
    assert rejected == {
        "unfinished": 1,
        "missing result": 1,
        "unknown result": 1,
        "missing player": 1,
        "self play": 1,
    }
    with pytest.raises(OSError):
        read_pgn_results([tmp_path / "missing.pgn"])


# --- the CLI -------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    sub = argparse.ArgumentParser().add_subparsers()
    cmd_ratings.register(sub)
    args = sub.choices["ratings"].parse_args(argv)
    return int(args.func(args))


def test_cli_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    games = [("A", "B", "1-0")] * 6 + [("B", "A", "1/2-1/2")] * 4 + [("B", "C", "1-0")] * 3
    games += (
        [("C", "A", "0-1")] * 2
        + [("C", "B", "1/2-1/2")] * 3
        + [("A", "C", "1/2-1/2"), ("C", "A", "*")]
    )
    pgn = write_pgn(tmp_path / "pool.pgn", games)
    out = tmp_path / "ratings.csv"
    assert run_cli([str(pgn), "--model", "bayeselo", "--anchor", "C=1000", "--csv", str(out)]) == 0
    captured = capsys.readouterr()
    assert "rejected: unfinished 1" in captured.err and "A" in captured.out
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["name", "rating", "lower", "upper", "games", "score"]
    expected = fit_ratings(read_pgn_results([pgn])[0], "bayeselo", anchors={"C": 1000.0})
    for row in rows:
        i = expected.names.index(row["name"])
        assert float(row["rating"]) == pytest.approx(expected.rating[i], abs=0.005)
        assert float(row["lower"]) <= float(row["rating"]) <= float(row["upper"])
        assert int(row["games"]) == expected.games[i] and float(row["score"]) == expected.score[i]
    assert [r["name"] for r in rows][-1] == "C" and float(rows[-1]["rating"]) == 1000.0
    assert run_cli([str(pgn), "--csv"]) == 0  # ordo, CSV on standard output
    assert capsys.readouterr().out.startswith("name,rating,lower,upper,games,score\n")


def test_cli_rejects_contradictory_options(tmp_path: Path) -> None:
    pgn = write_pgn(tmp_path / "p.pgn", [("A", "B", "1-0"), ("B", "A", "1/2-1/2")])
    with pytest.raises(ValueError, match="exclude each other"):
        run_cli([str(pgn), "--white-advantage", "10", "--fit-white"])
    with pytest.raises(ValueError, match="belong to --model bayeselo"):
        run_cli([str(pgn), "--drawelo", "90"])


# --- synthetic recovery and coverage -------------------------------------------------------


@pytest.mark.parametrize("model", sorted(RATING_MODELS))
def test_synthetic_recovery(model: str) -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(0.0, 150.0, 20)
    truth -= truth.mean()
    games = simulate(model, truth, 4000, rng)
    table = (
        fit_ratings(games, model, average=0.0, scale=False)
        if model == "bayeselo"
        else fit_ratings(games, model, average=0.0)
    )
    err = table.rating - truth
    half = (table.upper - table.lower) / 2
    assert np.sqrt(np.mean(err**2)) < 30.0 and np.all(np.abs(err) < 3.5 * half / 1.645)


def _coverage(model: str, reps: int, interval: str, seed: int) -> float:
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(reps):
        truth = rng.normal(0.0, 150.0, 20)
        truth -= truth.mean()
        games = simulate(model, truth, 4000, rng)
        options = {"scale": False} if model == "bayeselo" else {}
        table = fit_ratings(
            games,
            model,
            average=0.0,
            confidence=0.9,
            interval=interval,
            n_bootstrap=100,
            seed=int(rng.integers(1 << 31)),
            **options,
        )
        covered += int(np.sum((table.lower <= truth) & (truth <= table.upper)))
    return covered / (reps * 20)


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(RATING_MODELS))
def test_hessian_intervals_cover_90_percent(model: str) -> None:
    """200 repetitions x 20 players: the 90 % Hessian intervals cover the true rating ~90 %."""
    assert 0.87 <= _coverage(model, 200, "hessian", seed=7) <= 0.93


@pytest.mark.slow
def test_bootstrap_intervals_cover_90_percent() -> None:
    """Fewer repetitions (40 x 20 players, 100 resamples each) for the bootstrap."""
    assert 0.85 <= _coverage("ordo", 40, "bootstrap", seed=11) <= 0.95


def test_bootstrap_ratings_are_seeded_resamples() -> None:
    a = bootstrap_ratings(POOL, "bayeselo", n=20, seed=3, average=0.0)
    b = bootstrap_ratings(POOL, "bayeselo", n=20, seed=3, average=0.0)
    assert a.shape == (20, 3) and np.array_equal(a, b)
    np.testing.assert_allclose(a.mean(axis=1), 0.0, atol=1e-9)
    assert np.all(a.std(axis=0) > 0)


def test_an_arena_log_s_fit_does_not_depend_on_the_order_its_games_finished(
    tmp_path: Path,
) -> None:
    """On Ray, an arena log is appended in completion order: the same games in another order
    must give the same players, ratings and bootstrap, bit for bit."""
    from analysis.rating_io import read_pgn_results

    rng = np.random.default_rng(5)
    names = ["random", "a@1", "a@9", "b@3"]
    games = []
    for k in range(60):
        w, b = rng.choice(len(names), 2, replace=False)
        result = rng.choice(["1-0", "0-1", "1/2-1/2"])
        games.append(
            f'[Event "t"]\n[White "{names[w]}"]\n[Black "{names[b]}"]\n[Result "{result}"]\n'
            f'[GameId "{names[w]}|{names[b]}|op{k % 4}|{k}"]\n\n1. e4 {result}\n\n'
        )
    first, second = tmp_path / "first.pgn", tmp_path / "second.pgn"
    first.write_text("".join(games))
    second.write_text("".join(games[i] for i in rng.permutation(len(games))))
    fits = []
    for path in (first, second):
        table, _ = read_pgn_results([path])
        fit = fit_ratings(
            table, "ordo", anchors={"random": 0.0}, interval="bootstrap", n_bootstrap=20, seed=1
        )
        fits.append((table.names, fit.rating.tobytes(), fit.lower.tobytes(), fit.upper.tobytes()))
    assert fits[0] == fits[1]
