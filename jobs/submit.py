"""Submitting a study to a Ray cluster through the Ray Jobs API, and watching it.

A study job is ``python -m jobs.cli study run CONFIG --workdir DIR`` (the ``elocap study run``
command, run from the shipped copy of this project): the project's source checkout goes to the
cluster as the job's runtime_env ``working_dir`` (Ray unpacks it on the node, makes it the
job's current directory and puts it first on ``PYTHONPATH``), so the cluster always runs the
code that was submitted. The nodes either have elocap's dependencies installed already (a venv
activated before ``ray start``, or a container image), or ``pip`` in the runtime_env installs
them into a per-job virtualenv on top of the node's Ray (``deps="cpu"|"cuda"|"tpu"``).

Addresses, tokens and connection errors are in ``jobs.cluster_access`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import secrets
import shlex
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from elocap.execution import Resources as TaskResources
from jobs.cluster_access import (
    DEFAULT_DASHBOARD_PORT,
    ClusterError,
    Token,
    explicit_address,
    normalize_address,
    plain_http_warning,
    probe,
    resolve_token,
    warn_plain_http_once,
)

__all__ = [
    "DEFAULT_DASHBOARD_PORT",
    "ClusterClient",
    "ClusterError",
    "JobSpec",
    "Resources",
    "StudyRequest",
    "Token",
    "find_project",
    "normalize_address",
    "parse_resources",
    "plain_http_warning",
    "project_requirements",
    "project_runtime_env",
    "resolve_token",
    "shipped_path",
    "study_job",
    "study_workdir_arg",
    "submit_study",
]

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
# Never shipped: environments, outputs, caches (Ray also drops .git, .venv, venv, __pycache__,
# and whatever .gitignore / .rayignore name).
PROJECT_EXCLUDES: tuple[str, ...] = (".git", ".venv", "venv", "out", "build", "dist")
PROJECT_EXCLUDES += ("**/__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache")
# Dependency sets installable on the cluster through the runtime_env: pyproject extras added to
# the base dependencies (Ray itself is never reinstalled: the cluster's Ray is the one used).
DEPENDENCY_EXTRAS: dict[str, tuple[str, ...]] = {"cpu": (), "cuda": ("cuda",), "tpu": ("tpu",)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resources:
    """What the job's driver process reserves (its tasks ask for their own resources).

    The driver is one process, so this is ``elocap.execution.Resources`` for one host
    (``request``), spelled as the ``submit`` command takes it: ``custom`` holds ``TPU`` like any
    other name (``--resources '{"TPU": 4}'``), and nothing is reserved by default, where a
    task asks for a CPU (a driver holding one would take it from a trial)."""

    num_cpus: float = 0.0  # Ray's default; a driver that reserves CPUs takes them from trials
    num_gpus: float = 0.0
    custom: Mapping[str, float] = dataclasses.field(default_factory=dict)  # e.g. {"TPU": 4}

    def __post_init__(self) -> None:
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError("--num-cpus and --num-gpus must be >= 0")
        for name, amount in self.custom.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"resource {name!r}: use --num-cpus / --num-gpus instead")
            if not name or not isinstance(amount, int | float) or amount < 0:
                raise ValueError(f"resource {name!r}: the amount must be a number >= 0")
        self.request()  # and what a task's request must be (finite amounts, Ray names)

    def request(self) -> TaskResources:
        """The driver's request as a one-host task request (amounts of 0 left out)."""
        custom = {k: float(v) for k, v in self.custom.items() if v > 0}
        return TaskResources(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            num_tpus=custom.pop("TPU", 0.0),
            resources=tuple(sorted(custom.items())),
        )


