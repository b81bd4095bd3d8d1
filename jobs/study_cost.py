"""What a study will cost, before it runs: per stage the runs, FLOPs, arena games (an upper
bound), disk and device time at a stated rate (``elocap study plan``, ``elocap study submit``).

The rates are assumptions, printed with every estimate: on GPUs, 30% of an H100's bf16 peak per
GPU; on TPUs, 30% of a v5e chip's bf16 peak per chip; on CPUs, the 1e10 FLOP/s measured for a
30k model on one core of this project's 2-core machine (BENCHMARKS.md). The arena's time is its
network's FLOPs at that rate, which compilation (per model, N and batch) and search on small
batches add to: tiny.toml's arena, at most 864 games and about 5 min by this count, played 544
games in 8-10 min (BENCHMARKS.md 10b); on smoke.toml, test_time_sims = [0, 16] (at most 64
more games, about 13 s by this count) added 44 games and took arena-supervised from 48 s to
341 s on loaded cores (README).
"""

from __future__ import annotations

from elocap.execution import Resources
from jobs.study_config import ArenaStage, StudyConfig

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
    # the arena rates every run's checkpoints; self-play continues the largest supervised model
    largest = max(sw.sizes, key=lambda s: NAMED_SIZES[s].width * NAMED_SIZES[s].depth)
    lines += arena_lines(cfg.arena, [size for _, size, _ in grid] + [largest] * n_sp)
    return lines


def arena_lines(a: ArenaStage, sizes: list[str]) -> list[str]:
    """The arena's players, games (an upper bound) and network time: a line for the players at
    the study's N (``arena.sims``), and one for the test-time players (``arena.test_time_sims``)
    where there are any. ``sizes``: the model size of every run the arena rates.

    Each round, every uncertain player plays ``2 neighbours + 1`` opponents (its neighbours in
    rating and the nearest anchor) and a test-time player also the next player of its
    checkpoint's chain in N; a game's side at N evaluates the network N + 1 times a move (the
    root and N simulations), at most ``ceil(move_cap / 2)`` moves, against an opponent at most
    at the largest N and size."""
    from scaling.flops import forward_flops_per_position
    from scaling.model import NAMED_SIZES

    s = a.schedule
    forward = {size: forward_flops_per_position(NAMED_SIZES[size]) for size in sizes}
    other_n = sorted(n for n in a.test_time_sims if n != a.sims)
    top_n, top = max([a.sims, *other_n]), max(forward.values(), default=0.0)
    moves = -(-a.games.move_cap // 2)
    rate, basis = _rate(a.games.resources)
    rate *= a.games.workers
    basis = f"{a.games.workers} workers x {basis}"

    def network(games_per_player: int, players: list[tuple[int, str]]) -> str:
        """At most this many network FLOPs, and their time: ``players`` as (N, size)."""
        flops = sum(
            games_per_player * moves * ((n + 1) * forward[size] + (top_n + 1) * top)
            for n, size in players
        )
        return (
            f"at most {flops:.2g} network FLOPs, about {_time(flops / rate)} on {basis} if the "
            "network bound it (compiling each model and N, and host search, add to it)"
        )

    opponents = 2 * s.neighbours + 1
    per_player = s.max_rounds * opponents * s.games_per_pair
    main = [(a.sims, size) for size in sizes for _ in range(a.checkpoints_per_run)]
    lines = [
        f"arena: {len(main)} checkpoints at {a.sims} simulations, at most "
        f"{len(main) * per_player} games ({s.max_rounds} rounds x {opponents} opponents x "
        f"{s.games_per_pair} games); {network(per_player, main)}"
    ]
    k, span = len(a.anchors), s.anchor_span
    if s.anchor_games and k > 1:  # mcts.scheduler.anchor_ladder, once, in the supervised phase
        pairings = sum(min(span, k - 1 - i) for i in range(k))
        lines.append(
            f"arena, anchors among themselves: {pairings} pairings ({k} anchors, each against "
            f"the next {span}) x {s.anchor_games} games = {pairings * s.anchor_games} games, "
            "once; engine and random players, no network FLOPs"
        )
    if other_n:
        picked = {"last": 1, "all": a.checkpoints_per_run}[a.test_time_checkpoints]
        variants = [(n, size) for size in sizes for _ in range(picked) for n in other_n]
        per_variant = s.max_rounds * (opponents + 1) * s.games_per_pair
        lines.append(
            f"arena, test-time search: {len(variants)} players ({len(sizes) * picked} "
            f"checkpoints ({a.test_time_checkpoints!r}) x N in {other_n}), at most "
            f"{len(variants) * per_variant} more games ({s.max_rounds} rounds x "
            f"{opponents + 1} opponents x {s.games_per_pair} games); "
            f"{network(per_variant, variants)}"
        )
    return lines
