"""A training step on real MNIST batches (not bench's random one) and the share of conv1's and
conv2's pooling windows with a nonzero gradient, dout * (y > 0), the share of windows whose terms
the AVX2 build's pooled weight gradient and dx compute.  LeNet, the paper's SGD (lr 0.01, momentum
0.9, weight decay 1e-4), batch 256, 1 thread, one epoch (234 steps) at a constant lr; median and
min of forward_backward + update per step over steps 20-234.
python results/bench-epyc-avx2-2026-12-01-s18/real_step.py [BUILD]   (from /tmp; BUILD: a checkout
built in place, default the installed build; HPCLARS_DATA set)"""
import sys
import time

if len(sys.argv) > 1 and sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
import numpy as np  # noqa: E402

import hpclars  # noqa: E402
from hpclars import config, kernels  # noqa: E402
from hpclars.data import load_mnist  # noqa: E402
from hpclars.model import LAYOUT, LeNet, init_params  # noqa: E402
from hpclars.optim import make_optimizer  # noqa: E402

data = load_mnist(download=False)
x, y = data.train_images, data.train_labels
flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
grads = np.zeros_like(flat)
P, G = LAYOUT.views(flat), LAYOUT.views(grads)
model = LeNet(kernels, 256, 1)
opt = make_optimizer(config.build(optimizer="sgd", batch_size=256), LAYOUT)
order = np.random.default_rng(0).permutation(len(y))
times, s1, s2 = [], [], []
for step, lo in enumerate(range(0, len(y) - 255, 256)):
    b = np.sort(order[lo:lo + 256])
    xb, yb = x[b], y[b]
    t = time.perf_counter()
    grads[...] = 0
    model.forward_backward(P, G, xb, yb, 1.0 / 256)
    opt.step(flat, grads, 0.01)
    times.append(time.perf_counter() - t)
    s1.append(float(((model.dp1 * (model.p1 > 0)) != 0).mean()))
    s2.append(float(((model.dp2 * (model.p2 > 0)) != 0).mean()))
t = np.array(times[20:]) * 1e3
print(f"{hpclars.__file__.rsplit('/', 2)[0]}: step median {np.median(t):.2f} ms, min {t.min():.2f} ms; "
      f"nonzero windows conv1 {100 * np.mean(s1):.1f}% ({100 * min(s1):.1f}-{100 * max(s1):.1f}), "
      f"conv2 {100 * np.mean(s2):.1f}% ({100 * min(s2):.1f}-{100 * max(s2):.1f})")
