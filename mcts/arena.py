"""The arena: plays a list of games between agents and appends them to a PGN log.

Games are grouped into batches. A batch between two on-device agents (networks, random) is
played as one pgx batch on the device (``mcts.arena_device``); any other batch is played on
python-chess boards, all its games at once: at every ply each agent answers the boards where it
is to move in one call (a network evaluates them as one batch; an engine answers them in turn).
With Ray, batches run as tasks on the cluster's workers and each finished batch is appended to
the log as it arrives; without Ray they run in this process. Games already in the log (by
``GameId``) are never played again, so an interrupted tournament resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import chess
import numpy as np

from elocap.execution import Executor, Resources
from mcts.agents import AgentSpec, agent_flops
from mcts.games import GameRecord, append_games, finish, recover_log, referee
from mcts.openings import Opening

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArenaConfig:
    """How the games of a tournament are played."""

    move_cap: int = 300  # plies; a game still going is adjudicated a draw (<= 512 on device)
    batch: int = 64  # concurrent games per batch (device batches are padded to this)
    workers: int = 2  # Ray tasks running at once (cluster CPUs permitting)
    seed: int = 0  # games are seeded by their id and this seed
    event: str = "elocap arena"  # the PGN Event tag
    resources: Resources = dataclasses.field(default_factory=Resources)  # each worker's request

    def __post_init__(self) -> None:
        if not 1 <= self.move_cap <= 512:
            raise ValueError(f"arena move_cap must be in 1..512 plies, got {self.move_cap}")
        if self.batch < 1 or self.workers < 1:
            raise ValueError("arena batch and workers must be >= 1")


@dataclasses.dataclass(frozen=True)
class GameJob:
    """One game to play."""

    white: AgentSpec
    black: AgentSpec
    opening: Opening
    round: int = 0  # distinguishes repeated games of one pairing and opening
    extra: tuple[tuple[str, str], ...] = ()  # further PGN tags

    @property
    def game_id(self) -> str:
        return f"{self.white.name}|{self.black.name}|{self.opening.name}|{self.round}"


def _seed(job: GameJob, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}|{job.game_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def game_record(
    job: GameJob,
    moves: Sequence[chess.Move],
    *,
    move_cap: int,
    event: str,
    ended: str | None = None,
    extra: tuple[tuple[str, str], ...] | None = None,
) -> GameRecord:
    """The refereed record of a game played for ``job`` (the arena's and the ladder's)."""
    played, result, termination, _ = finish(moves, move_cap, ended_elsewhere=ended)
    return GameRecord(
        game_id=job.game_id,
        white=job.white.name,
        black=job.black.name,
        moves=played,
        result=result,
        termination=termination,
        opening=job.opening.name,
        opening_plies=len(job.opening.moves),
        white_flops=agent_flops(job.white),
        black_flops=agent_flops(job.black),
        event=event,
        extra=job.extra if extra is None else extra,
    )


def _record(
    job: GameJob, moves: Sequence[chess.Move], cfg: ArenaConfig, ended: str | None = None
) -> GameRecord:
    return game_record(job, moves, move_cap=cfg.move_cap, event=cfg.event, ended=ended)


def play_batch(jobs: Sequence[GameJob], cfg: ArenaConfig) -> list[GameRecord]:
    """Plays the games of one batch (on the device when every agent can) and referees them."""
    agents = {j.white for j in jobs} | {j.black for j in jobs}
    if len(agents) <= 2 and all(a.on_device for a in agents):
        return _play_on_device(jobs, cfg)
    return _play_on_host(jobs, cfg)


def _play_on_device(jobs: Sequence[GameJob], cfg: ArenaConfig) -> list[GameRecord]:
    from mcts.arena_device import play_device_batch

    a = jobs[0].white
    b = next((x for j in jobs for x in (j.white, j.black) if x != a), a)
    games = play_device_batch(
        a,
        b,
        [j.opening for j in jobs],
        [j.white == a for j in jobs],
        plies=cfg.move_cap,
        seed=_seed(jobs[0], cfg.seed),
        batch=cfg.batch,
    )
    # python-chess referees: where pgx's rules differ (its repetition hash counts an en passant
    # square that python-chess, like FIDE, ignores when no capture is legal), the record follows
    # python-chess, and a game pgx ended early is a draw "device_rules"; both are logged.
    records = [_record(j, g, cfg, "device_rules") for j, g in zip(jobs, games, strict=True)]
    for record, moves in zip(records, games, strict=True):
        if len(record.moves) != len(moves) or record.termination == "device_rules":
            log.warning(
                "pgx and python-chess disagree on the end of game %s: %d plies on the device, "
                "%s after %d by python-chess",
                record.game_id,
                len(moves),
                record.termination,
                len(record.moves),
            )
    return records


def _play_on_host(jobs: Sequence[GameJob], cfg: ArenaConfig) -> list[GameRecord]:
    specs = {j.white for j in jobs} | {j.black for j in jobs}
    # in name order: the players draw from one generator, and a set's order varies by process
    players = {s: s.player() for s in sorted(specs, key=lambda s: s.name)}
    rng = np.random.default_rng(_seed(jobs[0], cfg.seed))
    boards = [chess.Board() for _ in jobs]
    for job, board in zip(jobs, boards, strict=True):
        for uci in job.opening.moves:
            board.push_uci(uci)
    try:
        while any(_live(b, cfg) for b in boards):
            for spec, player in players.items():  # each agent moves on all its boards at once
                mine = [
                    i for i, b in enumerate(boards) if _live(b, cfg) and _mover(jobs[i], b) == spec
                ]
                if mine:
                    moves = player.choose([boards[i] for i in mine], rng)
                    for i, move in zip(mine, moves, strict=True):
                        boards[i].push(move)
    finally:
        for player in players.values():
            player.close()
    return [_record(j, b.move_stack, cfg) for j, b in zip(jobs, boards, strict=True)]


def _live(board: chess.Board, cfg: ArenaConfig) -> bool:
    return len(board.move_stack) < cfg.move_cap and referee(board) is None


def _mover(job: GameJob, board: chess.Board) -> AgentSpec:
    return job.white if board.turn == chess.WHITE else job.black


def batches(jobs: Sequence[GameJob], cfg: ArenaConfig) -> list[list[GameJob]]:
    """Batches of at most ``cfg.batch`` games: one pairing (either colour) per device batch;
    engine games are spread so that every worker has work."""
    by_pair: dict[frozenset[AgentSpec], list[GameJob]] = {}
    for job in jobs:
        by_pair.setdefault(frozenset((job.white, job.black)), []).append(job)
    out: list[list[GameJob]] = []
    host: list[GameJob] = []
    for pair, pair_jobs in by_pair.items():
        if all(a.on_device for a in pair):
            out += [pair_jobs[i : i + cfg.batch] for i in range(0, len(pair_jobs), cfg.batch)]
        else:
            host += pair_jobs
    if host:
        size = min(cfg.batch, -(-len(host) // cfg.workers))
        out += [host[i : i + size] for i in range(0, len(host), size)]
    return out


@dataclasses.dataclass(frozen=True)
class TournamentReport:
    played: int  # games played now
    skipped: int  # games already in the log
    seconds: float


def run_tournament(
    jobs: Sequence[GameJob],
    pgn_path: Path,
    cfg: ArenaConfig,
    executor: Executor,
    *,
    progress: bool = True,
) -> TournamentReport:
    """Plays every job whose game is not yet in ``pgn_path`` and appends it there."""
    ids = [j.game_id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("two games of the tournament have the same GameId")
    pgn_path.parent.mkdir(parents=True, exist_ok=True)
    done = recover_log(pgn_path)
    todo = [j for j in jobs if j.game_id not in done]
    start = time.perf_counter()
    bar = _progress(len(todo), progress)
    # Batches are cut from the whole tournament, and a batch's games share its random stream,
    # so a batch that lost some games (a log cut by a crash or by damage) is played again
    # whole, and only its missing games are kept: every game is the one an unbroken run plays.
    work = [
        (batch, cfg) for batch in batches(jobs, cfg) if any(j.game_id not in done for j in batch)
    ]
    for _, records in executor.map_unordered(
        play_batch, work, resources=cfg.resources, window=cfg.workers
    ):
        new = [r for r in records if r.game_id not in done]
        append_games(pgn_path, new)
        bar.update(len(new))
    bar.close()
    return TournamentReport(len(todo), len(jobs) - len(todo), time.perf_counter() - start)


def _progress(total: int, show: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="arena games", unit="game", disable=not show or total == 0)
