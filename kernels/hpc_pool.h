/* The AVX-512 (or AVX2) max-pooling passes (2x2, stride 2), shared by pool.pyx (maxpool2_*) and
   conv.pyx (the fused conv2d_pool_relu_* kernels).  HPC_POOL_SIMD says whether they exist in this
   build, HPC_POOL_AVX512 whether they are the 16-lane ones (conv.pyx's lane-transposed kernels need
   them). */
#ifndef HPC_POOL_H
#define HPC_POOL_H

#if defined(__AVX2__) && defined(__FMA__)
/* 8-lane helpers of the AVX2 passes below and of conv.pyx's pooled backward kernels, which both
   SIMD builds have (every AVX-512 CPU has AVX2 + FMA). */
#include <immintrin.h>
#include <string.h>

/* The first `left` of 8 lanes (none if left <= 0), as a vmaskmov mask. */
static inline __m256i hpc_lanes8(int left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The first n (1..8) of the 8 bytes at p in the low 64 bits, zeros after them: one 8-byte load
   when n is 8, a copy through a buffer only for a row's or batch's last few (with a memcpy for
   every 8 bytes conv1's backward pass took 0.92-0.94 ms per 256 images, without 0.86-0.88; min of
   100, alternating, AMD EPYC, 2026-12-01). */
static inline __m128i hpc_load_bytes8(const unsigned char* p, int n) {
    if (n == 8) return _mm_loadl_epi64((const __m128i*)p);
    unsigned char t[16] = {0};
    memcpy(t, p, (size_t)n);
    return _mm_loadl_epi64((const __m128i*)t);
}

/* The first n (0..8) of the 8 floats at p, zeros after them: one plain load when n is 8 (the
   loads of full rows in conv.pyx's transpositions ran conv1's backward 3% faster than
   vmaskmovps), a masked load only for a tail.  The float twin of hpc_load_bytes8. */
static inline __m256 hpc_load8(const float* p, int n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, hpc_lanes8(n));
}

/* The ReLU's gradient g * (y > 0), y its output, as a product: NaN or inf times 0 is NaN, a
   negative g times 0 is -0 (as hpclars.reference.relu_backward). */
static inline __m256 hpc_relu_grad8(__m256 g, __m256 y) {
    return _mm256_mul_ps(g, _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ),
                                          _mm256_set1_ps(1.0f)));
}

/* The sum of the 8 lanes of v. */
static inline float hpc_sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define HPC_POOL_SIMD 1
#define HPC_POOL_AVX512 1

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
   keeps the first maximum on ties.  idx NULL: the pooled values only (the same values). */
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
            unsigned char* ix = idx ? idx + (pl * ho + r) * (long)wo : NULL;
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
                if (ix) _mm_mask_storeu_epi8(ix + s0, mo, _mm512_cvtepi32_epi8(arg));
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

#elif defined(__AVX2__) && defined(__FMA__)
/* AVX2 (+ FMA, as conv.pyx's 8-lane direct path): the same passes, 8 outputs of a row at a time,
   with the same results bit for bit (the same comparisons and products, lane by lane). */
#include <immintrin.h>
#include <string.h>
#define HPC_POOL_SIMD 1
#define HPC_POOL_AVX512 0

/* Lanes where v replaces best: v > best, or v is the window's first NaN (np.argmax's rule). */
static inline __m256 hpc_wins8(__m256 v, __m256 best) {
    return _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_NLE_UQ), _mm256_cmp_ps(best, best, _CMP_ORD_Q));
}

