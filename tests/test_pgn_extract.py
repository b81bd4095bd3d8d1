"""`elocap data filter --only-elo` keeps exactly the games Debian's pgn-extract keeps."""

from __future__ import annotations

import collections
import io
import subprocess
from pathlib import Path

import chess.pgn
import pytest
import zstandard

from data_pipeline.extract import filter_games
from data_pipeline.filters import FilterConfig
from tests.conftest import LICHESS_FILES, data_file, debian_tool

# pgn-extract rewrites games (it adds missing Seven Tag Roster tags such as Round "?"), so the
# game sets are compared on identifying tags that both outputs carry unchanged.
_KEY_TAGS = ("Site", "White", "Black", "Date", "UTCTime", "Result", "WhiteElo", "BlackElo")


def _game_keys(pgn: bytes) -> collections.Counter[tuple[str, ...]]:
    keys: collections.Counter[tuple[str, ...]] = collections.Counter()
    handle = io.StringIO(pgn.decode("utf-8", "replace"))
    while (headers := chess.pgn.read_headers(handle)) is not None:
        keys[tuple(headers.get(tag, "") for tag in _KEY_TAGS)] += 1
    return keys


@pytest.mark.slow
@pytest.mark.parametrize("relative", LICHESS_FILES)
def test_only_elo_filter_matches_pgn_extract(relative: str, tmp_path: Path) -> None:
    pgn_extract = debian_tool("pgn-extract")
    source = data_file(relative)
    plain = source
    if source.suffix == ".zst":  # pgn-extract reads plain PGN
        plain = tmp_path / source.with_suffix("").name
        with open(source, "rb") as f:
            plain.write_bytes(zstandard.ZstdDecompressor().stream_reader(f).read())
    for cap in (1200, 1500, 1800):
        tags = tmp_path / "tags.txt"
        tags.write_text(f'WhiteElo <= "{cap}"\nBlackElo <= "{cap}"\n')
        out = tmp_path / f"pgn-extract-{cap}.pgn"
        subprocess.run(
            [pgn_extract, "-s", "-t", str(tags), "-o", str(out), str(plain)],
            check=True,
            capture_output=True,
        )
        theirs = _game_keys(out.read_bytes())
        buffer = io.BytesIO()
        report = filter_games([str(source)], buffer, FilterConfig(cap=cap, only_elo=True))
        ours = _game_keys(buffer.getvalue())
        print(f"{source.name} cap {cap}: pgn-extract {sum(theirs.values())}, elocap {report.kept}")
        assert report.kept == sum(ours.values())
        assert ours == theirs, (
            list((ours - theirs).items())[:3],
            list((theirs - ours).items())[:3],
        )
