"""A synthetic ladder corpus whose players span the strengths tiny models reach, rated on the
arena's scale (the random mover = 0).

Players: the uniformly random mover and mixed agents (``mcts.agents.MixedAgent``: Stockfish at
a node limit that plays a random legal move with probability p) at the levels p, weakest
first. Each player meets the players up to ``span`` levels away (the random mover is level 0),
colours alternated over the ECO openings, so the pool is connected through neighbours whose
ratings differ by about 100-200 Elo.

Reproducible: every game draws its random moves from a generator seeded by (``seed``, its
GameId), and its engines search a node limit with one thread from fresh tables (``ucinewgame``
at its first move), so a game is a function of the config, whatever worker plays it, in
whatever order. Games are played in chunks on the executor and appended to the ladder log as
they finish (an interrupted ladder resumes); the finished log is rewritten in job order.

Outputs, all from one fit of the log (Ordo, random = 0, ``ladder_ratings``):

- the log: every game, the rating games of the corpus's players (an arena log: the study's
  ratings fit includes it, so checkpoints and corpus players are rated in one pool);
- the corpus: the games between mixed players, whose WhiteElo/BlackElo tags are the players'
  fitted ratings (rounded), with a rated Event and a classical TimeControl; a cap on the data
  stage is therefore a rating on the arena's scale;
- ``ladder_bridges``: the players with their fitted ratings and standard errors, for the
  report's cap placement (``analysis.scale.Bridge``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chess
import numpy as np

from elocap.execution import Executor
from elocap.files import atomic_write_text
from mcts.agents import AgentSpec, MixedAgent, Player, RandomAgent
from mcts.arena import GameJob, game_record
from mcts.games import GameRecord, append_games, recover_log, referee
from mcts.openings import eco_openings
from mcts.scheduler import pairing_games

if TYPE_CHECKING:
    from analysis.ratings import RatingTable
    from analysis.scale import Bridge

EVENT = "Rated elocap ladder game"
TIME_CONTROL = "1800+0"  # classical: the data stage's time-control filter keeps it
_Z90 = 1.6448536269514722  # the ratings' intervals are 90%: se = (upper - lower) / (2 z)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LadderConfig:
    """The players and games of a ladder corpus."""

    # p of each mixed player: at 20 nodes about +110, +220, +390, +540, +650, +770, +890 Elo
    levels: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4)
    nodes: int = 20  # Stockfish's node limit per move of the mixed players
    games: int = 2000  # in all (random mover included), spread evenly over the pairs
    span: int = 2  # each player meets the players up to this many levels away
    move_cap: int = 300  # plies before a draw is adjudicated
    openings: int = 16  # ECO lines the games start from, colours alternated
    seed: int = 0  # every random choice of every game derives from it
    chunk: int = 50  # games per task (one engine per player and task)
    workers: int = 2  # tasks at once (does not change the games)

    def __post_init__(self) -> None:
        if len(self.levels) < 2 or any(not 0.0 <= p < 1.0 for p in self.levels):
            raise ValueError(
                f"ladder levels: two or more random-move probabilities in [0, 1): {self.levels}"
            )
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"ladder levels must be distinct: {self.levels}")
        if self.span < 1 or self.nodes < 1 or self.chunk < 1 or self.workers < 1:
            raise ValueError("ladder span, nodes, chunk and workers must be >= 1")
        if self.games < 2 * len(pairs_of(len(self.levels) + 1, self.span)):
            raise ValueError("a ladder needs at least 2 games per pair of players")
        if not 1 <= self.move_cap <= 1000:
            raise ValueError(f"ladder move_cap must be in 1..1000 plies, got {self.move_cap}")


@dataclasses.dataclass(frozen=True)
class LadderReport:
    played: int  # games played now
    skipped: int  # games already in the log
    seconds: float  # playing them
    ratings: dict[str, tuple[float, float, float]]  # name -> (rating, lower, upper), 90%


def pairs_of(players: int, span: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) of players at most ``span`` levels apart."""
    return [(i, j) for i in range(players) for j in range(i + 1, min(players, i + span + 1))]


def ladder_players(cfg: LadderConfig) -> list[AgentSpec]:
    """The random mover, then the mixed players, weakest (largest p) first."""
    mixed = [MixedAgent(p=p, nodes=cfg.nodes) for p in sorted(cfg.levels, reverse=True)]
    return [RandomAgent(), *mixed]


