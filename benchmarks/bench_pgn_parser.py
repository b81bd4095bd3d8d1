"""The PyPI package `pgn-parser` vs elocap's splitter + decode and python-chess's read_game.

Needs ``.venv/bin/pip install pgn-parser`` (not a project dependency; this script exits with a
message without it). Measured on the decompressed 2021-10 slice (999 games), ONE core (this
process pinned to core 0), in alternation, --repeat times:

- ``pgn-parser``: ``pgn_parser.parser.parse(text, actions=pgn_parser.pgn.Actions())`` per game.
  It parses exactly one game per call (see the multi-game check below), so the file is split
  first with elocap's ``iter_raw_games`` and each game decoded to str (both included in the
  time). It yields tag pairs and SAN strings only: no board, no positions.
- ``python-chess read_game``: headers, movetext and SAN -> legal moves (python-chess replays the
  moves to parse SAN).
- ``elocap split + headers + decode_game``: byte splitter, tag pairs, main-line SANs, replay to
  legal moves (no encoding).
- ``elocap split + headers``: the header pre-filter's share alone.

Games/s counts every game of the file for each contender (failed parses included in the time).
Then three checks: the share of real games pgn-parser fails to parse (2021-10 slice and 2026-06
analysed file); whether a two-game string parses; whether a game with illegal moves is refused.

Run:  .venv/bin/python benchmarks/bench_pgn_parser.py          (about 45 s)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import logging
import time

import _common as c
import chess.pgn

from data_pipeline import decode
from data_pipeline.filters import FilterConfig
from data_pipeline.pgn import iter_raw_games

try:
    from pgn_parser import parser as pp_parser
    from pgn_parser import pgn as pp_pgn
except ImportError:  # pragma: no cover
    raise SystemExit("pgn-parser is not installed: .venv/bin/pip install pgn-parser") from None

ILLEGAL = (
    '[Event "illegal moves"]\n[White "a"]\n[Black "b"]\n[Result "1-0"]\n\n'
    "1. e4 e5 2. Ke3 Nc6 3. Qxf7# 1-0\n"
)  # 2. Ke3: a king cannot move two squares; 3. Qxf7#: no queen reaches f7


def run_pgn_parser(data: bytes) -> tuple[int, int, int]:
    """(games, parsed, failed); every game is parsed on its own."""
    ok = failed = 0
    actions = pp_pgn.Actions()
    for g in iter_raw_games(io.BytesIO(data)):
        try:
            pp_parser.parse(g.data.decode("utf-8"), actions=actions)
            ok += 1
        except pp_parser.ParseError:
            failed += 1
    return ok + failed, ok, failed


def run_pychess(text: str) -> int:
    stream = io.StringIO(text)
    n = 0
    while chess.pgn.read_game(stream) is not None:
        n += 1
    return n


def run_elocap(data: bytes, decode_moves: bool) -> int:
    cfg = FilterConfig()
    n = 0
    for g in iter_raw_games(io.BytesIO(data)):
        h = g.headers()
        n += 1
        if decode_moves:
            with contextlib.suppress(decode.MovetextError):
                decode.decode_game(g, h, cfg)
    return n


def parse_failures(data: bytes) -> tuple[int, int, collections.Counter[str]]:
    """(games, failures, the text at the failure point, most common first)."""
    where: collections.Counter[str] = collections.Counter()
    n = 0
    for g in iter_raw_games(io.BytesIO(data)):
        n += 1
        text = g.data.decode("utf-8")
        p = pp_parser.Parser(text, pp_pgn.Actions(), None)
        try:
            p.parse()
        except pp_parser.ParseError:
            token = text[p._failure :].split(None, 1)
            at = text[max(0, p._failure - 8) : p._failure].split()[-1:]
            where[(at[0] if at else "") + "|" + (token[0] if token else "<end>")] += 1
    return n, sum(where.values()), where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from importlib.metadata import version

    logging.getLogger("chess.pgn").setLevel(logging.CRITICAL)  # read_game logs illegal SANs

    print(c.machine())
    print(
        f"pgn-parser {version('pgn-parser')}, python-chess {chess.__version__}; pinned to "
        f"core 0: {c.pin_to_core(0)}"
    )
    data = c.read_pgn_bytes(c.SLICE_2021)
    text = data.decode("utf-8")
    contenders = {
        "pgn-parser (elocap split + parse)": lambda: run_pgn_parser(data)[0],
        "python-chess read_game": lambda: run_pychess(text),
        "elocap split + headers + decode_game": lambda: run_elocap(data, True),
        "elocap split + headers": lambda: run_elocap(data, False),
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    counts: dict[str, int] = {}
    bgs = []
    for _ in range(args.repeat):
        c.wait_quiet()
        with c.Background() as bg:
            for name, fn in contenders.items():
                t = time.perf_counter()
                counts[name] = fn()
                times[name].append(time.perf_counter() - t)
        bgs.append(bg)
    base = c.median(times["pgn-parser (elocap split + parse)"])
    rows = [
        [
            name,
            counts[name],
            c.median(ts),
            counts[name] / c.median(ts),
            base / c.median(ts),
            c.runs(ts),
        ]
        for name, ts in times.items()
    ]
    print(f"\n## games/s on {c.SLICE_2021.name} (median of {args.repeat})")
    print(c.table(["contender", "games", "median s", "games/s", "x pgn-parser", "runs (s)"], rows))
    print(f"others' CPU load (cores busy elsewhere) during each repeat: {c.loads(bgs)}")

    print("\n## pgn-parser on real files: games it cannot parse")
    for path in (c.SLICE_2021, c.ANALYSED_2026):
        n, bad, where = parse_failures(c.read_pgn_bytes(path))
        common = ", ".join(
            f"'{k.split('|')[0]}' then '{k.split('|')[1]}' x{v}" for k, v in where.most_common(3)
        )
        print(
            f"{path.name}: {bad} of {n} games fail ({100 * bad / n:.0f}%); "
            f"failure points (last token | next): {common}"
        )

    print("\n## multi-game input")
    two = b"".join(
        g.data for g, _ in zip(iter_raw_games(io.BytesIO(data)), range(2), strict=False)
    ).decode()
    try:
        pp_parser.parse(two, actions=pp_pgn.Actions())
        print("pgn-parser parses a two-game string: yes")
    except pp_parser.ParseError as e:
        print(
            f"pgn-parser parses a two-game string: NO, ParseError {str(e).splitlines()[0]!r}: "
            "the caller must split files into games first"
        )

    print("\n## illegal moves (2. Ke3, 3. Qxf7#)")
    g = pp_parser.parse(ILLEGAL, actions=pp_pgn.Actions())
    print(f"pgn-parser: accepted, movetext {[str(m) for m in g.movetext]} (no legality check)")
    pc = chess.pgn.read_game(io.StringIO(ILLEGAL))
    print(
        f"python-chess read_game: no exception; game.errors = {[str(e) for e in pc.errors]}; "
        f"main line kept: {[m.uci() for m in pc.mainline_moves()]}"
    )
    raw = next(iter_raw_games(io.BytesIO(ILLEGAL.encode())))
    try:
        decode.decode_game(raw, raw.headers(), FilterConfig())
        print("elocap decode_game: accepted (WRONG)")
    except decode.MovetextError as e:
        print(f"elocap decode_game: refused, reason {e.reason!r}: {e}")


if __name__ == "__main__":
    main()
