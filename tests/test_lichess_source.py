"""`lichess:YYYY-MM` over a real local HTTP server: Range, dropped connections, servers that
ignore Range, 404, published checksums, and a cache that is never half-written."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from data_pipeline import lichess_download
from data_pipeline.sources import (
    Source,
    SourceError,
    open_source,
    resolve_sources,
)
from tests.conftest import read_blocks, write

DUMP_NAME = "lichess_db_standard_rated_2021-10.pgn.zst"
DUMP_URL_PATH = f"/standard/{DUMP_NAME}"
DROP_AFTER = 100 * 1024


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
    monkeypatch.setattr(lichess_download, "DOWNLOAD_BACKOFF_S", 0.0)
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
