"""``mcts.selfplay``: every move of a batch of self-play games is legal by python-chess, the
recorded positions are python-chess's, and the results, reasons and per-position outcomes agree
with python-chess's reading of the finished games (including resignations and the length cap)."""

from __future__ import annotations

import dataclasses
from typing import Any

import chess
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline.encoding import NUM_ACTIONS, action_to_move, encode_board, move_to_action
from mcts import env
from mcts.env import REASONS
from mcts.search import SearchConfig
from mcts.selfplay import (
    GameEnds,
    SelfPlayConfig,
    Trajectory,
    game_ends,
    network_evaluations,
    play_games,
)
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params
from tests.conftest import material_balance, rules_ending

TINY = NAMED_SIZES["10k"]
# Openings of odd and even length: some games start with black to move.
OPENINGS = [[], ["e2e4"], ["d2d4", "d7d5"], ["g1f3"], [], ["e2e4", "c7c5", "g1f3"], [], []]
# Zero parameters: a uniform policy and value 0, so the root value (about 0) is below
# resign_value and every game allowed to resign does so at once; the others play on. Four
# simulations of a uniform network play nearly random chess, which ends in many ways.
CFG = SelfPlayConfig(
    batch_size=len(OPENINGS),
    max_plies=160,
    search=SearchConfig(kind="gumbel", num_simulations=4),
    resign_value=0.5,
    no_resign_fraction=0.75,
)


@pytest.fixture(scope="module")
def games() -> Trajectory:
    net = PolicyValueNet(TINY)
    params = jax.tree.map(jnp.zeros_like, init_params(TINY, jax.random.key(0)))
    start = env.init_openings(OPENINGS)
    play = jax.jit(play_games, static_argnames=("net", "cfg"))
    traj = play(net, params, jax.random.key(11), CFG, start)
    return jax.tree.map(np.asarray, traj)


@pytest.mark.slow
def test_moves_are_legal_and_outcomes_agree_with_python_chess(games: Trajectory) -> None:
    t_max = CFG.max_plies
    assert games.obs.shape == (t_max, CFG.batch_size, 67)
    assert games.policy.shape == games.moves.shape == (t_max, CFG.batch_size, env.MAX_MOVES)
    seen = set()
    want_ends: dict[str, int] = {}
    want_false = 0
    for b, opening in enumerate(OPENINGS):
        board = chess.Board()
        for uci in opening:
            board.push_uci(uci)
        n = int(games.length[b])
        assert games.valid[:n, b].all() and not games.valid[n:, b].any()
        for t in range(n):
            np.testing.assert_array_equal(games.obs[t, b], encode_board(board))
            legal = sorted(move_to_action(m, board.turn) for m in board.legal_moves)
            assert games.moves[t, b, : len(legal)].tolist() == legal
            assert (games.moves[t, b, len(legal) :] == NUM_ACTIONS).all()
            policy = games.policy[t, b]
            assert policy.sum() == pytest.approx(1.0, abs=1e-5)
            assert (policy[len(legal) :] == 0).all()
            white = 1 if board.turn else -1
            assert games.outcome[t, b] == games.result[b] * white, (b, t)
            if int(games.action[t, b]) == NUM_ACTIONS:  # resigned here
                assert t == n - 1
                break
            assert rules_ending(board) == "running", (b, t, board.fen())
            move = action_to_move(int(games.action[t, b]), board)
            assert move in board.legal_moves, (b, t, move, board.fen())
            board.push(move)
        reason = REASONS[int(games.reason[b])]
        seen.add(reason)
        white_result = {True: 1, False: -1}
        if reason == "resigned":
            assert games.resign_allowed[b] and n == 1
            assert games.result[b] == -white_result[board.turn]  # the side to move resigned
        elif reason == "truncated":
            assert n == t_max and rules_ending(board) == "running"
            assert games.result[b] == 0
        else:
            assert rules_ending(board) == reason, (b, board.fen())
            if reason == "checkmate":
                assert games.result[b] == -white_result[board.turn]
            else:
                assert games.result[b] == 0
        assert (games.outcome[n:, b] == 0).all()
        # would_resign: the side first searched below resign_value (every side here, since
        # the zero network's root value is about 0 < 0.5): the side to move at the start
        first = 0 if len(opening) % 2 == 0 else 1
        assert games.would_resign[b] == first, b
        want_ends[reason] = want_ends.get(reason, 0) + 1
        if not games.resign_allowed[b]:
            own = games.result[b] * (1 if first == 0 else -1)
            want_false += int(own >= 0)  # played on and did not lose: resigning was wrong
    ends = game_ends(games, resigning=True)
    assert ends.checkmates == want_ends.get("checkmate", 0)
    assert ends.repetitions == want_ends.get("threefold_repetition", 0)
    assert ends.resignations == want_ends.get("resigned", 0)
    assert ends.at_cap == want_ends.get("truncated", 0)
    assert ends.rule_draws == sum(
        want_ends.get(r, 0)
        for r in ("stalemate", "insufficient_material", "fifty_moves", "threefold_repetition")
    )
    assert ends.no_resign == ends.would_resign == int((~games.resign_allowed).sum())
    assert ends.false_resignations == want_false
    assert "resigned" in seen and len(seen) >= 3, seen
    assert not games.resign_allowed.all() and games.resign_allowed.any()
    plies = int(games.plies_run)
    assert plies == games.length.max()
    assert network_evaluations(games, CFG) == plies * CFG.batch_size * 5


