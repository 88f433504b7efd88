#!/usr/bin/env bash
# Build .whl/: the Python wheels the lent GPU machine lacks to run raygems' Ray model actors there.
#
# Why: the GPU machine (Python 3.12, torch, transformers, peft, pandas, pyarrow...) has no Ray and cannot
# reach any package registry; wheels travel with the working tree, 64 MiB in all. Ray 2.60's cp312 wheel is
# 75.6 MiB, so it is stripped (Java jars, C++ API, dashboard source maps) by ../shared/tools/strip_ray_wheel.py
# to ~43 MiB. The other wheels are Ray's needs that the GPU image lacks (docs/performance.md, ../shared/FIELD-NOTES.md).
#
# What it does: one `pip download` for the x86-64 / CPython 3.12 platform resolves Ray and those needs to a
# consistent set (pydantic pins its pydantic-core, for instance); only the wheels in NEEDED are kept in .whl/
# (Ray's stripped), and the script checks that .whl/ plus the rest of the working tree stays under 64 MiB.
# .whl/ is git-ignored, so it travels only when a `run` call names it in `carry`.
#
# Usage:   bash scripts/gpu_bundle.sh            (needs PyPI; about 1-2 minutes; re-running rebuilds .whl/)
# Env:     PYTHON (default python3), STRIP_RAY_WHEEL (default ../shared/tools/strip_ray_wheel.py).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
STRIP="${STRIP_RAY_WHEEL:-../shared/tools/strip_ray_wheel.py}"
RAY_VERSION="2.60.0"
BUNDLE=".whl"
LIMIT_MIB=64
# Ray's needs that the GPU image lacks (../shared/FIELD-NOTES.md, "Ray there"); tensorboardX and pydantic are for ray.tune.
NEEDED=(ray jsonschema jsonschema-specifications referencing rpds-py pydantic pydantic-core annotated-types
        typing-inspection typing-extensions tensorboardX)
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

[ -f "$STRIP" ] || { echo "error: $STRIP not found (set STRIP_RAY_WHEEL)" >&2; exit 1; }
normalise() { echo "$1" | tr '[:upper:]' '[:lower:]' | tr '_.' '--'; }

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
echo "resolving ray==$RAY_VERSION and its needs for CPython 3.12 x86-64 (pip download)..."
"$PYTHON" -m pip download -q "${PLATFORM[@]}" -d "$download" "ray==$RAY_VERSION" pydantic tensorboardX 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
for name in "${NEEDED[@]}"; do
    wanted=$(normalise "$name")
    found=""
    for wheel in "$download"/*.whl; do
        dist=$(basename "$wheel" | cut -d- -f1)
        if [ "$(normalise "$dist")" = "$wanted" ]; then
            [ -z "$found" ] || { echo "error: two wheels for $name: $found $wheel" >&2; exit 1; }
            found="$wheel"
        fi
    done
    [ -n "$found" ] || { echo "error: pip resolved no wheel for $name" >&2; exit 1; }
    if [ "$wanted" = "ray" ]; then
        original=$(stat -c %s "$found")
        "$PYTHON" "$STRIP" "$found" "$BUNDLE/$(basename "$found")"
        echo "ray wheel: $((original / 1048576)) MiB -> $(( $(stat -c %s "$BUNDLE/$(basename "$found")") / 1048576 )) MiB stripped"
    else
        cp "$found" "$BUNDLE/"
    fi
done

bundle_bytes=$(du -cb "$BUNDLE"/*.whl | tail -1 | cut -f1)
# What else travels: tracked and untracked-but-not-ignored files (files listed but gone are skipped).
tree_bytes=$(git ls-files -co --exclude-standard -z | "$PYTHON" -c "import os, sys
print(sum(os.path.getsize(p) for p in sys.stdin.read().split(chr(0)) if p and os.path.isfile(p)))")
total=$((bundle_bytes + tree_bytes))
echo
ls -l "$BUNDLE"
"$PYTHON" -c "import sys; b, t = (int(x) / 2**20 for x in sys.argv[1:3]); print(f'wheels {b:.1f} MiB + working tree {t:.1f} MiB = {b + t:.1f} MiB (limit {sys.argv[3]} MiB)')" \
    "$bundle_bytes" "$tree_bytes" "$LIMIT_MIB"
if [ "$total" -ge $((LIMIT_MIB * 1048576)) ]; then
    echo "error: over the $LIMIT_MIB MiB that a run call can carry" >&2
    exit 1
fi

cat <<'EOF'

Install on the GPU machine (first thing in every `run` command; carry=[".whl"]):
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit;

The `run` calls a session with a GPU makes (docs/performance.md, "Commands for a session with a GPU"):
  run(carry=[".whl"], timeout_s=600, command=
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_live.py --sizes 0.5b --out $OUT 2>&1 | tee $OUT/log.txt")
  then the same with: --sizes 3b,7b --batches 1,256 --no-rounds --load-checkpoints 2
EOF
