"""The one door to pgx: every use of pgx in elocap (public or private) goes through this module.

pgx's chess rules are pure JAX functions, but most of the ones we need are private
(``pgx._src.games.chess``) and pgx renames them between versions. Here they get our own names,
on our own position type (``Position``), so a pgx upgrade means reading one file: this one.
A test (``tests/test_pgx_adapter.py``) checks that no other module of the package imports pgx.

Why ``data_pipeline``: it is the lowest layer that needs pgx (``encoding_jax`` computes the one
encoding from pgx states, and ``scaling.train`` reads legal masks through it); ``mcts`` and
``scaling`` import ``data_pipeline``, never the other way, so the adapter here keeps the import
graph acyclic. ``data_pipeline/__init__`` does not import it: the data stage runs without pgx.

Written and tested against pgx 2.6 (``TESTED_PGX``); importing this module with any other pgx
minor version fails with one line that says so. What it relies on:

- ``pgx._src.games.chess``: ``GameState`` (fields ``board``, ``color``, ``castling_rights``,
  ``en_passant``, ``halfmove_count``, ``hash_history``, ``legal_action_mask``, ``step_count``),
  ``Action._from_label``, ``_apply_move``, ``_flip``, ``_legal_action_mask``, ``_is_checked``,
  ``_zobrist_hash``, ``has_insufficient_pieces``, ``INIT_ZOBRIST_HASH``,
  ``MAX_TERMINATION_STEPS``;
- ``pgx.chess``: ``Chess`` (``init``, ``step``) and ``State`` (``_x``, the ``GameState``; public
  ``legal_action_mask``, ``terminated``).

Conventions (pgx's): squares are numbered ``file * 8 + rank`` (a1=0, a2=1, ..., h8=63) and the
board is kept in the mover's frame, flipped vertically after every move; pieces are 1..6
(pawn..king), positive for the mover's, negative for the opponent's. Every function takes ONE
position or game; ``jax.vmap`` it for a batch (the ``State`` field readers work on any batch).
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import pgx

__all__ = [
    "MAX_PLIES",
    "SEED_HASH",
    "TESTED_PGX",
    "Position",
    "State",
    "check_tested_version",
    "env_legal_mask",
    "hash_history",
    "in_check",
    "init",
    "initial_position",
    "insufficient_material",
    "legal_mask",
    "play",
    "plies",
    "position",
    "requirement",
    "rules_legal_mask",
    "step",
    "terminated",
    "zobrist_hash",
]

TESTED_PGX = (2, 6)  # the pgx release prefix this module is written and tested against


def requirement(package: str, tested: tuple[int, ...]) -> str:
    """The pip requirement of the tested range: ``pgx>=2.6,<2.7`` for ``("pgx", (2, 6))``."""
    upper = (*tested[:-1], tested[-1] + 1)
    return f"{package}>={'.'.join(map(str, tested))},<{'.'.join(map(str, upper))}"


def check_tested_version(package: str, installed: str, tested: tuple[int, ...], where: str) -> None:
    """Raises ImportError, in one line, unless version ``installed`` of ``package`` starts with
    the ``tested`` release components (``where`` names the module that holds the assumptions).
    ``mcts.search`` uses it for mctx too."""
    match = re.match(r"\d+(\.\d+)*", installed)
    release = tuple(int(p) for p in match.group(0).split(".")) if match else ()
    if release[: len(tested)] != tested:
        raise ImportError(
            f"elocap is tested with {requirement(package, tested)}, but {package} {installed} "
            f"is installed: install the tested range, or read {where} (what it relies on) "
            "before widening it"
        )


check_tested_version("pgx", pgx.__version__, TESTED_PGX, "data_pipeline/pgx_rules.py")

# The private modules are imported only once the version is known to be the tested one.
import pgx.chess  # noqa: E402
from pgx._src.games import chess as _chess  # noqa: E402

State: TypeAlias = pgx.chess.State  # one pgx chess game (a batch under vmap)

MAX_PLIES = int(_chess.MAX_TERMINATION_STEPS)  # pgx ends every game after 512 plies (a draw)
# pgx seeds a new game's hash history with this constant, which is NOT the hash its own
# function gives the starting position (so pgx never counts a return to the start).
SEED_HASH = _chess.INIT_ZOBRIST_HASH  # uint32[2]


class Position(NamedTuple):
    """One position as pgx's rules read it (shapes unbatched; pgx's squares, mover's frame)."""

    board: jax.Array  # int32[64] +1..6 the mover's pawn..king, -1..-6 the opponent's, 0 empty
    color: jax.Array  # int32[] side to move: 0 white, 1 black
    castling: jax.Array  # bool[2, 2] [[mover Q, mover K], [opponent Q, opponent K]]
    en_passant: jax.Array  # int32[] square skipped by the last double push (any), -1 if none
    halfmove: jax.Array  # int32[] plies since the last capture or pawn move


