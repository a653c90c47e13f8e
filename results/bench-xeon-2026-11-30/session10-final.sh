#!/bin/bash
# Session 10's closing measurement (BENCHMARKS.md, "Session 10"), in this order, nothing else of
# ours running:  bash results/bench-xeon-2026-11-30/session10-final.sh BASE [OUT_DIR]  (default: pass8/)
# BASE: a checkout of 33e79e8 (the session's first commit: session 9's code) built in place:
#   git worktree add /tmp/base 33e79e8 && (cd /tmp/base && python setup.py -q build_ext --inplace)
# The alternations first (old and new builds in turn, so a drifting machine slows both alike),
# then the same lines as session10.sh (pass7/, at 533a96e) for the new code.
set -euo pipefail
BASE=${1:?usage: session10-final.sh BASE [OUT_DIR]}
D=${2:-$(dirname "$0")/pass8}
mkdir -p "$D"
lscpu > "$D/lscpu.txt"
git rev-parse HEAD > "$D/commit.txt"
for what in "--what step" "--what step --batch 64" "--what eval"; do
    name=$(echo "$what" | tr -d '-' | tr ' ' '-')
    python jobs/ab_builds.py "$BASE" $what --rounds 60 > "$D/ab-33e79e8-$name.txt" 2>&1
done
hpclars bench step --batch 256 --repeats 21 > "$D/step-b256.txt" 2>&1
bash "$(dirname "$0")/session10.sh" "$D"
echo done > "$D/DONE"
