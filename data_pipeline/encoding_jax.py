"""The one position encoding (see ``data_pipeline.encoding``), computed in JAX from a pgx state.

pgx keeps its chess board in the mover's frame already: ``state._x.board`` is ``int32[64]``
indexed file-major (``file * 8 + rank``, a1=0, a2=1, ..., h8=63), positive for the mover's pieces
(1..6 pawn..king), negative for the opponent's, and pgx flips it vertically after every move.
``_x.castling_rights`` is ``bool[2, 2]`` = [[mover Q, mover K], [opponent Q, opponent K]],
``_x.en_passant`` the mover-frame pgx index of the square a pawn skipped on the last move (set on
every double push, legal capture or not; -1 otherwise), ``_x.halfmove_count`` the clock.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pgx.chess
from pgx._src.games import chess as _chess

from data_pipeline.encoding import HALFMOVE_CAP, MOVE_ACTION, OBS_LEN

# python-chess square (rank * 8 + file) -> pgx square (file * 8 + rank); the map is an involution.
_TO_PGX = jnp.arange(64, dtype=jnp.int32).reshape(8, 8).T.reshape(64)  # [64]
_MOVE_ACTION = jnp.asarray(MOVE_ACTION)  # int32[64, 64], mover-frame python-chess squares
# Mover-frame python-chess squares of the castling pieces.
_E1, _A1, _H1, _E8, _A8, _H8 = 4, 0, 7, 60, 56, 63
_PAWN, _ROOK, _KING, _OPP = 1, 4, 6, 6  # our token values; opponent token = piece + _OPP

__all__ = ["OBS_LEN", "encode_pgx_state", "legal_action_mask_from_obs"]


def encode_pgx_state(state: pgx.chess.State) -> jax.Array:  # uint8[OBS_LEN]
    """Encodes ONE pgx chess state (jit-able; ``jax.vmap`` it for a batch)."""
    x = state._x
    board = x.board[_TO_PGX]  # int32[64], python-chess numbering in the mover's frame
    squares = jnp.where(board < 0, _OPP - board, board)  # int32[64], tokens 0..12

    # Castling rights, cleaned as python-chess does: king on e1/e8 and rook in its corner.
    cr = x.castling_rights
    mover_king = squares[_E1] == _KING
    opp_king = squares[_E8] == _KING + _OPP
    castling = (
        (cr[0, 1] & mover_king & (squares[_H1] == _ROOK)).astype(jnp.int32)
        | (cr[0, 0] & mover_king & (squares[_A1] == _ROOK)).astype(jnp.int32) << 1
        | (cr[1, 1] & opp_king & (squares[_H8] == _ROOK + _OPP)).astype(jnp.int32) << 2
        | (cr[1, 0] & opp_king & (squares[_A8] == _ROOK + _OPP)).astype(jnp.int32) << 3
    )

    # En passant counts only if a pawn of the mover can legally capture on the square. pgx's own
    # mask is used (``_x``'s: the public ``legal_action_mask`` is all True at terminal states).
    ep_file = jnp.clip(x.en_passant // 8, 0, 7)  # the square is always on rank 6 (mover frame)
    to = 40 + ep_file
    files = ep_file + jnp.array([-1, 1])  # [2] files of the pawns that could capture
    on_board = (files >= 0) & (files < 8)  # [2]
    froms = 32 + jnp.clip(files, 0, 7)  # [2] their squares, on rank 5 (mover frame)
    actions = jnp.clip(_MOVE_ACTION[froms, to], 0)  # [2]
    capture = on_board & (squares[froms] == _PAWN) & x.legal_action_mask[actions]
    ep = jnp.where((x.en_passant >= 0) & capture.any(), ep_file + 1, 0)

    halfmove = jnp.minimum(x.halfmove_count, HALFMOVE_CAP)
    extra = jnp.stack([castling, ep, halfmove])
    return jnp.concatenate([squares, extra]).astype(jnp.uint8)


def legal_action_mask_from_obs(obs: jax.Array) -> jax.Array:  # uint8[OBS_LEN] -> bool[4672]
    """The legal actions of ONE encoded position, by pgx's own move generator (jit-able;
    ``jax.vmap`` it for a batch). Equals ``encoding.legal_action_mask`` of the encoded board.

    The pgx game state is rebuilt from the tokens: board in pgx's numbering and signs, castling
    rights, en passant (our token marks only LEGAL en-passant captures, which is all pgx needs)
    and the halfmove clock. Repetition history is not in the encoding and plays no part in
    which moves are legal.
    """
    tokens = obs.astype(jnp.int32)
    squares = tokens[:64]  # python-chess numbering, mover's frame
    board = jnp.where(squares > _OPP, _OPP - squares, squares)[_TO_PGX]  # int32[64], pgx signs
    c = tokens[64]
    castling_rights = jnp.stack(
        [
            jnp.stack([(c >> 1) & 1, c & 1]),  # mover: queen side, king side
            jnp.stack([(c >> 3) & 1, (c >> 2) & 1]),  # opponent: queen side, king side
        ]
    ).astype(jnp.bool_)  # bool[2, 2]
    ep = tokens[65]
    # pgx square (file * 8 + rank) of the skipped square, on rank 6 in the mover's frame
    en_passant = jnp.where(ep > 0, (ep - 1) * 8 + 5, -1)
    state = _chess.GameState(
        board=board,
        castling_rights=castling_rights,
        en_passant=en_passant,
        halfmove_count=tokens[66],
    )
    return _chess._legal_action_mask(state)
