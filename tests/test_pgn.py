"""The byte-level splitter and the header filters, on hand-made and real PGN."""

from __future__ import annotations

import io

import pytest

from data_pipeline.filters import (
    FilterConfig,
    check_elo,
    header_predicates,
    prefilter,
    time_control_class,
)
from data_pipeline.pgn import iter_raw_games, parse_headers
from tests.conftest import data_file

GAME = (
    b'[Event "Rated Blitz game"]\n[White "a"]\n[Black "b"]\n[Result "1-0"]\n'
    b'[WhiteElo "1400"]\n[BlackElo "1450"]\n\n'
    b"1. e4 e5 2. Qh5 Nc6 3. Bc4 Nf6 4. Qxf7# 1-0\n\n"
)


def _games(data: bytes, **kw: int) -> list:
    return list(iter_raw_games(io.BytesIO(data), **kw))


def test_split_keeps_bytes_and_boundaries() -> None:
    data = GAME * 3
    games = _games(data)
    assert [g.index for g in games] == [0, 1, 2]
    assert b"".join(g.data for g in games) == data
    assert all(g.headers()["WhiteElo"] == "1400" for g in games)


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_split_is_independent_of_read_size(block: int) -> None:
    data = GAME + b"junk before nothing\n" + GAME.replace(b"\n", b"\r\n") + GAME
    assert [g.data for g in _games(data, block_bytes=block)] == [g.data for g in _games(data)]


def test_bom_crlf_headerless_lead_and_no_moves() -> None:
    data = b"\xef\xbb\xbfgarbage line\n\n" + GAME.replace(b"\n", b"\r\n") + b'[Event "x"]\n\n'
    games = _games(data)
    assert games[0].header_end == 0 and games[0].data.startswith(b"garbage")
    assert games[1].headers()["Black"] == "b"  # CRLF headers parse without the \r
    assert games[2].headers() == {"Event": "x"} and games[2].movetext.strip() == b""


def test_oversized_game_is_cut_and_the_next_one_kept() -> None:
    big = GAME.replace(b"1. e4", b"{" + b"x" * 5000 + b"} 1. e4")
    games = _games(GAME + big + GAME, block_bytes=512, max_game_bytes=2000)
    assert [g.oversized for g in games] == [False, True, False]
    assert games[2].data == GAME


def test_escaped_tag_values_and_non_utf8() -> None:
    h = parse_headers(b'[White "a \\"quoted\\" name"]\n[Black "caf\xe9"]\n')
    assert h["White"] == 'a "quoted" name'
    assert h["Black"] == "caf\ufffd"


def test_real_files_have_the_documented_game_counts() -> None:
    from data_pipeline import sources

    counts = {
        "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst": 999,
        "lichess/lichess_db_standard_rated_2026-06.analysed500.pgn": 500,
        "lichess/lichess-exporter-2016-05.partial-headers.pgn": 4798,
        "lichess/lichess-user-export-arenas-2018.variants-and-fen.pgn": 1972,
        "lichess/lichess-user-export-2024.low-elo.pgn": 2110,
        "lichess/lichess-user-exports-2026.high-elo.pgn": 558,
    }
    for relative, n in counts.items():
        (src,) = sources.resolve_sources([str(data_file(relative))], progress=False)
        with sources.open_source(src) as stream:
            games = list(iter_raw_games(stream))
        assert len(games) == n, relative
        assert all(g.header_end > 0 for g in games)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15+0", "ultrabullet"),
        ("30+0", "bullet"),
        ("60+0", "bullet"),
        ("120+1", "bullet"),
        ("120+2", "blitz"),
        ("180+0", "blitz"),
        ("300+3", "blitz"),
        ("480+0", "rapid"),
        ("600+5", "rapid"),
        ("900+10", "rapid"),
        ("1500+0", "classical"),
        ("1800+30", "classical"),
        ("-", "correspondence"),
        (None, "unknown"),
        ("?", "unknown"),
    ],
)
def test_time_control_classes(value: str | None, expected: str) -> None:
    assert time_control_class(value) == expected


