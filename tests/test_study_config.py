"""Every knob of every stage config is settable from a study TOML and reaches its stage; the
registry round-trips through its one module; nothing else spells a workdir path or column."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from elocap.workdir import (
    CheckpointRow,
    RatingRow,
    Workdir,
    read_checkpoints,
    read_ratings,
    write_checkpoints,
    write_ratings,
)
from jobs import study_plan
from jobs.study_config import SELFPLAY_DERIVED, StudyConfig, load_study_config
from scaling.config import to_dict

REPO = Path(__file__).resolve().parents[1]


def _other(hint: Any, value: Any, path: str) -> Any:
    """A value of type ``hint`` different from ``value`` that the field's checks accept."""
    union = isinstance(hint, types.UnionType)
    options = [o for o in (typing.get_args(hint) if union else (hint,)) if o is not type(None)]
    base = options[0]
    special = {
        "data.sources": ["ladder", "other.pgn"],
        "data.caps": [1500, 1800],
        "data.build.filters.elo_rule": "mean",
        "data.build.filters.time_controls": ["blitz", "rapid"],
        "data.build.filters.date_from": "2020.01.01",
        "data.build.filters.date_to": "2030.01.01",
        "data.build.filters.cap": None,
        "supervised.sizes": ["10k"],
        "supervised.budgets": [2e11],
        "supervised.dtype": "float32",
        "selfplay.run.dtype": "float32",
        "supervised.resources.resources": {"spot": 1.0},
        "supervised.resources.tpu_slice": "v6e-16",
        "arena.games.resources.resources": {"spot": 1.0},
        "arena.games.resources.tpu_slice": "v6e-16",
        "selfplay.run.search.kind": "alphazero",
        "selfplay.run.search.max_depth": 4,
        "selfplay.run.resign_value": -0.8,
        "selfplay.run.lr_schedule": "constant",
        "selfplay.run.elo": 1500,
        "selfplay.run.adjudicate_margin": 5,
        "arena.anchors": ["random", "stockfish:elo=1350,nodes=10"],
        "arena.anchor_elos": {"stockfish-1350-n10": 1350.0},
        "arena.test_time_sims": [0, 2, 32],
        "arena.test_time_checkpoints": "all",
        "analysis.replicates": "intervals",
        "analysis.rating_model": "bayeselo",
        "analysis.bridges": [{"agent": "mix-n20-p0.9", "elo": 110.0, "se": 25.0}],
        "analysis.analysis.forms": ["linear", "changepoint"],
        "name": "other",
    }
    if path in special:
        return special[path]
    if typing.get_origin(base) in (tuple, frozenset) and value is not None and len(value) >= 2:
        return sorted(value)[:-1] if isinstance(value, frozenset) else list(value)[:-1]
    if base is bool:
        return not value
    if base is int:
        return (value or 0) + 1
    if base is float:
        return float(value or 0.5) * 0.5 if 0 < (value or 0.5) <= 1 else float(value) + 1.5
    if base is str:
        return f"{value}x"
    raise AssertionError(f"no test value for {path} ({hint}); add one to `special`")


