"""``jobs.ray_session``: the embedded cluster listens on loopback only, keeps token
authentication on, and a second process joins it through ``$RAY_ADDRESS``.

The clusters run in child processes (the session's ``ray_cluster`` fixture may hold Ray in this
one); every socket their processes listen on is read from ``ss -ltunp`` (or, without iproute2,
from /proc/net and the processes' file descriptors) while they run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.ray_session import ensure_token_file

ROOT = Path(__file__).resolve().parents[1]
_RAY_ENV: tuple[str, ...] = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE")
_RAY_ENV += ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")

# Starts the embedded cluster, makes it run a task and an actor (so worker processes listen
# too), reports, waits for the parent's go on stdin, then checks close() and reports again.
EMBEDDED = r"""
import json, os, sys
import ray
from jobs.ray_session import start_or_join
from ray._private.authentication.authentication_utils import is_token_auth_enabled

session = start_or_join(num_cpus=2, log_dir=__import__("pathlib").Path(sys.argv[1]))

@ray.remote
def task():
    print("a worker's output")
    return os.getpid()

@ray.remote
class Actor:
    def pid(self):
        return os.getpid()

actor = Actor.remote()
pids = [ray.get(task.remote()), ray.get(actor.pid.remote())]
again = start_or_join()
node = ray._private.worker._global_node
print(json.dumps({
    "address": session.address, "embedded": session.embedded, "owner": session.owner,
    "logs": str(session.logs), "session_dir": node.get_session_dir_path(),
    "node_ip": node.node_ip_address, "workers": pids, "token_auth": is_token_auth_enabled(),
    "again": [again.address, again.embedded, again.owner],
}), flush=True)
sys.stdin.readline()
again.close()  # not the owner: Ray stays up
alive = ray.is_initialized()
session.close()
print(json.dumps({"alive_after_second_close": alive, "after_close": ray.is_initialized()}))
"""

# Joins the cluster named by $RAY_ADDRESS and runs a task there.
JOINER = r"""
import json
import ray
from jobs.ray_session import start_or_join

with start_or_join(num_cpus=1) as session:  # num_cpus is ignored when joining
    node_ip = ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote())
    print(json.dumps({"address": session.address, "embedded": session.embedded,
                      "owner": session.owner, "task_node_ip": node_ip}))
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _RAY_ENV}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT), **extra)
    return env


# --- who listens where ------------------------------------------------------------------------

Listener = tuple[str, str, int, int]  # protocol, address, port, pid


def _split_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]").split("%")[0]  # [::ffff:127.0.0.1], 127.0.0.53%lo
    return str(ipaddress.ip_address("::" if host == "*" else host)), int(port)


def _ss_listeners() -> list[Listener] | None:
    """Every listening TCP and bound UDP socket with its processes (None without ``ss``)."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    out = subprocess.run(
        [ss, "-H", "-l", "-n", "-p", "-t", "-u"], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        host, port = _split_host_port(parts[4])
        for pid in re.findall(r"pid=(\d+)", line):
            found.append((parts[0], host, port, int(pid)))
    return found


def _hex_address(text: str) -> tuple[str, int]:
    """/proc/net/tcp's ``0100007F:1F90`` (32-bit words in host byte order) -> address, port."""
    raw, port = text.split(":")
    words = [bytes.fromhex(raw[i : i + 8])[::-1] for i in range(0, len(raw), 8)]
    return str(ipaddress.ip_address(b"".join(words))), int(port, 16)


def _proc_listeners(pids: set[int]) -> list[Listener]:
    """The same from /proc/net/{tcp,tcp6,udp,udp6} and /proc/PID/fd (no iproute2 needed)."""
    sockets: dict[int, tuple[str, str, int]] = {}
    for name, wanted in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == wanted:
                host, port = _hex_address(fields[1])
                sockets[int(fields[9])] = (name.rstrip("6"), host, port)
    found = []
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m and (inode := int(m.group(1))) in sockets:
                found.append((*sockets[inode], pid))
    return found


def _listeners(pids: set[int]) -> list[Listener]:
    from_ss = _ss_listeners()
    if from_ss is None:
        return sorted(set(_proc_listeners(pids)))
    return sorted({entry for entry in from_ss if entry[3] in pids})


