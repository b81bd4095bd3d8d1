"""One pass, every cap: a shared build's views equal separate per-cap builds, example for example;
compact shards decode to exactly the examples of the one encoding; sampling by a hash of the game.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from data_pipeline.build import BuildConfig, BuildError, build, verify_build
from data_pipeline.chunks import DamagedBuildError, split_of
from data_pipeline.decode import decode_game, to_examples
from data_pipeline.filters import FilterConfig, header_predicates, prefilter
from data_pipeline.loader import LoaderConfig, dataset, read_examples
from data_pipeline.pgn import iter_raw_games
from data_pipeline.views import build_caps
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"
LOW = "lichess/lichess-user-export-2024.low-elo.pgn"
CAPS = (1200, 1500, 1800)
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 games of the 2021-10 dump slice and 200 of the low-Elo export, as one .pgn."""
    from data_pipeline import sources

    out = tmp_path_factory.mktemp("src") / "slice.pgn"
    parts = []
    for name, count in ((SLICE, 300), (LOW, 200)):
        with sources.open_source(sources.resolve_sources([str(data_file(name))])[0]) as f:
            parts += [g.data for g in iter_raw_games(f) if g.index < count]
    out.write_bytes(b"".join(p if p.endswith(b"\n\n") else p + b"\n\n" for p in parts))
    return out


def _cfg(rule: str, cap: int | None = None) -> BuildConfig:
    # a small chunk size: the separate builds and the shared one cut the same games into chunks
    return BuildConfig(filters=FilterConfig(cap=cap, elo_rule=rule), chunk_games=64)


@pytest.mark.parametrize("rule", ["both", "mean", "mover"])
def test_one_pass_views_equal_separate_per_cap_builds(
    games: Path, tmp_path: Path, rule: str
) -> None:
    shared = tmp_path / "all"
    views = [tmp_path / f"view{c}" for c in CAPS]
    out = build_caps([str(games)], shared, _cfg(rule), CAPS, views, use_ray=False, progress=False)
    assert out["shared"]["config"]["filters"]["cap"] is None
    game_splits: dict[int, str] = {}
    previous: dict[str, set[int]] = {s: set() for s in SPLITS}
    for cap, view in zip(CAPS, views, strict=True):
        separate = tmp_path / f"cap{cap}"
        ref = build([str(games)], separate, _cfg(rule, cap), use_ray=False, progress=False)
        got = out["views"][cap]
        assert verify_build(view) == got
        assert got["positions"] == ref["positions"] and got["kept"] == ref["kept"]
        assert got["elo_histogram"] == ref["elo_histogram"]
        assert [s["kept"] for s in got["sources"]] == [s["kept"] for s in ref["sources"]]
        assert got["config"] == ref["config"] and got["build_id"] != ref["build_id"]
        assert sum(got["rejected"].values()) == sum(ref["rejected"].values())
        assert sum(ref["positions"].values()) > 500  # the slice holds games of every cap
        for split in SPLITS:
            a, b = read_examples(view, split), read_examples(separate, split)
            assert len(a) == ref["positions"][split]
            assert a.tobytes() == b.tobytes()  # the same examples in the same order
            ids = set(a["game_id"].tolist())
            assert previous[split] <= ids  # a lower cap's games are a subset of a higher cap's
            previous[split] = ids
            for gid in ids:  # and a game lies in the same split under every cap
                assert game_splits.setdefault(gid, split) == split
            if rule == "mover":
                assert (a["mover_elo"] >= 0).all() and (a["mover_elo"] <= cap).all()
            else:
                assert (np.maximum(a["mover_elo"], a["opponent_elo"]) <= cap).all() or (
                    rule == "mean"
                )
        # the sweep's loader: the same batches from the view as from the separate build
        cfg = LoaderConfig(batch_size=32, seed=5)
        for x, y in zip(dataset(view, "train", cfg), dataset(separate, "train", cfg), strict=False):
            assert all(np.array_equal(x[k], y[k]) for k in y)
            break
        streamed = LoaderConfig(batch_size=32, seed=5, cache_bytes=0)
        x = next(iter(dataset(view, "train", streamed)))
        y = next(iter(dataset(separate, "train", cfg)))
        assert all(np.array_equal(x[k], y[k]) for k in y)
    # one shared build serves every rule: another rule's views reuse it, nothing is rebuilt
    stamps = {p: p.stat().st_mtime_ns for p in shared.rglob("*.array_record")}
    other = "mover" if rule != "mover" else "both"
    again = build_caps(
        [str(games)], shared, _cfg(other), CAPS[:1], [tmp_path / "other"], use_ray=False,
        progress=False,
    )  # fmt: skip
    assert again["shared"] == out["shared"]
    assert stamps == {p: p.stat().st_mtime_ns for p in shared.rglob("*.array_record")}


