#!/bin/bash
# Session 22's measurements at 768fe23 (conv2's forward by Winograd in training and evaluation), in
# one go, on the Zen 5 VM with nothing else running.  The files of the first step (Winograd in
# evaluation only, f552d1c) are in evalonly_f552d1c/, with the run.sh that made them.
# Needs, built in place: fb9377a (session 21's last commit) at /tmp/kb/base (native) and at
# /tmp/kb/avx2base (HPCLARS_MARCH=haswell); this commit at /tmp/kb/avx2new (HPCLARS_MARCH=haswell);
# this commit installed (native).  For example:
#   git worktree add /tmp/kb/base fb9377a && (cd /tmp/kb/base && python setup.py -q build_ext --inplace)
#   git worktree add /tmp/kb/avx2new 768fe23 && (cd /tmp/kb/avx2new && HPCLARS_MARCH=haswell python setup.py -q build_ext --inplace)
set -x
D=results/bench-epyc-zen5-2026-12-02-s22
N="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
lscpu > $D/lscpu.txt
python $D/winograd_derivation.py > $D/winograd_derivation.txt
python $D/eval_agreement.py > $D/eval_agreement.txt 2>&1
$N python $D/conv_fwd_ab.py > $D/conv_fwd.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what step --rounds 150 > $D/ab_step.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what eval --rounds 150 > $D/ab_eval.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what step --rounds 150 > $D/ab_step_run2.txt 2>&1
$N hpclars bench train --batch-sizes 64,256,1024 --repeats 9 > $D/train_native.txt 2>&1
$N hpclars bench train --batch-sizes 64,256,1024 --repeats 9 > $D/train_native_run2.txt 2>&1
$N hpclars bench step --repeats 41 > $D/step_native.txt 2>&1
(cd /tmp/kb/avx2new && PYTHONPATH=/tmp/kb/avx2new $N python jobs/ab_builds.py /tmp/kb/avx2base --what step --rounds 100) > $D/ab_step_avx2build.txt 2>&1
(cd /tmp/kb/avx2new && PYTHONPATH=/tmp/kb/avx2new $N python jobs/ab_builds.py /tmp/kb/avx2base --what eval --rounds 100) > $D/ab_eval_avx2build.txt 2>&1
(cd /tmp/kb/avx2new && PYTHONPATH=/tmp/kb/avx2new $N python -m hpclars bench train --batch-sizes 256 --repeats 9) > $D/train_avx2build.txt 2>&1
(cd /tmp/kb/avx2base && PYTHONPATH=/tmp/kb/avx2base $N python -m hpclars bench train --batch-sizes 256 --repeats 9) > $D/train_avx2build_fb9377a.txt 2>&1
# Rerun in a quieter spell, after the above (f552d1c built in place at /tmp/kb/f552):
$N python jobs/ab_builds.py /tmp/kb/f552 --what eval --rounds 100 > $D/ab_eval_vs_f552d1c.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what eval --rounds 150 > $D/ab_eval_run2.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what step --rounds 150 > $D/ab_step_run3.txt 2>&1
$N hpclars bench train --batch-sizes 64,256,1024 --repeats 9 > $D/train_native_run3.txt 2>&1
# After reverting the training step's Winograd (b058146): the rank-count agreement and the final figures.
(cd /tmp/kb/base && PYTHONPATH=/tmp/kb/base bash /work/main/$D/nranks_agreement.sh base) > $D/nranks_fb9377a.txt 2>&1
bash $D/nranks_agreement.sh final > $D/nranks_b058146.txt 2>&1
$N hpclars bench train --batch-sizes 64,256,1024 --repeats 9 > $D/train_final.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what eval --rounds 150 > $D/ab_eval_final.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what step --rounds 100 > $D/ab_step_final.txt 2>&1
python $D/eval_agreement.py > $D/eval_agreement.txt 2>&1  # at b058146 (eval_agreement_768fe23.txt: the same script, labelled winograd/direct, at 768fe23)
hpclars train --preset paper --optimizer sgd --batch-size 256 --epochs 2 --out /tmp/s22/evalcost.h5 --overwrite --no-progress  # -> eval_cost.txt (read back with read_log)
