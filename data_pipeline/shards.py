"""The compact shard format, and the selection of a cap's positions from it.

A shard holds the kept games of one chunk, every split (one file per chunk, so array_record's
padding of each file to its 64 KiB block is paid once per chunk), and every position of each
game whatever the Elo cap. Records ``0 .. P-1`` are positions (``POSITION_DTYPE``, 36 bytes:
the 64 square tokens as 4-bit codes, castling and en passant in one byte, the halfmove clock,
the action); record ``P``, the last, is the games table (``GAME_DTYPE[G]``: id, both ratings,
result, time control, plies, split), so what is the same for a whole game is stored once per
game. Records are compressed with zstd in groups of ``GROUP_SIZE`` (a random read decompresses
one group, about 2 KB).

What a position's example needs from its game (ply, result and ratings from the mover's side,
time control, id) is rebuilt from the games table: positions of a game are stored in ply order
and games start from the standard position, so ply ``k`` is white's move when ``k`` is even.
``decode`` yields exactly the fields and dtypes of ``decode.EXAMPLE_DTYPE`` (the one encoding of
``data_pipeline.encoding``; ``scaling.batch`` reads them unchanged).

A ``Select`` (cap and Elo rule, and optionally a sample) picks games and, under the ``mover``
rule, every position (cap on both sides), the even plies (white qualifies) or the odd ones
(black): per game a (phase, stride, count), never a table per position, so one shared build
serves every cap.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline import encoding
from data_pipeline.decode import EXAMPLE_DTYPE, DecodedGame
from elocap.files import file_sha256

FORMAT = "compact-v1"
GROUP_SIZE = 64  # records compressed together; a random read decompresses one such group
OPTIONS = f"group_size:{GROUP_SIZE},zstd:3"

POSITION_DTYPE = np.dtype(
    [
        ("board", np.uint8, (32,)),  # square 2k in the low nibble, 2k + 1 in the high one
        ("flags", np.uint8),  # low nibble: castling (obs[64]); high: en-passant token (obs[65])
        ("halfmove", np.uint8),  # obs[66]
        ("action", "<u2"),  # the move played, in [0, NUM_ACTIONS)
    ]
)
GAME_DTYPE = np.dtype(
    [
        ("game_id", "<u8"),  # decode.game_id
        ("white_elo", "<i2"),  # -1 if missing
        ("black_elo", "<i2"),  # -1 if missing
        ("white_result", np.int8),  # 1 white won, 0 draw, -1 black won
        ("time_control", np.uint8),  # index into filters.TIME_CONTROL_CLASSES
        ("plies", "<u2"),  # positions of the game in the shard, in ply order
        ("split", np.int8),  # 0 train, 1 val, 2 test (chunks.split_of: a hash of the game)
    ]
)


def describe() -> dict[str, Any]:
    """The format, for a build's identity: another format is another build."""
    return {
        "format": FORMAT,
        "options": OPTIONS,
        "position_dtype": POSITION_DTYPE.descr,
        "game_dtype": GAME_DTYPE.descr,
    }


# --- writing -----------------------------------------------------------------------------------


