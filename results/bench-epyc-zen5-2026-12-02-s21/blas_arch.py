"""Which kernels NumPy's and SciPy's OpenBLAS pick on this CPU, and SciPy's sgemm 1024^3 with the
pick and with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell forced, each in a fresh process:
single thread, median and best of 9 calls after 2 untimed.
python results/bench-epyc-zen5-2026-12-02-s21/blas_arch.py > blas_arch.txt"""
import os
import subprocess
import sys

CHILD = r'''
import statistics, time
import numpy as np, scipy.linalg.blas as blas
from threadpoolctl import threadpool_info, threadpool_limits
threadpool_limits(1)
for i in threadpool_info():
    if i.get("user_api") == "blas":
        print("  ", i["internal_api"], i["version"], i["architecture"], i["filepath"].rsplit("/", 1)[-1])
a = np.asfortranarray(np.random.default_rng(0).random((1024, 1024), dtype=np.float32))
for _ in range(2):
    blas.sgemm(1.0, a, a)
t = []
for _ in range(9):
    t0 = time.perf_counter(); blas.sgemm(1.0, a, a); t.append(time.perf_counter() - t0)
print("   scipy sgemm 1024^3: median %.1f, best %.1f GFLOP/s" % (2 * 1024**3 / statistics.median(t) / 1e9, 2 * 1024**3 / min(t) / 1e9))
'''
for core in (None, "SkylakeX", "Haswell"):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if core:
        env["OPENBLAS_CORETYPE"] = core
    print(f"# OPENBLAS_CORETYPE={core or '(unset)'}", flush=True)
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True)