/* Even and odd columns of the 16 floats a, b: [a0 a2 a4 a6 b0 b2 b4 b6] and [a1 a3 ... b7]. */
static inline void hpc_split8(__m256 a, __m256 b, __m256* even, __m256* odd) {
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* The max of a 2x2 window's four positions v0..v3 (row-major), and in *arg its position 0-3 as
   int32 lanes: strict '>' in position order keeps the first maximum on ties, a NaN the first NaN
   (hpc_wins8).  Shared by hpc_pool_fwd and conv.pyx's fused forward with channels in the lanes. */
static inline __m256 hpc_pool4x8(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256i* arg) {
    __m256 best = v0, a = _mm256_setzero_ps(), m;
    m = hpc_wins8(v1, best);
    best = _mm256_blendv_ps(best, v1, m);
    a = _mm256_blendv_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(1)), m);
    m = hpc_wins8(v2, best);
    best = _mm256_blendv_ps(best, v2, m);
    a = _mm256_blendv_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(2)), m);
    m = hpc_wins8(v3, best);
    best = _mm256_blendv_ps(best, v3, m);
    a = _mm256_blendv_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(3)), m);
    *arg = _mm256_castps_si256(a);
    return best;
}

/* Eight int32 lanes in 0..255 as eight bytes, in the low 64 bits (saturating packs). */
static inline __m128i hpc_bytes8(__m256i a) {
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    return _mm_packus_epi16(w16, w16);
}

/* The first n (1..8) of 8 pooled values v to out and their positions (int32 lanes a, 0..255)
   as bytes to idx: 8-wide stores when n is 8, otherwise pieces of 4, 2 and 1 (vmaskmovps stores
   are slow on AMD's Zen cores); idx NULL: the values only.  Shared by hpc_pool_fwd and conv.pyx's
   transpositions of pooled maps. */
static inline void hpc_store8(float* out, unsigned char* idx, __m256 v, __m256i a, int n) {
    const __m128i b8 = hpc_bytes8(a);
    if (n >= 8) {
        _mm256_storeu_ps(out, v);
        if (idx) _mm_storel_epi64((__m128i*)idx, b8);
        return;
    }
    unsigned long long bytes = (unsigned long long)_mm_cvtsi128_si64(b8);
    __m128 lo = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(out, lo);
        if (idx) memcpy(idx, &bytes, 4), idx += 4;
        lo = _mm256_extractf128_ps(v, 1), bytes >>= 32, out += 4, n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64*)out, lo);
        if (idx) memcpy(idx, &bytes, 2), idx += 2;
        lo = _mm_movehl_ps(lo, lo), bytes >>= 16, out += 2, n -= 2;
    }
    if (n) {
        _mm_store_ss(out, lo);
        if (idx) *idx = (unsigned char)bytes;
    }
}

static void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                         unsigned char* idx, int relu) {
    const int ho = h / 2, wo = wd / 2;
    const __m256 zero = _mm256_setzero_ps();
    for (long pl = 0; pl < planes; pl++)
        for (int r = 0; r < ho; r++) {
            const float* r0 = x + (pl * h + 2 * r) * (long)wd;
            const float* r1 = r0 + wd;
            float* o = out + (pl * ho + r) * (long)wo;
            unsigned char* ix = idx ? idx + (pl * ho + r) * (long)wo : NULL;
            for (int s0 = 0; s0 < wo; s0 += 8) {
                const int ns = wo - s0 < 8 ? wo - s0 : 8;
                const __m256i ml = hpc_lanes8(2 * ns), mh = hpc_lanes8(2 * ns - 8);
                __m256 e0, o0, e1, o1;
                hpc_split8(_mm256_maskload_ps(r0 + 2 * s0, ml), _mm256_maskload_ps(r0 + 2 * s0 + 8, mh), &e0, &o0);
                hpc_split8(_mm256_maskload_ps(r1 + 2 * s0, ml), _mm256_maskload_ps(r1 + 2 * s0 + 8, mh), &e1, &o1);
                __m256i a;
                __m256 best = hpc_pool4x8(e0, o0, e1, o1, &a);
                if (relu)  /* max(best, 0), NaN kept (as np.maximum) */
                    best = _mm256_blendv_ps(best, zero, _mm256_cmp_ps(best, zero, _CMP_LT_OQ));
                hpc_store8(o + s0, ix ? ix + s0 : NULL, best, a, ns);
            }
        }
}

/* One chunk of hpc_pool_bwd: the ns (1..8) pooled values at gr (and y's at yr, positions at ir)
   routed into the pre-pool rows d0 and d1.  full: every load and store 8 / 16 lanes wide (the
   caller has checked they stay inside the call's arrays); otherwise masked to ns and 2 * ns. */
