"""``elocap data stats``: a human summary of a build's manifest."""

from __future__ import annotations

from typing import Any


def summary(manifest: dict[str, Any]) -> str:
    """Sources, games kept and rejected by reason, positions per split, Elo histogram."""
    lines = []
    games, kept = manifest["games"], manifest["kept"]
    cap = manifest["config"]["filters"]["cap"]
    rule = manifest["config"]["filters"]["elo_rule"]
    lines.append(f"Elo cap {cap} (rule: {rule}); {len(manifest['shards'])} shards")
    if "build_id" in manifest:
        lines.append(f"build {manifest['build_id'][:16]} (of its config and sources' contents)")
    lines.append(f"games {games:,}, kept {kept:,} ({kept / max(games, 1):.1%})")
    lines.append("sources:")
    for s in manifest["sources"]:
        size = "?" if s["bytes"] is None else f"{s['bytes'] / 1e6:.1f} MB"
        lines.append(f"  {s['name']}  {size}  games {s['games']:,}  kept {s['kept']:,}")
        if s["error"]:
            lines.append(f"    ERROR: {s['error']}")
    if manifest["rejected"]:
        lines.append("rejected:")
        for reason, n in sorted(manifest["rejected"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {reason:<16} {n:>10,}  {manifest['reasons'][reason]}")
    pos = manifest["positions"]
    lines.append("positions: " + ", ".join(f"{k} {v:,}" for k, v in pos.items()))
    hist = manifest["elo_histogram"]["player_ratings"]
    if hist:
        width = manifest["elo_histogram"]["bin_width"]
        top = max(hist.values())
        lines.append(f"player ratings in kept games (bins of {width}):")
        for lo, n in hist.items():
            bar = "#" * max(1, round(40 * n / top))
            lines.append(f"  {int(lo):>5}-{int(lo) + width - 1:<5} {n:>9,} {bar}")
    return "\n".join(lines)