def _leaves(cls: type[Any], prefix: str) -> list[tuple[str, Any]]:
    """(dotted path, type) of every settable leaf field under ``cls``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if prefix == "selfplay.run." and f.name in SELFPLAY_DERIVED:
            continue  # set by the runner: a study that sets them is an error (tested below)
        if path in ("data.build.filters.cap", "analysis.anchors", "analysis.sims"):
            continue  # from data.caps / arena.anchor_elos / arena.sims (tested below)
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            out += _leaves(hint, path + ".")
        else:
            out.append((path, hint))
    return out


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"
    return repr(value)


LEAVES = _leaves(StudyConfig, "")
# a field valid only with a sibling set: (sibling, its value), the sibling left out of the
# "everything else at its default" check
COMPANIONS = {"tpu_slice": ("num_tpus", 4.0)}


def test_the_field_table_covers_every_stage() -> None:
    tables = {p.split(".")[0] for p, _ in LEAVES}
    assert tables == {"name", "data", "supervised", "selfplay", "arena", "analysis"}
    assert len(LEAVES) > 80  # every stage's own config, nested: not a hand list


@pytest.mark.parametrize(("path", "hint"), LEAVES, ids=[p for p, _ in LEAVES])
def test_every_field_is_settable_from_toml_and_reaches_its_stage(
    path: str, hint: Any, tmp_path: Path
) -> None:
    default = StudyConfig()
    value = _other(hint, _get(default, path), path)
    *tables, key = path.split(".")
    text = (f"[{'.'.join(tables)}]\n" if tables else "") + f"{key} = {_toml_value(value)}\n"
    if path == "arena.anchor_elos":
        text += 'anchors = ["random", "stockfish:elo=1350,nodes=10"]\n'  # its anchor
    companion = COMPANIONS.get(key if path.endswith(".tpu_slice") else path)
    if companion is not None:  # a field that is valid only with another one set
        text += f"{companion[0]} = {_toml_value(companion[1])}\n"
    toml = tmp_path / "study.toml"
    toml.write_text(text)
    cfg = load_study_config(toml)
    got = _get(cfg, path)
    assert got != _get(default, path), f"{path}: the TOML value did not arrive"
    # everything else stays at the tiny study's defaults
    plain, ref = to_dict(cfg), to_dict(default)
    node, node_ref = plain, ref
    for part in path.split(".")[:-1]:
        node, node_ref = node[part], node_ref[part]
    node.pop(key), node_ref.pop(key)
    companion = COMPANIONS.get(key if path.endswith(".tpu_slice") else path)
    if companion is not None:
        node.pop(companion[0]), node_ref.pop(companion[0])
    if path != "arena.anchor_elos":
        assert plain == ref
    _reaches_stage(cfg, path, got, tmp_path)


def _reaches_stage(cfg: StudyConfig, path: str, value: Any, tmp_path: Path) -> None:
    """The value is in the config the stage is handed (derived by jobs.study_plan)."""
    wd = Workdir(root=tmp_path / "wd")
    table, _, rest = path.partition(".")
    if table == "supervised":
        job = study_plan.sweep_job(cfg, wd)
        assert _get(job, rest) == value
    elif table == "selfplay" and rest.startswith("run."):
        runs = _fake_selfplay_runs(cfg, wd)
        if rest == "run.corpus_mix":  # the from-scratch control never mixes
            runs = [r for r in runs if r.study["regime"] == "selfplay_cap"]
        assert runs and all(_get(r, rest[4:]) == value for r in runs)
    elif table in ("arena", "analysis", "data", "selfplay", "name"):
        assert _get(cfg, path) == value  # stages read these sections directly (study_stages)


def _fake_selfplay_runs(cfg: StudyConfig, wd: Workdir) -> list[Any]:
    """Self-play configs need the supervised runs' ids, which need the data's identity: give
    every cap a minimal manifest."""
    import json

    for cap in cfg.data.caps:
        wd.data_dir(cap).mkdir(parents=True, exist_ok=True)
        manifest = {"config": {"cap": cap}, "sources": [{"bytes": 1, "sha256": "0"}]}
        (wd.data_dir(cap) / "manifest.json").write_text(json.dumps(manifest))
    return study_plan.selfplay_runs(cfg, wd)


@pytest.mark.parametrize("key", [*SELFPLAY_DERIVED])
def test_fields_the_runner_derives_are_refused(key: str, tmp_path: Path) -> None:
    values = {
        "out_dir": '"x"',
        "init_run": '"x"',
        "init_step": "3",
        "study": '{cap = "1"}',
        "corpus_dir": '"x"',
    }
    toml = tmp_path / "s.toml"
    if key == "model":
        toml.write_text("[selfplay.run.model]\nwidth = 32\n")
    else:
        toml.write_text(f"[selfplay.run]\n{key} = {values[key]}\n")
    with pytest.raises(ValueError, match=f"selfplay.run.{key} is set by the study runner"):
        load_study_config(toml)
    toml.write_text("[data.build.filters]\ncap = 1500\n")
    with pytest.raises(ValueError, match=r"data\.caps"):
        load_study_config(toml)


def test_unknown_nested_key_names_it(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[arena.games]\nmovecap = 3\n")
    with pytest.raises(ValueError, match=r"unknown keys in arena\.games\.: \['movecap'\]"):
        load_study_config(toml)


def test_shipped_studies_load(tmp_path: Path) -> None:
    for path in sorted((REPO / "jobs" / "studies").glob("*.toml")):
        with open(path, "rb") as f:
            assert tomllib.load(f)
        assert load_study_config(path).name
    assert load_study_config(REPO / "jobs" / "studies" / "tiny.toml") == StudyConfig()


def test_registry_rows_round_trip(tmp_path: Path) -> None:
    rows = [
        CheckpointRow(
            agent="cap1800-10k-abc@40-s8",
            checkpoint="cap1800-10k-abc@40",
            sims=8,
            run_id="cap1800-10k-abc",
            regime="supervised",
            cap=1800,
            size="10k",
            params=10_240,
            step=40,
            flops=1.2345678901234e11,
            parent="",
        ),
        CheckpointRow(
            agent="selfplay-scratch-10k-def@3",
            checkpoint="selfplay-scratch-10k-def@3",
            sims=0,
            run_id="selfplay-scratch-10k-def",
            regime="selfplay_scratch",
            cap=None,
            size="10k",
            params=10_240,
            step=3,
            flops=3.0e11 / 7,
            parent="",
        ),
    ]
    wd = Workdir(root=tmp_path)
    write_checkpoints(wd.checkpoints_csv, rows)
    assert read_checkpoints(wd.checkpoints_csv) == rows
    ratings = [RatingRow(name="random", rating=0.0, lower=-1.5, upper=1.5, games=10, score=0.25)]
    write_ratings(wd.ratings_csv, ratings)
    assert read_ratings(wd.ratings_csv) == ratings
    with pytest.raises(ValueError, match="appears more than once"):
        write_checkpoints(wd.checkpoints_csv, rows + rows[:1])
    text = wd.checkpoints_csv.read_text().replace(",1800,", ",18x0,")
    wd.checkpoints_csv.write_text(text)
    with pytest.raises(ValueError, match=r"checkpoints.csv: row 2, column cap: an integer"):
        read_checkpoints(wd.checkpoints_csv)


# Spellings of the study layout (directories joined to a root, the registry's file names, run
# names) that only elocap/workdir.py may contain.
_LAYOUT = re.compile(
    r"""/\s*["'](registry|ratings|stages|arena|runs|corpus|report|data|logs)["']"""
    r"""|["'](checkpoints|ratings|supervised|selfplay)\.(csv|pgn)["']|f["'](cap|selfplay-)\{"""
)


