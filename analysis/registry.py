"""A study's registry on disk, read into pandas DataFrames.

The study runner writes these files in the study's work directory; the analysis only reads them
(``write_checkpoints`` exists so that scripts and tests write the same format):

``<workdir>/registry/checkpoints.csv``
    One row per evaluated checkpoint. Columns (header required, order free, extra columns kept):

    ========  =====================================================================
    agent     the arena name of the checkpoint, e.g. ``sup-<run_id>@<step>`` (an opaque key,
              unique)
    run_id    the run the checkpoint belongs to (one run = one learning curve)
    regime    ``supervised``, ``selfplay_cap`` (self-play continued from a capped supervised
              checkpoint) or ``selfplay_scratch`` (self-play from a random initialisation)
    cap       the Elo cap of the data (integer); empty for ``selfplay_scratch``
    size      the named model size, e.g. ``30k``
    params    number of parameters (integer)
    step      the training step of the checkpoint (integer)
    flops     cumulative FLOPs (float); self-play continues the counter of its parent
    parent    the agent a self-play run continued from; empty otherwise
    ========  =====================================================================

``<workdir>/ratings/ratings.csv``
    ``name,rating,lower,upper,games,score``: one row per rated player (checkpoints by their
    ``agent`` name, and anchors such as ``random`` or ``stockfish-1350``), as
    ``analysis.ratings.RatingTable.write_csv`` writes it. ``lower``/``upper`` bound a
    confidence interval of level ``level`` (0.90, the ratings stage's default, unless told).

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

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from data_pipeline.files import atomic_write_text

REGIMES: tuple[str, ...] = ("supervised", "selfplay_cap", "selfplay_scratch")
CHECKPOINT_COLUMNS: tuple[str, ...] = (
    "agent",
    "run_id",
    "regime",
    "cap",
    "size",
    "params",
    "step",
    "flops",
    "parent",
)
RATING_COLUMNS: tuple[str, ...] = ("name", "rating", "lower", "upper", "games", "score")


def checkpoints_path(workdir: Path) -> Path:
    return Path(workdir) / "registry" / "checkpoints.csv"


def ratings_path(workdir: Path) -> Path:
    return Path(workdir) / "ratings" / "ratings.csv"


def arena_games(workdir: Path) -> list[Path]:
    """The arena's PGN files, sorted by name."""
    return sorted((Path(workdir) / "arena").glob("*.pgn"))


def _read_csv(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise OSError(f"{what} not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV file ({e})") from e
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def _numbers(
    frame: pd.DataFrame, column: str, path: Path, *, integer: bool, empty_ok: bool
) -> pd.Series:
    """The column as floats (NaN for empty cells where allowed); a clear error on bad cells."""
    text = frame[column].str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = values.isna() & ((text != "") | (not empty_ok))
    if integer:
        bad |= values.notna() & (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{path}: row {row + 2}, column {column}: "
            f"{'an integer' if integer else 'a number'} expected, got {text.iloc[row]!r}"
        )
    return values.astype(float)


def load_checkpoints(workdir: Path) -> pd.DataFrame:
    """``checkpoints.csv``, typed (``cap``, ``params`` and ``step`` as nullable Int64)."""
    path = checkpoints_path(workdir)
    frame = _read_csv(path, CHECKPOINT_COLUMNS, "checkpoint registry")
    for column in ("agent", "run_id", "regime", "size", "parent"):
        frame[column] = frame[column].str.strip()
    bad_regime = ~frame["regime"].isin(REGIMES)
    if bad_regime.any():
        row = int(np.flatnonzero(bad_regime.to_numpy())[0])
        raise ValueError(
            f"{path}: row {row + 2}: regime {frame['regime'].iloc[row]!r} is not one of "
            f"{', '.join(REGIMES)}"
        )
    empty = (frame["agent"] == "") | (frame["run_id"] == "")
    if empty.any():
        raise ValueError(f"{path}: row {int(np.flatnonzero(empty.to_numpy())[0]) + 2}: empty key")
    duplicated = frame["agent"].duplicated()
    if duplicated.any():
        name = frame["agent"][duplicated].iloc[0]
        raise ValueError(f"{path}: agent {name!r} appears more than once")
    for column, integer, empty_ok in (
        ("cap", True, True),
        ("params", True, False),
        ("step", True, False),
        ("flops", False, False),
    ):
        values = _numbers(frame, column, path, integer=integer, empty_ok=empty_ok)
        frame[column] = values.astype("Int64") if integer else values
    capped = frame["regime"] != "selfplay_scratch"
    if frame["cap"][capped].isna().any():
        raise ValueError(f"{path}: every supervised and selfplay_cap row needs a cap")
    if (frame["flops"] <= 0).any() or (frame["params"] <= 0).any():
        raise ValueError(f"{path}: flops and params must be positive")
    return frame


def load_ratings(workdir: Path, *, level: float = 0.90) -> pd.DataFrame:
    """``ratings.csv``: name, rating, lower, upper, games, score (floats), and ``se``: the
    interval's half width over the normal quantile of ``level``."""
    path = ratings_path(workdir)
    frame = _read_csv(path, RATING_COLUMNS, "ratings table")
    frame["name"] = frame["name"].str.strip()
    for column in RATING_COLUMNS[1:]:
        frame[column] = _numbers(frame, column, path, integer=False, empty_ok=False)
    if frame["name"].duplicated().any():
        raise ValueError(
            f"{path}: player {frame['name'][frame['name'].duplicated()].iloc[0]!r} "
            "appears more than once"
        )
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


def write_checkpoints(workdir: Path, frame: pd.DataFrame) -> Path:
    """Writes ``frame``'s registry columns as ``checkpoints.csv``, atomically."""
    missing = [c for c in CHECKPOINT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    path = checkpoints_path(workdir)
    text = frame.loc[:, list(CHECKPOINT_COLUMNS)].to_csv(index=False, float_format="%.9g")
    atomic_write_text(path, text)
    return path


def write_ratings(workdir: Path, frame: pd.DataFrame) -> Path:
    """Writes ``frame``'s rating columns as ``ratings.csv``, atomically."""
    missing = [c for c in RATING_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    path = ratings_path(workdir)
    atomic_write_text(path, frame.loc[:, list(RATING_COLUMNS)].to_csv(index=False))
    return path


def load_metrics(workdir: Path, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``metrics.jsonl`` rows of the given runs (default: every run with one), with a
    ``run_id`` column; lines cut short by a kill are skipped. Columns: run_id, split, step,
    flops, loss and whatever else the runs logged."""
    runs_dir = Path(workdir) / "runs"
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
            f"no arena games in {Path(workdir) / 'arena'} to bootstrap over "
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
        spread = np.maximum(out[:, rated].std(axis=0), 1.0)
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