def _game_state(p: Position) -> Any:
    """pgx's GameState of ``p`` (the fields the rule functions do not read keep pgx's defaults)."""
    return _chess.GameState(
        color=jnp.asarray(p.color, jnp.int32),
        board=jnp.asarray(p.board, jnp.int32),
        castling_rights=jnp.asarray(p.castling, jnp.bool_),
        en_passant=jnp.asarray(p.en_passant, jnp.int32),
        halfmove_count=jnp.asarray(p.halfmove, jnp.int32),
    )


def _position(gs: Any) -> Position:
    return Position(
        board=gs.board,
        color=gs.color,
        castling=gs.castling_rights,
        en_passant=gs.en_passant,
        halfmove=gs.halfmove_count,
    )


# --- rules on one position -------------------------------------------------------------------


def initial_position() -> Position:
    """The standard starting position, white to move."""
    return _position(_chess.GameState())


def legal_mask(p: Position) -> jax.Array:  # bool[4672]
    """The legal actions of ``p`` (pgx's move generator; all False when there are none)."""
    return _chess._legal_action_mask(_game_state(p))


def in_check(p: Position) -> jax.Array:  # bool[]
    """Whether the side to move is in check."""
    return _chess._is_checked(_game_state(p))


def insufficient_material(p: Position) -> jax.Array:  # bool[]
    """pgx's (OpenSpiel's) insufficient-material rule."""
    return jnp.asarray(_chess.has_insufficient_pieces(_game_state(p)), jnp.bool_)


def zobrist_hash(p: Position) -> jax.Array:  # uint32[2]
    """pgx's Zobrist hash of ``p`` (board, side to move, castling rights, en-passant square)."""
    return _chess._zobrist_hash(_game_state(p))


def play(p: Position, action: jax.Array) -> Position:
    """The position after ``action`` (int32[], in 0..4671; assumed legal), in the NEW mover's
    frame: pgx's move application followed by its board flip. History is the caller's."""
    gs = _chess._apply_move(_game_state(p), _chess.Action._from_label(action))
    return _position(_chess._flip(gs))


# --- pgx's environment and its State -----------------------------------------------------------


@functools.cache
def _env() -> Any:
    return pgx.chess.Chess()


def init(key: jax.Array) -> State:
    """A new pgx game (``key`` picks which player has white)."""
    return _env().init(key)


def step(state: State, action: jax.Array) -> State:
    """pgx's ``Env.step`` (an illegal action loses; a finished game stays as it is)."""
    return _env().step(state, action)


def position(state: State) -> Position:
    """The position of a pgx game (any batch shape)."""
    return _position(state._x)


def rules_legal_mask(state: State) -> jax.Array:  # bool[..., 4672]
    """The legal actions as pgx's rules give them (all False at checkmate and stalemate)."""
    return state._x.legal_action_mask


def env_legal_mask(state: State) -> jax.Array:  # bool[..., 4672]
    """pgx's public mask: the legal actions, but all True once pgx calls the game over."""
    return state.legal_action_mask


def terminated(state: State) -> jax.Array:  # bool[...]
    """Whether pgx calls the game over."""
    return state.terminated


def hash_history(state: State) -> jax.Array:  # uint32[..., 513, 2]
    """Zobrist hashes of this position and the ones before it (most recent first), padded with
    zeros and, at the start of a game, ``SEED_HASH``."""
    return state._x.hash_history


def plies(state: State) -> jax.Array:  # int32[...]
    """Plies played in the game (pgx's ``step_count``)."""
    return state._x.step_count
