"""What every elocap package shares: atomic file writes (``elocap.files``), the executors that
library code runs parallel work on (``elocap.execution``), and the layout and registry of a
study's work directory (``elocap.workdir``, design contract 4)."""

from elocap.execution import Executor, InlineExecutor, RayExecutor, require_ray
from elocap.files import atomic_write_json, atomic_write_text, file_sha256

__all__ = [
    "Executor",
    "InlineExecutor",
    "RayExecutor",
    "atomic_write_json",
    "atomic_write_text",
    "file_sha256",
    "require_ray",
]
