"""Starting or joining Ray, once, for the CLI entry points and the study runner.

Library code never calls ``ray.init`` (design, "Distributed execution"): an entry point calls
``start_or_join()`` and hands the work an executor. Two cases:

- **Join** ``address`` or, when none is given, ``$RAY_ADDRESS`` (set by the Ray Jobs API for a
  submitted study's driver, or by the user): Ray's own address forms, ``HOST:PORT`` of the GCS,
  ``auto`` or ``ray://HOST:PORT``.
- **Embedded** otherwise (or ``address="local"``): a one-node cluster of this process whose
  every listening socket is on 127.0.0.1. Ray's ``ray.init`` replaces a loopback node address
  by the host's outward IP (``resolve_ip_for_localhost``) and its gRPC servers (GCS, raylet,
  object manager, every worker) listen on all interfaces unless the node address is 127.0.0.1;
  the one switch that keeps the node on loopback is Ray's own for single-node macOS/Windows
  clusters, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (``ray_constants.ENABLE_RAY_CLUSTER``).
  With it the node address is 127.0.0.1, and so the GCS, raylet, object manager, workers,
  dashboard agent (HTTP and metrics export), runtime-env agent and the two Prometheus servers
  of the dashboard head and autoscaler monitor all bind 127.0.0.1 (``tests/test_ray_session.py``
  checks every listener of the cluster's processes). It is set only while ``ray.init`` starts
  the processes, which inherit it; the dashboard's HTTP server is not started.

Joining a cluster on this host's loopback (``127.0.0.1:PORT``, or ``auto`` finding one) is done
from 127.0.0.1 as well, with the same switch; otherwise Ray would dial the host's outward IP,
where such a cluster does not listen. With an explicit address Ray sends the token only under
``RAY_AUTH_MODE=token`` (Ray's rule; the driver of a submitted job, and every process started
by an embedded cluster's driver, has it).

Token authentication stays as Ray sets it (on by default for a new local cluster since Ray
2.52, unless ``RAY_AUTH_MODE=disabled``). Ray would write a missing ``~/.ray/auth_token`` with
the process umask (world-readable under the usual 022); elocap writes it first, mode 0600 in a
0700 folder, and narrows an existing one that others can read.

Output: unless ``verbose``, workers' stdout/stderr stay in the session's log folder
(``log_to_driver=False``) and Ray's own loggers show errors only; errors raised by tasks still
reach the caller as exceptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import ipaddress
import logging
import os
import secrets
import stat
import urllib.parse
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LOOPBACK", "RaySession", "RayStartError", "ensure_token_file", "start_or_join"]


class RayStartError(RuntimeError):
    """Ray could not be started or joined; the processes it had started are stopped."""


LOOPBACK = "127.0.0.1"
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch: "0" = single node, loopback
_LOGS_LINK = "ray"  # log_dir/ray -> the Ray session's log folder

logger = logging.getLogger(__name__)
_embedded_session: Path | None = None  # session folder of the cluster this process started


@dataclasses.dataclass(frozen=True, kw_only=True)
class RaySession:
    """Ray as this process uses it. A context manager: leaving it calls ``close()``."""

    address: str  # the cluster's GCS address (HOST:PORT), or the ray:// address joined
    embedded: bool  # a local cluster started by this process (listening on 127.0.0.1 only)
    owner: bool  # this call connected Ray, so close() disconnects (and stops an embedded one)
    logs: Path | None  # Ray's log folder of this session (workers' output among it), if local

    def close(self) -> None:
        """Disconnect and stop an embedded cluster, if this session started it; else nothing."""
        global _embedded_session
        if not self.owner:
            return
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self.embedded:
            _embedded_session = None

    def __enter__(self) -> RaySession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _tighten(path: Path) -> None:
    """Mode 0600 for a token file of ours that others can read (Ray writes it with the umask)."""
    try:
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o600)
            logger.info("token file %s was readable by others: now mode 0600", path)
    except OSError as e:  # not ours to change, or gone: Ray reports what it cannot read
        logger.debug("cannot check the mode of %s: %s", path, e)


def ensure_token_file(
    environ: MutableMapping[str, str] | None = None, home: Path | None = None
) -> Path | None:
    """Before a local cluster starts: the token file Ray will use, written here (mode 0600)
    when token authentication is on and Ray would otherwise generate it itself. None when
    authentication is off (``RAY_AUTH_MODE`` other than ``token``) or the token comes from
    ``$RAY_AUTH_TOKEN`` / ``$RAY_AUTH_TOKEN_PATH`` (the user's, left as it is)."""
    env = os.environ if environ is None else environ
    mode = env.get("RAY_AUTH_MODE")
    if mode is not None and mode.strip().lower() != "token":
        return None
    if env.get("RAY_AUTH_TOKEN", "").strip() or env.get("RAY_AUTH_TOKEN_PATH"):
        return None
    path = (home or Path.home()) / ".ray" / "auth_token"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path)
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))  # as Ray's own generator: 256 random bits
    # Ray's C++ loader may have cached a "no token" answer; Ray versions without it have none.
    loader = getattr(importlib.import_module("ray._raylet"), "AuthenticationTokenLoader", None)
    if loader is not None:
        loader.instance().reset_cache()
    return path


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """While Ray starts a local node: its address is 127.0.0.1, so every server binds there."""
    from ray._private import ray_constants

    saved_env = os.environ.get(_LOCAL_ONLY_ENV)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOCAL_ONLY_ENV] = "0"  # the processes started now inherit it
    ray_constants.ENABLE_RAY_CLUSTER = False  # read by services.get_node_ip_address
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = saved_env


