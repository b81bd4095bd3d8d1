"""Fast replay of main-line SAN moves on raw bitboards, with python-chess as the referee.

``chess.Board.parse_san`` and ``push`` cost about 30 us a ply; a data build replays every ply of
every kept game, so this module keeps the position as twelve integer bitboards and resolves the
common case itself: a SAN move with exactly one pseudo-legal candidate that does not leave the
king in check. Anything else (castling, two candidates, no candidate, odd notation, a move into
check) is handed to python-chess on a board rebuilt from the bitboards, so python-chess decides
every hard case and names every error. Tests prove the replay equal to python-chess on every
ply of the real games.

Bitboards use python-chess square numbering (a1 = 0). ``pieces[c * 6 + p]`` holds colour ``c``
(0 white, 1 black) and piece ``p`` (0 pawn, 1 knight, 2 bishop, 3 rook, 4 queen, 5 king).
"""

from __future__ import annotations

import re

import chess

Raw = tuple[
    list[int], bool, int, int, int
]  # encoding.board_raw: pieces[12], turn, castling, ep, hmc
State = list  # [pieces[12], occ_c[2] (white, black), us (0 white), castling, ep square, halfmove]

_KNIGHT = chess.BB_KNIGHT_ATTACKS
_KING = chess.BB_KING_ATTACKS
_PAWN_ATTACKS = chess.BB_PAWN_ATTACKS  # [colour][square]: squares a pawn of colour attacks
_RANK_ATT, _FILE_ATT, _DIAG_ATT = (
    chess.BB_RANK_ATTACKS,
    chess.BB_FILE_ATTACKS,
    chess.BB_DIAG_ATTACKS,
)
_RANK_MASK, _FILE_MASK, _DIAG_MASK = chess.BB_RANK_MASKS, chess.BB_FILE_MASKS, chess.BB_DIAG_MASKS
_FILES, _RANKS = chess.BB_FILES, chess.BB_RANKS
# The squares on a rook's and a bishop's lines through each square, on an empty board.
_ROOK_LINES = [_RANK_ATT[sq][0] | _FILE_ATT[sq][0] for sq in range(64)]
_BISHOP_LINES = [_DIAG_ATT[sq][0] for sq in range(64)]
# Castling bits (encoding.board_raw's layout) lost when a move starts or ends on a square.
_CASTLE_CLEAR = {chess.E1: 0b0011, chess.H1: 0b0001, chess.A1: 0b0010}
_CASTLE_CLEAR |= {chess.E8: 0b1100, chess.H8: 0b0100, chess.A8: 0b1000}
_CASTLE_ROOKS = ((chess.BB_H1, 0), (chess.BB_A1, 1), (chess.BB_H8, 2), (chess.BB_A8, 3))
_CASTLING_SAN = {b"O-O": 0, b"0-0": 0, b"O-O-O": 1, b"0-0-0": 1}  # king side 0, queen side 1
_CASTLING_BETWEEN = (chess.BB_F1 | chess.BB_G1, chess.BB_B1 | chess.BB_C1 | chess.BB_D1)
_START = chess.Board()
START_PIECES = [
    bb & _START.occupied_co[colour]
    for colour in (chess.WHITE, chess.BLACK)
    for bb in (
        _START.pawns,
        _START.knights,
        _START.bishops,
        _START.rooks,
        _START.queens,
        _START.kings,
    )
]
_SAN = re.compile(rb"^([NBRQK])?([a-h])?([1-8])?x?([a-h][1-8])(?:=([NBRQ]))?[+#]?$")
_PIECE_INDEX = {None: 0, b"N": 1, b"B": 2, b"R": 3, b"Q": 4, b"K": 5}
_PROMO = {None: 0, b"N": chess.KNIGHT, b"B": chess.BISHOP, b"R": chess.ROOK, b"Q": chess.QUEEN}


