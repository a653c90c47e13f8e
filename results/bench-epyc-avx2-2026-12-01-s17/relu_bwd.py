"""relu_backward on fc1's shape (256 x 120), y the ReLU output of a standard normal (about half
zeros) or all positive, out of place and in place; min of 5 x 500 calls, beside NumPy's
multiply.  python results/bench-epyc-avx2-2026-12-01-s17/relu_bwd.py [BUILD]"""
import sys, timeit
import numpy as np
if len(sys.argv) > 1 and sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
from hpclars import kernels as k

rng = np.random.default_rng(0)
r = rng.standard_normal((256, 120)).astype(np.float32)
g = rng.standard_normal((256, 120)).astype(np.float32)
dx = np.empty_like(g)
for kind, y in (("y mixed signs", np.maximum(r, 0)), ("y all positive", np.abs(r) + 1)):
    t = {name: min(timeit.repeat(f, number=500, repeat=5)) / 500 * 1e6 for name, f in (
        ("out of place", lambda: k.relu_backward(y, g, dx, 1)),
        ("in place", lambda: k.relu_backward(y, dx, dx, 1)),
        ("numpy", lambda: np.multiply(g, y > 0, out=dx)))}
    print(f"{kind}: " + ", ".join(f"{n} {v:.1f} us" for n, v in t.items()), k.__file__)
