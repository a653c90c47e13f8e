"""2x2 stride-2 max pooling of the LeNet model, forward and backward.

Signatures and buffer semantics are those of :mod:`hpclars.reference`.  The
forward pass records which window position won (uint8, 0..3 in row-major
window order, first maximum on ties, the first NaN counting as the maximum as in
np.argmax) so the backward pass needs no comparison.
Every argument is checked once at entry; the loops run without the GIL, split
over the batch axis.  Where the compiler targets AVX-512 (the default
``-march=native`` build on the AVX-512 machines), both passes run 16 outputs of a
row at a time in C with intrinsics (measured at batch 256, one thread, about
10x faster than the scalar loops, whose data-dependent branches mispredict on
ReLU output); where it targets AVX2 + FMA without AVX-512, 8 outputs at a time with
the same comparisons (kernels/hpc_pool.h; conv1's maps 6.0-6.5 -> 0.74-0.78 ms, AMD
EPYC, 2026-12-01, BENCHMARKS.md session 14); otherwise the scalar Cython loops run.  Deliberately left out:
other window sizes and strides.
"""

import numpy as np

from cython.parallel cimport prange


cdef extern from "hpc_pool.h":
    int HPC_POOL_SIMD
    int HPC_POOL_AVX512
    void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                      unsigned char* idx, int relu) noexcept nogil
    void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                      float* dx, const float* y) noexcept nogil


include "_checks.pxi"

#: True where this build has the vector pooling passes of hpc_pool.h; False: the Cython loops.
SIMD = bool(HPC_POOL_SIMD)
#: Which passes: "avx512" (F, BW, VL; 16 lanes), "avx2" (AVX2 + FMA; 8 lanes) or "portable".
ISA = "avx512" if HPC_POOL_AVX512 else "avx2" if HPC_POOL_SIMD else "portable"


def maxpool2_forward(x, out, idx, int nthreads=1):
    """2x2 max pooling, stride 2; idx records the winning window position.

    x   (N, C, H, W)          IN   float32, H and W even
    out (N, C, H/2, W/2)      OUT  float32
    idx (N, C, H/2, W/2)      OUT  uint8, position of the max in its window (0..3); or None
                                   when no backward pass needs it (the same out)
    """
    _check_threads(nthreads)
    _checked(x, "x", np.float32, None)
    if x.ndim != 4 or x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"x must have shape (N, C, H, W) with H and W even, got {x.shape}")
    pooled = (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    _checked(out, "out", np.float32, pooled, out=True)
    cdef bint want_idx = idx is not None
    if want_idx:
        _checked(idx, "idx", np.uint8, pooled, out=True)
    cdef const float[:, :, :, ::1] xv = x
    cdef float[:, :, :, ::1] ov = out
    # A 1-element dummy keeps the memoryview typed without positions (NULL to the SIMD pass).
    cdef unsigned char[:, :, :, ::1] iv = idx if want_idx else np.empty((1, 1, 1, 1), np.uint8)
    cdef Py_ssize_t i, c, r, s, ho = pooled[2], wo = pooled[3]
    cdef float best, v
    cdef unsigned char arg
    if HPC_POOL_SIMD:
        if ho > 0 and wo > 0 and xv.shape[1] > 0:
            for i in prange(xv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
                hpc_pool_fwd(&xv[i, 0, 0, 0], xv.shape[1], 2 * ho, 2 * wo, &ov[i, 0, 0, 0],
                             &iv[i, 0, 0, 0] if want_idx else NULL, 0)
        return
    for i in prange(xv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        for c in range(xv.shape[1]):
            for r in range(ho):
                for s in range(wo):
                    # Strict '>' in row-major order keeps the first maximum on ties; the first NaN wins.
                    best = xv[i, c, 2 * r, 2 * s]
                    arg = 0
                    v = xv[i, c, 2 * r, 2 * s + 1]
                    if v > best or (v != v and best == best):
                        best = v
                        arg = 1
                    v = xv[i, c, 2 * r + 1, 2 * s]
                    if v > best or (v != v and best == best):
                        best = v
                        arg = 2
                    v = xv[i, c, 2 * r + 1, 2 * s + 1]
                    if v > best or (v != v and best == best):
                        best = v
                        arg = 3
                    ov[i, c, r, s] = best
                    if want_idx:
                        iv[i, c, r, s] = arg


def maxpool2_backward(dout, idx, dx, int nthreads=1):
    """Gradient of maxpool2_forward: dout routed to each window's max, zero elsewhere.

    dout (N, C, H/2, W/2)     IN   float32
    idx  (N, C, H/2, W/2)     IN   uint8 from the forward pass
    dx   (N, C, H, W)         OUT  float32
    """
    _check_threads(nthreads)
    _checked(dout, "dout", np.float32, None)
    if dout.ndim != 4:
        raise ValueError(f"dout must have shape (N, C, H/2, W/2), got {dout.shape}")
    _checked(idx, "idx", np.uint8, dout.shape)
    n, c, h2, w2 = dout.shape
    _checked(dx, "dx", np.float32, (n, c, 2 * h2, 2 * w2), out=True)
    cdef const float[:, :, :, ::1] gv = dout
    cdef const unsigned char[:, :, :, ::1] iv = idx
    cdef float[:, :, :, ::1] dv = dx
    cdef Py_ssize_t i, ch, r, s
    cdef unsigned char a
    cdef float g
    if HPC_POOL_SIMD:
        if gv.shape[1] > 0 and gv.shape[2] > 0 and gv.shape[3] > 0:
            for i in prange(gv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
                hpc_pool_bwd(&gv[i, 0, 0, 0], &iv[i, 0, 0, 0], gv.shape[1], gv.shape[2],
                             gv.shape[3], &dv[i, 0, 0, 0], NULL)
        return
    for i in prange(gv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        for ch in range(gv.shape[1]):
            for r in range(gv.shape[2]):
                for s in range(gv.shape[3]):
                    a = iv[i, ch, r, s]
                    g = gv[i, ch, r, s]
                    dv[i, ch, 2 * r, 2 * s] = g if a == 0 else 0
                    dv[i, ch, 2 * r, 2 * s + 1] = g if a == 1 else 0
                    dv[i, ch, 2 * r + 1, 2 * s] = g if a == 2 else 0
                    dv[i, ch, 2 * r + 1, 2 * s + 1] = g if a == 3 else 0
