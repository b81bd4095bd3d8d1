#!/usr/bin/env bash
# The README's main job: until the study command exists, the data build on the real Lichess
# files in ../shared/data (or $ELOCAP_DATA), Elo cap 1500, on an embedded local Ray cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA="${ELOCAP_DATA:-$(cd .. && pwd)/shared/data}"
OUT="${1:-out/data-cap1500}"
.venv/bin/elocap data build "$DATA/lichess" --cap 1500 -o "$OUT"
.venv/bin/elocap data stats "$OUT"
