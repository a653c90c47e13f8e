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
ReLU output); otherwise the scalar Cython loops run.  Deliberately left out:
other window sizes and strides.
"""

import numpy as np

from cython.parallel cimport prange


cdef extern from *:
    """
    #if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    #include <immintrin.h>
    #define HPC_POOL_SIMD 1

    /* The first `left` of 16 lanes (none if left <= 0). */
    static inline __mmask16 hpc_lanes(int left) {
        return left <= 0 ? (__mmask16)0 : left >= 16 ? (__mmask16)0xFFFF
                                                     : (__mmask16)((1u << left) - 1u);
    }

    /* Lanes where v replaces best: v > best, or v is the window's first NaN (np.argmax's rule). */
    static inline __mmask16 hpc_wins(__m512 v, __m512 best) {
        return _mm512_cmp_ps_mask(v, best, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q);
    }

    /* Max pooling of `planes` consecutive (h, wd) planes, 16 outputs of a row at a time: the two
       input rows are loaded as 32-float runs and split into even and odd columns, which gives the
       four window positions; strict '>' in position order keeps the first maximum on ties. */
    static void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                             unsigned char* idx) {
        const int ho = h / 2, wo = wd / 2;
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        for (long pl = 0; pl < planes; pl++)
            for (int r = 0; r < ho; r++) {
                const float* r0 = x + (pl * h + 2 * r) * (long)wd;
                const float* r1 = r0 + wd;
                float* o = out + (pl * ho + r) * (long)wo;
                unsigned char* ix = idx + (pl * ho + r) * (long)wo;
                for (int s0 = 0; s0 < wo; s0 += 16) {
                    const int ns = wo - s0 < 16 ? wo - s0 : 16;
                    const __mmask16 mo = hpc_lanes(ns), ml = hpc_lanes(2 * ns), mh = hpc_lanes(2 * ns - 16);
                    const __m512 l0 = _mm512_maskz_loadu_ps(ml, r0 + 2 * s0);
                    const __m512 h0 = _mm512_maskz_loadu_ps(mh, r0 + 2 * s0 + 16);
                    const __m512 l1 = _mm512_maskz_loadu_ps(ml, r1 + 2 * s0);
                    const __m512 h1 = _mm512_maskz_loadu_ps(mh, r1 + 2 * s0 + 16);
                    __m512 best = _mm512_permutex2var_ps(l0, even, h0);
                    __m512i arg = _mm512_setzero_si512();
                    __m512 v = _mm512_permutex2var_ps(l0, odd, h0);
                    __mmask16 m = hpc_wins(v, best);
                    best = _mm512_mask_mov_ps(best, m, v);
                    arg = _mm512_mask_mov_epi32(arg, m, _mm512_set1_epi32(1));
                    v = _mm512_permutex2var_ps(l1, even, h1);
                    m = hpc_wins(v, best);
                    best = _mm512_mask_mov_ps(best, m, v);
                    arg = _mm512_mask_mov_epi32(arg, m, _mm512_set1_epi32(2));
                    v = _mm512_permutex2var_ps(l1, odd, h1);
                    m = hpc_wins(v, best);
                    best = _mm512_mask_mov_ps(best, m, v);
                    arg = _mm512_mask_mov_epi32(arg, m, _mm512_set1_epi32(3));
                    _mm512_mask_storeu_ps(o + s0, mo, best);
                    _mm_mask_storeu_epi8(ix + s0, mo, _mm512_cvtepi32_epi8(arg));
                }
            }
    }

    /* dx of `planes` consecutive planes: each dout value goes to its window's recorded position,
       zero to the other three; the four position vectors are interleaved back into two rows. */
    static void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                             float* dx) {
        const int wd = 2 * wo;
        const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
        for (long pl = 0; pl < planes; pl++)
            for (int r = 0; r < ho; r++) {
                const float* gr = g + (pl * ho + r) * (long)wo;
                const unsigned char* ir = idx + (pl * ho + r) * (long)wo;
                float* d0 = dx + (pl * 2 * ho + 2 * r) * (long)wd;
                float* d1 = d0 + wd;
                for (int s0 = 0; s0 < wo; s0 += 16) {
                    const int ns = wo - s0 < 16 ? wo - s0 : 16;
                    const __mmask16 mo = hpc_lanes(ns), ml = hpc_lanes(2 * ns), mh = hpc_lanes(2 * ns - 16);
                    const __m512 gv = _mm512_maskz_loadu_ps(mo, gr + s0);
                    const __m512i a = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mo, ir + s0));
                    const __m512 v0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0)), gv);
                    const __m512 v1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(1)), gv);
                    const __m512 v2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(2)), gv);
                    const __m512 v3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(3)), gv);
                    _mm512_mask_storeu_ps(d0 + 2 * s0, ml, _mm512_permutex2var_ps(v0, lo, v1));
                    _mm512_mask_storeu_ps(d0 + 2 * s0 + 16, mh, _mm512_permutex2var_ps(v0, hi, v1));
                    _mm512_mask_storeu_ps(d1 + 2 * s0, ml, _mm512_permutex2var_ps(v2, lo, v3));
                    _mm512_mask_storeu_ps(d1 + 2 * s0 + 16, mh, _mm512_permutex2var_ps(v2, hi, v3));
                }
            }
    }

    #else
    /* Without AVX-512 the Cython loops below run instead; these are never called. */
    #define HPC_POOL_SIMD 0
    static void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                             unsigned char* idx) {}
    static void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                             float* dx) {}
    #endif
    """
    int HPC_POOL_SIMD
    void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                      unsigned char* idx) noexcept nogil
    void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                      float* dx) noexcept nogil


include "_checks.pxi"

#: True where this build has the AVX-512 (F, BW, VL) pooling passes; False: the Cython loops.
SIMD = bool(HPC_POOL_SIMD)


def maxpool2_forward(x, out, idx, int nthreads=1):
    """2x2 max pooling, stride 2; idx records the winning window position.

    x   (N, C, H, W)          IN   float32, H and W even
    out (N, C, H/2, W/2)      OUT  float32
    idx (N, C, H/2, W/2)      OUT  uint8, position of the max in its window (0..3)
    """
    _check_threads(nthreads)
    _checked(x, "x", np.float32, None)
    if x.ndim != 4 or x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"x must have shape (N, C, H, W) with H and W even, got {x.shape}")
    pooled = (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    _checked(out, "out", np.float32, pooled, out=True)
    _checked(idx, "idx", np.uint8, pooled, out=True)
    cdef const float[:, :, :, ::1] xv = x
    cdef float[:, :, :, ::1] ov = out
    cdef unsigned char[:, :, :, ::1] iv = idx
    cdef Py_ssize_t i, c, r, s, ho = pooled[2], wo = pooled[3]
    cdef float best, v
    cdef unsigned char arg
    if HPC_POOL_SIMD:
        if ho > 0 and wo > 0 and xv.shape[1] > 0:
            for i in prange(xv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
                hpc_pool_fwd(&xv[i, 0, 0, 0], xv.shape[1], 2 * ho, 2 * wo, &ov[i, 0, 0, 0],
                             &iv[i, 0, 0, 0])
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
                             gv.shape[3], &dv[i, 0, 0, 0])
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
