"""The agents of the arena: frozen specs in a registry, and the players they become.

A spec names an agent and says how to build it; it is data (it travels to Ray workers and is
written in PGN headers). ``parse_agent("stockfish:elo=1350")`` and ``spec.to_string()`` are
inverse. Kinds:

- ``random``: the uniformly random legal mover (the 0 Elo anchor);
- ``net``: a checkpoint's network, named ``<run_id>@<step>``: raw policy (``sims=0``; argmax, or
  sampled with ``temperature``) or network + search with ``sims`` simulations; ``elo`` sets the
  Elo-conditioning input of a conditioned model;
- ``stockfish``: Debian's Stockfish over UCI with ``UCI_LimitStrength``/``UCI_Elo``, ``Skill Level``
  and a node or time limit per move (``UCI_Elo`` and ``Skill Level`` draw their weakening moves
  from a time-seeded generator and a time limit depends on the machine: only ``nodes`` alone
  plays the same game twice);
- ``uci``: any UCI engine by path, with options;
- ``mixed``: Stockfish at a node limit that plays a uniformly random legal move with
  probability ``p`` (drawn from the game's generator): a strength set continuously from the
  random mover (``p=1``) upward, and reproducible (the synthetic ladder's players).

Engines start every game with fresh tables (``ucinewgame`` whenever the board they are asked
about is not the one they answered last), so a node-limited engine's moves are a function of
the game.

A player chooses moves for a batch of boards at once (``choose(boards) -> moves``): networks
evaluate the whole batch in one call, engines answer one board after the other.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import chess
import chess.engine
import numpy as np

from elocap.workdir import checkpoint_id
from mcts.uci import UciProcess

AGENT_KINDS: dict[str, type[AgentSpec]] = {}
UCI_ELO_RANGE = (1350, 2850)  # Debian's Stockfish 15.1 accepts UCI_Elo in this range


def register(kind: str) -> Callable[[type[AgentSpec]], type[AgentSpec]]:
    def wrap(cls: type[AgentSpec]) -> type[AgentSpec]:
        cls.kind = kind
        AGENT_KINDS[kind] = cls
        return cls

    return wrap


class Player(Protocol):
    def choose(self, boards: Sequence[chess.Board], rng: np.random.Generator) -> list[chess.Move]:
        """One move for each board (each board has a legal move)."""
        ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentSpec(abc.ABC):
    """Base of the agent specs: a name, a string form and a player."""

    kind: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The agent's name in the arena and in PGN headers."""

    def resolve(self) -> AgentSpec:
        """The same agent with every default that needs a look at the disk made explicit
        (a network's latest checkpoint); names are pure functions of the resolved spec."""
        return self

    @property
    def on_device(self) -> bool:
        """Whether the agent can play inside a batched pgx game on the device."""
        return False

    @abc.abstractmethod
    def player(self) -> Player:
        """A player for this process (an engine process, a network on this device, ...)."""

    def to_string(self) -> str:
        fields = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]
        return self.kind + (":" + ",".join(fields) if fields else "")


def parse_agent(text: str) -> AgentSpec:
    """``kind[:key=value,...]`` -> spec; a clear error for unknown kinds, keys or values."""
    kind, _, rest = text.partition(":")
    if kind not in AGENT_KINDS:
        raise ValueError(f"unknown agent kind {kind!r} in {text!r}; known: {sorted(AGENT_KINDS)}")
    cls = AGENT_KINDS[kind]
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in types:
            raise ValueError(f"agent {text!r}: bad option {item!r}; options: {sorted(types)}")
        values[key] = _coerce(str(types[key]), value, text)
    return cls(**values)


def _coerce(hint: str, value: str, text: str) -> Any:
    try:
        if hint.startswith("int"):
            return int(value)
        if hint.startswith("float"):
            return float(value)
    except ValueError:
        raise ValueError(f"agent {text!r}: {value!r} is not a number") from None
    return value


@register("random")
@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomAgent(AgentSpec):
    @property
    def name(self) -> str:
        return "random"

    @property
    def on_device(self) -> bool:
        return True

    def player(self) -> Player:
        return RandomPlayer()


class RandomPlayer:
    def choose(self, boards: Sequence[chess.Board], rng: np.random.Generator) -> list[chess.Move]:
        out = []
        for board in boards:
            legal = list(board.legal_moves)
            out.append(legal[int(rng.integers(len(legal)))])
        return out

    def close(self) -> None:
        """Nothing to release."""


