"""Decode + encode on ONE core: elocap's path vs a plain python-chess read_game + push loop.

For each input file (default: the 2021-10 slice and the 2026-06 analysed file), in alternation,
--repeat times, in this process pinned to core 0:

- ``elocap``: ``pgn.iter_raw_games`` -> ``RawGame.headers()`` -> ``decode.decode_game`` for every
  game -> ``decode.to_examples`` in chunks of --chunk games (the work of one build chunk minus
  the shard writing). Split into: split, headers, replay (decode_game: movetext -> SAN -> fast
  replay), to_examples (numpy gather + ``encoding.encode_raw`` + actions).
- ``python-chess``: ``chess.pgn.read_game`` on the decoded text, then ``board.push`` of every
  main-line move (no encoding at all). Split into read_game and push.

Positions/s = positions produced / time (elocap: examples; python-chess: moves pushed). Both
count the same main-line moves except for games elocap rejects (Result ``*``, no moves).

Also measured on the same positions, on their own: ``encoding.encode_raw`` (us/position, inputs
prepared beforehand, chunks of --chunk games) and, as a before/after reference, a copy of
encode_raw as it was at commit 9b45b4c (flip by fancy-indexing the unpacked [N, 12, 8, 8] bit
array), checked to give the same bytes as the library's current one.

Target: elocap positions/s >= 4x python-chess.

Run:  .venv/bin/python benchmarks/bench_decode.py                (about 90 s)
      .venv/bin/python benchmarks/bench_decode.py --repeat 3 FILE.pgn[.zst] ...
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import time
from pathlib import Path

import _common as c
import chess
import chess.pgn
import numpy as np

from data_pipeline import decode, encoding
from data_pipeline.filters import FilterConfig
from data_pipeline.pgn import iter_raw_games


def run_elocap(data: bytes, cfg: FilterConfig, chunk: int) -> dict[str, float]:
    t0 = time.perf_counter()
    games = list(iter_raw_games(io.BytesIO(data)))
    t1 = time.perf_counter()
    headers = [g.headers() for g in games]
    t2 = time.perf_counter()
    decoded = []
    for g, h in zip(games, headers, strict=False):
        with contextlib.suppress(decode.MovetextError):
            decoded.append(decode.decode_game(g, h, cfg))
    t3 = time.perf_counter()
    n = 0
    for i in range(0, len(decoded), chunk):
        n += len(decode.to_examples(decoded[i : i + chunk], cfg))
    t4 = time.perf_counter()
    return {
        "split": t1 - t0,
        "headers": t2 - t1,
        "replay": t3 - t2,
        "to_examples": t4 - t3,
        "total": t4 - t0,
        "positions": n,
        "games": len(decoded),
    }


def run_pychess(text: str) -> dict[str, float]:
    stream = io.StringIO(text)
    t_read = t_push = 0.0
    n = games = 0
    while True:
        t0 = time.perf_counter()
        game = chess.pgn.read_game(stream)
        t1 = time.perf_counter()
        t_read += t1 - t0
        if game is None:
            break
        games += 1
        board = game.board()
        for move in game.mainline_moves():
            board.push(move)
            n += 1
        t_push += time.perf_counter() - t1
    return {
        "read_game": t_read,
        "push": t_push,
        "total": t_read + t_push,
        "positions": n,
        "games": games,
    }


def encoder_inputs(data: bytes, cfg: FilterConfig, chunk: int) -> list[tuple[np.ndarray, ...]]:
    """encode_raw's inputs, per chunk of games, built as decode.to_examples builds them."""
    decoded = []
    for g in iter_raw_games(io.BytesIO(data)):
        with contextlib.suppress(decode.MovetextError):
            decoded.append(decode.decode_game(g, g.headers(), cfg))
    out = []
    for i in range(0, len(decoded), chunk):
        raws = [r for g in decoded[i : i + chunk] for r in g.raws]
        n = len(raws)
        pieces = np.fromiter(itertools.chain.from_iterable(r[0] for r in raws), np.uint64, n * 12)
        out.append(
            (
                pieces.reshape(n, 12),
                np.fromiter((r[1] for r in raws), bool, n),
                np.fromiter((r[2] for r in raws), np.uint8, n),
                np.fromiter((r[3] for r in raws), np.int8, n),
                np.fromiter((r[4] for r in raws), np.int32, n),
            )
        )
    return out


_SWAP = np.array([6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5])
_TOKENS = np.arange(1, 13, dtype=np.uint8)


def encode_raw_9b45b4c(pieces, turn, castling, ep_file, halfmove) -> np.ndarray:
    """encoding.encode_raw as of commit 9b45b4c, copied here as a before/after reference: it
    unpacks all 12 planes, then flips black-to-move rows by fancy-indexing the [N, 12, 8, 8]
    bit array and selects with np.where."""
    n = pieces.shape[0]
    turn = np.asarray(turn, bool)
    raw = np.ascontiguousarray(pieces, dtype="<u8").view(np.uint8).reshape(n, 12, 8)
    bits = np.unpackbits(raw, axis=-1, bitorder="little").reshape(n, 12, 8, 8)
    flipped = bits[:, _SWAP, ::-1, :]
    planes = np.where(turn[:, None, None, None], bits, flipped).reshape(n, 12, 64)
    out = np.empty((n, encoding.OBS_LEN), np.uint8)
    out[:, :64] = np.einsum("npk,p->nk", planes, _TOKENS, dtype=np.uint8)
    cst = np.asarray(castling, np.uint8)
    out[:, 64] = np.where(turn, cst, ((cst >> 2) | (cst << 2)) & 15)
    out[:, 65] = np.asarray(ep_file, np.int16) + 1
    out[:, 66] = np.minimum(np.asarray(halfmove, np.int64), encoding.HALFMOVE_CAP)
    return out


