"""How the arena's games ended, for the report: ``game_endings`` counts the games of the arena's
PGN logs by their ``Termination`` tag (mate, a draw by the rules, the move cap) and result,
from the headers only; ``endings_section`` lays the counts out as the report's section."""

from __future__ import annotations

import collections
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

import chess.pgn
import pandas as pd

from analysis.rating_io import read_pgn_results

# Termination tag (as the arena writes it, mcts.games) -> in words
ENDINGS = {
    "checkmate": "mate",
    "stalemate": "draw by the rules: stalemate",
    "insufficient_material": "draw by the rules: insufficient material",
    "fifty_moves": "draw by the rules: fifty moves",
    "threefold_repetition": "draw by the rules: threefold repetition",
    "fivefold_repetition": "draw by the rules: fivefold repetition",
    "seventyfive_moves": "draw by the rules: seventy-five moves",
    "move_cap": "move cap: adjudicated a draw",
}
NO_TAG = "(no Termination tag)"
COLUMNS = ["termination", "ending", "games", "with a checkpoint", "1-0", "1/2-1/2", "0-1"]


def game_endings(paths: Sequence[Path], checkpoints: Iterable[str] = ()) -> pd.DataFrame:
    """One row per Termination value among the games of ``paths``: the ending in words, the
    games, those with a player of ``checkpoints`` on either side, and the results (any
    other result is counted in ``games`` only). Rows by games, most first."""
    names = set(checkpoints)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    def count(_: Path, headers: chess.pgn.Headers) -> bool:
        tag = headers.get("Termination", "").strip() or NO_TAG
        c = counts[tag]
        c["games"] += 1
        c["with a checkpoint"] += bool({headers.get("White"), headers.get("Black")} & names)
        c[headers.get("Result", "").strip()] += 1
        return False  # counted here; nothing to rate

    read_pgn_results(paths, keep=count)
    rows = [
        {
            "termination": tag,
            "ending": ENDINGS.get(tag, tag),
            **{k: c[k] for k in COLUMNS[2:]},
        }
        for tag, c in counts.items()
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["games", "termination"], ascending=[False, True], ignore_index=True)


def endings_section(endings: pd.DataFrame | None) -> list[str]:
    """The report's "How the arena's games ended": a line of totals and the table."""
    parts = ["<h2>How the arena's games ended</h2>"]
    if endings is None or endings.empty:
        return [*parts, "<p>No arena games (arena/*.pgn) to count.</p>"]
    total = int(endings["games"].sum())
    mates = int(endings.loc[endings["termination"] == "checkmate", "games"].sum())
    capped = int(endings.loc[endings["termination"] == "move_cap", "games"].sum())
    rules = int(endings.loc[endings["ending"].str.startswith("draw by the rules"), "games"].sum())
    other = total - mates - capped - rules
    text = (
        f"{total} games in arena/*.pgn (every pairing, anchors' games included): {mates} "
        f"({mates / total:.0%}) ended in mate, {rules} ({rules / total:.0%}) in a draw by the "
        f"rules, {capped} ({capped / total:.0%}) at the move cap, adjudicated a draw"
        + (f", {other} ({other / total:.0%}) otherwise" if other else "")
        + ". A game stopped at the move cap is scored a draw, whoever was ahead."
    )
    table = endings.assign(share=[f"{g / total:.0%}" for g in endings["games"]])
    table = table[["ending", "termination", "games", "share", *COLUMNS[3:]]]
    return [*parts, f"<p>{html.escape(text)}</p>", table.to_html(index=False, escape=True)]
