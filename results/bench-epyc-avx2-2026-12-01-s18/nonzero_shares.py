"""The share of conv1's and conv2's pooling windows with a nonzero gradient on `bench`'s fixed random
batch (the one `hpclars bench train | step` and jobs/ab_builds.py time), and the FLOPs per training
image of the terms the AVX2 build keeps (conv1's and conv2's weight gradients and conv2's dx over
those windows only) against the dense model's, with these shares and with real training's (62.2%
and 74.2%, real_step.py).  python results/bench-epyc-avx2-2026-12-01-s18/nonzero_shares.py"""
from hpclars.bench import CONV1, CONV2, DENSE, FWD_FLOPS, TRAIN_FLOPS, OneRankStep

s = OneRankStep(256, 1, 256)
s.forward_backward()
m = s.model
s1 = float(((m.dp1 * (m.p1 > 0)) != 0).mean())
s2 = float(((m.dp2 * (m.p2 > 0)) != 0).mean())
print(f"bench's random batch: {100 * s1:.1f}% of conv1's windows, {100 * s2:.1f}% of conv2's carry a gradient")
for name, a, b in (("bench's batch", s1, s2), ("real training", 0.622, 0.742)):
    kept = FWD_FLOPS + CONV1 * a / 4 + 2 * CONV2 * b / 4 + 2 * DENSE
    print(f"{name}: the kept terms are {kept / 1e6:.3f} MFLOP per image, {100 * kept / TRAIN_FLOPS:.1f}% of "
          f"the dense {TRAIN_FLOPS / 1e6:.3f}")
print(f"a training step has {TRAIN_FLOPS / FWD_FLOPS:.3f}x the forward pass's dense FLOPs")
