"""The one position encoding (see ``data_pipeline.encoding``), computed in JAX from pgx's view of
a position (``data_pipeline.pgx_rules``, the one module that touches pgx).

pgx keeps its chess board in the mover's frame already: ``Position.board`` is ``int32[64]``
indexed file-major (``file * 8 + rank``, a1=0, a2=1, ..., h8=63), positive for the mover's pieces
(1..6 pawn..king), negative for the opponent's, and pgx flips it vertically after every move.
``castling`` is ``bool[2, 2]`` = [[mover Q, mover K], [opponent Q, opponent K]], ``en_passant``
the mover-frame pgx index of the square a pawn skipped on the last move (set on every double
push, legal capture or not; -1 otherwise), ``halfmove`` the clock.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from data_pipeline import pgx_rules
from data_pipeline.encoding import HALFMOVE_CAP, MOVE_ACTION, OBS_LEN
from data_pipeline.pgx_rules import Position

# python-chess square (rank * 8 + file) -> pgx square (file * 8 + rank); the map is an involution.
_TO_PGX = jnp.arange(64, dtype=jnp.int32).reshape(8, 8).T.reshape(64)  # [64]
_MOVE_ACTION = jnp.asarray(MOVE_ACTION)  # int32[64, 64], mover-frame python-chess squares
# Mover-frame python-chess squares of the castling pieces.
_E1, _A1, _H1, _E8, _A8, _H8 = 4, 0, 7, 60, 56, 63
_PAWN, _ROOK, _KING, _OPP = 1, 4, 6, 6  # our token values; opponent token = piece + _OPP

__all__ = [
    "OBS_LEN",
    "encode_pgx_state",
    "encode_position",
    "legal_action_mask_from_obs",
    "position_from_obs",
]


def encode_pgx_state(state: pgx_rules.State) -> jax.Array:  # uint8[OBS_LEN]
    """Encodes ONE pgx chess state (jit-able; ``jax.vmap`` it for a batch). The rules' legal
    mask is used (the public ``legal_action_mask`` is all True at terminal states)."""
    return encode_position(pgx_rules.position(state), pgx_rules.rules_legal_mask(state))


def encode_position(p: Position, legal: jax.Array) -> jax.Array:  # bool[4672] -> uint8[OBS_LEN]
    """Encodes ONE position, given its legal actions (which decide the en-passant token)."""
    board = p.board[_TO_PGX]  # int32[64], python-chess numbering in the mover's frame
    squares = jnp.where(board < 0, _OPP - board, board)  # int32[64], tokens 0..12

    # Castling rights, cleaned as python-chess does: king on e1/e8 and rook in its corner.
    cr = p.castling
    mover_king = squares[_E1] == _KING
    opp_king = squares[_E8] == _KING + _OPP
    castling = (
        (cr[0, 1] & mover_king & (squares[_H1] == _ROOK)).astype(jnp.int32)
        | (cr[0, 0] & mover_king & (squares[_A1] == _ROOK)).astype(jnp.int32) << 1
        | (cr[1, 1] & opp_king & (squares[_H8] == _ROOK + _OPP)).astype(jnp.int32) << 2
        | (cr[1, 0] & opp_king & (squares[_A8] == _ROOK + _OPP)).astype(jnp.int32) << 3
    )

    # En passant counts only if a pawn of the mover can legally capture on the square.
    ep_file = jnp.clip(p.en_passant // 8, 0, 7)  # the square is always on rank 6 (mover frame)
    to = 40 + ep_file
    files = ep_file + jnp.array([-1, 1])  # [2] files of the pawns that could capture
    on_board = (files >= 0) & (files < 8)  # [2]
    froms = 32 + jnp.clip(files, 0, 7)  # [2] their squares, on rank 5 (mover frame)
    actions = jnp.clip(_MOVE_ACTION[froms, to], 0)  # [2]
    capture = on_board & (squares[froms] == _PAWN) & legal[actions]
    ep = jnp.where((p.en_passant >= 0) & capture.any(), ep_file + 1, 0)

    halfmove = jnp.minimum(p.halfmove, HALFMOVE_CAP)
    extra = jnp.stack([castling, ep, halfmove])
    return jnp.concatenate([squares, extra]).astype(jnp.uint8)


def position_from_obs(obs: jax.Array, color: jax.Array | int = 0) -> Position:
    """The position of ONE encoded board (uint8[OBS_LEN]); ``color`` is the side to move
    (0 white, 1 black), which the encoding does not carry.

    Board in pgx's numbering and signs, castling rights, en passant (our token marks only LEGAL
    en-passant captures, which is all the rules need) and the halfmove clock."""
    tokens = obs.astype(jnp.int32)
    squares = tokens[:64]  # python-chess numbering, mover's frame
    board = jnp.where(squares > _OPP, _OPP - squares, squares)[_TO_PGX]  # int32[64], pgx signs
    c = tokens[64]
    castling = jnp.stack(
        [
            jnp.stack([(c >> 1) & 1, c & 1]),  # mover: queen side, king side
            jnp.stack([(c >> 3) & 1, (c >> 2) & 1]),  # opponent: queen side, king side
        ]
    ).astype(jnp.bool_)  # bool[2, 2]
    ep = tokens[65]
    return Position(
        board=board,
        color=jnp.asarray(color, jnp.int32),
        castling=castling,
        # pgx square (file * 8 + rank) of the skipped square, on rank 6 in the mover's frame
        en_passant=jnp.where(ep > 0, (ep - 1) * 8 + 5, -1),
        halfmove=tokens[66],
    )


def legal_action_mask_from_obs(obs: jax.Array) -> jax.Array:  # uint8[OBS_LEN] -> bool[4672]
    """The legal actions of ONE encoded position, by pgx's own move generator (jit-able;
    ``jax.vmap`` it for a batch). Equals ``encoding.legal_action_mask`` of the encoded board.
    Repetition history is not in the encoding and plays no part in which moves are legal."""
    return pgx_rules.legal_mask(position_from_obs(obs))
