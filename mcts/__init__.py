"""MCTS on the device: chess rules on a compact state (``env``), mctx search around the network
(``search``), batched self-play games (``selfplay``).

Names load lazily (PEP 562): ``import mcts.games`` in an engine worker does not pull in JAX and
pgx, which the names below need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from mcts.search import (
        SEARCH_POLICIES,
        SearchConfig,
        SearchOutput,
        dense_policy,
        search,
        search_policy,
        tree_memory,
    )
    from mcts.selfplay import SelfPlayConfig, Trajectory, network_evaluations, play_games

_SOURCES = {
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
        "search",
        "search_policy",
        "tree_memory",
    ),
    "mcts.selfplay": ("SelfPlayConfig", "Trajectory", "network_evaluations", "play_games"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    "MAX_MOVES",
    "REASONS",
    "SEARCH_POLICIES",
    "ChessState",
    "SearchConfig",
    "SearchOutput",
    "SelfPlayConfig",
    "Trajectory",
    "dense_policy",
    "from_boards",
    "from_obs",
    "from_pgx",
    "init_openings",
    "initial_state",
    "legal_mask",
    "network_evaluations",
    "observe",
    "play_games",
    "search",
    "search_policy",
    "step",
    "tree_memory",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mcts' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
