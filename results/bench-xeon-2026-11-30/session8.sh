#!/bin/bash
# Session 8's measurements (BENCHMARKS.md, "Session 8"), in this order, with nothing else of ours
# running:  bash results/bench-xeon-2026-11-30/session8.sh BASE [OUT_DIR]   (default: pass5/)
# BASE: a checkout of 6a982b2 (the last commit of session 7) built in place:
#   git worktree add /tmp/base 6a982b2 && (cd /tmp/base && python setup.py -q build_ext --inplace)
# pass5/ is its run at b730864 (an earlier run at a3be8fd went to the same directory and was
# overwritten; BENCHMARKS.md quotes its 2-rank figure as such).  pass4/ holds an earlier run of
# this script's probe and scaling lines alone, at 6a982b2 itself, at the start of the session.
# The machine probes bracket the 2-rank runs, so a reader sees how busy the host was.
set -euo pipefail
BASE=${1:?usage: session8.sh BASE [OUT_DIR]}
D=${2:-$(dirname "$0")/pass5}
mkdir -p "$D"
lscpu > "$D/lscpu.txt"
for what in "--what step" "--what step --batch 64" "--what eval"; do
    name=$(echo "$what" | tr -d '-' | tr ' ' '-')
    python jobs/ab_builds.py "$BASE" $what --rounds 40 > "$D/ab-6a982b2-$name.txt" 2>&1
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
# Run after the rest, at the same commit (not interleaved with each other):
for c in 64 128 256; do
    hpclars bench train --batch-sizes 256,1024 --chunk-size $c --repeats 7 --no-torch > "$D/train-chunk$c.txt" 2>&1
done
