"""The data build: PGN sources -> filtered, encoded, split array_record shards + manifest.json.

Work is cut into chunks of ``chunk_games`` consecutive games of one source (rejected games
count too, so chunk boundaries depend only on the source bytes); how chunks reach Ray tasks (the
driver cutting one source, or reader tasks for several) is ``data_pipeline.dispatch``, and the
chunks, keys and records are the same either way, so the build is the same whatever the
workers, the mode or the completion order.

A chunk whose record exists is finished and skipped, so an interrupted build resumes where it
stopped, and the manifest, built from the chunk records alone, is the same as after an
uninterrupted build.

A build's identity is its format, encoding, config and the fingerprint of each source in order
(size and content hash; see ``sources.fingerprint``). It is written to ``build.json`` before the
first chunk, so chunks (keyed by source index and chunk number) are only ever reused by a build
of the same inputs: a directory holding another build is refused with one line naming what
differs, or, with ``rebuild_stale``, cleared and built again. The manifest records the identity
(``build_id``, and ``inputs``: names, sizes, hashes) and each shard's size and SHA-256, which
``verify_build`` checks.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_pipeline import decode, encoding, shards, sources
from data_pipeline.chunks import (
    ELO_BIN,
    EXAMPLES_PER_REASON,
    REPAIR,
    SPLITS,
    BuildConfig,
    DamagedBuildError,
    SourceScan,
    SplitConfig,
    own_select,
    shard_problem,
)
from data_pipeline.dispatch import chunks_in_tasks, sources_in_tasks
from data_pipeline.filters import REASONS
from elocap.files import atomic_write_text

__all__ = [
    "SPLITS",
    "BuildConfig",
    "BuildError",
    "DamagedBuildError",
    "SplitConfig",
    "StaleSourceError",
    "build",
    "make_manifest",
    "verify_build",
]
MANIFEST_VERSION = 3  # 2: build_id and inputs (the sources' identity); 3: compact shards


# --- the manifest ------------------------------------------------------------------------------


def make_manifest(cfg: BuildConfig, scans: Sequence[SourceScan], out_dir: Path) -> dict[str, Any]:
    """The manifest of a finished build, from its chunk records (deterministic: no times)."""
    totals: collections.Counter[str] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    positions: collections.Counter[str] = collections.Counter()
    elo_hist: collections.Counter[int] = collections.Counter()
    source_rows: list[dict[str, Any]] = []
    shard_rows: list[dict[str, Any]] = []
    for scan in scans:
        row_rejected: collections.Counter[str] = collections.Counter()
        row_examples: dict[str, list[Any]] = {}
        games = kept = 0
        for key in scan.chunks:
            rec = json.loads((out_dir / "chunks" / f"{key}.json").read_text())
            games, kept = games + rec["games"], kept + rec["kept"]
            row_rejected.update(rec["rejected"])
            for reason, ex in rec["rejected_examples"].items():
                row_examples.setdefault(reason, [])
                row_examples[reason] += ex[: EXAMPLES_PER_REASON - len(row_examples[reason])]
            positions.update(rec["positions"])
            elo_hist.update({int(k): v for k, v in rec["elo_histogram"].items()})
            shard_rows += rec["shards"]
        totals.update(games=games, kept=kept)
        rejected.update(row_rejected)
        source_rows.append(
            {
                "name": scan.source.name,
                "compression": scan.source.compression,
                "bytes": scan.size,
                sources.HASH_ALGORITHM: scan.digest,
                "games": games,
                "kept": kept,
                "rejected": dict(sorted(row_rejected.items())),
                "rejected_examples": dict(sorted(row_examples.items())),
                "chunks": len(scan.chunks),
                "error": scan.error,
            }
        )
    return {
        "version": MANIFEST_VERSION,
        "config": cfg.to_json(),
        "encoding": _encoding(),
        "sources": source_rows,
        "games": totals["games"],
        "kept": totals["kept"],
        "rejected": dict(sorted(rejected.items())),
        "reasons": {k: REASONS[k] for k in sorted(rejected)},
        "elo_histogram": {
            "bin_width": ELO_BIN,
            "player_ratings": {str(k): v for k, v in sorted(elo_hist.items())},
        },
        "positions": {name: positions[name] for name in SPLITS},
        "sampling": {  # games kept by the hash of the game, and why that many
            "fraction": cfg.sample_fraction,
            "not_sampled": rejected["not_sampled"],
            "note": cfg.sample_note,
        },
        "select": own_select(cfg).to_json(),  # what the loader reads of the shards
        "shards": shard_rows,
    }


def _encoding() -> dict[str, Any]:
    return {
        "obs_len": encoding.OBS_LEN,
        "num_actions": encoding.NUM_ACTIONS,
        "example_dtype": decode.EXAMPLE_DTYPE.descr,
        "example_bytes": decode.EXAMPLE_DTYPE.itemsize,
        "shards": shards.describe(),
    }


def progress_enabled() -> bool:
    return sys.stderr.isatty()


# --- the driver --------------------------------------------------------------------------------


class BuildError(Exception):
    """A build that cannot start (wrong output directory, no sources)."""


class StaleSourceError(BuildError):
    """A source changed in a way its fingerprint did not show, found while it was read again."""


def build(
    specs: Sequence[str],
    out_dir: Path,
    cfg: BuildConfig,
    *,
    workers: int | None = None,
    use_ray: bool = True,
    progress: bool | None = None,
    cache_dir: Path | None = None,
    rebuild_stale: bool = False,
) -> dict[str, Any]:
    """Builds (or resumes, or confirms) the shards and manifest of ``specs`` in ``out_dir``.

    A directory holding a build of other sources (or of a source changed since), another config
    or another encoding is refused with a BuildError naming what differs, or, with
    ``rebuild_stale``, emptied of that build and built again. A finished build of the same inputs
    whose shards are all in place is confirmed without reading the sources again.
    """
    out_dir = Path(out_dir)
    progress = progress_enabled() if progress is None else progress
    srcs = sources.resolve_sources(specs, cache_dir=cache_dir, progress=progress)
    if not srcs:
        raise BuildError(f"no PGN sources in {list(specs)}")
    identity = build_identity(cfg, srcs)
    previous = _claim_out_dir(out_dir, identity, rebuild_stale)
    if previous is not None and previous.get("build_id") == identity_digest(identity):
        try:
            return _confirmed(out_dir, identity)
        except DamagedBuildError:
            pass  # resume below: the chunks with missing shards are redone
    workers = workers or os.cpu_count() or 1
    from tqdm import tqdm

    with tqdm(unit=" games", disable=not progress, dynamic_ncols=True) as bar:
        seen = kept = 0

        def done(rec: dict[str, Any]) -> None:
            nonlocal seen, kept
            seen, kept = seen + rec["games"], kept + rec["kept"]
            bar.update(rec["games"])
            bar.set_postfix(kept=f"{kept / max(seen, 1):.1%}", refresh=False)

        if use_ray and len(srcs) > 1:
            scans = sources_in_tasks(srcs, cfg, out_dir, workers, done)
        else:
            scans = chunks_in_tasks(srcs, cfg, out_dir, workers, use_ray, done)
    try:
        inputs = _streamed_inputs(identity, scans, previous, out_dir)
    except StaleSourceError:
        if not rebuild_stale:
            raise
        _clear(out_dir, identity)  # and once more from the start (a second change raises)
        return build(specs, out_dir, cfg, workers=workers, use_ray=use_ray, progress=progress,
                     cache_dir=cache_dir)  # fmt: skip
    manifest = make_manifest(cfg, scans, out_dir)
    manifest.update(build_id=identity_digest(identity), inputs=inputs)
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write_text(out_dir / "manifest.json", text)
    return dict(json.loads(text))  # exactly what is on disk


# --- the build's identity: what it was built from ----------------------------------------------

IDENTITY_FILE = "build.json"  # written before the first chunk: partial builds have it too
_BUILD_FILES = ("manifest.json", "chunks", "shards", *SPLITS, "build_config.json", IDENTITY_FILE)
_FIX = "use another output directory, or delete it (or build with rebuild_stale=True) to rebuild"


def build_identity(cfg: BuildConfig, srcs: Sequence[sources.Source]) -> dict[str, Any]:
    """What decides a build's output: the format, the encoding, the config, and each source's
    fingerprint in order (``sources.fingerprint``: name, size, content hash, see there)."""
    identity = {
        "version": MANIFEST_VERSION,
        "encoding": _encoding(),
        "config": cfg.to_json(),
        "sources": [sources.fingerprint(s) for s in srcs],
    }
    return dict(json.loads(json.dumps(identity)))  # as it reads back from disk


def identity_digest(identity: dict[str, Any]) -> str:
    """The build's id: a SHA-256 of its identity without source names (the output depends on
    the bytes, not on where they lie: a moved source keeps its build)."""
    nameless = dict(identity, sources=[_content(s) for s in identity["sources"]])
    return hashlib.sha256(json.dumps(nameless, sort_keys=True).encode()).hexdigest()


def _content(fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fingerprint.items() if k != "name"}


def _claim_out_dir(
    out_dir: Path, identity: dict[str, Any], rebuild_stale: bool
) -> dict[str, Any] | None:
    """Claims ``out_dir`` for a build of ``identity``; returns the manifest of an earlier build of
    the same inputs there, if any. Refuses (or, with ``rebuild_stale``, clears) a build of other
    inputs; never touches a directory that holds files but no build."""
    old = _read_json(out_dir / IDENTITY_FILE)
    if old is None and (out_dir / "build_config.json").exists():
        difference: str | None = "a build by an earlier elocap that did not record its sources"
    elif old is None:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise BuildError(f"{out_dir} is not empty and holds no elocap build")
        difference = None
    else:
        difference = _difference(old, identity)
    if difference is not None:
        if not rebuild_stale:
            raise BuildError(f"{out_dir} holds {difference}; {_FIX}")
        _clear(out_dir, identity)
        return None
    if old != identity:
        atomic_write_text(out_dir / IDENTITY_FILE, json.dumps(identity, indent=1) + "\n")
    return _read_json(out_dir / "manifest.json")


def _clear(out_dir: Path, identity: dict[str, Any]) -> None:
    """Removes a build's files (the manifest first: a crash midway leaves no finished build)
    and claims the directory for ``identity``; other files are left alone."""
    for name in _BUILD_FILES:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    atomic_write_text(out_dir / IDENTITY_FILE, json.dumps(identity, indent=1) + "\n")


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What makes a build of ``old`` another build than one of ``new``, in a few words."""
    if "stale" in old:
        return str(old["stale"])
    if set(old) != set(new) or (old["version"], old["encoding"]) != (
        new["version"],
        new["encoding"],
    ):
        return "a build of another elocap format or encoding"
    if old["config"] != new["config"]:
        changed = ", ".join(
            f"{k} {a!r} there, {b!r} here" for k, a, b in _changes(old["config"], new["config"])
        )
        return f"a build with another config ({changed})"
    a, b = old["sources"], new["sources"]
    if any(s["bytes"] is None for s in a + b):
        return "a build, and standard input cannot be checked against it"
    if [_content(s) for s in a] == [_content(s) for s in b]:
        return None
    if [s["name"] for s in a] == [s["name"] for s in b]:
        x, y = next((x, y) for x, y in zip(a, b, strict=True) if _content(x) != _content(y))
        if x["bytes"] != y["bytes"]:
            how = f"{x['bytes']} bytes then, {y['bytes']} now"
        elif x.get("mtime_ns") != y.get("mtime_ns"):
            how = "same size, but modified since"
        else:
            how = "same size, but its content hash differs"
        return f"a build of {x['name']} as it was before it changed ({how})"
    there = [s["name"] for s in a if s not in b]
    here = [s["name"] for s in b if s not in a]
    if not there and not here:
        return "a build of the same sources in another order"
    return f"a build of other sources (only there: {_few(there)}; only here: {_few(here)})"


