#!/usr/bin/env bash
# The quick start: set up .venv, build the tiny model tree (cached), run the live search on CPU through Ray.
# Extra arguments go to `raygems demo` (e.g. `bash scripts/demo.sh --out runs/my-demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/raygems demo "$@"
