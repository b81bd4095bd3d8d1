"""Cluster submission: a real ``ray start --head`` with token authentication on this host.

The cluster runs in its own temporary directory and on free ports, apart from the session
``ray_cluster`` fixture's; it is stopped by killing the processes it started (never ``ray stop``,
which would stop every Ray cluster of the host), even when a test fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs import cluster_access, submit
from jobs.cluster_access import probe, warn_plain_http_once
from jobs.cmd_submit import register_study_commands
from jobs.submit import (
    ClusterClient,
    ClusterError,
    JobSpec,
    Resources,
    StudyRequest,
    Token,
    normalize_address,
    parse_resources,
    plain_http_warning,
    project_requirements,
    resolve_token,
    study_job,
)

ROOT = Path(__file__).resolve().parents[1]
SMOKE_STUDY = ROOT / "jobs" / "studies" / "smoke.toml"  # the default's chain, in minutes
STUDY_ARTIFACTS = ("report/index.html",)  # under --workdir: what the README promises
_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_ADDRESS_ENV = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")


def _cli_command() -> list[str]:
    """`elocap study`, as the project's installed command runs it."""
    return [sys.executable, "-m", "jobs.cli", "study"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class TokenCluster:
    url: str  # the Jobs API
    token_file: Path
    tmp: Path  # the cluster's own temporary folder (sessions, logs, artifacts of the tests)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _AUTH_ENV + _ADDRESS_ENV}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(extra)
    return env


def _cluster_pids(tmp: Path, leader: int) -> list[int]:
    """Processes of our cluster: the leader's process group, or naming our temp folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            mine = os.getpgid(pid) == leader or str(tmp).encode() in text
        except (OSError, ProcessLookupError):
            continue
        if mine:
            found.append(pid)
    return found


def _stop_cluster(proc: subprocess.Popen[bytes], tmp: Path) -> None:
    proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    deadline = time.monotonic() + 10
    while (left := _cluster_pids(tmp, proc.pid)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        time.sleep(0.2)


@pytest.fixture(scope="module")
def token_cluster() -> Iterator[TokenCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="ecr-", dir="/tmp"))  # short: Ray's sockets live in it
    token_file = tmp / "token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    dashboard = _free_port()
    env = _clean_env(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_file),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    ray = str(Path(sys.executable).parent / "ray")
    args = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    args += ["--port", str(_free_port()), "--dashboard-host", "127.0.0.1"]
    args += ["--dashboard-port", str(dashboard), "--include-dashboard", "true"]
    args += ["--dashboard-agent-listen-port", str(_free_port())]
    args += ["--ray-client-server-port", str(_free_port())]
    args += ["--min-worker-port", "0", "--max-worker-port", "0", "--num-cpus", "2"]
    args += ["--num-gpus", "0", "--object-store-memory", str(200 << 20)]
    args += ["--temp-dir", str(tmp / "ray"), "--disable-usage-stats"]
    log = (tmp / "ray-start.log").open("wb")
    proc = subprocess.Popen(  # its own process group: found and stopped as one
        args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        request = urllib.request.Request(
            f"{url}/api/version", headers={"Authorization": f"Bearer {token_file.read_text()}"}
        )
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start exited: {(tmp / 'ray-start.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("the Ray dashboard did not come up in 120 s")
                time.sleep(0.5)
        yield TokenCluster(url=url, token_file=token_file, tmp=tmp)
    finally:
        _stop_cluster(proc, tmp)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _cli(*argv: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The commands in a fresh process whose only token is the one on its command line."""
    return subprocess.run(
        [*_cli_command(), *argv],
        env=_clean_env(HOME=str(home)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.ray
@pytest.mark.slow
def test_job_with_token_succeeds_and_writes_its_artifacts(
    token_cluster: TokenCluster, tmp_path: Path
) -> None:
    c = token_cluster
    workdir = c.tmp / "study"  # on a real cluster: storage shared by its nodes
    auth = ("--address", c.url, "--token-file", str(c.token_file))
    study = ("submit", *auth, str(SMOKE_STUDY), "--workdir", str(workdir))
    r = _cli(*study, home=tmp_path, timeout=1200)  # the smoke study: minutes on 2 cores
    assert r.returncode == 0, f"{r.stdout[-6000:]}\n{r.stderr[-2000:]}"  # logs, then ours
    job_id = r.stdout.splitlines()[0]
    for artifact in STUDY_ARTIFACTS:
        assert (workdir / artifact).is_file(), artifact
    assert (workdir / "ratings" / "ratings.csv").is_file()

    status = _cli("status", *auth, job_id, home=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "status: SUCCEEDED" in status.stdout and str(workdir) in status.stdout
    listed = _cli("status", *auth, home=tmp_path)
    assert job_id in listed.stdout and "SUCCEEDED" in listed.stdout
    logs = _cli("logs", *auth, job_id, "--follow", home=tmp_path)
    assert logs.returncode == 0 and f"job {job_id}: SUCCEEDED" in logs.stderr
    assert "Running entrypoint" in logs.stdout


@pytest.mark.ray
@pytest.mark.slow
def test_cli_submit_follows_a_failing_job_and_exits_1(
    token_cluster: TokenCluster, tmp_path: Path
) -> None:
    # pyproject.toml is TOML inside the project but no study: `study run` rejects it on the
    # cluster, so the job fails fast, and submit (which waits) must say so.
    c = token_cluster
    auth = ("--address", c.url, "--token-file", str(c.token_file))
    r = _cli("submit", *auth, "pyproject.toml", "--workdir", str(c.tmp / "bad"), home=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "FAILED" in r.stderr
    assert r.stdout.splitlines()[0].startswith("elocap-pyproject-")


@pytest.mark.ray
@pytest.mark.slow
def test_submission_without_the_token_is_refused(
    token_cluster: TokenCluster, tmp_path: Path
) -> None:
    c = token_cluster
    before = len(ClusterClient(c.url, resolve_token(c.token_file)).jobs())
    r = _cli("submit", "--address", c.url, "pyproject.toml", home=tmp_path)
    assert r.returncode == 2
    assert "requires a token" in r.stderr and "--token-file" in r.stderr
    wrong = tmp_path / "wrong-token"
    wrong.write_text(secrets.token_hex(32))
    r = _cli(
        "submit", "--address", c.url, "--token-file", str(wrong), "pyproject.toml", home=tmp_path
    )
    assert r.returncode == 2 and "refused the token" in r.stderr
    assert len(ClusterClient(c.url, resolve_token(c.token_file)).jobs()) == before  # no job


@pytest.mark.ray
@pytest.mark.slow
def test_unknown_job_and_stop(token_cluster: TokenCluster, tmp_path: Path) -> None:
    c = token_cluster
    auth = ("--address", c.url, "--token-file", str(c.token_file))
    for command in ("status", "logs", "stop"):
        r = _cli(command, *auth, "no-such-job", home=tmp_path)
        assert r.returncode == 2 and "no job 'no-such-job'" in r.stderr, r.stderr
    client = ClusterClient(c.url, resolve_token(c.token_file))
    job_id = client.submit(JobSpec(entrypoint="sleep 120", runtime_env={}, resources=Resources()))
    deadline = time.monotonic() + 60
    while client.status(job_id) == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.3)
    r = _cli("stop", *auth, job_id, home=tmp_path)
    assert r.returncode == 0 and "stop requested" in r.stderr
    assert client.wait(job_id, timeout_s=60) == "STOPPED"


# --- bad input and the pieces, without a cluster ------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    register_study_commands(parser.add_subparsers(dest="cmd", required=True))
    a = parser.parse_args(argv)
    try:
        code = int(a.func(a))
    except (ValueError, OSError) as e:  # as jobs.cli.main reports them
        return 2, str(e)
    return code, capsys.readouterr().err


def _fake_project(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "elocap"\ndependencies = []\n')
    return tmp_path


def test_bad_submissions_fail_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = ("--address", f"http://127.0.0.1:{_free_port()}")  # would be "refused" if reached
    project = _fake_project(tmp_path / "p")
    (project / "jobs").mkdir()
    bad = project / "jobs" / "bad.toml"
    bad.write_text("caps = [1000,\n")
    (project / "out").mkdir()
    out = project / "out" / "study.toml"
    out.write_text("x = 1\n")
    (tmp_path / "outside.toml").write_text("x = 1\n")
    cases = {
        "does not exist": ["submit", *nowhere, str(tmp_path / "missing.toml")],
        "outside the project": ["submit", *nowhere, str(tmp_path / "outside.toml")],
        "not valid TOML": ["submit", *nowhere, "--project", str(project), str(bad)],
        "excluded from the upload": ["submit", *nowhere, "--project", str(project), str(out)],
        "must be absolute": ["submit", *nowhere, "pyproject.toml", "--workdir", "rel/dir"],
        "is not JSON": ["submit", *nowhere, "pyproject.toml", "--resources", "{TPU: 4}"],
        "use --num-cpus": ["submit", *nowhere, "pyproject.toml", "--resources", '{"CPU": 2}'],
        "not an elocap source checkout": ["submit", *nowhere, "--project", str(tmp_path), "x"],
    }  # fmt: skip
    cwd = os.getcwd()
    os.chdir(ROOT)  # relative configs are relative to where the user runs elocap
    try:
        for expected, argv in cases.items():
            code, message = _run(argv, capsys)
            assert code == 2 and expected in message, (argv, message)
    finally:
        os.chdir(cwd)


def test_unreachable_clusters_are_clear_errors() -> None:
    port = _free_port()
    with pytest.raises(ClusterError, match="connection refused"):
        ClusterClient(f"127.0.0.1:{port}", None)
    with pytest.raises(ClusterError, match=r"unknown host 'no-such-host\.invalid'"):
        ClusterClient("http://no-such-host.invalid:8265", None)

    class NotRay(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), NotRay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ClusterError, match="is not a Ray Jobs API"):
            ClusterClient(f"http://127.0.0.1:{server.server_port}", None)
    finally:
        server.shutdown()
        server.server_close()


def test_addresses() -> None:
    assert normalize_address("head") == "http://head:8265"
    assert normalize_address("10.0.0.1:9000/") == "http://10.0.0.1:9000"
    assert normalize_address("https://ray.example.org") == "https://ray.example.org:443"
    for bad in ("ray://head:10001", "", "http://head:99999", "http://head:8265/api"):
        with pytest.raises(ValueError):
            normalize_address(bad)


def test_token_precedence_follows_ray(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    path_file = tmp_path / "t"
    path_file.write_text("  from-path \n")
    flag_file = tmp_path / "f"
    flag_file.write_text("from-flag")
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(path_file)}

    def value(token_file: Path | None, environ: dict[str, str]) -> str | None:
        token = resolve_token(token_file, environ=environ, home=home)
        return None if token is None else token.value

    assert value(flag_file, env) == "from-flag"
    assert value(None, env) == "from-env"
    assert value(None, {"RAY_AUTH_TOKEN_PATH": str(path_file)}) == "from-path"
    assert value(None, {}) == "from-home"
    assert resolve_token(None, environ={}, home=tmp_path) is None
    assert "from-env" not in repr(resolve_token(None, environ=env, home=home))  # never printed
    (tmp_path / "empty").write_text("\n")
    for broken in (
        {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "empty")},
        {"RAY_AUTH_TOKEN_PATH": "/no"},
    ):
        with pytest.raises(ValueError, match="RAY_AUTH_TOKEN_PATH"):
            resolve_token(None, environ=broken, home=home)


def test_study_job_and_runtime_env(tmp_path: Path) -> None:
    config = ROOT / "pyproject.toml"  # any TOML file of the project does for the plumbing
    job = study_job(
        StudyRequest(
            config=config,
            project=ROOT,
            workdir="/shared/elocap/my study",
            resources=Resources(num_cpus=1, custom=parse_resources('{"TPU": 4}')),
            deps="cuda",
            env_vars={"ELOCAP_CACHE": "/shared/cache"},
        )
    )
    expected = "python -m jobs.cli study run pyproject.toml --workdir '/shared/elocap/my study'"
    assert job.entrypoint == expected
    assert job.runtime_env["working_dir"] == str(ROOT) and ".venv" in job.runtime_env["excludes"]
    assert "jax[cuda12]>=0.4.30" in job.runtime_env["pip"]
    assert not any(r.startswith("ray") for r in job.runtime_env["pip"])
    assert job.runtime_env["env_vars"] == {"ELOCAP_CACHE": "/shared/cache"}
    assert job.resources.custom == {"TPU": 4.0}
    assert job.metadata["elocap_config"] == "pyproject.toml"
    assert job.submission_id is not None and job.submission_id.startswith("elocap-pyproject-")
    default = study_job(StudyRequest(config=config, project=ROOT))
    assert default.entrypoint.endswith('--workdir "$HOME"/elocap/studies/pyproject')
    assert "pip" not in default.runtime_env  # the nodes have the dependencies
    assert project_requirements(ROOT, "cpu") == project_requirements(ROOT, "cpu")
    assert "jax[tpu]>=0.4.30" in project_requirements(ROOT, "tpu")


# --- where the token goes: redirects and plain http ---------------------------------------------

_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class _Recorder(http.server.ThreadingHTTPServer):
    """A local HTTP server that records every request's path and headers and answers from
    ``routes``: path -> ("redirect", location) or ("json", body); anything else is a 404."""

    def __init__(self, host: str) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.routes: dict[str, tuple[str, str]] = {}
        super().__init__((host, 0), _RecordingHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.socket.getsockname()[0]}:{self.server_port}"

    def auth_seen(self, path: str) -> list[str | None]:
        """The Authorization header of each request for ``path`` (None: it had none)."""
        return [h.get("authorization") for p, h in self.seen if p == path]


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        kind, value = self.server.routes.get(self.path, ("missing", ""))
        if kind == "redirect":
            self.send_response(307)
            self.send_header("Location", value)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "json":
            body = value.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def two_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Recorder, _Recorder]]:
    """Servers on 127.0.0.1 and on 127.0.0.2: two hosts, as far as any HTTP client can tell."""
    for name in _PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    servers = (_Recorder("127.0.0.1"), _Recorder("127.0.0.2"))
    try:
        yield servers
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


_VERSION = '{"ray_version": "2.60.0", "version": "2"}'


def _token(tmp_path: Path) -> tuple[Path, str]:
    value = secrets.token_hex(16)
    path = tmp_path / "token"
    path.write_text(value)
    return path, f"Bearer {value}"


def test_probe_drops_the_token_on_a_redirect_to_another_host(
    two_hosts: tuple[_Recorder, _Recorder], tmp_path: Path
) -> None:
    first, second = two_hosts
    token_file, bearer = _token(tmp_path)
    first.routes["/api/version"] = ("redirect", f"{second.url}/api/version")
    second.routes["/api/version"] = ("json", _VERSION)
    probe(first.url, resolve_token(token_file), 10)
    assert first.auth_seen("/api/version") == [bearer]
    assert second.auth_seen("/api/version") == [None]  # it arrived, without the token


def test_probe_keeps_the_token_on_the_same_host_and_port_only(
    two_hosts: tuple[_Recorder, _Recorder], tmp_path: Path
) -> None:
    first, _ = two_hosts
    other_port = _Recorder("127.0.0.1")  # the same host, another port: another origin
    try:
        token_file, bearer = _token(tmp_path)
        token = resolve_token(token_file)
        first.routes["/api/version"] = ("redirect", "/api/moved")  # relative: same origin
        first.routes["/api/moved"] = ("json", _VERSION)
        probe(first.url, token, 10)
        assert first.auth_seen("/api/version") == [bearer]
        assert first.auth_seen("/api/moved") == [bearer]

        first.routes["/api/version"] = ("redirect", f"{other_port.url}/api/version")
        other_port.routes["/api/version"] = ("json", _VERSION)
        probe(first.url, token, 10)
        assert other_port.auth_seen("/api/version") == [None]
    finally:
        other_port.shutdown()
        other_port.server_close()


def test_ray_sdk_requests_drop_the_token_on_a_redirect_to_another_host(
    two_hosts: tuple[_Recorder, _Recorder], tmp_path: Path
) -> None:
    """Status, logs and stop go through Ray's job SDK (``requests``), not ``probe``."""
    first, second = two_hosts
    token_file, bearer = _token(tmp_path)
    first.routes["/api/version"] = ("json", _VERSION)
    first.routes["/api/jobs/j1"] = ("redirect", f"{second.url}/api/jobs/j1")
    first.routes["/api/jobs/j2"] = ("redirect", "/api/jobs/j2/here")
    client = ClusterClient(first.url, resolve_token(token_file))
    with pytest.raises(ClusterError, match="no job 'j1'"):  # the second server's 404
        client.info("j1")
    assert first.auth_seen("/api/jobs/j1") == [bearer]
    assert second.auth_seen("/api/jobs/j1") == [None]
    with pytest.raises(ClusterError, match="no job 'j2'"):
        client.info("j2")
    assert first.auth_seen("/api/jobs/j2/here") == [bearer]  # same host and port: kept


def test_plain_http_warning_decides_without_sending_anything() -> None:
    token = Token(value="secret", source="--token-file t")
    for address in ("http://10.0.0.5:8265", "http://head.example.org:8265", "http://0.0.0.0:1"):
        message = plain_http_warning(address, token)
        assert message is not None and address in message and "plain http" in message
        assert "secret" not in message
    assert plain_http_warning("10.0.0.5:8265", token) is not None  # no scheme: http
    quiet = (
        "https://10.0.0.5:443",
        "https://ray.example.org:8443",
        "http://127.0.0.1:8265",
        "http://127.4.5.6:8265",
        "http://localhost:8265",
        "http://LOCALHOST.:8265",
        "http://[::1]:8265",
        "http://[::ffff:127.0.0.1]:8265",
    )
    for address in quiet:
        assert plain_http_warning(address, token) is None, address
    assert plain_http_warning("http://10.0.0.5:8265", None) is None  # no token, nothing to see
    assert normalize_address("http://[::1]:9000") == "http://[::1]:9000"


def test_plain_http_warning_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_access, "_plain_http_warned", False)
    token = Token(value="secret", source="$RAY_AUTH_TOKEN")
    written: list[str] = []
    assert not warn_plain_http_once("https://10.0.0.5:443", token, written.append)
    assert not warn_plain_http_once("http://127.0.0.1:8265", token, written.append)
    assert written == []  # and the one warning is still due
    assert warn_plain_http_once("http://10.0.0.5:8265", token, written.append)
    assert not warn_plain_http_once("http://10.0.0.5:8265", token, written.append)
    assert not warn_plain_http_once("http://10.0.0.6:8265", token, written.append)
    assert len(written) == 1 and "http://10.0.0.5:8265" in written[0]


