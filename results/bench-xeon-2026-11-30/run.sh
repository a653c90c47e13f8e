#!/bin/bash
# The measurements of BENCHMARKS.md's "After the kernel work" section, in this order, with
# nothing else of ours running:  bash results/bench-xeon-2026-11-30/run.sh [OUT_DIR]
# (OUT_DIR defaults to this directory; the second pass went to pass2/).
set -euo pipefail
D=${1:-$(dirname "$0")}
mkdir -p "$D"
lscpu > "$D/lscpu.txt"
hpclars bench train --batch-sizes 64,256,1024,4096 --repeats 11 > "$D/train.txt" 2>&1
hpclars bench kernels --repeats 11 > "$D/kernels.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 256 --warmup 5 --steps 60 --repeats 7 --no-torch > "$D/scaling-repeats.txt" 2>&1
hpclars bench scaling --ranks 1,2 --batch-per-rank 64 --warmup 5 --steps 60 --repeats 7 --no-torch > "$D/scaling-repeats-b64.txt" 2>&1
mpiexec -n 2 hpclars bench machine > "$D/machine-n2.txt" 2>&1
hpclars bench machine > "$D/machine-n1.txt" 2>&1
hpclars bench hybrid --cores 2 --batch-size 1024 --steps 60 --warmup 5 > "$D/hybrid.txt" 2>&1
echo done > "$D/DONE"