def parse_resources(text: str) -> dict[str, float]:
    """``'{"TPU": 4}'`` -> {"TPU": 4.0}, with a clear error for anything else."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--resources is not JSON ({e.msg}): {text!r}") from e
    ok = isinstance(value, dict) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    )
    if not ok:
        raise ValueError(f'--resources must be a JSON object of numbers, e.g. {{"TPU": 4}}: {text}')
    return {str(k): float(v) for k, v in value.items()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobSpec:
    """Everything one Jobs API submission sends."""

    entrypoint: str  # a shell command, run in the unpacked working_dir
    runtime_env: Mapping[str, Any]
    resources: Resources
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    submission_id: str | None = None  # None: the cluster picks one


def find_project(start: Path | None = None) -> Path:
    """The source checkout this package was imported from (the folder with its pyproject)."""
    root = (start or Path(__file__).resolve().parents[1]).resolve()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or 'name = "elocap"' not in pyproject.read_text():
        raise ValueError(
            f"{root} is not an elocap source checkout (no pyproject.toml naming elocap); "
            "pass --project DIR, the checkout to ship to the cluster"
        )
    return root


def project_requirements(project: Path, deps: str) -> tuple[str, ...]:
    """pyproject's dependencies plus the extras of ``deps`` ("cpu", "cuda", "tpu"), without Ray."""
    if deps not in DEPENDENCY_EXTRAS:
        raise ValueError(f"unknown dependency set {deps!r}; one of {sorted(DEPENDENCY_EXTRAS)}")
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    wanted = list(meta.get("dependencies", []))
    for extra in DEPENDENCY_EXTRAS[deps]:
        wanted += meta.get("optional-dependencies", {}).get(extra, [])
    return tuple(r for r in wanted if re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] != "ray")


def project_runtime_env(
    project: Path,
    *,
    deps: str | None = None,
    env_vars: Mapping[str, str] | None = None,
    excludes: Sequence[str] = (),
) -> dict[str, Any]:
    """The runtime_env that carries the project: its checkout as working_dir, optionally its
    dependencies as pip requirements (``deps``), and environment variables for the job."""
    env: dict[str, Any] = {
        "working_dir": str(project),
        "excludes": [*PROJECT_EXCLUDES, *excludes],
    }
    if deps is not None:
        env["pip"] = list(project_requirements(project, deps))
    if env_vars:
        env["env_vars"] = dict(env_vars)
    return env


def shipped_path(path: Path, project: Path, excludes: Sequence[str] = ()) -> str:
    """``path`` relative to ``project`` as the job will see it; an error if it is not shipped."""
    import pathspec

    full = path.resolve()
    try:
        rel = full.relative_to(project.resolve()).as_posix()
    except ValueError as e:
        raise ValueError(
            f"{path} is outside the project {project}, which is what is shipped to the "
            "cluster: put the study config inside it (e.g. jobs/studies/)"
        ) from e
    patterns = [*PROJECT_EXCLUDES, *excludes]
    for ignore in (".gitignore", ".rayignore"):
        if (project / ignore).is_file():
            patterns += (project / ignore).read_text().splitlines()
    if pathspec.GitIgnoreSpec.from_lines(patterns).match_file(rel):
        raise ValueError(f"{path} is excluded from the upload (.gitignore or excludes)")
    return rel


