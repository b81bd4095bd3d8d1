"""Reaching a Ray cluster's Jobs API: its address, Ray's token authentication, and errors that
say what went wrong before anything is uploaded.

Token authentication (Ray >= 2.52): the Jobs API answers 401 without an ``Authorization: Bearer
TOKEN`` header and 403 with a wrong one. The token is found as Ray's own tools find it (see
``resolve_token``) and sent explicitly with every request; it is never logged.

Where the token goes: a warning (once per process) when it would cross the network in clear
text, plain http to a host outside loopback (``plain_http_warning``); and never across a
redirect to another host or port. elocap's own requests (``probe``) follow redirects with
``SameOriginAuthRedirectHandler``, which drops the header then (urllib's default handler copies
every header to the new location); Ray's job SDK uses ``requests`` and ``aiohttp``, which drop
``Authorization`` when a redirect changes the origin themselves (tests/test_submit.py checks
both against real servers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

DEFAULT_DASHBOARD_PORT = 8265  # the Ray Jobs API is served by the head's dashboard
_ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")  # Ray's client prefers these silently


class ClusterError(OSError):
    """The cluster cannot be reached, refuses the request, or does not know the job."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Token:
    """A Ray authentication token and where it was found (for messages; the value is secret)."""

    value: str = dataclasses.field(repr=False)
    source: str  # e.g. "--token-file /path", "$RAY_AUTH_TOKEN"


def _read_token(path: Path, source: str) -> Token:
    try:
        value = path.expanduser().read_text().strip()
    except OSError as e:
        raise ValueError(f"cannot read the token file {path} ({source}): {e.strerror}") from e
    if not value:
        raise ValueError(f"the token file {path} ({source}) is empty")
    return Token(value=value, source=f"{source} {path}")


