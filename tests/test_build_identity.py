"""A build's identity: other sources, other configs and changed sources are refused or
rebuilt, named in one line; a finished build is confirmed without reading its sources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_pipeline import sources
from data_pipeline.build import BuildConfig, BuildError, StaleSourceError, build, verify_build
from data_pipeline.filters import FilterConfig
from elocap.files import file_sha256
from tests.conftest import data_file

ANALYSED = "lichess/lichess_db_standard_rated_2026-06.analysed500.pgn"


def _real_games(tmp_path: Path, name: str, first: int, count: int) -> Path:
    """``count`` real games of the analysed 2026-06 file, from game ``first``, as their own file."""
    from data_pipeline.pgn import iter_raw_games

    with open(data_file(ANALYSED), "rb") as f:
        games = [g.data for g in iter_raw_games(f) if first <= g.index < first + count]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(games))
    return path


SMALL = BuildConfig(filters=FilterConfig(cap=2000), chunk_games=20)


def _files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_a_build_of_other_sources_is_refused_or_rebuilt(tmp_path: Path) -> None:
    a = _real_games(tmp_path, "A.pgn", 0, 60)
    b = _real_games(tmp_path, "B.pgn", 60, 60)
    out = tmp_path / "D"
    first = build([str(a)], out, SMALL, use_ray=False, progress=False)
    assert first["inputs"] == [
        {"name": str(a), "bytes": a.stat().st_size, "sha256": file_sha256(a)}
    ]
    with pytest.raises(BuildError) as e:
        build([str(b)], out, SMALL, use_ray=False, progress=False)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{out} holds a build of other sources")
    assert f"only there: {a}; only here: {b}" in message
    assert verify_build(out) == first  # the refused build touched nothing
    with pytest.raises(BuildError, match=f"only here: {b}\\)"):  # one source added
        build([str(a), str(b)], out, SMALL, use_ray=False, progress=False)
    # an interrupted build is claimed too
    (out / "manifest.json").unlink()
    with pytest.raises(BuildError, match="other sources"):
        build([str(b)], out, SMALL, use_ray=False, progress=False)
    # rebuild_stale starts over cleanly: the same files and manifest as a build in a new directory
    rebuilt = build([str(b)], out, SMALL, use_ray=False, progress=False, rebuild_stale=True)
    fresh = build([str(b)], tmp_path / "E", SMALL, use_ray=False, progress=False)
    assert rebuilt == fresh and rebuilt["build_id"] != first["build_id"]
    assert _files(out) == _files(tmp_path / "E")  # nothing of A's build is left


def test_other_config_is_named_and_a_foreign_directory_never_touched(tmp_path: Path) -> None:
    a = _real_games(tmp_path, "A.pgn", 0, 40)
    out = tmp_path / "D"
    build([str(a)], out, SMALL, use_ray=False, progress=False)
    other = BuildConfig(filters=FilterConfig(cap=1500, min_plies=10), chunk_games=20)
    with pytest.raises(BuildError) as e:
        build([str(a)], out, other, use_ray=False, progress=False)
    assert "filters.cap 2000 there, 1500 here, filters.min_plies 1 there, 10 here" in str(e.value)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("not a build")
    with pytest.raises(BuildError, match="holds no elocap build"):
        build(
            [str(a)], tmp_path / "notes", SMALL, use_ray=False, progress=False, rebuild_stale=True
        )
    assert (tmp_path / "notes" / "mine.txt").exists()


def test_a_source_changed_under_a_finished_build_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _real_games(tmp_path, "A.pgn", 0, 40)
    out = tmp_path / "D"
    build([str(a)], out, SMALL, use_ray=False, progress=False)
    original = a.read_bytes()
    a.write_bytes(original.replace(b'[WhiteElo "', b'[WhiteElo "1', 1))  # a rating changed
    with pytest.raises(BuildError, match=f"a build of {a} as it was before it changed"):
        build([str(a)], out, SMALL, use_ray=False, progress=False)
    same_size = bytearray(original)
    same_size[len(original) // 2] ^= 0x01  # one bit, inside the file
    a.write_bytes(bytes(same_size))
    with pytest.raises(BuildError, match="its content hash differs"):
        build([str(a)], out, SMALL, use_ray=False, progress=False)
    a.write_bytes(original)  # back as it was: the build is confirmed again
    build([str(a)], out, SMALL, use_ray=False, progress=False)

    # a large source: size, modification time and the hashes of its first and last MiB
    monkeypatch.setattr(sources, "FULL_HASH_MAX_BYTES", 1000)
    monkeypatch.setattr(sources, "EDGE_BYTES", 100)
    big = tmp_path / "big"
    manifest = build([str(a)], big, SMALL, use_ray=False, progress=False)
    (inp,) = manifest["inputs"]
    assert inp["sha256"] == file_sha256(a) and inp["bytes"] == len(original)  # as streamed
    assert set(inp) == {"name", "bytes", "mtime_ns", "edges_sha256", "sha256"}
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(BuildError, match="modified since"):
        build([str(a)], big, SMALL, use_ray=False, progress=False)
    # an edit that keeps the size, the time and both ends escapes the fingerprint; where the build
    # reads the source again (here: to repair a deleted shard), its full hash still catches it
    a.write_bytes(bytes(same_size))
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (big / manifest["shards"][0]["path"]).unlink()
    stale = f"{big} holds a build of {a} as it was before it changed \\(its SHA-256 differs\\)"
    with pytest.raises(StaleSourceError, match=stale):
        build([str(a)], big, SMALL, use_ray=False, progress=False)
    with pytest.raises(BuildError, match=stale):  # marked stale: never confirmed again
        build([str(a)], big, SMALL, use_ray=False, progress=False)
    rebuilt = build([str(a)], big, SMALL, use_ray=False, progress=False, rebuild_stale=True)
    assert rebuilt == build([str(a)], tmp_path / "fresh", SMALL, use_ray=False, progress=False)


def test_a_finished_build_is_confirmed_without_reading_its_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _real_games(tmp_path, "x/A.pgn", 0, 40)
    out = tmp_path / "D"
    manifest = build([str(a)], out, SMALL, use_ray=False, progress=False)

    def no_reading(source: sources.Source) -> None:
        raise AssertionError(f"{source.name} was read")

    monkeypatch.setattr(sources, "open_source", no_reading)
    assert build([str(a)], out, SMALL, use_ray=False, progress=False) == manifest
    # a moved source is the same input: confirmed, and the manifest names it where it is now
    moved = tmp_path / "y" / "A.pgn"
    moved.parent.mkdir()
    a.rename(moved)
    again = build([str(moved)], out, SMALL, use_ray=False, progress=False)
    assert again["inputs"][0]["name"] == again["sources"][0]["name"] == str(moved)
    assert again["build_id"] == manifest["build_id"]
    monkeypatch.undo()
    assert again == build([str(moved)], tmp_path / "E", SMALL, use_ray=False, progress=False)


def test_cli_refuses_to_mix_sources_in_one_line(tmp_path: Path) -> None:
    a = _real_games(tmp_path, "A.pgn", 0, 30)
    b = _real_games(tmp_path, "B.pgn", 30, 30)
    out = tmp_path / "D"
    cmd = [sys.executable, "-m", "jobs.cli", "data", "build", "--no-ray", "--no-progress"]
    cmd += ["--chunk-games", "10", "-o", str(out)]
    subprocess.run([*cmd, str(a)], check=True, capture_output=True)
    run = subprocess.run([*cmd, str(b)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and f"{out} holds a build of other sources" in run.stderr