def test_no_code_outside_the_workdir_module_spells_the_layout() -> None:
    offenders = []
    for package in ("elocap", "data_pipeline", "scaling", "mcts", "analysis", "jobs"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "elocap" / "workdir.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if _LAYOUT.search(code):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_ladder_players_are_partners_rating_games_and_bridges(tmp_path: Path) -> None:
    """With the ladder as a source, its log joins the ratings fit, its players every arena
    phase, and the report's bridges are its players at their fitted ratings (the corpus's
    tags), then the bridges the study declares."""
    from analysis.scale import Bridge
    from elocap.execution import InlineExecutor
    from mcts.ladder import LadderConfig, build_ladder, ladder_ratings

    small = LadderConfig(levels=(0.9, 0.5), nodes=10, games=18, openings=2, move_cap=120)
    declared = Bridge(agent="stockfish-n10", elo=1500.0, se=50.0)
    base = StudyConfig()
    cfg = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, ladder=small),
        analysis=dataclasses.replace(base.analysis, bridges=(declared,)),
    )
    wd = Workdir(root=tmp_path)
    assert [a.name for a in study_plan.ladder_partners(cfg)] == ["mix-n10-p0.9", "mix-n10-p0.5"]
    assert study_plan.rating_logs(cfg, wd) == []  # nothing played yet
    log = study_plan.ladder_log(cfg, wd)[0]
    build_ladder(small, wd.corpus("ladder"), log, InlineExecutor(), progress=False)
    assert study_plan.rating_logs(cfg, wd) == [log]
    fitted = ladder_ratings(log)
    bridges = study_plan.bridges(cfg, wd)
    assert bridges[-1] == declared
    assert {b.agent: b.elo for b in bridges[:-1]} == {
        n: float(r) for n, r in zip(fitted.names, fitted.rating, strict=True) if n != "random"
    }
    other = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=("x.pgn",)))
    assert study_plan.ladder_partners(other) == [] and study_plan.bridges(other, wd) == (declared,)


