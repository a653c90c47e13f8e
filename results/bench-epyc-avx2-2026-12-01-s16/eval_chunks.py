"""The trainer's evaluation of 1024 random images at chunk sizes 32-1024 (1 thread), interleaved, median of 7:
python results/bench-epyc-avx2-2026-12-01-s16/eval_chunks.py"""
import os, time, numpy as np
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from hpclars.bench import hpclars_eval, hpclars_step
fs = {c: hpclars_eval(1024, 1, c) for c in (32, 64, 128, 256, 1024)}
res = {c: [] for c in fs}
for r in range(7):
    for c, f in fs.items():
        f(); t = time.perf_counter(); f(); res[c].append(time.perf_counter() - t)
for c in fs: print("eval chunk %4d: %.0f img/s (median of 7, batch 1024)" % (c, 1024 / np.median(res[c])))
