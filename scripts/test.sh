#!/usr/bin/env bash
# The README's test command: set up .venv, then lint, format check, type check and every test
# that can run on this machine (slow and Ray tests included; GPU tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -q --durations=30 "$@"
