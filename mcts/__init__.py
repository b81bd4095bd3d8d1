"""MCTS on the device: chess rules on a compact state (``env``), mctx search around the network
(``search``), batched self-play games (``selfplay``), the learning loop (``loop``), and the
arena: agents, batched games, PGN logs, openings, schedules (``agents``, ``arena``, ``games``,
``openings``, ``scheduler``, ``ladder``).

Names load lazily (PEP 562): ``import mcts.games`` in an engine worker does not pull in JAX and
pgx, which the names below need. ``mcts.search`` is the search module (its function is
``mcts.search.search``): a package attribute cannot be both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcts.agents import (
        AGENT_KINDS,
        AgentSpec,
        NetworkAgent,
        RandomAgent,
        StockfishAgent,
        UciAgent,
        parse_agent,
    )
    from mcts.arena import ArenaConfig, GameJob, play_batch, run_tournament
    from mcts.env import (
        MAX_MOVES,
        REASONS,
        ChessState,
        from_boards,
        from_obs,
        from_pgx,
        init_openings,
        initial_state,
        legal_mask,
        observe,
        step,
    )
    from mcts.games import GameRecord, referee
    from mcts.ladder import LadderConfig, build_ladder
    from mcts.loop import SelfPlayRunConfig, run_selfplay
    from mcts.openings import Opening, eco_openings, openings_from_split
    from mcts.scheduler import active_round, round_robin, run_active
    from mcts.search import (
        SEARCH_POLICIES,
        SearchConfig,
        SearchOutput,
        dense_policy,
        search_policy,
        tree_memory,
    )
    from mcts.selfplay import SelfPlayConfig, Trajectory, network_evaluations, play_games

_SOURCES = {
    "mcts.agents": (
        "AGENT_KINDS",
        "AgentSpec",
        "NetworkAgent",
        "RandomAgent",
        "StockfishAgent",
        "UciAgent",
        "parse_agent",
    ),
    "mcts.arena": ("ArenaConfig", "GameJob", "play_batch", "run_tournament"),
    "mcts.games": ("GameRecord", "referee"),
    "mcts.ladder": ("LadderConfig", "build_ladder"),
    "mcts.loop": ("SelfPlayRunConfig", "run_selfplay"),
    "mcts.openings": ("Opening", "eco_openings", "openings_from_split"),
    "mcts.scheduler": ("active_round", "round_robin", "run_active"),
    "mcts.env": (
        "MAX_MOVES",
        "REASONS",
        "ChessState",
        "from_boards",
        "from_obs",
        "from_pgx",
        "init_openings",
        "initial_state",
        "legal_mask",
        "observe",
        "step",
    ),
    "mcts.search": (
        "SEARCH_POLICIES",
        "SearchConfig",
        "SearchOutput",
        "dense_policy",
        "search_policy",
        "tree_memory",
    ),
    "mcts.selfplay": ("SelfPlayConfig", "Trajectory", "network_evaluations", "play_games"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    "AGENT_KINDS",
    "MAX_MOVES",
    "REASONS",
    "SEARCH_POLICIES",
    "AgentSpec",
    "ArenaConfig",
    "ChessState",
    "GameJob",
    "GameRecord",
    "LadderConfig",
    "NetworkAgent",
    "Opening",
    "RandomAgent",
    "SearchConfig",
    "SearchOutput",
    "SelfPlayConfig",
    "SelfPlayRunConfig",
    "StockfishAgent",
    "Trajectory",
    "UciAgent",
    "active_round",
    "build_ladder",
    "dense_policy",
    "eco_openings",
    "from_boards",
    "from_obs",
    "from_pgx",
    "init_openings",
    "initial_state",
    "legal_mask",
    "network_evaluations",
    "observe",
    "openings_from_split",
    "parse_agent",
    "play_batch",
    "play_games",
    "referee",
    "round_robin",
    "run_active",
    "run_selfplay",
    "run_tournament",
    "search_policy",
    "step",
    "tree_memory",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mcts' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
