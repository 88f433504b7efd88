#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install raygems into it.
#
# torch is installed first, pinned to 2.13.0: on a CPU machine pip takes the local CPU build, and the
# project's range (torch>=2.6,<2.15) is then already satisfied, so no multi-GB CUDA build is downloaded.
# Every other package is installed at the version in constraints/main.txt: the versions the test suite last
# passed with (pyproject.toml keeps open ranges for library users). Refresh it with `bash scripts/lock.sh`.
# Idempotent: a second run only checks (it reinstalls when pyproject.toml or the lock file changed).
# Env: PYTHON (default python3), VENV (default .venv), RAYGEMS_CONSTRAINTS (default constraints/main.txt;
# empty: no lock, the newest versions the ranges allow, which is what scripts/lock.sh records).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
CONSTRAINTS="${RAYGEMS_CONSTRAINTS-constraints/main.txt}"
locked=()
[ -n "$CONSTRAINTS" ] && locked=(-c "$CONSTRAINTS")
stamp="$VENV/.raygems-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$CONSTRAINTS" ] && [ "$CONSTRAINTS" -nt "$stamp" ]; }; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$VENV/bin/python" -m pip install -q "${locked[@]}" -e ".[dev]"
    touch "$stamp"
fi
# The MBPP sandbox isolates programs with bubblewrap where it can be installed (Debian/Ubuntu, as root).
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
        || echo "setup: bubblewrap could not be installed; the sandbox falls back to unshare + rlimits"
fi
echo "setup: $("$VENV/bin/python" -c 'import raygems, torch, ray; print(f"raygems {raygems.__version__}, torch {torch.__version__}, ray {ray.__version__}")')"
