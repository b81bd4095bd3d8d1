"""The arena: agents, device and host games refereed by python-chess, the PGN log, resume."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import chess
import chess.pgn
import jax
import numpy as np
import pytest

from data_pipeline.encoding import action_to_move
from elocap.execution import InlineExecutor, RayExecutor
from mcts.agents import (
    NetworkAgent,
    RandomAgent,
    StockfishAgent,
    agent_flops,
    load_network,
    parse_agent,
)
from mcts.arena import ArenaConfig, GameJob, batches, play_batch, run_tournament
from mcts.env import from_boards
from mcts.games import GameRecord, append_games, finish, recover_log, referee
from mcts.openings import eco_openings, openings_from_split
from mcts.policy import network_policy
from mcts.scheduler import active_round, pairing_games, round_robin
from tests.conftest import debian_tool


def _read_games(path: Path) -> list[chess.pgn.Game]:
    games = []
    with open(path) as f:
        while (game := chess.pgn.read_game(f)) is not None:
            games.append(game)
    return games


def _check_game(game: chess.pgn.Game, move_cap: int) -> None:
    """Every move legal by python-chess, and the result the rules give."""
    assert not game.errors, game.errors
    board = game.board()
    for move in game.mainline_moves():
        assert board.is_legal(move)
        board.push(move)
    ended = referee(board)
    if ended is None:
        assert len(board.move_stack) == move_cap and game.headers["Result"] == "1/2-1/2"
    else:
        assert (game.headers["Result"], game.headers["Termination"]) == ended


def test_agent_strings_round_trip_and_errors() -> None:
    for text in ("random", "stockfish:elo=1350,nodes=500", "net:run=/x/run,sims=8,elo=1400"):
        assert parse_agent(text).to_string() == text
    assert parse_agent("stockfish:elo=1350").name == "stockfish-1350"
    with pytest.raises(ValueError, match="unknown agent kind"):
        parse_agent("alphazero")
    with pytest.raises(ValueError, match="bad option"):
        parse_agent("stockfish:depth=3")
    with pytest.raises(ValueError, match="not a number"):
        parse_agent("stockfish:elo=strong")
    with pytest.raises(ValueError, match=r"UCI_Elo must lie in 1350\.\.2850"):
        parse_agent("stockfish:elo=3500")  # refused before any engine starts
    with pytest.raises(ValueError, match="nodes must be >= 1"):
        parse_agent("stockfish:nodes=0")
    net = parse_agent("net:run=/x/run-abc,step=40,sims=8")
    assert net.name == "run-abc@40-s8" and net.checkpoint == "run-abc@40"  # no disk access
    assert parse_agent("net:run=/nonexistent/run").name == "run@last"
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        parse_agent("net:run=/nonexistent/run").resolve()
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        agent_flops(parse_agent("net:run=/nonexistent/run,step=3"))


def test_referee_rules() -> None:
    assert referee(chess.Board()) is None
    mate = chess.Board("7k/6Q1/6K1/8/8/8/8/8 b - - 0 1")
    assert referee(mate) == ("1-0", "checkmate")
    assert referee(chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1")) == ("1/2-1/2", "stalemate")
    assert referee(chess.Board("7k/8/6K1/8/8/8/8/8 w - - 0 1"))[1] == "insufficient_material"
    assert referee(chess.Board("7k/8/6K1/8/8/8/8/R7 w - - 100 80"))[1] == "fifty_moves"
    board = chess.Board()
    for uci in ["g1f3", "g8f6", "f3g1", "f6g8"] * 2:
        board.push_uci(uci)
    assert referee(board) == ("1/2-1/2", "threefold_repetition")
    with pytest.raises(ValueError, match="illegal move"):
        finish([chess.Move.from_uci("e2e5")], 10)
    assert finish([chess.Move.from_uci("e2e4")], 1)[1:3] == ("1/2-1/2", "move_cap")
    with pytest.raises(ValueError, match="unfinished"):
        finish([chess.Move.from_uci("e2e4")], 10)
    # a game the device's rules ended early is a draw under that name, not an error
    ended = finish([chess.Move.from_uci("e2e4")], 10, ended_elsewhere="device_rules")
    assert ended[:3] == (("e2e4",), "1/2-1/2", "device_rules")


def test_colours_alternate_over_openings_and_ids_are_unique() -> None:
    a, b, c = RandomAgent(), StockfishAgent(elo=1350), StockfishAgent(elo=2000)
    ops = eco_openings(3)
    games = pairing_games(a, b, ops, 8)
    assert [g.white for g in games] == [a, b] * 4
    assert [g.opening for g in games] == [ops[0]] * 2 + [ops[1]] * 2 + [ops[2]] * 2 + [ops[0]] * 2
    assert [g.round for g in games] == [0] * 6 + [1] * 2
    jobs = round_robin([a, b, c], ops, 8)
    assert len(jobs) == 24 and len({j.game_id for j in jobs}) == 24
    with pytest.raises(ValueError, match="distinct"):
        round_robin([a, RandomAgent()], ops, 2)


def test_later_active_rounds_go_on_through_the_opening_suite() -> None:
    """Two deterministic players meeting again in a later round must not replay their games:
    each round's games of a pairing start where the last round's openings stopped."""
    a, b = StockfishAgent(nodes=1), StockfishAgent(nodes=2)
    ops = eco_openings(8)
    seen: list[tuple[str, bool]] = []
    for rnd in range(3):
        jobs = active_round([a, b], {}, [], ops, target_width=1, games_per_pair=6, round_index=rnd)
        assert len(jobs) == 6
        seen += [(j.opening.name, j.white == a) for j in jobs]
    assert len(set(seen[:16])) == 16  # every opening with each colour before any repeat
    assert len({j for j in seen}) == len(seen) - 2  # 18 games over 16 (opening, colour) pairs


def test_active_round_pairs_uncertain_agents_with_neighbours_and_anchor() -> None:
    anchor = StockfishAgent(elo=1350)
    agents = [StockfishAgent(nodes=n) for n in (1, 2, 3, 4, 5)]
    ratings = {a.name: (100.0 * i, 100.0 * i - 20, 100.0 * i + 20) for i, a in enumerate(agents)}
    ratings[agents[2].name] = (200.0, 0.0, 400.0)  # the only wide interval
    ratings[anchor.name] = (1000.0, 1000.0, 1000.0)
    jobs = active_round(agents, ratings, [anchor], eco_openings(1), target_width=100, round_index=3)
    pairs = {frozenset((j.white.name, j.black.name)) for j in jobs}
    me = agents[2].name
    expected = {agents[0].name, agents[1].name, agents[3].name, agents[4].name, anchor.name}
    assert pairs == {frozenset((me, other)) for other in expected}
    assert all(j.round >= 3000 for j in jobs)
    narrow = {k: (v[0], v[0] - 1, v[0] + 1) for k, v in ratings.items()}
    assert (
        active_round(agents, narrow, [anchor], eco_openings(1), target_width=100, round_index=0)
        == []
    )


def test_an_unrated_agent_starts_at_the_anchors_not_the_pool_mean() -> None:
    random = parse_agent("random")
    partners = [StockfishAgent(nodes=n) for n in (1, 2, 3, 4)]
    newcomer = StockfishAgent(nodes=9)
    ratings = {random.name: (0.0, 0.0, 0.0)}
    ratings |= {
        a.name: (100.0 + 200 * i, 90.0 + 200 * i, 110.0 + 200 * i) for i, a in enumerate(partners)
    }
    jobs = active_round(
        [newcomer, *partners], ratings, [random], eco_openings(1), target_width=50,
        neighbours=1, round_index=0,
    )  # fmt: skip
    opponents = {j.white.name if j.black == newcomer else j.black.name for j in jobs}
    assert opponents == {random.name, partners[0].name}  # its neighbours at 0, not at +400


def test_a_log_keeps_only_the_games_of_the_current_players(tmp_path: Path) -> None:
    """Games of agents an arena config no longer has (other simulations, other checkpoints)
    are dropped from its log; the others are kept byte for byte, in order."""
    from mcts.games import keep_players, to_pgn

    def record(i: int, white: str, black: str) -> GameRecord:
        return GameRecord(
            game_id=f"{white}|{black}|x|{i}", white=white, black=black, moves=("e2e4", "e7e5"),
            result="1-0", termination="move_cap", opening="x", opening_plies=0,
        )  # fmt: skip

    games = [record(0, "a-s8", "b-s8"), record(1, "a-s0", "b-s8"), record(2, "b-s8", "random")]
    games.append(record(3, "random", "c-s0"))
    log = tmp_path / "phase.pgn"
    append_games(log, games)
    assert keep_players(log, ["a-s8", "b-s8", "random"]) == 2
    assert log.read_text() == to_pgn(games[0]) + to_pgn(games[2])
    assert recover_log(log) == {games[0].game_id, games[2].game_id}
    assert keep_players(log, ["a-s8", "b-s8", "random"]) == 0  # nothing more to drop
    assert keep_players(tmp_path / "absent.pgn", ["a"]) == 0
    # every game dropped: the log is empty, and reading or filtering it again works
    assert keep_players(log, ["z"]) == 2
    assert log.read_bytes() == b"" and recover_log(log) == set()
    assert keep_players(log, ["z"]) == 0


def test_log_recovery_truncates_only_a_partial_last_game(tmp_path: Path) -> None:
    def record(i: int) -> GameRecord:
        return GameRecord(
            game_id=f"g{i}",
            white="a",
            black="b",
            moves=("e2e4", "e7e5"),
            result="1/2-1/2",
            termination="move_cap",
            opening="x",
            opening_plies=0,
        )

    log = tmp_path / "games.pgn"
    append_games(log, [record(0), record(1)])
    whole = log.read_bytes()
    with open(log, "ab") as f:
        f.write(b'[Event "elocap arena"]\n[Site "elocap"]\n[White "a"]\n\n1. e4 e5 2. N')
    assert recover_log(log) == {"g0", "g1"}
    assert log.read_bytes() == whole
    assert recover_log(log) == {"g0", "g1"}  # idempotent


def test_openings_from_the_validation_split(tiny_shards: Path) -> None:
    ops = openings_from_split(tiny_shards, plies=6, count=5)
    assert len(ops) == 5 and len({o.moves for o in ops}) == 5
    for o in ops:
        board = chess.Board()
        for uci in o.moves:
            assert board.is_legal(chess.Move.from_uci(uci))
            board.push_uci(uci)
    with pytest.raises(ValueError, match="distinct openings"):
        openings_from_split(tiny_shards, plies=6, count=10**6)


@pytest.mark.slow
def test_device_games_agree_with_python_chess(
    tiny_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    net = NetworkAgent(run=str(tiny_run), temperature=1.0)
    ops = eco_openings(8)
    pairs = [(net, RandomAgent()), (RandomAgent(), net)]
    jobs = [GameJob(*pairs[i % 2], ops[i % 8], i) for i in range(16)]
    with caplog.at_level(logging.WARNING, logger="mcts.arena"):
        records = play_batch(jobs, ArenaConfig(move_cap=512, batch=16))
    assert not [r for r in caplog.records if "disagree" in r.getMessage()]
    assert [r.game_id for r in records] == [j.game_id for j in jobs]
    for r in records:
        assert r.moves[: r.opening_plies] == ops[int(r.game_id.split("|")[-1]) % 8].moves
        assert r.white_flops is not None or r.black_flops is not None


@pytest.mark.slow
def test_each_device_game_s_moves_are_its_mover_s(tiny_run: Path) -> None:
    """The device loop asks each agent only on the half of the batch where it is to move: with
    the network playing argmax, its every move (after the opening) is its own choice on that
    board on the host, whichever colour it has, with colours unbalanced and a padded batch."""
    net = NetworkAgent(run=str(tiny_run))  # sims 0, temperature 0: argmax
    model, params, _, _ = load_network(tiny_run)
    policy = network_policy(model, params, net)
    ops = eco_openings(8)
    jobs = [
        GameJob(net, RandomAgent(), ops[0], 0),
        GameJob(RandomAgent(), net, ops[1], 0),
        GameJob(net, RandomAgent(), ops[2], 0),
        GameJob(net, RandomAgent(), ops[3], 0),
    ]
    records = play_batch(jobs, ArenaConfig(move_cap=40, batch=6))
    checked = 0
    for job, record in zip(jobs, records, strict=True):
        net_colour = chess.WHITE if job.white == net else chess.BLACK
        board = chess.Board()
        for ply, uci in enumerate(record.moves):
            if ply >= record.opening_plies and board.turn == net_colour:
                action = int(policy.host([board], seed=0)[0])
                assert action_to_move(action, board).uci() == uci, (record.game_id, ply)
                checked += 1
            board.push_uci(uci)
    assert checked >= 4 * 12


def _positions(count: int, seed: int) -> list[chess.Board]:
    """Boards along random games, some with repeated positions (knights shuffled back)."""
    import random

    rng = random.Random(seed)
    boards = []
    for i in range(count):
        board = chess.Board()
        for _ in range(rng.randrange(0, 60)):
            if board.is_game_over():
                break
            board.push(rng.choice(list(board.legal_moves)))
        if i % 3 == 0 and not board.is_game_over():  # shuffle a piece out and back twice
            for _ in range(2):
                for _ in range(4):
                    legal = [m for m in board.legal_moves if not board.is_capture(m)]
                    if not legal or board.is_game_over():
                        break
                    board.push(legal[0])
        if not board.is_game_over():
            boards.append(board)
    return boards


@pytest.mark.slow
def test_search_on_host_boards_chooses_as_on_the_device(tiny_run: Path) -> None:
    """A search agent against an engine plays on python-chess boards, rebuilt on the device from
    the last irreversible move; its deterministic search must choose what the search from the
    whole game's history chooses."""
    spec = NetworkAgent(run=str(tiny_run), sims=8)
    model, params, _, _ = load_network(tiny_run)
    policy = network_policy(model, params, spec)
    boards = _positions(12, seed=3)
    assert len(boards) >= 8 and any(b.is_repetition(2) for b in boards)
    full = from_boards(boards)  # replays each whole game
    recent = from_boards(boards, recent=True, pad_to=16)
    for name in ("board", "color", "castling", "en_passant", "halfmove", "moves", "terminated"):
        np.testing.assert_array_equal(getattr(recent, name)[: len(boards)], getattr(full, name))
    for i, board in enumerate(boards):  # the hashes since the last irreversible move
        k = min(board.halfmove_clock, len(board.move_stack)) + 1
        np.testing.assert_array_equal(recent.hashes[i, :k], full.hashes[i, :k])
        assert not np.asarray(recent.hashes[i, k + 1 :]).any()
    host = policy.host(boards, seed=0)
    device = np.asarray(jax.jit(policy.device)(params, full, jax.random.key(0)))
    np.testing.assert_array_equal(host, device)
    for board, action in zip(boards, host, strict=True):
        assert action_to_move(int(action), board) in board.legal_moves


