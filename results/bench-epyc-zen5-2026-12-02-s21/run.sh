#!/usr/bin/env bash
# Session 21's measurements on the 2-vCPU AMD EPYC Zen 5 (AVX-512), one after another, nothing
# else running: bash results/bench-epyc-zen5-2026-12-02-s21/run.sh [SUFFIX]
# (from the checkout, its venv active, HPCLARS_DATA set; PyTorch 2.13.0 installed for the baselines)
set -euo pipefail
D=$(dirname "$0"); S=${1:-}
run() { local out=$1; shift; { echo "# hpclars $*   ($(date -u))"; lscpu | grep -E "Model name|^CPU\(s\)|L2"; grep -m2 -E "cpu family|^model\s" /proc/cpuinfo; hpclars "$@"; } > "$D/$out$S.txt" 2>&1; }
run machine bench machine
run train bench train --batch-sizes 64,256,1024 --repeats 9
run step bench step --repeats 41
run scaling bench scaling --ranks 1,2 --batch-per-rank 256 --repeats 7
