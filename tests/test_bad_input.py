"""A corpus of bad inputs, made here: no crash, every game accounted for under a reason, and the
good games before and after each bad one kept."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import zstandard

from data_pipeline.build import BuildConfig, build
from data_pipeline.filters import FilterConfig
from tests.conftest import data_file

HEAD = (
    '[Event "Rated Blitz game"]\n[Site "https://lichess.org/{id}"]\n[White "{white}"]\n'
    '[Black "b"]\n[Result "{result}"]\n[WhiteElo "{we}"]\n[BlackElo "1400"]\n'
    '[TimeControl "300+0"]\n[Termination "Normal"]\n{extra}\n'
)
MOVES = "1. e4 { [%clk 0:05:00] } 1... e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 5. O-O Be7 1-0\n\n"


def game(
    gid: str,
    moves: str = MOVES,
    *,
    white: str = "w",
    we: str = "1450",
    result: str = "1-0",
    extra: str = "",
) -> bytes:
    head = HEAD.format(id=gid, white=white, we=we, result=result, extra=extra)
    return (head + "\n" + moves).encode()


def good(gid: str) -> bytes:
    return game(f"good{gid}")


# Each bad game (bytes) and the reason it must be rejected for.
BAD_GAMES: dict[str, tuple[bytes, str]] = {
    "missing_rating": (game("m1").replace(b'[WhiteElo "1450"]\n', b""), "elo_missing"),
    "question_rating": (game("m2", we="?"), "elo_missing"),
    "illegal_san": (game("i1", "1. e4 e5 2. Ke3 Nc6 1-0\n\n"), "illegal_move"),
    "ambiguous_san": (
        game("a1", "1. Nf3 Nf6 2. Nc3 Nc6 3. Nd4 Nd5 4. Nb5 1-0\n\n"),
        "ambiguous_move",
    ),
    "no_moves": (game("n1", "1-0\n\n"), "no_moves"),
    "chess960": (game("v1", extra='[Variant "Chess960"]\n'), "variant"),
    "three_check": (game("v2", extra='[Variant "Three-check"]\n'), "variant"),
    "setup_fen": (
        game("f1", "1. Kb2 1-0\n\n", extra='[SetUp "1"]\n[FEN "8/8/8/8/8/8/8/K6k w - - 0 1"]\n'),
        "setup_fen",
    ),
    "stray_token": (game("s1", "1. e4 e5 2. Nf3 ZZTOP 1-0\n\n"), "bad_movetext"),
    "cut_off_movetext": (game("c1", "1. e4 e5 2. Nf3\n\n"), "no_termination"),
    "result_disagrees": (game("r1", result="0-1"), "result_mismatch"),
    "unclosed_variation": (game("u1", "1. e4 (1. d4 d5 e5 1-0\n\n"), "bad_movetext"),
}
# Valid PGN oddities that must be kept: the main line is what counts.
ODD_BUT_GOOD = {
    "non_utf8_name": game("o1", white="cafe").replace(b"cafe", b"caf\xe9 \xff\xfe"),
    "variations_and_nags": game(
        "o2",
        "1. e4 $1 (1. d4 d5 (1... Nf6 2. c4) 2. c4) 1... e5 $2 2. Nf3 !? Nc6 3. Bb5 a6 1-0\n\n",
    ),
    "crlf": game("o3").replace(b"\n", b"\r\n"),
    "huge_comment": game("o4", "1. e4 { " + "x" * 10_000_000 + " } e5 2. Nf3 Nc6 1-0\n\n"),
}


def _run(tmp_path: Path, files: dict[str, bytes], cfg: BuildConfig | None = None) -> dict:
    src = tmp_path / "src"
    src.mkdir(parents=True)
    for name, data in files.items():
        (src / name).write_bytes(data)
    cfg = cfg or BuildConfig(filters=FilterConfig(cap=1500), chunk_games=3)
    return build(
        [str(src / n) for n in files], tmp_path / "out", cfg, use_ray=False, progress=False
    )


def test_every_bad_game_is_counted_and_neighbours_kept(tmp_path: Path) -> None:
    parts = [good("0")]
    for i, (data, _) in enumerate(BAD_GAMES.values()):
        parts += [data, good(f"after{i}")]
    for i, data in enumerate(ODD_BUT_GOOD.values()):
        parts += [data, good(f"odd{i}")]
    body = b"".join(parts)
    manifest = _run(tmp_path, {"corpus.pgn": b"\xef\xbb\xbf" + body})
    expected: dict[str, int] = {}
    for _, reason in BAD_GAMES.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert manifest["rejected"] == expected
    n_good = 1 + len(BAD_GAMES) + 2 * len(ODD_BUT_GOOD)
    assert manifest["kept"] == n_good
    assert manifest["games"] == n_good + len(BAD_GAMES)
    assert manifest["sources"][0]["error"] is None


def test_truncated_zstd_and_flipped_bytes(tmp_path: Path) -> None:
    body = b"".join(good(str(i)) for i in range(40))
    real = data_file("lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst").read_bytes()
    real_pgn = zstandard.ZstdDecompressor().decompressobj().decompress(real)
    flipped = bytearray(body)
    middle = len(body) // 2
    flipped[middle : middle + 40] = bytes(b ^ 0xA5 for b in flipped[middle : middle + 40])
    files = {
        "truncated.pgn.zst": real[: len(real) // 2],
        "flipped.pgn": bytes(flipped),
        "truncated.pgn.gz": gzip.compress(real_pgn)[: len(real) // 2],
        "empty.pgn": b"",
    }
    manifest = _run(tmp_path, files)
    rows = {Path(s["name"]).name: s for s in manifest["sources"]}
    for name in ("truncated.pgn.zst", "truncated.pgn.gz"):
        row = rows[name]
        assert "truncated" in row["error"], row
        assert 100 < row["games"] < 999  # the games before the cut are read and filtered
        assert row["rejected"].get("truncated") == 1  # the game cut in two is counted
        assert row["kept"] + sum(row["rejected"].values()) == row["games"]
    flip = rows["flipped.pgn"]
    assert flip["error"] is None
    # damage stays local: here the damaged tag lines of one game are split off as text between
    # games (the game before them is kept, and the damaged game's other tags still hold)
    assert flip["games"] >= 40 and 37 <= flip["kept"] <= 40 and flip["rejected"]
    assert flip["kept"] + sum(flip["rejected"].values()) == flip["games"]
    assert rows["empty.pgn"]["games"] == 0 and rows["empty.pgn"]["error"] is None
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest


def test_folder_without_pgn_is_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from data_pipeline.sources import SourceError

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no games here")
    with pytest.raises(SourceError, match=r"holds no \.pgn"):
        build(
            [str(tmp_path / "notes")],
            tmp_path / "out",
            BuildConfig(),
            use_ray=False,
            progress=False,
        )


# --- text between games (after a termination marker, before the next tags) --------------------

ANALYSED = "lichess/lichess_db_standard_rated_2026-06.analysed500.pgn"
STRAY_TEXTS = (
    b"this line is not PGN\n\n",
    b"\xff\xfe\x00 binary bytes \x01\x02\n",
    b"1. d4 d5 2. c4 0-1\n\n",  # movetext without headers
    b"{ a comment after the game } ; and a line comment\n\n",
)


def _with_stray_text(original: bytes) -> tuple[bytes, int]:
    """The real file with stray text after every 50th game (one on the marker's own line)."""
    from data_pipeline.pgn import iter_raw_games

    parts, n = [], 0
    for game in iter_raw_games(io.BytesIO(original)):
        if game.index % 50 == 7:
            stray = STRAY_TEXTS[n % len(STRAY_TEXTS)]
            if n % 5 == 4:  # on the marker's line: "1-0 junk"
                parts.append(game.data.rstrip() + b" " + stray)
            else:
                parts.append(game.data + stray)
            n += 1
        else:
            parts.append(game.data)
    return b"".join(parts), n


def test_filter_drops_text_between_games_and_counts_it(tmp_path: Path) -> None:
    import chess.pgn

    from data_pipeline.extract import filter_games

    original = data_file(ANALYSED).read_bytes()
    dirty, n_stray = _with_stray_text(original)
    src = tmp_path / "dirty.pgn"
    src.write_bytes(dirty)
    out = io.BytesIO()
    report = filter_games([str(src)], out, FilterConfig(cap=3000, only_elo=True))
    assert report.kept == 500  # every game kept
    assert report.rejected == {"between_games": n_stray} and n_stray >= 10
    assert out.getvalue() == original  # kept games unchanged, the stray text gone
    handle = io.StringIO(out.getvalue().decode("utf-8"))
    read = 0
    while (game := chess.pgn.read_game(handle)) is not None:
        assert game.errors == [], (read, game.errors)
        read += 1
    assert read == 500


def test_build_counts_text_between_games_and_keeps_the_games(tmp_path: Path) -> None:
    original = data_file(ANALYSED).read_bytes()
    dirty, n_stray = _with_stray_text(original)
    cfg = BuildConfig(filters=FilterConfig(cap=1800), chunk_games=100)
    clean = _run(tmp_path / "clean", {"clean.pgn": original}, cfg)
    stray = _run(tmp_path / "stray", {"dirty.pgn": dirty}, cfg)
    assert stray["rejected"].pop("between_games") == n_stray
    assert stray["reasons"].pop("between_games").startswith("text after a game's termination")
    assert stray["kept"] == clean["kept"] and stray["rejected"] == clean["rejected"]
    assert stray["positions"] == clean["positions"]  # the same games, ids and splits
    assert stray["games"] == clean["games"] + n_stray