@pytest.mark.slow
def test_search_agent_plays_stockfish_on_host_boards(tiny_run: Path, tmp_path: Path) -> None:
    stockfish = StockfishAgent(elo=1350, movetime_ms=10, path=debian_tool("stockfish"))
    net = NetworkAgent(run=str(tiny_run), sims=4).resolve()  # its latest checkpoint, by step
    jobs = pairing_games(net, stockfish, eco_openings(2), 4)
    cfg = ArenaConfig(move_cap=60, batch=4)
    log = tmp_path / "games.pgn"
    assert run_tournament(jobs, log, cfg, InlineExecutor(), progress=False).played == 4
    games = _read_games(log)
    assert {g.headers["White"] for g in games} == {net.name, stockfish.name}
    for game in games:
        _check_game(game, cfg.move_cap)


@pytest.mark.slow
@pytest.mark.ray
def test_tournament_on_ray_random_stockfish_and_a_checkpoint(
    ray_cluster: None, tiny_run: Path, tmp_path: Path
) -> None:
    stockfish = StockfishAgent(elo=1350, movetime_ms=20, path=debian_tool("stockfish"))
    net = NetworkAgent(run=str(tiny_run)).resolve()
    assert net.step is not None and net.name == f"{tiny_run.name}@{net.step}"
    agents = [RandomAgent(), stockfish, net]
    jobs = round_robin(agents, eco_openings(2), 4)
    cfg = ArenaConfig(move_cap=300, batch=4, workers=2)
    assert any(len({j.white for j in b} | {j.black for j in b}) == 2 for b in batches(jobs, cfg))
    log = tmp_path / "games.pgn"
    report = run_tournament(jobs, log, cfg, RayExecutor(), progress=False)
    assert (report.played, report.skipped) == (12, 0)
    games = _read_games(log)
    assert sorted(g.headers["GameId"] for g in games) == sorted(j.game_id for j in jobs)
    for game in games:
        _check_game(game, cfg.move_cap)
        h = game.headers
        if net.name in (h["White"], h["Black"]):
            side = "White" if h["White"] == net.name else "Black"
            assert float(h[f"{side}FLOPs"]) == pytest.approx(agent_flops(net), rel=1e-5)
        if {h["White"], h["Black"]} == {"random", stockfish.name}:
            assert h["Result"] == ("1-0" if h["White"] == stockfish.name else "0-1"), str(game)
    assert run_tournament(jobs, log, cfg, RayExecutor(), progress=False).played == 0


