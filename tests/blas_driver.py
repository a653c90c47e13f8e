"""Run by test_train.py under mpiexec: a script that imports NumPy and SciPy's BLAS before
hpclars (so OpenBLAS has started its threads), then trains through ``hpclars.cli.main``.

Usage: mpiexec -n N python blas_driver.py REPORT_PREFIX train ARGS...
Writes REPORT_PREFIX.<rank>.json: the thread pools threadpoolctl saw before hpclars was
imported and during the first training step.
"""

import json
import sys

import numpy as np  # noqa: F401  (first, as a user's script would)
import scipy.linalg  # noqa: F401
from threadpoolctl import threadpool_info

BEFORE = threadpool_info()


def pools(info):
    return [{k: p[k] for k in ("user_api", "internal_api", "num_threads", "filepath")} for p in info]


def main():
    prefix, args = sys.argv[1], sys.argv[2:]
    from hpclars import cli, kernels
    from hpclars.comm import Comm

    seen = []
    real = kernels.softmax_xent

    def softmax_xent(logits, labels, dlogits, *a):
        if dlogits is not None and not seen:  # in the first training step
            seen.append(threadpool_info())
        return real(logits, labels, dlogits, *a)

    kernels.softmax_xent = softmax_xent
    status = cli.main(args)
    with open(f"{prefix}.{Comm().rank}.json", "w") as f:
        json.dump({"before": pools(BEFORE), "during": pools(seen[0]) if seen else None}, f)
    sys.exit(status)


if __name__ == "__main__":
    main()
