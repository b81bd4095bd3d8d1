"""Chess on the device: pgx's rules on a compact state that search can store at every tree node.

pgx keeps about 45 KiB per game (an 8x8x119 float observation, two 4672-entry legal masks, 513
past hashes, 8 past boards); mctx stores the embedding of every node. ``ChessState`` keeps only
what the rules and the search need, about 1.4 KiB:

- the board, castling rights, en-passant square and halfmove clock, exactly as pgx keeps them
  (pgx's square numbering ``file * 8 + rank``, the board in the mover's frame);
- the Zobrist hashes (pgx's) of this position and the ``HISTORY - 1`` positions before it. A
  repetition cannot reach back past a capture or pawn move (the material or the pawns differ)
  and pgx ends a game when the halfmove clock reaches 100, so 101 hashes decide pgx's threefold
  rule exactly as its 513 do;
- the legal moves as a list of action indices (``MAX_MOVES`` slots, sorted, padded with
  ``NUM_ACTIONS``): search addresses a node's children by slot, so its per-action arrays have
  ``MAX_MOVES`` entries instead of 4672 (a legal chess position has at most 218 moves).

The rules are pgx's own functions (move application, move generation, hashing, insufficient
material), reached through ``data_pipeline.pgx_rules`` (the one module that touches pgx) and
composed as pgx's ``Chess.step`` composes them; the tests check this state against pgx's along
random games, and the encoding against python-chess. One deliberate difference: pgx's history
starts from a wrong hash of the initial position (see ``from_pgx``), so pgx misses repetitions
of the starting position; this module counts them.

Every function here is written for ONE game; ``jax.vmap`` it for a batch (``*_batch`` helpers
do that for the common cases). ``ChessState`` fields are shown unbatched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import chess
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from data_pipeline import pgx_rules
from data_pipeline.encoding import NUM_ACTIONS, OBS_LEN, encode_board, move_to_action
from data_pipeline.encoding_jax import encode_position, position_from_obs
from data_pipeline.pgx_rules import Position

__all__ = [
    "HISTORY",
    "MAX_MOVES",
    "MAX_PLIES",
    "REASONS",
    "ChessState",
    "from_boards",
    "from_obs",
    "from_pgx",
    "init_openings",
    "initial_state",
    "legal_mask",
    "material",
    "observe",
    "opening_actions",
    "play_openings",
    "sample_legal",
    "step",
]

MAX_MOVES = 256  # legal-move slots per position (the most in any legal chess position is 218)
HISTORY = 101  # hashes kept: this position and the 100 before it (pgx's fifty-move horizon)
MAX_PLIES = pgx_rules.MAX_PLIES  # pgx ends every game after 512 plies (a draw)

# Why a game ended (``ChessState.reason``; self-play adds the last two). Index = code.
REASONS: tuple[str, ...] = (
    "running",
    "checkmate",
    "stalemate",
    "insufficient_material",  # pgx's (OpenSpiel's) rule
    "fifty_moves",  # halfmove clock reached 100
    "threefold_repetition",
    "ply_limit",  # pgx's 512 plies
    "illegal_move",  # an action outside the legal list: the side that played it loses
    "resigned",  # self-play: the side to move resigned
    "truncated",  # self-play: stopped at the game-length cap, unfinished (a draw)
    "adjudicated",  # self-play: stopped at the cap, scored for the side ahead in material
)
RUNNING, CHECKMATE, ILLEGAL = 0, 1, REASONS.index("illegal_move")


@struct.dataclass
class ChessState:
    """One game's position and what the rules need of its past (shapes unbatched)."""

    board: jax.Array  # int8[64] pgx squares, mover's frame: +1..6 mover's P..K, -1..-6 opponent's
    color: jax.Array  # int8[] side to move: 0 white, 1 black
    castling: jax.Array  # bool[2, 2] [[mover Q, mover K], [opponent Q, opponent K]] (pgx's)
    en_passant: jax.Array  # int8[] pgx square skipped by the last double push (mover's frame), -1
    halfmove: jax.Array  # int32[] plies since the last capture or pawn move
    ply: jax.Array  # int32[] plies played since this state's game record began (pgx step_count)
    hashes: jax.Array  # uint32[HISTORY, 2] pgx Zobrist hashes, this position first; 0: none
    moves: jax.Array  # int16[MAX_MOVES] legal actions, ascending, padded with NUM_ACTIONS
    terminated: jax.Array  # bool[]
    result: jax.Array  # int8[] once terminated: -1 / 0 / +1 for the side to move
    reason: jax.Array  # int8[] index into REASONS; 0 while running


