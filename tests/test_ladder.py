"""The synthetic ladder: reproducible to the byte (real Stockfish over UCI, real files), its
corpus tagged with the fitted ratings on the random-mover scale, its players bridges."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import chess
import numpy as np
import pytest

from analysis.ratings import read_pgn_results
from elocap.execution import Executor, InlineExecutor, Resources
from mcts.agents import MixedAgent, StockfishAgent, find_engine, parse_agent
from mcts.games import RESULT_SCORE
from mcts.ladder import (
    LadderConfig,
    build_ladder,
    config_digest,
    ladder_bridges,
    ladder_jobs,
    ladder_ratings,
    pairs_of,
    play_games,
)

pytestmark = pytest.mark.skipif(
    not any(Path(p).exists() for p in ("/usr/games/stockfish", "/usr/bin/stockfish")),
    reason="needs Debian's stockfish",
)

# A reduced ladder: two mixed players and the random mover, short games at a low node count.
SMALL = LadderConfig(
    levels=(0.9, 0.5), nodes=10, games=18, openings=2, move_cap=120, chunk=4, workers=1
)


class ReversedExecutor(Executor):
    """Runs every task in this process, last task first: completion order must not matter."""

    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        *,
        resources: Resources | None = None,
        window: int = 2,
        max_retries: int = 2,
    ) -> Iterator[tuple[int, Any]]:
        for i in reversed(range(len(items))):
            yield i, fn(*items[i])


def _build(root: Path, cfg: LadderConfig, executor: Executor) -> tuple[bytes, bytes]:
    corpus, log = root / "corpus" / "ladder.pgn", root / "arena" / "ladder.pgn"
    build_ladder(cfg, corpus, log, executor, progress=False)
    return corpus.read_bytes(), log.read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[bytes, bytes]]:
    """The small ladder, built once: (its root, (corpus bytes, log bytes))."""
    root = tmp_path_factory.mktemp("reference")
    return root, _build(root, SMALL, InlineExecutor())


def test_two_generations_give_the_same_bytes(
    reference: tuple[Path, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    first = reference[1]
    # other chunks, finished in the other order: the games are the same, in the same order
    again = _build(tmp_path / "b", dataclasses.replace(SMALL, chunk=5), ReversedExecutor())
    assert first == again
    assert first[1].count(b"[Event ") == len(ladder_jobs(SMALL)) == 18


def test_corpus_tags_are_the_fitted_ratings_on_the_random_scale(
    reference: tuple[Path, tuple[bytes, bytes]],
) -> None:
    log, corpus = reference[0] / "arena" / "ladder.pgn", reference[0] / "corpus" / "ladder.pgn"
    table = ladder_ratings(log)
    fitted = dict(zip(table.names, table.rating, strict=True))
    assert fitted["random"] == 0.0
    assert 0 < fitted["mix-n10-p0.9"] < fitted["mix-n10-p0.5"]
    games = 0
    with open(corpus) as f:
        while (headers := chess.pgn.read_headers(f)) is not None:
            games += 1
            assert "random" not in (headers["White"], headers["Black"])
            assert int(headers["WhiteElo"]) == round(fitted[headers["White"]])
            assert int(headers["BlackElo"]) == round(fitted[headers["Black"]])
            assert headers["Event"].startswith("Rated") and headers["TimeControl"] == "1800+0"
    # the pairs: random-0.9, random-0.5, 0.9-0.5 (span 2); the corpus keeps the last
    assert pairs_of(3, 2) == [(0, 1), (0, 2), (1, 2)]
    assert games == 6
    bridges = {b.agent: b for b in ladder_bridges(log)}
    assert set(bridges) == {"mix-n10-p0.9", "mix-n10-p0.5"}
    assert all(b.se > 0 and b.elo == fitted[b.agent] for b in bridges.values())
    games_read, rejected = read_pgn_results([log])  # the log reads as an arena log
    assert len(games_read.white) == 18 and not rejected
    assert set(games_read.names) == {"random", "mix-n10-p0.9", "mix-n10-p0.5"}


def test_an_interrupted_or_outdated_log_is_finished_to_the_same_bytes(
    reference: tuple[Path, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "arena" / "ladder.pgn"
    log.parent.mkdir(parents=True)
    log.write_bytes(reference[1][1][: len(reference[1][1]) // 2])  # cut inside a game
    assert _build(tmp_path, SMALL, InlineExecutor()) == reference[1]
    # a log of another config (another seed) is not resumed: every game is played again
    other = _build(tmp_path, dataclasses.replace(SMALL, seed=1), InlineExecutor())
    assert other[1] != reference[1][1] and other[1].count(b"[Event ") == 18
    assert config_digest(SMALL).encode() not in other[1]


def test_mixed_agent_spec_and_its_draws() -> None:
    spec = parse_agent("mixed:p=0.25,nodes=10")
    assert spec == MixedAgent(p=0.25, nodes=10) and spec.name == "mix-n10-p0.25"
    assert parse_agent(spec.to_string()) == spec
    with pytest.raises(ValueError, match="p must lie in"):
        MixedAgent(p=1.5)
    # p = 1 is the random mover: no engine, the random player's draws from the same stream
    board = chess.Board()
    player = MixedAgent(p=1.0).player()
    rng = np.random.default_rng(3)
    move = player.choose([board], rng)[0]
    expect_rng = np.random.default_rng(3)
    expect_rng.random()
    legal = list(board.legal_moves)
    assert move == legal[int(expect_rng.integers(len(legal)))]
    player.close()


def _game(player: Any, openings: Sequence[str], plies: int) -> list[str]:
    """Moves the player makes for both sides from ``openings``, on a fresh board."""
    board = chess.Board()
    for san in openings:
        board.push_san(san)
    rng = np.random.default_rng(0)
    for _ in range(plies):
        board.push(player.choose([board], rng)[0])
    return [m.uci() for m in board.move_stack]


@pytest.mark.parametrize(
    "spec", [MixedAgent(p=0.0, nodes=60), StockfishAgent(nodes=60)], ids=["mixed", "stockfish"]
)
def test_engines_start_every_game_with_fresh_tables(spec: Any) -> None:
    """A node-limited engine's moves in a game do not depend on the games it played before."""
    alone = spec.player()
    try:
        reference = _game(alone, ["e4", "e5"], 16)
    finally:
        alone.close()
    busy = spec.player()
    try:
        _game(busy, ["d4", "d5", "c4"], 16)  # another game first, then the reference
        assert _game(busy, ["e4", "e5"], 16) == reference
    finally:
        busy.close()


def test_strength_rises_as_p_falls() -> None:
    """The levels are ordered: a mixed player at p = 0.3 beats the random mover and one at
    p = 0.9 in most games."""
    cfg = LadderConfig(levels=(0.9, 0.3), nodes=10, games=12, openings=4, move_cap=200, span=2)
    records = play_games(ladder_jobs(cfg), cfg)
    strong = "mix-n10-p0.3"
    points = [
        RESULT_SCORE[r.result] if r.white == strong else 1 - RESULT_SCORE[r.result]
        for r in records
        if strong in (r.white, r.black)
    ]
    assert len(points) == 8 and np.mean(points) >= 0.75, points
    assert find_engine("stockfish")


def test_ladder_config_checks() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        LadderConfig(levels=(0.5, 1.0))
    with pytest.raises(ValueError, match="distinct"):
        LadderConfig(levels=(0.5, 0.5))
    with pytest.raises(ValueError, match="2 games per pair"):
        LadderConfig(levels=(0.9, 0.5, 0.1), games=6)
