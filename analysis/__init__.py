"""Ratings, compute-Elo frontiers and fits (issues 4 and 6; not built yet)."""
