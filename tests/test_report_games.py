"""How the arena's games ended: counted by Termination tag and result, in the report."""

from __future__ import annotations

import html
import re
from pathlib import Path

from analysis.report import ReportConfig, write_report
from analysis.report_games import endings_section, game_endings
from tests.test_report import make_workdir


def _game(white: str, black: str, result: str, termination: str | None) -> str:
    tag = "" if termination is None else f'[Termination "{termination}"]\n'
    return f'[White "{white}"]\n[Black "{black}"]\n[Result "{result}"]\n{tag}\n{result}\n'


def test_endings_are_counted_by_termination_and_result(tmp_path: Path) -> None:
    games = (
        [_game("ck@1", "random", "1-0", "checkmate")] * 3
        + [_game("random", "ck@1", "0-1", "checkmate")]
        + [_game("mix", "random", "1/2-1/2", "move_cap")] * 2
        + [_game("ck@1", "mix", "1/2-1/2", "threefold_repetition")]
        + [_game("mix", "random", "1/2-1/2", "stalemate")]
        + [_game("mix", "random", "1-0", None)]
    )
    path = tmp_path / "arena.pgn"
    path.write_text("\n".join(games))
    frame = game_endings([path], {"ck@1"}).set_index("termination")
    assert list(frame.index) == [
        "checkmate",
        "move_cap",
        "(no Termination tag)",
        "stalemate",
        "threefold_repetition",
    ]
    mate = frame.loc["checkmate"]
    assert (mate["games"], mate["with a checkpoint"], mate["1-0"], mate["0-1"]) == (4, 4, 3, 1)
    assert frame.loc["move_cap", "ending"] == "move cap: adjudicated a draw"
    assert frame.loc["move_cap", "1/2-1/2"] == 2 and frame.loc["move_cap", "with a checkpoint"] == 0
    assert frame.loc["threefold_repetition", "ending"].startswith("draw by the rules")
    text = html.unescape(" ".join(endings_section(game_endings([path], {"ck@1"}))))
    assert "9 games in arena/*.pgn" in text
    assert "4 (44%) ended in mate, 2 (22%) in a draw by the rules, 2 (22%) at the move cap" in text
    assert ", 1 (11%) otherwise" in text
    assert "No arena games" in " ".join(endings_section(None))


def test_the_report_lists_how_the_games_ended(tmp_path: Path) -> None:
    root = make_workdir(tmp_path / "study", selfplay=False)
    pgn = root / "arena" / "games.pgn"
    n = pgn.read_text().count("[Result ")
    page = write_report(root, tmp_path / "r", ReportConfig(replicates="none")).read_text()
    section = page[page.index("<h2>How the arena's games ended</h2>") :]
    text = html.unescape(re.sub(r"<[^>]+>", " ", section))
    assert f"{n} games in arena/*.pgn" in text and "(no Termination tag)" in text
