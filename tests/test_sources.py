"""Sources: every compression, folders, globs, stdin, truncation and corruption (Lichess
downloads are in test_lichess_source.py)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import chess.pgn
import pytest
import zstandard

from data_pipeline.sources import (
    DEFAULT_DATA_DIR,
    Compression,
    Source,
    SourceError,
    expand_spec,
    file_digest,
    open_source,
    resolve_sources,
)
from tests.conftest import read_blocks, write

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda b: b,
    "zstd": lambda b: zstandard.ZstdCompressor(level=1).compress(b),
    "bz2": lambda b: bz2.compress(b, 1),
    "gzip": lambda b: gzip.compress(b, 1),
}
SUFFIX = {"none": ".pgn", "zstd": ".pgn.zst", "bz2": ".pgn.bz2", "gzip": ".pgn.gz"}


# --- local files --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["none", "zstd", "bz2", "gzip"])
def test_each_compression_decompresses_to_identical_bytes(
    kind: Compression, dump: bytes, pgn: bytes, tmp_path: Path
) -> None:
    data = dump if kind == "zstd" else COMPRESS[kind](pgn)
    path = write(tmp_path / f"games{SUFFIX[kind]}", data)
    [source] = resolve_sources([str(path)])
    assert source == Source(name=str(path.resolve()), path=path.resolve(), compression=kind,
                            size=len(data))  # fmt: skip
    with open_source(source) as stream:
        assert read_blocks(stream) == pgn
        assert stream.finished and stream.compression == kind
        assert stream.raw_bytes_read == len(data)
        assert stream.decompressed_bytes_read == len(pgn)
        assert stream.digest() == file_digest(path) == hashlib.sha256(data).hexdigest()
    assert stream.closed


def test_wrong_extension_is_read_by_magic_bytes(dump: bytes, pgn: bytes, tmp_path: Path) -> None:
    gz_as_zst = write(tmp_path / "a.pgn.zst", COMPRESS["gzip"](pgn))
    zst_as_pgn = write(tmp_path / "b.pgn", dump)
    found = resolve_sources([str(gz_as_zst), str(zst_as_pgn)])
    assert [s.compression for s in found] == ["gzip", "zstd"]
    for source in found:
        with open_source(source) as stream:
            assert stream.read() == pgn


def test_unknown_formats_are_clear_errors(pgn: bytes, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="xz data is not supported"):
        resolve_sources([str(write(tmp_path / "a.pgn.xz", lzma.compress(pgn[:1000])))])
    with pytest.raises(SourceError, match="unknown binary format"):
        resolve_sources([str(write(tmp_path / "b.pgn", bytes(range(256)) * 4))])


@pytest.mark.parametrize("kind", ["zstd", "bz2", "gzip"])
def test_concatenated_frames_and_members_are_all_read(
    kind: str, pgn: bytes, tmp_path: Path
) -> None:
    a, b = pgn[:70_000], pgn[70_000:150_000]
    path = write(tmp_path / "two.pgn.x", COMPRESS[kind](a) + COMPRESS[kind](b))
    with open_source(resolve_sources([str(path)])[0]) as stream:
        assert read_blocks(stream, 4096) == a + b


def test_stream_works_under_a_text_wrapper_with_python_chess(dump: bytes, tmp_path: Path) -> None:
    [source] = resolve_sources([str(write(tmp_path / "d.pgn.zst", dump))])
    with open_source(source) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8")
        games = [chess.pgn.read_game(text) for _ in range(3)]
        assert stream.peek(1)  # the stream is still mid-file
    assert all(g is not None and g.headers["Event"].startswith("Rated") for g in games)


def test_folder_expands_recursively_and_sorted(dump: bytes, tmp_path: Path) -> None:
    root = tmp_path / "games"
    for rel in ["b.pgn.gz", "a.pgn", "sub/c.pgn.zst", "sub/deeper/0.pgn.bz2"]:
        write(root / rel, b"")
    write(root / "notes.txt", b"x")
    write(root / "sub" / "e.pgn.zst.part", b"partial")
    got = [Path(s.name).relative_to(root.resolve()) for s in resolve_sources([str(root)])]
    assert [str(p) for p in got] == ["a.pgn", "b.pgn.gz", "sub/c.pgn.zst", "sub/deeper/0.pgn.bz2"]


def test_folder_without_pgn_is_an_error_unless_allowed(tmp_path: Path) -> None:
    write(tmp_path / "empty" / "readme.md", b"no games here")
    with pytest.raises(SourceError, match="holds no"):
        resolve_sources([str(tmp_path / "empty")])
    assert resolve_sources([str(tmp_path / "empty")], allow_empty=True) == []


def test_glob_is_sorted_and_no_match_is_an_error(tmp_path: Path) -> None:
    for name in ["m3.pgn.zst", "m1.pgn.zst", "m2.pgn.gz", "m0.pgn.zst"]:
        write(tmp_path / name, b"")
    got = resolve_sources([str(tmp_path / "m*.pgn.zst")])
    assert [Path(s.name).name for s in got] == ["m0.pgn.zst", "m1.pgn.zst", "m3.pgn.zst"]
    with pytest.raises(SourceError, match="no file matches"):
        resolve_sources([str(tmp_path / "z*.pgn")])
    with pytest.raises(SourceError, match="no such file"):
        resolve_sources([str(tmp_path / "absent.pgn")])


def test_repeated_sources_are_dropped_keeping_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = write(tmp_path / "a.pgn", b""), write(tmp_path / "b.pgn", b"")
    monkeypatch.chdir(tmp_path)
    got = resolve_sources(["b.pgn", str(a), str(tmp_path / "*.pgn"), str(tmp_path)])
    assert [s.path for s in got] == [b.resolve(), a.resolve()]


def fake_stdin(monkeypatch: pytest.MonkeyPatch, buffer: io.BufferedReader | io.BytesIO) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(buffer))


def test_stdin_is_detected_by_peeking(
    pgn: bytes, dump: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_stdin(monkeypatch, io.BufferedReader(io.BytesIO(COMPRESS["gzip"](pgn))))
    [source] = resolve_sources(["-", "-"])
    assert source == Source(name="<stdin>", path=None, compression="gzip", size=None)
    with open_source(source) as stream:
        assert read_blocks(stream) == pgn
    assert not sys.stdin.buffer.closed  # stdin is not ours to close
    # A stdin that cannot peek (a bare BytesIO) is detected when opened.
    fake_stdin(monkeypatch, io.BytesIO(dump))
    [source] = resolve_sources(["-"])
    assert source.compression == "auto"
    with open_source(source) as stream:
        assert stream.compression == "zstd" and read_blocks(stream) == pgn


def test_stdin_through_a_real_pipe(pgn: bytes) -> None:
    data = COMPRESS["gzip"](pgn)
    code = (
        "from data_pipeline.sources import open_source, resolve_sources\n"
        "[source] = resolve_sources(['-'])\n"
        "with open_source(source) as f:\n"
        "    n = len(f.read())\n"
        "print(source.name, source.compression, n, f.raw_bytes_read, f.digest())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    expected = f"<stdin> gzip {len(pgn)} {len(data)} {hashlib.sha256(data).hexdigest()}"
    assert done.stdout.decode().split() == expected.split()


def test_data_variable_expands_from_the_environment_or_its_default(
    pgn: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`${ELOCAP_DATA}` in a spec is the environment's data folder, or the shared folder beside
    the checkout when unset; a variable that is unset with no folder to fall back on is one
    line naming the spec and the variable, and text without `${...}` is left alone."""
    write(tmp_path / "lichess" / "a.pgn", pgn)
    monkeypatch.setenv("ELOCAP_DATA", str(tmp_path))
    [found] = resolve_sources(["${ELOCAP_DATA}/lichess"])
    assert found.path == (tmp_path / "lichess" / "a.pgn").resolve()
    assert expand_spec("$ELOCAP_DATA/x-${ELOCAP_DATA}") == f"$ELOCAP_DATA/x-{tmp_path}"
    monkeypatch.delenv("ELOCAP_DATA")
    if DEFAULT_DATA_DIR.is_dir():  # this checkout has shared/data beside it
        assert Path(expand_spec("${ELOCAP_DATA}/lichess")) == DEFAULT_DATA_DIR / "lichess"
    else:
        with pytest.raises(SourceError, match="ELOCAP_DATA is not set"):
            expand_spec("${ELOCAP_DATA}/lichess")
    absent = tmp_path / "absent"
    with pytest.raises(SourceError) as err:
        expand_spec("${ELOCAP_DATA}/lichess", environ={}, defaults={"ELOCAP_DATA": absent})
    assert str(err.value) == (
        f"source '${{ELOCAP_DATA}}/lichess': $ELOCAP_DATA is not set and its default {absent} "
        "does not exist; set ELOCAP_DATA"
    )
    with pytest.raises(SourceError, match=r"\$ELOCAP_NO_SUCH is not set and it has no default"):
        resolve_sources(["${ELOCAP_NO_SUCH}/games.pgn"])
    empty = {"ELOCAP_DATA": ""}  # an empty variable is unset: the default applies
    assert expand_spec("${ELOCAP_DATA}", environ=empty, defaults={"ELOCAP_DATA": tmp_path}) == str(
        tmp_path
    )