class ReplayError(ValueError):
    """A SAN move python-chess refuses; ``reason`` is 'illegal_move' or 'ambiguous_move'."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_MISSING = (-1, 0, 0, 0, 0)  # a sentinel for the parse cache
_PARSED: dict[bytes, tuple[int, int, int, int, int] | None] = {}
_PARSED_LIMIT = 1 << 16


def _parse(san: bytes) -> tuple[int, int, int, int, int] | None:
    """(piece index, from mask, to square, from-file or -1, promotion) of a plain SAN; None
    for castling and anything unusual (python-chess handles those). Cached."""
    parsed = _parse_uncached(san)
    if len(_PARSED) < _PARSED_LIMIT:
        _PARSED[san] = parsed
    return parsed


def _parse_uncached(san: bytes) -> tuple[int, int, int, int, int] | None:
    m = _SAN.match(san)
    if m is None:
        return None
    piece, file, rank, to, promo = m.groups()
    mask = chess.BB_ALL
    if file:
        mask &= _FILES[file[0] - 97]
    if rank:
        mask &= _RANKS[rank[0] - 49]
    if piece is None and rank:
        return None  # "e2e4"-like pawn notation: leave it to python-chess
    to_square = (to[1] - 49) * 8 + to[0] - 97
    return _PIECE_INDEX[piece], mask, to_square, file[0] - 97 if file else -1, _PROMO[promo]


def _attacked(sq: int, by: int, pieces: list[int], occ: int) -> bool:
    """Whether colour ``by`` (0 white, 1 black) attacks square ``sq`` with occupancy ``occ``."""
    o = by * 6
    if _KNIGHT[sq] & pieces[o + 1] or _KING[sq] & pieces[o + 5]:
        return True
    if _PAWN_ATTACKS[by][sq] & pieces[o]:  # python-chess colours: index 0 is black
        return True
    # Sliders: look attacks up only if one stands on a line through ``sq`` at all.
    queens = pieces[o + 4]
    rq = (pieces[o + 3] | queens) & _ROOK_LINES[sq]
    if rq and (_RANK_ATT[sq][_RANK_MASK[sq] & occ] | _FILE_ATT[sq][_FILE_MASK[sq] & occ]) & rq:
        return True
    bq = (pieces[o + 2] | queens) & _BISHOP_LINES[sq]
    return bool(bq and _DIAG_ATT[sq][_DIAG_MASK[sq] & occ] & bq)


def _candidates(p: int, to: int, us: int, pieces: list[int], occ: int) -> int:
    """Pseudo-legal origins for piece index ``p`` of colour ``us`` moving to ``to``."""
    own = pieces[us * 6 + p]
    if p == 1:
        return _KNIGHT[to] & own
    if p == 5:
        return _KING[to] & own
    if p == 2:
        return _DIAG_ATT[to][_DIAG_MASK[to] & occ] & own
    if p == 3:
        return (_RANK_ATT[to][_RANK_MASK[to] & occ] | _FILE_ATT[to][_FILE_MASK[to] & occ]) & own
    if p == 4:
        att = _RANK_ATT[to][_RANK_MASK[to] & occ] | _FILE_ATT[to][_FILE_MASK[to] & occ]
        return (att | _DIAG_ATT[to][_DIAG_MASK[to] & occ]) & own
    raise AssertionError("pawns are resolved by _pawn_origin")


def _pawn_origin(
    to: int, file: int, us: int, pieces: list[int], occ: int, them: int, ep: int
) -> int:
    """The origin of a pawn move (capture if ``file`` >= 0), or -1 if there is none."""
    step = -8 if us == 0 else 8
    if file >= 0:
        frm = to + step + (file - (to & 7))
        if abs(file - (to & 7)) != 1 or not 0 <= frm < 64:
            return -1
        if not pieces[us * 6] >> frm & 1 or not (them >> to & 1 or to == ep):
            return -1
        return frm
    if occ >> to & 1:
        return -1
    frm = to + step
    if 0 <= frm < 64 and pieces[us * 6] >> frm & 1:
        return frm
    double_rank = 3 if us == 0 else 4
    if (to >> 3) == double_rank and not occ >> frm & 1 and pieces[us * 6] >> (frm + step) & 1:
        return frm + step
    return -1


Move = tuple[int, int, int]  # (from square, to square, promotion piece type or 0)


def replay(sans: list[bytes]) -> tuple[list[Raw], list[Move]]:
    """Replays SAN moves from the start; per ply, the encoder inputs before the move and the move.

    Raises ReplayError (with python-chess's verdict) at the first move that is not legal. The
    fast path is written out inline: this loop runs once per position of every kept game.
    """
    pieces = list(START_PIECES)
    occ_c = [sum(pieces[:6]), sum(pieces[6:])]  # white, black
    us, castling, ep, halfmove, legal_ep = 0, 0b1111, -1, 0, -1
    raws: list[Raw] = []
    moves: list[Move] = []
    parsed_cache = _PARSED
    for ply, san in enumerate(sans):
        raws.append((pieces, us == 0, castling, legal_ep, halfmove))
        new = pieces[:]
        own, their = occ_c[us], occ_c[1 - us]
        parsed = parsed_cache.get(san, _MISSING)
        if parsed is _MISSING:
            parsed = _parse(san)
        frm = -1
        if parsed is not None:
            p, mask, to, file, promo = parsed
            if own >> to & 1:
                frm = -1  # onto our own piece: python-chess will say why
            elif p == 0:
                frm = _pawn_origin(to, file, us, new, own | their, their, ep)
                if frm >= 0 and (promo != 0) != ((to >> 3) == (7 if us == 0 else 0)):
                    frm = -1
            elif not promo:
                cands = _candidates(p, to, us, new, own | their) & mask
                if cands and not cands & (cands - 1):
                    frm = cands.bit_length() - 1
        if frm >= 0:  # one pseudo-legal candidate: play it on the copy, then check the king
            o, e = us * 6, 6 - us * 6
            fb, tb = 1 << frm, 1 << to
            captured = their & tb
            if captured:
                for i in range(e, e + 6):
                    if new[i] & tb:
                        new[i] ^= tb
                        break
                their ^= tb
            new[o + p] ^= fb
            new[o + promo - 1 if promo else o + p] |= tb
            own ^= fb | tb
            if p == 0 and to == ep and not captured:  # en passant
                cap = 1 << (to - 8 if us == 0 else to + 8)
                new[e] ^= cap
                their ^= cap
                captured = cap
            if _attacked(new[o + 5].bit_length() - 1, 1 - us, new, own | their):
                frm = -1
        if frm >= 0:
            occ_c = [own, their] if us == 0 else [their, own]
            if castling:
                castling &= ~(_CASTLE_CLEAR.get(frm, 0) | _CASTLE_CLEAR.get(to, 0))
            ep = (frm + to) >> 1 if p == 0 and (to - frm == 16 or frm - to == 16) else -1
            halfmove = 0 if p == 0 or captured else halfmove + 1
            us = 1 - us
            move: Move = (frm, to, promo)
        else:
            state: State = [pieces, occ_c, us, castling, ep, halfmove]
            castle = _castling(san, state)
            if castle is not None:
                move = castle
            else:  # python-chess decides
                ref = _referee(san, state, ply)
                move = (ref.from_square, ref.to_square, ref.promotion or 0)
            state = [pieces[:], occ_c[:], us, castling, ep, halfmove]
            _apply(state, -1, *move)
            new, occ_c, us, castling, ep, halfmove = state
        pieces = new
        moves.append(move)
        legal_ep = -1 if ep < 0 else _legal_ep_file(ep, us, pieces, occ_c)
    return raws, moves


def _castling(san: bytes, s: State) -> Move | None:
    """The king's move of a legal castling written O-O or O-O-O; None for anything else."""
    side = _CASTLING_SAN.get(san)
    if side is None:
        return None
    pieces, occ_c, us, castling, _, _ = s
    if not castling >> (side + 2 * us) & 1:
        return None
    king = 4 if us == 0 else 60
    step = 1 if side == 0 else -1
    between = _CASTLING_BETWEEN[side] << (56 * us)
    occ = occ_c[0] | occ_c[1]
    if occ & between or not pieces[us * 6 + 5] >> king & 1:
        return None
    for sq in (king, king + step, king + 2 * step):  # the king may not pass through check
        if _attacked(sq, 1 - us, pieces, occ):
            return None
    return (king, king + 2 * step, 0)


def _apply_checked(s: State, p: int, frm: int, to: int, promo: int) -> bool:
    """Applies a pseudo-legal move to ``s`` in place; False if it leaves our king attacked."""
    us = s[2]
    _apply(s, p, frm, to, promo)
    pieces, occ_c = s[0], s[1]
    king = pieces[us * 6 + 5].bit_length() - 1
    return not _attacked(king, 1 - us, pieces, occ_c[0] | occ_c[1])


def _apply(s: State, p: int, frm: int, to: int, promo: int) -> None:
    """Plays a move of piece index ``p`` (-1: look it up) on state ``s`` in place."""
    pieces, occ_c, us, castling, ep, halfmove = s
    o, e = us * 6, 6 - us * 6
    fb, tb = 1 << frm, 1 << to
    if p < 0:
        p = next(i for i in range(6) if pieces[o + i] & fb)
    captured = bool(occ_c[1 - us] & tb)
    if captured:
        for i in range(e, e + 6):
            if pieces[i] & tb:
                pieces[i] ^= tb
                break
        occ_c[1 - us] ^= tb
    pieces[o + p] ^= fb
    pieces[o + (promo - 1 if promo else p)] |= tb
    occ_c[us] ^= fb | tb
    if p == 0 and to == ep and not captured:  # en passant: the captured pawn is behind ``to``
        cap = 1 << (to - 8 if us == 0 else to + 8)
        pieces[e] ^= cap
        occ_c[1 - us] ^= cap
        captured = True
    if p == 5 and abs(to - frm) == 2:  # castling: move the rook too
        rook_from, rook_to = (frm + 3, frm + 1) if to > frm else (frm - 4, frm - 1)
        rb = (1 << rook_from) | (1 << rook_to)
        pieces[o + 3] ^= rb
        occ_c[us] ^= rb
    if castling:
        s[3] = castling & ~(_CASTLE_CLEAR.get(frm, 0) | _CASTLE_CLEAR.get(to, 0))
    s[2] = 1 - us
    s[4] = (frm + to) >> 1 if p == 0 and abs(to - frm) == 16 else -1
    s[5] = 0 if p == 0 or captured else halfmove + 1


def _legal_ep_file(ep: int, us: int, pieces: list[int], occ_c: list[int]) -> int:
    """File of ``ep`` if colour ``us`` has a legal en-passant capture there, else -1."""
    if ep < 0:
        return -1
    attackers = _PAWN_ATTACKS[us][ep] & pieces[us * 6]
    while attackers:
        frm = attackers.bit_length() - 1
        attackers &= ~(1 << frm)
        trial = [pieces[:], occ_c[:], us, 0, ep, 0]
        if _apply_checked(trial, 0, frm, ep, 0):
            return ep & 7
    return -1


def _referee(san_bytes: bytes, s: State, ply: int) -> chess.Move:
    """python-chess's reading of ``san`` in state ``s``; raises ReplayError if it refuses."""
    board = to_board(s, ply)
    san = san_bytes.decode("ascii")
    try:
        return board.parse_san(san)
    except chess.AmbiguousMoveError:
        raise ReplayError("ambiguous_move", f"ply {ply}: {san} in {board.fen()}") from None
    except ValueError:
        raise ReplayError("illegal_move", f"ply {ply}: {san} in {board.fen()}") from None


def to_board(s: State, ply: int = 0) -> chess.Board:
    """A python-chess board holding state ``s`` reached after ``ply`` plies."""
    pieces, occ_c, us, castling, ep, halfmove = s
    board = chess.Board.empty()
    board.pawns, board.knights, board.bishops = (pieces[i] | pieces[i + 6] for i in range(3))
    board.rooks, board.queens, board.kings = (pieces[i] | pieces[i + 6] for i in range(3, 6))
    board.occupied_co[chess.WHITE], board.occupied_co[chess.BLACK] = occ_c
    board.occupied = occ_c[0] | occ_c[1]
    board.turn = us == 0
    board.castling_rights = 0
    for rook, bit in _CASTLE_ROOKS:
        if castling >> bit & 1:
            board.castling_rights |= rook
    board.ep_square = ep if ep >= 0 else None
    board.halfmove_clock = halfmove
    board.fullmove_number = ply // 2 + 1
    return board
