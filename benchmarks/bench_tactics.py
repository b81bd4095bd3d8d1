"""One-move tactics of checkpoints under search: Lichess mates in one from Lichess puzzles.

A cheap probe of what a network + search actually sees, apart from arena noise: the 508 Lichess
puzzles of ``puzzles/lichess_db_puzzle.first1499.csv`` with the theme ``mateIn1`` (every one of
that file's one-move puzzles is a mate), from real games, rated 399-2787. The position is the
puzzle's FEN after its first move (the opponent's); any mating move counts, checked by
python-chess. Each checkpoint plays one
move per position under each search config (deterministic: no Gumbel noise, temperature 0);
the table gives the solve rate with a 90% Wilson interval.

    .venv/bin/python benchmarks/bench_tactics.py --net RUN[@STEP] [--net ...]
        [--config '{"num_simulations": 16}' --config ...] [--limit 256]

``--config`` is a JSON object of ``mcts.search.SearchConfig`` fields (BENCHMARKS.md 13d).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import chess
import jax
import numpy as np
from _common import DATA, machine, require, table

from data_pipeline.encoding import move_to_action
from mcts.agents import load_network
from mcts.env import from_boards
from mcts.search import SearchConfig, search
from scaling.model import PolicyValueNet

PUZZLES = DATA / "puzzles" / "lichess_db_puzzle.first1499.csv"
BATCH = 64


def wilson(hits: int, n: int, z: float = 1.645) -> tuple[float, float, float]:
    """The rate and its Wilson score interval (90% by default)."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = hits / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return p, mid - half, mid + half


def one_move_puzzles(path: Path) -> dict[str, list[tuple[chess.Board, set[int]]]]:
    """{"mate in 1": [(position, the actions that mate), ...]}."""
    out: dict[str, list[tuple[chess.Board, set[int]]]] = {"mate in 1": []}
    with open(require(path), newline="") as f:
        for row in csv.DictReader(f):
            if "mateIn1" not in row["Themes"].split():
                continue
            board = chess.Board(row["FEN"])
            board.push_uci(row["Moves"].split()[0])
            good = set()
            for m in list(board.legal_moves):
                board.push(m)
                if board.is_checkmate():
                    good.add(move_to_action(m, not board.turn))
                board.pop()
            if not good:
                raise ValueError(f"{path}: puzzle {row['PuzzleId']} has no mate in one")
            out["mate in 1"].append((board, good))
    return out


def solved(net: PolicyValueNet, params: object, cfg: SearchConfig, puzzles: list) -> np.ndarray:
    """bool[P]: whether the search's move solves each puzzle."""
    fn = jax.jit(lambda p, s, k: search(net, p, s, k, cfg))
    hits = []
    for i in range(0, len(puzzles), BATCH):
        chunk = puzzles[i : i + BATCH]
        states = from_boards([b for b, _ in chunk], recent=True, pad_to=BATCH)
        actions = np.asarray(fn(params, states, jax.random.key(0)).action)[: len(chunk)]
        hits += [int(a) in good for a, (_, good) in zip(actions, chunk, strict=True)]
    return np.array(hits, bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", action="append", required=True, help="RUN_DIR[@STEP]")
    ap.add_argument("--config", action="append", help="JSON of SearchConfig fields")
    ap.add_argument("--limit", type=int, default=508, help="puzzles per kind (the first N)")
    a = ap.parse_args()
    configs = [json.loads(c) for c in (a.config or ['{"num_simulations": 16}'])]
    puzzles = {k: v[: a.limit] for k, v in one_move_puzzles(PUZZLES).items()}
    print(machine())
    print(f"puzzles: {PUZZLES} ({', '.join(f'{len(v)} {k}' for k, v in puzzles.items())})")
    rows = []
    for spec in a.net:
        run, _, step = spec.partition("@")
        model, params, _, got = load_network(Path(run), int(step) if step else None)
        net = PolicyValueNet(model)
        for c in configs:
            cfg = SearchConfig(
                **{"gumbel_scale": 0.0, "temperature": 0.0, "dirichlet_fraction": 0.0, **c}
            )
            t = time.perf_counter()
            cells = []
            for kind in puzzles:
                hits = solved(net, params, cfg, puzzles[kind])
                p, lo, hi = wilson(int(hits.sum()), hits.size)
                cells.append(f"{p:.2f} [{lo:.2f}, {hi:.2f}]")
            wall = time.perf_counter() - t
            rows.append([f"{Path(run).name}@{got}", json.dumps(c), *cells, f"{wall:.0f}"])
            print(table(["checkpoint", "search", *puzzles, "s"], rows[-1:]), flush=True)
    print()
    print(table(["checkpoint", "search", *(f"{k} (90%)" for k in puzzles), "wall s"], rows))


if __name__ == "__main__":
    sys.exit(main())
