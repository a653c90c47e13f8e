#!/bin/bash
# Do 2 and 4 ranks train what 1 rank trains?  tests/test_mpi.py's check, printed: the paper preset,
# SGD and LARS, global batch 64, 20 steps of MNIST, on 1, 2 and 4 ranks (mpiexec); for each
# optimizer and rank count, the largest |difference| of any tensor from 1 rank's, over that
# tensor's largest |value|, and the tensor.  Run from the checkout whose hpclars to time (its
# python -m hpclars), with HPCLARS_DATA or the data at /work/shared/data/mnist.
#   bash results/bench-epyc-zen5-2026-12-02-s22/nranks_agreement.sh TAG [LOG_DIR]
T=${2:-/tmp/nranks_$1}; rm -rf $T; mkdir -p $T
for opt in sgd lars; do
  for r in 1 2 4; do
    mpiexec -n $r python -m hpclars train --out $T/${opt}_$r.h5 --data-dir ${HPCLARS_DATA:-/work/shared/data/mnist} --no-progress --preset paper --optimizer $opt --batch-size 64 --epochs 1 --max-steps 20 > /dev/null 2>&1 || echo fail $opt $r
  done
done
python - $T <<'PY'
import sys, numpy as np
from hpclars.log import read_log
T = sys.argv[1]
for opt in ("sgd", "lars"):
    one = read_log(f"{T}/{opt}_1.h5")
    for r in (2, 4):
        many = read_log(f"{T}/{opt}_{r}.h5")
        worst = max((float(np.max(np.abs(many.params[n] - one.params[n])) / np.max(np.abs(one.params[n]))), n) for n in one.tensor_names)
        print(opt, r, f"{worst[0]:.2e}", worst[1])
PY
