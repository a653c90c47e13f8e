#!/bin/bash
# Session 22's measurements, in one go (AMD EPYC Zen 5 VM, 2 vCPUs; nothing else running).
# Needs: fb9377a built in place at /tmp/kb/base (native) and /tmp/kb/avx2base (HPCLARS_MARCH=haswell),
# this commit's tree built with HPCLARS_MARCH=haswell at /tmp/kb/avx2new; the native build installed.
#   git worktree add /tmp/kb/base fb9377a && (cd /tmp/kb/base && python setup.py -q build_ext --inplace)
set -x
D=results/bench-epyc-zen5-2026-12-02-s22
N="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
lscpu > $D/lscpu.txt
python $D/eval_agreement.py > $D/eval_agreement.txt 2>&1
$N python $D/conv_fwd_ab.py > $D/conv_fwd.txt 2>&1
$N python jobs/ab_builds.py /tmp/kb/base --what eval --rounds 150 > $D/ab_eval.txt 2>&1
$N hpclars bench train --batch-sizes 64,256,1024 --repeats 9 > $D/train_native.txt 2>&1
$N hpclars bench train --batch-sizes 64,256,1024 --repeats 9 > $D/train_native_run2.txt 2>&1
(cd /tmp/kb/avx2new && PYTHONPATH=/tmp/kb/avx2new $N python jobs/ab_builds.py /tmp/kb/avx2base --what eval --rounds 100) > $D/ab_eval_avx2build.txt 2>&1
(cd /tmp/kb/avx2new && PYTHONPATH=/tmp/kb/avx2new $N python -m hpclars bench train --batch-sizes 256 --repeats 9) > $D/train_avx2build.txt 2>&1
(cd /tmp/kb/avx2base && PYTHONPATH=/tmp/kb/avx2base $N python -m hpclars bench train --batch-sizes 256 --repeats 9) > $D/train_avx2build_fb9377a.txt 2>&1
(cd /work/main && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python jobs/ab_builds.py /tmp/kb/base --what step --rounds 100 > $D/ab_step.txt 2>&1)
python $D/winograd_derivation.py > $D/winograd_derivation.txt
