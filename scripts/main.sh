#!/usr/bin/env bash
# The README's main job: the embedded default study (jobs/studies/tiny.toml), offline, on an
# embedded local Ray cluster: a synthetic Stockfish ladder corpus -> Elo-capped shards -> tiny
# supervised sweep -> arena -> self-play from the cap and from scratch -> arena -> ratings ->
# fits -> report in out/study-tiny/report/index.html. Run again, it skips every finished stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WORKDIR="${1:-out/study-tiny}"
.venv/bin/elocap study run jobs/studies/tiny.toml --workdir "$WORKDIR"
