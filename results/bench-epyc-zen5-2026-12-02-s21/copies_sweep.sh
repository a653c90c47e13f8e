#!/usr/bin/env bash
# How many rotating dx copies conv2's channel-last dx needs on the AVX-512 build (HPC_DX_COPIES in
# kernels/conv.pyx): a worktree of COMMIT built in place with 1, 4 and 8, each timed against BASE
# (a checkout built in place, e.g. 9dd98fd's dense dx) in turn, conv2_bwd_dx.py's min of 200 calls.
#   bash results/bench-epyc-zen5-2026-12-02-s21/copies_sweep.sh BASE COMMIT > copies_sweep.txt
set -euo pipefail
BASE=$1 COMMIT=$2 W=/tmp/kb/copies
S=$(cd "$(dirname "$0")/../bench-epyc-avx2-2026-12-01-s18" && pwd)/conv2_bwd_dx.py
git worktree add -f -q --detach "$W" "$COMMIT" 2>/dev/null || git -C "$W" checkout -q --detach "$COMMIT"
echo "# $(date -u); base $BASE ($(git -C "$BASE" rev-parse --short HEAD)); this: $COMMIT with HPC_DX_COPIES = N; $(grep -m1 'model name' /proc/cpuinfo)"
for n in 1 4 8; do
    git -C "$W" checkout -q -- kernels/conv.pyx
    sed -i "s/^    #define HPC_DX_COPIES [0-9]*$/    #define HPC_DX_COPIES $n/" "$W/kernels/conv.pyx"
    (cd "$W" && python setup.py -q build_ext --inplace > /dev/null 2>&1)
    echo "## HPC_DX_COPIES $n"
    for i in 1 2 3; do (cd /tmp && python "$S" "$BASE" 200 && python "$S" "$W" 200); done
done
git -C "$W" checkout -q -- kernels/conv.pyx
