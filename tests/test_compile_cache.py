"""The persistent compilation cache: a second process loads what the first compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = """
from elocap import compile_cache
print(compile_cache.enable())
import jax, jax.numpy as jnp
hits = []
jax.monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None
)
f = jax.jit(lambda x: jnp.linalg.inv(x @ x.T + 1.0).sum())
print(float(f(jnp.arange(256.0 * 256).reshape(256, 256) / 1e5)), len(hits))
"""


def _run(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    return env | {"XDG_CACHE_HOME": str(tmp_path), "ELOCAP_JAX_CACHE": "1"} | extra


def test_a_second_process_reuses_the_first_s_compilation(tmp_path: Path) -> None:
    env = _env(tmp_path, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    where, first, hits = _run(env)
    assert Path(where) == tmp_path / "elocap" / "jax"
    assert hits == "0"  # a fresh cache
    assert any(p.name.startswith("jit__lambda") for p in Path(where).iterdir())
    _, second, hits = _run(env)
    assert int(hits) >= 1  # loaded, not compiled
    assert second == first  # and the cached executable computes the same value


def test_the_cache_can_be_switched_off(tmp_path: Path) -> None:
    where, _, _ = _run(_env(tmp_path, ELOCAP_JAX_CACHE="0"))
    assert where == "None"
    assert not (tmp_path / "elocap").exists()


def test_an_explicit_jax_cache_dir_wins(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    env = _env(tmp_path, JAX_COMPILATION_CACHE_DIR=str(mine))
    where, _, _ = _run(env | {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    assert Path(where) == mine and any(mine.iterdir())
