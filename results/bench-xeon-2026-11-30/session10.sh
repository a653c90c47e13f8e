#!/bin/bash
# Session 10's first measurement (BENCHMARKS.md, "Session 10"): the 2-rank weak scaling at 256 and
# 64 images per rank, bracketed by the machine probes, and one core against sgemm, at 533a96e
# (session 9's last commit, unchanged), started when `hpclars bench step` showed a quiet host
# (sgemm 131.9 GFLOP/s).  Nothing else of ours ran meanwhile.
#   bash results/bench-xeon-2026-11-30/session10.sh [OUT_DIR]   (default: pass7/)
set -euo pipefail
D=${1:-$(dirname "$0")/pass7}
mkdir -p "$D"
lscpu > "$D/lscpu.txt"
git rev-parse HEAD > "$D/commit.txt"
hpclars bench machine > "$D/machine-n1-before.txt" 2>&1
mpiexec -n 2 hpclars bench machine > "$D/machine-n2-before.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 256 --warmup 5 --steps 60 --repeats 9 --no-torch > "$D/scaling-repeats.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 64 --warmup 5 --steps 60 --repeats 9 --no-torch > "$D/scaling-repeats-b64.txt" 2>&1
mpiexec -n 2 hpclars bench machine > "$D/machine-n2-after.txt" 2>&1
hpclars bench machine > "$D/machine-n1-after.txt" 2>&1
hpclars bench train --batch-sizes 256,1024,4096 --repeats 11 > "$D/train.txt" 2>&1
echo done > "$D/DONE"