_RESUMABLE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from elocap.execution import InlineExecutor
    from mcts.agents import RandomAgent, StockfishAgent
    from mcts.arena import ArenaConfig, run_tournament
    from mcts.openings import eco_openings
    from mcts.scheduler import round_robin
    sf = StockfishAgent(elo=1350, movetime_ms=5, path=sys.argv[2])
    jobs = round_robin([RandomAgent(), sf], eco_openings(8), 16)
    run_tournament(jobs, Path(sys.argv[1]), ArenaConfig(batch=1), InlineExecutor(), progress=False)
    """
)


@pytest.mark.slow
def test_interrupted_tournament_resumes_without_losing_or_repeating(tmp_path: Path) -> None:
    log = tmp_path / "games.pgn"
    args = [sys.executable, "-c", _RESUMABLE, str(log), debian_tool("stockfish")]
    proc = subprocess.Popen(args, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or log.read_bytes().count(b"[GameId") < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = log.read_bytes()
    played_before = before.count(b"[GameId")
    assert 3 <= played_before < 16, "the kill should land mid-tournament"
    with open(log, "ab") as f:  # a game cut off in mid-write
        f.write(b'[Event "elocap arena"]\n[Site "elocap"]\n[White "random"]\n\n1. e4 e5 2.')
    subprocess.run(args, check=True)
    games = _read_games(log)
    ids = [g.headers["GameId"] for g in games]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert log.read_bytes().startswith(before)  # earlier games untouched
    for game in games:
        _check_game(game, 300)
    assert str(games[0]) == str(chess.pgn.read_game(io.StringIO(before.decode())))
