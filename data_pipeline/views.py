"""One pass, every cap: a shared build of every kept game, and per cap a view of it.

``build_caps`` builds its sources once with the cap switched off (every other filter as
configured; the Elo rule decides nothing there), then writes, per cap, a *view*: a directory
holding only ``manifest.json``, which names the shared build (relative path and build id), the
selection (cap, Elo rule), the shards it reads (paths relative to the view) and what the cap keeps
(games, positions per split, Elo histogram, rejections). ``loader.dataset(view, split, cfg)``
reads a view as it reads a build: the selection is per game (and per side under ``mover``), the
split is the game's (a hash of the game), so a game is in one split under every cap, and a view's
examples are those of a separate build with that cap, in the same order.

A view's ``build_id`` is a hash of the shared build's id and its selection. Loading or verifying
a view checks that the shared build is still the one it was made from.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline import shards
from data_pipeline.build import (
    _BUILD_FILES,
    IDENTITY_FILE,
    MANIFEST_VERSION,
    BuildError,
    build,
    verify_build,
)
from data_pipeline.chunks import (
    ELO_BIN,
    REPAIR,
    SPLITS,
    BuildConfig,
    DamagedBuildError,
    split_counts,
)
from data_pipeline.filters import ELO_RULES, REASONS
from elocap.files import atomic_write_text

__all__ = ["build_caps", "check_view", "shared_config", "write_view"]


def shared_config(cfg: BuildConfig) -> BuildConfig:
    """The config of the shared build behind ``cfg``'s caps: no cap, so no Elo rule either (the
    rule is the default: it decides nothing without a cap, and one build serves every rule)."""
    filters = dataclasses.replace(cfg.filters, cap=None, elo_rule="both")
    return dataclasses.replace(cfg, filters=filters)


def build_caps(
    specs: Sequence[str],
    shared_dir: Path,
    cfg: BuildConfig,
    caps: Sequence[int],
    view_dirs: Sequence[Path],
    *,
    rebuild_stale: bool = False,
    **build_kwargs: Any,
) -> dict[str, Any]:
    """Builds ``specs`` once into ``shared_dir`` (``build``; resumed or confirmed as there) and
    writes the view of each cap (under ``cfg.filters.elo_rule``) into its directory. Returns
    ``{"shared": manifest, "views": {cap: manifest}}``."""
    if len(caps) != len(view_dirs):
        raise ValueError(f"{len(caps)} caps but {len(view_dirs)} view directories")
    if cfg.filters.elo_rule not in ELO_RULES:
        raise ValueError(f"elo_rule must be one of {ELO_RULES}")
    for view_dir in view_dirs:  # refuse before the long build, not after it
        _claimable(Path(view_dir), rebuild_stale)
    shared = build(specs, Path(shared_dir), shared_config(cfg), rebuild_stale=rebuild_stale,
                   **build_kwargs)  # fmt: skip
    tables = _read_tables(Path(shared_dir), shared)
    views = {}
    for cap, view_dir in zip(caps, view_dirs, strict=True):
        select = shards.Select(cap=cap, elo_rule=cfg.filters.elo_rule)
        views[cap] = write_view(
            Path(shared_dir), shared, Path(view_dir), select, cfg, tables=tables,
            rebuild_stale=rebuild_stale,
        )  # fmt: skip
    return {"shared": shared, "views": views}


def write_view(
    shared_dir: Path,
    shared: dict[str, Any],
    view_dir: Path,
    select: shards.Select,
    cfg: BuildConfig,
    *,
    tables: list[np.ndarray] | None = None,
    rebuild_stale: bool = False,
) -> dict[str, Any]:
    """Writes (or confirms) the view of ``select`` on the finished shared build; returns its
    manifest. ``cfg`` is the study's build config (its cap is set from ``select``)."""
    view_dir = Path(view_dir)
    tables = _read_tables(shared_dir, shared) if tables is None else tables
    manifest = _view_manifest(shared_dir, shared, view_dir, select, cfg, tables)
    old = _claimable(view_dir, rebuild_stale)
    if old is not None and old.get("build_id") != manifest["build_id"] and not rebuild_stale:
        raise BuildError(
            f"{view_dir} holds a view of another build or cap ({old['view']['build_id'][:16]}, "
            f"{old.get('select')}); use another directory, or rebuild_stale=True to replace it"
        )
    text = json.dumps(manifest, indent=1) + "\n"
    if (
        not (view_dir / "manifest.json").exists()
        or (view_dir / "manifest.json").read_text() != text
    ):
        view_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(view_dir / "manifest.json", text)
    return dict(json.loads(text))