def test_commands_warn_once_before_the_token_is_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """submit, status, logs and stop: the warning comes first, once; the connection is
    stubbed out, so nothing is sent to the non-loopback address."""
    sent: list[str] = []

    def no_connection(address: str, token: object, timeout_s: float) -> None:
        sent.append(address)
        raise ClusterError("not connecting in this test")

    monkeypatch.setattr(submit, "probe", no_connection)
    monkeypatch.setattr(cluster_access, "_plain_http_warned", False)
    token_file, _ = _token(tmp_path)
    auth = ("--token-file", str(token_file))
    monkeypatch.chdir(ROOT)
    for address in ("http://127.0.0.1:8265", "https://10.0.0.5:443"):
        assert _run(["status", "--address", address, *auth], capsys)[0] == 2
    assert "plain http" not in capsys.readouterr().err
    far = ("--address", "http://10.0.0.5:8265", *auth)
    runs = [
        ["submit", *far, "--no-wait", "pyproject.toml"],
        ["status", *far],
        ["logs", *far, "job"],
        ["stop", *far, "job"],
    ]
    for argv in runs:
        code, message = _run(argv, capsys)
        assert code == 2 and "not connecting" in message
    assert capsys.readouterr().err.count("plain http") == 1
    assert sent == ["http://127.0.0.1:8265", "https://10.0.0.5:443", *["http://10.0.0.5:8265"] * 4]
