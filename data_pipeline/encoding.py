"""The one position and move encoding of elocap (numpy side; the JAX side is ``encoding_jax``).

This docstring is the contract every stage reads. Both implementations must produce exactly it.

Observation: ``uint8[OBS_LEN]`` with ``OBS_LEN = 67``, always in the MOVER's frame.

- ``tokens[0:64]``: one token per square. If black is to move the board is flipped vertically
  (rank r -> 7 - r, files unchanged), so the mover always plays "up". The token index is
  python-chess numbering in that frame (a1=0, b1=1, ..., h1=7, a2=8, ..., h8=63). Value: 0 empty;
  1..6 the mover's pawn, knight, bishop, rook, queen, king; 7..12 the opponent's pawn..king.
- ``tokens[64]``: castling rights in the mover's frame, python-chess semantics after cleaning
  (``has_kingside_castling_rights`` etc.): bit0 mover king-side, bit1 mover queen-side,
  bit2 opponent king-side, bit3 opponent queen-side.
- ``tokens[65]``: 0 if the mover has no LEGAL en-passant capture
  (``board.has_legal_en_passant()``), else 1 + file (1..8) of ``board.ep_square``.
- ``tokens[66]``: ``min(halfmove clock, 100)``.

Actions: ``int`` in ``[0, NUM_ACTIONS)`` with ``NUM_ACTIONS = 4672 = 64 * 73``, the index of pgx
chess's ``legal_action_mask`` (AlphaZero's layout, also used by mctx):
``action = from_index * 73 + plane``, all in the mover's frame (black's moves flipped vertically).

- ``from_index`` uses pgx's square numbering, file-major: ``file * 8 + rank`` (a1=0, a2=1, ...,
  a8=7, b1=8, ..., h8=63); NOT python-chess's ``rank * 8 + file``.
- planes 0..8: under-promotions, ``plane = 3 * piece + direction`` with piece 0 rook, 1 bishop,
  2 knight and direction 0 straight up, 1 capture towards the h-file, 2 towards the a-file.
- planes 9..64: queen-type moves, 7 distances (1..7) along each of 8 directions, in pgx's order:
  down (distance 7..1), up (1..7), towards a (7..1), towards h (1..7), down-a (7..1), up-h (1..7),
  up-a (7..1), down-h (1..7).
- planes 65..72: knight moves, (d_rank, d_file) = (-1,-2) (+1,-2) (-2,-1) (+2,-1) (-1,+2)
  (+1,+2) (-2,+1) (+2,+1).
- A pawn reaching the last rank with a queen-type plane is a queen promotion.
- Castling is the king's two-file move (e1g1, e1c1), python-chess's standard notation
  (Chess960 boards are not supported).
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np

__all__ = [
    "ACTION_FROM",
    "ACTION_PROMO",
    "ACTION_TO",
    "HALFMOVE_CAP",
    "MOVE_ACTION",
    "NUM_ACTIONS",
    "OBS_LEN",
    "action_to_move",
    "board_raw",
    "encode_board",
    "encode_boards",
    "encode_raw",
    "legal_action_mask",
    "move_to_action",
]

OBS_LEN: int = 67
NUM_ACTIONS: int = 4672  # 64 from-squares x 73 move types
HALFMOVE_CAP: int = 100

# Move-type planes 9..72 as (d_rank, d_file) in the mover's frame, in pgx's order.
_SEQ, _RSEQ, _ZERO = list(range(1, 8)), list(range(-7, 0)), [0] * 7
_KNIGHT = [(-1, -2), (1, -2), (-2, -1), (2, -1), (-1, 2), (1, 2), (-2, 1), (2, 1)]
_D_RANK = _RSEQ + _SEQ + _ZERO + _ZERO + _RSEQ + _SEQ + _SEQ[::-1] + _RSEQ[::-1]
_D_FILE = _ZERO + _ZERO + _RSEQ + _SEQ + _RSEQ + _SEQ + _RSEQ + _SEQ
_DELTAS = list(zip(_D_RANK, _D_FILE, strict=True)) + _KNIGHT  # 64 planes, from plane 9 on
_UNDER_PIECES = (chess.ROOK, chess.BISHOP, chess.KNIGHT)  # under-promotion plane // 3
_UNDER_DFILE = (0, 1, -1)  # under-promotion plane % 3 -> d_file


def _pgx_index(square: int) -> int:
    """python-chess square (rank * 8 + file) -> pgx square (file * 8 + rank)."""
    return (square & 7) * 8 + (square >> 3)


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    move_action = np.full((64, 64), -1, np.int32)  # [from, to] mover-frame python-chess squares
    action_from = np.full(NUM_ACTIONS, -1, np.int32)  # [action] -> from square (mover frame)
    action_to = np.full(NUM_ACTIONS, -1, np.int32)  # [action] -> to square, -1 if off the board
    action_promo = np.zeros(NUM_ACTIONS, np.int32)  # [action] -> under-promotion piece type or 0
    for sq in range(64):
        rank, file = sq >> 3, sq & 7
        base = _pgx_index(sq) * 73
        action_from[base : base + 73] = sq
        for plane in range(9):
            d_file = _UNDER_DFILE[plane % 3]
            if rank == 6 and 0 <= file + d_file < 8:
                action_to[base + plane] = sq + 8 + d_file
                action_promo[base + plane] = _UNDER_PIECES[plane // 3]
        for plane, (d_rank, d_file) in enumerate(_DELTAS, start=9):
            r, f = rank + d_rank, file + d_file
            if 0 <= r < 8 and 0 <= f < 8:
                action_to[base + plane] = r * 8 + f
                move_action[sq, r * 8 + f] = base + plane
    return move_action, action_from, action_to, action_promo


# MOVE_ACTION int32[64 from, 64 to]: action of a non-under-promotion move, -1 if none;
# ACTION_FROM / ACTION_TO / ACTION_PROMO int32[NUM_ACTIONS]: its squares and under-promotion piece.
# All squares are python-chess numbering in the mover's frame.
MOVE_ACTION, ACTION_FROM, ACTION_TO, ACTION_PROMO = _build_tables()
# Python lists: indexing them with ints is several times faster than numpy scalar indexing.
_MOVE_ACTION_L: list[int] = MOVE_ACTION.reshape(-1).tolist()
_ACTION_FROM_L: list[int] = ACTION_FROM.tolist()
_ACTION_TO_L: list[int] = ACTION_TO.tolist()
_ACTION_PROMO_L: list[int] = ACTION_PROMO.tolist()
_BLOCK = 4096  # positions encoded at once by encode_raw
_SWAP_COLOURS = np.array([6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5])  # plane permutation


def encode_raw(
    pieces: np.ndarray,  # uint64[N, 12]: white P,N,B,R,Q,K then black, python-chess squares
    turn: np.ndarray,  # bool[N], True = white to move
    castling: np.ndarray,  # uint8[N]: bit0 white K-side, bit1 white Q, bit2 black K, bit3 black Q
    ep_file: np.ndarray,  # int8[N]: file 0..7 of a LEGAL en-passant capture, -1 if none
    halfmove: np.ndarray,  # int32[N]
) -> np.ndarray:  # uint8[N, OBS_LEN]
    """Encodes N positions given as raw bitboards, vectorised (no Python loop over positions)."""
    n = pieces.shape[0]
    if n > _BLOCK:  # blocks that fit in cache: the bit planes of 4096 positions are 3 MiB
        return np.concatenate(
            [
                encode_raw(
                    *(a[i : i + _BLOCK] for a in (pieces, turn, castling, ep_file, halfmove))
                )
                for i in range(0, n, _BLOCK)
            ]
        )
    turn = np.asarray(turn, bool)
    bb = np.array(pieces, dtype="<u8").reshape(n, 12)  # a copy: rows are flipped in place
    black = ~turn
    if black.any():  # mover's pieces first; reversing a bitboard's bytes flips its ranks
        bb[black] = bb[black][:, _SWAP_COLOURS].byteswap()
    bits = np.unpackbits(bb.view(np.uint8).reshape(n, 12, 8), axis=-1, bitorder="little")
    bits = bits.reshape(n, 12, 64)  # [N, plane, square]
    out = np.empty((n, OBS_LEN), np.uint8)
    tokens = out[:, :64]
    np.copyto(tokens, bits[:, 0])
    for plane in range(1, 12):  # squares hold at most one piece: a weighted sum of the planes
        tokens += bits[:, plane] * np.uint8(plane + 1)
    c = np.asarray(castling, np.uint8)
    out[:, 64] = np.where(turn, c, ((c >> 2) | (c << 2)) & 15)
    out[:, 65] = np.asarray(ep_file, np.int16) + 1
    out[:, 66] = np.minimum(np.asarray(halfmove, np.int64), HALFMOVE_CAP)
    return out


def board_raw(board: chess.Board) -> tuple[list[int], bool, int, int, int]:
    """One row of ``encode_raw``'s inputs: (bitboards[12], turn, castling, ep_file, halfmove)."""
    black, white = board.occupied_co  # indexed by colour: [BLACK, WHITE]
    bbs = [board.pawns, board.knights, board.bishops, board.rooks, board.queens, board.kings]
    pieces = [bb & white for bb in bbs] + [bb & black for bb in bbs]
    cr = board.clean_castling_rights()
    castling = (
        bool(cr & chess.BB_H1)
        | bool(cr & chess.BB_A1) << 1
        | bool(cr & chess.BB_H8) << 2
        | bool(cr & chess.BB_A8) << 3
    )
    ep = board.ep_square
    ep_file = ep & 7 if ep is not None and board.has_legal_en_passant() else -1
    return pieces, board.turn, castling, ep_file, board.halfmove_clock