def _git_describe(project: Path) -> str | None:
    git = ["git", "-C", str(project), "describe", "--always", "--dirty", "--abbrev=12"]
    try:
        out = subprocess.run(git, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def study_workdir_arg(workdir: str) -> str:
    """``--workdir`` as shell text: an absolute path on the cluster (on storage its nodes
    share), or ``~/...`` (the job's $HOME there)."""
    if workdir.startswith("~/"):
        return '"$HOME"/' + shlex.quote(workdir[2:])
    if not workdir.startswith("/"):
        raise ValueError(
            f"--workdir {workdir!r} must be absolute (or ~/...): a relative path would land in "
            "the job's temporary copy of the project on the cluster, deleted after the job"
        )
    return shlex.quote(workdir)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyRequest:
    """A study to run on a cluster."""

    config: Path  # the study TOML, inside ``project``
    project: Path  # the source checkout shipped as working_dir
    workdir: str | None = None  # on the cluster: absolute or ~/...; None: ~/elocap/studies/NAME
    resources: Resources = dataclasses.field(default_factory=Resources)
    deps: str | None = None  # None: the nodes have the dependencies; else a DEPENDENCY_EXTRAS key
    env_vars: Mapping[str, str] = dataclasses.field(default_factory=dict)
    excludes: tuple[str, ...] = ()
    submission_id: str | None = None  # None: elocap-<config name>-<time>-<random>


def study_job(request: StudyRequest) -> JobSpec:
    """The submission of a study: validates the config here, before anything is sent."""
    config, project = request.config, request.project
    if not config.is_file():
        raise ValueError(f"study config {config} does not exist")
    try:
        tomllib.loads(config.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"study config {config} is not valid TOML: {e}") from e
    rel = shipped_path(config, project, request.excludes)
    workdir = request.workdir or f"~/elocap/studies/{config.stem}"
    entrypoint = f"python -m jobs.cli study run {shlex.quote(rel)} --workdir "
    entrypoint += study_workdir_arg(workdir)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = re.sub(r"[^A-Za-z0-9_-]", "-", config.stem)
    metadata = {"elocap_config": rel, "elocap_workdir": workdir}
    if (version := _git_describe(project)) is not None:
        metadata["elocap_git"] = version
    env = project_runtime_env(
        project, deps=request.deps, env_vars=request.env_vars, excludes=request.excludes
    )
    return JobSpec(
        entrypoint=entrypoint,
        runtime_env=env,
        resources=request.resources,
        metadata=metadata,
        submission_id=request.submission_id or f"elocap-{name}-{stamp}-{secrets.token_hex(3)}",
    )


class ClusterClient:
    """A Ray Jobs API client with a timeout-checked connection and clear errors.

    The token goes in the ``Authorization`` header of every request, never across a redirect
    to another origin (``jobs.cluster_access``), with a warning once per process where it
    would travel over plain http to a host outside loopback."""

    def __init__(self, address: str, token: Token | None, *, timeout_s: float = 10.0) -> None:
        self.address = normalize_address(address)
        self.token = token
        warn_plain_http_once(self.address, token)  # before the first request carries it
        probe(self.address, token, timeout_s)
        from ray.job_submission import JobSubmissionClient  # after the probe: slow to import

        headers = {"Authorization": f"Bearer {token.value}"} if token else None
        with explicit_address():
            self._client = JobSubmissionClient(self.address, headers=headers)

    @contextlib.contextmanager
    def _errors(self, what: str, job_id: str | None = None) -> Iterator[None]:
        """Ray's job SDK errors as ClusterError with the address and, for 404, the job id."""
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError as e:
            raise ClusterError(f"{what}: the cluster at {self.address} refused: {e}") from e
        except RuntimeError as e:  # the SDK's "Request failed with status code N: ..."
            if job_id is not None and "status code 404" in str(e):
                raise ClusterError(
                    f"no job {job_id!r} on the cluster at {self.address} "
                    f"(`elocap study status --address {self.address}` lists its jobs)"
                ) from e
            raise ClusterError(f"{what} failed on {self.address}: {e}") from e
        except ConnectionError as e:
            raise ClusterError(f"{what}: lost the connection to {self.address}: {e}") from e

    def submit(self, job: JobSpec) -> str:
        """Upload the working_dir (if not already on the cluster) and start the job."""
        r = job.resources.request().task_options()  # Ray's names, as a task's request has them
        with self._errors("submit"):
            return str(
                self._client.submit_job(
                    entrypoint=job.entrypoint,
                    runtime_env=dict(job.runtime_env),
                    metadata=dict(job.metadata),
                    submission_id=job.submission_id,
                    entrypoint_num_cpus=r["num_cpus"] or None,
                    entrypoint_num_gpus=r["num_gpus"] or None,
                    entrypoint_resources=r["resources"],
                )
            )

    def info(self, job_id: str) -> Any:
        """The job's ``ray.job_submission.JobDetails`` (status, message, times, metadata)."""
        with self._errors("status", job_id):
            return self._client.get_job_info(job_id)

    def status(self, job_id: str) -> str:
        return str(self.info(job_id).status.value)

    def jobs(self) -> list[Any]:
        """Every job the cluster knows, oldest first."""
        with self._errors("list"):
            return sorted(self._client.list_jobs(), key=lambda j: j.start_time or 0)

    def logs(self, job_id: str) -> str:
        with self._errors("logs", job_id):
            return str(self._client.get_job_logs(job_id))

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop; False if it had already ended."""
        with self._errors("stop", job_id):
            return bool(self._client.stop_job(job_id))

    def wait(self, job_id: str, *, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
        """Poll until the job ends; its final status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (state := self.status(job_id)) not in TERMINAL_STATES:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout_s:g} s")
            time.sleep(poll_s)
        return state

    def follow(self, job_id: str, write: Callable[[str], object]) -> str:
        """Stream the job's logs to ``write`` as they come, until it ends; its final status."""
        self.info(job_id)  # an unknown id is a clear error, not a websocket failure

        async def tail() -> None:
            async for chunk in self._client.tail_job_logs(job_id):
                write(chunk)

        with self._errors("logs --follow", job_id):
            asyncio.run(tail())
        return self.wait(job_id, timeout_s=120.0)


def submit_study(client: ClusterClient, request: StudyRequest) -> str:
    """Submit a study; its submission id."""
    return client.submit(study_job(request))
