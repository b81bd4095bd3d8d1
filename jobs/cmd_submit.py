"""``elocap study submit|status|logs|stop``: a study on a Ray cluster through the Jobs API.

Argument parsing only; the work is in ``jobs.submit``. ``register_study_commands`` adds the
commands to the sub-commands of ``elocap study`` (``jobs/cmd_study.py`` calls it).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.submit import ClusterClient


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS"),
        help="the cluster's Jobs API, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS); "
        "off this host, prefer https:// or an SSH tunnel: plain http shows the token to the "
        "network (a warning says so)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help="file holding the cluster's auth token (default: $RAY_AUTH_TOKEN, "
        "$RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token)",
    )


def _client(a: argparse.Namespace) -> ClusterClient:
    from jobs.submit import ClusterClient, resolve_token

    if not a.address:
        raise ValueError("no cluster address: pass --address http://HEAD:8265")
    client = ClusterClient(a.address, resolve_token(a.token_file))  # imports Ray's job SDK
    # The SDK logs every packaging step at INFO: keep warnings, except the notice that .git and
    # .venv are no longer uploaded (jobs.submit.PROJECT_EXCLUDES leaves them out anyway).
    for name in ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)
    return client


def _env_var(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _follow(client: ClusterClient, job_id: str) -> int:
    """Stream the logs until the job ends: 0 if it succeeded, else 1."""
    try:
        state = client.follow(job_id, lambda chunk: print(chunk, end="", flush=True))
    except KeyboardInterrupt:
        print(
            f"\nstopped following; job {job_id} goes on "
            f"(elocap study logs|stop --address {client.address} {job_id})",
            file=sys.stderr,
        )
        return 130
    print(f"job {job_id}: {state}", file=sys.stderr)
    return 0 if state == "SUCCEEDED" else 1


def _submit(a: argparse.Namespace) -> int:
    from jobs.submit import Resources, StudyRequest, find_project, parse_resources, study_job

    request = StudyRequest(
        config=a.config,
        project=find_project(a.project),
        workdir=a.workdir,
        resources=Resources(
            num_cpus=a.num_cpus,
            num_gpus=a.num_gpus,
            custom=parse_resources(a.resources) if a.resources else {},
        ),
        deps=a.install_deps,
        env_vars=dict(a.env),
        excludes=tuple(a.exclude),
        submission_id=a.submission_id,
    )
    job = study_job(request)  # bad input fails here, before any connection
    from jobs.study_config import load_study_config
    from jobs.study_cost import cost_lines

    try:  # what it will spend, before it does (the cluster checks the config itself)
        cost = cost_lines(load_study_config(a.config))
    except (ValueError, OSError):
        cost = []
    for line in cost:
        print(line, file=sys.stderr)
    client = _client(a)
    job_id = client.submit(job)
    print(f"submitted {job_id} to {client.address}", file=sys.stderr)
    print(f"  outputs (on the cluster): {job.metadata['elocap_workdir']}", file=sys.stderr)
    print(
        f"  watch: elocap study logs --follow --address {client.address} {job_id}", file=sys.stderr
    )
    print(job_id)
    return 0 if a.no_wait else _follow(client, job_id)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _describe(job: Any) -> str:
    meta = job.metadata or {}
    rows = [
        ("job", job.submission_id or job.job_id),
        ("status", job.status.value),
        ("message", job.message or ""),
        ("started", _when(job.start_time)),
        ("ended", _when(job.end_time)),
        ("entrypoint", job.entrypoint),
        *((k.removeprefix("elocap_"), v) for k, v in sorted(meta.items())),
    ]
    return "\n".join(f"{k:>11}: {v}" for k, v in rows)


def _status(a: argparse.Namespace) -> int:
    client = _client(a)
    if a.job_id:
        print(_describe(client.info(a.job_id)))
        return 0
    for job in client.jobs():
        name = job.submission_id or job.job_id
        print(f"{name:<44} {job.status.value:<10} {_when(job.start_time)}  {job.entrypoint}")
    return 0


def _logs(a: argparse.Namespace) -> int:
    client = _client(a)
    if a.follow:
        return _follow(client, a.job_id)
    print(client.logs(a.job_id), end="")
    return 0


def _stop(a: argparse.Namespace) -> int:
    client = _client(a)
    if client.stop(a.job_id):
        print(f"stop requested for {a.job_id}; it ends as STOPPED", file=sys.stderr)
    else:
        print(f"{a.job_id} had already ended: {client.status(a.job_id)}", file=sys.stderr)
    return 0


def register_study_commands(study_sub: Any) -> None:
    """Add submit, status, logs and stop to ``elocap study``'s sub-commands."""
    s = study_sub.add_parser("submit", help="run a study on a Ray cluster (Ray Jobs API)")
    s.add_argument("config", type=Path, help="the study TOML, inside the project")
    _add_cluster_args(s)
    s.add_argument(
        "--workdir",
        help="outputs, on the cluster: an absolute path on storage its nodes share, or ~/... "
        "(default: ~/elocap/studies/CONFIG_NAME)",
    )
    s.add_argument("--num-cpus", type=float, default=0.0, help="CPUs reserved for the driver")
    s.add_argument("--num-gpus", type=float, default=0.0, help="GPUs reserved for the driver")
    s.add_argument("--resources", help="other driver resources as JSON, e.g. '{\"TPU\": 4}'")
    s.add_argument(
        "--install-deps",
        choices=("cpu", "cuda", "tpu"),
        help="pip-install elocap's dependencies (+ that jax extra) on the cluster per job "
        "(default: the nodes already have them)",
    )
    s.add_argument(
        "--env",
        type=_env_var,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable of the job, e.g. ELOCAP_CACHE=/shared/cache (repeatable)",
    )
    s.add_argument("--exclude", action="append", default=[], help="more paths not to upload")
    s.add_argument("--project", type=Path, help="the checkout to ship (default: this one)")
    s.add_argument("--submission-id", help="the job's id (default: elocap-NAME-TIME-RANDOM)")
    s.add_argument("--no-wait", action="store_true", help="print the job id and return")
    s.set_defaults(func=_submit)

    st = study_sub.add_parser("status", help="a submitted study's status, or every job's")
    st.add_argument("job_id", nargs="?", help="omit to list the cluster's jobs")
    _add_cluster_args(st)
    st.set_defaults(func=_status)

    lg = study_sub.add_parser("logs", help="a submitted study's logs")
    lg.add_argument("job_id")
    _add_cluster_args(lg)
    lg.add_argument("--follow", action="store_true", help="stream them until the job ends")
    lg.set_defaults(func=_logs)

    sp = study_sub.add_parser("stop", help="stop a submitted study")
    sp.add_argument("job_id")
    _add_cluster_args(sp)
    sp.set_defaults(func=_stop)
