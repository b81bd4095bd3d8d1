"""Atomic writes and checksums: readers see a file's old content or its new, never a part."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


# --- manifests: what a stage or a run produced, to verify before trusting it -------------------

# {path relative to the root: [size in bytes, mtime in ns, SHA-256]}
Manifest = dict[str, list[Any]]


def file_manifest(root: Path, paths: list[Path]) -> Manifest:
    """Size, mtime and SHA-256 of every file under ``paths`` (files or directories), keyed by
    its path relative to ``root``. Temporary files (orbax's, ours) are not outputs."""
    root = Path(root)
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            files.append(p)
    out: Manifest = {}
    for f in sorted(files):
        if ".tmp" in f.name or any(".orbax-checkpoint-tmp" in part for part in f.parts):
            continue
        st = f.stat()
        out[f.relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns, file_sha256(f)]
    return out


def verify_manifest(root: Path, manifest: Manifest) -> list[str]:
    """The files of ``manifest`` that are missing or changed, as "<path>: <what>" lines (empty:
    every file is as recorded). A file whose size and mtime are as recorded is taken as
    unchanged; otherwise its SHA-256 decides (a copied tree verifies, a truncated file not)."""
    problems = []
    for rel, (size, mtime, sha) in manifest.items():
        path = Path(root) / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        st = path.stat()
        if st.st_size != size:
            problems.append(f"{path}: {st.st_size} bytes, {size} when it was written")
        elif st.st_mtime_ns != mtime and file_sha256(path) != sha:
            problems.append(f"{path}: content changed since it was written")
    return problems


def manifest_digest(manifest: Manifest) -> str:
    """One hash of the manifest's paths, sizes and contents (not its mtimes)."""
    h = hashlib.sha256()
    for rel in sorted(manifest):
        size, _, sha = manifest[rel]
        h.update(f"{rel}\0{size}\0{sha}\n".encode())
    return h.hexdigest()[:16]
