#!/usr/bin/env bash
# Session 15's kernel figures: this build (the installed one) against BASE (a checkout built in place),
# in alternation.  bash results/bench-epyc-avx2-2026-12-01-s15/run_ab.sh /tmp/kb/base > OUT.txt
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd); BASE=$1
echo "# bash $0 $BASE   ($(date -u), this build: $(git -C "$D" rev-parse --short HEAD), base: $(cat "$BASE/COMMIT" 2>/dev/null || echo "$BASE"))"
cd /tmp
echo "## conv1's fused forward, min of 100 (float32, uint8)"
for i in 1 2 3 4 5; do python "$D/../bench-xeon-2026-12-01/conv1_fwd_ab.py" "" --min; python "$D/../bench-xeon-2026-12-01/conv1_fwd_ab.py" "$BASE" --min; done
echo "## conv1's fused backward, min of 100"
for i in 1 2 3 4; do python "$D/conv1_bwd.py"; python "$D/conv1_bwd.py" "$BASE"; done
echo "## conv2's fused passes, min of 40 (new, then base)"
for i in 1 2 3; do python "$D/conv2_parts.py"; python "$D/conv2_parts.py" "$BASE"; done
echo "## conv1's fused forward by work's offset (byte offset mod 64, ms; new, then base)"
python "$D/align.py" | tr '\n' ' '; echo; python "$D/align.py" "$BASE" | tr '\n' ' '; echo