def _position(s: ChessState) -> Position:
    """The position, as the rule functions read it."""
    return Position(
        board=s.board.astype(jnp.int32),
        color=s.color.astype(jnp.int32),
        castling=s.castling,
        en_passant=s.en_passant.astype(jnp.int32),
        halfmove=s.halfmove,
    )


def _finish(p: Position, hashes: jax.Array, ply: jax.Array) -> ChessState:
    """The state of position ``p`` with ``hashes`` (row 0 = its own): legal moves and pgx's
    terminal rules (``Game.is_terminal``, ``Game.rewards``), with the reason recorded."""
    mask = pgx_rules.legal_mask(p)  # bool[4672]
    moves = _move_list(mask)
    no_moves = ~mask.any()
    checked = pgx_rules.in_check(p)
    repeats = (hashes == hashes[0]).all(axis=1).sum() - 1
    ends = jnp.stack(  # in REASONS order, from "checkmate"
        [
            no_moves & checked,
            no_moves & ~checked,
            pgx_rules.insufficient_material(p),
            p.halfmove >= 100,
            repeats >= 2,
            ply >= MAX_PLIES,
        ]
    )
    terminated = ends.any()
    reason = jnp.where(terminated, jnp.argmax(ends) + 1, RUNNING).astype(jnp.int8)
    return ChessState(
        board=p.board.astype(jnp.int8),
        color=jnp.asarray(p.color, jnp.int8),
        castling=p.castling,
        en_passant=jnp.asarray(p.en_passant, jnp.int8),
        halfmove=jnp.asarray(p.halfmove, jnp.int32),
        ply=jnp.asarray(ply, jnp.int32),
        hashes=hashes,
        moves=moves,
        terminated=terminated,
        result=jnp.where(reason == CHECKMATE, -1, 0).astype(jnp.int8),
        reason=reason,
    )


def _move_list(mask: jax.Array) -> jax.Array:  # bool[NUM_ACTIONS] -> int16[MAX_MOVES]
    """The legal actions in ascending order, padded with NUM_ACTIONS. Compacted in two steps
    (the at most 16 from-squares with a move, then their 16 x 73 moves): three times faster on
    CPU than one ``jnp.nonzero`` over all 4672 actions."""
    planes = NUM_ACTIONS // 64
    rows = mask.reshape(64, planes)  # [pgx from-square, move type]
    squares = jnp.nonzero(rows.any(axis=1), size=16, fill_value=64)[0]  # int32[16]
    sub = jnp.concatenate([rows, jnp.zeros((1, planes), jnp.bool_)])[squares].reshape(-1)
    ids = (squares[:, None] * planes + jnp.arange(planes)).reshape(-1)  # int32[16 * 73]
    slots = jnp.nonzero(sub, size=MAX_MOVES, fill_value=sub.shape[0])[0]  # int32[MAX_MOVES]
    return jnp.concatenate([ids, jnp.array([NUM_ACTIONS])])[slots].astype(jnp.int16)


def _first_hashes(p: Position) -> jax.Array:  # uint32[HISTORY, 2]
    return jnp.zeros((HISTORY, 2), jnp.uint32).at[0].set(pgx_rules.zobrist_hash(p))


def initial_state() -> ChessState:
    """The standard starting position, white to move."""
    p = pgx_rules.initial_position()
    return _finish(p, _first_hashes(p), jnp.int32(0))