def _changes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[Any, ...]]:
    """(dotted key, value in a, value in b) of the entries of two configs that differ."""
    out: list[tuple[Any, ...]] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _changes(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append((f"{prefix}{key}", x, y))
    return out


def _few(names: list[str]) -> str:
    more = f" and {len(names) - 2} more" if len(names) > 2 else ""
    return ", ".join(names[:2]) + more if names else "none"


def _streamed_inputs(
    identity: dict[str, Any],
    scans: Sequence[SourceScan],
    previous: dict[str, Any] | None,
    out_dir: Path,
) -> list[dict[str, Any]]:
    """The manifest's record of the inputs: each fingerprint with the full SHA-256 streamed.

    The streamed bytes of a source may not be those fingerprinted (it changed while being read,
    or a large one changed inside, keeping its size, time and ends, since this directory's last
    build): the build is then marked stale in ``build.json`` (so it is never confirmed, and a
    later run refuses or clears it) and StaleSourceError names the source."""
    earlier = {i: s.get("sha256") for i, s in enumerate((previous or {}).get("inputs", []))}
    inputs = []
    for i, (fp, scan) in enumerate(zip(identity["sources"], scans, strict=True)):
        expected = fp["sha256"] if "sha256" in fp else earlier.get(i)
        complete = scan.error is None and scan.digest is not None
        if complete and expected is not None and scan.digest != expected:
            stale = f"a build of {fp['name']} as it was before it changed (its SHA-256 differs)"
            text = json.dumps({**identity, "stale": stale}, indent=1) + "\n"
            atomic_write_text(out_dir / IDENTITY_FILE, text)
            (out_dir / "manifest.json").unlink(missing_ok=True)
            raise StaleSourceError(f"{out_dir} holds {stale}; {_FIX}")
        digest = scan.digest if complete else fp.get("sha256")
        size = scan.size if fp["bytes"] is None else fp["bytes"]
        inputs.append({**fp, "bytes": size, "sha256": digest})
    return inputs


def _confirmed(out_dir: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an intact finished build of these inputs, with the sources' current
    names (a moved source is the same input: the manifest is what a build there would write)."""
    manifest = verify_build(out_dir)
    names = [s["name"] for s in identity["sources"]]
    if [s["name"] for s in manifest["inputs"]] != names:
        for row, inp, name in zip(manifest["sources"], manifest["inputs"], names, strict=True):
            row["name"] = inp["name"] = name
        atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify_build(out_dir: Path, *, checksums: bool = False) -> dict[str, Any]:
    """The manifest of a finished, intact build in ``out_dir``: every shard it lists exists with
    its recorded size (and, with ``checksums``, SHA-256). Raises DamagedBuildError, one line
    naming the first bad file, for a damaged build, and BuildError where there is no manifest."""
    out_dir = Path(out_dir)
    manifest = _read_json(out_dir / "manifest.json")
    if manifest is None:
        raise BuildError(f"{out_dir} holds no finished build (no readable manifest.json)")
    if "view" in manifest:  # a cap's view of a shared build: that build must be the same one
        from data_pipeline.views import check_view

        check_view(out_dir, manifest)
    problems = [
        p for s in manifest["shards"] if (p := shard_problem(out_dir, s, checksum=checksums))
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedBuildError(f"damaged build in {out_dir}: {problems[0]}{more}; {REPAIR}")
    return manifest
