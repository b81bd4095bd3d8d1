"""A build sized by the budgets: the positions the largest run reads, the fraction that gives
every cap what it needs, the pilot's estimate of what the sources hold, and the manifest's note."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipeline import budget
from data_pipeline.chunks import BuildConfig
from data_pipeline.filters import FilterConfig
from data_pipeline.views import build_caps
from tests.conftest import data_file

SLICE = "lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst"
CAPS = (1200, 1500, 1800)


def test_positions_consumed_and_fraction_by_hand() -> None:
    # the 1M model at 1e18 FLOPs (4e8 FLOPs per position) reads the most: 2.5e9 positions
    runs = [(1e18, 4e8), (1e18, 4e10), (1e15, 4e8), (3e17, 4e8)]
    assert budget.positions_consumed(runs) == pytest.approx(2.5e9)
    assert budget.sample_fraction(1.0, 3.0) == 0.334  # rounded up to 3 digits
    assert budget.sample_fraction(2.5e9, 6.5e9) == 0.385
    assert budget.sample_fraction(1.234e-3, 1.0) == 0.00124
    assert budget.sample_fraction(5.0, 3.0) == 1.0  # the sources hold less than needed
    need = budget.DataBudget(positions=2.5e9, epochs=4.0, margin=1.2)
    assert need.needed == pytest.approx(7.5e8)
    with pytest.raises(ValueError):
        budget.DataBudget(positions=1.0, epochs=0.0)


def test_budget_sizes_the_build_and_the_manifest_says_why(tmp_path: Path) -> None:
    spec = str(data_file(SLICE))
    filters = FilterConfig(elo_rule="mover")
    exact = budget.estimate_positions([spec], filters, CAPS, pilot_decoded=10**6)
    views = [tmp_path / f"full{c}" for c in CAPS]
    cfg0 = BuildConfig(filters=filters)
    full = build_caps([spec], tmp_path / "all", cfg0, CAPS, views, use_ray=False, progress=False)
    # the whole slice is smaller than the pilot: every kept game decoded, the estimate exact
    assert exact["caps"] == {c: full["views"][c]["positions"]["train"] for c in CAPS}
    rough = budget.estimate_positions([spec], filters, CAPS, pilot_decoded=100)
    for c in CAPS:
        assert rough["caps"][c] == pytest.approx(exact["caps"][c], rel=0.25)

    need = budget.DataBudget(positions=5000.0, epochs=2.0, note="test")
    cfg = budget.sampled_config(BuildConfig(filters=filters), need, exact)
    assert 0 < cfg.sample_fraction < 1
    assert cfg.chunk_games == min(20_000, round(2000 / cfg.sample_fraction))  # fewer, fuller files
    assert cfg.sample_fraction == budget.sample_fraction(need.needed, min(exact["caps"].values()))
    out = build_caps([spec], tmp_path / "sampled", cfg, CAPS,
                     [tmp_path / f"s{c}" for c in CAPS], use_ray=False, progress=False)  # fmt: skip
    shared = out["shared"]
    assert shared["sampling"]["fraction"] == cfg.sample_fraction
    assert "2.5e+03 per cap" not in shared["sampling"]["note"]
    assert "3e+03 per cap" in shared["sampling"]["note"]  # 5000 / 2 epochs x margin 1.2
    assert shared["sampling"]["not_sampled"] == shared["rejected"]["not_sampled"] > 0
    lowest = out["views"][CAPS[0]]
    assert lowest["sampling"] == shared["sampling"]
    # the binding cap gets about what it needs (a hash sample of ~ hundreds of games)
    assert lowest["positions"]["train"] == pytest.approx(need.needed, rel=0.3)
    for c in CAPS:
        assert out["views"][c]["positions"]["train"] <= full["views"][c]["positions"]["train"]


def test_a_study_with_data_epochs_samples_its_build_to_its_budgets(tmp_path: Path) -> None:
    """``[data] epochs`` in a study: the data stage's build config is sampled to what the
    largest supervised run reads, and says so; a bigger budget samples more."""
    from jobs.study_config import load_study_config
    from jobs.study_stages import sized_build

    source = data_file("lichess/lichess_db_standard_rated_2021-10.first999.pgn.zst")
    fractions = []
    for budget_flops in (3e10, 1e11):
        toml = tmp_path / f"s{budget_flops:g}.toml"
        toml.write_text(
            f'[data]\nsources = ["{source}"]\ncaps = [1800, 2000]\nepochs = 1.0\n'
            f'[supervised]\nsizes = ["10k", "30k"]\nbudgets = [{budget_flops:g}]\n'
        )
        cfg = sized_build(load_study_config(toml), [str(source)], tmp_path / "cache")
        assert 0 < cfg.sample_fraction < 1
        assert f"{budget_flops:g} FLOPs" in cfg.sample_note and "10k" in cfg.sample_note
        fractions.append(cfg.sample_fraction)
    assert fractions[0] < fractions[1]
    with pytest.raises(ValueError, match=r"data\.epochs"):
        bad = tmp_path / "bad.toml"
        bad.write_text(f'[data]\nsources = ["{source}"]\ncaps = [1800]\nepochs = -1\n')
        load_study_config(bad)