@pytest.mark.slow
def test_adjudication_at_the_cap_scores_the_material_leader(games: Trajectory) -> None:
    """The same games (same key) with adjudication: only the games stopped at the cap change,
    each to a win for the side ahead by >= the margin by python-chess's count before and after
    the last move, or a draw."""
    cfg = dataclasses.replace(CFG, adjudicate_margin=2)
    play = jax.jit(play_games, static_argnames=("net", "cfg"))
    net = PolicyValueNet(TINY)
    params = jax.tree.map(jnp.zeros_like, init_params(TINY, jax.random.key(0)))
    judged = jax.tree.map(
        np.asarray, play(net, params, jax.random.key(11), cfg, env.init_openings(OPENINGS))
    )
    np.testing.assert_array_equal(judged.action, games.action)  # the same moves
    changed = 0
    for b, opening in enumerate(OPENINGS):
        before_reason, after_reason = REASONS[int(games.reason[b])], REASONS[int(judged.reason[b])]
        if before_reason != "truncated":
            assert (after_reason, judged.result[b]) == (before_reason, games.result[b])
            continue
        board = chess.Board()
        for uci in opening:
            board.push_uci(uci)
        for t in range(int(games.length[b])):
            board.push(action_to_move(int(games.action[t, b]), board))
        after = material_balance(board) * (1 if board.turn else -1)  # white's view
        last = board.pop()
        before = material_balance(board) * (1 if board.turn else -1)
        board.push(last)
        settled = min(abs(after), abs(before)) >= 2 and np.sign(after) == np.sign(before)
        expected = int(np.sign(after)) if settled else 0
        assert judged.result[b] == expected, (b, board.fen())
        assert after_reason == ("adjudicated" if expected else "truncated")
        n = int(judged.length[b])
        white = np.where((np.arange(n) + len(opening)) % 2 == 0, 1.0, -1.0)
        np.testing.assert_array_equal(judged.outcome[:n, b], white * expected)
        changed += expected != 0
    assert changed >= 1, "no game was adjudicated: the check did not run"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="resign_value must be in"):
        SelfPlayConfig(resign_value=-2.0)
    with pytest.raises(ValueError, match="max_plies must be >= 1"):
        SelfPlayConfig(max_plies=0)
    with pytest.raises(ValueError, match="no_resign_fraction"):
        SelfPlayConfig(no_resign_fraction=1.5)
    with pytest.raises(ValueError, match="adjudicate_margin must be >= 1"):
        SelfPlayConfig(adjudicate_margin=0)


def _ended(
    reason: list[str], result: list[int], allowed: list[bool], below: list[int]
) -> Trajectory:
    """A Trajectory holding only the fields game_ends reads."""
    fields: dict[str, Any] = dict.fromkeys(Trajectory.__dataclass_fields__)
    fields.update(
        reason=np.array([REASONS.index(r) for r in reason], np.int8),
        result=np.array(result, np.int8),
        resign_allowed=np.array(allowed),
        would_resign=np.array(below, np.int8),
    )
    return Trajectory(**fields)


def test_game_ends_counts_false_resignations_on_the_no_resign_games() -> None:
    """Worked by hand: of the 3 no-resign games in which a side fell below the threshold, the
    white one that drew and the black one that won would have resigned wrongly; the white one
    that lost was right. Games that could resign never count (their side did resign)."""
    traj = _ended(
        reason=[
            "checkmate",
            "threefold_repetition",
            "checkmate",
            "resigned",
            "truncated",
            "fifty_moves",
            "adjudicated",
        ],
        result=[-1, 0, -1, 1, 0, 0, 1],
        allowed=[False, False, False, True, False, True, True],
        below=[0, 0, 1, 1, -1, 0, -1],
    )
    ends = game_ends(traj, resigning=True)
    assert ends == GameEnds(
        games=7,
        checkmates=2,
        stalemates=0,
        repetitions=1,
        fifty_moves=1,
        insufficient_material=0,
        resignations=1,
        at_cap=2,
        adjudicated=1,
        no_resign=4,
        would_resign=3,
        false_resignations=2,
    )
    assert ends.rule_draws == 2 and ends.false_resignation_rate == pytest.approx(2 / 3)
    assert game_ends(traj, resigning=False).would_resign == 0
