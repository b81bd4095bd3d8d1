"""Sources: every compression, folders, globs, stdin, truncation, and Lichess downloads over a
real local HTTP server (Range, dropped connections, servers that ignore Range, 404, checksums)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import io
import lzma
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import chess.pgn
import pytest
import zstandard

from data_pipeline import sources
from data_pipeline.sources import (
    Compression,
    HashingStream,
    Source,
    SourceError,
    file_digest,
    open_source,
    resolve_sources,
)

DATA = Path(
    os.environ.get("ELOCAP_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
DUMP_NAME = "lichess_db_standard_rated_2021-10.pgn.zst"
DUMP_URL_PATH = f"/standard/{DUMP_NAME}"
DROP_AFTER = 100 * 1024


@pytest.fixture(scope="module")
def dump() -> bytes:
    path = DATA / "lichess" / "lichess_db_standard_rated_2021-10.first999.pgn.zst"
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing test data {path}")
        pytest.skip(f"missing test data {path}")
    return path.read_bytes()


@pytest.fixture(scope="module")
def pgn(dump: bytes) -> bytes:
    """The true decompressed content, through zstandard's one-shot reader."""
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(dump)).read()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_blocks(stream: HashingStream, block: int = 1 << 20) -> bytes:
    return b"".join(iter(lambda: stream.read(block), b""))


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


# --- lichess:YYYY-MM over a real local HTTP server ----------------------------------------


@dataclass
class Served:
    """What a test server holds, how it misbehaves, and what it was asked."""

    files: dict[str, bytes]
    honour_range: bool = True
    drops: int = 0  # this many requests for the dump are cut after DROP_AFTER bytes
    watch: Path | None = None  # the final cache path, checked at every request
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    final_seen: list[bool] = field(default_factory=list)


