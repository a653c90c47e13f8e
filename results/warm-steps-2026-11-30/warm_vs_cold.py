"""Per repeat: sgemm (after a step: cold), sgemm again (warm), step (after sgemm: cold), step (warm), step (warm)."""
import time, numpy as np, sys
from hpclars.bench import OneRankStep, sgemm_call, TRAIN_FLOPS
sg, flops = sgemm_call()
s = OneRankStep(int(sys.argv[2]), 1, 256, "sgd")
def step(): s.forward_backward(); s.update()
def tm(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0
res = {k: [] for k in ("sgemm_cold", "sgemm_warm", "step_cold", "step_warm", "step_warm2")}
for r in range(int(sys.argv[1]) + 2):
    for k, fn in zip(res, (sg, sg, step, step, step)):
        res[k].append(tm(fn))
res = {k: np.array(v[2:]) for k, v in res.items()}
for k, v in res.items():
    print(f"{k:>11} median {np.median(v)*1e3:7.3f} ms  min {v.min()*1e3:7.3f}")
b = int(sys.argv[2])
for st in ("step_cold", "step_warm"):
    for sgk in ("sgemm_cold", "sgemm_warm"):
        pct = 100 * (b * TRAIN_FLOPS / res[st]) / (flops / res[sgk])
        print(f"{st} / {sgk}: median of per-repeat % sgemm {np.median(pct):.1f}%  (min-max {pct.min():.0f}-{pct.max():.0f})")