def _is_loopback_cluster(target: str) -> bool:
    """Whether the Ray address ``target`` (HOST:PORT, ``auto``, ``ray://``) is on loopback."""
    if target == "auto":
        from ray._private import services

        try:  # the latest cluster started on this host, as Ray finds it
            found = services.get_ray_address_from_environment("auto", None)
        except Exception:  # none: ray.init says so itself
            return False
        target = found or ""
    host = urllib.parse.urlsplit(target if "://" in target else f"//{target}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _node() -> Any:
    """Ray's node object of this process (None for a ray:// client)."""
    from ray._private import worker

    return getattr(worker, "_global_node", None)


def _logs_of(node: Any) -> Path | None:
    try:
        return Path(node.get_logs_dir_path()) if node is not None else None
    except (AttributeError, TypeError):
        return None


def _link_logs(log_dir: Path, logs: Path) -> None:
    """``log_dir/ray`` -> the session's log folder (a symlink replaced at every start)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    link = log_dir / _LOGS_LINK
    if link.exists() and not link.is_symlink():
        logger.warning("%s exists and is not a link: Ray's logs are in %s", link, logs)
        return
    tmp = log_dir / f".{_LOGS_LINK}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(logs, target_is_directory=True)
    tmp.replace(link)


def _existing() -> RaySession:
    import ray

    node = _node()
    logs = _logs_of(node)
    try:
        address = str(
            node.gcs_address if node is not None else ray.get_runtime_context().gcs_address
        )
    except Exception:  # a ray:// client may not say
        address = ""
    embedded = (
        _embedded_session is not None and logs is not None and logs.parent == _embedded_session
    )
    return RaySession(address=address, embedded=embedded, owner=False, logs=logs)


@contextlib.contextmanager
def _start_failure(address: str | None) -> Iterator[None]:
    """A failed ``ray.init`` as one line (RayStartError), after stopping what it started: Ray's
    own exception is a many-line stack, and a half-started local cluster leaves its GCS, raylet
    and workers running."""
    import ray

    try:
        yield
    except Exception as e:
        with contextlib.suppress(Exception):
            ray.shutdown()  # stops the processes of a half-started embedded node
        first = (str(e).strip().splitlines() or [""])[0][:300]
        where = f"Ray at {address}" if address else "the local Ray cluster"
        hint = (
            "check the address and that the cluster is up"
            if address
            else "run again (on a busy machine Ray's start can time out), or pass --no-ray to "
            "work in this process"
        )
        raise RayStartError(f"{where} did not start: {type(e).__name__}: {first}; {hint}") from None


def start_or_join(
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    log_dir: Path | None = None,
    verbose: bool = False,
) -> RaySession:
    """Ray for this process: the session already initialised here (not owned: ``close()``
    leaves it), else a join of ``address`` / ``$RAY_ADDRESS``, else an embedded cluster on
    127.0.0.1 with ``num_cpus`` CPUs (None: all of them; ignored when joining).

    ``log_dir``: a folder that gets ``ray`` -> this session's Ray log folder (workers' output).
    ``verbose``: workers' output on this terminal and Ray's INFO messages; else errors only.

    Use as ``with start_or_join(num_cpus=2) as session: ...`` or keep the result and call
    ``session.close()`` (Ray also disconnects at exit). Raises RuntimeError if an embedded
    node did not come up on 127.0.0.1.
    """
    global _embedded_session
    import ray

    if ray.is_initialized():
        session = _existing()
        if log_dir is not None and session.logs is not None:
            _link_logs(log_dir, session.logs)
        return session

    target = address if address is not None else (os.environ.get("RAY_ADDRESS") or None)
    level = logging.INFO if verbose else logging.ERROR
    common: dict[str, Any] = {
        "configure_logging": True,
        "logging_level": level,
        "log_to_driver": verbose,
    }
    if target is not None and target != "local":
        # A cluster on this host's loopback (an embedded one, or `ray start` on 127.0.0.1) is
        # joined from 127.0.0.1 too: Ray would otherwise turn the address into the host's IP.
        local = _is_loopback_cluster(target)
        with _loopback_node() if local else contextlib.nullcontext(), _start_failure(target):
            ray.init(address=target, **common)
        node = _node()
        joined = str(node.gcs_address) if node is not None else target
        session = RaySession(address=joined, embedded=False, owner=True, logs=_logs_of(node))
    else:
        ensure_token_file()
        with _loopback_node(), _start_failure(None):
            ray.init(
                address="local",  # never $RAY_ADDRESS or a cluster found on the host
                num_cpus=num_cpus,
                include_dashboard=False,
                dashboard_host=LOOPBACK,
                _node_ip_address=LOOPBACK,
                **common,
            )
        node = _node()
        if node is None or node.node_ip_address != LOOPBACK:
            ray.shutdown()
            raise RuntimeError(
                f"the embedded Ray node came up on {getattr(node, 'node_ip_address', '?')}, "
                f"not {LOOPBACK}: this Ray version ignores {_LOCAL_ONLY_ENV}=0, so its servers "
                "would listen on every interface (see jobs/ray_session.py)"
            )
        logs = Path(node.get_logs_dir_path())
        _embedded_session = logs.parent
        session = RaySession(address=str(node.gcs_address), embedded=True, owner=True, logs=logs)
    if log_dir is not None and session.logs is not None:
        _link_logs(log_dir, session.logs)
    return session
