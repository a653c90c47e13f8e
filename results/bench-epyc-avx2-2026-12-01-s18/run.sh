#!/usr/bin/env bash
# Session 18's figures: the installed build (this checkout, its commit in each file) against BASE (a
# checkout built in place: 255d67e, session 17's last commit), in alternation, then hpclars bench
# step/train/scaling twice each.  From the repository root:
#   bash results/bench-epyc-avx2-2026-12-01-s18/run.sh /tmp/kb/b255 TAG
# (ab_8442401_run0.txt and the *_run0.txt files came from this script's first version: the two
# ab_builds step runs and one eval run, conv2_bwd_dx.py's 4 pairs, then one bench of each kind.)
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd); BASE=$1; TAG=$2; S15=$D/../bench-epyc-avx2-2026-12-01-s15
cd "$D/../.."
export HPCLARS_DATA=${HPCLARS_DATA:-$(cd .. && pwd)/shared/data/mnist}
{
  echo "# bash $0 $BASE $TAG   ($(date -u), this build: $(git rev-parse --short HEAD), base: $BASE)"
  echo "## python jobs/ab_builds.py $BASE --what step --rounds 60 (twice), --what eval --rounds 40 (twice)"
  python jobs/ab_builds.py "$BASE" --what step --rounds 60
  python jobs/ab_builds.py "$BASE" --what step --rounds 60
  python jobs/ab_builds.py "$BASE" --what eval --rounds 40
  python jobs/ab_builds.py "$BASE" --what eval --rounds 40
  cd /tmp
  echo "## conv2's backward with and without dx, this build then base, 4 pairs: $D/conv2_bwd_dx.py [BASE]"
  for i in 1 2 3 4; do python "$D/conv2_bwd_dx.py" ""; python "$D/conv2_bwd_dx.py" "$BASE"; done
  echo "## conv1's backward (no dx), min of 100, this then base, 4 pairs: $S15/conv1_bwd.py [BASE]"
  for i in 1 2 3 4; do python "$S15/conv1_bwd.py"; python "$S15/conv1_bwd.py" "$BASE"; done
  echo "## conv2's fused forward, min of 100, this then base, 4 pairs: $D/conv2_fwd.py [BASE] 100"
  for i in 1 2 3 4; do python "$D/conv2_fwd.py" "" 100; python "$D/conv2_fwd.py" "$BASE" 100; done
  echo "## conv1's fused forward, min of 200, this then base, 4 pairs: $D/conv1_fwd.py [BASE] 200"
  for i in 1 2 3 4; do python "$D/conv1_fwd.py" "" 200; python "$D/conv1_fwd.py" "$BASE" 200; done
  echo "## a training step on real MNIST batches, this then base, 2 pairs: $D/real_step.py [BASE]"
  for i in 1 2; do python "$D/real_step.py"; python "$D/real_step.py" "$BASE"; done
  cd - > /dev/null
} > "$D/ab_$TAG.txt" 2>&1
run() { local out=$1; shift; { echo "# hpclars bench $*   ($(date -u))"; hpclars bench "$@"; } > "$D/$out" 2>&1; }
for k in "" _run2; do
  run "step_$TAG$k.txt" step --batch 256 --repeats 21
  run "train_$TAG$k.txt" train --batch-sizes 64,256,1024 --repeats 9
  run "scaling_$TAG$k.txt" scaling --ranks 1,2 --batch-per-rank 256 --repeats 7
done
echo "done $(date -u)"
