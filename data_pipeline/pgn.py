"""Fast, robust splitting of a PGN byte stream into raw games, and header parsing.

The splitter works on bytes with C-speed regular expressions: it never decodes moves, so the
header pre-filter can reject a game before a single move is parsed, and the kept games can be
written out unchanged.

Game boundaries. A game starts at a header block: a run of lines that look like tag pairs
(``[Name "value"]``). Everything up to the next header block is the game (its movetext, comments,
blank lines). A header block is recognised even inside an unterminated ``{`` comment, so one
corrupted byte cannot swallow the rest of a file; real comments never hold a line that starts
with a tag pair. Bytes before the first header block of a stream that are not blank become a
game without headers (rejected downstream under a reason, never silently dropped).

A game ends at its main line's termination marker (``1-0``, ``0-1``, ``1/2-1/2`` or ``*`` outside
comments and variations). Text after the marker and before the next header block that is not
blank is not part of the game: it is split off as its own item, flagged ``between_games`` (so the
game's bytes stay valid PGN, and the stray text is counted under its own reason, not lost). A game
with no marker keeps everything up to the next header block (and is rejected downstream).

Robustness: a UTF-8 byte-order mark at the start is skipped; CRLF line endings work; tag values
are decoded as UTF-8 with replacement characters (the raw bytes are kept for output); a game larger
than ``max_game_bytes`` is cut off and reported as oversized instead of growing memory.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from typing import Protocol


class Readable(Protocol):
    """A binary stream: files, ``sys.stdin.buffer``, ``sources.HashingStream``."""

    def read(self, size: int = ..., /) -> bytes: ...


# A header block: one or more consecutive tag-pair lines, matched after the newline that ends the
# previous line (a literal first byte lets the regex engine skip ahead at memchr speed); a block
# at the very start of a buffer is matched by _HEADER_BLOCK_AT_START. ``[^\n]*\n`` keeps CRLF
# lines whole.
_TAG_LINES = rb'(?:\[[A-Za-z0-9_]+[ \t]*"[^\n]*(?:\n|\Z))+'
_HEADER_BLOCK = re.compile(rb"\n" + _TAG_LINES)
_HEADER_BLOCK_AT_START = re.compile(_TAG_LINES)
# One tag pair; the value allows escaped quotes and backslashes (PGN standard 8.1.1). The value
# pattern is written "unrolled" so that it runs at the speed of a character class.
_TAG = re.compile(r'\[([A-Za-z0-9_]+)[ \t]*"([^"\\\n]*(?:\\.[^"\\\n]*)*)"')
_ESCAPE = re.compile(r"\\(.)")
_BOM = b"\xef\xbb\xbf"
# Game-termination markers. _MOVETEXT_TOKEN walks a movetext left to right through what can hide a
# marker (brace comments, possibly unterminated; ';' and '%' comment lines; variations) and the
# markers themselves, each standing alone as a token (PGN standard 8.2.6).
_MARKERS = (b"1-0", b"0-1", b"1/2-1/2", b"*")
_MOVETEXT_TOKEN = re.compile(
    rb"\{[^}]*\}?|;[^\n]*|(?<![^\n])%[^\n]*|[()]"
    rb"|(?<![^\s)}\]])(?:1-0|0-1|1/2-1/2|\*)(?![^\s({;\[])"
)

DEFAULT_BLOCK_BYTES = 1 << 22  # 4 MiB reads: large enough to amortise Python overhead.
DEFAULT_MAX_GAME_BYTES = 64 << 20  # the 10 MB comment fits; a runaway file does not.


@dataclasses.dataclass(frozen=True, slots=True)
class RawGame:
    """One game as it appears in the source, before any move is parsed."""

    index: int  # ordinal of the game in its source stream, from 0 (stray text: its game's)
    data: bytes  # the game's bytes exactly as in the source (header block to the next game)
    header_end: int  # offset in ``data`` where the movetext starts
    oversized: bool = False  # True if the game was cut at max_game_bytes
    truncated: bool = False  # True if the stream failed inside this game
    between_games: bool = False  # not a game: text after a game's termination marker

    @property
    def header_bytes(self) -> bytes:
        return self.data[: self.header_end]

    @property
    def movetext(self) -> bytes:
        return self.data[self.header_end :]

    def headers(self) -> dict[str, str]:
        return parse_headers(self.header_bytes)


def parse_headers(block: bytes) -> dict[str, str]:
    """Tag pairs of a header block; as in python-chess, the last of a repeated tag wins."""
    text = block.decode("utf-8", "replace")
    headers = dict(_TAG.findall(text))
    if "\\" in text:
        headers = {k: _ESCAPE.sub(r"\1", v) for k, v in headers.items()}
    return headers


def iter_raw_games(
    stream: Readable,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    max_game_bytes: int = DEFAULT_MAX_GAME_BYTES,
    stray_text: bool = True,
) -> Iterator[RawGame]:
    """Yields the games of a binary PGN stream in order, with memory bounded by the largest game.

    With ``stray_text`` (the default), text after a game's termination marker is yielded as its
    own ``between_games`` item (see ``split_stray``); without it, it stays in the game's bytes
    for the caller to split (the build splits in its workers, to keep the driver fast).

    Errors raised by ``stream.read`` (a truncated archive, say) propagate after every complete
    game read so far has been yielded, and the incomplete tail, if any, as a game marked
    ``truncated`` (so that it is counted, not lost without a word).
    """
    index = 0
    for buf, bounds, kind in _split(stream, block_bytes, max_game_bytes):
        if kind != _GAMES:
            yield _special(buf, kind, index)
            index += 1
            continue
        for a, b in itertools.pairwise(bounds):
            game = _make_game(buf[a:b], index)
            if stray_text:
                yield from split_stray(game)
            else:
                yield game
            index += 1


@dataclasses.dataclass(frozen=True, slots=True)
class GameRun:
    """Consecutive games of a stream as one byte string and their bounds: what the build's
    driver ships to a worker (one bytes object instead of thousands of ``RawGame``)."""

    first_index: int  # the stream ordinal of the first game
    data: bytes  # the games' bytes, one after another (an oversized game: its first bytes)
    bounds: tuple[int, ...]  # game i is data[bounds[i]:bounds[i + 1]]
    special: tuple[tuple[int, int], ...] = ()  # (i, kind) of the games that are not plain

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def games(self) -> list[RawGame]:
        """The games, exactly as ``iter_raw_games(stream, stray_text=False)`` yields them."""
        data, first = self.data, self.first_index
        out = [
            _make_game(data[a:b], first + i)
            for i, (a, b) in enumerate(itertools.pairwise(self.bounds))
        ]
        for i, kind in self.special:
            out[i] = _special(out[i].data, kind, first + i)
        return out


def iter_game_runs(
    stream: Readable,
    run_games: int,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    max_game_bytes: int = DEFAULT_MAX_GAME_BYTES,
) -> Iterator[GameRun]:
    """The games of a stream in runs of ``run_games`` (the last may be shorter), split exactly as
    ``iter_raw_games(..., stray_text=False)`` splits them, without making a ``RawGame`` each: the
    cost per game is one offset (the header block search is the same C-speed regex).

    A read error propagates after the runs of every game before it, the truncated tail last."""
    parts: list[memoryview] = []
    bounds: list[int] = [0]
    special: list[tuple[int, int]] = []
    first = 0
    size = 0

    def flush() -> GameRun:
        nonlocal parts, bounds, special, first, size
        run = GameRun(
            first_index=first, data=b"".join(parts), bounds=tuple(bounds), special=tuple(special)
        )
        first += len(bounds) - 1
        parts, bounds, special, size = [], [0], [], 0
        return run

    try:
        for buf, cuts, kind in _split(stream, block_bytes, max_game_bytes):
            view = memoryview(buf)
            if kind != _GAMES:
                special.append((len(bounds) - 1, kind))
            i = 0
            while i < len(cuts) - 1:
                take = min(len(cuts) - 1 - i, run_games - (len(bounds) - 1))
                a, b = cuts[i], cuts[i + take]
                parts.append(view[a:b])
                bounds.extend(size + c - a for c in cuts[i + 1 : i + take + 1])
                size += b - a
                i += take
                if len(bounds) - 1 == run_games:
                    yield flush()
    except Exception:
        if len(bounds) > 1:
            yield flush()
        raise
    if len(bounds) > 1:
        yield flush()


_GAMES, _LEAD, _OVERSIZED, _TRUNCATED = 0, 1, 2, 3  # kinds of what ``_split`` yields


def _special(data: bytes, kind: int, index: int) -> RawGame:
    if kind == _LEAD:
        return RawGame(index=index, data=data, header_end=0)
    game = _make_game(data, index)
    if kind == _OVERSIZED:
        return dataclasses.replace(game, oversized=True)
    return dataclasses.replace(game, truncated=True)


def _split(
    stream: Readable, block_bytes: int, max_game_bytes: int
) -> Iterator[tuple[bytes, list[int], int]]:
    """The splitter: (buffer, bounds, kind) in stream order; with kind ``_GAMES`` the games are
    ``buffer[bounds[i]:bounds[i + 1]]``, otherwise ``bounds`` is ``[0, len(buffer)]`` and the
    buffer one game of that kind (headerless text before the first header block, the first
    ``max_game_bytes`` of an oversized game, the tail of a stream that failed)."""
    buf = b""
    at_start = True  # no header block seen yet: leading bytes may form a headerless game
    skipping = False  # inside an oversized game: drop bytes until the next header block
    eof = False
    while not eof:
        try:
            block = stream.read(block_bytes)
        except Exception:
            if buf.strip() and not skipping:
                tail = buf[:max_game_bytes]
                yield tail, [0, len(tail)], _TRUNCATED
            raise
        eof = not block
        if at_start and not buf and block.startswith(_BOM):
            block = block[len(_BOM) :]
        buf = buf + block if buf else block
        starts = _block_starts(buf)
        if skipping:
            if not starts:
                buf = buf[buf.rfind(b"\n") + 1 :]  # keep a possible partial header line
                continue
            buf, starts, skipping = buf[starts[0] :], [s - starts[0] for s in starts], False
        if at_start:
            lead_end = starts[0] if starts else len(buf)
            if starts or eof or lead_end > max_game_bytes:
                lead = buf[:lead_end]
                if lead.strip():
                    lead = lead[:max_game_bytes]
                    yield lead, [0, len(lead)], _LEAD
                buf, starts = buf[lead_end:], [s - lead_end for s in starts]
                at_start = not starts
            if at_start:
                continue
        bounds = [*starts, len(buf)] if eof else starts
        if len(bounds) > 1:
            yield buf, bounds, _GAMES
        buf = buf[bounds[-1] :]
        if len(buf) > max_game_bytes:
            cut = buf[:max_game_bytes]
            yield cut, [0, len(cut)], _OVERSIZED
            buf, skipping = b"", True


def _block_starts(buf: bytes) -> list[int]:
    """Offsets of the header blocks in ``buf`` (each at the start of a line)."""
    first = _HEADER_BLOCK_AT_START.match(buf) if buf.startswith(b"[") else None
    pos = first.end() if first else 0
    starts = [m.start() + 1 for m in _HEADER_BLOCK.finditer(buf, pos)]
    return [0, *starts] if first else starts


def _make_game(data: bytes, index: int) -> RawGame:
    m = _HEADER_BLOCK_AT_START.match(data)
    header_end = m.end() if m else 0
    return RawGame(index=index, data=data, header_end=header_end)


def split_stray(game: RawGame) -> list[RawGame]:
    """A game and, if text that is not blank follows its termination marker, that text as a
    second item flagged ``between_games`` (with the game's index); else just the game."""
    data = game.data
    if game.header_end == 0 or game.oversized or game.truncated or game.between_games:
        return [game]
    end = game_end(data, game.header_end)
    if end is None or not data[end:].strip():
        return [game]
    rest = data[end:]
    blank = len(rest) - len(rest.lstrip())  # whole blank lines after the marker stay with it
    cut = end + rest.rfind(b"\n", 0, blank) + 1
    return [
        dataclasses.replace(game, data=data[:cut]),
        RawGame(index=game.index, data=data[cut:], header_end=0, between_games=True),
    ]


def game_end(data: bytes, start: int = 0) -> int | None:
    """Offset just past the main line's termination marker in ``data[start:]`` (a movetext),
    or None if it has none.

    Fast path (nearly every real game): the movetext holds one marker-like substring, at its end.
    Otherwise the movetext is walked token by token, skipping comments and variations.
    """
    tail = data[-64:]
    last = tail.rstrip()
    if last.endswith(_MARKERS) and sum(data.count(m, start) for m in _MARKERS) == 1:
        return len(data) - len(tail) + len(last)
    depth = 0
    for token in _MOVETEXT_TOKEN.finditer(data, start):
        first = token[0][:1]
        if first == b"(":
            depth += 1
        elif first == b")":
            depth = max(0, depth - 1)
        elif first in b"01*" and depth == 0:
            return token.end()
    return None