def ladder_jobs(cfg: LadderConfig) -> list[GameJob]:
    """The games of the ladder, pair by pair (neighbours within ``span``)."""
    players = ladder_players(cfg)
    pairs = pairs_of(len(players), cfg.span)
    per_pair = -(-cfg.games // len(pairs))
    per_pair += per_pair % 2
    openings = eco_openings(cfg.openings)
    return [
        job for i, j in pairs for job in pairing_games(players[i], players[j], openings, per_pair)
    ]


def game_seed(seed: int, game_id: str) -> int:
    digest = hashlib.sha256(f"ladder|{seed}|{game_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def config_digest(cfg: LadderConfig) -> str:
    """What the games depend on (not how they are spread over workers)."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("chunk", "workers")}
    return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:12]


def play_games(jobs: Sequence[GameJob], cfg: LadderConfig) -> list[GameRecord]:
    """Plays games one after the other, each from its own seed (one engine per player)."""
    players: dict[AgentSpec, Player] = {}
    digest = config_digest(cfg)
    records = []
    try:
        for job in jobs:
            rng = np.random.default_rng(game_seed(cfg.seed, job.game_id))
            board = chess.Board()
            for uci in job.opening.moves:
                board.push_uci(uci)
            while len(board.move_stack) < cfg.move_cap and referee(board) is None:
                spec = job.white if board.turn == chess.WHITE else job.black
                if spec not in players:
                    players[spec] = spec.player()
                board.push(players[spec].choose([board], rng)[0])
            records.append(
                game_record(
                    job,
                    board.move_stack,
                    move_cap=cfg.move_cap,
                    event=EVENT,
                    extra=(("Ladder", digest),),
                )
            )
    finally:
        for player in players.values():
            player.close()
    return records


def build_ladder(
    cfg: LadderConfig,
    corpus_path: Path,
    log_path: Path,
    executor: Executor,
    *,
    progress: bool = True,
) -> LadderReport:
    """Plays (or finishes) the ladder into ``log_path``, fits its ratings and writes the corpus
    with the fitted ratings as Elo tags to ``corpus_path``."""
    jobs = ladder_jobs(cfg)
    digest = config_digest(cfg)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    recover_log(log_path)  # a game cut off in mid-write is dropped
    blocks = _blocks(log_path)
    planned = {j.game_id for j in jobs}
    kept = {g: b for g, (d, b) in blocks.items() if d == digest and g in planned}
    if len(kept) != len(blocks):  # games of another ladder config: not ours to resume
        atomic_write_text(log_path, "".join(kept.values()))
    todo = [j for j in jobs if j.game_id not in kept]
    start = time.perf_counter()
    chunks = [(todo[i : i + cfg.chunk], cfg) for i in range(0, len(todo), cfg.chunk)]
    bar = _progress(len(todo), progress)
    for _, records in executor.map_unordered(play_games, chunks, window=cfg.workers):
        append_games(log_path, records)
        bar.update(len(records))
    bar.close()
    seconds = time.perf_counter() - start
    blocks = _blocks(log_path)
    ordered = [blocks[j.game_id][1] for j in jobs]
    if list(blocks) != [j.game_id for j in jobs]:
        atomic_write_text(log_path, "".join(ordered))  # job order: the same bytes every run
    table = ladder_ratings(log_path)
    elo = {n: round(float(r)) for n, r in zip(table.names, table.rating, strict=True)}
    random_name = RandomAgent().name
    corpus = [
        _with_tags(text, (("WhiteElo", elo[j.white.name]), ("BlackElo", elo[j.black.name])))
        for j, text in zip(jobs, ordered, strict=True)
        if random_name not in (j.white.name, j.black.name)
    ]
    corpus_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(corpus_path, "".join(corpus))
    ratings = {
        str(n): (float(r), float(lo), float(hi))
        for n, r, lo, hi in zip(table.names, table.rating, table.lower, table.upper, strict=True)
    }
    return LadderReport(len(todo), len(jobs) - len(todo), seconds, ratings)


def ladder_ratings(log_path: Path) -> RatingTable:
    """The one fit of the ladder's games: Ordo, the random mover at 0, 90% intervals."""
    from analysis.ratings import DisconnectedPoolError, fit_ratings, read_pgn_results

    games, _ = read_pgn_results([log_path])
    try:
        return fit_ratings(games, "ordo", anchors={RandomAgent().name: 0.0}, confidence=0.9)
    except DisconnectedPoolError as e:
        raise DisconnectedPoolError(
            f"the ladder's players cannot be rated ({log_path}): play more games or put the "
            f"levels closer together. {e}"
        ) from None


def ladder_bridges(log_path: Path) -> tuple[Bridge, ...]:
    """The corpus's players as bridges: their fitted rating (the corpus's Elo tag, unrounded)
    and its standard error."""
    from analysis.scale import Bridge

    table = ladder_ratings(log_path)
    out = []
    for name, r, lo, hi in zip(table.names, table.rating, table.lower, table.upper, strict=True):
        if name == RandomAgent().name:
            continue
        se = float(hi - lo) / (2 * _Z90)
        out.append(Bridge(agent=str(name), elo=float(r), se=se, source="ladder fit, random = 0"))
    return tuple(out)


_EVENT_LINE = re.compile(r"^\[Event ", re.M)
_TAG = re.compile(r'^\[(GameId|Ladder) "([^"]*)"\]$', re.M)


def _blocks(path: Path) -> dict[str, tuple[str, str]]:
    """GameId -> (its Ladder digest, its PGN text) of a complete log, in file order."""
    if not path.exists():
        return {}
    text = path.read_text()
    starts = [m.start() for m in _EVENT_LINE.finditer(text)]
    out: dict[str, tuple[str, str]] = {}
    for a, b in zip(starts, [*starts[1:], len(text)], strict=True):
        block = text[a:b]
        head = block[: block.find("\n\n")]
        tags = {m[1]: m[2] for m in _TAG.finditer(head)}
        out[tags.get("GameId", "")] = (tags.get("Ladder", ""), block)
    return out


def _with_tags(block: str, elos: Sequence[tuple[str, int]]) -> str:
    """The game's PGN text with the Elo tags and the classical TimeControl added to its
    headers."""
    end = block.find("\n\n")
    tags = "".join(f'\n[{k} "{v}"]' for k, v in (*elos, ("TimeControl", TIME_CONTROL)))
    return block[:end] + tags + block[end:]


def _progress(total: int, show: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="ladder games", unit="game", disable=not show or total == 0)