def from_pgx(state: pgx_rules.State) -> ChessState:
    """The compact state of ONE pgx chess state (its last ``HISTORY`` hashes are kept).

    pgx seeds a game's history with a constant (``pgx_rules.SEED_HASH``) that is not the hash
    its own function gives the starting position, so pgx never counts a return to the start as
    a repetition; that entry is replaced by the true hash here."""
    hashes = pgx_rules.hash_history(state)[:HISTORY]  # uint32[HISTORY, 2]
    stale = (hashes == pgx_rules.SEED_HASH).all(axis=1, keepdims=True)
    hashes = jnp.where(stale, pgx_rules.zobrist_hash(pgx_rules.initial_position()), hashes)
    return _finish(pgx_rules.position(state), hashes, pgx_rules.plies(state))


def from_obs(obs: jax.Array, color: jax.Array) -> ChessState:  # uint8[67], int[] 0 white 1 black
    """The state of an encoded position (no history: repetitions count from here, ply 0)."""
    p = position_from_obs(obs, color)
    return _finish(p, _first_hashes(p), jnp.int32(0))


def legal_mask(state: ChessState) -> jax.Array:  # bool[NUM_ACTIONS]
    """The legal actions as a mask (all False once the game is over)."""
    mask = jnp.zeros(NUM_ACTIONS + 1, jnp.bool_).at[state.moves.astype(jnp.int32)].set(True)
    return mask[:NUM_ACTIONS] & ~state.terminated


PIECE_VALUES = (0, 1, 3, 3, 5, 9, 0)  # pgx piece codes: empty, P, N, B, R, Q, K (pawns)


def material(state: ChessState) -> jax.Array:  # int32[]
    """The mover's material minus the opponent's, in pawns (P 1, N 3, B 3, R 5, Q 9)."""
    board = state.board.astype(jnp.int32)  # mover's pieces > 0, the opponent's < 0
    values = jnp.asarray(PIECE_VALUES, jnp.int32)[jnp.abs(board)]
    return (jnp.sign(board) * values).sum()


def observe(state: ChessState) -> jax.Array:  # uint8[OBS_LEN]
    """The one encoding of the position (``data_pipeline.encoding_jax.encode_position``)."""
    return encode_position(_position(state), legal_mask(state))


def step(state: ChessState, action: jax.Array) -> tuple[ChessState, jax.Array]:
    """Plays ``action`` (int32[]); returns the new state and the reward (f32[]) of the player who
    moved: +1 for a checkmate, -1 for an illegal action (that player loses, as in pgx), else 0.
    A finished game stays as it is, with reward 0."""
    action = jnp.asarray(action, jnp.int32)
    legal = (state.moves.astype(jnp.int32) == action).any() & (action < NUM_ACTIONS)
    p = pgx_rules.play(_position(state), jnp.clip(action, 0, NUM_ACTIONS - 1))
    hashes = jnp.concatenate([pgx_rules.zobrist_hash(p)[None], state.hashes[:-1]])
    moved = _finish(p, hashes, state.ply + 1)
    forfeit = dataclasses.replace(
        state, terminated=jnp.bool_(True), result=jnp.int8(-1), reason=jnp.int8(ILLEGAL)
    )
    new = _select(legal, moved, forfeit)
    reward = jnp.where(legal, (moved.reason == CHECKMATE).astype(jnp.float32), -1.0)
    new = _select(state.terminated, state, new)
    return new, jnp.where(state.terminated, 0.0, reward)


def _select(pred: jax.Array, a: ChessState, b: ChessState) -> ChessState:
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


def sample_legal(key: jax.Array, state: ChessState) -> jax.Array:  # int32[]
    """A uniformly random legal action (``NUM_ACTIONS`` once the game is over)."""
    n = (state.moves < NUM_ACTIONS).sum()
    slot = jax.random.randint(key, (), 0, jnp.maximum(n, 1))
    return jnp.where(state.terminated, NUM_ACTIONS, state.moves[slot].astype(jnp.int32))


def play_openings(start: ChessState, actions: jax.Array) -> ChessState:
    """Plays ``actions`` (int32[L], padded with -1 at the end) from ``start`` (one game).
    An action outside the legal list ends the game with reason ``illegal_move``."""

    if actions.shape[0] == 0:
        return start
    count = jnp.sum(actions >= 0)  # the padding is at the end: only the moves are stepped

    def body(i: jax.Array, s: ChessState) -> ChessState:
        return step(s, actions[i])[0]

    return jax.lax.fori_loop(0, count, body, start)


