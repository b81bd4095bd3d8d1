"""A build sized by what its sweep reads, not by its sources.

The run of a sweep that reads the most positions is the smallest model at the largest budget
(``budget_flops / train_flops_per_position``; ``scaling.flops`` counts those, the caller passes
the numbers: the data stage does not import the model code). With an *epoch allowance* (how many
passes over its cap's training data that run may make), each cap needs ``positions / epochs``
training positions. The sources hold some number per cap, estimated before the build from a
pilot (the first ``pilot_bytes`` of each source, a deterministic subsample of it decoded); the
build then keeps each game that passes the filters with probability ``fraction`` (the largest
need over the caps, with a margin), chosen by a hash of the game (``shards.sample_hash``, as the
split is), before its moves are decoded. So a month-sized source costs its header pass (every
game) plus the decoding of what the study reads.

All of it is deterministic: the estimate depends only on the sources' bytes and the config, the
fraction is rounded up to 3 significant digits (so the build's identity does not move with the
last bits of a float), and ``sample_note`` in the config (and so in the manifest) says where the
fraction came from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline import decode, shards, sources
from data_pipeline.chunks import BuildConfig, split_of
from data_pipeline.filters import FilterConfig, header_predicates, prefilter
from data_pipeline.pgn import iter_raw_games, split_stray

__all__ = [
    "DataBudget",
    "estimate_positions",
    "positions_consumed",
    "sample_fraction",
    "sampled_config",
]

PILOT_BYTES = 8 << 20  # compressed bytes read from the start of each source for the estimate
PILOT_DECODED = 1000  # games of the pilot decoded (an evenly spaced subsample of those kept)
MAX_SAMPLED_CHUNK = 20_000  # games per chunk at most when a sample scales chunks up (~46 MB)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataBudget:
    """What a study's sweep reads of one cap's training data."""

    positions: float  # training positions read by the sweep's largest consumer of data
    epochs: float = 1.0  # passes over its cap's training data that run may make
    margin: float = 1.2  # kept over the estimate's need (the estimate is from a pilot)
    note: str = ""  # where ``positions`` comes from (the run, its budget and FLOPs/position)

    def __post_init__(self) -> None:
        if not (self.positions > 0 and self.epochs > 0 and self.margin >= 1):
            raise ValueError("DataBudget needs positions > 0, epochs > 0 and margin >= 1")

    @property
    def needed(self) -> float:
        """Training positions each cap must hold."""
        return self.positions / self.epochs * self.margin


def positions_consumed(runs: Iterable[tuple[float, float]]) -> float:
    """The most positions one run reads: max of ``budget_flops / train_flops_per_position``
    over ``(budget_flops, train_flops_per_position)`` pairs (one per size and budget)."""
    return max(budget / per_position for budget, per_position in runs)


def sample_fraction(needed: float, available: float) -> float:
    """The fraction of games to keep so that ``available`` positions give ``needed``: in (0, 1],
    rounded up to 3 significant digits; 1.0 where the sources hold no more than needed."""
    if available <= needed:
        return 1.0
    f = needed / available
    digits = 2 - math.floor(math.log10(f))
    return min(1.0, math.ceil(f * 10**digits) / 10**digits)


def estimate_positions(
    specs: Sequence[str],
    filters: FilterConfig,
    caps: Sequence[int],
    *,
    splits: Any = None,
    cache_dir: Path | None = None,
    pilot_bytes: int = PILOT_BYTES,
    pilot_decoded: int = PILOT_DECODED,
) -> dict[str, Any]:
    """Training positions the sources hold per cap (under ``filters.elo_rule``, the other
    filters as given, the cap switched off in ``filters``), estimated from a pilot of each
    source: its first ``pilot_bytes`` compressed bytes (the whole source if smaller) are split
    and header-filtered, ``pilot_decoded`` of the kept games (evenly spaced) decoded, and the
    positions each cap reads of those scaled to the source's size. Returns ``{"caps": {cap:
    positions}, "pilot": {...}}`` (what the pilot saw, for the manifest's note). Sources are
    resolved as the build resolves them (``lichess:YYYY-MM`` downloaded into ``cache_dir``)."""
    from data_pipeline.chunks import SplitConfig

    splits = splits or SplitConfig()
    every = dataclasses.replace(filters, cap=None)
    predicates = header_predicates(every)
    totals = dict.fromkeys(caps, 0.0)
    seen = {"games": 0, "kept": 0, "decoded": 0, "raw_bytes": 0, "source_bytes": 0}
    for src in sources.resolve_sources(specs, cache_dir=cache_dir):
        if src.size is None:
            raise ValueError(f"{src.name}: a stream of unknown size cannot be estimated")
        games, pgn, kept = 0, 0, []
        with sources.open_source(src) as stream:
            for raw in iter_raw_games(stream, stray_text=False):
                pgn += len(raw.data)
                for game in split_stray(raw):
                    if game.between_games or game.truncated or game.oversized:
                        continue
                    games += 1
                    if game.header_end and prefilter(game.headers(), predicates, every) is None:
                        kept.append(game)
                if stream.raw_bytes_read >= pilot_bytes:
                    break
            read = stream.raw_bytes_read
            ratio = stream.decompressed_bytes_read / max(read, 1)  # PGN bytes per source byte
        step = max(1, len(kept) // pilot_decoded)
        tried, decoded = kept[::step][:pilot_decoded], []
        for game in tried:  # a game that fails to decode is rejected by the build too: 0
            with contextlib.suppress(decode.MovetextError):
                decoded.append(decode.decode_game(game, game.headers(), every))
        # kept games per one tried, times source PGN bytes per pilot PGN byte
        scale = len(kept) / max(len(tried), 1) * (src.size * ratio / max(pgn, 1))
        if decoded:
            split = split_of(np.array([g.game_id for g in decoded], np.uint64), splits)
            _, table = shards.pack(decode.to_examples(decoded, every), decoded, split)
            train = table["split"] == 0
            for cap in caps:
                sel = shards.game_selection(
                    table, shards.Select(cap=cap, elo_rule=filters.elo_rule)
                )
                totals[cap] += float(sel["count"][train].sum()) * scale
        for key, n in (("games", games), ("kept", len(kept)), ("decoded", len(decoded)),
                       ("raw_bytes", read), ("source_bytes", src.size)):  # fmt: skip
            seen[key] += n
    return {"caps": {cap: round(totals[cap]) for cap in caps}, "pilot": seen}


def sampled_config(cfg: BuildConfig, need: DataBudget, estimate: dict[str, Any]) -> BuildConfig:
    """``cfg`` with the sample fraction that gives every cap of ``estimate`` (from
    ``estimate_positions``) the training positions ``need`` asks, and a note saying why.

    ``chunk_games`` grows by 1 / fraction (to ``MAX_SAMPLED_CHUNK`` at most), so a chunk's
    shard holds about as many kept games as it would unsampled: array_record pads every file to
    a 64 KiB block, and 2,000-game chunks sampled at 1.4% stored 270 MB for 56 MB of data."""
    caps = estimate["caps"]
    fraction = max(sample_fraction(need.needed, float(n)) for n in caps.values())
    pilot = estimate["pilot"]
    short = [str(c) for c, n in caps.items() if n * fraction < need.positions / need.epochs]
    note = (
        f"{need.positions:.3g} training positions read by the largest run"
        f"{' (' + need.note + ')' if need.note else ''}, {need.epochs:g} epochs allowed, "
        f"margin {need.margin:g}: {need.needed:.3g} per cap; estimated training positions per "
        f"cap {', '.join(f'{c}: {n:.3g}' for c, n in caps.items())} (pilot: {pilot['decoded']} "
        f"of {pilot['kept']} kept games decoded, {pilot['raw_bytes']} of "
        f"{pilot['source_bytes']} bytes read); fraction {fraction:g}"
        + (f"; caps short of the need even unsampled: {', '.join(short)}" if short else "")
    )
    chunk = max(cfg.chunk_games, min(MAX_SAMPLED_CHUNK, round(cfg.chunk_games / fraction)))
    return dataclasses.replace(cfg, sample_fraction=fraction, sample_note=note, chunk_games=chunk)
