/* The AVX-512 max-pooling passes (2x2, stride 2), shared by pool.pyx (maxpool2_*) and conv.pyx
   (the fused conv2d_pool_relu_* kernels).  HPC_POOL_SIMD says whether they exist in this build. */
#ifndef HPC_POOL_H
#define HPC_POOL_H

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

/* Max pooling of `planes` consecutive (h, wd) planes (then, if relu, max(., 0) of the pooled
   values), 16 outputs of a row at a time: the two input rows are loaded as 32-float runs and split
   into even and odd columns, which gives the four window positions; strict '>' in position order
   keeps the first maximum on ties. */
static void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                         unsigned char* idx, int relu) {
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
                if (relu)  /* max(best, 0), NaN kept (as np.maximum) */
                    best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_LT_OQ),
                                              _mm512_setzero_ps());
                _mm512_mask_storeu_ps(o + s0, mo, best);
                _mm_mask_storeu_epi8(ix + s0, mo, _mm512_cvtepi32_epi8(arg));
            }
        }
}

/* dx of `planes` consecutive planes (times the ReLU's gradient, y > 0, where y, the ReLU's pooled
   output, is not NULL): each dout value goes to its window's recorded position,
   zero to the other three; the four position vectors are interleaved back into two rows. */
static void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                         float* dx, const float* y) {
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
                __m512 gv = _mm512_maskz_loadu_ps(mo, gr + s0);
                if (y)  /* the ReLU's gradient, g * (y > 0) as a product (NaN or inf times 0 is NaN) */
                    gv = _mm512_mul_ps(gv, _mm512_maskz_mov_ps(
                        _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(mo, y + (pl * ho + r) * (long)wo + s0),
                                           _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f)));
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
/* Without AVX-512 the Cython loops of pool.pyx run instead; these are never called. */
#define HPC_POOL_SIMD 0
static void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                         unsigned char* idx, int relu) {}
static void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                         float* dx, const float* y) {}
#endif

#endif
