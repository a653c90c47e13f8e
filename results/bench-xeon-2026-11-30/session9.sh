#!/bin/bash
# Session 9's measurements (BENCHMARKS.md, "Session 9"), in this order, with nothing else of ours
# running:  bash results/bench-xeon-2026-11-30/session9.sh BASE [OUT_DIR]   (default: pass6/)
# BASE: a checkout of c546190 (the last commit of session 8) built in place:
#   git worktree add /tmp/base c546190 && (cd /tmp/base && python setup.py -q build_ext --inplace)
# The same lines as session8.sh, with 60 rounds per alternation (the host was busier) and the
# optimizer's update alone added.  The machine probes bracket the 2-rank runs.
set -euo pipefail
BASE=${1:?usage: session9.sh BASE [OUT_DIR]}
D=${2:-$(dirname "$0")/pass6}
mkdir -p "$D"
lscpu > "$D/lscpu.txt"
git rev-parse HEAD > "$D/commit.txt"
for what in "--what step" "--what step --batch 64" "--what eval" "--what optimizer" "--what optimizer --optimizer lars"; do
    name=$(echo "$what" | tr -d '-' | tr ' ' '-')
    python jobs/ab_builds.py "$BASE" $what --rounds 60 > "$D/ab-c546190-$name.txt" 2>&1
done
hpclars bench step --batch 256 --repeats 21 > "$D/step-b256.txt" 2>&1
hpclars bench step --batch 64 --repeats 21 > "$D/step-b64.txt" 2>&1
hpclars bench train --batch-sizes 64,256,1024,4096 --repeats 11 > "$D/train.txt" 2>&1
hpclars bench kernels --repeats 11 > "$D/kernels.txt" 2>&1
hpclars bench machine > "$D/machine-n1-before.txt" 2>&1
mpiexec -n 2 hpclars bench machine > "$D/machine-n2-before.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 256 --warmup 5 --steps 60 --repeats 9 --no-torch > "$D/scaling-repeats.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 64 --warmup 5 --steps 60 --repeats 9 --no-torch > "$D/scaling-repeats-b64.txt" 2>&1
mpiexec -n 2 hpclars bench machine > "$D/machine-n2-after.txt" 2>&1
hpclars bench machine > "$D/machine-n1-after.txt" 2>&1
echo done > "$D/DONE"