def test_the_small_lichess_study_reads_the_shared_data_and_reaches_its_bridge() -> None:
    """jobs/studies/small-lichess.toml: the shared Lichess files, budgets over 1.5 decades,
    search in the arena, and its bridge an anchor at the top of a chain that starts at the
    random mover and whose anchors play each other (else nothing links the bridge to the
    random mover's scale but checkpoints far below it)."""
    import math

    from data_pipeline.sources import resolve_sources
    from mcts.agents import parse_agent
    from tests.conftest import LICHESS_FILES, data_file

    cfg = load_study_config(REPO / "jobs" / "studies" / "small-lichess.toml")
    budgets = cfg.supervised.budgets
    assert math.log10(max(budgets) / min(budgets)) >= 1.5 and cfg.arena.sims > 0
    anchors = [parse_agent(a).name for a in cfg.arena.anchors]
    assert anchors[0] == "random" and cfg.arena.schedule.anchor_games > 0
    assert [b.agent for b in cfg.analysis.bridges] == [anchors[-1]]
    assert all(b.se > 0 and b.source for b in cfg.analysis.bridges)
    [bridge] = [a for a in study_plan.anchor_ladder(cfg, "supervised") if a.name == anchors[-1]]
    assert bridge.kind == "stockfish"
    shared = {data_file(f).resolve() for f in LICHESS_FILES}  # a skip here, an error in CI
    assert shared <= {s.path for s in resolve_sources(cfg.data.sources)}  # the six, at least


def test_evaluated_checkpoints_are_log_spaced_and_end_with_the_last() -> None:
    assert study_plan.log_spaced_picks(5, 1) == [4]  # one pick: the last, not step 1
    assert study_plan.log_spaced_picks(5, 2) == [0, 4]
    assert study_plan.log_spaced_picks(17, 4) == [0, 2, 6, 16]
    assert study_plan.log_spaced_picks(3, 8) == [0, 1, 2]
    assert study_plan.log_spaced_picks(0, 2) == []


def test_the_cap_arm_mixes_its_caps_data_and_the_control_none(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[data]\ncaps = [1200, 1500]\n[selfplay.run]\ncorpus_mix = 0.25\n")
    wd = Workdir(root=tmp_path / "wd")
    runs = _fake_selfplay_runs(load_study_config(toml), wd)
    arms = {(r.study["regime"], r.study["cap"]): r for r in runs}
    assert set(arms) == {
        ("selfplay_cap", "1200"),
        ("selfplay_cap", "1500"),
        ("selfplay_scratch", ""),
    }
    for cap in (1200, 1500):
        run = arms["selfplay_cap", str(cap)]
        assert (run.corpus_mix, run.corpus_dir) == (0.25, str(wd.data_dir(cap)))
    scratch = arms["selfplay_scratch", ""]
    assert (scratch.corpus_mix, scratch.corpus_dir) == (0.0, "")
    # the control is the same run (one id) with or without a mix in the study
    toml.write_text("[data]\ncaps = [1200, 1500]\n")
    plain = {
        r.study["regime"] + r.study["cap"]: r
        for r in _fake_selfplay_runs(load_study_config(toml), wd)
    }
    assert plain["selfplay_scratch"].out_dir == scratch.out_dir
    assert plain["selfplay_cap1500"].out_dir != arms["selfplay_cap", "1500"].out_dir