@register("net")
@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkAgent(AgentSpec):
    run: str  # the run's directory
    step: int | None = None  # a kept checkpoint (FLOP milestone); None: the latest
    sims: int = 0  # search simulations per move; 0 is the raw policy
    temperature: float = 0.0  # 0: argmax of the policy (or of the visits); else sample
    elo: int | None = None  # Elo-conditioning input of a conditioned model

    def __post_init__(self) -> None:
        if self.sims < 0 or self.temperature < 0:
            raise ValueError(f"net agent {self.run}: sims and temperature must be >= 0")

    @property
    def checkpoint(self) -> str:
        """The checkpoint's one identity, ``<run id>@<step>`` (``@last`` until resolved)."""
        if self.step is None:
            return f"{Path(self.run).name}@last"
        return checkpoint_id(Path(self.run).name, self.step)

    @property
    def name(self) -> str:
        """The player's name: the checkpoint, then how it plays (``-s<sims>`` and so on)."""
        name = self.checkpoint
        if self.sims:
            name += f"-s{self.sims}"
        if self.temperature:
            name += f"-t{self.temperature:g}"
        if self.elo is not None:
            name += f"-elo{self.elo}"
        return name

    def resolve(self) -> NetworkAgent:
        if self.step is not None:
            return self
        return dataclasses.replace(self, step=_network_of(self)[3])

    @property
    def on_device(self) -> bool:
        return True

    def player(self) -> Player:
        return NetworkPlayer(self)


@register("stockfish")
@dataclasses.dataclass(frozen=True, kw_only=True)
class StockfishAgent(AgentSpec):
    elo: int | None = None  # UCI_LimitStrength with this UCI_Elo (Stockfish 15.1: 1350-2850)
    skill: int | None = None  # Skill Level 0-20
    nodes: int | None = None  # node limit per move
    movetime_ms: int | None = None  # time per move; default 50 ms when no node limit is set
    path: str | None = None  # the binary; default: stockfish on PATH or in /usr/games

    def __post_init__(self) -> None:
        text = self.to_string()
        if self.elo is not None and not UCI_ELO_RANGE[0] <= self.elo <= UCI_ELO_RANGE[1]:
            raise ValueError(
                f"agent {text!r}: Stockfish's UCI_Elo must lie in {UCI_ELO_RANGE[0]}.."
                f"{UCI_ELO_RANGE[1]} (Stockfish 15.1), got {self.elo}"
            )
        if self.skill is not None and not 0 <= self.skill <= 20:
            raise ValueError(f"agent {text!r}: Skill Level must lie in 0..20, got {self.skill}")
        for key in ("nodes", "movetime_ms"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"agent {text!r}: {key} must be >= 1")

    @property
    def name(self) -> str:
        parts = ["stockfish"]
        if self.elo is not None:
            parts.append(str(self.elo))
        if self.skill is not None:
            parts.append(f"skill{self.skill}")
        if self.nodes is not None:
            parts.append(f"n{self.nodes}")
        if self.movetime_ms is not None:
            parts.append(f"{self.movetime_ms}ms")
        return "-".join(parts)

    def player(self) -> Player:
        options: dict[str, Any] = {"Threads": 1, "Hash": 16}
        if self.elo is not None:
            options.update({"UCI_LimitStrength": True, "UCI_Elo": self.elo})
        if self.skill is not None:
            options["Skill Level"] = self.skill
        path = self.path or find_engine("stockfish")
        return EnginePlayer(path, options, _limit(self.nodes, self.movetime_ms))


@register("mixed")
@dataclasses.dataclass(frozen=True, kw_only=True)
class MixedAgent(AgentSpec):
    p: float  # probability of a uniformly random legal move at each move (1: the random mover)
    nodes: int = 20  # Stockfish's node limit for the other moves
    path: str | None = None  # the binary; default: stockfish on PATH or in /usr/games

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0 or self.nodes < 1:
            raise ValueError(f"agent {self.to_string()!r}: p must lie in [0, 1] and nodes be >= 1")

    @property
    def name(self) -> str:
        return f"mix-n{self.nodes}-p{self.p:g}"

    def player(self) -> Player:
        return MixedPlayer(self)


class MixedPlayer:
    """Per move: with probability p a uniformly random legal move, else Stockfish's move at the
    node limit; both draws come from the game's generator (``rng``), one uniform per move."""

    def __init__(self, spec: MixedAgent) -> None:
        self.spec = spec
        self.engine: UciProcess | None = None
        self.last: chess.Board | None = None  # the board answered last (held: ids stay unique)

    def choose(self, boards: Sequence[chess.Board], rng: np.random.Generator) -> list[chess.Move]:
        out = []
        for board in boards:
            if rng.random() < self.spec.p:
                legal = list(board.legal_moves)
                out.append(legal[int(rng.integers(len(legal)))])
                continue
            if self.engine is None:
                path = self.spec.path or find_engine("stockfish")
                self.engine = UciProcess(path, {"Threads": 1, "Hash": 1})
                self.last = board
            elif board is not self.last:
                self.engine.new_game()
                self.last = board
            out.append(self.engine.best_move(board, self.spec.nodes))
        return out

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.last = None


