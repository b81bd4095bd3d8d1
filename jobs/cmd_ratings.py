"""``elocap ratings``: Elo ratings with intervals from PGN results (Ordo- or BayesElo-compatible).

    elocap ratings games.pgn [more.pgn ...] --model ordo|bayeselo [--average A]
        [--anchor NAME=ELO ...] [--white-advantage X] [--draw-rate D | --drawelo E]
        [--fit-white] [--fit-draw] [--prior N] [--bootstrap N] [--confidence 0.9] [--csv [OUT]]

Without ``--csv`` the ratings are printed as a table; ``--csv`` alone prints the CSV
(name,rating,lower,upper,games,score), ``--csv OUT`` writes it atomically to OUT and prints the
table. Rejected games (unfinished, unknown result, ...) are counted on standard error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _anchor(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=ELO, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the rating in {text!r} is not a number") from None


def _fraction(text: str) -> float:
    value = float(text)
    if value > 1.0:  # "50" means 50 %, as Ordo's -d takes it
        value /= 100.0
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ratings",
        help="Elo ratings with confidence intervals from PGN results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pgn", nargs="+", type=Path, help="PGN files with the games")
    p.add_argument("--model", choices=("ordo", "bayeselo"), default="ordo")
    p.add_argument("--average", type=float, help="fix the pool average (Ordo: 2300 by default)")
    p.add_argument(
        "--anchor",
        type=_anchor,
        action="append",
        default=[],
        metavar="NAME=ELO",
        help="fix a player's rating (repeatable); default: 'random' at 0 when it played",
    )
    p.add_argument("--white-advantage", type=float, help="Elo advantage of white (fixed)")
    p.add_argument("--draw-rate", type=_fraction, help="ordo: draw rate of equal players")
    p.add_argument("--drawelo", type=float, help="bayeselo: drawelo")
    p.add_argument("--prior", type=float, help="bayeselo: virtual draws (default 2)")
    p.add_argument("--fit-white", action="store_true", help="fit the white advantage")
    p.add_argument("--fit-draw", action="store_true", help="fit the draw rate / drawelo")
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="intervals from N bootstrap resamples of the games (default: from the Hessian)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--confidence", type=float, default=0.9, help="interval coverage (0.9)")
    p.add_argument(
        "--csv",
        nargs="?",
        const="-",
        metavar="OUT",
        help="write the CSV to OUT (or standard output without OUT)",
    )
    p.set_defaults(func=_ratings)


def model_options(a: argparse.Namespace) -> dict[str, Any]:
    """The model options the arguments ask for (only those given)."""
    if a.white_advantage is not None and a.fit_white:
        raise ValueError("--white-advantage and --fit-white exclude each other")
    if (a.draw_rate is not None or a.drawelo is not None) and a.fit_draw:
        raise ValueError("--draw-rate/--drawelo and --fit-draw exclude each other")
    if a.model == "ordo" and (a.drawelo is not None or a.prior is not None):
        raise ValueError("--drawelo and --prior belong to --model bayeselo")
    if a.model == "bayeselo" and a.draw_rate is not None:
        raise ValueError("--draw-rate belongs to --model ordo (bayeselo takes --drawelo)")
    given = {
        "white_advantage": a.white_advantage,
        "draw_rate": a.draw_rate,
        "drawelo": a.drawelo,
        "prior": a.prior,
        "fit_white": a.fit_white or None,
        "fit_draw": a.fit_draw or None,
    }
    return {k: v for k, v in given.items() if v is not None}


def _ratings(a: argparse.Namespace) -> int:
    from analysis.ratings import fit_ratings, read_pgn_results

    options = model_options(a)
    anchors = dict(a.anchor)
    if len(anchors) != len(a.anchor):
        raise ValueError("a player is anchored twice")
    games, rejected = read_pgn_results(a.pgn)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"
    print(
        f"games {games.num_games}, players {games.num_players}, rejected: {skipped}",
        file=sys.stderr,
    )
    table = fit_ratings(
        games,
        a.model,
        anchors=anchors or None,
        average=a.average,
        confidence=a.confidence,
        interval="hessian" if a.bootstrap is None else "bootstrap",
        n_bootstrap=a.bootstrap or 0,
        seed=a.seed,
        **options,
    )
    if a.csv == "-":
        sys.stdout.write(table.to_csv())
        return 0
    if a.csv is not None:
        table.write_csv(Path(a.csv))
    print(table.format())
    return 0
