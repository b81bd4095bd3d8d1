"""scripts/setup.sh's check of Debian's tools: with stockfish and pgn-extract missing and no right
to install them it stops at once with one line saying what to install; allowed, it runs
apt-get update, then apt-get install. The system is never touched: PATH holds only folders
without the tools, plus fake ``id``, ``sudo`` and ``apt-get``, and ELOCAP_TOOL_DIRS replaces
/usr/games. Every run stops before the Python environment (missing tools, or
ELOCAP_SETUP_TOOLS_ONLY=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"
TOOLS = ("stockfish", "pgn-extract")
INSTALL_LINE = "apt-get install stockfish pgn-extract"


def _fake(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _env(tmp_path: Path, *, uid: int, sudo_ok: bool, **extra: str) -> dict[str, str]:
    """An environment in which the tools are nowhere, with fakes of id, sudo and apt-get."""
    fakes, games = tmp_path / "fakes", tmp_path / "games"
    fakes.mkdir()
    games.mkdir()
    log = tmp_path / "apt.log"
    _fake(fakes, "id", f'[ "$1" = -u ] && echo {uid} || exec /usr/bin/id "$@"')
    _fake(fakes, "sudo", f'[ "$1" = -n ] && shift; {"" if sudo_ok else "exit 1;"} exec "$@"')
    # apt-get "installs" the tools into the fake /usr/games
    install = "; ".join(f"printf '#!/bin/sh\\n' > {games}/{t}; chmod +x {games}/{t}" for t in TOOLS)
    _fake(
        fakes,
        "apt-get",
        f'echo "$*" >> {log}; [ "$1" = install ] && {{ {install}; }}; exit 0',
    )
    dirs = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and d != "/usr/games" and not any(os.path.exists(os.path.join(d, t)) for t in TOOLS)
    ]
    assert shutil.which("bash", path=os.pathsep.join(dirs)), "bash must stay on PATH"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELOCAP_SETUP")}
    env.update(PATH=os.pathsep.join([str(fakes), *dirs]), ELOCAP_TOOL_DIRS=str(games), **extra)
    return env


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=10
    )


@pytest.mark.parametrize(
    ("uid", "sudo_ok", "extra", "why"),
    [
        (0, True, {"ELOCAP_SETUP_NO_INSTALL": "1"}, "ELOCAP_SETUP_NO_INSTALL=1"),
        (1000, False, {}, "not root, and sudo is not allowed without a password"),
    ],
)
def test_missing_tools_without_right_to_install_stop_with_one_line(
    tmp_path: Path, uid: int, sudo_ok: bool, extra: dict[str, str], why: str
) -> None:
    run = _run(_env(tmp_path, uid=uid, sudo_ok=sudo_ok, **extra))
    assert run.returncode != 0
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and run.stdout == "", run.stderr
    assert INSTALL_LINE in lines[0] and why in lines[0]
    assert not (tmp_path / "apt.log").exists()  # nothing was installed


@pytest.mark.parametrize(("uid", "sudo_ok"), [(0, False), (1000, True)])
def test_missing_tools_are_installed_with_apt_get_when_allowed(
    tmp_path: Path, uid: int, sudo_ok: bool
) -> None:
    run = _run(_env(tmp_path, uid=uid, sudo_ok=sudo_ok, ELOCAP_SETUP_TOOLS_ONLY="1"))
    assert run.returncode == 0, run.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == ["update -qq", "install -y -qq stockfish pgn-extract"]


def test_present_tools_are_left_alone(tmp_path: Path) -> None:
    env = _env(tmp_path, uid=1000, sudo_ok=False, ELOCAP_SETUP_TOOLS_ONLY="1")
    _fake(tmp_path / "games", "stockfish", "")  # one in the fake /usr/games,
    _fake(tmp_path / "fakes", "pgn-extract", "")  # one on PATH
    run = _run(env)
    assert run.returncode == 0 and run.stderr == "" and run.stdout == ""
    assert not (tmp_path / "apt.log").exists()


def test_one_missing_tool_is_named_alone(tmp_path: Path) -> None:
    env = _env(tmp_path, uid=0, sudo_ok=False, ELOCAP_SETUP_NO_INSTALL="1")
    _fake(tmp_path / "games", "stockfish", "")
    run = _run(env)
    assert run.returncode != 0 and "run 'apt-get install pgn-extract' as root" in run.stderr
