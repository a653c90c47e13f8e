#!/bin/bash
# Session 10, after evaluation took uint8 pixels unconverted (BENCHMARKS.md, "Session 10"):
#   bash results/bench-xeon-2026-11-30/session10-eval.sh BASE [OUT_DIR]   (default: pass9/)
# BASE: a checkout of 33e79e8 (session 9's code) built in place, as for session10-final.sh.
set -euo pipefail
BASE=${1:?usage: session10-eval.sh BASE [OUT_DIR]}
D=${2:-$(dirname "$0")/pass9}
mkdir -p "$D"
git rev-parse HEAD > "$D/commit.txt"
python jobs/ab_builds.py "$BASE" --what eval --rounds 60 > "$D/ab-33e79e8-what-eval.txt" 2>&1
hpclars bench train --batch-sizes 256,1024,4096 --repeats 11 > "$D/train.txt" 2>&1
echo done > "$D/DONE"
