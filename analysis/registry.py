"""A study's registry on disk, read into pandas DataFrames.

The study runner writes these files in the study's work directory; the analysis only reads them
(``write_checkpoints`` exists so that scripts and tests write the same format):

``<workdir>/registry/checkpoints.csv``
    One row per rated agent, the columns of ``elocap.workdir.CheckpointRow`` (the one
    definition of the schema): ``agent`` (the arena's name of the player, unique),
    ``checkpoint`` (``<run id>@<step>``, its one identity), ``sims`` (the arena's simulations
    per move), ``run_id``, ``regime`` (``supervised``, ``selfplay_cap``, ``selfplay_scratch``),
    ``cap`` (empty for self-play from scratch), ``size``, ``params``, ``step``, ``flops``
    (cumulative; self-play continues its parent's counter) and ``parent`` (the checkpoint a
    self-play run continued from).

``<workdir>/ratings/ratings.csv``
    ``elocap.workdir.RatingRow``: ``name,rating,lower,upper,games,score``, one row per rated
    player (checkpoints by their ``agent`` name, and anchors such as ``random``);
    ``lower``/``upper`` bound an interval of level ``level`` (0.90 unless told).

``<workdir>/arena/*.pgn``
    Every arena game (the bootstrap over games reads them).

``<workdir>/runs/<run_id>/metrics.jsonl``
    One JSON object per logged step: ``{"split": "train" | "val", "step", "flops", "loss", ...}``
    (learning curves).

``load_study`` joins checkpoints with their ratings: columns ``elo``, ``elo_lo``, ``elo_hi``,
``elo_se`` (the interval's half width over its normal quantile), ``rating_games`` and
``log10_flops``; checkpoints without a rating get NaN.

Elo replicates for the fits' bootstrap (``f64[R, N]``, aligned with the study's rows):
``replicates_from_games`` refits the ratings on resampled arena games (the bootstrap over games,
``analysis.ratings.bootstrap_ratings``); ``replicates_from_intervals`` draws them from the
rating intervals when the games are not at hand.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from elocap import workdir as wdm
from elocap.workdir import REGIMES as REGIMES

CHECKPOINT_COLUMNS: tuple[str, ...] = wdm.columns(wdm.CheckpointRow)
RATING_COLUMNS: tuple[str, ...] = wdm.columns(wdm.RatingRow)


def checkpoints_path(root: Path) -> Path:
    return wdm.Workdir(root=Path(root)).checkpoints_csv


def ratings_path(root: Path) -> Path:
    return wdm.Workdir(root=Path(root)).ratings_csv


def arena_games(root: Path) -> list[Path]:
    """The arena's PGN files, sorted by name."""
    return sorted(wdm.Workdir(root=Path(root)).arena_dir.glob("*.pgn"))


def _frame(rows: Sequence[Any], cls: type[Any]) -> pd.DataFrame:
    columns = wdm.columns(cls)
    return pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=list(columns))


