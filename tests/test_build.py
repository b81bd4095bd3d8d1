"""The build end to end: manifest, resume after a kill, Ray, splits, loader, command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_pipeline.build import BuildConfig, BuildError, build, verify_build
from data_pipeline.filters import FilterConfig
from data_pipeline.loader import (
    LoaderConfig,
    dataset,
    iterator_state,
    read_examples,
    restore_iterator,
)
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"
ANALYSED = "lichess/lichess_db_standard_rated_2026-06.analysed500.pgn"
CFG = BuildConfig(filters=FilterConfig(cap=1800), chunk_games=100)


def _records(out: Path, split: str) -> np.ndarray:
    """Every example the loader reads from a split, in stored order (EXAMPLE_DTYPE)."""
    return read_examples(out, split)


def test_manifest_accounts_for_every_game(tmp_path: Path) -> None:
    manifest = build([str(data_file(SLICE))], tmp_path / "out", CFG, use_ray=False, progress=False)
    assert manifest["games"] == 999
    assert manifest["kept"] + sum(manifest["rejected"].values()) == 999
    assert set(manifest["reasons"]) == set(manifest["rejected"])
    train = _records(tmp_path / "out", "train")
    assert len(train) == manifest["positions"]["train"] > 10_000
    assert (train["mover_elo"] <= 1800).all() and (train["opponent_elo"] <= 1800).all()
    assert set(np.unique(train["result"])) <= {-1, 0, 1}
    assert sum(manifest["elo_histogram"]["player_ratings"].values()) == 2 * manifest["kept"]
    # a game never straddles splits
    ids = [set(_records(tmp_path / "out", s)["game_id"].tolist()) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    # a second run does no work and changes nothing
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.array_record")}
    again = build([str(data_file(SLICE))], tmp_path / "out", CFG, use_ray=False, progress=False)
    assert again == manifest
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.array_record")}


def test_other_config_in_same_dir_is_refused(tmp_path: Path) -> None:
    build([str(data_file(SLICE))], tmp_path / "out", CFG, use_ray=False, progress=False)
    other = BuildConfig(filters=FilterConfig(cap=1500), chunk_games=100)
    with pytest.raises(BuildError, match="another config"):
        build([str(data_file(SLICE))], tmp_path / "out", other, use_ray=False, progress=False)


def test_mover_rule_keeps_only_capped_movers(tmp_path: Path) -> None:
    cfg = BuildConfig(filters=FilterConfig(cap=1500, elo_rule="mover"), chunk_games=500)
    build([str(data_file(SLICE))], tmp_path / "out", cfg, use_ray=False, progress=False)
    train = _records(tmp_path / "out", "train")
    assert (train["mover_elo"] <= 1500).all() and (train["mover_elo"] >= 0).all()
    assert (train["opponent_elo"] > 1500).any()  # the opponent may be stronger


def test_adding_a_source_does_not_move_games(tmp_path: Path) -> None:
    one = build([str(data_file(SLICE))], tmp_path / "a", CFG, use_ray=False, progress=False)
    two = build(
        [str(data_file(SLICE)), str(data_file(ANALYSED))],
        tmp_path / "b",
        CFG,
        use_ray=False,
        progress=False,
    )
    assert two["sources"][0] == one["sources"][0]
    for split in ("train", "val", "test"):
        a = set(_records(tmp_path / "a", split)["game_id"].tolist())
        b = set(_records(tmp_path / "b", split)["game_id"].tolist())
        assert a <= b


@pytest.mark.slow
def test_interrupted_build_ends_with_the_same_manifest(tmp_path: Path) -> None:
    srcs = [str(data_file(SLICE)), str(data_file(ANALYSED))]
    reference = build(srcs, tmp_path / "ref", CFG, use_ray=False, progress=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "jobs.cli", "data", "build", *srcs, "--cap", "1800"]
    cmd += ["--chunk-games", "100", "--no-ray", "--no-progress", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((out / "chunks").glob("*.json"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted((out / "chunks").glob("*.json"))
    assert 4 <= len(done) < 15 and not (out / "manifest.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in done}
    resumed = build(srcs, out, CFG, use_ray=False, progress=False)
    assert resumed == reference
    assert stamps == {p: p.stat().st_mtime_ns for p in done}  # finished chunks were not redone
    assert (out / "manifest.json").read_text() == (tmp_path / "ref" / "manifest.json").read_text()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_build_equals_in_process_build(tmp_path: Path, ray_cluster: None) -> None:
    """The same build (id, manifest, shard bytes) whatever the workers, the completion order
    and the mode: two sources in two reader tasks building their own chunks, or in one reader
    fanning out to chunk tasks, or the driver cutting chunks for tasks (one source; 1 or 2
    workers, chunks finishing out of order)."""
    srcs = [str(data_file(SLICE)), str(data_file(ANALYSED))]
    inline = build(srcs, tmp_path / "inline", CFG, use_ray=False, progress=False)
    on_ray = build(srcs, tmp_path / "ray", CFG, workers=2, use_ray=True, progress=False)
    assert on_ray == inline  # shard checksums included: the same bytes on disk
    # workers=3 on 2 CPUs: one reader task at a time, fanning its chunks out to chunk tasks
    fanned = build(srcs, tmp_path / "fan", CFG, workers=3, use_ray=True, progress=False)
    assert fanned == inline
    one = build(srcs[:1], tmp_path / "one", CFG, use_ray=False, progress=False)
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        chunked = build(srcs[:1], out, CFG, workers=workers, use_ray=True, progress=False)
        assert chunked == one and len(chunked["shards"]) == 10  # 999 games in chunks of 100
        a, b = read_examples(tmp_path / "one", "train"), read_examples(out, "train")
        assert all(np.array_equal(a[k], b[k]) for k in a.dtype.names or ())


def test_loader_batches_are_fixed_deterministic_and_resumable(tmp_path: Path) -> None:
    build([str(data_file(SLICE))], tmp_path / "out", CFG, use_ray=False, progress=False)
    cfg = LoaderConfig(batch_size=32, seed=7)
    it = iter(dataset(tmp_path / "out", "train", cfg))
    first = [next(it) for _ in range(5)]
    assert all(b["obs"].shape == (32, 67) and b["action"].shape == (32,) for b in first)
    again = iter(dataset(tmp_path / "out", "train", cfg))
    assert all(np.array_equal(a["obs"], next(again)["obs"]) for a in first)
    other = next(iter(dataset(tmp_path / "out", "train", LoaderConfig(batch_size=32, seed=8))))
    assert not np.array_equal(other["game_id"], first[0]["game_id"])
    state = iterator_state(it)
    expected = [next(it) for _ in range(3)]
    fresh = iter(dataset(tmp_path / "out", "train", cfg))
    restore_iterator(fresh, state)
    for want in expected:
        got = next(fresh)
        assert all(np.array_equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1000, 4097])
def test_permutation_is_a_seeded_bijection(n: int) -> None:
    from data_pipeline.loader import permute

    p = permute(np.arange(n), n, seed=(7, 0))
    assert sorted(p.tolist()) == list(range(n))
    assert np.array_equal(p, permute(np.arange(n), n, seed=(7, 0)))
    if n >= 64:
        assert not np.array_equal(p, permute(np.arange(n), n, seed=(7, 1)))
        assert not np.array_equal(p, np.arange(n))


def test_cached_and_streamed_loaders_give_the_same_batches(tmp_path: Path) -> None:
    build([str(data_file(SLICE))], tmp_path / "out", CFG, use_ray=False, progress=False)
    cached = iter(dataset(tmp_path / "out", "train", LoaderConfig(batch_size=16, seed=3)))
    streamed_cfg = LoaderConfig(batch_size=16, seed=3, cache_bytes=0)
    streamed = iter(dataset(tmp_path / "out", "train", streamed_cfg))
    for _ in range(4):
        a, b = next(cached), next(streamed)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_loader_epoch_covers_the_split_once(tmp_path: Path) -> None:
    manifest = build([str(data_file(SLICE))], tmp_path / "out", CFG, use_ray=False, progress=False)
    n = manifest["positions"]["val"]
    cfg = LoaderConfig(batch_size=1, seed=0, num_epochs=1)
    seen = [(int(b["game_id"][0]), int(b["ply"][0])) for b in dataset(tmp_path / "out", "val", cfg)]
    assert len(seen) == n == len(set(seen))


def test_cli_filter_writes_games_unchanged_and_stats(tmp_path: Path) -> None:
    src = data_file(ANALYSED)
    out = tmp_path / "kept.pgn"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "data",
            "filter",
            str(src),
            "--cap",
            "1500",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kept" in run.stderr
    from data_pipeline.pgn import iter_raw_games

    original = src.read_bytes()
    with open(out, "rb") as f:
        kept = list(iter_raw_games(f))
    assert kept and all(g.data.rstrip() in original for g in kept)
    assert all(int(g.headers()["WhiteElo"]) <= 1500 for g in kept)
    build([str(src)], tmp_path / "b", CFG, use_ray=False, progress=False)
    stats = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "data", "stats", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kept" in stats.stdout and "positions: train" in stats.stdout


def test_damaged_build_is_named_in_one_line_and_repaired(tmp_path: Path) -> None:
    from data_pipeline.build import DamagedBuildError

    out = tmp_path / "out"
    manifest = build([str(data_file(SLICE))], out, CFG, use_ray=False, progress=False)
    assert verify_build(out, checksums=True) == manifest
    files = [out / s["path"] for s in manifest["shards"]]  # one shard per chunk, every split
    assert len(files) >= 4
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.array_record")}
    files[0].unlink()  # a deleted shard
    with pytest.raises(DamagedBuildError) as e:
        verify_build(out)
    assert str(files[0]) in str(e.value) and "missing" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DamagedBuildError, match=f"{files[0]} is missing"):
        dataset(out, "train", LoaderConfig(batch_size=32))  # not array_record's bare RuntimeError
    with open(files[-1], "r+b") as f:  # a shard cut short
        f.truncate(100)
    with pytest.raises(DamagedBuildError, match=r"is missing \(and 1 more\)"):
        verify_build(out)
    files[0].write_bytes(b"")  # now only the size is wrong
    with pytest.raises(DamagedBuildError, match=f"{files[0]} has 0 bytes"):
        dataset(out, "val", LoaderConfig(batch_size=4))
    # run again: the two damaged chunks are redone, nothing else, and the build is whole again
    assert build([str(data_file(SLICE))], out, CFG, use_ray=False, progress=False) == manifest
    assert verify_build(out, checksums=True) == manifest
    redone = {p.stem for p, t in stamps.items() if p.stat().st_mtime_ns != t}
    assert redone == {files[0].stem, files[-1].stem}
    # a changed byte keeps the size: only the checksums see it
    data = bytearray(files[2].read_bytes())
    data[-1] ^= 0xFF
    files[2].write_bytes(bytes(data))
    verify_build(out)
    with pytest.raises(DamagedBuildError, match="SHA-256"):
        verify_build(out, checksums=True)
    with pytest.raises(DamagedBuildError, match="SHA-256"):
        from data_pipeline.loader import shard_paths

        shard_paths(out, "train", verify=True)
    (out / "manifest.json").unlink()
    with pytest.raises(BuildError, match="no readable manifest"):
        verify_build(out)


# --- the build's identity: sources, config, encoding ----------------------------------------
