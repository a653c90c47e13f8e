"""The matrices of Winograd F(2, 5) (Toom-Cook at the points 0, 1, -1, 2, -2 and infinity) and the
float32 error of the 2-D F(2 x 2, 5 x 5) on LeNet's conv2 shapes, against a float64 direct sum.

A^T (2 x 6) and G (6 x 5) follow the Toom-Cook construction (Lavin and Gray 2016, section 4):
A^T[i][j] = p_j^i, G[j][k] = p_j^k / prod_{l != j} (p_j - p_l), with the point at infinity's
column and row picking the last coefficient.  B^T (6 x 6) is then the solution of the bilinear
identity  sum_j A^T[i][j] G[j][k] B^T[j][l] = [l == i + k]  (60 linear equations, 36 unknowns;
the script prints the rank and the residual).  kernels/conv.pyx's hpc_wino_bt, hpc_wino_at and
hpc_wino_weights hard-code these.

    python results/bench-epyc-zen5-2026-12-02-s22/winograd_derivation.py
"""
import numpy as np

pts = [0, 1, -1, 2, -2]
m, r = 2, 5
n = m + r - 1
AT = np.zeros((m, n)); G = np.zeros((n, r))
for j, p in enumerate(pts):
    f = 1.0
    for l, q in enumerate(pts):
        if l != j: f *= (p - q)
    for i in range(m): AT[i, j] = p ** i
    for k in range(r): G[j, k] = p ** k / f
AT[m - 1, n - 1] = 1; G[n - 1, r - 1] = 1
# solve sum_j AT[i,j] G[j,k] BT[j,l] = delta(l == i+k)
rows, rhs = [], []
for i in range(m):
    for k in range(r):
        for l in range(n):
            row = np.zeros((n, n))
            for j in range(n): row[j, l] = AT[i, j] * G[j, k]
            rows.append(row.ravel()); rhs.append(1.0 if l == i + k else 0.0)
M = np.array(rows); sol, res, rk, _ = np.linalg.lstsq(M, np.array(rhs), rcond=None)
BT = sol.reshape(n, n)
print("rank", rk, "resid", np.abs(M @ sol - rhs).max())
print("AT\n", AT); print("G\n", G); print("BT\n", np.round(BT, 6))
# 2D check in float32 vs float64 direct on LeNet conv2 shapes
rng = np.random.default_rng(0)
x = rng.random((8, 6, 14, 14)).astype(np.float32) * (rng.random((8,6,14,14)) > 0.3)
w = (rng.standard_normal((16, 6, 5, 5)) * np.sqrt(2 / 150)).astype(np.float32)
xp = np.pad(x, ((0,0),(0,0),(2,2),(2,2)))
def direct(xp, w, dt):
    N = xp.shape[0]; out = np.zeros((N, 16, 14, 14), dt)
    for p in range(5):
        for q in range(5):
            out += np.einsum("nchw,oc->nohw", xp[:, :, p:p+14, q:q+14].astype(dt), w[:, :, p, q].astype(dt))
    return out
ref = direct(xp, w, np.float64)
f32 = np.float32
U = np.einsum("jk,ockl,il->ocji", G.astype(f32), w, G.astype(f32)).astype(f32)  # (16,6,6,6) G w G^T
out = np.zeros((8, 16, 14, 14), f32)
for ty in range(7):
    for tx in range(7):
        d = xp[:, :, 2*ty:2*ty+6, 2*tx:2*tx+6]
        V = np.einsum("jk,nckl,il->ncji", BT.astype(f32), d, BT.astype(f32)).astype(f32)
        Mm = np.einsum("ocji,ncji->noji", U, V).astype(f32)
        Y = np.einsum("aj,noji,bi->noab", AT.astype(f32), Mm, AT.astype(f32)).astype(f32)
        out[:, :, 2*ty:2*ty+2, 2*tx:2*tx+2] = Y
d32 = direct(xp, w, np.float32)
scale = np.abs(ref).max()
print("winograd f32 max abs err / max|y|", np.abs(out - ref).max() / scale, " direct f32:", np.abs(d32 - ref).max() / scale)