def time_encoder(fn, inputs) -> float:
    t = time.perf_counter()
    for args in inputs:
        fn(*args)
    return time.perf_counter() - t


def bench_file(path: Path, repeat: int, chunk: int) -> list[list[object]]:
    data = c.read_pgn_bytes(path)
    text = data.decode("utf-8")
    cfg = FilterConfig()  # decode_game only uses Result and min_plies (1) from it
    inputs = encoder_inputs(data, cfg, chunk)
    n_enc = sum(len(a[0]) for a in inputs)
    for args in inputs:  # the reference variant must give the same bytes
        assert np.array_equal(encoding.encode_raw(*args), encode_raw_9b45b4c(*args))
    run_elocap(data, cfg, chunk)  # warm-up (lru caches, imports)
    el, pc, enc, alt, bgs = [], [], [], [], []
    for _ in range(repeat):
        c.wait_quiet()
        with c.Background() as bg:
            el.append(run_elocap(data, cfg, chunk))
            pc.append(run_pychess(text))
            enc.append(time_encoder(encoding.encode_raw, inputs))
            alt.append(time_encoder(encode_raw_9b45b4c, inputs))
        bgs.append(bg)
    n_el, n_pc = el[0]["positions"], pc[0]["positions"]

    def med(rs, key):
        return c.median(r[key] for r in rs)

    e_tot, p_tot = med(el, "total"), med(pc, "total")
    paired = c.median(
        (p["total"] / p["positions"]) / (e["total"] / e["positions"])
        for e, p in zip(el, pc, strict=False)
    )
    us = lambda t, n: t / n * 1e6  # noqa: E731
    print(
        f"\n## {path.name}: elocap {el[0]['games']} games / {n_el} positions, "
        f"python-chess {pc[0]['games']} games / {n_pc} positions"
    )
    rows = [
        [
            "elocap total",
            e_tot,
            n_el / e_tot,
            us(e_tot, n_el),
            100.0,
            c.runs([r["total"] for r in el]),
        ],
        [
            "  split (iter_raw_games)",
            med(el, "split"),
            "",
            us(med(el, "split"), n_el),
            100 * med(el, "split") / e_tot,
            "",
        ],
        [
            "  headers (parse_headers)",
            med(el, "headers"),
            "",
            us(med(el, "headers"), n_el),
            100 * med(el, "headers") / e_tot,
            "",
        ],
        [
            "  replay (decode_game)",
            med(el, "replay"),
            "",
            us(med(el, "replay"), n_el),
            100 * med(el, "replay") / e_tot,
            "",
        ],
        [
            "  to_examples (numpy encode)",
            med(el, "to_examples"),
            "",
            us(med(el, "to_examples"), n_el),
            100 * med(el, "to_examples") / e_tot,
            "",
        ],
        [
            "    of which encode_raw alone",
            c.median(enc),
            "",
            us(c.median(enc), n_enc),
            100 * c.median(enc) / e_tot,
            c.runs(enc, 3),
        ],
        [
            "python-chess total",
            p_tot,
            n_pc / p_tot,
            us(p_tot, n_pc),
            "",
            c.runs([r["total"] for r in pc]),
        ],
        ["  read_game", med(pc, "read_game"), "", us(med(pc, "read_game"), n_pc), "", ""],
        ["  board.push", med(pc, "push"), "", us(med(pc, "push"), n_pc), "", ""],
        [
            "(ref) encode_raw of commit 9b45b4c",
            c.median(alt),
            "",
            us(c.median(alt), n_enc),
            "",
            c.runs(alt, 3),
        ],
    ]
    print(
        c.table(
            ["stage", "median s", "positions/s", "us/position", "% of elocap", "runs (s)"], rows
        )
    )
    print(f"others' CPU load (cores busy elsewhere) during each repeat: {c.loads(bgs)}")
    ratio = (n_el / e_tot) / (n_pc / p_tot)
    print(
        f"elocap / python-chess positions/s: {ratio:.2f}x (median of paired ratios "
        f"{paired:.2f}x); target >= 4x: {'met' if ratio >= 4 else 'MISSED'}"
    )
    print(
        f"encode_raw now: {us(c.median(enc), n_enc):.2f} us/position; as of 9b45b4c: "
        f"{us(c.median(alt), n_enc):.2f} us/position (now {c.median(alt) / c.median(enc):.1f}x "
        f"faster); with the 9b45b4c encoder elocap would be about "
        f"{(n_el / (e_tot - c.median(enc) + c.median(alt))) / (n_pc / p_tot):.1f}x python-chess"
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, default=[c.SLICE_2021, c.ANALYSED_2026])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=500, help="games per to_examples call")
    args = ap.parse_args()
    print(c.machine())
    print(
        "pinned to core 0:",
        c.pin_to_core(0),
        f"; numpy {np.__version__}, python-chess "
        f"{chess.__version__}; {args.repeat} repeats, chunks of {args.chunk} games",
    )
    for path in args.files:
        bench_file(path, args.repeat, args.chunk)


if __name__ == "__main__":
    main()