def load_checkpoints(root: Path) -> pd.DataFrame:
    """``checkpoints.csv``, typed (``cap``, ``params``, ``step`` and ``sims`` as nullable
    Int64); rows are validated by ``elocap.wdm.CheckpointRow``."""
    frame = _frame(wdm.read_checkpoints(checkpoints_path(root)), wdm.CheckpointRow)
    for column in ("cap", "params", "step", "sims"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    frame["flops"] = frame["flops"].astype(float)
    return frame


def load_ratings(root: Path, *, level: float = 0.90) -> pd.DataFrame:
    """``ratings.csv``: name, rating, lower, upper, games, score (floats), and ``se``: the
    interval's half width over the normal quantile of ``level``."""
    frame = _frame(wdm.read_ratings(ratings_path(root)), wdm.RatingRow)
    for column in RATING_COLUMNS[1:]:
        frame[column] = frame[column].astype(float)
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must lie in (0, 1), got {level}")
    z = float(stats.norm.ppf(0.5 + level / 2))
    frame["se"] = (frame["upper"] - frame["lower"]) / (2 * z)
    return frame


def load_study(workdir: Path, *, level: float = 0.90) -> pd.DataFrame:
    """Checkpoints joined with their ratings (see the module's docstring for the columns)."""
    checkpoints = load_checkpoints(workdir)
    ratings = load_ratings(workdir, level=level).set_index("name")
    joined = ratings.reindex(checkpoints["agent"])
    out = checkpoints.copy()
    out["elo"] = joined["rating"].to_numpy()
    out["elo_lo"] = joined["lower"].to_numpy()
    out["elo_hi"] = joined["upper"].to_numpy()
    out["elo_se"] = joined["se"].to_numpy()
    out["rating_games"] = joined["games"].to_numpy()
    out["log10_flops"] = np.log10(out["flops"].to_numpy(dtype=float))
    return out


def _rows(frame: pd.DataFrame, cls: type[Any]) -> list[Any]:
    columns = wdm.columns(cls)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    out = []
    for record in frame.loc[:, list(columns)].to_dict("records"):
        values = {}
        for c, v in record.items():
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v == "":
                values[c] = None if "None" in str(hints[c]) else v
            elif "int" in str(hints[c]):
                values[c] = int(v)
            elif "float" in str(hints[c]):
                values[c] = float(v)
            else:
                values[c] = str(v)
        out.append(cls(**values))
    return out


def write_checkpoints(root: Path, frame: pd.DataFrame) -> Path:
    """Writes ``frame``'s registry columns as ``checkpoints.csv``, atomically."""
    path = checkpoints_path(root)
    wdm.write_checkpoints(path, _rows(frame, wdm.CheckpointRow))
    return path


def write_ratings(root: Path, frame: pd.DataFrame) -> Path:
    """Writes ``frame``'s rating columns as ``ratings.csv``, atomically."""
    path = ratings_path(root)
    wdm.write_ratings(path, _rows(frame, wdm.RatingRow))
    return path


def load_metrics(workdir: Path, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``metrics.jsonl`` rows of the given runs (default: every run with one), with a
    ``run_id`` column; lines cut short by a kill are skipped. Columns: run_id, split, step,
    flops, loss and whatever else the runs logged."""
    runs_dir = wdm.Workdir(root=Path(workdir)).runs_dir
    if run_ids is None:
        paths = sorted(runs_dir.glob("*/metrics.jsonl"))
    else:
        paths = [runs_dir / r / "metrics.jsonl" for r in run_ids]
    rows = []
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if isinstance(row, dict):
                rows.append({"run_id": path.parent.name, **row})
    columns = ["run_id", "split", "step", "flops", "loss"]
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=float if column in ("flops", "loss") else object)
    return frame


def replicates_from_games(
    workdir: Path,
    study: pd.DataFrame,
    n: int,
    seed: int,
    *,
    model: str = "ordo",
    anchors: Mapping[str, float] | None = None,
) -> np.ndarray:
    """f64[n, N] Elo replicates: the ratings refitted on ``n`` resamples of the arena's games
    (``<workdir>/arena/*.pgn``), with the rating model and anchors of the ratings stage (its
    defaults: Ordo, ``random`` at 0). Unrated checkpoints get NaN. Raises ValueError when a
    rated checkpoint played no arena game, or when the replicates are not centred on
    ``ratings.csv`` (ratings fitted with another model or other anchors)."""
    from analysis.ratings import bootstrap_ratings, read_pgn_results

    if n < 2:
        raise ValueError(f"at least 2 replicates are needed, got {n}")
    paths = arena_games(workdir)
    if not paths:
        raise OSError(
            f"no arena games in {wdm.Workdir(root=Path(workdir)).arena_dir} to bootstrap over "
            "(use the replicates from the rating intervals instead)"
        )
    games, _ = read_pgn_results(paths)
    reps = bootstrap_ratings(games, model, n=n, seed=seed, anchors=anchors)  # f64[n, P]
    column = {name: i for i, name in enumerate(games.names)}
    elo = study["elo"].to_numpy(dtype=float)
    out = np.full((n, len(study)), np.nan)
    for j, agent in enumerate(study["agent"]):
        if agent in column:
            out[:, j] = reps[:, column[agent]]
        elif np.isfinite(elo[j]):
            raise ValueError(f"checkpoint {agent!r} has a rating but no game in {paths[0].parent}")
    rated = np.isfinite(elo)
    if rated.any():
        # the scale of a shift: the bootstrap's spread or the interval's standard error,
        # whichever is wider (a few decisive games make a discrete bootstrap whose spread is
        # far below the interval's and whose median sits a step off the estimate)
        se = (study["elo_hi"].to_numpy(dtype=float) - study["elo_lo"].to_numpy(dtype=float)) / 3.29
        spread = np.maximum(np.maximum(out[:, rated].std(axis=0), se[rated]), 1.0)
        shift = np.median(out[:, rated], axis=0) - elo[rated]
        if np.median(np.abs(shift) / spread) > 1.0:
            raise ValueError(
                f"the bootstrap over the arena games is not centred on ratings.csv (typical "
                f"shift {np.median(shift):+.0f} Elo): were the ratings fitted with another "
                f"model or other anchors than {model!r}, {dict(anchors or {}) or 'random = 0'}?"
            )
    return out


def replicates_from_intervals(study: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """f64[n, N] Elo replicates drawn independently from normal distributions with each
    rating's estimate and standard error (``elo_se``). An approximation for when the games
    are not at hand: it ignores the correlation that shared opponents put between ratings.
    NaN for unrated checkpoints."""
    if n < 2:
        raise ValueError(f"at least 2 replicates are needed, got {n}")
    elo = study["elo"].to_numpy(dtype=float)
    se = study["elo_se"].to_numpy(dtype=float)
    bad = np.isfinite(elo) & ~(np.isfinite(se) & (se >= 0))
    if bad.any():
        agent = study["agent"].iloc[int(np.flatnonzero(bad)[0])]
        raise ValueError(f"checkpoint {agent!r} has a rating without a valid interval")
    rng = np.random.default_rng(seed)
    return elo + rng.standard_normal((n, elo.size)) * se