def pack(
    examples: np.ndarray, games: list[DecodedGame], split: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, games table) of games whose every example is in ``examples``, game after game
    in order (``decode.to_examples`` of them without the mover rule); ``split`` int8[G]."""
    pos = np.empty(len(examples), POSITION_DTYPE)
    obs = examples["obs"]
    pos["board"] = obs[:, 0:64:2] | (obs[:, 1:64:2] << 4)
    pos["flags"] = obs[:, 64] | (obs[:, 65] << 4)
    pos["halfmove"] = obs[:, 66]
    pos["action"] = examples["action"]
    table = np.empty(len(games), GAME_DTYPE)
    table["game_id"] = [g.game_id for g in games]
    table["white_elo"] = [g.white_elo for g in games]
    table["black_elo"] = [g.black_elo for g in games]
    table["white_result"] = [g.white_result for g in games]
    table["time_control"] = [g.time_control for g in games]
    table["plies"] = [len(g.moves) for g in games]
    table["split"] = split
    if int(table["plies"].sum()) != len(pos):
        raise ValueError("the examples are not every position of these games")
    return pos, table


def write_shard(path: Path, positions: np.ndarray, games: np.ndarray) -> dict[str, Any]:
    """Writes one shard atomically; returns its entry in the chunk record."""
    from array_record.python.array_record_module import ArrayRecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = ArrayRecordWriter(str(tmp), OPTIONS)
    raw = positions.tobytes()
    size = POSITION_DTYPE.itemsize
    for i in range(0, len(raw), size):
        writer.write(raw[i : i + size])
    writer.write(games.tobytes())
    writer.close()
    digest = file_sha256(tmp)
    os.replace(tmp, path)
    return {
        "path": f"{path.parent.name}/{path.name}",
        "records": len(positions),  # positions stored (every cap's)
        "games": len(games),
        "bytes": path.stat().st_size,
        "sha256": digest,
    }


# --- reading -----------------------------------------------------------------------------------


def read_games(reader: Any, records: int) -> np.ndarray:
    """The games table of an open shard of ``records`` positions."""
    (raw,) = reader.read([records])
    return np.frombuffer(raw, GAME_DTYPE)


def read_positions(reader: Any, records: int) -> np.ndarray:
    """Every position of an open shard, POSITION_DTYPE[records]."""
    if records == 0:
        return np.empty(0, POSITION_DTYPE)
    raw = reader.read(range(records)) if records < reader.num_records() else reader.read_all()
    return np.frombuffer(b"".join(raw[:records]), POSITION_DTYPE)


def decode(
    rows: np.ndarray,  # POSITION_DTYPE[B]
    ply: np.ndarray,  # int[B]
    games: np.ndarray,  # GAME_DTYPE[B]: each row's game
) -> dict[str, np.ndarray]:
    """A loader batch (``decode.EXAMPLE_DTYPE``'s fields, ``action`` as int32) of positions."""
    n = len(rows)
    obs = np.empty((n, encoding.OBS_LEN), np.uint8)
    board = rows["board"]
    obs[:, 0:64:2] = board & 15
    obs[:, 1:64:2] = board >> 4
    obs[:, 64] = rows["flags"] & 15
    obs[:, 65] = rows["flags"] >> 4
    obs[:, 66] = rows["halfmove"]
    white = (np.asarray(ply) & 1) == 0
    w_elo, b_elo = games["white_elo"], games["black_elo"]
    return {
        "obs": obs,
        "action": rows["action"].astype(np.int32),
        "result": np.where(white, games["white_result"], -games["white_result"]).astype(np.int8),
        "mover_elo": np.where(white, w_elo, b_elo).astype(np.int16),
        "opponent_elo": np.where(white, b_elo, w_elo).astype(np.int16),
        "ply": np.asarray(ply, np.uint16),
        "time_control": np.ascontiguousarray(games["time_control"]),
        "game_id": np.ascontiguousarray(games["game_id"]),
    }


def to_examples(batch: dict[str, np.ndarray]) -> np.ndarray:
    """A decoded batch as ``EXAMPLE_DTYPE`` rows (for readers that want whole examples)."""
    out = np.empty(len(batch["obs"]), EXAMPLE_DTYPE)
    for name in EXAMPLE_DTYPE.names or ():
        out[name] = batch[name]
    return out


# --- selecting a cap's positions ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Select:
    """Which positions of a build a loader reads: a cap under an Elo rule (``filters``'s rules),
    and optionally a deterministic sample of games (a hash of the game below ``sample_below``)."""

    cap: int | None = None  # None: every position of every stored game
    elo_rule: str = "both"  # both / mean / mover, as filters.FilterConfig
    sample_below: float = 1.0  # keep games whose sample_hash is below this (1.0: all)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Select:
        return cls(**d) if d else cls()


def sample_hash(game_ids: np.ndarray) -> np.ndarray:
    """float64[N] in [0, 1), uniform over games and independent of the split (which reads the
    id's top bits): splitmix64's finaliser of the id."""
    with np.errstate(over="ignore"):
        z = np.asarray(game_ids, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def game_selection(games: np.ndarray, sel: Select) -> dict[str, np.ndarray]:
    """Per game of a table: ``kept`` (the game passes the cap's Elo rule, as the header filter
    decides it, and the sample), ``missing`` (it fails the rule for want of a rating),
    ``sampled_out`` (it passes the rule but not the sample), and the positions read: ``phase``
    (first ply), ``stride`` (1 every ply, 2 every other) and ``count`` (0 unless kept)."""
    w = games["white_elo"].astype(np.int64)
    b = games["black_elo"].astype(np.int64)
    plies = games["plies"].astype(np.int64)
    phase = np.zeros(len(games), np.int64)
    stride = np.ones(len(games), np.int64)
    if sel.cap is None:
        kept = np.ones(len(games), bool)
        missing = np.zeros(len(games), bool)
        count = plies.copy()
    elif sel.elo_rule == "mover":
        w_ok = (w >= 0) & (w <= sel.cap)
        b_ok = (b >= 0) & (b <= sel.cap)
        kept = w_ok | b_ok
        missing = (w < 0) & (b < 0)
        one = w_ok ^ b_ok
        stride[one] = 2
        phase[one & b_ok] = 1
        count = np.where(w_ok & b_ok, plies, 0)
        count = np.where(one & w_ok, (plies + 1) // 2, count)
        count = np.where(one & b_ok, plies // 2, count)
    else:
        missing = (w < 0) | (b < 0)
        if sel.elo_rule == "both":
            kept = ~missing & (w <= sel.cap) & (b <= sel.cap)
        else:  # mean: (w + b) / 2 <= cap, exactly, in integers
            kept = ~missing & (w + b <= 2 * sel.cap)
        count = np.where(kept, plies, 0)
    sampled_out = np.zeros(len(games), bool)
    if sel.sample_below < 1.0:
        sampled_out = kept & (sample_hash(games["game_id"]) >= sel.sample_below)
        kept &= ~sampled_out
        count = np.where(kept, count, 0)
    return {"kept": kept, "missing": missing, "sampled_out": sampled_out, "phase": phase,
            "stride": stride, "count": count}  # fmt: skip