@register("uci")
@dataclasses.dataclass(frozen=True, kw_only=True)
class UciAgent(AgentSpec):
    path: str  # the engine binary
    label: str = ""  # its name in the arena (default: the file name)
    options: str = ""  # UCI options as "Name=value;Name=value"
    nodes: int | None = None
    movetime_ms: int | None = None

    @property
    def name(self) -> str:
        return self.label or Path(self.path).name

    def player(self) -> Player:
        options = dict(o.split("=", 1) for o in self.options.split(";") if o)
        return EnginePlayer(self.path, options, _limit(self.nodes, self.movetime_ms))


def _limit(nodes: int | None, movetime_ms: int | None) -> chess.engine.Limit:
    if nodes is None and movetime_ms is None:
        movetime_ms = 50
    return chess.engine.Limit(nodes=nodes, time=None if movetime_ms is None else movetime_ms / 1000)


def find_engine(name: str) -> str:
    """A Debian engine on PATH or in /usr/games, where Debian installs it."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/games/{name}",) if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise FileNotFoundError(f"{name} not found on PATH or in /usr/games (apt install {name})")
    return found


class EnginePlayer:
    """A UCI engine process; boards are answered one after the other."""

    def __init__(self, path: str, options: dict[str, Any], limit: chess.engine.Limit) -> None:
        self.engine = chess.engine.SimpleEngine.popen_uci(path)
        self.engine.configure(options)
        self.limit = limit
        self.last: chess.Board | None = None  # the board answered last (held: ids stay unique)
        self.game = object()  # python-chess's key of the engine's current game

    def choose(self, boards: Sequence[chess.Board], rng: np.random.Generator) -> list[chess.Move]:
        moves = []
        for board in boards:
            if board is not self.last:  # another game: python-chess sends ucinewgame
                self.last = board
                self.game = object()
            move = self.engine.play(board, self.limit, game=self.game).move
            if move is None:
                raise RuntimeError(f"engine returned no move in {board.fen()}")
            moves.append(move)
        return moves

    def close(self) -> None:
        self.engine.quit()
        self.last = None


def agent_flops(spec: AgentSpec) -> float | None:
    """Cumulative FLOPs of a network agent's checkpoint (read from it), None for the others."""
    if isinstance(spec, NetworkAgent):
        return float(_network_of(spec)[2]["flops"])
    return None


# --- networks ------------------------------------------------------------------------------

_NETWORKS: dict[tuple[str, int | None], tuple[Any, Any, dict[str, Any], int]] = {}


def _network_of(spec: NetworkAgent) -> tuple[Any, Any, dict[str, Any], int]:
    """(ModelConfig, params, checkpoint meta, step) of a net agent, loaded once per process."""
    key = (str(Path(spec.run).resolve()), spec.step)
    if key not in _NETWORKS:
        _NETWORKS[key] = load_network(Path(spec.run), spec.step)
    return _NETWORKS[key]


def load_network(run_dir: Path, step: int | None = None) -> tuple[Any, Any, dict[str, Any], int]:
    """(ModelConfig, params, meta, step) of a run's checkpoint; the run's config.json holds the
    model under "model" (supervised and self-play runs alike)."""
    import json

    from scaling.checkpoints import restore_state
    from scaling.config import ModelConfig, from_dict

    config = Path(run_dir) / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    model = from_dict(ModelConfig, json.loads(config.read_text())["model"], "model")
    state, meta = restore_state(Path(run_dir), step)
    return model, state["params"], meta, int(meta["step"])


class NetworkPlayer:
    """A network evaluating a batch of python-chess boards in one call."""

    def __init__(self, spec: NetworkAgent) -> None:
        from mcts.policy import network_policy

        model, params, _, _ = _network_of(spec)
        self.policy = network_policy(model, params, spec)

    def choose(self, boards: Sequence[chess.Board], rng: np.random.Generator) -> list[chess.Move]:
        from data_pipeline.encoding import action_to_move

        actions = self.policy.host(boards, seed=int(rng.integers(2**31)))  # int32[B]
        return [action_to_move(int(a), b) for a, b in zip(actions, boards, strict=True)]

    def close(self) -> None:
        """Parameters are shared per process; nothing to release."""
