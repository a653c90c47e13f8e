"""Winograd's minimal filtering F(2 x 2, 5 x 5) (Lavin and Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016; matrices by the Cook-Toom construction of Winograd,
"Arithmetic Complexity of Computations", SIAM 1980, with interpolation points chosen below and
infinity) for conv2's forward pass (6 -> 16 channels, 14 x 14, 'same' padding): the float32
error against the float64 direct sum, beside a float32 direct sum, on random ReLU'd inputs and
weights of LeNet's scale.  Each 2 x 2 output tile is one 2 x 2 pooling window.  A question for
an evaluation-only path (which needs no pooling positions): is the float32 error within the
kernel tests' 1e-5?  Reference and arithmetic only; no timing.
python results/bench-epyc-avx2-2026-12-01-s19/winograd_f2x2_5x5.py"""
import numpy as np
from fractions import Fraction as Fr
def matrices(m, r, pts):
    n = m + r - 1
    a = [Fr(p) for p in pts]; assert len(a) == n - 1
    AT = [[a[j] ** i for j in range(n - 1)] + [Fr(1 if i == m - 1 else 0)] for i in range(m)]
    G = []
    for j in range(n - 1):
        f = Fr(1)
        for l in range(n - 1):
            if l != j: f *= a[j] - a[l]
        G.append([a[j] ** k / f for k in range(r)])
    G.append([Fr(1 if k == r - 1 else 0) for k in range(r)])
    def polymul(p, q):
        out = [Fr(0)] * (len(p) + len(q) - 1)
        for i, x in enumerate(p):
            for j, y in enumerate(q): out[i + j] += x * y
        return out
    M = [Fr(1)]
    for x in a: M = polymul(M, [-x, Fr(1)])   # coefficients low->high
    BT = []
    for j in range(n - 1):
        q = [Fr(1)]
        for l in range(n - 1):
            if l != j: q = polymul(q, [-a[l], Fr(1)])
        BT.append(q + [Fr(0)] * (n - len(q)))
    BT.append(M)
    f = lambda X: np.array([[float(v) for v in row] for row in X])
    return f(AT), f(G), f(BT)
m, r = 2, 5
AT, G, BT = matrices(m, r, [0, 1, -1, Fr(1, 2), -2])
rng = np.random.default_rng(0)
d = rng.standard_normal(m + r - 1); g = rng.standard_normal(r)
direct = np.array([sum(d[i + k] * g[k] for k in range(r)) for i in range(m)])
print("1-D F(2, 5) against the direct correlation, float64: max abs error %.1e"
      % np.abs(AT @ ((G @ g) * (BT @ d)) - direct).max())

def conv2_direct(x, w):  # x (C, 18, 18) padded, w (O, C, 5, 5) -> (O, 14, 14), float64
    O = w.shape[0]; out = np.zeros((O, 14, 14))
    for p in range(5):
        for q in range(5):
            out += np.einsum('oc,cyx->oyx', w[:, :, p, q], x[:, p:p + 14, q:q + 14])
    return out

def conv2_wino(x, w, AT, G, BT, dt):
    x, w = x.astype(dt), w.astype(dt)
    AT, G, BT = AT.astype(dt), G.astype(dt), BT.astype(dt)
    U = np.einsum('ij,ocjk,lk->ocil', G, w, G)            # (O, C, 6, 6)
    out = np.zeros((w.shape[0], 14, 14), dt)
    for ty in range(7):
        for tx in range(7):
            d = x[:, 2 * ty:2 * ty + 6, 2 * tx:2 * tx + 6]  # (C, 6, 6)
            V = np.einsum('ij,cjk,lk->cil', BT, d, BT)
            M = np.einsum('ocij,cij->oij', U, V)
            out[:, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2] = np.einsum('ij,ojk,lk->oil', AT, M, AT)
    return out

rng = np.random.default_rng(1)
x = np.zeros((6, 18, 18)); x[:, 2:16, 2:16] = np.maximum(rng.standard_normal((6, 14, 14)), 0)
w = rng.standard_normal((16, 6, 5, 5)) * 0.1
ref = conv2_direct(x, w)
d32 = conv2_direct(x.astype(np.float32).astype(np.float64), w.astype(np.float32).astype(np.float64))
scale = np.abs(ref).max()
print("float32 inputs, exact sums: rel err %.2e" % (np.abs(d32 - ref).max() / scale))
for pts in ([0, 1, -1, Fr(1, 2), -2], [0, 1, -1, 2, -2], [0, 1, -1, Fr(1, 2), Fr(-1, 2)], [0, Fr(1,2), Fr(-1,2), 2, -2]):
    AT, G, BT = matrices(2, 5, pts)
    y64 = conv2_wino(x, w, AT, G, BT, np.float64)
    y32 = conv2_wino(x, w, AT, G, BT, np.float32)
    print([str(p) for p in pts], "f64 %.1e  f32 rel err %.2e" % (np.abs(y64 - ref).max() / scale, np.abs(y32 - ref).max() / scale))
# direct float32 with sequential sums
y = np.zeros((16, 14, 14), np.float32); x32, w32 = x.astype(np.float32), w.astype(np.float32)
for c in range(6):
    for p in range(5):
        for q in range(5):
            y += w32[:, c, p, q][:, None, None] * x32[c, p:p + 14, q:q + 14]
print("direct float32: rel err %.2e" % (np.abs(y - ref).max() / scale))
