#!/usr/bin/env bash
# Session 17's kernel figures: this build (the installed one) against BASE (a checkout built in place),
# in alternation.  bash results/bench-epyc-avx2-2026-12-01-s17/run_ab.sh /tmp/kb/base > OUT.txt
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd); BASE=$1; S15=$D/../bench-epyc-avx2-2026-12-01-s15
echo "# bash $0 $BASE   ($(date -u), this build: $(git -C "$D" rev-parse --short HEAD), base: $BASE)"
cd /tmp
echo "## conv2's fused passes, min of 40 (this, then base)"
for i in 1 2 3 4 5 6 7 8; do python "$S15/conv2_parts.py"; python "$S15/conv2_parts.py" "$BASE"; done
echo "## conv1's fused backward, min of 100 (this, then base)"
for i in 1 2 3 4; do python "$S15/conv1_bwd.py"; python "$S15/conv1_bwd.py" "$BASE"; done
echo "## relu_backward, 256 x 120 (this, then base)"
for i in 1 2; do python "$D/relu_bwd.py"; python "$D/relu_bwd.py" "$BASE"; done
