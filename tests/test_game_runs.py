"""The build's driver splits a stream into runs of games (bytes and offsets, no ``RawGame`` each):
the games of the runs are exactly those of ``iter_raw_games`` whatever the run length and read
size, on the real files and on streams with every special case (leading text, a byte-order mark,
an oversized game, stray text, a truncated tail)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from data_pipeline import sources
from data_pipeline.pgn import iter_game_runs, iter_raw_games
from tests.conftest import LICHESS_FILES, data_file

GAME = (
    b'[Event "x"]\n[Site "https://lichess.org/{i}"]\n[Result "1-0"]\n\n'
    b"1. e4 { [%clk 0:01:00] } e5 2. Nf3 1-0\n\n"
)


def _stream_bytes(path: Path) -> bytes:
    with sources.open_source(sources.resolve_sources([str(path)])[0]) as f:
        return f.read()


class _Failing(io.BytesIO):
    """A stream that raises after its bytes, as a truncated archive does."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data:
            raise sources.SourceError("truncated")
        return data


def _runs_games(data: bytes, run: int, **kw: int) -> list[tuple[object, ...]]:
    out = []
    for r in iter_game_runs(io.BytesIO(data), run, **kw):
        assert 1 <= len(r) <= run
        out += r.games()
    return [(g.index, g.data, g.header_end, g.oversized, g.truncated) for g in out]


def _raw(data: bytes, **kw: int) -> list[tuple[object, ...]]:
    games = iter_raw_games(io.BytesIO(data), stray_text=False, **kw)
    return [(g.index, g.data, g.header_end, g.oversized, g.truncated) for g in games]


@pytest.mark.parametrize("name", LICHESS_FILES)
def test_runs_split_real_files_as_iter_raw_games(name: str) -> None:
    data = _stream_bytes(data_file(name))
    expected = _raw(data)
    for run in (1, 7, 500, 10**6):
        assert _runs_games(data, run) == expected
    assert _runs_games(data, 64, block_bytes=4096) == _raw(data, block_bytes=4096)


def test_runs_split_special_cases_as_iter_raw_games() -> None:
    games = [GAME.replace(b"{i}", str(i).encode()) for i in range(40)]
    huge = games[3].replace(b"e5 ", b"e5 " + b"{ long comment } " * 400)
    stray = games[5] + b"stray text after the marker\n\n"
    data = b"\xef\xbb\xbfleading text\n\n" + b"".join(
        [*games[:3], huge, games[4], stray, *games[6:]]
    )
    for kw in ({}, {"block_bytes": 97, "max_game_bytes": 2000}, {"block_bytes": 5000}):
        expected = _raw(data, **kw)
        for run in (1, 3, 16, 1000):
            assert _runs_games(data, run, **kw) == expected
    assert any(g[3] for g in _raw(data, block_bytes=97, max_game_bytes=2000))  # oversized seen

    cut = data[: len(data) - 30]  # ends inside the last game, then the read fails
    expected = []
    with pytest.raises(sources.SourceError):
        for g in iter_raw_games(_Failing(cut), stray_text=False, block_bytes=200):
            expected.append((g.index, g.data, g.header_end, g.oversized, g.truncated))
    for run in (1, 6, 1000):
        got = []
        with pytest.raises(sources.SourceError):
            for r in iter_game_runs(_Failing(cut), run, block_bytes=200):
                got += [(g.index, g.data, g.header_end, g.oversized, g.truncated)
                        for g in r.games()]  # fmt: skip
        assert got == expected
    assert expected[-1][4]  # the tail is marked truncated