def resolve_token(
    token_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Token | None:
    """The token to send, or None: ``token_file``, else Ray's order of precedence:
    ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH`` (unreadable or empty is an error, as
    in Ray), then ``~/.ray/auth_token`` (written by ``ray get-auth-token --generate`` and by
    ``ray.init()`` when it starts a local cluster)."""
    env = os.environ if environ is None else environ
    if token_file is not None:
        return _read_token(token_file, "--token-file")
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return Token(value=env["RAY_AUTH_TOKEN"].strip(), source="$RAY_AUTH_TOKEN")
    if env.get("RAY_AUTH_TOKEN_PATH"):
        return _read_token(Path(env["RAY_AUTH_TOKEN_PATH"]), "$RAY_AUTH_TOKEN_PATH")
    default = (home or Path.home()) / ".ray" / "auth_token"
    return _read_token(default, "default token file") if default.is_file() else None


def normalize_address(address: str) -> str:
    """``http(s)://host[:port]`` of a cluster's Jobs API from a URL or ``host[:port]``."""
    text = address.strip().rstrip("/")
    if not text:
        raise ValueError("empty cluster address; give the dashboard URL, e.g. http://HEAD:8265")
    if "://" not in text:
        text = f"http://{text}"
    url = urllib.parse.urlsplit(text)
    if url.scheme not in ("http", "https"):
        raise ValueError(
            f"unsupported address {address!r}: the Ray Jobs API is the head's dashboard over "
            f"http(s), e.g. http://HEAD:{DEFAULT_DASHBOARD_PORT} (not ray:// or the GCS port)"
        )
    try:
        port = url.port or (443 if url.scheme == "https" and ":" not in url.netloc else None)
    except ValueError as e:
        raise ValueError(f"bad port in cluster address {address!r}") from e
    if not url.hostname or url.path not in ("", "/"):
        raise ValueError(f"bad cluster address {address!r}; expected http://HOST:PORT")
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # IPv6 literal
    return f"{url.scheme}://{host}:{port or DEFAULT_DASHBOARD_PORT}"


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (also as ``[::1]`` or IPv4-mapped): this machine
    only. Names are not resolved: any other name may lead off the host."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def plain_http_warning(address: str, token: Token | None) -> str | None:
    """The warning due when ``token`` would be sent in clear text to ``address`` (plain http
    to a host outside loopback); None for https, loopback, or no token. Sends nothing."""
    if token is None:
        return None
    url = urllib.parse.urlsplit(address if "://" in address else f"http://{address}")
    if url.scheme != "http" or is_loopback_host(url.hostname or ""):
        return None
    return (
        f"warning: the cluster's token ({token.source}) goes to {address} over plain http, "
        "readable by anyone on the way: prefer https (TLS in front of the dashboard) or an SSH "
        f"tunnel (ssh -L {DEFAULT_DASHBOARD_PORT}:127.0.0.1:{DEFAULT_DASHBOARD_PORT} HEAD, "
        f"then --address http://127.0.0.1:{DEFAULT_DASHBOARD_PORT})"
    )


_plain_http_warned = False  # once per process


def warn_plain_http_once(
    address: str, token: Token | None, write: Callable[[str], object] | None = None
) -> bool:
    """Write ``plain_http_warning`` (to stderr by default) the first time it applies in this
    process; whether it was written now."""
    global _plain_http_warned
    message = plain_http_warning(address, token)
    if message is None or _plain_http_warned:
        return False
    _plain_http_warned = True
    (write or (lambda text: print(text, file=sys.stderr)))(message)
    return True


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


class SameOriginAuthRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, except that ``Authorization`` (and ``Cookie``) follow only to the
    same scheme, host and port: urllib's own handler copies every header to any location."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
        return new


def open_url(request: urllib.request.Request, timeout_s: float) -> Any:
    """``urllib.request.urlopen`` whose redirects keep the token to its own origin (built per
    call, so that the proxy settings are the environment's of now, as urlopen's)."""
    return urllib.request.build_opener(SameOriginAuthRedirectHandler).open(
        request, timeout=timeout_s
    )


def _explain_url_error(address: str, e: urllib.error.URLError, timeout_s: float) -> str:
    host = urllib.parse.urlsplit(address).hostname
    reason = e.reason
    if isinstance(reason, ConnectionRefusedError):
        return (
            f"connection refused at {address}: no Ray dashboard listens there (is the head up? "
            f"`ray start --head` serves the Jobs API on port {DEFAULT_DASHBOARD_PORT}; give "
            "--dashboard-host 0.0.0.0 to reach it from other machines)"
        )
    if isinstance(reason, socket.gaierror):
        return f"unknown host {host!r} in the cluster address {address}"
    if isinstance(reason, TimeoutError):
        return f"no answer from {address} within {timeout_s:g} s"
    return f"cannot reach the cluster at {address}: {reason}"


def probe(address: str, token: Token | None, timeout_s: float) -> None:
    """Check, with a timeout, that ``address`` is a Ray Jobs API that accepts ``token``."""
    headers = {"Authorization": f"Bearer {token.value}"} if token else {}
    request = urllib.request.Request(f"{address}/api/version", headers=headers)
    try:
        with open_url(request, timeout_s) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise ClusterError(
                f"the cluster at {address} requires a token (Ray token authentication) and "
                "none was given: pass --token-file FILE, or set RAY_AUTH_TOKEN or "
                "RAY_AUTH_TOKEN_PATH, or put it in ~/.ray/auth_token (on the head node, "
                "`ray get-auth-token` prints it)"
            ) from e
        if e.code == 403:
            raise ClusterError(
                f"the cluster at {address} refused the token from {token.source if token else '?'}"
                " (it is not this cluster's token)"
            ) from e
        raise ClusterError(f"{address} is not a Ray Jobs API (HTTP {e.code}: /api/version)") from e
    except urllib.error.URLError as e:
        raise ClusterError(_explain_url_error(address, e, timeout_s)) from e
    except TimeoutError as e:
        raise ClusterError(f"no answer from {address} within {timeout_s:g} s") from e
    try:
        json.loads(body)["ray_version"]
    except (ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"{address} is not a Ray Jobs API (no ray_version)") from e


@contextlib.contextmanager
def explicit_address() -> Iterator[None]:
    """Ray's client silently prefers $RAY_API_SERVER_ADDRESS / $RAY_ADDRESS to the address it
    is given; hide them while it is built so that the address asked for is the one used."""
    saved = {k: os.environ.pop(k) for k in _ADDRESS_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