def check_view(view_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The shared build's manifest, if it is the one the view was made from; else a
    DamagedBuildError (one line) naming it."""
    shared_dir = Path(os.path.normpath(Path(view_dir) / manifest["view"]["build"]))
    path = shared_dir / "manifest.json"
    try:
        shared: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DamagedBuildError(
            f"view {view_dir} reads {path}, which is missing or unreadable; {REPAIR}"
        ) from None
    if shared.get("build_id") != manifest["view"]["build_id"]:
        raise DamagedBuildError(
            f"view {view_dir} was made from another build than the one in {shared_dir} now; "
            f"{REPAIR}"
        )
    return shared


# --- helpers -----------------------------------------------------------------------------------


def _claimable(view_dir: Path, rebuild_stale: bool) -> dict[str, Any] | None:
    """The view manifest in ``view_dir`` (None if there is none); refuses a directory holding a
    build (or, with ``rebuild_stale``, clears it) or foreign files."""
    try:
        old = json.loads((view_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and "view" in old:
        return old
    if (view_dir / IDENTITY_FILE).exists() or (view_dir / "manifest.json").exists():
        if not rebuild_stale:
            raise BuildError(
                f"{view_dir} holds a data build, not a view of a shared one; use another "
                "directory, or delete it (or rebuild_stale=True) to replace it with a view"
            )
        for name in _BUILD_FILES:
            path = view_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return None
    if view_dir.exists() and any(view_dir.iterdir()):
        raise BuildError(f"{view_dir} is not empty and holds no elocap build or view")
    return None


def _read_tables(shared_dir: Path, shared: dict[str, Any]) -> list[np.ndarray]:
    """The games table of every shard of the shared build, in manifest order."""
    from data_pipeline.loader import _open

    verify_build(shared_dir)
    tables = []
    for shard in shared["shards"]:
        reader = _open(str(shared_dir / shard["path"]))
        try:
            tables.append(shards.read_games(reader, int(shard["records"])))
        finally:
            reader.close()
    return tables


def _view_manifest(
    shared_dir: Path,
    shared: dict[str, Any],
    view_dir: Path,
    select: shards.Select,
    cfg: BuildConfig,
    tables: list[np.ndarray],
) -> dict[str, Any]:
    kept_by_source: collections.Counter[int] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter(shared["rejected"])
    hist: collections.Counter[int] = collections.Counter()
    positions = dict.fromkeys(SPLITS, 0)
    rows = []
    base = os.path.relpath(Path(shared_dir).resolve(), Path(view_dir).resolve())
    for shard, table in zip(shared["shards"], tables, strict=True):
        sel = shards.game_selection(table, select)
        kept = sel["kept"]
        source = int(Path(shard["path"]).name[1:5])  # keys are s<source>-c<chunk>
        kept_by_source[source] += int(kept.sum())
        missing = int(sel["missing"].sum())
        sampled_out = int(sel["sampled_out"].sum())
        rejected.update(
            elo_missing=missing,
            not_sampled=sampled_out,
            elo_above_cap=int((~kept).sum()) - missing - sampled_out,
        )
        for column in ("white_elo", "black_elo"):
            r = table[column][kept].astype(np.int64)
            bins, n = np.unique(r[r >= 0] // ELO_BIN * ELO_BIN, return_counts=True)
            hist.update(dict(zip(bins.tolist(), n.tolist(), strict=True)))
        counts = split_counts(table, select)
        for split, count in counts.items():
            positions[split] += count
        if any(counts.values()):
            rows.append({**shard, "path": f"{base}/{shard['path']}", "positions": counts})
    rejected = +rejected  # drop zero counts
    view_cfg = dataclasses.replace(
        cfg, filters=dataclasses.replace(cfg.filters, cap=select.cap, elo_rule=select.elo_rule)
    )
    view_id = hashlib.sha256(
        json.dumps({"build": shared["build_id"], "select": select.to_json()}, sort_keys=True)
        .encode()
    ).hexdigest()  # fmt: skip
    sources = [{**row, "kept": kept_by_source[i]} for i, row in enumerate(shared["sources"])]
    return {
        "version": MANIFEST_VERSION,
        "view": {"build": base, "build_id": shared["build_id"]},
        "build_id": view_id,
        "config": view_cfg.to_json(),
        "encoding": shared["encoding"],
        "inputs": shared["inputs"],
        "sources": sources,
        "games": shared["games"],
        "kept": sum(kept_by_source.values()),
        "rejected": dict(sorted(rejected.items())),
        "reasons": {k: REASONS[k] for k in sorted(rejected)},
        "elo_histogram": {
            "bin_width": ELO_BIN,
            "player_ratings": {str(k): v for k, v in sorted(hist.items())},
        },
        "positions": positions,
        "sampling": shared.get("sampling"),  # the shared build's: one sample serves every cap
        "select": select.to_json(),
        "shards": rows,
    }
