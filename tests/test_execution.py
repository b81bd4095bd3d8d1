"""The executors library code runs on: results by index, bounded retries, no Ray started by a
library function."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from elocap.execution import InlineExecutor, RayExecutor

REPO = Path(__file__).resolve().parents[1]


def _square(x: int) -> int:
    return x * x


def _fail_until(marker: str, failures: int) -> int:
    """Fails ``failures`` times (counted in the file ``marker``), then returns the count."""
    path = Path(marker)
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count < failures:
        raise RuntimeError(f"planned failure {count + 1}")
    return count


def test_inline_executor_yields_every_result_by_index() -> None:
    out = dict(InlineExecutor().map_unordered(_square, [(i,) for i in range(5)]))
    assert out == {i: i * i for i in range(5)}


@pytest.mark.ray
def test_ray_executor_retries_a_bounded_number_of_times(tmp_path: Path, ray_cluster: None) -> None:
    ex = RayExecutor()
    assert dict(ex.map_unordered(_square, [(i,) for i in range(6)], window=2)) == {
        i: i * i for i in range(6)
    }
    ok = tmp_path / "ok"
    assert list(ex.map_unordered(_fail_until, [(str(ok), 2)], max_retries=2)) == [(0, 2)]
    bad = tmp_path / "bad"
    with pytest.raises(RuntimeError, match="planned failure 3"):
        list(ex.map_unordered(_fail_until, [(str(bad), 5)], max_retries=2))
    assert bad.read_text() == "3"  # one try and two retries, then the last error


def test_library_code_does_not_start_ray() -> None:
    code = (
        "from elocap.execution import RayExecutor\n"
        "try:\n    RayExecutor()\nexcept RuntimeError as e:\n    print(e)\n"
        "import ray\nprint('initialised' if ray.is_initialized() else 'not initialised')\n"
    )
    env = {**os.environ, "RAY_ADDRESS": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120
    ).stdout
    assert "entry point" in out and "start_or_join" in out
    assert out.strip().endswith("not initialised")
