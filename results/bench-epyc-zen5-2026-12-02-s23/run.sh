#!/bin/bash
# Session 23: --balance-every (hpclars.balance) on the 2-vCPU Zen 5 VM, with nothing else running.
# Two ranks bound to the two cores.  "hog": a busy Python loop pinned to core 1, sharing it with
# rank 1 (a stand-in for a slow or shared core); "quiet": no hog.  Each scenario alternates the
# equal split and --balance-every 10, three times, each a `bench scaling --ranks 1,2` of 3
# repeats (the 1-rank run is on core 0, which the hog leaves alone).
#   bash results/bench-epyc-zen5-2026-12-02-s23/run.sh
set -x
D=results/bench-epyc-zen5-2026-12-02-s23
N="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
lscpu > $D/lscpu.txt
S=(hpclars bench scaling --ranks 1,2 --batch-per-rank 256 --steps 40 --warmup 10 --repeats 3 --no-torch
   "--mpiexec-args=-bind-to core")
taskset -c 1 python -c "while True: pass" &
HOG=$!
sleep 1
for i in 1 2 3; do
    $N "${S[@]}" > $D/hog_equal_$i.txt 2>&1
    $N "${S[@]}" --balance-every 10 --keep-logs $D/hog_logs_$i > $D/hog_balanced_$i.txt 2>&1
done
kill $HOG
for i in 1 2 3; do
    $N "${S[@]}" > $D/quiet_equal_$i.txt 2>&1
    $N "${S[@]}" --balance-every 10 --keep-logs $D/quiet_logs_$i > $D/quiet_balanced_$i.txt 2>&1
done
# The splits the balanced runs took, from their logs (the logs themselves are not kept: 4 MB).
python $D/shares.py $D/hog_logs_* > $D/hog_shares.txt
python $D/shares.py $D/quiet_logs_* > $D/quiet_shares.txt
rm -rf $D/hog_logs_* $D/quiet_logs_*
