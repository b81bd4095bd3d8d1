"""``mcts.stream``: continuous self-play. Every game a slot finishes is a legal game from the
standard position by python-chess, with its recorded positions, results, reasons and per-position
outcomes python-chess's; no searched row is lost or stored twice (rows searched = rows of the
finished games + rows of the games still in play); the state carried between calls survives a
checkpoint round trip."""

from __future__ import annotations

import chess
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline.encoding import NUM_ACTIONS, action_to_move, encode_board, move_to_action
from mcts.env import REASONS
from mcts.search import SearchConfig
from mcts.selfplay import SelfPlayConfig, Trajectory, game_ends
from mcts.stream import Stream
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params
from tests.conftest import material_balance, rules_ending

TINY = NAMED_SIZES["10k"]
# The zero network: uniform priors and value 0 < resign_value, so a game allowed to resign
# resigns at its first position; the others play nearly random chess to the short cap, which
# adjudicates by material (margin 2) or ends by the rules.
CFG = SelfPlayConfig(
    batch_size=4,
    max_plies=48,
    search=SearchConfig(kind="gumbel", num_simulations=4),
    resign_value=0.5,
    no_resign_fraction=0.6,
    adjudicate_margin=2,
)
PLIES = 40  # per call: games cross call boundaries


def _check_game(traj: Trajectory, j: int) -> str:
    """Replays finished game j with python-chess; returns its reason."""
    board = chess.Board()
    n = int(traj.length[j])
    assert traj.valid[:n, j].all() and not traj.valid[n:, j].any()
    before = after = 0
    for t in range(n):
        np.testing.assert_array_equal(traj.obs[t, j], encode_board(board))
        legal = sorted(move_to_action(m, board.turn) for m in board.legal_moves)
        assert traj.moves[t, j, : len(legal)].tolist() == legal
        assert traj.policy[t, j].sum() == pytest.approx(1.0, abs=1e-5)
        white = 1 if board.turn else -1
        assert traj.outcome[t, j] == traj.result[j] * white, (j, t)
        if int(traj.action[t, j]) == NUM_ACTIONS:  # resigned here
            assert t == n - 1
            break
        assert rules_ending(board) == "running", (j, t, board.fen())
        move = action_to_move(int(traj.action[t, j]), board)
        assert move in board.legal_moves
        before = material_balance(board) * (1 if board.turn else -1)
        board.push(move)
        after = material_balance(board) * (1 if board.turn else -1)
    reason = REASONS[int(traj.reason[j])]
    loser_white = -1 if board.turn else 1  # the side to move lost: white's result
    if reason == "resigned":
        assert traj.resign_allowed[j] and n == 1 and traj.result[j] == loser_white
    elif reason in ("truncated", "adjudicated"):
        assert n == CFG.max_plies and rules_ending(board) == "running"
        settled = min(abs(after), abs(before)) >= 2 and np.sign(after) == np.sign(before)
        assert traj.result[j] == (int(np.sign(after)) if settled else 0), board.fen()
        assert (reason == "adjudicated") == settled
    else:
        assert rules_ending(board) == reason, board.fen()
        assert traj.result[j] == (loser_white if reason == "checkmate" else 0)
    return reason


@pytest.fixture(scope="module")
def net_params() -> tuple[PolicyValueNet, object]:
    params = jax.tree.map(jnp.zeros_like, init_params(TINY, jax.random.key(0)))
    return PolicyValueNet(TINY), params


@pytest.mark.slow
def test_slots_play_games_back_to_back_and_lose_no_row(net_params: tuple) -> None:
    net, params = net_params
    stream = Stream(net, CFG, PLIES, jax.random.key(3))
    keys = jax.random.split(jax.random.key(5), 3)
    finished, reasons = 0, set()
    stored = 0
    for key in keys:
        traj, evaluations = stream.play(params, key)
        assert evaluations == PLIES * CFG.batch_size * 5
        for j in range(len(traj.length)):
            reasons.add(_check_game(traj, j))
        finished += len(traj.length)
        stored += int(traj.length.sum())
        ends = game_ends(traj, resigning=True)
        assert ends.games == len(traj.length)
    searched = len(keys) * PLIES * CFG.batch_size
    assert stored + int(stream.assembler.length.sum()) == searched
    assert finished > CFG.batch_size  # slots were reused
    assert {"resigned", "adjudicated"} <= reasons or {"resigned", "truncated"} <= reasons, reasons


@pytest.mark.slow
def test_the_carried_state_survives_a_checkpoint_round_trip(net_params: tuple) -> None:
    net, params = net_params
    k1, k2 = jax.random.split(jax.random.key(8))
    a = Stream(net, CFG, PLIES, jax.random.key(3))
    a.play(params, k1)
    saved = jax.tree.map(np.array, a.tree())  # copies: play() writes the held rows in place
    want, _ = a.play(params, k2)
    b = Stream(net, CFG, PLIES, jax.random.key(99))  # other slots, replaced by the saved ones
    b.load(saved)
    got, _ = b.play(params, k2)
    for name in ("obs", "moves", "policy", "action", "outcome", "length", "result", "reason"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


def test_iteration_plies_is_checked(net_params: tuple) -> None:
    net, _ = net_params
    with pytest.raises(ValueError, match="iteration_plies must be >= 1"):
        Stream(net, CFG, 0, jax.random.key(0))


@pytest.mark.slow
def test_the_threshold_in_force_is_an_argument_not_a_recompile(net_params: tuple) -> None:
    """The calibrated threshold reaches the compiled loop as an argument: at -0.5 the zero
    network's root values (about 0) are above it and nobody resigns; at the config's 0.5 the
    games that may resign do so at once."""
    net, params = net_params
    stream = Stream(net, CFG, 8, jax.random.key(3))
    low, _ = stream.play(params, jax.random.key(1), resign_value=-0.5)
    assert "resigned" not in {REASONS[int(r)] for r in low.reason}
    stream = Stream(net, CFG, 8, jax.random.key(3))
    high, _ = stream.play(params, jax.random.key(1), resign_value=0.5)
    resigned = [REASONS[int(r)] == "resigned" for r in high.reason]
    assert any(resigned) and all(high.resign_allowed[resigned])
