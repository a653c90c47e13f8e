"""conv1's and conv2's fused forward pass with pooling positions (training) and without (idx None:
evaluation; conv2 by Winograd F(2x2, 5x5) where kernels.CONV_WINOGRAD), alternating, 100 rounds,
batch 256, 1 thread, he-normal weights (seed 0) and bench's random batch; min and median ms.

    python results/bench-epyc-zen5-2026-12-02-s22/conv_fwd_ab.py
"""
import time, statistics, numpy as np
from hpclars import kernels as k
from hpclars.model import LeNet, LAYOUT, init_params
from hpclars.data import PIXEL_SCALE
from hpclars.bench import _batch
flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
p = LAYOUT.views(flat)
n = 256
images, labels = _batch(n)
m = LeNet(k, n, 1)
x = images.reshape(n, 1, 28, 28)
f = {
 "conv1 idx": lambda: k.conv2d_pool_relu_forward(x, p["conv1.w"], p["conv1.b"], m.p1, m.i1, m.work, 1, PIXEL_SCALE),
 "conv1 none": lambda: k.conv2d_pool_relu_forward(x, p["conv1.w"], p["conv1.b"], m.p1, None, m.work, 1, PIXEL_SCALE),
 "conv2 idx": lambda: k.conv2d_pool_relu_forward(m.p1, p["conv2.w"], p["conv2.b"], m.p2, m.i2, m.work, 1),
 "conv2 none": lambda: k.conv2d_pool_relu_forward(m.p1, p["conv2.w"], p["conv2.b"], m.p2, None, m.work, 1),
}
res = {a: [] for a in f}
for r in range(100):
    for a, fn in f.items():
        fn(); t0 = time.perf_counter(); fn(); res[a].append(time.perf_counter() - t0)
for a in f:
    print(f"{a:>11} min {min(res[a])*1e3:.4f} med {statistics.median(res[a])*1e3:.4f}")
