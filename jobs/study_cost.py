"""What a study will cost, before it runs: per stage the runs, FLOPs, arena games (an upper
bound), disk and device time at a stated rate (``elocap study plan``, ``elocap study submit``).

The rates are assumptions, printed with every estimate: on GPUs, 30% of an H100's bf16 peak per
GPU; on TPUs, 30% of a v5e chip's bf16 peak per chip; on CPUs, the 1e10 FLOP/s measured for a
30k model on one core of this project's 2-core machine (BENCHMARKS.md).
"""

from __future__ import annotations

from elocap.execution import Resources
from jobs.study_config import StudyConfig

UTILISATION = 0.3
CPU_FLOPS = 1e10  # per core, measured (30k model, batch 128)


def _rate(res: Resources) -> tuple[float, str]:
    """(FLOP/s of one trial, what was assumed)."""
    from scaling.flops import PEAK_FLOPS

    if res.num_gpus:
        per = PEAK_FLOPS["H100"] * UTILISATION
        return per * res.num_gpus * res.hosts, f"{res.num_gpus * res.hosts:g} H100 at 30% of peak"
    if res.num_tpus:
        per = PEAK_FLOPS["TPU v5e"] * UTILISATION
        chips = res.num_tpus * res.hosts
        return per * chips, f"{chips:g} v5e chips at 30% of peak"
    cores = max(res.num_cpus, 1.0) * res.hosts
    return CPU_FLOPS * cores, f"{cores:g} CPU cores at 1e10 FLOP/s each"


def _time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cost_lines(cfg: StudyConfig) -> list[str]:
    """The study's cost, a line per stage that spends compute, each estimate with its basis."""
    from scaling.model import NAMED_SIZES, param_count

    sw = cfg.supervised
    grid = [(cap, size, b) for cap in cfg.data.caps for size in sw.sizes for b in sw.budgets]
    rate, basis = _rate(sw.resources)
    flops = sum(b for _, _, b in grid)
    # a kept checkpoint: parameters and Adam's two moments in float32
    disk = sum(param_count(NAMED_SIZES[size]) * 4 * 3 * (sw.milestones + 1) for _, size, _ in grid)
    lines = [
        f"supervised: {len(grid)} runs, {flops:.2g} FLOPs, {flops / rate / 3600:.3g} trial-hours "
        f"on {basis} per trial ({_time(flops / rate)} one after the other), checkpoints "
        f"{disk / 1e9:.2g} GB"
    ]
    n_sp = len(cfg.data.caps) * (1 + int(cfg.selfplay.scratch)) if cfg.selfplay.enabled else 0
    if n_sp:
        sp_flops = n_sp * cfg.selfplay.run.budget_flops
        run = cfg.selfplay.run
        sp_rate, sp_basis = _rate(Resources(num_cpus=run.learner_cpus, num_gpus=run.learner_gpus))
        lines.append(
            f"self-play: {n_sp} runs, {sp_flops:.2g} FLOPs added, about "
            f"{_time(sp_flops / sp_rate)} one after the other if the learner's {sp_basis} "
            "bound it (search on the actors adds to it)"
        )
    a, s = cfg.arena, cfg.arena.schedule
    agents = (len(grid) + n_sp) * a.checkpoints_per_run
    games = s.max_rounds * agents * (2 * s.neighbours + 1) * s.games_per_pair
    lines.append(
        f"arena: {agents} checkpoints at {a.sims} simulations, at most {games} games "
        f"({s.max_rounds} rounds x {2 * s.neighbours + 1} opponents x {s.games_per_pair} games)"
    )
    return lines
