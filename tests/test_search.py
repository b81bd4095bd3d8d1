"""``mcts.search``: with a uniform network (zero parameters: uniform policy, value 0) the search
finds mates in one and two by the real rules alone; the tree stays small; configs are checked."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import chess
import jax
import jax.numpy as jnp
import numpy as np
import pgx.experimental.chess as pgx_chess
import pytest

from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN, legal_action_mask, move_to_action
from mcts.search import SEARCH_POLICIES, SearchConfig, evaluate, search_policy, tree_memory
from scaling.model import NAMED_SIZES, PolicyValueNet, init_params

TINY = NAMED_SIZES["10k"]

# (FEN, the mating move; for a mate in two, its first move)
MATE_IN_ONE = [
    ("6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1", "a1a8"),  # back rank, white
    ("r5k1/5ppp/8/8/8/8/5PPP/6K1 b - - 0 1", "a8a1"),  # back rank, black
]
MATE_IN_TWO = [
    ("8/8/8/8/8/R2K4/8/2k5 w - - 0 1", "a3b3"),  # 1. Rb3 Kd1 2. Rb1#
    ("2K5/8/r2k4/8/8/8/8/8 b - - 0 1", "a6b6"),  # the same, colours reversed
]
POSITIONS = MATE_IN_ONE + MATE_IN_TWO


def _mates_in_one(board: chess.Board) -> list[chess.Move]:
    out = []
    for move in list(board.legal_moves):
        board.push(move)
        if board.is_checkmate():
            out.append(move)
        board.pop()
    return out


def _mate_in_two_keys(board: chess.Board) -> list[chess.Move]:
    """First moves after which every reply allows a mate in one."""
    keys = []
    for move in list(board.legal_moves):
        board.push(move)
        forced = not board.is_game_over()
        for reply in list(board.legal_moves) if forced else []:
            board.push(reply)
            forced = bool(_mates_in_one(board))
            board.pop()
            if not forced:
                break
        board.pop()
        if forced:
            keys.append(move)
    return keys


def test_positions_are_what_they_claim() -> None:
    for fen, uci in MATE_IN_ONE:
        assert _mates_in_one(chess.Board(fen)) == [chess.Move.from_uci(uci)], fen
    for fen, uci in MATE_IN_TWO:
        board = chess.Board(fen)
        assert not _mates_in_one(board), fen
        assert _mate_in_two_keys(board) == [chess.Move.from_uci(uci)], fen


@functools.cache
def _uniform() -> tuple[PolicyValueNet, Any]:
    params = jax.tree.map(jnp.zeros_like, init_params(TINY, jax.random.key(0)))
    return PolicyValueNet(TINY), params


@functools.cache
def _pgx_states() -> Any:
    """The positions as pgx states, read by pgx's own FEN parser."""
    states = [pgx_chess.from_fen(fen) for fen, _ in POSITIONS]
    return jax.tree.map(lambda *x: jnp.stack(x), *states)


