#!/usr/bin/env bash
# Session 18's figures for one build (the installed one, commit $(git rev-parse --short HEAD)) against
# BASE (255d67e, session 17's last commit, built in place), then bench step/train/scaling.
#   bash results/bench-epyc-avx2-2026-12-01-s18/run.sh /tmp/kb/b255 TAG
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd); BASE=$1; TAG=$2
cd "$D/../.."
export HPCLARS_DATA=${HPCLARS_DATA:-$(cd .. && pwd)/shared/data/mnist}
{
  echo "# python jobs/ab_builds.py $BASE --what step --rounds 60 (twice), --what eval --rounds 30   ($(date -u))"
  python jobs/ab_builds.py "$BASE" --what step --rounds 60
  python jobs/ab_builds.py "$BASE" --what step --rounds 60
  python jobs/ab_builds.py "$BASE" --what eval --rounds 30
  echo "# conv2's backward with and without dx, this build then base, 4 pairs: python $D/conv2_bwd_dx.py [BASE]"
  for i in 1 2 3 4; do (cd /tmp && python "$D/conv2_bwd_dx.py" "" && python "$D/conv2_bwd_dx.py" "$BASE"); done
} > "$D/ab_$TAG.txt" 2>&1
run() { local out=$1; shift; { echo "# hpclars bench $*   ($(date -u))"; hpclars bench "$@"; } > "$D/$out" 2>&1; }
run "step_$TAG.txt" step --batch 256 --repeats 21
run "train_$TAG.txt" train --batch-sizes 64,256,1024 --repeats 9
run "scaling_$TAG.txt" scaling --ranks 1,2 --batch-per-rank 256 --repeats 7
echo "done $(date -u)"