def encode_boards(boards: Sequence[chess.Board]) -> np.ndarray:
    """Encodes python-chess boards: uint8[N, OBS_LEN]."""
    rows = [board_raw(b) for b in boards]
    return encode_raw(
        np.array([r[0] for r in rows], np.uint64).reshape(len(rows), 12),
        np.array([r[1] for r in rows], bool),
        np.array([r[2] for r in rows], np.uint8),
        np.array([r[3] for r in rows], np.int8),
        np.array([r[4] for r in rows], np.int32),
    )


def encode_board(board: chess.Board) -> np.ndarray:
    """Encodes one python-chess board: uint8[OBS_LEN]."""
    return encode_boards([board])[0]


def move_to_action(move: chess.Move, turn: chess.Color) -> int:
    """The action index of ``move`` played by ``turn`` (queen promotions use the normal plane)."""
    f, t = move.from_square, move.to_square
    if not turn:
        f ^= 56  # flip ranks: the mover plays up
        t ^= 56
    promo = move.promotion
    if promo is None or promo == chess.QUEEN:
        action = _MOVE_ACTION_L[f << 6 | t]
    elif promo in _UNDER_PIECES and f >> 3 == 6 and t >> 3 == 7 and abs((t & 7) - (f & 7)) <= 1:
        direction = ((t & 7) - (f & 7)) % 3  # d_file 0, +1, -1 -> 0, 1, 2
        action = _pgx_index(f) * 73 + 3 * _UNDER_PIECES.index(promo) + direction
    else:
        action = -1
    if action < 0:
        raise ValueError(f"move {move} has no action index")
    return action


def action_to_move(action: int, board: chess.Board) -> chess.Move:
    """The python-chess move of ``action`` for the side to move on ``board`` (not checked legal)."""
    if not 0 <= action < NUM_ACTIONS or _ACTION_TO_L[action] < 0:
        raise ValueError(f"action {action} is not a move on the board")
    f, t, promo = _ACTION_FROM_L[action], _ACTION_TO_L[action], _ACTION_PROMO_L[action]
    last_rank = t >> 3 == 7
    if not board.turn:
        f ^= 56
        t ^= 56
    if promo == 0 and last_rank and board.pawns & chess.BB_SQUARES[f]:
        promo = chess.QUEEN
    return chess.Move(f, t, promo or None)


def legal_action_mask(board: chess.Board) -> np.ndarray:
    """bool[NUM_ACTIONS]: True at the action of every legal move of ``board``."""
    mask = np.zeros(NUM_ACTIONS, bool)
    turn = board.turn
    mask[[move_to_action(m, turn) for m in board.legal_moves]] = True
    return mask