class Handler(http.server.BaseHTTPRequestHandler):
    served: Served  # set on a per-server subclass

    def log_message(self, format: str, *args: object) -> None:
        """Silences the per-request log lines."""

    def do_GET(self) -> None:
        s = self.served
        s.requests.append((self.path, self.headers.get("Range")))
        s.final_seen.append(s.watch is not None and s.watch.exists())
        body = s.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, total = 0, len(body)
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and s.honour_range:
            start = int(match[1])
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(total - start))
        self.end_headers()
        payload = body[start:]
        if self.path == DUMP_URL_PATH and s.drops > 0:
            s.drops -= 1
            payload = payload[:DROP_AFTER]  # then HTTP/1.0 closes the connection
        self.wfile.write(payload)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Served], str]]:
    """Start a real HTTP server on 127.0.0.1 for a Served plan; yields its base URL."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr(sources, "DOWNLOAD_BACKOFF_S", 0.0)
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(served: Served) -> str:
        handler = type("PlanHandler", (Handler,), {"served": served})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def resolve_month(base_url: str, cache: Path, spec: str = "lichess:2021-10") -> Source:
    [source] = resolve_sources([spec], cache_dir=cache, lichess_base_url=base_url, progress=False)
    return source


def test_lichess_downloads_once_then_uses_the_cache(
    serve: Callable[[Served], str], dump: bytes, pgn: bytes, tmp_path: Path
) -> None:
    final = tmp_path / "cache" / DUMP_NAME
    served = Served({DUMP_URL_PATH: dump}, watch=final)
    url = serve(served)
    source = resolve_month(url, tmp_path / "cache")
    assert source == Source(name="lichess:2021-10", path=final, compression="zstd", size=len(dump))
    assert final.read_bytes() == dump and sorted(final.parent.iterdir()) == [final]
    with open_source(source) as stream:
        assert read_blocks(stream) == pgn
    assert [r for r in served.requests if r[0] == DUMP_URL_PATH] == [(DUMP_URL_PATH, None)]
    before = len(served.requests)
    assert resolve_month(url, tmp_path / "cache") == source
    assert len(served.requests) == before  # the cache answered: no HTTP at all
    assert not any(served.final_seen)


def test_lichess_url_and_cache_come_from_the_environment(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELOCAP_LICHESS_URL", serve(Served({DUMP_URL_PATH: dump})))
    monkeypatch.setenv("ELOCAP_CACHE", str(tmp_path))
    [source] = resolve_sources(["lichess:2021-10"], progress=False)
    assert source.path == tmp_path / "lichess" / DUMP_NAME and source.path.read_bytes() == dump


def test_lichess_download_resumes_after_a_dropped_connection(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path
) -> None:
    final = tmp_path / DUMP_NAME
    served = Served({DUMP_URL_PATH: dump}, drops=1, watch=final)
    resolve_month(serve(served), tmp_path)
    assert final.read_bytes() == dump
    dump_requests = [r for r in served.requests if r[0] == DUMP_URL_PATH]
    assert dump_requests == [(DUMP_URL_PATH, None), (DUMP_URL_PATH, f"bytes={DROP_AFTER}-")]
    assert not any(served.final_seen)


@pytest.mark.parametrize("drops", [0, 1])
def test_lichess_server_ignoring_range_restarts_from_zero(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path, drops: int
) -> None:
    final = tmp_path / DUMP_NAME
    write(tmp_path / f"{DUMP_NAME}.part", b"stale bytes that are not the dump" * 100)
    served = Served({DUMP_URL_PATH: dump}, honour_range=False, drops=drops, watch=final)
    resolve_month(serve(served), tmp_path)
    assert final.read_bytes() == dump
    assert all(r[1] is not None for r in served.requests if r[0] == DUMP_URL_PATH)
    assert not any(served.final_seen)


def test_lichess_404_is_a_clear_error(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="HTTP 404"):
        resolve_month(serve(Served({DUMP_URL_PATH: dump})), tmp_path, "lichess:2030-01")
    assert list(tmp_path.iterdir()) == []


def test_failed_download_leaves_only_the_part_file_and_resumes_later(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path
) -> None:
    final, part = tmp_path / DUMP_NAME, tmp_path / f"{DUMP_NAME}.part"
    broken = Served({DUMP_URL_PATH: dump}, honour_range=False, drops=10**6, watch=final)
    with pytest.raises(SourceError, match="failed 7 times in a row"):
        resolve_month(serve(broken), tmp_path)
    assert sorted(tmp_path.iterdir()) == [part] and part.read_bytes() == dump[:DROP_AFTER]
    assert not any(broken.final_seen)
    good = Served({DUMP_URL_PATH: dump})
    resolve_month(serve(good), tmp_path)
    assert final.read_bytes() == dump and not part.exists()
    assert good.requests[0] == (DUMP_URL_PATH, f"bytes={DROP_AFTER}-")


def test_lichess_complete_part_is_finished_after_a_416(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path
) -> None:
    write(tmp_path / f"{DUMP_NAME}.part", dump)  # e.g. killed between download and rename
    served = Served({DUMP_URL_PATH: dump})
    resolve_month(serve(served), tmp_path)
    assert (tmp_path / DUMP_NAME).read_bytes() == dump
    assert served.requests[0] == (DUMP_URL_PATH, f"bytes={len(dump)}-")


@pytest.mark.parametrize("good", [True, False])
def test_lichess_published_checksum_is_verified(
    serve: Callable[[Served], str], dump: bytes, tmp_path: Path, good: bool
) -> None:
    digest = hashlib.sha256(dump if good else b"other").hexdigest()
    sums = f"{'0' * 64}  other.pgn.zst\n{digest}  {DUMP_NAME}\n".encode()
    url = serve(Served({DUMP_URL_PATH: dump, "/standard/sha256sums.txt": sums}))
    if good:
        assert resolve_month(url, tmp_path).path == tmp_path / DUMP_NAME
    else:
        with pytest.raises(SourceError, match="does not match the published SHA-256"):
            resolve_month(url, tmp_path)
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "spec", ["lichess:2021-13", "lichess:2021-00", "lichess:2021-1", "lichess:21-10", "lichess:"]
)
def test_lichess_spec_is_validated(spec: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="expected lichess:YYYY-MM"):
        resolve_sources([spec], cache_dir=tmp_path, lichess_base_url="http://127.0.0.1:9")


def test_lichess_without_download_needs_the_cache(dump: bytes, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not cached"):
        resolve_sources(["lichess:2021-10"], cache_dir=tmp_path, download=False)
    write(tmp_path / DUMP_NAME, dump)
    [source] = resolve_sources(["lichess:2021-10"], cache_dir=tmp_path, download=False)
    assert source.size == len(dump)
