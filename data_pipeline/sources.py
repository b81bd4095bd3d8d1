"""PGN sources: files (PGN, zstd, bz2, gzip, told by magic bytes), `-` (stdin), folders, globs and
`lichess:YYYY-MM` (downloaded once, resumably, never half-written), opened as decompressed streams.
A spec may name environment variables as `${NAME}` (`expand_spec`): `${ELOCAP_DATA}/lichess` is
the Lichess folder of the shared data, wherever it lies, and a study config that says so runs
unchanged on every machine.

Streams hash the raw bytes (SHA-256, as Lichess's checksums) and feed decoders 64 KiB at a time.
Decoders are `decompressobj`s, whose `eof` tells a complete stream from a truncated one
(zstandard's `stream_reader` silently returns b"" at a truncated frame, so it is not used).
"""

from __future__ import annotations

import bz2
import dataclasses
import glob
import hashlib
import io
import os
import re
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

import zstandard

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

HASH_ALGORITHM = "sha256"  # of `HashingStream.digest()` and `file_digest()`
_BLOCK = 1 << 20  # raw bytes read from disk (or the network) at once
_FEED = 1 << 16  # compressed bytes handed to a decoder at once: bounds one step's output
_PGN_SUFFIXES = (".pgn", ".pgn.zst", ".pgn.bz2", ".pgn.gz")
_FOREIGN = {b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip", b"7z\xbc\xaf": "7z", b"\x04\x22M": "lz4"}

# "auto" only for a stdin that cannot be peeked: `HashingStream.compression` tells, once opened.
Compression = Literal["none", "zstd", "bz2", "gzip", "auto"]

DATA_ENV = "ELOCAP_DATA"  # the real-data folder (SOURCES.md), for `${ELOCAP_DATA}` in a spec
# where it lies when the variable is unset: shared/data beside the project's checkout
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].joinpath("shared", "data")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SourceError(Exception):
    """A source cannot be resolved, downloaded, opened or fully decompressed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source:
    name: str  # absolute path, "<stdin>" or "lichess:YYYY-MM": what manifests record
    path: Path | None  # local file (for lichess: the cached download); None for stdin
    compression: Compression  # from the magic bytes, not the extension
    size: int | None  # bytes on disk (compressed); None for stdin


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: memoryview, /) -> bytes: ...


_DECODERS: dict[str, Callable[[], _Decoder]] = {
    "zstd": lambda: zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj(),
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "bz2": bz2.BZ2Decompressor,
}
_CORRUPT = (zlib.error, OSError, EOFError, ValueError, zstandard.ZstdError)


def detect_compression(head: bytes, name: str) -> Compression:
    """The format of a stream from its first bytes (8 suffice; up to 4 KiB are checked)."""
    if head.startswith(b"\x28\xb5\x2f\xfd") or (head[1:4] == b"\x2a\x4d\x18" and head[0] >> 4 == 5):
        return "zstd"  # a frame, or a skippable frame
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if re.match(rb"BZh[1-9]", head):
        return "bz2"
    for magic, kind in _FOREIGN.items():
        if head.startswith(magic):
            raise SourceError(f"{name}: {kind} data is not supported; use PGN, zstd, bz2 or gzip")
    if b"\x00" in head[:4096]:
        raise SourceError(f"{name}: unknown binary format (not PGN text, zstd, bz2 or gzip)")
    return "none"


class HashingStream(io.BufferedIOBase):
    """Read-only decompressed view of a raw binary stream that hashes the raw bytes it consumes.

    After reading to the end (`finished`), `digest()` and `raw_bytes_read` are the source's
    SHA-256 and size. Damage raises `SourceError` from the read that meets it; a read already
    holding bytes returns them first, and the next read raises.
    """

    def __init__(self, raw: BinaryIO, *, name: str, owns_raw: bool = True) -> None:
        super().__init__()
        self.name, self._raw, self._owns_raw = name, raw, owns_raw
        self._hash = hashlib.sha256()
        self.raw_bytes_read = 0  # compressed bytes consumed (and hashed) so far
        self.decompressed_bytes_read = 0  # bytes returned to the caller so far
        self.finished = False  # the raw stream was read to a clean end
        first = self._read_raw()
        self.compression: Compression = detect_compression(first, name)
        self._pending = memoryview(first)  # raw bytes not yet given to the decoder
        self._decoder: _Decoder | None = None  # None between frames/members
        self._out, self._pos = memoryview(b""), 0  # decoded bytes, returned up to _pos
        self._error: SourceError | None = None  # for the next read, once the prefix is out

    def _read_raw(self) -> bytes:
        data = self._raw.read(_BLOCK)
        self._hash.update(data)
        self.raw_bytes_read += len(data)
        return data

    def _corrupt(self, detail: object) -> SourceError:
        done = self.decompressed_bytes_read + len(self._out) - self._pos
        return SourceError(f"truncated or corrupt {self.compression} stream in {self.name} "
                           f"after {done} decompressed bytes: {detail}")  # fmt: skip

    def _fill(self) -> bool:
        """Refill the (empty) output buffer; False at the clean end of the stream."""
        while True:
            if not self._pending:
                data = self._read_raw()
                if not data and self._decoder is not None:
                    raise self._corrupt("the data ends before the end-of-stream marker")
                if not data:
                    self.finished = True
                    return False
                self._pending = memoryview(data)
            if self.compression == "none":
                out, self._pending = self._pending, memoryview(b"")
            else:
                self._decoder = self._decoder or _DECODERS[self.compression]()
                piece, self._pending = self._pending[:_FEED], self._pending[_FEED:]
                try:
                    out = memoryview(self._decoder.decompress(piece))
                except _CORRUPT as e:
                    raise self._corrupt(e) from e
                if self._decoder.eof:  # a frame/member ended; another may follow
                    rest, self._decoder = self._decoder.unused_data, None
                    if rest:
                        self._pending = memoryview(rest + self._pending.tobytes())
            if out:
                self._out, self._pos = out, 0
                return True

    def _available(self) -> int:
        """Bytes in the output buffer, refilling it if empty; 0 at the end of the stream."""
        if self.closed:
            raise ValueError("I/O operation on a closed stream")
        if self._error is not None:
            raise self._error
        try:
            if self._pos == len(self._out) and not self._fill():
                return 0
        except SourceError as e:
            self._error = e  # every later read raises it too
            raise
        return len(self._out) - self._pos

    def _take(self, k: int) -> memoryview:
        self._pos += k
        self.decompressed_bytes_read += k
        return self._out[self._pos - k : self._pos]

    def readinto(self, b: WriteableBuffer) -> int:
        n = 0
        with memoryview(b) as raw_view, raw_view.cast("B") as view:
            while n < len(view):
                try:
                    k = min(len(view) - n, self._available())
                except SourceError:
                    if n == 0:
                        raise
                    break  # return the bytes read so far; the next read raises
                if k == 0:
                    break
                view[n : n + k] = self._take(k)
                n += k
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(self.read1, b""))
        buf = bytearray(size)
        del buf[self.readinto(buf) :]
        return bytes(buf)

    def read1(self, size: int = -1) -> bytes:
        avail = self._available()
        return self._take(avail if size < 0 else min(size, avail)).tobytes()

    def peek(self, size: int = 0) -> bytes:
        return self._out[self._pos : self._pos + self._available()].tobytes()

    def readable(self) -> bool:
        return True

    def digest(self) -> str:
        """Hex SHA-256 of the raw bytes consumed so far (the whole source once `finished`)."""
        return self._hash.hexdigest()

    def close(self) -> None:
        if not self.closed and self._owns_raw:
            self._raw.close()
        super().close()


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


# Sources up to this size are identified by their SHA-256; larger ones by size, modification time
# and the SHA-256 of their first and last MiB (see `fingerprint`).
FULL_HASH_MAX_BYTES = 256 << 20
EDGE_BYTES = 1 << 20


def fingerprint(source: Source, *, full_hash_max: int | None = None) -> dict[str, object]:
    """A source's identity for a build, cheap enough to take before every run.

    `name` and `bytes` always; then `sha256` of the whole file when it has at most
    `full_hash_max` bytes (default `FULL_HASH_MAX_BYTES`), else `mtime_ns` and `edges_sha256`
    (of the first and last `EDGE_BYTES`). A full hash of a 30 GB monthly dump would take a
    minute or more at every start, only to learn that nothing changed; size, time and edges take
    milliseconds and catch an append or a cut (size), a rewrite (time) and a recompression
    (edges). They miss an edit inside the file that keeps its size and restores its time: the
    build records each source's full SHA-256 as it streams it, for a stage that wants the full
    check. Standard input has no identity before it is read: `bytes` and `sha256` are None.
    """
    if source.path is None:
        return {"name": source.name, "bytes": None, "sha256": None}
    limit = FULL_HASH_MAX_BYTES if full_hash_max is None else full_hash_max
    try:
        st = source.path.stat()
        if st.st_size <= limit:
            return {"name": source.name, "bytes": st.st_size, "sha256": file_digest(source.path)}
        h = hashlib.sha256()
        with open(source.path, "rb") as f:
            h.update(f.read(EDGE_BYTES))
            f.seek(max(EDGE_BYTES, st.st_size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    except OSError as e:
        raise SourceError(f"cannot read {source.name}: {e}") from e
    return {
        "name": source.name,
        "bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "edges_sha256": h.hexdigest(),
    }


def open_source(source: Source) -> HashingStream:
    """Open a source as a decompressed binary stream; use it as a context manager."""
    if source.path is None:
        return HashingStream(sys.stdin.buffer, name=source.name, owns_raw=False)
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 (owned and closed by the stream)
    except OSError as e:
        raise SourceError(f"cannot open {source.name}: {e}") from e
    try:
        return HashingStream(raw, name=source.name)
    except BaseException:
        raw.close()
        raise


def expand_spec(
    spec: str,
    *,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Path] | None = None,
) -> str:
    """`spec` with every `${NAME}` replaced by the environment variable NAME (`environ`, default
    `os.environ`); an unset or empty variable takes its default folder (`defaults`, by default
    `${ELOCAP_DATA}` -> `DEFAULT_DATA_DIR`) when that folder exists, and is otherwise a
    one-line `SourceError` naming the spec and the variable."""
    env = os.environ if environ is None else environ
    fallback = {DATA_ENV: DEFAULT_DATA_DIR} if defaults is None else defaults

    def value(m: re.Match[str]) -> str:
        name = m[1]
        if env.get(name):
            return env[name]
        folder = fallback.get(name)
        if folder is not None and folder.is_dir():
            return str(folder)
        why = f"its default {folder} does not exist" if folder is not None else "it has no default"
        raise SourceError(f"source {spec!r}: ${name} is not set and {why}; set {name}")

    return _VARIABLE.sub(value, spec)


def resolve_sources(
    specs: Sequence[str],
    *,
    cache_dir: Path | None = None,
    lichess_base_url: str | None = None,
    download: bool = True,
    progress: bool = True,
    allow_empty: bool = False,
) -> list[Source]:
    """Expand specs (`${NAME}` first, `expand_spec`) into sources, in order, without repeats,
    downloading Lichess dumps if needed; `allow_empty` lets a folder or pattern contribute
    nothing (and the whole list be empty)."""
    out: dict[str, Source] = {}
    for spec in map(expand_spec, specs):
        if spec == "-":
            found = [_stdin_source()]
        elif spec.startswith("lichess:"):
            from data_pipeline.lichess_download import lichess_source

            found = [lichess_source(spec, cache_dir, lichess_base_url, download, progress)]
        else:
            found = [_file_source(p) for p in _expand(spec, allow_empty)]
        for source in found:
            out.setdefault(str(source.path or source.name), source)
    if not out and not allow_empty:
        raise SourceError(f"no PGN sources in {list(specs)}")
    return list(out.values())


def _file_source(path: Path) -> Source:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        size = path.stat().st_size
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e}") from e
    name = str(path.resolve())
    return Source(name=name, path=Path(name), compression=detect_compression(head, name), size=size)


def _stdin_source() -> Source:
    if sys.stdin is None or sys.stdin.isatty():
        raise SourceError("'-' reads PGN from standard input, but stdin is a terminal or closed")
    peek = getattr(sys.stdin.buffer, "peek", None)
    compression = detect_compression(peek(8)[:8], "<stdin>") if peek else "auto"
    return Source(name="<stdin>", path=None, compression=compression, size=None)


def _expand(spec: str, allow_empty: bool) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.name.lower().endswith(_PGN_SUFFIXES)]
        files = sorted(p for p in found if p.is_file())
        if not files and not allow_empty:
            raise SourceError(f"folder {spec} holds no {', '.join(_PGN_SUFFIXES)} files")
        return files
    if glob.has_magic(spec):
        matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
        if not matches and not allow_empty:
            raise SourceError(f"no file matches the pattern {spec}")
        return [f for m in matches for f in ([m] if m.is_file() else _expand(str(m), True))]
    raise SourceError(f"{spec}: no such file or folder (nor a pattern, '-' or lichess:YYYY-MM)")