static inline __attribute__((always_inline)) void hpc_pool_bwd8(
        const float* gr, const unsigned char* ir, const float* yr, float* d0, float* d1, int ns,
        const int full) {
    const __m256i ml = hpc_lanes8(2 * ns), mh = hpc_lanes8(2 * ns - 8);
    const int nl = full ? 8 : ns;  /* lanes loaded */
    __m256 gv = hpc_load8(gr, nl);
    if (yr) gv = hpc_relu_grad8(gv, hpc_load8(yr, nl));
    const __m256i a = _mm256_cvtepu8_epi32(hpc_load_bytes8(ir, nl));
    const __m256 v0 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(0))));
    const __m256 v1 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(1))));
    const __m256 v2 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(2))));
    const __m256 v3 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(3))));
    const __m256 l01 = _mm256_unpacklo_ps(v0, v1), h01 = _mm256_unpackhi_ps(v0, v1);
    const __m256 l23 = _mm256_unpacklo_ps(v2, v3), h23 = _mm256_unpackhi_ps(v2, v3);
    const __m256 s0 = _mm256_permute2f128_ps(l01, h01, 0x20), s1 = _mm256_permute2f128_ps(l01, h01, 0x31);
    const __m256 s2 = _mm256_permute2f128_ps(l23, h23, 0x20), s3 = _mm256_permute2f128_ps(l23, h23, 0x31);
    if (full) {
        _mm256_storeu_ps(d0, s0);
        _mm256_storeu_ps(d0 + 8, s1);
        _mm256_storeu_ps(d1, s2);
        _mm256_storeu_ps(d1 + 8, s3);
    } else {
        _mm256_maskstore_ps(d0, ml, s0);
        _mm256_maskstore_ps(d0 + 8, mh, s1);
        _mm256_maskstore_ps(d1, ml, s2);
        _mm256_maskstore_ps(d1 + 8, mh, s3);
    }
}

/* Rows of up to 7 pooled values (conv2's 7) away from the call's last 8 values go full width
   too: the lanes past the row read the next row's values, and what they store lands in the rows
   after it, which this call writes later (with one chunk per row the stores go in address
   order).  Masked (vmaskmovps stores, and the positions copied byte by byte into a buffer and
   read back 8 bytes wide, a failed store-to-load forward), conv2's fused backward without dx took
   3.52-3.57 ms per 256 images; full width 2.85-3.10 (min of 40, 6 alternating rounds, AMD EPYC,
   2026-12-01). */
static void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                         float* dx, const float* y) {
    const int wd = 2 * wo;
    const long total = planes * ho * (long)wo;
    for (long pl = 0; pl < planes; pl++)
        for (int r = 0; r < ho; r++) {
            const long off = (pl * ho + r) * (long)wo;
            float* d0 = dx + (pl * 2 * ho + 2 * r) * (long)wd;
            float* d1 = d0 + wd;
            const float* yr = y ? y + off : NULL;
            for (int s0 = 0; s0 < wo; s0 += 8) {
                const int ns = wo - s0 < 8 ? wo - s0 : 8;
                /* two calls, so that each inlined copy has `full` as a constant */
                if (ns == 8 || (wo < 8 && off + 8 <= total))
                    hpc_pool_bwd8(g + off + s0, idx + off + s0, yr ? yr + s0 : NULL, d0 + 2 * s0,
                                  d1 + 2 * s0, ns, 1);
                else
                    hpc_pool_bwd8(g + off + s0, idx + off + s0, yr ? yr + s0 : NULL, d0 + 2 * s0,
                                  d1 + 2 * s0, ns, 0);
            }
        }
}

#else
/* Without AVX-512 or AVX2 the Cython loops of pool.pyx run instead; these are never called. */
#define HPC_POOL_SIMD 0
#define HPC_POOL_AVX512 0
static void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                         unsigned char* idx, int relu) {}
static void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                         float* dx, const float* y) {}
#endif

#endif