def _is_loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # [::ffff:127.0.0.1]: an IPv6 socket bound to 127.0.0.1
    return ip.is_loopback


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def _mentioning(text: str) -> set[int]:
    """Processes whose command line names ``text`` (the session folder)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return "?"


def _kill(pids: set[int]) -> None:
    for pid in pids - {os.getpid()}:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], Path]]:
    """A child process that started the embedded cluster, and what it reported."""
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", EMBEDDED, str(tmp_path / "logs")],
        cwd=ROOT,
        env=_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    started: set[int] = set()
    try:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the embedded cluster did not start: {proc.communicate()[1][-4000:]}")
        report = json.loads(line)
        started = _descendants(proc.pid) | _mentioning(report["session_dir"])
        yield proc, report, home
    finally:
        if proc.poll() is None:
            leftover = _descendants(proc.pid) | started
            proc.kill()
            proc.wait()
            _kill(leftover)


@pytest.mark.ray
@pytest.mark.slow
def test_embedded_cluster_listens_on_loopback_only(
    embedded: tuple[subprocess.Popen[str], dict[str, Any], Path], tmp_path: Path
) -> None:
    proc, report, home = embedded
    assert report["embedded"] and report["owner"] and report["node_ip"] == "127.0.0.1"
    assert report["address"].startswith("127.0.0.1:")
    assert report["again"] == [report["address"], True, False]  # idempotent, not the owner
    ray_pids = _descendants(proc.pid) | _mentioning(report["session_dir"])
    assert set(report["workers"]) <= ray_pids

    # The agents bind their servers a moment after ray.init returns: wait until it is quiet.
    listeners: list[Listener] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _listeners(_descendants(proc.pid) | ray_pids)
        if now == listeners and len(now) > 0:
            break
        listeners = now
    names = {_name(pid) for *_, pid in listeners}
    table = "\n".join(f"  {p} {h}:{port} pid {pid} {_name(pid)}" for p, h, port, pid in listeners)
    # Not vacuous: the GCS, the raylet, the driver and the workers each listen somewhere.
    for component in ("gcs_server", "raylet"):
        assert any(component in n for n in names), f"no {component} listener found:\n{table}"
    pids_listening = {pid for *_, pid in listeners}
    assert proc.pid in pids_listening, f"the driver's core worker is not listening:\n{table}"
    assert set(report["workers"]) <= pids_listening, f"a worker is not listening:\n{table}"
    if shutil.which("ss") is not None:  # the fallback without iproute2 reads the same
        assert sorted(set(_proc_listeners(pids_listening))) == listeners
    outside = [entry for entry in listeners if not _is_loopback(entry[1])]
    assert not outside, f"Ray processes listening outside 127.0.0.0/8:\n{table}"

    # Token authentication is on, with a token file elocap wrote for this HOME, mode 0600.
    token = home / ".ray" / "auth_token"
    assert report["token_auth"] is True
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700

    # Workers' output is in the session's logs (linked from log_dir), not on the terminal.
    assert (tmp_path / "logs" / "ray").resolve() == Path(report["logs"]).resolve()

    # A second process joins through $RAY_ADDRESS with the token (same HOME). Ray turns token
    # authentication on by itself only for a cluster it finds ("auto"); with an explicit
    # address it needs RAY_AUTH_MODE=token, as the drivers of submitted jobs have it.
    joiner = subprocess.run(
        [sys.executable, "-c", JOINER],
        cwd=ROOT,
        env=_env(home, RAY_ADDRESS=report["address"], RAY_AUTH_MODE="token"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert joiner.returncode == 0, joiner.stderr[-4000:]
    joined = json.loads(joiner.stdout.strip().splitlines()[-1])
    assert joined == {
        "address": report["address"],
        "embedded": False,
        "owner": True,
        "task_node_ip": "127.0.0.1",
    }
    assert "a worker's output" not in joiner.stdout + joiner.stderr

    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err[-4000:]
    closed = json.loads(out.strip().splitlines()[-1])
    assert closed == {"alive_after_second_close": True, "after_close": False}
    assert "a worker's output" not in out + err
    assert err.strip() == "", f"noise on the terminal: {err[-2000:]}"
    logs = Path(report["logs"])
    assert any("a worker's output" in p.read_text(errors="replace") for p in logs.glob("worker-*"))


def test_token_file_is_written_0600_and_only_when_ray_would_write_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = ensure_token_file({}, home)
    assert path == home / ".ray" / "auth_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert ensure_token_file({"RAY_AUTH_MODE": "token"}, home) == path
    assert path.read_text() == token  # an existing token is kept

    path.chmod(0o644)  # as Ray writes it under the usual umask
    ensure_token_file({}, home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token

    other = tmp_path / "other"
    assert ensure_token_file({"RAY_AUTH_MODE": "disabled"}, other) is None
    assert ensure_token_file({"RAY_AUTH_TOKEN": "x" * 32}, other) is None
    assert ensure_token_file({"RAY_AUTH_TOKEN_PATH": str(path)}, other) is None
    assert not other.exists()


STUDY_RUN = [
    sys.executable,
    "-m",
    "jobs.cli",
    "study",
    "run",
    "jobs/studies/tiny.toml",
    "--workdir",
]


@pytest.mark.ray
def test_a_local_ray_that_does_not_start_is_one_line_naming_no_ray(tmp_path: Path) -> None:
    """`elocap study run` whose embedded Ray cannot start (here: its temp dir cannot be made)
    exits 2 with one line that says so and names --no-ray: no stack, no study work done."""
    env = dict(os.environ, RAY_TMPDIR="/dev/null/no-such-dir", RAY_ADDRESS="")
    work = tmp_path / "study"
    proc = subprocess.run(
        [*STUDY_RUN, str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("elocap: error: the local Ray cluster did not start: ")
    assert "/dev/null/no-such-dir" in lines[0] and "--no-ray" in lines[0]
    assert not (work / "stages").exists() or not any((work / "stages").iterdir())
