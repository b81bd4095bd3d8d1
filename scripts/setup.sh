#!/usr/bin/env bash
# Sets up what the main job (scripts/main.sh) and the tests (scripts/test.sh) need, in order:
#   1. Debian's stockfish and pgn-extract (Debian puts them in /usr/games, off PATH). When one is
#      missing and this user may install packages (root, or `sudo -n true` succeeds), they are
#      installed with apt-get (after apt-get update); otherwise setup stops, before any other
#      work, with one line saying what to install.
#   2. .venv in the repository root, with elocap and its development tools.
#
# Environment:
#   ELOCAP_SETUP_NO_INSTALL=1  never install system packages: stop with what to install instead
#   ELOCAP_TOOL_DIRS           colon-separated folders searched besides PATH (default /usr/games)
#   ELOCAP_SETUP_TOOLS_ONLY=1  stop after step 1 (the tests of this script use it)
set -euo pipefail
cd "$(dirname "$0")/.."

# Written for bash 3.2 too (macOS): no mapfile, no empty arrays under set -u.
TOOL_DIRS="${ELOCAP_TOOL_DIRS-/usr/games}"

has_tool() {
  local dir rest="$TOOL_DIRS:"
  command -v "$1" >/dev/null 2>&1 && return 0
  while [ -n "$rest" ]; do
    dir="${rest%%:*}"
    rest="${rest#*:}"
    if [ -n "$dir" ] && [ -x "$dir/$1" ]; then return 0; fi
  done
  return 1
}

missing_tools() {  # the missing ones, space-separated
  local tool out=""
  for tool in stockfish pgn-extract; do
    has_tool "$tool" || out="$out${out:+ }$tool"
  done
  echo "$out"
}

# Sets SUDO to the prefix that runs apt-get as root, or WHY this user may not install.
may_install() {
  SUDO="" WHY=""
  if [ "${ELOCAP_SETUP_NO_INSTALL:-0}" = 1 ]; then
    WHY="ELOCAP_SETUP_NO_INSTALL=1 forbids installing them"
  elif ! command -v apt-get >/dev/null 2>&1; then
    WHY="there is no apt-get here; elsewhere put them on PATH"
  elif [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO="sudo -n"
    else
      WHY="not root, and sudo is not allowed without a password"
    fi
  fi
  [ -z "$WHY" ]
}

missing="$(missing_tools)"
if [ -n "$missing" ]; then
  what="apt-get install $missing"
  if ! may_install; then
    echo "setup: elocap needs $missing ($WHY): run '$what' as root, then run this again" >&2
    exit 1
  fi
  echo "setup: installing $missing with apt-get" >&2
  # shellcheck disable=SC2086  # $SUDO and $missing are word lists
  if ! $SUDO apt-get update -qq ||
    ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; then
    echo "setup: apt-get could not install $missing: run '$what' as root" >&2
    exit 1
  fi
  still="$(missing_tools)"
  if [ -n "$still" ]; then
    echo "setup: $still still not found on PATH nor in $TOOL_DIRS after apt-get" >&2
    exit 1
  fi
fi
if [ "${ELOCAP_SETUP_TOOLS_ONLY:-0}" = 1 ]; then
  exit 0
fi

# The Python environment: installed once per version of pyproject.toml (a stamp in .venv)
# pip's output goes to .venv/setup.log, shown only when it fails.
stamp=".venv/.elocap-setup"
# (and of the set of top-level packages: an editable install maps them when it is made)
want="$(python3 -c 'import glob, hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read() + " ".join(sorted(glob.glob("*/__init__.py"))).encode()).hexdigest())')"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing elocap and its Python packages into .venv (log: .venv/setup.log)" >&2
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
  .venv/bin/python -m pip install -q -e ".[dev]"; } >.venv/setup.log 2>&1; then
  tail -n 20 .venv/setup.log >&2
  echo "setup: pip could not install elocap (the whole log: .venv/setup.log)" >&2
  exit 1
fi
echo "$want" >"$stamp"
