"""How many of conv2's pooling windows carry a nonzero gradient, dout * (y > 0), during real
training: the share of the dense weight-gradient FLOPs the pooled weight gradient (hpc_dw_pooled5)
does is a quarter of it.  LeNet, the paper's SGD (lr 0.01, momentum 0.9, weight decay 1e-4),
MNIST, batch 256, one rank, 2 epochs at a constant lr; the share over each logged step's batch;
then the same share on `bench`'s fixed random batch.
python results/bench-epyc-avx2-2026-12-01-s17/nonzero_windows.py (HPCLARS_DATA set)"""
import numpy as np

from hpclars import config, kernels
from hpclars.data import load_mnist
from hpclars.model import LAYOUT, LeNet, init_params
from hpclars.optim import make_optimizer

data = load_mnist(download=False)
x, y = data.train_images, data.train_labels
flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
grads = np.zeros_like(flat)
P, G = LAYOUT.views(flat), LAYOUT.views(grads)
model = LeNet(kernels, 256, 1)
opt = make_optimizer(config.build(optimizer="sgd", batch_size=256), LAYOUT)
rng = np.random.default_rng(0)
step, shares = 0, []
for epoch in range(2):
    order = rng.permutation(len(y))
    for lo in range(0, len(y) - 255, 256):
        b = order[lo:lo + 256]
        grads[...] = 0
        model.forward_backward(P, G, x[b], y[b], 1.0 / 256)
        opt.step(flat, grads, 0.01)
        step += 1
        share = float(((model.dp2 * (model.p2 > 0)) != 0).mean())
        shares.append(share)
        if step in (1, 10, 50, 100, 234, 468):
            print(f"step {step:4d}: {100 * share:5.1f}% of conv2's pooling windows with a nonzero gradient "
                  f"-> the pooled dw does {100 * share / 4:4.1f}% of the dense dw's FLOPs")
print(f"mean over {step} steps: {100 * np.mean(shares):.1f}% ({100 * min(shares):.1f}-{100 * max(shares):.1f}%)")

# The same share on the fixed random batch that `hpclars bench train | step` and jobs/ab_builds.py
# time (random uint8 pixels, the initial weights): their dense-equivalent rates rest on it.
from hpclars.bench import OneRankStep  # noqa: E402

s = OneRankStep(256, 1, 256)
s.forward_backward()
share = float(((s.model.dp2 * (s.model.p2 > 0)) != 0).mean())
print(f"bench's random batch: {100 * share:.1f}% of conv2's pooling windows with a nonzero gradient")