# Both variants at 256 simulations. Gumbel considers every root move (at most 20 here): with the
# default 16 a uniform prior would leave the mating move out of the sample some of the time.
CONFIGS = {
    "alphazero": SearchConfig(kind="alphazero", num_simulations=256, temperature=0.0),
    "gumbel": SearchConfig(kind="gumbel", num_simulations=256, max_num_considered_actions=32),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_uniform_network_finds_mates(kind: str) -> None:
    net, params = _uniform()
    action, dist = search_policy(net, params, _pgx_states(), jax.random.key(3), CONFIGS[kind])
    action, dist = np.asarray(action), np.asarray(dist)  # int32[B], f32[B, 4672]
    for i, (fen, uci) in enumerate(POSITIONS):
        board = chess.Board(fen)
        mate = move_to_action(chess.Move.from_uci(uci), board.turn)
        legal = legal_action_mask(board)
        assert action[i] == mate, (kind, fen)
        assert dist[i, mate] == dist[i].max(), (kind, fen, dist[i][legal])
        assert dist[i].sum() == pytest.approx(1.0) and (dist[i][~legal] == 0).all()
        if kind == "alphazero":  # PUCT puts most of its visits on the winning move
            assert dist[i, mate] > 0.5, (fen, dist[i, mate])
        else:  # sequential halving gives its last two candidates equal visits: a tie at most
            assert (dist[i] == dist[i].max()).sum() <= 2, (fen, dist[i][legal])


@pytest.mark.slow
def test_value_scale_decides_whether_a_found_mate_outvotes_the_prior() -> None:
    """Gumbel acts on prior logits + sigma(q), sigma = (50 + max visits) * value_scale * q: with
    mctx's 0.1 a found mate (q = 1) adds ~5 nats, so a prior 8 nats against the mating move wins
    though every root move is searched; with value_scale = 1 the mate is played."""
    net, params = _uniform()
    boards = [chess.Board(fen) for fen, _ in MATE_IN_ONE]
    mates = [
        move_to_action(chess.Move.from_uci(u), b.turn)
        for (_, u), b in zip(MATE_IN_ONE, boards, strict=True)
    ]
    plane = mates[0] % 73  # the policy head's bias is per move plane (73 per from-square)
    assert all(m % 73 == plane for m in mates)
    for board, mate in zip(
        boards, mates, strict=True
    ):  # no other legal move shares the mate's plane
        others = [move_to_action(m, board.turn) for m in board.legal_moves]
        assert [a for a in others if a % 73 == plane] == [mate]
        assert len(others) <= 32
    params = jax.tree.map(lambda x: x, params)
    params["policy"]["bias"] = params["policy"]["bias"].at[plane].set(-8.0)
    states = jax.tree.map(lambda x: x[: len(MATE_IN_ONE)], _pgx_states())
    played = {}
    for scale in (0.1, 1.0):
        cfg = SearchConfig(
            num_simulations=32, max_num_considered_actions=32, value_scale=scale, temperature=0.0
        )
        action, _ = search_policy(net, params, states, jax.random.key(0), cfg)
        played[scale] = np.asarray(action).tolist()
    assert all(a != m for a, m in zip(played[0.1], mates, strict=True)), played
    assert played[1.0] == mates, played


def test_tree_memory_per_node() -> None:
    """What one simulation adds to the tree: the slot layout and the compact state keep it
    around 7.4 KiB, where pgx's state and all 4672 actions would take about 155 KiB."""
    net = PolicyValueNet(TINY)
    mem = tree_memory(net, SearchConfig(num_simulations=8), batch_size=4)
    assert 1024 < mem.embedding_bytes_per_node <= 1500
    assert mem.embedding_bytes_per_node < mem.bytes_per_node <= 8 * 1024
    assert mem.pgx_state_bytes > 40 * 1024
    assert mem.full_action_bytes_per_node + mem.pgx_state_bytes > 20 * mem.bytes_per_node


@pytest.mark.slow
def test_evaluate_feeds_the_rating_to_an_elo_network() -> None:
    cfg = dataclasses.replace(TINY, elo_buckets=30)
    net = PolicyValueNet(cfg)
    params = init_params(cfg, jax.random.key(1))
    obs = jnp.zeros((2, OBS_LEN), jnp.uint8)
    rated = jax.jit(lambda p, o, e: evaluate(net, p, o, e))  # one compilation for both ratings
    low, _ = rated(params, obs, 800)
    high, _ = rated(params, obs, 2400)
    unknown, value = jax.jit(lambda p, o: evaluate(net, p, o))(params, obs)
    assert low.shape == (2, NUM_ACTIONS) and value.shape == (2,)
    assert not np.allclose(low, high) and not np.allclose(low, unknown)
    assert ((value >= -1) & (value <= 1)).all()


def test_config_is_checked() -> None:
    assert set(SEARCH_POLICIES) == {"alphazero", "gumbel"}
    with pytest.raises(ValueError, match=r"search\.kind must be one of"):
        SearchConfig(kind="mcts")
    with pytest.raises(ValueError, match="num_simulations must be >= 1"):
        SearchConfig(num_simulations=0)
    with pytest.raises(ValueError, match="dirichlet_fraction"):
        SearchConfig(dirichlet_fraction=1.5)
    with pytest.raises(ValueError, match="temperature"):
        SearchConfig(temperature=-1.0)
    with pytest.raises(ValueError, match=r"search\.value_scale must be > 0"):
        SearchConfig(value_scale=0.0)
    with pytest.raises(ValueError, match=r"search\.value_rescale must be true or false"):
        SearchConfig(value_rescale=1)  # type: ignore[arg-type]


def test_repetition_penalty_is_contempt_for_the_mover_who_repeats() -> None:
    """Black to move can complete a threefold repetition (Nf6-g8): with a uniform network every
    move is worth 0 and the improved policy is flat; with a penalty the repeating move's
    reward is -penalty for Black, and the policy target all but drops it."""
    from mcts import env
    from mcts.search import search

    board = chess.Board()
    for uci in ["g1f3", "g8f6", "f3g1", "f6g8", "g1f3", "g8f6", "f3g1"]:
        board.push_uci(uci)
    repeat = move_to_action(chess.Move.from_uci("f6g8"), board.turn)
    state = env.from_boards([board])
    child, reward = env.step(jax.tree.map(lambda x: x[0], state), jnp.int32(repeat))
    assert env.REASONS[int(child.reason)] == "threefold_repetition" and float(reward) == 0.0
    net, params = _uniform()
    moves = np.asarray(state.moves[0])
    slot, legal = int(np.flatnonzero(moves == repeat)[0]), moves < NUM_ACTIONS
    target = {}
    for penalty in (0.0, 0.5):
        cfg = SearchConfig(
            num_simulations=64,
            max_num_considered_actions=32,
            temperature=0.0,
            repetition_penalty=penalty,
        )
        target[penalty] = np.asarray(search(net, params, state, jax.random.key(0), cfg).policy[0])
    np.testing.assert_allclose(target[0.0][legal], 1 / legal.sum(), rtol=1e-5)
    others = np.delete(target[0.5], slot)[np.delete(legal, slot)]
    assert target[0.5][slot] < 0.01 * others.min()
    with pytest.raises(ValueError, match=r"search\.repetition_penalty must be in \[0, 1\]"):
        SearchConfig(repetition_penalty=-0.1)