# --- truncation and corruption ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zstd", "gzip", "bz2"])
def test_truncated_stream_returns_its_prefix_then_raises(
    kind: str, dump: bytes, pgn: bytes, tmp_path: Path
) -> None:
    data = dump if kind == "zstd" else COMPRESS[kind](pgn)
    path = write(tmp_path / f"cut{SUFFIX[kind]}", data[: len(data) // 2])
    with open_source(resolve_sources([str(path)])[0]) as stream:
        prefix = stream.read(len(pgn))  # one big read: gets what was readable...
        assert 0 < len(prefix) < len(pgn) and prefix == pgn[: len(prefix)]
        with pytest.raises(SourceError) as err:  # ...and the next read reports the damage
            stream.read(1 << 20)
        with pytest.raises(SourceError):  # and keeps reporting it
            stream.read(1)
    assert re.fullmatch(
        rf"truncated or corrupt {kind} stream in {re.escape(str(path))} "
        rf"after {len(prefix)} decompressed bytes: .+",
        str(err.value),
    )
    assert not stream.finished


def test_corrupt_zstd_raises_source_error(dump: bytes, tmp_path: Path) -> None:
    data = bytearray(dump)
    data[100_000:100_100] = bytes(100)
    path = write(tmp_path / "bad.pgn.zst", bytes(data))
    stream = open_source(resolve_sources([str(path)])[0])
    with stream, pytest.raises(SourceError, match="truncated or corrupt zstd stream"):
        read_blocks(stream)
    assert stream.closed


def test_a_study_records_its_expanded_sources_as_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${ELOCAP_DATA}/...`` is what the data stage reads, so it is the input whose change
    marks the stage stale (before: the unexpanded path never existed, and no input was kept)."""
    from jobs.study import stage_inputs
    from jobs.study_config import DataStage, StudyConfig

    (tmp_path / "lichess").mkdir()
    (tmp_path / "lichess" / "a.pgn").write_text("")
    cfg = StudyConfig(data=DataStage(sources=("${ELOCAP_DATA}/lichess",), caps=(1500,)))
    monkeypatch.setenv("ELOCAP_DATA", str(tmp_path))
    assert stage_inputs("data", cfg) == [tmp_path / "lichess"]
    assert stage_inputs("supervised", cfg) == []
