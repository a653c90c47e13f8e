"""Does Winograd F(2x2, 5x5) in conv2's forward pass (kernels.CONV_WINOGRAD) change what training
and evaluation report?

A LeNet whose chunks hold fewer images than one Winograd group (7: AVX-512 takes groups of 16,
AVX2 of 8) takes the direct sum everywhere, as every build did before session 22; a chunk of 256
takes its groups by Winograd where the build does (at 768fe23 in training and evaluation, from
b058146 in evaluation only).  The script trains both from the same start (he-normal, seed 0) on
the same batches (SGD with momentum 0.9, lr 0.01, weight decay 1e-4, batch 256, 1 thread, 2
epochs of MNIST) and after each epoch evaluates the 10,000 test images with each, and the
chunk-256 model's weights with both evaluators: loss, correct count, and the images whose
predicted class differs.

    HPCLARS_DATA=../shared/data/mnist python results/bench-epyc-zen5-2026-12-02-s22/eval_agreement.py
"""

import numpy as np

from hpclars import kernels
from hpclars.data import load_mnist
from hpclars.model import LAYOUT, LeNet, init_params
from hpclars.provenance import git_commit

d = load_mnist(download=False)
images, labels = d.test_images, d.test_labels.astype(np.int32)
print(f"# git_commit {git_commit()}, kernel_path {kernels.KERNEL_PATH}, CONV_WINOGRAD {kernels.CONV_WINOGRAD}")
runs = {}
for name, chunk in (("chunk-256", 256), ("chunk-7", 7)):
    flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
    grads, vel = np.zeros_like(flat), np.zeros_like(flat)
    runs[name] = (flat, grads, vel, LeNet(kernels, chunk, 1))
direct_eval = runs["chunk-7"][3]
rng = np.random.default_rng(0)
for epoch in range(1, 3):
    order = rng.permutation(len(d.train_labels))
    for lo in range(0, len(order) - 255, 256):
        idx = order[lo:lo + 256]
        for flat, grads, vel, model in runs.values():
            P, G = LAYOUT.views(flat), LAYOUT.views(grads)
            grads[...] = 0
            model.forward_backward(P, G, d.train_images[idx], d.train_labels[idx].astype(np.int32), 1 / 256)
            vel *= 0.9
            vel += grads + 1e-4 * flat
            flat -= 0.01 * vel
    for name, (flat, _, _, model) in runs.items():
        loss, correct = model.evaluate(LAYOUT.views(flat), images, labels)
        print(f"epoch {epoch}: trained with {name} models, evaluated the same way: test loss "
              f"{loss / len(labels):.9f}, {correct} correct")
    flat, _, _, model = runs["chunk-256"]
    logits = {}
    for name, m in (("winograd", model), ("direct", direct_eval)):
        out = []
        for lo in range(0, len(labels), m.chunk):
            n = min(m.chunk, len(labels) - lo)
            x = m._load(images[lo:lo + n], n)
            out.append(m._forward(LAYOUT.views(flat), x, n, for_backward=False).copy())
        logits[name] = np.concatenate(out)
    differ = np.flatnonzero(logits["winograd"].argmax(1) != logits["direct"].argmax(1))
    loss_d, correct_d = direct_eval.evaluate(LAYOUT.views(flat), images, labels)
    print(f"epoch {epoch}: the chunk-256 model's weights evaluated by the direct sum (chunks of 7): test loss "
          f"{loss_d / len(labels):.9f}, {correct_d} correct; largest logit difference from its own "
          f"evaluation {np.abs(logits['winograd'] - logits['direct']).max():.3g} (largest |logit| "
          f"{np.abs(logits['direct']).max():.3g}); predictions differ on {len(differ)} images {differ.tolist()}")
