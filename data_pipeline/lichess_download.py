"""`lichess:YYYY-MM` sources: the month's dump downloaded once into a cache, resumably (a
`.part` file grows across dropped connections and failed runs), checked against Lichess's
published SHA-256 when it is there, and never half-written (renamed into place when whole).
Split from `data_pipeline.sources`, which resolves every other kind of spec.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from data_pipeline.sources import _BLOCK, Source, SourceError, _file_source, file_digest

__all__ = ["DOWNLOAD_BACKOFF_S", "DOWNLOAD_RETRIES", "LICHESS_URL", "lichess_source"]

LICHESS_URL = "https://database.lichess.org"
DOWNLOAD_RETRIES = 6  # consecutive failed attempts without progress before giving up
DOWNLOAD_BACKOFF_S = 1.0  # first retry delay, doubled after each failure without progress


def lichess_source(
    spec: str, cache_dir: Path | None, base_url: str | None, download: bool, progress: bool
) -> Source:
    m = re.fullmatch(r"lichess:(\d{4})-(\d{2})", spec)
    if m is None or not 1 <= int(m[2]) <= 12 or int(m[1]) < 2013:
        raise SourceError(f"bad spec {spec!r}: expected lichess:YYYY-MM, a month from 2013-01 on")
    filename = f"lichess_db_standard_rated_{m[1]}-{m[2]}.pgn.zst"
    root = Path(os.environ.get("ELOCAP_CACHE") or Path.home() / ".cache/elocap").expanduser()
    dest = (cache_dir or root / "lichess") / filename  # default: $ELOCAP_CACHE/lichess
    if not dest.is_file():
        if not download:
            raise SourceError(f"{spec} is not cached at {dest} and downloading is off")
        base = base_url or os.environ.get("ELOCAP_LICHESS_URL") or LICHESS_URL
        _download(f"{base.rstrip('/')}/standard/{filename}", dest, progress=progress)
    return dataclasses.replace(_file_source(dest), name=spec)


def _download(url: str, dest: Path, *, progress: bool) -> None:
    """Fetch `url` into `dest` via `dest.part`: resumed with Range, verified, fsynced, renamed."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        try:
            if _fetch(url, part, have, progress=progress):
                break
            error = "the connection closed before the announced length"
        except ValueError as e:  # e.g. a base URL without a scheme
            raise SourceError(f"cannot download {url}: {e}") from e
        except urllib.error.HTTPError as e:
            span = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range") or "")
            if e.code == 416 and span and int(span[1]) == have:
                break  # the .part was already complete
            if e.code == 416:
                part.unlink(missing_ok=True)
            elif e.code < 500 and e.code not in (408, 429):
                raise SourceError(f"cannot download {url}: HTTP {e.code} {e.reason}") from e
            error = f"HTTP {e.code} {e.reason}"
        except (OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        failures = 0 if part.exists() and part.stat().st_size > have else failures + 1
        if failures > DOWNLOAD_RETRIES:
            raise SourceError(f"download of {url} failed {failures} times in a row ({error}); "
                              f"{part} is kept: run again to resume")  # fmt: skip
        time.sleep(DOWNLOAD_BACKOFF_S * 2 ** (failures - 1) if failures else 0)
    expected = _published_sha256(url)
    if expected is not None and file_digest(part) != expected:
        part.unlink()
        raise SourceError(f"download of {url} does not match the published SHA-256 {expected}")
    os.replace(part, dest)
    if os.name == "posix":  # make the rename durable too
        fd = os.open(dest.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def _fetch(url: str, part: Path, have: int, *, progress: bool) -> bool:
    """One request continuing `part` from byte `have`; True if the file is now complete."""
    request = urllib.request.Request(url, headers={"User-Agent": "elocap"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=60) as resp:
        start, total = 0, resp.headers.get("Content-Length")
        if resp.status == 206:  # else the server ignored Range: start again from zero
            span = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", resp.headers.get("Content-Range", ""))
            if span is None or int(span[1]) != have:
                part.unlink(missing_ok=True)
                raise http.client.HTTPException(f"unexpected Content-Range from {url}")
            start, total = have, span[2]
        quiet = not (progress and sys.stderr.isatty())
        bar = tqdm(total=int(total) if total else None, initial=start, unit="B", unit_scale=True,
                   desc=part.stem, leave=False, disable=quiet)  # fmt: skip
        with bar, open(part, "r+b" if start else "wb") as f:
            f.seek(start)
            f.truncate()
            try:
                while chunk := resp.read(_BLOCK):
                    f.write(chunk)
                    bar.update(len(chunk))
            finally:  # keep what arrived, durably, for the next attempt to resume from
                f.flush()
                os.fsync(f.fileno())
            return total is None or f.tell() == int(total)


def _published_sha256(url: str) -> str | None:
    """The file's SHA-256 from `sha256sums.txt` beside it, if the server publishes one."""
    folder, filename = url.rsplit("/", 1)
    try:
        with urllib.request.urlopen(f"{folder}/sha256sums.txt", timeout=30) as resp:
            lines = resp.read().decode().splitlines()
    except (OSError, http.client.HTTPException, UnicodeDecodeError):
        return None
    sums = {f[1].lstrip("*"): f[0].lower() for f in map(str.split, lines) if len(f) == 2}
    return sums.get(filename)