def test_elo_rules() -> None:
    both = FilterConfig(cap=1500)
    assert check_elo({"WhiteElo": "1500", "BlackElo": "1499"}, both) is None
    assert check_elo({"WhiteElo": "1501", "BlackElo": "1000"}, both) == "elo_above_cap"
    assert check_elo({"WhiteElo": "?", "BlackElo": "1000"}, both) == "elo_missing"
    assert check_elo({"BlackElo": "1000"}, both) == "elo_missing"
    assert check_elo({"WhiteElo": "12a", "BlackElo": "1000"}, both) == "elo_not_numeric"
    mean = FilterConfig(cap=1500, elo_rule="mean")
    assert check_elo({"WhiteElo": "1700", "BlackElo": "1300"}, mean) is None
    assert check_elo({"WhiteElo": "1700", "BlackElo": "1302"}, mean) == "elo_above_cap"
    mover = FilterConfig(cap=1500, elo_rule="mover")
    assert check_elo({"WhiteElo": "2700", "BlackElo": "1300"}, mover) is None
    assert check_elo({"WhiteElo": "2700", "BlackElo": "?"}, mover) == "elo_above_cap"
    assert check_elo({"WhiteElo": "?", "BlackElo": "?"}, mover) == "elo_missing"


def test_prefilter_reasons_in_order() -> None:
    cfg = FilterConfig(cap=2000, time_controls=frozenset({"blitz"}), date_from="2020.01.01")
    preds = header_predicates(cfg)
    base = {
        "Event": "Rated Blitz game",
        "Result": "1-0",
        "WhiteElo": "1500",
        "BlackElo": "1500",
        "TimeControl": "180+2",
        "UTCDate": "2021.10.01",
        "Termination": "Normal",
    }
    assert prefilter(base, preds, cfg) is None
    cases = {
        "variant": {"Variant": "Chess960"},
        "setup_fen": {"SetUp": "1", "FEN": "8/8/8/8/8/8/8/K6k w - - 0 1"},
        "unrated": {"Event": "Casual Blitz game"},
        "bot": {"WhiteTitle": "BOT"},
        "termination": {"Termination": "Abandoned"},
        "time_control": {"TimeControl": "60+0"},
        "date": {"UTCDate": "2019.12.31"},
        "no_result": {"Result": "*"},
        "elo_above_cap": {"BlackElo": "2001"},
    }
    for reason, change in cases.items():
        assert prefilter({**base, **change}, preds, cfg) == reason
    only = FilterConfig(cap=2000, only_elo=True)
    assert prefilter({**base, "Variant": "Chess960"}, header_predicates(only), only) is None
    assert prefilter({}, preds, cfg) == "no_headers"


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="elo_rule"):
        FilterConfig(elo_rule="median")
    with pytest.raises(ValueError, match="time-control"):
        FilterConfig(time_controls=frozenset({"hyperbullet"}))
    with pytest.raises(ValueError, match="date_from"):
        FilterConfig(date_from="2021-10-01")


# --- text between games ------------------------------------------------------------------------

STRAY = {
    "same_line": (b"1-0\n\n", b"1-0 this is not PGN\n\n"),
    "own_lines": (b"1-0\n\n", b"1-0\n\nexported by some tool\n\xff\xfe binary \x01\n\n"),
    "headerless_game": (b"1-0\n\n", b"1-0\n\n1. d4 d5 2. c4 0-1\n\n"),
    "after_comment": (b"1-0\n\n", b"1-0 { a comment after the result }\n\n"),
}


@pytest.mark.parametrize("kind", STRAY)
def test_text_after_the_termination_marker_is_split_off(kind: str) -> None:
    old, new = STRAY[kind]
    dirty = GAME.replace(old, new)
    games = _games(dirty + GAME)
    assert [g.between_games for g in games] == [False, True, False]
    assert [g.index for g in games] == [0, 0, 1]  # stray text is no game: it takes no ordinal
    assert games[0].data.rstrip() == GAME.rstrip()  # the game itself, byte for byte
    assert b"".join(g.data for g in games) == dirty + GAME  # nothing lost
    unsplit = _games(dirty + GAME, stray_text=False)
    assert [g.data for g in unsplit] == [dirty, GAME]


def test_markers_in_comments_and_variations_do_not_end_a_game() -> None:
    movetext = (
        b"1. e4 { 1-0 would be early } 1... e5 (1... c5 2. Nf3 0-1) 2. Qh5 ; * not yet\n"
        b"%escaped 1/2-1/2\n2... Nc6 3. Bc4 Nf6 4. Qxf7# 1-0\n\n"
    )
    game = GAME.replace(GAME[GAME.index(b"1. e4") :], movetext)
    games = _games(game + GAME)
    assert [g.data for g in games] == [game, GAME]
    assert not any(g.between_games for g in games)


def test_a_game_without_marker_keeps_its_bytes() -> None:
    cut = GAME.replace(b" 1-0\n\n", b"\n\nmore text\n\n")
    assert [g.data for g in _games(cut + GAME)] == [cut, GAME]
