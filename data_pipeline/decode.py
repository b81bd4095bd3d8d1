"""From a raw PGN game to training examples: movetext -> legal moves -> encoded positions.

Only the main line counts: comments, NAGs, variations (nested) and move numbers are dropped
before any move is parsed. Every position of the game is encoded with the one encoding of
``data_pipeline.encoding``; the numpy encoder runs once per game over all its plies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections.abc import Sequence

import chess
import numpy as np

from data_pipeline import encoding
from data_pipeline.filters import (
    TIME_CONTROL_CLASSES,
    FilterConfig,
    elo_pair,
    time_control_class,
)
from data_pipeline.pgn import RawGame
from data_pipeline.replay import Move, Raw, ReplayError, replay

# One training example: the position before a move, the move, and what is known about the game.
EXAMPLE_DTYPE = np.dtype(
    [
        ("obs", np.uint8, (encoding.OBS_LEN,)),  # the position, mover's frame
        ("action", np.uint16),  # index of the move played, in [0, NUM_ACTIONS)
        ("result", np.int8),  # game result for the mover: 1 win, 0 draw, -1 loss
        ("mover_elo", np.int16),  # the mover's rating; -1 if missing
        ("opponent_elo", np.int16),  # the opponent's rating; -1 if missing
        ("ply", np.uint16),  # 0 for white's first move
        ("time_control", np.uint8),  # index into filters.TIME_CONTROL_CLASSES
        ("game_id", np.uint64),  # stable hash of the game (see game_id)
    ]
)

# Each pattern starts with a literal byte, so the regex engine skips ahead at memchr speed.
_BRACE_COMMENT = re.compile(rb"\{[^}]*\}")
_LINE_COMMENT = re.compile(rb";[^\n]*")
_ESCAPE_LINE = re.compile(rb"(?m)^%[^\n]*")
_VARIATION = re.compile(rb"\([^()]*\)")
_MOVE_NUMBER = re.compile(rb"\d+\.(?:\.\.)?")
# A SAN move: group 1 is the move without check marks or annotation glyphs.
_SAN = re.compile(
    rb"((?:[NBRQK]?[a-h]?[1-8]?x?[a-h][1-8](?:=?[NBRQnbrq])?|O-O-O|O-O|0-0-0|0-0))[+#]?[!?]*"
)
_SKIP_TOKEN = re.compile(rb"\$\d+|[?!]{1,2}")  # NAGs and free-standing annotation glyphs
_END, _SKIP = 0, 1  # token classes besides SAN moves
_RESULT_TOKENS = (b"1-0", b"0-1", b"1/2-1/2", b"*")
# token -> its SAN move, _SKIP or _END: movetext repeats a small vocabulary, so each distinct
# token is classified by regex once.
_TOKEN_CLASS: dict[bytes, bytes | int] = {}
_TOKEN_CLASS_LIMIT = 1 << 18
_RESULT_TAG = {"1-0": 1, "0-1": -1, "1/2-1/2": 0}


class MovetextError(ValueError):
    """A game whose movetext cannot be turned into legal moves; ``reason`` names why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def main_line_sans(movetext: bytes) -> tuple[list[bytes], bytes]:
    """The main-line SAN moves of a movetext, in order, and its game-termination marker
    (``1-0``, ``0-1``, ``1/2-1/2`` or ``*``); raises MovetextError on non-PGN."""
    text = movetext
    if b"{" in text:
        text = _BRACE_COMMENT.sub(b" ", text)
    if b";" in text:
        text = _LINE_COMMENT.sub(b" ", text)
    if b"%" in text:
        text = _ESCAPE_LINE.sub(b" ", text)
    if b"{" in text or b"}" in text:
        raise MovetextError("bad_movetext", "unbalanced comment braces")
    while b"(" in text:
        text, n = _VARIATION.subn(b" ", text)
        if n == 0:
            raise MovetextError("bad_movetext", "unbalanced variation parentheses")
    if b")" in text:
        raise MovetextError("bad_movetext", "unbalanced variation parentheses")
    tokens = _MOVE_NUMBER.sub(b" ", text).split()
    sans: list[bytes] = []
    classes = _TOKEN_CLASS
    for i, token in enumerate(tokens):
        kind = classes.get(token)
        if kind is None:
            kind = _classify(token)
        if isinstance(kind, bytes):
            sans.append(kind)
        elif kind == _END:
            if i != len(tokens) - 1:
                raise MovetextError("bad_movetext", "text after the result")
            return sans, token
    raise MovetextError("no_termination", "the movetext ends without 1-0, 0-1, 1/2-1/2 or *")


def _classify(token: bytes) -> bytes | int:
    kind: bytes | int
    if token in _RESULT_TOKENS:
        kind = _END
    elif _SKIP_TOKEN.fullmatch(token):
        kind = _SKIP
    elif m := _SAN.fullmatch(token):
        kind = m.group(1)
    else:
        shown = token[:40].decode("utf-8", "replace")
        raise MovetextError("bad_movetext", f"not a move: {shown!r}")
    if len(_TOKEN_CLASS) < _TOKEN_CLASS_LIMIT:
        _TOKEN_CLASS[token] = kind
    return kind


