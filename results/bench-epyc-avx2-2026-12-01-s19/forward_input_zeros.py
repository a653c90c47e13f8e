"""How much of conv2's forward pass an input-sparse kernel could skip: during one epoch of real
training (LeNet, the paper's SGD, batch 256, seed 0, as real_step.py of session 18), the share of
conv2's inputs (p1, after conv1, pooling and ReLU) that are zero, and the share of the AVX2
forward strip's units of work whose inputs are all zero: a (channel c, kernel row p) pair of
hpc_olanes5_strip2 reads 2 padded input rows x (PX + 4) columns for one strip of 2 output rows x
PX pixels (PX = 5, 5, 4 across a 14-pixel row), and could be skipped only if all of them are
zero; a row segment is one of those two rows (a finer kernel could skip per row).  The padding's
zeros are included: they alone make 2 of every 35 (c, p) pairs all-zero.
python results/bench-epyc-avx2-2026-12-01-s19/forward_input_zeros.py   (HPCLARS_DATA set)"""
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
order = np.random.default_rng(0).permutation(len(y))


def shares(p1):
    """(zero inputs, all-zero (c, p) pairs, all-zero row segments) of a batch's p1 (n, 6, 14, 14)."""
    n = p1.shape[0]
    nz = np.zeros((n, 6, 18, 18), bool)
    nz[:, :, 2:16, 2:16] = p1 != 0
    pairs = segments = units = 0
    for y0 in range(0, 14, 2):
        for u0, px in ((0, 5), (5, 5), (10, 4)):
            for p in range(5):
                block = nz[:, :, y0 + p:y0 + p + 2, u0:u0 + px + 4]
                pairs += (~block.any(axis=(2, 3))).sum()
                segments += (~block.any(axis=3)).sum()
                units += n * 6
    return (p1 == 0).mean(), pairs / units, segments / (2 * units)


for step, lo in enumerate(range(0, len(y) - 255, 256)):
    b = np.sort(order[lo:lo + 256])
    grads[...] = 0
    model.forward_backward(P, G, x[b], y[b], 1.0 / 256)
    opt.step(flat, grads, 0.01)
    if step in (0, 20, 100, 233):
        z, pr, sg = shares(model.p1)
        print(f"step {step:3d}: p1 zero {100 * z:.1f}%; all-zero (c, p) pairs {100 * pr:.1f}%, "
              f"all-zero row segments {100 * sg:.1f}%")
