"""The baseline of ``bench_selfplay.py``: plain AlphaZero PUCT over python-chess boards, with the
leaf evaluations of all games batched into one network call per simulation.

B games, each with a tree of Python nodes (per-move statistics in small numpy arrays). One
simulation descends every tree (python-chess push/pop), collects the B leaves, encodes them
(``encode_boards``) and evaluates them in ONE call of the same jitted network, then expands and
backs up. Conventions as in ``mcts.search``'s "alphazero": values ``p(win) - p(loss)`` of the
side to move, Q mapped from [-1, 1] to [0, 1], unvisited moves valued at their parent's value,
mctx's PUCT constants; pgx's ending rules (no legal move, insufficient material, halfmove clock
100, threefold repetition). A benchmark's reference implementation, not a library module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import chess
import numpy as np

from data_pipeline.encoding import OBS_LEN, board_raw, encode_boards, encode_raw, move_to_action

# obs uint8[B, 67] -> (policy logits f32[B, 4672], value f32[B]) for a fixed B
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

PB_C_INIT, PB_C_BASE = 1.25, 19652.0


class Node:
    """A position: its legal moves with, per move, prior, visits and summed value (from this
    node's mover's view), and the child nodes created so far."""

    __slots__ = ("children", "count", "expanded", "moves", "n", "priors", "q_sum", "terminal", "w")

    def __init__(self) -> None:
        self.expanded = False
        self.terminal: float | None = None  # the side to move's value once the game is over
        self.moves: list[chess.Move] = []
        self.priors = np.zeros(0)  # f64[M]
        self.n = np.zeros(0)  # f64[M] visits per move
        self.q_sum = np.zeros(0)  # f64[M] summed values per move
        self.children: list[Node | None] = []
        self.count = 0  # visits of this node
        self.w = 0.0  # summed values of this node


def _ending(board: chess.Board, moves: list[chess.Move]) -> float | None:
    """The side to move's value if pgx's rules end the game here, else None."""
    if not moves:
        return -1.0 if board.is_check() else 0.0
    if board.is_insufficient_material() or board.halfmove_clock >= 100:
        return 0.0
    return 0.0 if board.is_repetition(3) else None


def _select(node: Node) -> int:
    parent_value = node.w / max(node.count, 1)
    q = np.where(node.n > 0, node.q_sum / np.maximum(node.n, 1), parent_value)
    pb_c = PB_C_INIT + math.log((node.count + PB_C_BASE + 1) / PB_C_BASE)
    score = (q + 1) / 2 + pb_c * node.priors * math.sqrt(node.count) / (node.n + 1)
    return int(np.argmax(score))


def _expand(node: Node, board: chess.Board, logits: np.ndarray) -> None:
    turn = board.turn
    actions = [move_to_action(m, turn) for m in node.moves]
    x = logits[actions].astype(np.float64)
    p = np.exp(x - x.max())
    node.priors = p / p.sum()
    node.n = np.zeros(len(actions))
    node.q_sum = np.zeros(len(actions))
    node.children = [None] * len(actions)
    node.expanded = True


def _leaf_state(node: Node, board: chess.Board) -> None:
    """Fills in a new leaf's legal moves and whether the game is over there."""
    if not node.moves and node.terminal is None:
        node.moves = list(board.legal_moves)
        node.terminal = _ending(board, node.moves)


def _encode(raws: list[tuple[list[int], bool, int, int, int]]) -> np.ndarray:  # uint8[N, 67]
    return encode_raw(
        np.array([r[0] for r in raws], np.uint64).reshape(len(raws), 12),
        np.array([r[1] for r in raws], bool),
        np.array([r[2] for r in raws], np.uint8),
        np.array([r[3] for r in raws], np.int8),
        np.array([r[4] for r in raws], np.int32),
    )


def run_search(
    evaluate: Evaluate, boards: Sequence[chess.Board], num_simulations: int
) -> tuple[list[np.ndarray], int]:
    """PUCT from each board (python-chess, with its move stack); returns the root visit counts
    per legal move (``list(board.legal_moves)`` order) and the network evaluations made."""
    batch = len(boards)
    work = [b.copy() for b in boards]
    roots = [Node() for _ in boards]
    obs = np.zeros((batch, OBS_LEN), np.uint8)
    for root, board in zip(roots, work, strict=True):
        _leaf_state(root, board)
    logits, values = evaluate(encode_boards(work))
    for i, (root, board) in enumerate(zip(roots, work, strict=True)):
        root.count, root.w = 1, float(values[i])
        if root.terminal is None:
            _expand(root, board, logits[i])
    evaluations = batch
    for _ in range(num_simulations):
        paths: list[list[tuple[Node, int]]] = []
        leaves: list[Node] = []
        pending: list[int] = []  # games whose leaf needs the network
        raws = []
        for g, (root, board) in enumerate(zip(roots, work, strict=True)):
            node, path = root, []
            while node.expanded:
                i = _select(node)
                path.append((node, i))
                board.push(node.moves[i])
                child = node.children[i]
                if child is None:
                    child = node.children[i] = Node()
                node = child
            _leaf_state(node, board)
            if node.terminal is None:
                raws.append(board_raw(board))
                pending.append(g)
            paths.append(path)
            leaves.append(node)
        if raws:
            obs[: len(raws)] = _encode(raws)
        logits, values = evaluate(obs)
        evaluations += batch
        leaf_values = [node.terminal for node in leaves]
        for row, g in enumerate(pending):
            _expand(leaves[g], work[g], logits[row])
            leaf_values[g] = float(values[row])
        for g, path in enumerate(paths):
            v = float(leaf_values[g] or 0.0)  # the leaf's mover's view
            leaf = leaves[g]
            leaf.count += 1
            leaf.w += v
            for node, i in reversed(path):
                v = -v
                node.n[i] += 1
                node.q_sum[i] += v
                node.count += 1
                node.w += v
                work[g].pop()
    return [root.n.copy() for root in roots], evaluations
