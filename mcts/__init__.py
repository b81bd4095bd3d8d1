"""MCTS self-play continuing from capped checkpoints (issue 5; not built yet)."""
