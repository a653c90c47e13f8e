"""How much of conv1's forward pass an input-sparse kernel could skip: MNIST's pixels are mostly
zero, but the AVX2 kernel (hpc_fwd1_group8) computes 8 images at once, one per lane, one 2 x 2
pooling window at a time, from a 6 x 6 patch of the padded 32 x 32 input; a window could be
skipped (its output is the pooled ReLU of the bias) only where that patch is zero in all the
images of a group.  The share of such windows for groups of 1, 8 (AVX2) and 16 (AVX-512) images,
on the first 4096 test images in their order.
python results/bench-epyc-avx2-2026-12-01-s19/conv1_input_zeros.py   (HPCLARS_DATA set)"""
import numpy as np

from hpclars.data import load_mnist

x = load_mnist(download=False).test_images[:4096].reshape(-1, 28, 28) != 0
n = len(x)
nz = np.zeros((n, 32, 32), bool)
nz[:, 2:30, 2:30] = x
print(f"zero pixels: {100 * (1 - x.mean()):.1f}%")
for g in (1, 8, 16):
    group = nz.reshape(n // g, g, 32, 32).any(axis=1)
    zero = sum((~group[:, 2 * a:2 * a + 6, 2 * b:2 * b + 6].any(axis=(1, 2))).sum()
               for a in range(14) for b in range(14))
    print(f"{g:2d} images per group: {100 * zero / (len(group) * 196):.1f}% of the pooling windows "
          f"have an all-zero 6 x 6 input patch")