def opening_actions(
    lines: Sequence[Sequence[chess.Move | str]], start: chess.Board | None = None
) -> np.ndarray:  # int32[N, L], -1 padded
    """Action indices of opening lines (UCI strings or moves) from ``start`` (default: the
    standard position), checked legal by python-chess; a clear ValueError otherwise."""
    rows: list[list[int]] = []
    for i, line in enumerate(lines):
        board = (start or chess.Board()).copy(stack=False)
        row = []
        for ply, item in enumerate(line):
            move = chess.Move.from_uci(item) if isinstance(item, str) else item
            if move not in board.legal_moves:
                raise ValueError(
                    f"opening {i}: move {ply + 1} ({move}) is illegal in {board.fen()}"
                )
            row.append(move_to_action(move, board.turn))
            board.push(move)
        rows.append(row)
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -1, np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _recent_root(board: chess.Board) -> chess.Board:
    """``board`` taken back to just before its last capture or pawn move (at most the moves it
    has), keeping the move stack up to there. Replaying that move too gives the en-passant
    square as pgx sets it (after any double push; python-chess's encoding keeps it only when a
    capture is legal), and pgx's hash of the position depends on it."""
    root = board.copy()
    for _ in range(min(board.halfmove_clock + 1, len(board.move_stack), HISTORY - 1)):
        root.pop()
    return root


_play_openings_batch = jax.jit(jax.vmap(lambda o, c, a: play_openings(from_obs(o, c), a)))


def init_openings(lines: Sequence[Sequence[chess.Move | str]]) -> ChessState:  # [N, ...]
    """Games started from the standard position and played through opening ``lines`` (UCI
    strings or moves; checked legal on the host). Host function."""
    if not lines:
        raise ValueError("init_openings needs at least one line")
    actions = opening_actions(lines)
    n = len(lines)
    obs = np.broadcast_to(encode_board(chess.Board()), (n, OBS_LEN))
    return _play_openings_batch(jnp.asarray(obs), jnp.zeros((n,), jnp.int32), jnp.asarray(actions))


def from_boards(
    boards: Sequence[chess.Board], *, recent: bool = False, pad_to: int | None = None
) -> ChessState:  # batched: [max(N, pad_to), ...]
    """States of python-chess boards, WITH their game history, replayed on the device from a
    root so that repetitions count as they do in pgx. Host function.

    ``recent=False``: the root is ``board.root()`` and the whole move stack is replayed (compiles
    once per (N, longest move stack)). ``recent=True``: the root is the position before the last
    capture or pawn move (at most ``HISTORY - 1`` plies back; no earlier position can repeat),
    replayed from actions of one width, ``HISTORY - 1`` (one compilation per batch size).
    ``pad_to`` repeats the last board up to that many rows (a fixed batch size for jit)."""
    if not boards:
        raise ValueError("from_boards needs at least one board")
    if recent:
        roots = [_recent_root(b) for b in boards]  # at most HISTORY - 1 plies back
        width = HISTORY - 1  # one width: the replay loop stops after the longest line
    else:
        roots = [b.root() for b in boards]
        width = max(len(b.move_stack) for b in boards)
    rows = max(len(boards), pad_to or 0)
    boards = [*boards, *[boards[-1]] * (rows - len(boards))]
    roots = [*roots, *[roots[-1]] * (rows - len(roots))]
    obs = np.stack([encode_board(r) for r in roots])  # uint8[N, 67]
    colors = np.array([0 if r.turn else 1 for r in roots], np.int32)
    actions = np.full((rows, width), -1, np.int32)
    for i, (root, b) in enumerate(zip(roots, boards, strict=True)):
        board = root.copy(stack=False)
        for ply, move in enumerate(b.move_stack[len(root.move_stack) :]):
            actions[i, ply] = move_to_action(move, board.turn)
            board.push(move)
    return _play_openings_batch(jnp.asarray(obs), jnp.asarray(colors), jnp.asarray(actions))
