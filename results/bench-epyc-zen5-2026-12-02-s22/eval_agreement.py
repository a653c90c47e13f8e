"""Does evaluation by Winograd F(2x2, 5x5) (kernels.CONV_WINOGRAD) report what the direct sum reports?

Trains LeNet for 2 epochs on MNIST (SGD with momentum, lr 0.01, batch 256, he-normal seed 0,
1 thread), and after each epoch evaluates the 10,000 test images twice: LeNet.evaluate (forward
only: conv2 by Winograd where the build has it) and the same forward pass with pooling positions
(the training pass's direct sum).  Prints both losses and correct counts, the largest logit
difference and the images whose predicted class differs.

    HPCLARS_DATA=../shared/data/mnist python results/bench-epyc-zen5-2026-12-02-s22/eval_agreement.py
"""

import numpy as np

from hpclars import kernels
from hpclars.data import PIXEL_SCALE, load_mnist
from hpclars.model import IMAGE_SHAPE, LAYOUT, LeNet, init_params

d = load_mnist(download=False)
flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
grads, vel = np.zeros_like(flat), np.zeros_like(flat)
P, G = LAYOUT.views(flat), LAYOUT.views(grads)
model = LeNet(kernels, 256, 1)
rng = np.random.default_rng(0)
print(f"# kernel_path {kernels.KERNEL_PATH}, CONV_WINOGRAD {kernels.CONV_WINOGRAD}")
for epoch in range(1, 3):
    order = rng.permutation(len(d.train_labels))
    for lo in range(0, len(order) - 255, 256):
        idx = order[lo:lo + 256]
        grads[...] = 0
        model.forward_backward(P, G, d.train_images[idx], d.train_labels[idx].astype(np.int32), 1 / 256)
        vel *= 0.9
        vel += grads + 1e-4 * flat
        flat -= 0.01 * vel
    images, labels = d.test_images, d.test_labels.astype(np.int32)
    loss_w, correct_w = model.evaluate(P, images, labels)
    logits_w, logits_d = [], []
    for lo in range(0, len(labels), 256):
        n = min(256, len(labels) - lo)
        x = np.ascontiguousarray(images[lo:lo + n]).reshape(n, *IMAGE_SHAPE)
        logits_w.append(model._forward(P, x, n, PIXEL_SCALE, for_backward=False).copy())
        logits_d.append(model._forward(P, x, n, PIXEL_SCALE, for_backward=True).copy())
    lw, ld = np.concatenate(logits_w), np.concatenate(logits_d)
    loss_d, correct_d = 0.0, 0
    for lo in range(0, len(labels), 256):
        n = min(256, len(labels) - lo)
        l, c = kernels.softmax_xent(ld[lo:lo + n], labels[lo:lo + n], None, 1.0, 1)
        loss_d, correct_d = loss_d + l, correct_d + c
    differ = np.flatnonzero(lw.argmax(1) != ld.argmax(1))
    print(f"epoch {epoch}: evaluate() loss {loss_w / len(labels):.9f} correct {correct_w}; direct sum loss "
          f"{loss_d / len(labels):.9f} correct {correct_d}; largest logit difference "
          f"{np.abs(lw - ld).max():.3g} (largest |logit| {np.abs(ld).max():.3g}); predictions differ on "
          f"{len(differ)} images {differ.tolist()}")
