"""Supervised training across model sizes and compute budgets (issue 3; not built yet)."""
