#!/bin/bash
# Session 7's measurements (BENCHMARKS.md, "Session 7: the optimizer in one pass"), in this
# order, with nothing else of ours running:
#   bash results/bench-xeon-2026-11-30/session7.sh BASE [OUT_DIR]
# BASE: a checkout of 359817a (the kernels before this session) built in place:
#   git worktree add /tmp/base 359817a && (cd /tmp/base && python setup.py -q build_ext --inplace)
# OUT_DIR defaults to pass3/ beside this script.  In pass3/ the two `bench step` files and the
# 80-round A/B were rerun after the script, at bf82c36 (bench step then timed one sgemm before each
# step instead of five before all steps; kernels and optimizer unchanged since 0e5ed56); the other
# files carry d4d2a54-dirty, that same bench.py change not yet committed.
set -euo pipefail
BASE=${1:?usage: session7.sh BASE [OUT_DIR]}
D=${2:-$(dirname "$0")/pass3}
mkdir -p "$D"
lscpu > "$D/lscpu.txt"
hpclars bench step --batch 256 --repeats 21 > "$D/step-b256.txt" 2>&1
hpclars bench step --batch 64 --repeats 21 > "$D/step-b64.txt" 2>&1
hpclars bench train --batch-sizes 64,256,1024,4096 --repeats 11 > "$D/train.txt" 2>&1
for opt in lars lamb; do
    hpclars bench train --batch-sizes 64,256 --repeats 11 --optimizer $opt > "$D/train-$opt.txt" 2>&1
done
for what in "--what step" "--what step --batch 64" "--what eval" "--what optimizer" "--what optimizer --optimizer lars" "--what optimizer --optimizer lamb"; do
    name=$(echo "$what" | tr -d '-' | tr ' ' '-')
    python jobs/ab_builds.py "$BASE" $what > "$D/ab-359817a-$name.txt" 2>&1
done
# Rerun after the rest of the script, on a less busy stretch (the 40-round run above is kept):
python jobs/ab_builds.py "$BASE" --what step --rounds 80 > "$D/ab-359817a-what-step-rounds80.txt" 2>&1
hpclars bench kernels --repeats 11 > "$D/kernels.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 256 --warmup 5 --steps 60 --repeats 7 --no-torch > "$D/scaling-repeats.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 64 --warmup 5 --steps 60 --repeats 7 --no-torch > "$D/scaling-repeats-b64.txt" 2>&1
mpiexec -n 2 hpclars bench machine > "$D/machine-n2.txt" 2>&1
hpclars bench machine > "$D/machine-n1.txt" 2>&1
echo done > "$D/DONE"