def test_compact_shards_decode_to_the_one_encoding(games: Path, tmp_path: Path) -> None:
    """The loader's examples equal decode.to_examples of the kept games, computed directly."""
    cfg = FilterConfig(cap=1500, elo_rule="mover")
    build_cfg = BuildConfig(filters=cfg, chunk_games=1000)  # one file: padding paid once
    manifest = build([str(games)], tmp_path / "b", build_cfg, use_ray=False, progress=False)
    with open(games, "rb") as f:
        raw = list(iter_raw_games(f))
    kept = []
    predicates = header_predicates(cfg)
    for g in raw:
        if prefilter(g.headers(), predicates, cfg) is None:
            kept.append(decode_game(g, g.headers(), cfg))
    direct = to_examples(kept, cfg)
    split = split_of(direct["game_id"], build_cfg.splits)
    for s, name in enumerate(SPLITS):
        got = read_examples(tmp_path / "b", name)
        assert got.tobytes() == direct[split == s].tobytes()
    stored = sum(s["bytes"] for s in manifest["shards"])
    stored_positions = sum(s["records"] for s in manifest["shards"])
    assert stored / stored_positions < 25  # it was 134 B/position


def test_views_refuse_builds_and_notice_a_changed_shared_build(games: Path, tmp_path: Path) -> None:
    shared, view = tmp_path / "all", tmp_path / "v"
    build([str(games)], tmp_path / "direct", _cfg("both", 1500), use_ray=False, progress=False)
    with pytest.raises(BuildError, match="holds a data build, not a view"):
        build_caps([str(games)], shared, _cfg("both"), [1500], [tmp_path / "direct"],
                   use_ray=False, progress=False)  # fmt: skip
    assert not shared.exists()  # refused before the long build
    out = build_caps(
        [str(games)], shared, _cfg("both"), [1500], [view], use_ray=False, progress=False
    )
    with pytest.raises(BuildError, match="view of another build or cap"):
        build_caps([str(games)], shared, _cfg("both"), [1200], [view], use_ray=False,
                   progress=False)  # fmt: skip
    # a damaged shared shard is named when the view is loaded or verified
    first = out["views"][1500]["shards"][0]
    target = (view / first["path"]).resolve()
    target.unlink()
    with pytest.raises(DamagedBuildError, match=f"{target} is missing"):
        dataset(view, "train", LoaderConfig(batch_size=4))
    with pytest.raises(DamagedBuildError, match=f"{target} is missing"):
        verify_build(view)
    # the shared build rebuilt from other sources: the old view is no longer its view
    manifest = json.loads((shared / "manifest.json").read_text())
    manifest["build_id"] = "0" * 64
    (shared / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DamagedBuildError, match="made from another build"):
        dataset(view, "train", LoaderConfig(batch_size=4))


def test_a_sample_keeps_a_deterministic_fraction_of_games(games: Path, tmp_path: Path) -> None:
    full_cfg = _cfg("both", 1800)
    half_cfg = dataclasses.replace(full_cfg, sample_fraction=0.5)
    full = build([str(games)], tmp_path / "full", full_cfg, use_ray=False, progress=False)
    half = build([str(games)], tmp_path / "half", half_cfg, use_ray=False, progress=False)
    assert half["config"]["sample_fraction"] == 0.5
    assert half["rejected"]["not_sampled"] + half["kept"] == full["kept"]
    assert 0.35 < half["kept"] / full["kept"] < 0.65
    for split in SPLITS:  # a sampled game keeps its split and every one of its positions
        a, b = read_examples(tmp_path / "half", split), read_examples(tmp_path / "full", split)
        ids = set(a["game_id"].tolist())
        assert ids <= set(b["game_id"].tolist())
        assert a.tobytes() == b[np.isin(b["game_id"], list(ids))].tobytes()
    again = build([str(games)], tmp_path / "again", half_cfg, use_ray=False, progress=False)
    assert again["positions"] == half["positions"]