def game_id(headers: dict[str, str], raw: RawGame) -> int:
    """A stable 64-bit id: the Lichess game URL if there is one, else the game's own bytes.

    Line endings and surrounding blank space are normalised, so the same game exported with CRLF
    or LF gets one id, and adding sources never changes the id (and split) of an existing game.
    """
    site = headers.get("Site", "")
    if "lichess.org/" in site:
        key = site.strip().encode()
    else:
        key = raw.data.replace(b"\r\n", b"\n").strip()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedGame:
    """One game's replayed main line and what the examples need from its headers."""

    raws: list[Raw]  # per ply, the encoder inputs of the position before the move
    moves: list[Move]  # per ply, (from, to, promotion) in python-chess squares
    white_result: int  # 1 white won, 0 draw, -1 black won
    white_elo: int  # -1 if missing
    black_elo: int  # -1 if missing
    time_control: int  # index into filters.TIME_CONTROL_CLASSES
    game_id: int  # see game_id()


def decode_game(raw: RawGame, headers: dict[str, str], cfg: FilterConfig) -> DecodedGame:
    """Replays one game's main line; raises MovetextError (with a reason) to reject it."""
    white_result = _RESULT_TAG.get(headers.get("Result", "").strip())
    if white_result is None:
        raise MovetextError("no_result", f"Result {headers.get('Result')!r}")
    sans, marker = main_line_sans(raw.movetext)
    if marker.decode() != headers.get("Result", "").strip():
        raise MovetextError("result_mismatch", f"Result tag {headers.get('Result')!r}, {marker!r}")
    if not sans and cfg.min_plies > 0:
        raise MovetextError("no_moves", "no moves")
    if len(sans) < cfg.min_plies:
        raise MovetextError("too_few_plies", f"{len(sans)} < {cfg.min_plies}")
    try:
        raws, moves = replay(sans)
    except ReplayError as e:
        raise MovetextError(e.reason, e.detail) from None
    w, b = elo_pair(headers)
    return DecodedGame(
        raws=raws,
        moves=moves,
        white_result=white_result,
        white_elo=-1 if w is None else w,
        black_elo=-1 if b is None else b,
        time_control=TIME_CONTROL_CLASSES.index(time_control_class(headers.get("TimeControl"))),
        game_id=game_id(headers, raw),
    )


def to_examples(games: Sequence[DecodedGame], cfg: FilterConfig) -> np.ndarray:
    """The examples of many games, ``EXAMPLE_DTYPE[N]``, encoded in one vectorised pass."""
    lengths = np.array([len(g.moves) for g in games], dtype=np.int64)
    n = int(lengths.sum())
    out = np.zeros(n, dtype=EXAMPLE_DTYPE)
    if n == 0:
        return out
    raws = [r for g in games for r in g.raws]
    pieces = np.fromiter(itertools.chain.from_iterable(r[0] for r in raws), np.uint64, n * 12)
    turn = np.fromiter((r[1] for r in raws), bool, n)
    out["obs"] = encoding.encode_raw(
        pieces.reshape(n, 12),
        turn,
        np.fromiter((r[2] for r in raws), np.uint8, n),
        np.fromiter((r[3] for r in raws), np.int8, n),
        np.fromiter((r[4] for r in raws), np.int32, n),
    )
    moves = np.fromiter(
        itertools.chain.from_iterable(m for g in games for m in g.moves), np.int64, n * 3
    ).reshape(n, 3)
    out["action"] = moves_to_actions(moves[:, 0], moves[:, 1], moves[:, 2], turn)
    per_game = np.array(
        [(g.white_result, g.white_elo, g.black_elo, g.time_control) for g in games], np.int64
    ).repeat(lengths, axis=0)
    white_result, w_elo, b_elo = per_game[:, 0], per_game[:, 1], per_game[:, 2]
    out["result"] = np.where(turn, white_result, -white_result)
    out["mover_elo"] = np.where(turn, w_elo, b_elo)
    out["opponent_elo"] = np.where(turn, b_elo, w_elo)
    out["ply"] = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out["time_control"] = per_game[:, 3]
    out["game_id"] = np.array([g.game_id for g in games], np.uint64).repeat(lengths)
    if cfg.elo_rule == "mover" and cfg.cap is not None:
        mover_elo = out["mover_elo"].astype(np.int64)
        out = out[(mover_elo >= 0) & (mover_elo <= cfg.cap)]
    return out


def moves_to_actions(
    frm: np.ndarray,  # int[N] python-chess from squares
    to: np.ndarray,  # int[N] python-chess to squares
    promo: np.ndarray,  # int[N] promotion piece type, 0 if none
    turn: np.ndarray,  # bool[N] True = white moved
) -> np.ndarray:  # uint16[N]
    """Vectorised ``encoding.move_to_action``."""
    flip = np.where(turn, 0, 56)
    f, t = frm ^ flip, to ^ flip
    actions = encoding.MOVE_ACTION[f, t]
    under = (promo != 0) & (promo != chess.QUEEN)
    if under.any():
        direction = ((t & 7) - (f & 7)) % 3  # d_file 0, +1, -1 -> 0, 1, 2
        pgx_from = (f & 7) * 8 + (f >> 3)
        under_action = pgx_from * 73 + 3 * (chess.ROOK - promo) + direction
        actions = np.where(under, under_action, actions)
    if (actions < 0).any():
        raise ValueError("a move without an action index")
    return actions.astype(np.uint16)
