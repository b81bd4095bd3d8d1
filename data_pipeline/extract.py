"""``elocap data filter``: the kept games of PGN sources, written out byte for byte."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from data_pipeline import decode, sources
from data_pipeline.filters import FilterConfig, Predicate, header_predicates, prefilter
from data_pipeline.pgn import RawGame, iter_raw_games


@dataclasses.dataclass(frozen=True)
class FilterReport:
    """What a filter run read, kept and rejected (by reason), and the sources it could not read."""

    games: int
    kept: int
    rejected: dict[str, int]
    errors: dict[str, str]  # source name -> error


def filter_games(
    specs: Sequence[str],
    out: BinaryIO,
    cfg: FilterConfig,
    *,
    validate_moves: bool | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> FilterReport:
    """Writes every kept game of ``specs`` to ``out`` unchanged; returns the counts.

    Text between games that belongs to none (after a termination marker, before the next tags)
    is not written; it is counted under ``between_games``, so the output is valid PGN.

    Moves are replayed (legality, minimum plies) unless ``validate_moves`` is False; by default
    they are not under ``only_elo``, which is a pure header filter.
    """
    validate = (not cfg.only_elo) if validate_moves is None else validate_moves
    predicates = header_predicates(cfg)
    rejected: collections.Counter[str] = collections.Counter()
    errors: dict[str, str] = {}
    games = kept = 0
    for source in sources.resolve_sources(specs, cache_dir=cache_dir, progress=progress):
        try:
            with sources.open_source(source) as stream:
                for game in iter_raw_games(stream):
                    games += 1
                    reason = _reason(game, predicates, cfg, validate)
                    if reason is not None:
                        rejected[reason] += 1
                        continue
                    kept += 1
                    out.write(game.data)
                    if not game.data.endswith(b"\n\n") and not game.data.endswith(b"\r\n\r\n"):
                        out.write(b"\n" if game.data.endswith(b"\n") else b"\n\n")
        except sources.SourceError as e:
            errors[source.name] = str(e)
    return FilterReport(games, kept, dict(sorted(rejected.items())), errors)


def _reason(
    game: RawGame, predicates: tuple[Predicate, ...], cfg: FilterConfig, validate: bool
) -> str | None:
    if game.between_games:
        return "between_games"  # text after a game's termination marker: not written out
    if game.truncated:
        return "truncated"
    if game.oversized:
        return "oversized"
    headers = game.headers()
    reason = prefilter(headers, predicates, cfg)
    if reason is None and validate:
        try:
            decode.decode_game(game, headers, cfg)
        except decode.MovetextError as e:
            return e.reason
    return reason


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only when complete (``-``: standard output)."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
