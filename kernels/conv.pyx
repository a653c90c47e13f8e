"""Stride-1 'same' 2-D convolution of the LeNet model, forward and backward.

Signatures and buffer semantics are those of :mod:`hpclars.reference`.

Method, where the compiler targets AVX-512 (the default ``-march=native`` build on
the AVX-512 machines): direct convolution in C with intrinsics, vectorised over
16 output columns of a row, on a zero-padded copy of each image's planes (the
padding makes every tap a plain unaligned load of 16 floats, with no boundary
tests).  A register block of OB output channels by RB rows (6 x 4 for conv1,
8 x 2 for conv2, 6 x 4 with a last 6 x 2 for conv2's dx; the fastest of those measured, and
for LeNet's conv1 and conv2-dx shapes with the sizes as compile-time constants) keeps
OB*RB accumulators: per tap, RB row loads and OB
weight broadcasts feed OB*RB FMAs.  Rows wider than 16 take several masked
chunks.  The backward pass uses the same machinery:

    dx  = the forward kernel on the padded dout, with weights w transposed to
          (Cin, Cout, K, K) and flipped in both spatial axes (computed once per call)
    dw  per thread, 16-lane partial sums acc[o, c, p, q, :] += dout[o, y, u:u+16] *
        xp[c, y+p, u+q:u+q+16], accumulated over the thread's images in an OB x 5
        register block and summed across lanes and threads after the parallel loop;
        where K = 5 and Cout is a multiple of 16 (conv2), the lanes hold 16 output
        channels instead: dwt[c, p, q, o:o+16] += dout^T[y, u, o:o+16] * xp[c, y+p, u+q]
        (one broadcast pixel per FMA, 25 accumulators per image and channel block)
    db  per thread, vector sums of dout, added up after the parallel loop

The fused backward pass of a one-channel input (conv1: no dx) takes 16 images at a time with
the images in the lanes instead (``hpc_bwd1_group16``): their pixels, pooled gradient and
pooling positions are transposed in 16 x 16 register blocks, each pooled row's two pre-pool
gradient rows are rebuilt in cache, and dw accumulates 3 channels x 5 taps per register block
with whole vectors (no masks), no lane idle on a row's end (conv1's backward pass 39% -> 54% of
sgemm in ``hpclars bench step``, BENCHMARKS.md session 8); a batch's last N mod 16 images go
image by image as above.  Its fused forward pass (``hpc_fwd1_group16``, Cout 3 or 6) does the
same: 16 images' pixels transposed into pixel vectors, each pooling window's 2 x 2 outputs x 6
channels in 24 accumulators and pooled in registers, the pooled maps transposed back; the
values are the image-by-image path's bit for bit.  A small gain: minima of 100 calls per 256
images 0.57-0.65 ms against 0.59-0.88 ms, alternating, on a noisy VM (Xeon, 2026-12-01,
results/bench-xeon-2026-12-01/conv1_fwd_ab.txt).

The fused backward pass of an input with 2 to 6 channels (conv2) takes dw, db and dx from the
pooled gradient instead (``hpc_dw_pooled_hwc5``; :data:`POOLED_DW`, :data:`POOLED_DX`), as the
AVX2 build does (below), but on the image padded channel-last (``hpc_pad_hwc``): a listed
window's 5 taps of a kernel row for every input channel are 5 Cin <= 30 consecutive floats, so
10 16-lane FMAs per window give its 25 Cin weight-gradient terms, and 10 read-modify-writes
of a channel-last dx (the weights in a (Cout, 5, 32) table) its dx terms; consecutive windows
add into 4 copies of dx in turn, so that a window's loads do not wait on the previous window's
stores to overlapping floats (1 copy: dx 2.42-2.57 ms per 256 images; 4: 1.26-1.49; 8: 1.40-1.61;
the dense kernel 1.18-1.38, in one noisy alternating run), summed
and transposed back per image.  conv2's backward pass 1.37-1.40x as fast (min and median of 400
alternating rounds; its dw part 1.23-1.25 -> 0.66 ms, dx 1.23-1.26 -> 1.12-1.15), the training
step 1.06-1.15x (minima of 3 runs; 1.08-1.17x medians on real MNIST batches), AMD EPYC Zen 5,
2026-12-02, BENCHMARKS.md session 21.  The AVX2 build's
8-lane kernels, tried here first, were not clearly faster than the dense 16-lane ones on that
machine (the step 0.93-1.09x), and conv1's 16 images in the lanes stay.

The forward pass without pooling positions (``idx`` None: evaluation, where no backward pass
follows) skips the positions' bookkeeping on every build: conv1's fused forward 0.31 against
0.34 ms per 256 images (min of 100, AMD EPYC Zen 5, 2026-12-02).  On the direct builds it takes
conv2 (K = 5, Cout a multiple of 16, float32 x) 16 images (AVX2: 8) at a time by Winograd
F(2x2, 5x5) (Lavin and Gray 2016, "Fast Algorithms for Convolutional Neural Networks", CVPR;
``hpc_fwd_wino25_group16``, ``_group8``, :data:`WINOGRAD`), with the images in the lanes: each
2 x 2 output tile is one pooling window, pooled in registers, and every scalar operation of the
6 x 6 transforms is one vector operation, with no transposition per tile; 36 products per tile
and channel pair instead of 100.  On AVX-512 conv2's forward pass 0.86 against 1.14 ms per 256
images (min of 100), the evaluation 1.17-1.30x as fast, the AVX2 build's 1.39-1.50x (min and
median of 100-150 alternating rounds; both builds on an AMD EPYC Zen 5, 2026-12-02;
BENCHMARKS.md session 22).  Its rounding differs from the direct sum's (about 2e-6 of the
largest output against 2e-7; the kernel tests bound both by 1e-5); a NaN gives NaN exactly where
the direct sum does, but an inf in a pooling window's 6 x 6 input block may make that window NaN
where the direct sum's is finite.  The training pass keeps the direct sum: with Winograd there
too the step ran 1.03-1.12x faster, but 2 ranks' parameters after 20 steps of SGD differed from
1 rank's by 2.9e-4 of a tensor's largest value instead of 2e-7 (its rounding, larger and
changed by any change of the weights, flips near-tied pooling choices; BENCHMARKS.md session 22).

Measured at batch 256, one thread, on the AMD EPYC (Zen 5) nodes: several times
faster than the per-image im2col + sgemm it replaced, whose (Cout = 6 or 16) x
(CKK = 25 or 150) x (H*W) products are too small for BLAS to reach its peak, and
whose im2col copies cost as much as the products for conv1.

Where the compiler targets AVX2 + FMA but not AVX-512 (``-march=native`` on AMD Zen 1-3 or
Intel Haswell to Comet Lake; ``HPCLARS_MARCH=haswell``): the same direct convolution, fused
conv -> pool -> ReLU and pooling (kernels/hpc_pool.h) with 8-lane vectors and AVX2's 16
registers: forward blocks of two rows by 6 channels (then 4, 2, 1), dw by 2 channels x 5 taps,
conv2's dw and fused forward with 8 output channels per vector, conv1's fused forward 8 images
at a time (``hpc_fwd1_group8``, 3 channels x a 2 x 2 pooling window in 12 accumulators, pooled
in registers; 0.90 against 1.41 ms per 256 images, min of 100, BENCHMARKS.md session 15).  A training step ran 3.7x as fast as on the
im2col path below, evaluation 4.4x (AMD EPYC Zen 3, 2026-12-01, BENCHMARKS.md session 14).  The sums run in other orders than the AVX-512 kernels', so the two
builds agree to rounding, not bit for bit.

The AVX2 build's fused backward passes (conv1's and conv2's) take dw and db from the
pooled gradient (``hpc_dw_pooled5``, :data:`POOLED_DW`), not from the pre-pool gradient: the max
pool's backward pass puts each window's gradient at its recorded position and exact zeros at the
other three, and the ReLU's zeroes the windows it switched off, so of the dense sum's terms at
least 3 in 4 are 0 * x.  Per output channel, the windows with a nonzero ``dout * (y > 0)`` are
listed (8 at a time, with a left-packing permutation: no branch on the data), then each feeds 5
FMAs per input channel (the 5 taps of a kernel row in the lanes of one load; for conv1's one input
channel, two output channels' lists are interleaved so that 10 accumulators advance, not 5).  The terms left out are exact zeros only where x is finite (0 * inf is NaN), so an image
with an inf or NaN pixel takes the dense path.  The sums run in another order than the dense
kernels': the gradients agree to rounding.  conv2's backward pass without dx 2.89-3.42 ms ->
1.89-2.30 ms (one 2.62) per 256 images (min of 40, 8 alternating pairs), the training step 1.05-1.13x with
session 17's other changes (minima; AMD EPYC Zen 3, 2026-12-01, BENCHMARKS.md session 17).  In
real training 68-85% of conv2's windows carry a gradient: about 18% of the dense FLOPs.  Session
18 listed the windows 8 at a time (session 17's scalar listing had made conv1's backward pass
slower this way) and moved conv1 onto this path: conv1's backward pass 0.91-1.15 -> 0.57-0.90 ms per
256 images (min of 100, 4 alternating pairs; 62% of conv1's windows carry a gradient in real
training).
``bench``'s GFLOP/s stay those of the dense computation (model FLOPs) per second.

Its dx comes from the same windows (``hpc_dx_pooled14``, :data:`POOLED_DX`; 14-row images of 10
to 16 pixels, LeNet's conv2): dx[c, r + p - 2, s + q - 2] += v * w[o, c, p, q] for each window
with a nonzero v at its recorded position (r, s).  Session 17 scattered that into dx in memory and
gained at most 5%: each window's read-modify-writes overlapped the previous window's pending
stores.  Here dx's 14 rows are held in 14 registers (8 pixels each: one half of the row, one input
channel at a time), the windows are listed per pre-pool row r (dx rows r - 2 .. r + 2, a
compile-time set of registers) with a left-packing permutation, rows r and r + 7 interleaved so
that two sets of accumulators advance at once, and each entry's 5 FMAs take w's rows from a table
placed so that one unaligned load holds the 8 pixels' weights (zeros around the 5 taps).  Those
zeros multiply v, so an image with a non-finite dout, or a w with a non-finite weight, takes the
dense path.  (A first version listed per pooled row, 6 FMAs per entry with a zero kernel row for
the window's other pre-pool row: conv2's dx part 2.28-2.77 ms against 1.99-2.15 now.)  With the session's
other changes conv2's backward pass with dx took 3.90-4.75 ms per 256 images against 5.40-8.16
(min of 40, 8 alternating pairs; its dx part 2.25-2.80 against 3.41-5.33 dense), and the training
step 1.16-1.24x (minima; AMD EPYC Zen 3, 2026-12-01, BENCHMARKS.md session 18).

Without either (``HPCLARS_NO_NATIVE=1`` or another CPU) the kernels fall back
to that portable path: per image, im2col into the thread's slice of ``work``,
then one BLAS sgemm (``scipy.linalg.cython_blas``, single-threaded BLAS called
from inside the OpenMP threads), on a *padded-width grid*: output position
(y, u) becomes column j = y*Wp + u of a (Cout, H*Wp) matrix, so row (c, p, q)
of the im2col matrix is one contiguous run of the padded plane, starting at
offset p*Wp + q, and im2col and col2im are plain memcpy/axpy loops.  With
CKK = Cin*K*K and HWp = H*Wp:

    forward    outp  (Cout, HWp) = w (Cout, CKK) @ cols (CKK, HWp); out_i = crop(outp) + b
    backward   dw_t  (Cout, CKK) += doutp (Cout, HWp) @ cols^T        (per-thread dw_t)
               dcols (CKK, HWp)  = w^T @ doutp, then col2im into the padded dx, cropped

BLAS is column-major, so a row-major (r, c) array is passed as its (c, r)
transpose and the row-major ``C = A @ B`` is computed as ``C^T = B^T @ A^T``.

Layout of ``work`` (float32, from its first 64-byte boundary: every work size holds 16 floats of
slack for that; each piece starts on a 64-byte boundary).  Direct
path: a shared ``wf`` (the flipped weights, Cout*CKK), then per thread ``xp``
(Cin padded planes + 16 floats of slack), ``gp`` (Cout padded planes + slack,
the padded dout), ``acc16`` (Cout*CKK*16; or, on the channel-lane dw path, ``dwt``
(CKK*Cout) then ``gt``, the image's dout transposed (H*W*Cout)), ``db_t`` (Cout).  Sgemm path, per
thread: ``xp`` the padded image (reused for the padded dx), ``cols`` (CKK*HWp;
reused for dcols), ``outp`` (Cout*HWp; the padded dout on the backward pass),
``dw_t`` (Cout*CKK), ``db_t`` (Cout).  On the conv1 shape (Cin 1, K 5, Cout a multiple of 3 up
to 8, even H and W) a direct-path slot also holds, after ``dda``, the 16-image (AVX2: 8) pieces
of ``hpc_bwd1_group16`` and ``hpc_fwd1_group16`` (``dxb``, ``ddt``, ``dkt``, ``dg2``); where
:data:`POOLED_DW`, a slot holds after ``dda`` the pooled weight gradient's accumulators
(``dpa``, Cout*Cin*40; on AVX-512 Cout*160), its list of windows (``dpo``, ``dpv``) and the
windows' base offsets (``dpb``); on AVX-512 then the channel-last padded image (``dph``, ``dps``
floats) and the HPC_DX_COPIES (4) channel-last dx copies (``dpd``, ``dps`` floats each), and the
shared piece the dx table (``dtt``, Cout*160); on AVX2, where :data:`POOLED_DX` and
H = 14, the shared piece holds after ``wf`` the dx table (Cin*Cout*100) and a slot the dx lists
(``dqv``, ``dqo``: 28 * (Cout*W/2 + 8) each) and their counts (``dqc``).  Deliberately left out: strides,
dilation, groups, even K, and any padding other than K // 2.
"""

import numpy as np

from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm

cdef extern from *:
    """
    #include <string.h>
    #include "hpc_pool.h"

    /* Plain C, the same in every build (the portable one never calls them). */

    /* Zero nc padded (h + 2 pad, wd + 2 pad) planes and the 16 floats of slack after the last one
       (read by the full-width loads of its last row).  Once per thread and call: hpc_pad_rows
       rewrites only the interior, so the border stays zero for every image after it. */
    static void hpc_pad_zero(int nc, int h, int wd, int pad, float* dst) {
        memset(dst, 0, ((size_t)nc * (h + 2 * pad) * (wd + 2 * pad) + 16) * sizeof(float));
    }

    /* dw[o, c, p, q] += dwt[(c*kk + p*k + q)*cout + o]: the (ckk, cout) partial sums of the
       channel-lane dw kernels (hpc_dw_image_olanes5), back in dw's (cout, ckk) order. */
    static void hpc_dwt_reduce(const float* dwt, int cout, long ckk, float* dw) {
        for (long j = 0; j < ckk; j++)
            for (int o = 0; o < cout; o++) dw[(long)o * ckk + j] += dwt[j * cout + o];
    }

    /* u = G g G^T of every (o, c) kernel g = w[o, c] (5 x 5), in double and rounded once, laid out
       u[o / 16][a * 6 + b][c][o % 16] for the 16-channel blocks of hpc_fwd_wino25_group16 (and _group8); cout a
       multiple of 16.  G: hpc_wino_bt's comment (AVX-512 section). */
    static void hpc_wino_weights(const float* w, int cout, int cin, float* u) {
        static const double G[6][5] = {{0.25, 0, 0, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                                       {0, 0, 0, 0, 1}};
        for (int o = 0; o < cout; o++)
            for (int c = 0; c < cin; c++) {
                const float* g = w + ((long)o * cin + c) * 25;
                double t[6][5];
                for (int a = 0; a < 6; a++)
                    for (int l = 0; l < 5; l++) {
                        double s = 0;
                        for (int k = 0; k < 5; k++) s += G[a][k] * g[k * 5 + l];
                        t[a][l] = s;
                    }
                for (int a = 0; a < 6; a++)
                    for (int bb = 0; bb < 6; bb++) {
                        double s = 0;
                        for (int l = 0; l < 5; l++) s += t[a][l] * G[bb][l];
                        u[(((long)(o / 16) * 36 + a * 6 + bb) * cin + c) * 16 + o % 16] = (float)s;
                    }
            }
    }

    /* The same condition as hpc_pool.h's: a CPU with AVX-512F but not BW and VL (Knights Landing)
       takes the AVX2 path in both, never AVX-512 convolutions beside AVX2 pooling. */
    #if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    #include <immintrin.h>
    #define HPC_DIRECT 1
    #define HPC_AVX512 1
    #define HPC_OLANES 1

    /* Lanes of the 16-wide chunk of a row that starts `left` columns before the row's end. */
    static inline __mmask16 hpc_tail(int left) {
        return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    }

    /* dst[c, y + pad, u + pad] = src[c, y, u]: the interior of planes zeroed by hpc_pad_zero, one
       row in masked 16-lane moves (a memcpy per 14-float row cost 4x as much). */
    static void hpc_pad_rows(const float* src, int nc, int h, int wd, int pad, float* dst) {
        const int wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        for (int c = 0; c < nc; c++)
            for (int y = 0; y < h; y++) {
                const float* s = src + ((long)c * h + y) * wd;
                float* d = dst + c * plane + (long)(y + pad) * wp + pad;
                for (int u = 0; u < wd; u += 16) {
                    const __mmask16 m = hpc_tail(wd - u);
                    _mm512_mask_storeu_ps(d + u, m, _mm512_maskz_loadu_ps(m, s + u));
                }
            }
    }

    /* hpc_pad_rows for a uint8 image, each pixel times `scale` rounded to float32 (one rounding,
       as hpclars.data.to_float): the input's scaling done while padding, so a forward-only pass
       on uint8 images needs no float32 copy of the batch. */
    static void hpc_pad_rows_u8(const unsigned char* src, int nc, int h, int wd, int pad, float scale,
                                float* dst) {
        const int wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        const __m512 sv = _mm512_set1_ps(scale);
        for (int c = 0; c < nc; c++)
            for (int y = 0; y < h; y++) {
                const unsigned char* s = src + ((long)c * h + y) * wd;
                float* d = dst + c * plane + (long)(y + pad) * wp + pad;
                for (int u = 0; u < wd; u += 16) {
                    const __mmask16 m = hpc_tail(wd - u);
                    const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, s + u)));
                    _mm512_mask_storeu_ps(d + u, m, _mm512_mul_ps(v, sv));
                }
            }
    }

    /* out[o0:o0+OB, y0:y0+RB, :] = sum over (c, p, q) of w[o, c, p, q] * xp[c, y + p, u + q] (+ b[o]):
       OB x RB accumulators of 16 output columns each, the tap's weight broadcast, its shifted input
       row loaded once and used by all OB channels. */
    #define HPC_FWD(OB, RB)                                                                          \
    static inline __attribute__((always_inline)) void                                                \
    hpc_fwd_body_##OB##x##RB(const float* xp, int cin, long plane, int wp, int k,                   \
                             const float* w, const float* b, float* out, int h, int wd,              \
                             int o0, int y0) {                                                       \
        const int kk = k * k;                                                                        \
        const long ckk = (long)cin * kk;                                                             \
        for (int x0 = 0; x0 < wd; x0 += 16) {                                                        \
            const __mmask16 m = hpc_tail(wd - x0);                                                   \
            __m512 acc[OB][RB];                                                                      \
            _Pragma("GCC unroll 32") for (int o = 0; o < OB; o++)                                    \
            _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++) acc[o][r] = _mm512_setzero_ps();  \
            for (int c = 0; c < cin; c++)                                                            \
                for (int p = 0; p < k; p++) {                                                        \
                    const float* xr = xp + c * plane + (long)(y0 + p) * wp + x0;                     \
                    const float* wr = w + o0 * ckk + c * kk + p * k;                                 \
                    for (int q = 0; q < k; q++) {                                                    \
                        __m512 xv[RB];                                                               \
                        _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                        \
                            xv[r] = _mm512_loadu_ps(xr + r * wp + q);                                \
                        /* Keeps each row in a register: folded into every FMA, it would be */     \
                        /* reloaded OB times, a cache-line-split load per FMA (2x slower). */      \
                        _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                        \
                            __asm__("" : "+v"(xv[r]));                                               \
                        _Pragma("GCC unroll 32") for (int o = 0; o < OB; o++) {                      \
                            const __m512 wv = _mm512_set1_ps(wr[o * ckk + q]);                       \
                            _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                    \
                                acc[o][r] = _mm512_fmadd_ps(wv, xv[r], acc[o][r]);                   \
                        }                                                                            \
                    }                                                                                \
                }                                                                                    \
            _Pragma("GCC unroll 32") for (int o = 0; o < OB; o++) {                                  \
                const __m512 bv = _mm512_set1_ps(b ? b[o0 + o] : 0.0f);                              \
                _Pragma("GCC unroll 32") for (int r = 0; r < RB; r++)                                \
                    _mm512_mask_storeu_ps(out + ((long)(o0 + o) * h + y0 + r) * wd + x0, m,          \
                                          _mm512_add_ps(acc[o][r], bv));                             \
            }                                                                                        \
        }                                                                                            \
    }                                                                                                \
    static void hpc_fwd_##OB##x##RB(const float* xp, int cin, long plane, int wp, int k,            \
                                    const float* w, const float* b, float* out, int h, int wd,       \
                                    int o0, int y0) {                                                \
        hpc_fwd_body_##OB##x##RB(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);                   \
    }

    HPC_FWD(4, 7)
    HPC_FWD(6, 2)
    HPC_FWD(4, 2)
    HPC_FWD(2, 7)
    HPC_FWD(8, 2)
    HPC_FWD(6, 4)
    HPC_FWD(3, 7)
    HPC_FWD(4, 4)
    HPC_FWD(2, 2)
    HPC_FWD(1, 7)
    HPC_FWD(1, 4)
    HPC_FWD(1, 1)

    typedef void (*hpc_fwd_fn)(const float*, int, long, int, int, const float*, const float*, float*,
                               int, int, int, int);

    /* The convolution of padded planes xp (cin, h + 2 pad, wd + 2 pad) with w (cout, cin, k, k), plus
       b if not NULL, into out (cout, h, wd): the first register block, in order of measured speed,
       whose sizes divide (cout, h); one channel by one row always does. */
    static void hpc_fwd_planes(const float* xp, int cin, int k, const float* w, const float* b,
                               float* out, int cout, int h, int wd) {
        static const struct { int ob, rb; hpc_fwd_fn fn; } blocks[] = {
            {8, 2, hpc_fwd_8x2}, {6, 4, hpc_fwd_6x4}, {3, 7, hpc_fwd_3x7}, {6, 2, hpc_fwd_6x2},
            {4, 7, hpc_fwd_4x7}, {2, 7, hpc_fwd_2x7}, {4, 4, hpc_fwd_4x4}, {4, 2, hpc_fwd_4x2},
            {2, 2, hpc_fwd_2x2}, {1, 7, hpc_fwd_1x7}, {1, 4, hpc_fwd_1x4}, {1, 1, hpc_fwd_1x1}};
        const int pad = k / 2, wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        /* LeNet's two shapes, sizes as constants (GCC unrolls the taps and drops the loops'
           address arithmetic); against c546190's code in a C harness (Xeon, 2026-11-30,
           results/bench-xeon-2026-11-30/harness9), outputs identical:
           - conv1's forward (1 -> 6 channels, 28 x 28): 1.16-1.26x on this kernel;
           - conv2's input gradient (16 -> 6, 14 x 14): 6 channels x 4 rows, the last 2 rows 6 x 2,
             1.12-1.18x against the table's 3 x 7 (7 split loads per 21 FMAs: the load ports
             were the limit); the 3 x 7 blocks with constant sizes gained nothing. */
        if (cin == 1 && k == 5 && cout == 6 && h == 28 && wd == 28) {
            for (int y0 = 0; y0 < 28; y0 += 4)
                hpc_fwd_body_6x4(xp, 1, 32 * 32, 32, 5, w, b, out, 28, 28, 0, y0);
            return;
        }
        if (cin == 16 && k == 5 && cout == 6 && h == 14 && wd == 14) {
            for (int y0 = 0; y0 < 12; y0 += 4)
                hpc_fwd_body_6x4(xp, 16, 18 * 18, 18, 5, w, b, out, 14, 14, 0, y0);
            hpc_fwd_body_6x2(xp, 16, 18 * 18, 18, 5, w, b, out, 14, 14, 0, 12);
            return;
        }
        int i = 0;
        while (cout % blocks[i].ob != 0 || h % blocks[i].rb != 0) i++;
        for (int o0 = 0; o0 < cout; o0 += blocks[i].ob)
            for (int y0 = 0; y0 < h; y0 += blocks[i].rb)
                blocks[i].fn(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);
    }

    /* acc[o, c, p, q0 + j] (16 lanes each, summed at the end) += g[o, y, u] * xp[c, y + p, u + q0 + j]
       over (y, u), for o in [o0, o0 + OB) and j < QB.  Lanes past the row's end load g AND xp as
       zero: xp there holds the padding and the next row's pixels, and 0 * inf would be NaN. */
    #define HPC_DW(OB, QB)                                                                           \
    static void hpc_dw_##OB##x##QB(const float* xp, const float* g, float* acc16, int cin, long plane,\
                                   int wp, int k, int h, int wd, int c, int p, int o0, int q0) {      \
        const long hw = (long)h * wd;                                                                \
        __m512 acc[OB][QB];                                                                          \
        float* a[OB];                                                                                \
        _Pragma("GCC unroll 32") for (int o = 0; o < OB; o++) {                                      \
            a[o] = acc16 + ((((long)(o0 + o) * cin + c) * k + p) * k + q0) * 16;                     \
            _Pragma("GCC unroll 32") for (int j = 0; j < QB; j++)                                    \
                acc[o][j] = _mm512_loadu_ps(a[o] + 16 * j);                                          \
        }                                                                                            \
        for (int y = 0; y < h; y++) {                                                                \
            const float* xr = xp + c * plane + (long)(y + p) * wp + q0;                              \
            const float* gr = g + o0 * hw + (long)y * wd;                                            \
            for (int x0 = 0; x0 < wd; x0 += 16) {                                                    \
                const __mmask16 m = hpc_tail(wd - x0);                                               \
                __m512 xv[QB];                                                                       \
                _Pragma("GCC unroll 32") for (int j = 0; j < QB; j++)                                \
                    xv[j] = _mm512_maskz_loadu_ps(m, xr + x0 + j);                                   \
                _Pragma("GCC unroll 32") for (int j = 0; j < QB; j++)                                \
                    __asm__("" : "+v"(xv[j]));                                                       \
                _Pragma("GCC unroll 32") for (int o = 0; o < OB; o++) {                              \
                    const __m512 d = _mm512_maskz_loadu_ps(m, gr + o * hw + x0);                     \
                    _Pragma("GCC unroll 32") for (int j = 0; j < QB; j++)                            \
                        acc[o][j] = _mm512_fmadd_ps(d, xv[j], acc[o][j]);                            \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
        _Pragma("GCC unroll 32") for (int o = 0; o < OB; o++)                                        \
            _Pragma("GCC unroll 32") for (int j = 0; j < QB; j++)                                    \
                _mm512_storeu_ps(a[o] + 16 * j, acc[o][j]);                                          \
    }

    HPC_DW(4, 5)
    HPC_DW(3, 5)
    HPC_DW(2, 5)
    HPC_DW(1, 5)
    HPC_DW(4, 1)
    HPC_DW(3, 1)
    HPC_DW(2, 1)
    HPC_DW(1, 1)

    typedef void (*hpc_dw_fn)(const float*, const float*, float*, int, long, int, int, int, int, int,
                              int, int, int);

    /* acc16[o, c, p, q, :] += lane-wise partial sums of dw for one image: xp its padded input planes
       (cin, h + 2 pad, wd + 2 pad), g its dout (cout, h, wd). */
    static void hpc_dw_image(const float* xp, const float* g, float* acc16, int cin, int cout, int h,
                             int wd, int k) {
        const int pad = k / 2, wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        const int ob = cout % 4 == 0 ? 4 : cout % 3 == 0 ? 3 : cout % 2 == 0 ? 2 : 1;
        const hpc_dw_fn wide = ob == 4 ? hpc_dw_4x5 : ob == 3 ? hpc_dw_3x5 : ob == 2 ? hpc_dw_2x5
                                                                                    : hpc_dw_1x5;
        const hpc_dw_fn narrow = ob == 4 ? hpc_dw_4x1 : ob == 3 ? hpc_dw_3x1 : ob == 2 ? hpc_dw_2x1
                                                                                      : hpc_dw_1x1;
        for (int c = 0; c < cin; c++)
            for (int p = 0; p < k; p++)
                for (int o0 = 0; o0 < cout; o0 += ob) {
                    int q0 = 0;
                    for (; q0 + 5 <= k; q0 += 5)
                        wide(xp, g, acc16, cin, plane, wp, k, h, wd, c, p, o0, q0);
                    for (; q0 < k; q0++)
                        narrow(xp, g, acc16, cin, plane, wp, k, h, wd, c, p, o0, q0);
                }
    }

    /* The weight gradient with the output channels in the 16 lanes, for k == 5 and cout a multiple
       of 16 (conv2): dwt[(c*25 + p*5 + q)*cout + o] += sum over (y, u) of g[o, y, u] *
       xp[c, y + p, u + q].  Per pixel, one load of the 16 channels' dout (from gt, g transposed to
       (h*wd, cout)) feeds 25 FMAs whose other operand is one broadcast pixel: no lane is wasted on a
       row's end, no load straddles a cache line, and the 25 accumulators stay in registers for the
       whole image; two neighbouring pixels share each broadcast.  On conv2 (14-pixel rows) it is
       1.9x as fast as the kernel above, lanes along a row (Xeon, 2026-11-30, min of 30 interleaved). */
    static inline __attribute__((always_inline)) void hpc_dw_olanes5_body(
            const float* xp, const float* g, float* gt, float* dwt, int cin, int cout, int h, int wd) {
        const int wp = wd + 4;
        const long plane = (long)(h + 4) * wp, hw = (long)h * wd;
        for (long j = 0; j < hw; j++)
            for (int o = 0; o < cout; o++) gt[j * cout + o] = g[(long)o * hw + j];
        for (int c = 0; c < cin; c++)
            for (int o0 = 0; o0 < cout; o0 += 16) {
                float* d = dwt + (long)c * 25 * cout + o0;
                /* From zero per image and added to dwt at the end: a batch's terms are summed per
                   image first, which keeps the float32 rounding error of a long batch down. */
                __m512 acc[25];
                _Pragma("GCC unroll 32") for (int t = 0; t < 25; t++) acc[t] = _mm512_setzero_ps();
                for (int y = 0; y < h; y++) {
                    const float* gr = gt + (long)y * wd * cout + o0;
                    const float* xr = xp + c * plane + (long)y * wp;
                    int u = 0;
                    /* Two pixels at a time: pixel u + 1's tap q is pixel u's tap q + 1, so each
                       broadcast of the 5 x 6 window feeds two FMAs (50 FMAs per 32 loads). */
                    for (; u + 2 <= wd; u += 2) {
                        const __m512 g0 = _mm512_loadu_ps(gr + (long)u * cout);
                        const __m512 g1 = _mm512_loadu_ps(gr + (long)(u + 1) * cout);
                        /* Hides from GCC that this window overlaps the next pair's: otherwise
                           -O3 carries 20 of its pixels over to the next iteration in scalar
                           registers and on the stack, and the loop runs 1.2-1.4x slower (Xeon,
                           results/bench-xeon-2026-11-30/harness, 2026-11-30). */
                        const float* xu = xr + u;
                        __asm__("" : "+r"(xu));
                        _Pragma("GCC unroll 32") for (int p = 0; p < 5; p++)
                            _Pragma("GCC unroll 32") for (int q = 0; q < 6; q++) {
                                const __m512 xv = _mm512_set1_ps(xu[p * wp + q]);
                                if (q < 5) acc[p * 5 + q] = _mm512_fmadd_ps(g0, xv, acc[p * 5 + q]);
                                if (q > 0)
                                    acc[p * 5 + q - 1] = _mm512_fmadd_ps(g1, xv, acc[p * 5 + q - 1]);
                            }
                    }
                    for (; u < wd; u++) {
                        const __m512 g0 = _mm512_loadu_ps(gr + (long)u * cout);
                        _Pragma("GCC unroll 32") for (int p = 0; p < 5; p++)
                            _Pragma("GCC unroll 32") for (int q = 0; q < 5; q++)
                                acc[p * 5 + q] = _mm512_fmadd_ps(g0, _mm512_set1_ps(xr[p * wp + u + q]),
                                                                 acc[p * 5 + q]);
                    }
                }
                _Pragma("GCC unroll 32") for (int t = 0; t < 25; t++)
                    _mm512_storeu_ps(d + (long)t * cout,
                                     _mm512_add_ps(_mm512_loadu_ps(d + (long)t * cout), acc[t]));
            }
    }

    /* LeNet's conv2 (6 -> 16 channels, 14 x 14) as constants: GCC then unrolls the loops and turns
       the transposition into vector permutes; with run-time sizes this kernel took 1.5x as long
       (C harness, Xeon, 2026-11-30).  Any other shape runs the same code with run-time sizes. */
    static void hpc_dw_image_olanes5(const float* xp, const float* g, float* gt, float* dwt, int cin,
                                     int cout, int h, int wd) {
        if (cin == 6 && cout == 16 && h == 14 && wd == 14)
            hpc_dw_olanes5_body(xp, g, gt, dwt, 6, 16, 14, 14);
        else
            hpc_dw_olanes5_body(xp, g, gt, dwt, cin, cout, h, wd);
    }

    /* r[i][j] -> r[j][i] for a 16 x 16 block in registers (unpack 32- and 64-bit pairs, then
       exchange 128-bit lanes twice). */
    static inline void hpc_tr16(__m512 r[16]) {
        __m512 t[16], u[16];
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]),
                          c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
            u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
            u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
            u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
            u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
        }
        for (int i = 0; i < 4; i++) {
            t[i] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0x88);
            t[i + 4] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0xdd);
            t[i + 8] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0x88);
            t[i + 12] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0xdd);
        }
        for (int i = 0; i < 8; i++) {
            r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
            r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        }
    }

    /* The fused forward of conv (k = 5, cout a multiple of 16, wd >= 14, h and wd even) + bias +
       2x2 max pooling + ReLU for one image, with 16 output channels in the lanes: per output row,
       14 neighbouring pixels' accumulators (wider rows: blocks of 14, the last one moved back to
       end at the row's end); per (c, p), the 5 weight vectors wt[c, p, q, o0:o0+16] stay in
       registers and each of the row's 18 input pixels is broadcast once for up to 5 FMAs.  The
       first row of a pooling pair goes to `rows`, the second is pooled against it in registers,
       so the pre-pool map never exists; pooled values and positions (as hpc_pool_fwd: first
       maximum, first NaN) go to `pool` and `pidx` (ho*wo*16 each, pixel-major) and are transposed
       into out and idx at the end, 16 pixels at a time in registers; idx and pidx NULL: the pooled
       values only.  wt: the weights as (cin, 5, 5, cout). */
    static void hpc_fwd_pool_olanes5(const float* xp, int cin, const float* wt, const float* b,
                                     float* out, unsigned char* idx, int cout, int h, int wd,
                                     float* rows, float* pool, unsigned char* pidx) {
        const int wp = wd + 4, ho = h / 2, wo = wd / 2;
        const long plane = (long)(h + 4) * wp, hw2 = (long)ho * wo;
        const __m512 zero = _mm512_setzero_ps();
        for (int o0 = 0; o0 < cout; o0 += 16) {
            const __m512 bv = _mm512_loadu_ps(b + o0);
            for (int y = 0; y < h; y++)
                for (int ub = 0; ub < wd; ub += 14) {
                    const int u0 = ub + 14 <= wd ? ub : wd - 14;
                    __m512 acc[14];
                    _Pragma("GCC unroll 32") for (int u = 0; u < 14; u++) acc[u] = bv;
                    for (int c = 0; c < cin; c++)
                        for (int p = 0; p < 5; p++) {
                            const float* xr = xp + c * plane + (long)(y + p) * wp + u0;
                            const float* wr = wt + (long)(c * 5 + p) * 5 * cout + o0;
                            __m512 wv[5];
                            _Pragma("GCC unroll 32") for (int q = 0; q < 5; q++)
                                wv[q] = _mm512_loadu_ps(wr + (long)q * cout);
                            _Pragma("GCC unroll 32") for (int j = 0; j < 18; j++) {
                                const __m512 xb = _mm512_set1_ps(xr[j]);
                                _Pragma("GCC unroll 32") for (int q = 0; q < 5; q++)
                                    if (j - q >= 0 && j - q < 14)
                                        acc[j - q] = _mm512_fmadd_ps(wv[q], xb, acc[j - q]);
                            }
                        }
                    if (y % 2 == 0) {
                        _Pragma("GCC unroll 32") for (int u = 0; u < 14; u++)
                            _mm512_storeu_ps(rows + ((long)u0 + u) * 16, acc[u]);
                        continue;
                    }
                    _Pragma("GCC unroll 32") for (int s = 0; s < 7; s++) {
                        const int px = u0 / 2 + s;
                        __m512 best = _mm512_loadu_ps(rows + ((long)u0 + 2 * s) * 16);
                        __m512i arg = _mm512_setzero_si512();
                        __m512 v = _mm512_loadu_ps(rows + ((long)u0 + 2 * s + 1) * 16);
                        const __mmask16 m1 = hpc_wins(v, best);
                        best = _mm512_mask_mov_ps(best, m1, v);
                        const __mmask16 m2 = hpc_wins(acc[2 * s], best);
                        best = _mm512_mask_mov_ps(best, m2, acc[2 * s]);
                        const __mmask16 m3 = hpc_wins(acc[2 * s + 1], best);
                        best = _mm512_mask_mov_ps(best, m3, acc[2 * s + 1]);
                        best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(best, zero, _CMP_LT_OQ), zero);
                        const long j = (long)(y / 2) * wo + px;
                        _mm512_storeu_ps(pool + j * 16, best);
                        if (pidx) {
                            arg = _mm512_mask_mov_epi32(arg, m1, _mm512_set1_epi32(1));
                            arg = _mm512_mask_mov_epi32(arg, m2, _mm512_set1_epi32(2));
                            arg = _mm512_mask_mov_epi32(arg, m3, _mm512_set1_epi32(3));
                            _mm_storeu_si128((__m128i*)(pidx + j * 16), _mm512_cvtepi32_epi8(arg));
                        }
                    }
                }
            /* pool and pidx (pixel-major) -> out and idx (channel-major), 16 pixels at a time in
               16 x 16 register transposes (the positions widened to 32 bits for it); a scalar
               loop here took 14% of this function (perf, Xeon, 2026-11-30). */
            for (long j0 = 0; j0 < hw2; j0 += 16) {
                const int n = hw2 - j0 < 16 ? (int)(hw2 - j0) : 16;
                const __mmask16 m = hpc_lanes(n);
                __m512 r[16], a[16];
                _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {
                    const long jj = j0 + (i < n ? i : 0);  /* past the end: any pixel, not stored */
                    r[i] = _mm512_loadu_ps(pool + jj * 16);
                    if (idx)
                        a[i] = _mm512_castsi512_ps(_mm512_cvtepu8_epi32(
                            _mm_loadu_si128((const __m128i*)(pidx + jj * 16))));
                }
                hpc_tr16(r);
                _Pragma("GCC unroll 16") for (int o = 0; o < 16; o++)
                    _mm512_mask_storeu_ps(out + (long)(o0 + o) * hw2 + j0, m, r[o]);
                if (!idx) continue;
                hpc_tr16(a);
                _Pragma("GCC unroll 16") for (int o = 0; o < 16; o++)
                    _mm_mask_storeu_epi8(idx + (long)(o0 + o) * hw2 + j0, m,
                                         _mm512_cvtepi32_epi8(_mm512_castps_si512(a[o])));
            }
        }
    }

    /* The 16 images' pixels (x float32, or x8 uint8 pixels times `scale` rounded to float32, as
       hpc_pad_rows_u8; x NULL then; an h x wd plane each, `istride` elements apart) transposed into
       pixel vectors, lane i image i, in the interior of the padded grid xb ((h + 4) x (wd + 4)
       vectors), in 16 x 16 register transposes.  Shared by the 16-image backward and forward
       kernels below (the Winograd one calls it per input channel). */
    static void hpc_pixels16(const float* x, const unsigned char* x8, float scale, int h, int wd,
                             long istride, float* xb) {
        const int wp = wd + 4;
        const long px = (long)h * wd;
        const __m512 sv = _mm512_set1_ps(scale);
        __m512 r[16];
        long yy = 0, uu = 0;
        for (long b0 = 0; b0 < px; b0 += 16) {
            const int n = px - b0 < 16 ? (int)(px - b0) : 16;
            const __mmask16 m = hpc_lanes(n);
            for (int i = 0; i < 16; i++)
                r[i] = x ? _mm512_maskz_loadu_ps(m, x + i * istride + b0)
                         : _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                             _mm_maskz_loadu_epi8(m, x8 + i * istride + b0))), sv);
            hpc_tr16(r);
            for (int j = 0; j < n; j++) {
                _mm512_storeu_ps(xb + ((yy + 2) * wp + uu + 2) * 16, r[j]);
                if (++uu == wd) uu = 0, yy++;
            }
        }
    }

    /* The reverse for the pooled maps of 16 images: pool (pf vectors, lane i image i) and their
       positions pidx (16 bytes per value) to out and idx (pf values per image, consecutive), 16
       values at a time in 16 x 16 register transposes; idx NULL: the values only (pidx unread). */
    static void hpc_unlane16(const float* pool, const unsigned char* pidx, long pf, float* out,
                             unsigned char* idx) {
        __m512 r[16], a[16];
        for (long f0 = 0; f0 < pf; f0 += 16) {
            const int n = pf - f0 < 16 ? (int)(pf - f0) : 16;
            const __mmask16 m = hpc_lanes(n);
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
                const long f = f0 + (j < n ? j : 0);  /* past the end: any value, not stored */
                r[j] = _mm512_loadu_ps(pool + f * 16);
                if (idx)
                    a[j] = _mm512_castsi512_ps(_mm512_cvtepu8_epi32(
                        _mm_loadu_si128((const __m128i*)(pidx + f * 16))));
            }
            hpc_tr16(r);
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
                _mm512_mask_storeu_ps(out + i * pf + f0, m, r[i]);
            if (!idx) continue;
            hpc_tr16(a);
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
                _mm_mask_storeu_epi8(idx + i * pf + f0, m, _mm512_cvtepi32_epi8(_mm512_castps_si512(a[i])));
        }
    }

    /* The backward pass of conv (1 input channel, k = 5, cout a multiple of 3 up to 8, h and wd even)
       -> 2x2 max pooling -> ReLU for 16 images at once, the images in the 16 lanes: every load in
       the weight gradient's loop is a whole vector (no masks) and no lane idles on a row's end.
       x, dout, y, idx point at the first of the 16 images (x (h, wd) each; dout, y, idx (cout,
       h/2, wd/2) each).  Scratch: xb, (h + 4) x
       (wd + 4) pixel vectors whose border is zero; dt and kt, cout*h*wd/4 vectors each; g2, 2*cout*wd
       vectors.  Adds to acc16[o, p, q, lane] (summed over the lanes later, as hpc_dw_image's) and to
       db[o]. */
    static void hpc_bwd1_group16(const float* x, const float* dout, const float* y,
                                 const unsigned char* idx, int cout, int h, int wd, float* xb,
                                 float* dt, float* kt, float* g2, float* acc16, float* db) {
        const int wp = wd + 4, ho = h / 2, wo = wd / 2;
        const long pf = (long)cout * ho * wo;
        const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
        __m512 r[16], k[16];
        hpc_pixels16(x, NULL, 1.0f, h, wd, (long)h * wd, xb);  /* the 16 images' pixels, as pixel vectors */
        /* the pooled gradient times the ReLU's (dout * (y > 0), a product as hpc_pool_bwd's: NaN or
           inf times 0 stays NaN) and the pooling positions, transposed */
        for (long b0 = 0; b0 < pf; b0 += 16) {
            const int n = pf - b0 < 16 ? (int)(pf - b0) : 16;
            const __mmask16 m = hpc_lanes(n);
            for (int i = 0; i < 16; i++) {
                const __m512 d = _mm512_maskz_loadu_ps(m, dout + i * pf + b0);
                const __m512 yv = _mm512_maskz_loadu_ps(m, y + i * pf + b0);
                r[i] = _mm512_mul_ps(d, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(yv, zero, _CMP_GT_OQ), one));
                k[i] = _mm512_castsi512_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, idx + i * pf + b0)));
            }
            hpc_tr16(r);
            hpc_tr16(k);
            for (int j = 0; j < n; j++) {
                _mm512_storeu_ps(dt + (b0 + j) * 16, r[j]);
                _mm512_storeu_ps(kt + (b0 + j) * 16, k[j]);
            }
        }
        /* db[o]: the sum of channel o's pooled gradient, taken as the loop below loads it (per
           lane, in the order rr, ss), reduced over the lanes at the end */
        __m512 sdb[8];
        for (int o = 0; o < cout; o++) sdb[o] = zero;
        /* Per pooled row: its two pre-pool rows' gradient (the pooled gradient at each window's
           pooled position, 0 at the other three) into g2, then dw[o, p, q] += g[o, y, u] * x[y + p,
           u + q] over those rows, 3 channels x the 5 taps of a kernel row in registers; along a row
           each pixel's 5-tap window is the previous one moved by one. */
        for (int rr = 0; rr < ho; rr++) {
            for (int o = 0; o < cout; o++)
                for (int ss = 0; ss < wo; ss++) {
                    const long f = ((long)o * ho + rr) * wo + ss;
                    const __m512 d = _mm512_loadu_ps(dt + f * 16);
                    sdb[o] = _mm512_add_ps(sdb[o], d);
                    const __m512i a = _mm512_castps_si512(_mm512_loadu_ps(kt + f * 16));
                    float* g0 = g2 + ((long)o * 2 * wd + 2 * ss) * 16;
                    /* window position a = 2 * row + column, as hpc_pool_bwd's */
                    for (int pos = 0; pos < 4; pos++) {
                        const __mmask16 at = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(pos));
                        _mm512_storeu_ps(g0 + ((pos >> 1) * wd + (pos & 1)) * 16, _mm512_maskz_mov_ps(at, d));
                    }
                }
            for (int dy = 0; dy < 2; dy++)
                for (int o0 = 0; o0 < cout; o0 += 3)
                    for (int p = 0; p < 5; p++) {
                        float* ac = acc16 + ((long)o0 * 25 + p * 5) * 16;
                        const float* xr = xb + (long)(2 * rr + dy + p) * wp * 16;
                        const float* gr = g2 + ((long)o0 * 2 + dy) * wd * 16;
                        __m512 acc[3][5];
                        for (int o = 0; o < 3; o++)
                            for (int q = 0; q < 5; q++)
                                acc[o][q] = _mm512_loadu_ps(ac + (o * 25 + q) * 16);
                        __m512 x0 = _mm512_loadu_ps(xr), x1 = _mm512_loadu_ps(xr + 16),
                               x2 = _mm512_loadu_ps(xr + 32), x3 = _mm512_loadu_ps(xr + 48);
                        for (int u = 0; u < wd; u++) {
                            const __m512 x4 = _mm512_loadu_ps(xr + (u + 4) * 16);
                            for (int o = 0; o < 3; o++) {
                                const __m512 gv = _mm512_loadu_ps(gr + ((long)o * 2 * wd + u) * 16);
                                acc[o][0] = _mm512_fmadd_ps(gv, x0, acc[o][0]);
                                acc[o][1] = _mm512_fmadd_ps(gv, x1, acc[o][1]);
                                acc[o][2] = _mm512_fmadd_ps(gv, x2, acc[o][2]);
                                acc[o][3] = _mm512_fmadd_ps(gv, x3, acc[o][3]);
                                acc[o][4] = _mm512_fmadd_ps(gv, x4, acc[o][4]);
                            }
                            x0 = x1; x1 = x2; x2 = x3; x3 = x4;
                        }
                        for (int o = 0; o < 3; o++)
                            for (int q = 0; q < 5; q++)
                                _mm512_storeu_ps(ac + (o * 25 + q) * 16, acc[o][q]);
                    }
        }
        for (int o = 0; o < cout; o++) db[o] += _mm512_reduce_add_ps(sdb[o]);
    }

    /* OB output channels (from o0) of the fused forward below, for one pooling window per step:
       its 2 x 2 pre-pool outputs x OB channels in 4 * OB accumulators, per tap the window's 4
       input vectors and OB weight broadcasts for 4 * OB FMAs.  Each output's taps are summed
       in the order (p, q) from zero and the bias added last, as hpc_fwd_body's, so the values
       are those of the image-by-image path bit for bit; the window is then pooled as
       hpc_pool_fwd pools (first maximum, first NaN; position 2 * row + column) and ReLU'd.
       pidx NULL: values only (a copy inlined with a literal NULL, specialised, ran conv1 slower:
       0.36 ms per 256 images against 0.32 for the same build's pass with positions, min of 100,
       one run, not kept; AMD EPYC Zen 5, 2026-12-02). */
    static inline __attribute__((always_inline)) void hpc_fwd1_block(
            const float* xb, const float* w, const float* b, int o0, const int OB, int ho, int wo,
            float* pool, unsigned char* pidx) {
        const int wp = 2 * wo + 4;
        const long hw2 = (long)ho * wo;
        const __m512 zero = _mm512_setzero_ps();
        for (int rr = 0; rr < ho; rr++)
            for (int ss = 0; ss < wo; ss++) {
                __m512 acc[6][4];
                _Pragma("GCC unroll 8") for (int o = 0; o < OB; o++)
                    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) acc[o][j] = zero;
                const float* xw = xb + ((long)(2 * rr) * wp + 2 * ss) * 16;
                _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++)
                    _Pragma("GCC unroll 5") for (int q = 0; q < 5; q++) {
                        const float* xt = xw + ((long)p * wp + q) * 16;
                        const __m512 x00 = _mm512_loadu_ps(xt), x01 = _mm512_loadu_ps(xt + 16),
                                     x10 = _mm512_loadu_ps(xt + wp * 16), x11 = _mm512_loadu_ps(xt + wp * 16 + 16);
                        _Pragma("GCC unroll 8") for (int o = 0; o < OB; o++) {
                            const __m512 wv = _mm512_set1_ps(w[(o0 + o) * 25 + p * 5 + q]);
                            acc[o][0] = _mm512_fmadd_ps(wv, x00, acc[o][0]);
                            acc[o][1] = _mm512_fmadd_ps(wv, x01, acc[o][1]);
                            acc[o][2] = _mm512_fmadd_ps(wv, x10, acc[o][2]);
                            acc[o][3] = _mm512_fmadd_ps(wv, x11, acc[o][3]);
                        }
                    }
                _Pragma("GCC unroll 8") for (int o = 0; o < OB; o++) {
                    const __m512 bv = _mm512_set1_ps(b[o0 + o]);
                    __m512 best = _mm512_add_ps(acc[o][0], bv);
                    __m512i arg = _mm512_setzero_si512();
                    _Pragma("GCC unroll 4") for (int j = 1; j < 4; j++) {
                        const __m512 v = _mm512_add_ps(acc[o][j], bv);
                        const __mmask16 m = hpc_wins(v, best);
                        best = _mm512_mask_mov_ps(best, m, v);
                        if (pidx) arg = _mm512_mask_mov_epi32(arg, m, _mm512_set1_epi32(j));
                    }
                    best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(best, zero, _CMP_LT_OQ), zero);
                    const long f = (long)(o0 + o) * hw2 + (long)rr * wo + ss;
                    _mm512_storeu_ps(pool + f * 16, best);
                    if (pidx) _mm_storeu_si128((__m128i*)(pidx + f * 16), _mm512_cvtepi32_epi8(arg));
                }
            }
    }

    /* The fused forward of conv (1 input channel, k = 5, cout 3 or 6, h and wd even) + bias + 2 x 2
       max pooling + ReLU for 16 images at once, the images in the 16 lanes (as hpc_bwd1_group16):
       no lane idles on a row's end (28-pixel rows filled 28 of 32 lanes image by image), every
       load is one aligned vector, and each pooling window is pooled in registers, so the
       pre-pool map never exists.  x (or x8, uint8 pixels times `scale` rounded to float32 as
       hpc_pad_rows_u8; x NULL then) points at the first of the 16 images (h x wd each); out and
       idx (cout, h/2, wd/2) each; idx NULL: the pooled values only (evaluation), with no position
       computed, stored or transposed.  Scratch: xb, (h + 4) x (wd + 4) pixel vectors
       whose border the caller zeroed; pool, cout*h*wd/4 vectors; pidx, 16 bytes per pooled
       value.  The pooled maps go to out and idx in 16 x 16 register transposes. */
    static void hpc_fwd1_group16(const float* x, const unsigned char* x8, float scale, const float* w,
                                 const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                                 float* xb, float* pool, unsigned char* pidx) {
        const int ho = h / 2, wo = wd / 2;
        hpc_pixels16(x, x8, scale, h, wd, (long)h * wd, xb);
        if (cout == 6)
            hpc_fwd1_block(xb, w, b, 0, 6, ho, wo, pool, pidx);
        else
            hpc_fwd1_block(xb, w, b, 0, 3, ho, wo, pool, pidx);
        hpc_unlane16(pool, pidx, (long)cout * ho * wo, out, idx);
    }
    /* Winograd F(2 x 2, 5 x 5) (Lavin and Gray 2016, "Fast Algorithms for Convolutional Neural
       Networks", CVPR, section 4; Toom-Cook at the points 0, 1, -1, 2, -2 and infinity): each 2 x 2
       output tile, which is one pooling window, is A^T [(G g G^T) . (B^T d B)] A of the 6 x 6 input
       tile d around it, 36 products per input and output channel pair where the direct sum takes
       100.  The matrices (derived for these points; checked by tests/test_kernels.py against the
       direct sum):
         B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
         G   = [1/4 0 0 0 0; -1/6 -1/6 -1/6 -1/6 -1/6; -1/6 1/6 -1/6 1/6 -1/6;
                1/24 1/12 1/6 1/3 2/3; 1/24 -1/12 1/6 -1/3 2/3; 0 0 0 0 1]
         A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1]
       v = B^T d for one column of 6 vectors (14 operations). */
    static inline __attribute__((always_inline)) void hpc_wino_bt(
            __m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 d4, __m512 d5, __m512 v[6]) {
        const __m512 c2 = _mm512_set1_ps(2.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f);
        const __m512 t5 = _mm512_sub_ps(d3, d1), t6 = _mm512_sub_ps(d4, d2);
        v[0] = _mm512_fmadd_ps(c4, d0, _mm512_fnmadd_ps(c5, d2, d4));
        v[1] = _mm512_fnmadd_ps(c4, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4));
        v[2] = _mm512_fmadd_ps(c4, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3));
        v[3] = _mm512_fmadd_ps(c2, t5, t6);
        v[4] = _mm512_fnmadd_ps(c2, t5, t6);
        v[5] = _mm512_fmadd_ps(c4, d1, _mm512_fnmadd_ps(c5, d3, d5));
    }

    /* (y0, y1) = A^T m for 6 vectors m[0:6]. */
    static inline __attribute__((always_inline)) void hpc_wino_at(const __m512* m, __m512* y0, __m512* y1) {
        *y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(m[0], m[1]), _mm512_add_ps(m[2], m[3])), m[4]);
        *y1 = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), _mm512_sub_ps(m[3], m[4]),
                              _mm512_add_ps(_mm512_sub_ps(m[1], m[2]), m[5]));
    }

    /* The forward-only conv (k = 5, cout a multiple of 16, h and wd even) + bias + 2 x 2 max pooling
       + ReLU of 16 images at once, the images in the 16 lanes, by Winograd F(2 x 2, 5 x 5): each
       2 x 2 output tile is a pooling window, pooled and ReLU'd in registers as it is formed (first
       maximum, first NaN, as hpc_pool_fwd), so neither the pre-pool map nor positions exist.  Per
       tile and 16 images: 36 cin cout FMAs (the direct sum: 100 cin cout), 6 cin column input
       transforms plus the tile column's row transforms shared by its tiles (3 cin per tile at
       h = 14), and 8 cout output transforms, each of 6 points (conv2 0.86 against 1.14 ms per 256
       images, BENCHMARKS.md session 22); rounding
       differs from the direct sum's (a relative error near 2e-6 of the largest output, against 2e-7;
       tests/test_kernels.py); an inf in a window's 6 x 6 input block may make that window NaN even
       where the direct sum's is finite.  For evaluation only: the training pass keeps the direct
       sum and its positions (module docstring).
       x points at the first of the 16 images (cin, h, wd each, consecutive); out (cout, h/2, wd/2)
       each; u from hpc_wino_weights.  Scratch: xb, cin (h + 4) x (wd + 4) pixel vectors whose border
       the caller zeroed; th, 6 cin (h + 4) vectors; v, 36 cin vectors; m, 36 x 16 vectors; pool,
       cout h wd / 4 vectors. */
    static void hpc_fwd_wino25_group16(const float* x, int cin, const float* u, const float* b,
                                       float* out, int cout, int h, int wd, float* xb, float* th,
                                       float* v, float* m, float* pool) {
        const int hp = h + 4, wp = wd + 4, ho = h / 2, wo = wd / 2;
        const long px = (long)h * wd, hw2 = (long)ho * wo;
        const __m512 zero = _mm512_setzero_ps();
        for (int c = 0; c < cin; c++)  /* the 16 images' pixels, channel by channel */
            hpc_pixels16(x + c * px, NULL, 1.0f, h, wd, cin * px, xb + (long)c * hp * wp * 16);
        for (int tx = 0; tx < wo; tx++) {
            /* th[(c * hp + y) * 6 + b] = (d B)[y][b], the rows of the tile column's 6 input columns
               transformed once for all its tiles (each row serves up to 3 of them) */
            for (int c = 0; c < cin; c++)
                for (int y = 0; y < hp; y++) {
                    const float* dr = xb + (((long)c * hp + y) * wp + 2 * tx) * 16;
                    __m512 t[6];
                    hpc_wino_bt(_mm512_loadu_ps(dr), _mm512_loadu_ps(dr + 16), _mm512_loadu_ps(dr + 32),
                                _mm512_loadu_ps(dr + 48), _mm512_loadu_ps(dr + 64), _mm512_loadu_ps(dr + 80), t);
                    _Pragma("GCC unroll 6") for (int bb = 0; bb < 6; bb++)
                        _mm512_storeu_ps(th + (((long)c * hp + y) * 6 + bb) * 16, t[bb]);
                }
            for (int ty = 0; ty < ho; ty++) {
                /* v[(a * 6 + b) * cin + c] = (B^T d B)[a][b] of channel c's 6 x 6 tile d */
                for (int c = 0; c < cin; c++)
                    _Pragma("GCC unroll 6") for (int bb = 0; bb < 6; bb++) {
                        const float* tc = th + (((long)c * hp + 2 * ty) * 6 + bb) * 16;
                        __m512 col[6];
                        hpc_wino_bt(_mm512_loadu_ps(tc), _mm512_loadu_ps(tc + 96), _mm512_loadu_ps(tc + 192),
                                    _mm512_loadu_ps(tc + 288), _mm512_loadu_ps(tc + 384), _mm512_loadu_ps(tc + 480),
                                    col);
                        _Pragma("GCC unroll 6") for (int a = 0; a < 6; a++)
                            _mm512_storeu_ps(v + ((long)(a * 6 + bb) * cin + c) * 16, col[a]);
                    }
                for (int o0 = 0; o0 < cout; o0 += 16) {
                    const float* ub = u + (long)(o0 / 16) * 36 * cin * 16;
                    /* m[o][ab] = sum over c of u[ab][c][o] v[ab][c], 16 channels' chains at once */
                    for (int ab = 0; ab < 36; ab++) {
                        __m512 acc[16];
                        _Pragma("GCC unroll 16") for (int o = 0; o < 16; o++) acc[o] = zero;
                        for (int c = 0; c < cin; c++) {
                            const __m512 vv = _mm512_loadu_ps(v + ((long)ab * cin + c) * 16);
                            const float* uc = ub + ((long)ab * cin + c) * 16;
                            _Pragma("GCC unroll 16") for (int o = 0; o < 16; o++)
                                acc[o] = _mm512_fmadd_ps(_mm512_set1_ps(uc[o]), vv, acc[o]);
                        }
                        _Pragma("GCC unroll 16") for (int o = 0; o < 16; o++)
                            _mm512_storeu_ps(m + ((long)o * 36 + ab) * 16, acc[o]);
                    }
                    /* Y = A^T m A per channel, then bias, pooling (positions 0..3 row-major) and ReLU */
                    for (int o = 0; o < 16; o++) {
                        const __m512* mo = (const __m512*)(m + (long)o * 36 * 16);
                        __m512 r0[6], r1[6];
                        _Pragma("GCC unroll 6") for (int a = 0; a < 6; a++) {
                            __m512 row[6];
                            _Pragma("GCC unroll 6") for (int bb = 0; bb < 6; bb++)
                                row[bb] = _mm512_loadu_ps((const float*)(mo + a * 6 + bb));
                            hpc_wino_at(row, &r0[a], &r1[a]);
                        }
                        __m512 y00, y10, y01, y11;
                        hpc_wino_at(r0, &y00, &y10);
                        hpc_wino_at(r1, &y01, &y11);
                        const __m512 bv = _mm512_set1_ps(b[o0 + o]);
                        __m512 best = _mm512_add_ps(y00, bv), t;
                        t = _mm512_add_ps(y01, bv);
                        best = _mm512_mask_mov_ps(best, hpc_wins(t, best), t);
                        t = _mm512_add_ps(y10, bv);
                        best = _mm512_mask_mov_ps(best, hpc_wins(t, best), t);
                        t = _mm512_add_ps(y11, bv);
                        best = _mm512_mask_mov_ps(best, hpc_wins(t, best), t);
                        best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(best, zero, _CMP_LT_OQ), zero);
                        _mm512_storeu_ps(pool + ((long)(o0 + o) * hw2 + (long)ty * wo + tx) * 16, best);
                    }
                }
            }
        }
        hpc_unlane16(pool, NULL, cout * hw2, out, NULL);
    }

    /* The AVX2 build's; never called here. */
    static void hpc_fwd_wino25_group8(const float* x, int cin, const float* u, const float* b,
                                      float* out, int cout, int h, int wd, float* xb, float* th,
                                      float* v, float* m, float* pool) {}
    static void hpc_fwd1_group8(const float* x, const unsigned char* x8, float scale, const float* w,
                                const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                                float* xb, float* pool, unsigned char* pidx) {}

    /* db[o] += sum of g[o, :, :] for one image's dout g (cout, h, wd). */
    static void hpc_db_image(const float* g, int cout, int h, int wd, float* db) {
        const long hw = (long)h * wd;
        for (int o = 0; o < cout; o++) {
            const float* go = g + o * hw;
            __m512 s = _mm512_setzero_ps();
            long i = 0;
            for (; i + 16 <= hw; i += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(go + i));
            s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(hpc_tail((int)(hw - i)), go + i));
            db[o] += _mm512_reduce_add_ps(s);
        }
    }

    /* dw[j] += the sum of the 16 lanes of acc16[j, :], j < m. */
    static void hpc_dw_reduce(const float* acc16, long m, float* dw) {
        for (long j = 0; j < m; j++) dw[j] += _mm512_reduce_add_ps(_mm512_loadu_ps(acc16 + 16 * j));
    }

    #elif defined(__AVX2__) && defined(__FMA__)
    /* AVX2 + FMA without AVX-512 (AMD Zen 1-3, Intel Haswell to Comet Lake): the same direct
       convolution with 8-lane vectors, so these CPUs do not fall back to im2col + sgemm, whose
       per-image calls on LeNet's small matrices ran at 4-17 GFLOP/s (AMD EPYC, 2026-12-01).  The
       fused conv -> pool -> ReLU blocks keep each image's pre-pool map in cache as on AVX-512 (with
       hpc_pool.h's 8-lane pooling).  Of the kernels above with the images in the lanes, conv1's
       forward pass has an 8-image version here (hpc_fwd1_group8); its backward pass takes the
       pooled weight gradient (hpc_dw_pooled5), as conv2's. */
    #include <immintrin.h>
    #define HPC_DIRECT 1
    #define HPC_AVX512 0
    #define HPC_OLANES 1

    /* dst[c, y + pad, u + pad] = src[c, y, u] into planes zeroed by hpc_pad_zero. */
    static void hpc_pad_rows(const float* src, int nc, int h, int wd, int pad, float* dst) {
        const int wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        for (int c = 0; c < nc; c++)
            for (int y = 0; y < h; y++)
                memcpy(dst + c * plane + (long)(y + pad) * wp + pad, src + ((long)c * h + y) * wd,
                       (size_t)wd * sizeof(float));
    }

    /* hpc_pad_rows for uint8 pixels, each times `scale` rounded to float32 (as to_float). */
    static void hpc_pad_rows_u8(const unsigned char* src, int nc, int h, int wd, int pad, float scale,
                                float* dst) {
        const int wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        for (int c = 0; c < nc; c++)
            for (int y = 0; y < h; y++) {
                const unsigned char* s = src + ((long)c * h + y) * wd;
                float* d = dst + c * plane + (long)(y + pad) * wp + pad;
                for (int u = 0; u < wd; u++) d[u] = (float)s[u] * scale;
            }
    }

    /* out[o0:o0+OB, y0:y0+RB, :] = sum over (c, p, q) of w[o, c, p, q] * xp[c, y + p, u + q] (+ b[o]),
       8 output columns per accumulator: OB * RB accumulators + RB input rows + a broadcast within
       AVX2's 16 registers.  Taps summed in the order (c, p, q) from zero, the bias added last (as
       the AVX-512 kernel).  A chunk's lanes past the row's end compute on the padding and the next
       row (finite or not) and are never stored. */
    #define HPC_FWD8(OB, RB)                                                                         \
    /* noinline: inlined into hpc_fwd_planes's loops, the 6 x 2 block ran at 35-37 instead of   */ \
    /* 53-57 GFLOP/s on conv1 (AMD EPYC, 2026-12-01). */                                           \
    static __attribute__((noinline)) void                                                            \
    hpc_fwd8_##OB##x##RB(const float* xp, int cin, long plane, int wp, int k, const float* w,        \
                         const float* b, float* out, int h, int wd, int o0, int y0) {                \
        const int kk = k * k;                                                                        \
        const long ckk = (long)cin * kk;                                                             \
        for (int x0 = 0; x0 < wd; x0 += 8) {                                                         \
            __m256 acc[OB][RB];                                                                      \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                    \
            _Pragma("GCC unroll 16") for (int r = 0; r < RB; r++) acc[o][r] = _mm256_setzero_ps();  \
            for (int c = 0; c < cin; c++)                                                            \
                for (int p = 0; p < k; p++) {                                                        \
                    const float* xr = xp + c * plane + (long)(y0 + p) * wp + x0;                     \
                    const float* wr = w + o0 * ckk + c * kk + p * k;                                 \
                    for (int q = 0; q < k; q++) {                                                    \
                        __m256 xv[RB];                                                               \
                        _Pragma("GCC unroll 16") for (int r = 0; r < RB; r++)                        \
                            xv[r] = _mm256_loadu_ps(xr + r * wp + q);                                \
                        _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) {                      \
                            const __m256 wv = _mm256_broadcast_ss(wr + o * ckk + q);                 \
                            _Pragma("GCC unroll 16") for (int r = 0; r < RB; r++)                    \
                                acc[o][r] = _mm256_fmadd_ps(wv, xv[r], acc[o][r]);                   \
                        }                                                                            \
                    }                                                                                \
                }                                                                                    \
            const __m256i m = hpc_lanes8(wd - x0);                                                    \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) {                                  \
                const __m256 bv = _mm256_set1_ps(b ? b[o0 + o] : 0.0f);                              \
                _Pragma("GCC unroll 16") for (int r = 0; r < RB; r++) {                              \
                    float* d = out + ((long)(o0 + o) * h + y0 + r) * wd + x0;                        \
                    const __m256 v = _mm256_add_ps(acc[o][r], bv);                                   \
                    if (wd - x0 >= 8) _mm256_storeu_ps(d, v);                                        \
                    else _mm256_maskstore_ps(d, m, v);                                               \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    }

    HPC_FWD8(6, 2)
    HPC_FWD8(4, 3)
    HPC_FWD8(4, 2)
    HPC_FWD8(3, 4)
    HPC_FWD8(2, 4)
    HPC_FWD8(2, 2)
    HPC_FWD8(1, 4)
    HPC_FWD8(1, 2)
    HPC_FWD8(1, 1)

    typedef void (*hpc_fwd_fn)(const float*, int, long, int, int, const float*, const float*, float*,
                               int, int, int, int);

    /* As the AVX-512 hpc_fwd_planes: the first register block whose sizes divide (cout, h). */
    static void hpc_fwd_planes(const float* xp, int cin, int k, const float* w, const float* b,
                               float* out, int cout, int h, int wd) {
        static const struct { int ob, rb; hpc_fwd_fn fn; } blocks[] = {
            {6, 2, hpc_fwd8_6x2}, {4, 3, hpc_fwd8_4x3}, {4, 2, hpc_fwd8_4x2}, {3, 4, hpc_fwd8_3x4},
            {2, 4, hpc_fwd8_2x4}, {2, 2, hpc_fwd8_2x2}, {1, 4, hpc_fwd8_1x4}, {1, 1, hpc_fwd8_1x1}};
        const int pad = k / 2, wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        /* Even h (both of LeNet's shapes): two rows by as many 6-channel blocks as fit, then 4, 2,
           1.  Conv2's 16 channels as 6 + 6 + 4 ran 1.55x as fast as the table's 4 x 2 blocks
           (37.5 -> 58.8 GFLOP/s, min of 30, AMD EPYC, 2026-12-01): 12 FMAs per 8 loads. */
        if (h % 2 == 0) {
            int o0 = 0;
            for (; o0 + 6 <= cout; o0 += 6)
                for (int y0 = 0; y0 < h; y0 += 2) hpc_fwd8_6x2(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);
            for (; o0 + 4 <= cout; o0 += 4)
                for (int y0 = 0; y0 < h; y0 += 2) hpc_fwd8_4x2(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);
            for (; o0 + 2 <= cout; o0 += 2)
                for (int y0 = 0; y0 < h; y0 += 2) hpc_fwd8_2x2(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);
            for (; o0 < cout; o0++)
                for (int y0 = 0; y0 < h; y0 += 2) hpc_fwd8_1x2(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);
            return;
        }
        int i = 0;
        while (cout % blocks[i].ob != 0 || h % blocks[i].rb != 0) i++;
        for (int o0 = 0; o0 < cout; o0 += blocks[i].ob)
            for (int y0 = 0; y0 < h; y0 += blocks[i].rb)
                blocks[i].fn(xp, cin, plane, wp, k, w, b, out, h, wd, o0, y0);
    }

    /* acc16[o, c, p, q0 + j, 0:8] (8 lanes of each 16-float slot, summed at the end) +=
       g[o, y, u] * xp[c, y + p, u + q0 + j] over (y, u), for o in [o0, o0 + OB), j < QB.  The OB
       channels' dout stay in registers while the QB shifted input rows stream past.  In a row's
       last chunk the lanes past its end load g and xp as zero (0 * inf would be NaN). */
    #define HPC_DW8(OB, QB)                                                                          \
    static void hpc_dw8_##OB##x##QB(const float* xp, const float* g, float* acc16, int cin,          \
                                    long plane, int wp, int k, int h, int wd, int c, int p, int o0,  \
                                    int q0) {                                                        \
        const long hw = (long)h * wd;                                                                \
        __m256 acc[OB][QB];                                                                          \
        float* a[OB];                                                                                \
        _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) {                                      \
            a[o] = acc16 + ((((long)(o0 + o) * cin + c) * k + p) * k + q0) * 16;                     \
            _Pragma("GCC unroll 16") for (int j = 0; j < QB; j++)                                    \
                acc[o][j] = _mm256_loadu_ps(a[o] + 16 * j);                                          \
        }                                                                                            \
        const int full = wd & ~7;                                                                    \
        const __m256i m = hpc_lanes8(wd - full);                                                      \
        for (int y = 0; y < h; y++) {                                                                \
            const float* xr = xp + c * plane + (long)(y + p) * wp + q0;                              \
            const float* gr = g + o0 * hw + (long)y * wd;                                            \
            for (int x0 = 0; x0 <= wd - 8; x0 += 8) {                                                \
                __m256 d[OB];                                                                        \
                _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                \
                    d[o] = _mm256_loadu_ps(gr + o * hw + x0);                                        \
                _Pragma("GCC unroll 16") for (int j = 0; j < QB; j++) {                              \
                    const __m256 xv = _mm256_loadu_ps(xr + x0 + j);                                  \
                    _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                            \
                        acc[o][j] = _mm256_fmadd_ps(d[o], xv, acc[o][j]);                            \
                }                                                                                    \
            }                                                                                        \
            if (full < wd) {                                                                         \
                __m256 d[OB];                                                                        \
                _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                \
                    d[o] = _mm256_maskload_ps(gr + o * hw + full, m);                                \
                _Pragma("GCC unroll 16") for (int j = 0; j < QB; j++) {                              \
                    const __m256 xv = _mm256_maskload_ps(xr + full + j, m);                          \
                    _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                            \
                        acc[o][j] = _mm256_fmadd_ps(d[o], xv, acc[o][j]);                            \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
        _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                        \
            _Pragma("GCC unroll 16") for (int j = 0; j < QB; j++)                                    \
                _mm256_storeu_ps(a[o] + 16 * j, acc[o][j]);                                          \
    }

    HPC_DW8(2, 5)
    HPC_DW8(1, 5)
    HPC_DW8(2, 1)
    HPC_DW8(1, 1)

    typedef void (*hpc_dw_fn)(const float*, const float*, float*, int, long, int, int, int, int, int,
                              int, int, int);

    /* acc16[o, c, p, q, 0:8] += lane-wise partial sums of dw for one image (as the AVX-512
       hpc_dw_image; lanes 8-15 of each slot stay zero). */
    static void hpc_dw_image(const float* xp, const float* g, float* acc16, int cin, int cout, int h,
                             int wd, int k) {
        const int pad = k / 2, wp = wd + 2 * pad;
        const long plane = (long)(h + 2 * pad) * wp;
        const int ob = cout % 2 == 0 ? 2 : 1;
        const hpc_dw_fn wide = ob == 2 ? hpc_dw8_2x5 : hpc_dw8_1x5;
        const hpc_dw_fn narrow = ob == 2 ? hpc_dw8_2x1 : hpc_dw8_1x1;
        for (int c = 0; c < cin; c++)
            for (int p = 0; p < k; p++)
                for (int o0 = 0; o0 < cout; o0 += ob) {
                    int q0 = 0;
                    for (; q0 + 5 <= k; q0 += 5)
                        wide(xp, g, acc16, cin, plane, wp, k, h, wd, c, p, o0, q0);
                    for (; q0 < k; q0++)
                        narrow(xp, g, acc16, cin, plane, wp, k, h, wd, c, p, o0, q0);
                }
    }

    /* db[o] += sum of g[o, :, :] for one image's dout g (cout, h, wd). */
    static void hpc_db_image(const float* g, int cout, int h, int wd, float* db) {
        const long hw = (long)h * wd;
        for (int o = 0; o < cout; o++) {
            const float* go = g + o * hw;
            __m256 s = _mm256_setzero_ps();
            long i = 0;
            for (; i + 8 <= hw; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(go + i));
            s = _mm256_add_ps(s, hpc_load8(go + i, (int)(hw - i)));
            db[o] += hpc_sum8(s);
        }
    }

    /* dw[j] += the sum of the 8 used lanes of acc16[j, :], j < m. */
    static void hpc_dw_reduce(const float* acc16, long m, float* dw) {
        for (long j = 0; j < m; j++) dw[j] += hpc_sum8(_mm256_loadu_ps(acc16 + 16 * j));
    }

    /* The weight gradient with the output channels in the lanes, for k == 5 and cout a multiple of
       16 (conv2), as the AVX-512 kernel of that name: dwt[(c*25 + p*5 + q)*cout + o] += sum over
       (y, u) of g[o, y, u] * xp[c, y + p, u + q], from gt, g transposed to (h*wd, cout).  16
       channels are two 8-lane vectors, so one kernel row p at a time: 5 taps x 2 halves = 10
       accumulators, and two neighbouring pixels share each broadcast pixel (20 FMAs per 10
       loads, against 10 per 7 with the lanes along 14-pixel rows, two of 16 lanes idle). */
    static inline __attribute__((always_inline)) void hpc_dw_olanes8_body(
            const float* xp, const float* g, float* gt, float* dwt, int cin, int cout, int h, int wd) {
        const int wp = wd + 4;
        const long plane = (long)(h + 4) * wp, hw = (long)h * wd;
        for (long j = 0; j < hw; j++)
            for (int o = 0; o < cout; o++) gt[j * cout + o] = g[(long)o * hw + j];
        for (int c = 0; c < cin; c++)
            for (int o0 = 0; o0 < cout; o0 += 16)
                for (int p = 0; p < 5; p++) {
                    float* d = dwt + ((long)c * 25 + p * 5) * cout + o0;
                    __m256 acc[5][2];
                    _Pragma("GCC unroll 8") for (int q = 0; q < 5; q++)
                        acc[q][0] = acc[q][1] = _mm256_setzero_ps();
                    for (int y = 0; y < h; y++) {
                        const float* gr = gt + (long)y * wd * cout + o0;
                        const float* xr = xp + c * plane + (long)(y + p) * wp;
                        int u = 0;
                        for (; u + 2 <= wd; u += 2) {
                            const __m256 g0a = _mm256_loadu_ps(gr + (long)u * cout);
                            const __m256 g0b = _mm256_loadu_ps(gr + (long)u * cout + 8);
                            const __m256 g1a = _mm256_loadu_ps(gr + (long)(u + 1) * cout);
                            const __m256 g1b = _mm256_loadu_ps(gr + (long)(u + 1) * cout + 8);
                            const float* xu = xr + u;
                            __asm__("" : "+r"(xu));  /* as the AVX-512 kernel: no carried window */
                            _Pragma("GCC unroll 8") for (int q = 0; q < 6; q++) {
                                const __m256 xv = _mm256_broadcast_ss(xu + q);
                                if (q < 5) {
                                    acc[q][0] = _mm256_fmadd_ps(g0a, xv, acc[q][0]);
                                    acc[q][1] = _mm256_fmadd_ps(g0b, xv, acc[q][1]);
                                }
                                if (q > 0) {
                                    acc[q - 1][0] = _mm256_fmadd_ps(g1a, xv, acc[q - 1][0]);
                                    acc[q - 1][1] = _mm256_fmadd_ps(g1b, xv, acc[q - 1][1]);
                                }
                            }
                        }
                        for (; u < wd; u++) {
                            const __m256 g0a = _mm256_loadu_ps(gr + (long)u * cout);
                            const __m256 g0b = _mm256_loadu_ps(gr + (long)u * cout + 8);
                            _Pragma("GCC unroll 8") for (int q = 0; q < 5; q++) {
                                const __m256 xv = _mm256_broadcast_ss(xr + u + q);
                                acc[q][0] = _mm256_fmadd_ps(g0a, xv, acc[q][0]);
                                acc[q][1] = _mm256_fmadd_ps(g0b, xv, acc[q][1]);
                            }
                        }
                    }
                    _Pragma("GCC unroll 8") for (int q = 0; q < 5; q++)
                        _Pragma("GCC unroll 2") for (int hh = 0; hh < 2; hh++) {
                            float* dq = d + (long)q * cout + 8 * hh;
                            _mm256_storeu_ps(dq, _mm256_add_ps(_mm256_loadu_ps(dq), acc[q][hh]));
                        }
                }
    }

    /* LeNet's conv2 (6 -> 16 channels, 14 x 14) with constant sizes, any other shape with run-time
       ones (as the AVX-512 kernel). */
    static void hpc_dw_image_olanes5(const float* xp, const float* g, float* gt, float* dwt, int cin,
                                     int cout, int h, int wd) {
        if (cin == 6 && cout == 16 && h == 14 && wd == 14)
            hpc_dw_olanes8_body(xp, g, gt, dwt, 6, 16, 14, 14);
        else
            hpc_dw_olanes8_body(xp, g, gt, dwt, cin, cout, h, wd);
    }

    /* r[i][j] -> r[j][i] for an 8 x 8 block in registers. */
    static inline void hpc_tr8(__m256 r[8]) {
        __m256 t[8], u[8];
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
            u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; i++) {
            r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
            r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
        }
    }

    /* Rows y and y + 1, pixels u0 .. u0 + PX - 1, output channels o0 .. o0 + 7 of
       hpc_fwd_pool_olanes5 into `rows` (2 x wd vectors): 2 x PX accumulators (from the bias, taps
       added in the order (c, p, q)), a kernel row's 5 weight vectors shared by both rows, each input
       pixel broadcast once for up to 5 FMAs. */
    static inline __attribute__((always_inline)) void hpc_olanes5_strip2(
            const float* xp, int cin, long plane, int wp, const float* wt, int cout, int o0,
            __m256 bv, int y, int u0, int wd, float* rows, const int PX) {
        __m256 acc[2][5];
        _Pragma("GCC unroll 8") for (int r = 0; r < 2; r++)
        _Pragma("GCC unroll 8") for (int u = 0; u < PX; u++) acc[r][u] = bv;
        for (int c = 0; c < cin; c++)
            for (int p = 0; p < 5; p++) {
                const float* xr = xp + c * plane + (long)(y + p) * wp + u0;
                const float* wr = wt + (long)(c * 5 + p) * 5 * cout + o0;
                __m256 wv[4];
                _Pragma("GCC unroll 8") for (int q = 0; q < 4; q++) wv[q] = _mm256_loadu_ps(wr + (long)q * cout);
                _Pragma("GCC unroll 8") for (int r = 0; r < 2; r++)
                _Pragma("GCC unroll 16") for (int j = 0; j < PX + 4; j++) {
                    const __m256 xb = _mm256_broadcast_ss(xr + (long)r * wp + j);
                    _Pragma("GCC unroll 8") for (int q = 0; q < 4; q++)
                        if (j - q >= 0 && j - q < PX)
                            acc[r][j - q] = _mm256_fmadd_ps(wv[q], xb, acc[r][j - q]);
                    if (j - 4 >= 0 && j - 4 < PX) {
                        /* the 5th tap's weights from memory (an FMA's operand): with them in a
                           register too, 10 accumulators + 5 weights + 2 broadcasts spill one */
                        const float* w4 = wr + 4L * cout;
                        __asm__("" : "+r"(w4));  /* GCC may not hold it in a register */
                        acc[r][j - 4] = _mm256_fmadd_ps(_mm256_loadu_ps(w4), xb, acc[r][j - 4]);
                    }
                }
            }
        _Pragma("GCC unroll 8") for (int r = 0; r < 2; r++)
        _Pragma("GCC unroll 8") for (int u = 0; u < PX; u++)
            _mm256_storeu_ps(rows + ((long)r * wd + u0 + u) * 8, acc[r][u]);
    }

    /* The fused forward with the output channels in the lanes (k == 5, cout a multiple of 8, h and
       wd even, wd >= 7; conv2), as the AVX-512 kernel of that name with 8-channel blocks: per pair
       of output rows, strips of 5 pixels (a last one of 4, overlapping the one before where wd is
       not 5n or 5n + 4) in hpc_olanes5_strip2's 10 (or 8) accumulators: at least the 8 chains in
       flight that two FMA units of latency 4 need.  Strips of 7 pixels in one row (7 chains) took
       3.19-3.63 ms per 256 images against 2.95-3.35 (min of 60, alternating, AMD EPYC, 2026-12-01).
       The strip keeps 4 of a kernel row's 5 weight vectors in registers and reads the 5th as an
       FMA's memory operand: with all 5 held, GCC spilled an accumulator to the stack (a store and
       a reload in every kernel row's chain); 3.10-3.14 -> 2.77-2.88 ms, bit for bit the same
       (min of 100, 4 alternating pairs, session 18).
       Each row pair is pooled from `rows` as hpc_pool_fwd pools, into `pool` (pixel-major, then
       out and idx; idx and pidx NULL: the pooled values only). */
    static void hpc_fwd_pool_olanes5(const float* xp, int cin, const float* wt, const float* b,
                                     float* out, unsigned char* idx, int cout, int h, int wd,
                                     float* rows, float* pool, unsigned char* pidx) {
        const int wp = wd + 4, ho = h / 2, wo = wd / 2;
        const long plane = (long)(h + 4) * wp, hw2 = (long)ho * wo;
        const __m256 zero = _mm256_setzero_ps();
        for (int o0 = 0; o0 < cout; o0 += 8) {
            const __m256 bv = _mm256_loadu_ps(b + o0);
            for (int y = 0; y < h; y += 2) {
                int ub = 0;
                for (; ub + 5 <= wd; ub += 5)
                    hpc_olanes5_strip2(xp, cin, plane, wp, wt, cout, o0, bv, y, ub, wd, rows, 5);
                if (ub < wd)
                    hpc_olanes5_strip2(xp, cin, plane, wp, wt, cout, o0, bv, y, wd - 4, wd, rows, 4);
                for (int s = 0; s < wo; s++) {
                    const float* r0 = rows + (long)(2 * s) * 8;
                    const float* r1 = rows + ((long)wd + 2 * s) * 8;
                    __m256i a;
                    __m256 best = hpc_pool4x8(_mm256_loadu_ps(r0), _mm256_loadu_ps(r0 + 8),
                                              _mm256_loadu_ps(r1), _mm256_loadu_ps(r1 + 8), &a);
                    best = _mm256_blendv_ps(best, zero, _mm256_cmp_ps(best, zero, _CMP_LT_OQ));
                    const long j = (long)(y / 2) * wo + s;
                    _mm256_storeu_ps(pool + j * 8, best);
                    if (pidx) _mm_storel_epi64((__m128i*)(pidx + j * 8), hpc_bytes8(a));
                }
            }
            /* pool and pidx (pixel-major) -> out and idx (channel-major), 8 pixels at a time in
               8 x 8 register transposes (the positions widened to 32 bits for it) */
            for (long j0 = 0; j0 < hw2; j0 += 8) {
                const int n = hw2 - j0 < 8 ? (int)(hw2 - j0) : 8;
                __m256 r[8], a[8];
                _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
                    const long jj = j0 + (i < n ? i : 0);  /* past the end: any pixel, not stored */
                    r[i] = _mm256_loadu_ps(pool + jj * 8);
                    a[i] = idx ? _mm256_castsi256_ps(_mm256_cvtepu8_epi32(
                                     _mm_loadl_epi64((const __m128i*)(pidx + jj * 8))))
                               : _mm256_setzero_ps();
                }
                hpc_tr8(r);
                if (idx) hpc_tr8(a);
                _Pragma("GCC unroll 8") for (int o = 0; o < 8; o++)
                    hpc_store8(out + (long)(o0 + o) * hw2 + j0, idx ? idx + (long)(o0 + o) * hw2 + j0 : NULL,
                               r[o], _mm256_castps_si256(a[o]), n);
            }
        }
    }

    /* The 8 images' pixels (x float32, or x8 uint8 pixels times `scale` rounded to float32, as
       hpc_pad_rows_u8; x NULL then; an h x wd plane each, `istride` elements apart) transposed into
       pixel vectors, lane i image i, in the interior of the padded grid xb ((h + 4) x (wd + 4)
       vectors), in 8 x 8 register transposes (hpc_pixels16's, 8 lanes).  Shared by the 8-image
       kernels below. */
    static void hpc_pixels8(const float* x, const unsigned char* x8, float scale, int h, int wd,
                            long istride, float* xb) {
        const int wp = wd + 4;
        const long px = (long)h * wd;
        const __m256 sv = _mm256_set1_ps(scale);
        __m256 r[8];
        long yy = 0, uu = 0;
        for (long b0 = 0; b0 < px; b0 += 8) {
            const int n = px - b0 < 8 ? (int)(px - b0) : 8;
            for (int i = 0; i < 8; i++) {
                if (x) {
                    r[i] = hpc_load8(x + i * istride + b0, n);
                } else {
                    r[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                             hpc_load_bytes8(x8 + i * istride + b0, n))), sv);
                }
            }
            hpc_tr8(r);
            for (int j = 0; j < n; j++) {
                _mm256_storeu_ps(xb + ((yy + 2) * wp + uu + 2) * 8, r[j]);
                if (++uu == wd) uu = 0, yy++;
            }
        }
    }

    /* hpc_unlane16 with 8 lanes: pool (pf vectors) and pidx (8 bytes per value) to out and idx, 8
       values at a time in 8 x 8 register transposes; idx NULL: the values only (pidx unread). */
    static void hpc_unlane8(const float* pool, const unsigned char* pidx, long pf, float* out,
                            unsigned char* idx) {
        __m256 r[8], a[8];
        for (long f0 = 0; f0 < pf; f0 += 8) {
            const int n = pf - f0 < 8 ? (int)(pf - f0) : 8;
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
                const long f = f0 + (j < n ? j : 0);  /* past the end: any value, not stored */
                r[j] = _mm256_loadu_ps(pool + f * 8);
                a[j] = idx ? _mm256_castsi256_ps(_mm256_cvtepu8_epi32(
                                 _mm_loadl_epi64((const __m128i*)(pidx + f * 8))))
                           : _mm256_setzero_ps();
            }
            hpc_tr8(r);
            if (idx) hpc_tr8(a);
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
                hpc_store8(out + i * pf + f0, idx ? idx + i * pf + f0 : NULL, r[i], _mm256_castps_si256(a[i]), n);
        }
    }

    /* OB output channels (from o0) of hpc_fwd1_group8, one pooling window per step: its 2 x 2
       pre-pool outputs x OB channels in 4 * OB accumulators, per tap the window's 4 input vectors
       and OB weight broadcasts for 4 * OB FMAs.  Each output's taps are summed in the order (p, q)
       from zero and the bias added last, as HPC_FWD8's, so the values are those of the
       image-by-image path bit for bit; the window is then pooled as hpc_pool_fwd pools
       (hpc_pool4x8) and ReLU'd.  pidx NULL: values only. */
    static inline __attribute__((always_inline)) void hpc_fwd1_block8(
            const float* xb, const float* w, const float* b, int o0, int ho, int wo, float* pool,
            unsigned char* pidx) {
        enum { OB = 3 };  /* 3 channels x 4 window positions: 12 of AVX2's 16 registers */
        const int wp = 2 * wo + 4;
        const long hw2 = (long)ho * wo;
        const __m256 zero = _mm256_setzero_ps();
        for (int rr = 0; rr < ho; rr++)
            for (int ss = 0; ss < wo; ss++) {
                __m256 acc[OB][4];
                _Pragma("GCC unroll 4") for (int o = 0; o < OB; o++)
                    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) acc[o][j] = zero;
                const float* xw = xb + ((long)(2 * rr) * wp + 2 * ss) * 8;
                _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++)
                    _Pragma("GCC unroll 5") for (int q = 0; q < 5; q++) {
                        const float* xt = xw + ((long)p * wp + q) * 8;
                        /* x11 as each FMA's memory operand: 12 accumulators + 4 input vectors + a
                           broadcast spilled (0.91-1.01 -> 0.86-0.89 ms per 256 images, bit for bit
                           the same; min of 200, 6 alternating pairs, AMD EPYC, session 18) */
                        const __m256 x00 = _mm256_loadu_ps(xt), x01 = _mm256_loadu_ps(xt + 8),
                                     x10 = _mm256_loadu_ps(xt + wp * 8);
                        _Pragma("GCC unroll 4") for (int o = 0; o < OB; o++) {
                            const __m256 wv = _mm256_broadcast_ss(w + (o0 + o) * 25 + p * 5 + q);
                            const float* x11 = xt + wp * 8 + 8;
                            __asm__("" : "+r"(x11));  /* GCC may not hold it in a register */
                            acc[o][0] = _mm256_fmadd_ps(wv, x00, acc[o][0]);
                            acc[o][1] = _mm256_fmadd_ps(wv, x01, acc[o][1]);
                            acc[o][2] = _mm256_fmadd_ps(wv, x10, acc[o][2]);
                            acc[o][3] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x11), acc[o][3]);
                        }
                    }
                _Pragma("GCC unroll 4") for (int o = 0; o < OB; o++) {
                    const __m256 bv = _mm256_set1_ps(b[o0 + o]);
                    __m256i a;
                    __m256 best = hpc_pool4x8(_mm256_add_ps(acc[o][0], bv), _mm256_add_ps(acc[o][1], bv),
                                              _mm256_add_ps(acc[o][2], bv), _mm256_add_ps(acc[o][3], bv), &a);
                    best = _mm256_blendv_ps(best, zero, _mm256_cmp_ps(best, zero, _CMP_LT_OQ));
                    const long f = (long)(o0 + o) * hw2 + (long)rr * wo + ss;
                    _mm256_storeu_ps(pool + f * 8, best);
                    if (pidx) _mm_storel_epi64((__m128i*)(pidx + f * 8), hpc_bytes8(a));
                }
            }
    }

    /* The fused forward of conv (1 input channel, k = 5, cout 3 or 6, h and wd even) + bias + 2 x 2
       max pooling + ReLU for 8 images at once, the images in the 8 lanes, as the AVX-512
       hpc_fwd1_group16 with 8-float vectors and blocks of 3 channels (12 accumulators within AVX2's
       16 registers; 2-channel blocks took 0.97-0.98 ms per 256 images against 0.90-0.94, min of 100,
       AMD EPYC, 2026-12-01): no lane idles on a row's end (28-pixel rows filled 28 of 32 lanes image by
       image), and each pooling window is pooled in registers, so the pre-pool map never exists.
       x (or x8 with `scale`; x NULL then) points at the first of the 8 images (h x wd each); out
       and idx (cout, h/2, wd/2) each; idx NULL: the pooled values only.  Scratch: xb, (h + 4) x
       (wd + 4) pixel vectors whose border the caller zeroed; pool, cout*h*wd/4 vectors; pidx, 8 bytes
       per pooled value.  The pooled maps go to out and idx in 8 x 8 register transposes. */
    static void hpc_fwd1_group8(const float* x, const unsigned char* x8, float scale, const float* w,
                                const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                                float* xb, float* pool, unsigned char* pidx) {
        const int ho = h / 2, wo = wd / 2;
        hpc_pixels8(x, x8, scale, h, wd, (long)h * wd, xb);
        for (int o0 = 0; o0 < cout; o0 += 3) hpc_fwd1_block8(xb, w, b, o0, ho, wo, pool, pidx);
        hpc_unlane8(pool, pidx, (long)cout * ho * wo, out, idx);
    }


    /* hpc_wino_bt and hpc_wino_at (AVX-512 section) with 8 lanes. */
    static inline __attribute__((always_inline)) void hpc_wino_bt8(
            __m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256 d4, __m256 d5, __m256 v[6]) {
        const __m256 c2 = _mm256_set1_ps(2.0f), c4 = _mm256_set1_ps(4.0f), c5 = _mm256_set1_ps(5.0f);
        const __m256 t5 = _mm256_sub_ps(d3, d1), t6 = _mm256_sub_ps(d4, d2);
        v[0] = _mm256_fmadd_ps(c4, d0, _mm256_fnmadd_ps(c5, d2, d4));
        v[1] = _mm256_fnmadd_ps(c4, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4));
        v[2] = _mm256_fmadd_ps(c4, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3));
        v[3] = _mm256_fmadd_ps(c2, t5, t6);
        v[4] = _mm256_fnmadd_ps(c2, t5, t6);
        v[5] = _mm256_fmadd_ps(c4, d1, _mm256_fnmadd_ps(c5, d3, d5));
    }

    static inline __attribute__((always_inline)) void hpc_wino_at8(const __m256* m, __m256* y0, __m256* y1) {
        *y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(m[0], m[1]), _mm256_add_ps(m[2], m[3])), m[4]);
        *y1 = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), _mm256_sub_ps(m[3], m[4]),
                              _mm256_add_ps(_mm256_sub_ps(m[1], m[2]), m[5]));
    }

    /* hpc_fwd_wino25_group16 (AVX-512 section: Winograd F(2 x 2, 5 x 5), forward only, pooled and
       ReLU'd) for 8 images at once in the 8 lanes: the same transforms and weights (u from
       hpc_wino_weights), the products 8 output channels at a time (8 accumulators, AVX2's 16
       registers).  Scratch as that kernel's, with 8-float vectors. */
    static void hpc_fwd_wino25_group8(const float* x, int cin, const float* u, const float* b,
                                      float* out, int cout, int h, int wd, float* xb, float* th,
                                      float* v, float* m, float* pool) {
        const int hp = h + 4, wp = wd + 4, ho = h / 2, wo = wd / 2;
        const long px = (long)h * wd, hw2 = (long)ho * wo;
        const __m256 zero = _mm256_setzero_ps();
        for (int c = 0; c < cin; c++)  /* the 8 images' pixels, channel by channel */
            hpc_pixels8(x + c * px, NULL, 1.0f, h, wd, cin * px, xb + (long)c * hp * wp * 8);
        for (int tx = 0; tx < wo; tx++) {
            for (int c = 0; c < cin; c++)
                for (int y = 0; y < hp; y++) {
                    const float* dr = xb + (((long)c * hp + y) * wp + 2 * tx) * 8;
                    __m256 t[6];
                    hpc_wino_bt8(_mm256_loadu_ps(dr), _mm256_loadu_ps(dr + 8), _mm256_loadu_ps(dr + 16),
                                 _mm256_loadu_ps(dr + 24), _mm256_loadu_ps(dr + 32), _mm256_loadu_ps(dr + 40), t);
                    _Pragma("GCC unroll 6") for (int bb = 0; bb < 6; bb++)
                        _mm256_storeu_ps(th + (((long)c * hp + y) * 6 + bb) * 8, t[bb]);
                }
            for (int ty = 0; ty < ho; ty++) {
                for (int c = 0; c < cin; c++)
                    _Pragma("GCC unroll 6") for (int bb = 0; bb < 6; bb++) {
                        const float* tc = th + (((long)c * hp + 2 * ty) * 6 + bb) * 8;
                        __m256 col[6];
                        hpc_wino_bt8(_mm256_loadu_ps(tc), _mm256_loadu_ps(tc + 48), _mm256_loadu_ps(tc + 96),
                                     _mm256_loadu_ps(tc + 144), _mm256_loadu_ps(tc + 192), _mm256_loadu_ps(tc + 240),
                                     col);
                        _Pragma("GCC unroll 6") for (int a = 0; a < 6; a++)
                            _mm256_storeu_ps(v + ((long)(a * 6 + bb) * cin + c) * 8, col[a]);
                    }
                for (int o0 = 0; o0 < cout; o0 += 8) {
                    const float* ub = u + (long)(o0 / 16) * 36 * cin * 16 + o0 % 16;
                    for (int ab = 0; ab < 36; ab++) {
                        __m256 acc[8];
                        _Pragma("GCC unroll 8") for (int o = 0; o < 8; o++) acc[o] = zero;
                        for (int c = 0; c < cin; c++) {
                            const __m256 vv = _mm256_loadu_ps(v + ((long)ab * cin + c) * 8);
                            const float* uc = ub + ((long)ab * cin + c) * 16;
                            _Pragma("GCC unroll 8") for (int o = 0; o < 8; o++)
                                acc[o] = _mm256_fmadd_ps(_mm256_broadcast_ss(uc + o), vv, acc[o]);
                        }
                        _Pragma("GCC unroll 8") for (int o = 0; o < 8; o++)
                            _mm256_storeu_ps(m + ((long)o * 36 + ab) * 8, acc[o]);
                    }
                    for (int o = 0; o < 8; o++) {
                        const __m256* mo = (const __m256*)(m + (long)o * 36 * 8);
                        __m256 r0[6], r1[6];
                        _Pragma("GCC unroll 6") for (int a = 0; a < 6; a++) {
                            __m256 row[6];
                            _Pragma("GCC unroll 6") for (int bb = 0; bb < 6; bb++)
                                row[bb] = _mm256_loadu_ps((const float*)(mo + a * 6 + bb));
                            hpc_wino_at8(row, &r0[a], &r1[a]);
                        }
                        __m256 y00, y10, y01, y11;
                        hpc_wino_at8(r0, &y00, &y10);
                        hpc_wino_at8(r1, &y01, &y11);
                        const __m256 bv = _mm256_set1_ps(b[o0 + o]);
                        __m256i a;
                        __m256 best = hpc_pool4x8(_mm256_add_ps(y00, bv), _mm256_add_ps(y01, bv),
                                                  _mm256_add_ps(y10, bv), _mm256_add_ps(y11, bv), &a);
                        best = _mm256_blendv_ps(best, zero, _mm256_cmp_ps(best, zero, _CMP_LT_OQ));
                        _mm256_storeu_ps(pool + ((long)(o0 + o) * hw2 + (long)ty * wo + tx) * 8, best);
                    }
                }
            }
        }
        hpc_unlane8(pool, NULL, cout * hw2, out, NULL);
    }

    /* AVX-512 only; never called here (HPC_POOL_AVX512 is 0). */
    static void hpc_bwd1_group16(const float* x, const float* dout, const float* y,
                                 const unsigned char* idx, int cout, int h, int wd, float* xb,
                                 float* dt, float* kt, float* g2, float* acc16, float* db) {}
    static void hpc_fwd1_group16(const float* x, const unsigned char* x8, float scale, const float* w,
                                 const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                                 float* xb, float* pool, unsigned char* pidx) {}
    static void hpc_fwd_wino25_group16(const float* x, int cin, const float* u, const float* b,
                                       float* out, int cout, int h, int wd, float* xb, float* th,
                                       float* v, float* m, float* pool) {}

    #else
    /* Without AVX-512 or AVX2 + FMA the kernels take the im2col + sgemm path; these are never
       called. */
    #define HPC_DIRECT 0
    #define HPC_AVX512 0
    #define HPC_OLANES 0
    static void hpc_pad_rows(const float* src, int nc, int h, int wd, int pad, float* dst) {}
    static void hpc_pad_rows_u8(const unsigned char* src, int nc, int h, int wd, int pad, float scale,
                                float* dst) {}
    static void hpc_fwd_planes(const float* xp, int cin, int k, const float* w, const float* b,
                               float* out, int cout, int h, int wd) {}
    static void hpc_dw_image(const float* xp, const float* g, float* acc16, int cin, int cout, int h,
                             int wd, int k) {}
    static void hpc_db_image(const float* g, int cout, int h, int wd, float* db) {}
    static void hpc_dw_reduce(const float* acc16, long m, float* dw) {}
    static void hpc_dw_image_olanes5(const float* xp, const float* g, float* gt, float* dwt, int cin,
                                     int cout, int h, int wd) {}
    static void hpc_fwd_pool_olanes5(const float* xp, int cin, const float* wt, const float* b,
                                     float* out, unsigned char* idx, int cout, int h, int wd,
                                     float* rows, float* pool, unsigned char* pidx) {}
    static void hpc_bwd1_group16(const float* x, const float* dout, const float* y,
                                 const unsigned char* idx, int cout, int h, int wd, float* xb,
                                 float* dt, float* kt, float* g2, float* acc16, float* db) {}
    static void hpc_fwd1_group8(const float* x, const unsigned char* x8, float scale, const float* w,
                                const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                                float* xb, float* pool, unsigned char* pidx) {}
    static void hpc_fwd1_group16(const float* x, const unsigned char* x8, float scale, const float* w,
                                 const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                                 float* xb, float* pool, unsigned char* pidx) {}
    static void hpc_fwd_wino25_group16(const float* x, int cin, const float* u, const float* b,
                                       float* out, int cout, int h, int wd, float* xb, float* th,
                                       float* v, float* m, float* pool) {}
    static void hpc_fwd_wino25_group8(const float* x, int cin, const float* u, const float* b,
                                      float* out, int cout, int h, int wd, float* xb, float* th,
                                      float* v, float* m, float* pool) {}
    #endif

    /* The pooled weight gradient and dx (hpc_dw_pooled5, hpc_dx_pooled14): 8-lane AVX2 kernels that
       list the pooling windows that carry a gradient and skip the others' exact zeros, so they do a
       quarter of the dense FLOPs or fewer.  Compiled in both SIMD builds (every AVX-512 CPU has
       AVX2 + FMA): the AVX-512 build's kernels below share the window listing and hpc_finite, but
       never call hpc_dw_pooled5 or hpc_dx_pooled14 (their 8 lanes were not clearly faster there). */
    #if HPC_DIRECT && defined(__AVX2__) && defined(__FMA__)
    #define HPC_POOLED_DW 1

    /* 1 if none of x[0:n] is inf or NaN. */
    static int hpc_finite(const float* x, long n) {
        const __m256 inf = _mm256_set1_ps(__builtin_inff()), sign = _mm256_set1_ps(-0.0f);
        __m256 bad = _mm256_setzero_ps();
        long i = 0;
        for (; i + 8 <= n; i += 8)  /* |x| < inf is false for inf and NaN */
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), inf, _CMP_NLT_UQ));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, hpc_load8(x + i, (int)(n - i))), inf, _CMP_NLT_UQ));
        return _mm256_movemask_ps(bad) == 0;
    }

    /* Left-packing permutations: hpc_pack8[m] lists the set bits of m (0-255) in order, padded
       with 0s; filled once by hpc_pack8_init (module import). */
    static unsigned char hpc_pack8[256][8];
    static void hpc_pack8_init(void) {
        for (int m = 0; m < 256; m++) {
            int n = 0;
            memset(hpc_pack8[m], 0, 8);
            for (int j = 0; j < 8; j++)
                if (m >> j & 1) hpc_pack8[m][n++] = (unsigned char)j;
        }
    }

    /* The lanes of v and off set in the movemask mk, in lane order, to val[0:] and offs[0:] (8 lanes
       stored: room for 8 past the last entry); returns how many. */
    static inline int hpc_left_pack8(__m256 v, __m256i off, int mk, float* val, int* offs) {
        const __m256i pk = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)hpc_pack8[mk]));
        _mm256_storeu_ps(val, _mm256_permutevar8x32_ps(v, pk));
        _mm256_storeu_si256((__m256i*)offs, _mm256_permutevar8x32_epi32(off, pk));
        return __builtin_popcount((unsigned)mk);
    }

    /* base[j] = 2 (j / wo) wp + 2 (j % wo) px: window j's top-left pixel in a padded image whose
       rows are wp floats apart and pixels px (before the padding's offset: tap 0 of a pad-2, k = 5
       kernel), j < ho * wo.  px is 1 for planes (hpc_pad_rows), Cin for hpc_pad_hwc's layout. */
    static void hpc_window_base(int* base, int ho, int wo, int wp, int px) {
        for (int r = 0; r < ho; r++)
            for (int ss = 0; ss < wo; ss++) base[r * wo + ss] = 2 * r * wp + 2 * ss * px;
    }

    /* One output channel's windows with a nonzero v = g * (y > 0) (0 for a position past 3, never
       the forward pass's, as hpc_pool_bwd), in window order, 8 windows at a time with a
       left-packing permutation (no branch on the data; NaN and inf are kept): val their v, off
       the padded image's offset of their recorded position (base[j] + dy wp + dx px, strides as
       hpc_window_base's).  Returns their count; *db += the sum of all the v.  off, val: room for
       hw2 + 8 entries. */
    static inline int hpc_list_windows(const float* go, const float* yo, const unsigned char* io,
                                       long hw2, int wp, int px, const int* base, int* off, float* val,
                                       float* db) {
        __m256 sdb = _mm256_setzero_ps();
        int n = 0;
        for (long j0 = 0; j0 < hw2; j0 += 8) {
            const int m = hw2 - j0 < 8 ? (int)(hw2 - j0) : 8;  /* tail lanes: v 0, not listed */
            const __m256i a = _mm256_cvtepu8_epi32(hpc_load_bytes8(io + j0, m));
            const __m256 ok = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(4), a));
            const __m256 v = _mm256_and_ps(hpc_relu_grad8(hpc_load8(go + j0, m), hpc_load8(yo + j0, m)), ok);
            sdb = _mm256_add_ps(sdb, v);
            const __m256i o8 = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(base + j0)),
                                 _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(a, 1), _mm256_set1_epi32(1)),
                                                    _mm256_set1_epi32(wp))),
                _mm256_mullo_epi32(_mm256_and_si256(a, _mm256_set1_epi32(1)), _mm256_set1_epi32(px)));
            const int mk = _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ));
            n += hpc_left_pack8(v, o8, mk, val + n, off + n);
        }
        *db += hpc_sum8(sdb);
        return n;
    }

    /* CC input channels (from c0) of hpc_dw_pooled5 for one output channel: acc[c][p][0:8] +=
       the sum of val[e] * xp[c, off[e] + p * wp + (0:8)] over the n entries, 5 x CC accumulators.
       The image's sum starts from zero and is added to acc once: a sum over the batch in two
       levels, not one chain of every window of every image (with one chain, conv1's weights after
       20 steps on 2 or 4 ranks drifted 1.7e-5 of their largest from one rank's, past
       test_mpi.py's 1e-5). */
    static inline __attribute__((always_inline)) void hpc_dw_pooled_cc(
            const float* xp, long plane, int wp, const int* off, const float* val, int n, float* acc,
            const int CC) {
        __m256 a[2][5];
        _Pragma("GCC unroll 2") for (int c = 0; c < CC; c++)
        _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) a[c][p] = _mm256_setzero_ps();
        for (int e = 0; e < n; e++) {
            const __m256 gv = _mm256_set1_ps(val[e]);
            const float* b = xp + off[e];
            _Pragma("GCC unroll 2") for (int c = 0; c < CC; c++)
            _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++)
                a[c][p] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(b + c * plane + (long)p * wp), a[c][p]);
        }
        _Pragma("GCC unroll 2") for (int c = 0; c < CC; c++)
        _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) {
            float* t = acc + (c * 5 + p) * 8;
            _mm256_storeu_ps(t, _mm256_add_ps(_mm256_loadu_ps(t), a[c][p]));
        }
    }

    /* One input channel (conv1), two output channels' lists at once: accA[p] += valA[e] * xp[offA[e]
       + p wp + (0:8)], accB likewise, the two lists' entries interleaved so that 10 accumulators
       advance instead of 5 (which wait on the FMA's latency); each sum keeps its entries' order and,
       as hpc_dw_pooled_cc's, starts from zero and is added to accA, accB once. */
    static void hpc_dw_pooled_oo(const float* xp, int wp, const int* offA, const float* valA, int nA,
                                 const int* offB, const float* valB, int nB, float* accA, float* accB) {
        __m256 a[5], b[5];
        _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) a[p] = b[p] = _mm256_setzero_ps();
        const int nm = nA < nB ? nA : nB;
        int e = 0;
        for (; e < nm; e++) {
            const __m256 ga = _mm256_set1_ps(valA[e]), gb = _mm256_set1_ps(valB[e]);
            const float* xa = xp + offA[e];
            const float* xb = xp + offB[e];
            _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) {
                a[p] = _mm256_fmadd_ps(ga, _mm256_loadu_ps(xa + (long)p * wp), a[p]);
                b[p] = _mm256_fmadd_ps(gb, _mm256_loadu_ps(xb + (long)p * wp), b[p]);
            }
        }
        for (int f = e; f < nA; f++) {
            const __m256 ga = _mm256_set1_ps(valA[f]);
            const float* xa = xp + offA[f];
            _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++)
                a[p] = _mm256_fmadd_ps(ga, _mm256_loadu_ps(xa + (long)p * wp), a[p]);
        }
        for (int f = e; f < nB; f++) {
            const __m256 gb = _mm256_set1_ps(valB[f]);
            const float* xb = xp + offB[f];
            _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++)
                b[p] = _mm256_fmadd_ps(gb, _mm256_loadu_ps(xb + (long)p * wp), b[p]);
        }
        _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) {
            _mm256_storeu_ps(accA + p * 8, _mm256_add_ps(_mm256_loadu_ps(accA + p * 8), a[p]));
            _mm256_storeu_ps(accB + p * 8, _mm256_add_ps(_mm256_loadu_ps(accB + p * 8), b[p]));
        }
    }

    /* The weight and bias gradients of conv (k = 5) -> 2 x 2 max pool -> ReLU for one image from
       the pooled gradient g, the ReLU's pooled output y and the pooling positions idx (cout, h/2,
       wd/2 each), without the pre-pool gradient: of a window's 4 pre-pool gradients only the one at
       its recorded position is nonzero (the pooling's backward pass puts 0 at the other three), and
       it is v = g * (y > 0) (the ReLU's gradient as a product, as hpc_pool_bwd), 0 where the ReLU
       was off.  So dw[o, c, p, q] = sum over the windows with v != 0 of v * xp[c, y + p, u + q],
       (y, u) the window's recorded position: a quarter of the dense sum's FMAs or fewer, the terms
       left out being exact zeros (0 * x, x finite: the caller checks x with hpc_finite and takes the
       dense path otherwise, where 0 * inf gives NaN).  The dense kernels (the direct convolution over
       the pre-pool gradient) spend at least 3 of every 4 FMAs on those zeros.
       Per output channel the nonzero windows are listed first (hpc_list_windows), then each list
       entry feeds 5 FMAs per input channel with the 5 taps q in the lanes of one load (lanes 5-7
       read the row's next pixels, the padding or, past the last plane, the buffer's zeroed
       16-float tail: finite, never used); with one input channel two output channels' lists go
       together (hpc_dw_pooled_oo).  acc: (cout, cin, 5, 8) floats, added to (the terms of each sum
       in window order, which the dense sum does not keep: float32 rounding differs); db[o] += the
       sum of the v.  xp: the image's zero-padded planes (hpc_pad_rows, pad 2, plus the 16-float
       tail); base: hpc_window_base's table; off, val: scratch for 2 (h*wd/4 + 8) entries each. */
    static void hpc_dw_pooled5(const float* xp, const float* g, const float* y, const unsigned char* idx,
                               int cin, int cout, int h, int wd, float* acc, float* db, const int* base,
                               int* off, float* val) {
        const int wp = wd + 4, ho = h / 2, wo = wd / 2;
        const long plane = (long)(h + 4) * wp, hw2 = (long)ho * wo, room = hw2 + 8;
        if (cin == 1) {
            int o = 0;
            for (; o + 2 <= cout; o += 2) {
                const int nA = hpc_list_windows(g + o * hw2, y + o * hw2, idx + o * hw2, hw2, wp, 1, base,
                                                off, val, db + o);
                const int nB = hpc_list_windows(g + (o + 1) * hw2, y + (o + 1) * hw2, idx + (o + 1) * hw2,
                                                hw2, wp, 1, base, off + room, val + room, db + o + 1);
                hpc_dw_pooled_oo(xp, wp, off, val, nA, off + room, val + room, nB, acc + (long)o * 40,
                                 acc + (long)(o + 1) * 40);
            }
            if (o < cout) {
                const int n = hpc_list_windows(g + o * hw2, y + o * hw2, idx + o * hw2, hw2, wp, 1, base,
                                               off, val, db + o);
                hpc_dw_pooled_cc(xp, plane, wp, off, val, n, acc + (long)o * 40, 1);
            }
            return;
        }
        for (int o = 0; o < cout; o++) {
            const int n = hpc_list_windows(g + o * hw2, y + o * hw2, idx + o * hw2, hw2, wp, 1, base, off,
                                           val, db + o);
            float* ao = acc + (long)o * cin * 40;
            int c = 0;
            for (; c + 2 <= cin; c += 2) hpc_dw_pooled_cc(xp + c * plane, plane, wp, off, val, n, ao + c * 40, 2);
            if (c < cin) hpc_dw_pooled_cc(xp + c * plane, plane, wp, off, val, n, ao + c * 40, 1);
        }
    }

    /* dw[o, c, p, q] += acc[o, c, p, q] (q < 5 of the 8 lanes): hpc_dw_pooled5's sums. */
    static void hpc_dw_pooled_reduce(const float* acc, int cout, int cin, float* dw) {
        for (long j = 0; j < (long)cout * cin * 5; j++)
            for (int q = 0; q < 5; q++) dw[j * 5 + q] += acc[j * 8 + q];
    }

    /* The entries of pre-pool rows RA and RB = RA + 7 (compile-time; their dx rows RA - 2 .. RA + 2
       and RB - 2 .. RB + 2 are apart) into the accumulators of dx's rows that exist, the two lists'
       entries interleaved so that two sets of accumulators advance at once.  Per entry: one
       broadcast and up to 5 FMAs, each with one load of the table. */
    #define HPC_DX_FMA(R, V, T) _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++)                \
        if ((R) - 2 + p >= 0 && (R) - 2 + p < 14) {                                                \
            const int y_ = (R) - 2 + p < 0 ? 0 : (R) - 2 + p > 13 ? 13 : (R) - 2 + p;               \
            a[y_] = _mm256_fmadd_ps(V, _mm256_loadu_ps((T) + 20 * p), a[y_]);                       \
        }
    #define HPC_DX_ROWS(RA, RB) do {                                                                \
        const float* va_ = vl + (long)((RA) * 2 + hf) * cap;                                       \
        const int* oa_ = ol + (long)((RA) * 2 + hf) * cap;                                         \
        const int ma_ = cnt[(RA) * 2 + hf];                                                        \
        const float* vb_ = vl + (long)((RB) * 2 + hf) * cap;                                       \
        const int* ob_ = ol + (long)((RB) * 2 + hf) * cap;                                         \
        const int mb_ = cnt[(RB) * 2 + hf];                                                        \
        const int mm_ = ma_ < mb_ ? ma_ : mb_;                                                     \
        int e = 0;                                                                                 \
        for (; e < mm_; e++) {                                                                     \
            const __m256 v0_ = _mm256_broadcast_ss(va_ + e), v1_ = _mm256_broadcast_ss(vb_ + e);   \
            const float* t0_ = tc + oa_[e];                                                        \
            const float* t1_ = tc + ob_[e];                                                        \
            HPC_DX_FMA(RA, v0_, t0_)                                                               \
            HPC_DX_FMA(RB, v1_, t1_)                                                               \
        }                                                                                          \
        for (int f = e; f < ma_; f++) {                                                            \
            const __m256 v0_ = _mm256_broadcast_ss(va_ + f);                                       \
            const float* t0_ = tc + oa_[f];                                                        \
            HPC_DX_FMA(RA, v0_, t0_)                                                               \
        }                                                                                          \
        for (int f = e; f < mb_; f++) {                                                            \
            const __m256 v1_ = _mm256_broadcast_ss(vb_ + f);                                       \
            const float* t1_ = tc + ob_[f];                                                        \
            HPC_DX_FMA(RB, v1_, t1_)                                                               \
        }                                                                                          \
    } while (0)

    /* dx of conv (k = 5, pad 2) -> 2 x 2 max pool -> ReLU for one image of 14 rows (wd even, 10 to
       16 pixels) from the pooled gradient g, the ReLU's pooled output y and the pooling positions
       idx (cout, 7, wd/2 each), without the pre-pool gradient: as in hpc_dw_pooled5, a window's
       only nonzero pre-pool gradient is v = g * (y > 0) at its recorded position (r, s), so
       dx[c, r + p - 2, s + q - 2] += v * w[o, c, p, q] over the windows with v != 0 is the whole
       sum, the terms left out being 0 * w: exact zeros for a finite w.  Every entry also
       multiplies v by the zeros around its taps (the other pixels of its 8-pixel rows), so v must
       be finite too: the caller checks w once and g per image, and takes the dense path otherwise.
       A window scatters into 5 rows of dx; dx's rows are held in registers instead (14
       accumulators of 8 pixels: one half of each row, one input channel at a time), so no
       read-modify-write of memory waits on the previous window's store (session 17's scatter into
       memory did).  The windows are listed per pre-pool row r (its entries feed rows r - 2 .. r + 2,
       a compile-time set) and per half they reach (pixels 0-7: s <= 9, px <= 4; pixels 8-15:
       s >= 6, px >= 3), 7 or 8 windows at a time with a left-packing permutation (no branch on the
       data); rows r and r + 7 are summed together.
       tw: (cin, cout, 5, 20) floats, tw[c, o, p, 7 + q] = w[o, c, p, q], 0 elsewhere; an entry of
       half hf for window column s reads tw[c, o, 0:5, 9 + 8 hf - s + (0:8)].  vl, ol: 28 lists of
       cap = cout * wd/2 + 8 entries each (v; offsets into tw[c]); cnt: 28 ints.  dx (cin, 14, wd)
       is written, not added to; the terms of each sum come in another order than the dense
       convolution's (float32 rounding differs). */
    static void hpc_dx_pooled14(const float* g, const float* y, const unsigned char* idx, int cin,
                                int cout, int wd, const float* tw, float* vl, int* ol, int* cnt,
                                float* dx) {
        const int ho = 7, wo = wd / 2, cap = cout * wo + 8;
        const long hw2 = (long)ho * wo;
        const __m256i px = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi32(1);
        const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(wo), px));
        const __m256 in0 = _mm256_and_ps(valid, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(5), px)));
        const __m256 in1 = _mm256_and_ps(valid, _mm256_castsi256_ps(_mm256_cmpgt_epi32(px, _mm256_set1_epi32(2))));
        for (int py = 0; py < ho; py++) {
            /* lists (2 py + dy) * 2 + hf */
            float* v00 = vl + (long)(4 * py) * cap;
            float* v01 = v00 + cap;
            float* v10 = v01 + cap;
            float* v11 = v10 + cap;
            int* o00 = ol + (long)(4 * py) * cap;
            int* o01 = o00 + cap;
            int* o10 = o01 + cap;
            int* o11 = o10 + cap;
            int n00 = 0, n01 = 0, n10 = 0, n11 = 0;
            for (int o = 0; o < cout; o++) {
                const long j = o * hw2 + (long)py * wo;
                const int last = j + 8 > (long)cout * hw2;  /* the image's last row: not 8 readable */
                const int m = last ? wo : 8;
                const __m256i a = _mm256_cvtepu8_epi32(last ? hpc_load_bytes8(idx + j, wo)
                                                            : _mm_loadl_epi64((const __m128i*)(idx + j)));
                /* a position past 3 (never the forward pass's) drops the window, as hpc_pool_bwd */
                const __m256 ok = _mm256_and_ps(valid, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(4), a)));
                const __m256 v = _mm256_and_ps(hpc_relu_grad8(hpc_load8(g + j, m), hpc_load8(y + j, m)), ok);
                const __m256 nz = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ);
                const __m256 dy1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(_mm256_srli_epi32(a, 1), one), one));
                /* tw's offset: o * 100 + 9 - s, s = 2 px + (a & 1) */
                const __m256i off = _mm256_sub_epi32(_mm256_set1_epi32(o * 100 + 9),
                                                     _mm256_add_epi32(_mm256_add_epi32(px, px), _mm256_and_si256(a, one)));
                const __m256i off1 = _mm256_add_epi32(off, _mm256_set1_epi32(8));
                const __m256 z0 = _mm256_andnot_ps(dy1, nz), z1 = _mm256_and_ps(dy1, nz);
                const int m00 = _mm256_movemask_ps(_mm256_and_ps(z0, in0));
                const int m01 = _mm256_movemask_ps(_mm256_and_ps(z0, in1));
                const int m10 = _mm256_movemask_ps(_mm256_and_ps(z1, in0));
                const int m11 = _mm256_movemask_ps(_mm256_and_ps(z1, in1));
                n00 += hpc_left_pack8(v, off, m00, v00 + n00, o00 + n00);
                n01 += hpc_left_pack8(v, off1, m01, v01 + n01, o01 + n01);
                n10 += hpc_left_pack8(v, off, m10, v10 + n10, o10 + n10);
                n11 += hpc_left_pack8(v, off1, m11, v11 + n11, o11 + n11);
            }
            cnt[4 * py] = n00; cnt[4 * py + 1] = n01; cnt[4 * py + 2] = n10; cnt[4 * py + 3] = n11;
        }
        const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(wd - 8), px);
        for (int hf = 0; hf < 2; hf++)
            for (int c = 0; c < cin; c++) {
                const float* tc = tw + (long)c * cout * 100;
                __m256 a[14];
                _Pragma("GCC unroll 14") for (int r = 0; r < 14; r++) a[r] = _mm256_setzero_ps();
                HPC_DX_ROWS(0, 7);
                HPC_DX_ROWS(1, 8);
                HPC_DX_ROWS(2, 9);
                HPC_DX_ROWS(3, 10);
                HPC_DX_ROWS(4, 11);
                HPC_DX_ROWS(5, 12);
                HPC_DX_ROWS(6, 13);
                float* d = dx + (long)c * 14 * wd + 8 * hf;
                if (hf == 0) {
                    _Pragma("GCC unroll 14") for (int r = 0; r < 14; r++) _mm256_storeu_ps(d + (long)r * wd, a[r]);
                } else {
                    _Pragma("GCC unroll 14") for (int r = 0; r < 14; r++) _mm256_maskstore_ps(d + (long)r * wd, tail, a[r]);
                }
            }
    }
    #undef HPC_DX_ROWS
    #undef HPC_DX_FMA

    #else
    /* Without a direct path the kernels take the im2col + sgemm path; these are never called. */
    #define HPC_POOLED_DW 0
    static int hpc_finite(const float* x, long n) { return 1; }
    static void hpc_dw_pooled5(const float* xp, const float* g, const float* y, const unsigned char* idx,
                               int cin, int cout, int h, int wd, float* acc, float* db, const int* base,
                               int* off, float* val) {}
    static void hpc_window_base(int* base, int ho, int wo, int wp, int px) {}
    static void hpc_dw_pooled_reduce(const float* acc, int cout, int cin, float* dw) {}
    static void hpc_pack8_init(void) {}
    static void hpc_dx_pooled14(const float* g, const float* y, const unsigned char* idx, int cin,
                                int cout, int wd, const float* tw, float* vl, int* ol, int* cnt,
                                float* dx) {}
    #endif

    #if HPC_AVX512  /* implies the block above: AVX-512 CPUs have AVX2 + FMA */
    /* The AVX-512 build's pooled weight gradient for 2 to 6 input channels (LeNet's conv2), 16 lanes:
       the image padded channel-last (hpc_pad_hwc), so that the 5 taps of a kernel row for every
       input channel, xh[(y + p) wp' + (u + q) cin + c] for q < 5 and c < cin, are 5 cin <= 30
       consecutive floats, two 16-float loads.  Per listed window 10 FMAs cover the 25 cin
       products (150 for conv2), against 5 cin 8-lane FMAs of 5 useful lanes (30) in
       hpc_dw_pooled5, whose 8-lane kernels were not clearly faster than the dense 16-lane ones on an AMD
       EPYC Zen 5 (BENCHMARKS.md session 21). */

    /* dst[((y + 2) (wd + 4) + u + 2) cin + c] = x[c, y, u]: the image padded by 2 with the channels
       last; the border, zeroed once (the slot's memset), stays zero. */
    static void hpc_pad_hwc(const float* x, int cin, int h, int wd, float* dst) {
        const long rs = (long)(wd + 4) * cin;
        for (int c = 0; c < cin; c++)
            for (int y = 0; y < h; y++) {
                const float* s = x + ((long)c * h + y) * wd;
                float* d = dst + (y + 2) * rs + 2 * cin + c;
                for (int u = 0; u < wd; u++) d[(long)u * cin] = s[u];
            }
    }

    /* Copies of the channel-last dx that hpc_dw_pooled_hwc5 adds into in turn, so that one listed
       window's read-modify-writes do not wait on the previous window's stores to overlapping
       floats (a load that a pending store only partly covers waits until that store is written). */
    #define HPC_DX_COPIES 4

    /* hpc_dw_pooled5 on hpc_pad_hwc's layout (base: hpc_window_base with wp = (wd + 4) cin and
       px = cin): for each output channel the windows with a nonzero v are listed
       (hpc_list_windows), then acc[o, p, 0:32] += the sum over them of v * xh[off + p wp + (0:32)],
       lane q cin + c holding dw[o, c, p, q] (lanes 5 cin and up: the next pixel's values, never
       used).  As in hpc_dw_pooled5 the image's sums start from zero, run in window order and are
       added to acc once; db[o] += the sum of the v.  acc: (cout, 5, 32) floats.  xh must hold 32
       floats past its last padded row's end (hpc_pad_hwc's buffer has them, zero).
       With DX, the same windows give dx (the terms left out are 0 * w): window e adds v * tt[o, p,
       0:32] to dcopy[e % HPC_DX_COPIES][off + p wp + (0:32)], tt[o, p, q cin + c] = w[o, c, p, q]
       and 0 in lanes 5 cin and up, so v must be finite (v * 0 lands on the next pixel) and w too:
       the caller checks.  dcopy: HPC_DX_COPIES zeroed buffers laid out as xh, dstride floats
       apart; hpc_dx_hwc_finish sums them into dx. */
    static inline __attribute__((always_inline)) void hpc_pooled_hwc5_body(
            const float* xh, const float* g, const float* y, const unsigned char* idx, int cin,
            int cout, int h, int wd, float* acc, float* db, const int* base, int* off, float* val,
            const float* tt, float* dcopy, long dstride, const int DX) {
        const int wp = (wd + 4) * cin;
        const long hw2 = (long)(h / 2) * (wd / 2);
        for (int o = 0; o < cout; o++) {
            const int n = hpc_list_windows(g + o * hw2, y + o * hw2, idx + o * hw2, hw2, wp, cin, base,
                                           off, val, db + o);
            __m512 a[5][2], t[5][2];
            _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) {
                a[p][0] = a[p][1] = _mm512_setzero_ps();
                if (DX) {
                    t[p][0] = _mm512_loadu_ps(tt + (long)o * 160 + 32 * p);
                    t[p][1] = _mm512_loadu_ps(tt + (long)o * 160 + 32 * p + 16);
                }
            }
            for (int e = 0; e < n; e++) {
                const __m512 gv = _mm512_set1_ps(val[e]);
                const float* b = xh + off[e];
                _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) {
                    a[p][0] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(b + (long)p * wp), a[p][0]);
                    a[p][1] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(b + (long)p * wp + 16), a[p][1]);
                    if (DX) {
                        float* dp = dcopy + (e % HPC_DX_COPIES) * dstride + off[e] + (long)p * wp;
                        _mm512_storeu_ps(dp, _mm512_fmadd_ps(gv, t[p][0], _mm512_loadu_ps(dp)));
                        _mm512_storeu_ps(dp + 16, _mm512_fmadd_ps(gv, t[p][1], _mm512_loadu_ps(dp + 16)));
                    }
                }
            }
            float* ao = acc + (long)o * 160;
            _Pragma("GCC unroll 5") for (int p = 0; p < 5; p++) {
                _mm512_storeu_ps(ao + 32 * p, _mm512_add_ps(_mm512_loadu_ps(ao + 32 * p), a[p][0]));
                _mm512_storeu_ps(ao + 32 * p + 16, _mm512_add_ps(_mm512_loadu_ps(ao + 32 * p + 16), a[p][1]));
            }
        }
    }

    /* hpc_pooled_hwc5_body without dx (tt and dcopy NULL) or with it. */
    static void hpc_dw_pooled_hwc5(const float* xh, const float* g, const float* y,
                                   const unsigned char* idx, int cin, int cout, int h, int wd,
                                   float* acc, float* db, const int* base, int* off, float* val,
                                   const float* tt, float* dcopy, long dstride) {
        if (tt)
            hpc_pooled_hwc5_body(xh, g, y, idx, cin, cout, h, wd, acc, db, base, off, val, tt, dcopy,
                                 dstride, 1);
        else
            hpc_pooled_hwc5_body(xh, g, y, idx, cin, cout, h, wd, acc, db, base, off, val, NULL, NULL,
                                 0, 0);
    }

    /* dx[c, y, u] = the sum over the HPC_DX_COPIES copies of dcopy[((y + 2) (wd + 4) + u + 2) cin +
       c] (hpc_dw_pooled_hwc5's dx, written, not added to), then every copy zeroed for the next
       image: the sum 16 floats at a time (into copy 0), the transposition to channel planes one
       float at a time. */
    static void hpc_dx_hwc_finish(float* dcopy, long dstride, int cin, int h, int wd, float* dx) {
        const long rs = (long)(wd + 4) * cin, n = (h + 4) * rs;
        for (long j = 0; j < n; j += 16) {
            const __mmask16 m = hpc_tail((int)(n - j < 16 ? n - j : 16));
            __m512 sum = _mm512_maskz_loadu_ps(m, dcopy + j);
            for (int k = 1; k < HPC_DX_COPIES; k++) {
                sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, dcopy + k * dstride + j));
                _mm512_mask_storeu_ps(dcopy + k * dstride + j, m, _mm512_setzero_ps());
            }
            _mm512_mask_storeu_ps(dcopy + j, m, sum);
        }
        for (int c = 0; c < cin; c++)
            for (int yy = 0; yy < h; yy++) {
                const float* s = dcopy + (yy + 2) * rs + 2 * cin + c;
                float* d = dx + ((long)c * h + yy) * wd;
                for (int u = 0; u < wd; u++) d[u] = s[(long)u * cin];
            }
        /* Past n (up to 31 - 5 cin floats) the copies only ever got v * 0 from tt's zero lanes:
           still zero, with v finite. */
        memset(dcopy, 0, (size_t)n * sizeof(float));
    }

    /* dw[o, c, p, q] += acc[o, p, q cin + c]: hpc_dw_pooled_hwc5's sums. */
    static void hpc_dw_hwc_reduce(const float* acc, int cout, int cin, float* dw) {
        for (int o = 0; o < cout; o++)
            for (int c = 0; c < cin; c++)
                for (int p = 0; p < 5; p++)
                    for (int q = 0; q < 5; q++)
                        dw[((long)(o * cin + c) * 5 + p) * 5 + q] += acc[(long)(o * 5 + p) * 32 + q * cin + c];
    }
    #else
    /* The AVX-512 build's; never called here. */
    static void hpc_pad_hwc(const float* x, int cin, int h, int wd, float* dst) {}
    static void hpc_dw_pooled_hwc5(const float* xh, const float* g, const float* y,
                                   const unsigned char* idx, int cin, int cout, int h, int wd,
                                   float* acc, float* db, const int* base, int* off, float* val,
                                   const float* tt, float* dcopy, long dstride) {}
    static void hpc_dx_hwc_finish(float* dcopy, long dstride, int cin, int h, int wd, float* dx) {}
    #define HPC_DX_COPIES 4
    static void hpc_dw_hwc_reduce(const float* acc, int cout, int cin, float* dw) {}
    #endif
    """
    int HPC_DIRECT
    int HPC_AVX512
    int HPC_OLANES
    int HPC_POOL_SIMD
    int HPC_POOL_AVX512
    int HPC_POOLED_DW
    int hpc_finite(const float* x, long n) noexcept nogil
    void hpc_dw_pooled5(const float* xp, const float* g, const float* y, const unsigned char* idx,
                        int cin, int cout, int h, int wd, float* acc, float* db, const int* base,
                        int* off, float* val) noexcept nogil
    void hpc_window_base(int* base, int ho, int wo, int wp, int px) noexcept nogil
    void hpc_dw_pooled_reduce(const float* acc, int cout, int cin, float* dw) noexcept nogil
    void hpc_pad_hwc(const float* x, int cin, int h, int wd, float* dst) noexcept nogil
    void hpc_dw_pooled_hwc5(const float* xh, const float* g, const float* y, const unsigned char* idx,
                            int cin, int cout, int h, int wd, float* acc, float* db, const int* base,
                            int* off, float* val, const float* tt, float* dcopy,
                            long dstride) noexcept nogil
    void hpc_dx_hwc_finish(float* dcopy, long dstride, int cin, int h, int wd, float* dx) noexcept nogil
    int HPC_DX_COPIES
    void hpc_dw_hwc_reduce(const float* acc, int cout, int cin, float* dw) noexcept nogil
    void hpc_pack8_init() noexcept nogil
    void hpc_dx_pooled14(const float* g, const float* y, const unsigned char* idx, int cin,
                         int cout, int wd, const float* tw, float* vl, int* ol, int* cnt,
                         float* dx) noexcept nogil
    void hpc_pool_fwd(const float* x, long planes, int h, int wd, float* out,
                      unsigned char* idx, int relu) noexcept nogil
    void hpc_pool_bwd(const float* g, const unsigned char* idx, long planes, int ho, int wo,
                      float* dx, const float* y) noexcept nogil
    void hpc_pad_zero(int nc, int h, int wd, int pad, float* dst) noexcept nogil
    void hpc_pad_rows(const float* src, int nc, int h, int wd, int pad, float* dst) noexcept nogil
    void hpc_pad_rows_u8(const unsigned char* src, int nc, int h, int wd, int pad, float scale,
                         float* dst) noexcept nogil
    void hpc_fwd_planes(const float* xp, int cin, int k, const float* w, const float* b,
                        float* out, int cout, int h, int wd) noexcept nogil
    void hpc_dw_image(const float* xp, const float* g, float* acc16, int cin, int cout, int h,
                      int wd, int k) noexcept nogil
    void hpc_db_image(const float* g, int cout, int h, int wd, float* db) noexcept nogil
    void hpc_dw_reduce(const float* acc16, long m, float* dw) noexcept nogil
    void hpc_dw_image_olanes5(const float* xp, const float* g, float* gt, float* dwt, int cin,
                              int cout, int h, int wd) noexcept nogil
    void hpc_dwt_reduce(const float* dwt, int cout, long ckk, float* dw) noexcept nogil
    void hpc_fwd_pool_olanes5(const float* xp, int cin, const float* wt, const float* b,
                              float* out, unsigned char* idx, int cout, int h, int wd,
                              float* rows, float* pool, unsigned char* pidx) noexcept nogil
    void hpc_bwd1_group16(const float* x, const float* dout, const float* y,
                          const unsigned char* idx, int cout, int h, int wd, float* xb, float* dt,
                          float* kt, float* g2, float* acc16, float* db) noexcept nogil
    void hpc_wino_weights(const float* w, int cout, int cin, float* u) noexcept nogil
    void hpc_fwd_wino25_group16(const float* x, int cin, const float* u, const float* b, float* out,
                                int cout, int h, int wd, float* xb, float* th, float* v,
                                float* m, float* pool) noexcept nogil
    void hpc_fwd_wino25_group8(const float* x, int cin, const float* u, const float* b, float* out,
                               int cout, int h, int wd, float* xb, float* th, float* v,
                               float* m, float* pool) noexcept nogil
    void hpc_fwd1_group16(const float* x, const unsigned char* x8, float scale, const float* w,
                          const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                          float* xb, float* pool, unsigned char* pidx) noexcept nogil
    void hpc_fwd1_group8(const float* x, const unsigned char* x8, float scale, const float* w,
                         const float* b, float* out, unsigned char* idx, int cout, int h, int wd,
                         float* xb, float* pool, unsigned char* pidx) noexcept nogil



include "_checks.pxi"

#: True where this build has the direct convolution (AVX-512, or AVX2 + FMA with 8-lane vectors);
#: False: the portable im2col + sgemm path (HPCLARS_NO_NATIVE=1, or a compiler target with neither).
DIRECT = bool(HPC_DIRECT)
#: Which convolution: "avx512" (16 lanes), "avx2" (AVX2 + FMA, 8 lanes) or "portable" (sgemm).
ISA = "avx512" if HPC_AVX512 else "avx2" if HPC_DIRECT else "portable"
#: True where conv2d_pool_relu_backward sums dw and db over the nonzero pooling windows only
#: (K = 5, even H and W) for an input of more than one channel (LeNet's conv2; hpc_dw_pooled5 on
#: the AVX2 build, any Cin; hpc_dw_pooled_hwc5 on AVX-512, 2 to 6): fewer FLOPs than the dense
#: computation, equal to rounding.
POOLED_DW = bool(HPC_POOLED_DW)
#: ... and for one input channel (LeNet's conv1; the AVX2 build only: on AVX-512 conv1's backward
#: pass keeps its 16 images in the lanes).
POOLED_DW1 = bool(HPC_POOLED_DW and not HPC_AVX512)
#: True where conv2d_pool_relu_forward without positions (idx None: evaluation) takes 16 images
#: (AVX2: 8) at a time by Winograd F(2x2, 5x5) for K = 5, Cout a multiple of 16, even H and W and
#: a float32 x (LeNet's conv2; the direct builds): fewer operations than the direct sum, equal to
#: rounding (a relative error near 2e-6 of the largest output; hpc_fwd_wino25_group16, _group8),
#: except that an inf in a pooling window's 6 x 6 input block may make that window NaN.
WINOGRAD = bool(HPC_DIRECT and HPC_POOL_SIMD)
#: True where conv2d_pool_relu_backward also sums dx over the nonzero pooling windows only, equal
#: to rounding: on the AVX2 build for K = 5, H = 14 and even W of 10 to 16 (hpc_dx_pooled14), on
#: AVX-512 with the weight gradient, for 2 to 6 input channels (hpc_dw_pooled_hwc5).
POOLED_DX = bool(HPC_POOLED_DW)
hpc_pack8_init()


ctypedef struct Geom:
    int cin, h, w, cout, k, pad
    int hp, wp, plane          # padded height and width; plane = hp * wp
    int hwp, ckk               # hwp = h * wp columns of the padded-width grid
    Py_ssize_t xp, cols, outp, dw, db, slot   # offsets of the pieces in a slot, and its size
    # Direct path: the size of the shared piece (wf), then offsets in a slot and its size.
    Py_ssize_t shared, dxp, dgp, dacc, ddb, dslot
    # Direct path, dw with the output channels in the lanes (K = 5, Cout a multiple of 16): dacc
    # holds dwt (CKK, Cout) and, at dgt, the image's dout transposed to (H*W, Cout).
    bint olanes
    Py_ssize_t dgt
    # Direct path, fused kernels: dda, one image's pre-pool activations (forward) or their
    # gradient (backward), (Cout, H, W), kept in cache instead of going to memory.
    Py_ssize_t dda
    # Direct path, fused kernels of a one-channel input (conv1): 16 (AVX2: 8) images at a time with
    # the images in the lanes (hpc_*1_group16, hpc_*1_group8); the pieces after dda: the padded
    # pixel vectors, the transposed pooled gradient and positions (the forward pass's pooled
    # values and positions), two pre-pool rows of the gradient.
    bint blanes
    Py_ssize_t dxb, ddt, dkt, dg2
    # Direct path, the pooled weight gradient (hpc_dw_pooled5: AVX2 build, K = 5, H and W even):
    # its accumulators (Cout, Cin, 5, 8) and the list of nonzero windows (offsets, values).
    bint pooled_dw
    Py_ssize_t dpa, dpo, dpv, dpb
    # ... on the AVX-512 build, for 2 to 6 input channels, on the image padded channel-last
    # (hpc_dw_pooled_hwc5, hpc_pad_hwc): at dph; with dx from the same windows, its weight table
    # (Cout, 5, 32) at dtt in the shared piece and HPC_DX_COPIES channel-last dx buffers at dpd,
    # dps floats apart.
    bint hwc
    Py_ssize_t dph, dtt, dpd, dps
    # ... and dx from the same windows (hpc_dx_pooled14: H = 14, W 10 to 16): its weight table
    # (Cin, Cout, 5, 20) in the shared piece, then per slot the window lists (values, offsets)
    # and their counts.
    bint pooled_dx
    Py_ssize_t dtw, dqv, dqo, dqc
    # Direct path, the forward-only Winograd F(2x2, 5x5) (hpc_fwd_wino25_group16 and _group8, K = 5,
    # Cout a multiple of 16, H and W even): the transformed weights at dwu in the shared piece, then,
    # last in a slot (the backward pass neither reads nor zeroes them), the padded pixel vectors,
    # the transformed rows of a tile column, the transformed tile, its products and the pooled
    # maps (sized for 16 lanes).
    bint wino
    Py_ssize_t dwu, dwx, dwt, dwv, dwm, dwp


cdef inline Py_ssize_t _up16(Py_ssize_t m) noexcept nogil:
    """m rounded up to a multiple of 16 floats (64 bytes, one cache line)."""
    return (m + 15) // 16 * 16


# Floats of slack in every work size: the kernels start their scratch at the first 64-byte
# boundary of ``work`` (_aligned), whatever its address.  NumPy aligns large arrays to 16 bytes
# only, and conv1's fused forward on AVX2 took 1.07-1.18 ms per 256 images with the scratch at
# the other offsets against 0.89 at 0 or 32 mod 64 (AMD EPYC, 2026-12-01, min of 30).
cdef enum:
    WORK_SLACK = 16


cdef inline float* _aligned(float* p) noexcept nogil:
    """p rounded up to the next 64-byte boundary (at most WORK_SLACK floats on)."""
    return <float*>((<size_t>p + 63) & ~(<size_t>63))


cdef Geom _geom(Py_ssize_t cin, Py_ssize_t h, Py_ssize_t w, Py_ssize_t cout,
                Py_ssize_t k) noexcept nogil:
    cdef Geom g
    g.cin, g.h, g.w, g.cout, g.k, g.pad = cin, h, w, cout, k, k // 2
    g.hp, g.wp = h + 2 * g.pad, w + 2 * g.pad
    g.plane, g.hwp, g.ckk = g.hp * g.wp, h * g.wp, cin * k * k
    g.xp = 0
    g.cols = g.xp + _up16(<Py_ssize_t>cin * g.plane + 2 * g.pad)
    g.outp = g.cols + _up16(<Py_ssize_t>g.ckk * g.hwp)
    g.dw = g.outp + _up16(<Py_ssize_t>cout * g.hwp)
    g.db = g.dw + _up16(<Py_ssize_t>cout * g.ckk)
    g.slot = g.db + _up16(cout)
    g.shared = _up16(<Py_ssize_t>cout * g.ckk)
    g.dxp = 0
    g.dgp = g.dxp + _up16(<Py_ssize_t>cin * g.plane + 16)
    g.dacc = g.dgp + _up16(<Py_ssize_t>cout * g.plane + 16)
    g.olanes = HPC_OLANES and k == 5 and cout % 16 == 0
    g.dgt = g.dacc + _up16(<Py_ssize_t>cout * g.ckk)
    if g.olanes:
        g.ddb = g.dgt + _up16(<Py_ssize_t>cout * h * w)
    else:
        g.ddb = g.dacc + <Py_ssize_t>cout * g.ckk * 16
    g.dda = g.ddb + _up16(cout)
    g.dslot = g.dda + _up16(<Py_ssize_t>cout * h * w)
    # Also for one input channel (conv1), two output channels' windows at a time: with the windows
    # listed 8 at a time (hpc_list_windows) its backward pass took 0.57-0.90 ms per 256 images
    # against 0.91-1.15 for the 8 images in the lanes it replaced (hpc_bwd1_group8, removed; min of
    # 100, 4 alternating pairs, AMD EPYC, 2026-12-01, BENCHMARKS.md session 18; session 17's scalar
    # listing had been slower).
    # The AVX-512 build takes it for 2 to 6 input channels only, with dx, on the image padded
    # channel-last (hpc_dw_pooled_hwc5); conv1's backward pass there keeps its 16 images in the
    # lanes (the AVX2 build's 8-lane kernels were not clearly faster there, BENCHMARKS.md session 21).
    g.pooled_dw = (HPC_POOLED_DW and k == 5 and h % 2 == 0 and w % 2 == 0
                   and (not HPC_AVX512 or 2 <= cin <= 6))
    g.hwc = g.pooled_dw and HPC_AVX512
    g.dpa = g.dpo = g.dpv = g.dpb = g.dph = 0  # used only with pooled_dw (dph: with hwc)
    if g.pooled_dw:
        g.dpa = g.dslot
        g.dpo = g.dpa + _up16(<Py_ssize_t>cout * (160 if g.hwc else cin * 40))
        g.dpv = g.dpo + 2 * _up16((h // 2) * (w // 2) + 8)
        g.dpb = g.dpv + 2 * _up16((h // 2) * (w // 2) + 8)
        g.dslot = g.dpb + _up16((h // 2) * (w // 2) + 8)
    g.dtt = g.dpd = g.dps = 0
    if g.hwc:
        g.dps = _up16(<Py_ssize_t>(h + 4) * (w + 4) * cin + 32)
        g.dph = g.dslot
        g.dpd = g.dph + g.dps
        g.dslot = g.dpd + HPC_DX_COPIES * g.dps
        g.dtt = g.shared
        g.shared += _up16(<Py_ssize_t>cout * 160)
    g.pooled_dx = g.pooled_dw and not HPC_AVX512 and h == 14 and 10 <= w <= 16
    g.dtw = g.dqv = g.dqo = g.dqc = 0  # used only with pooled_dx
    if g.pooled_dx:
        g.dtw = g.shared
        g.shared += _up16(<Py_ssize_t>cin * cout * 100)
        g.dqv = g.dslot
        g.dqo = g.dqv + _up16(<Py_ssize_t>28 * (cout * (w // 2) + 8))
        g.dqc = g.dqo + _up16(<Py_ssize_t>28 * (cout * (w // 2) + 8))
        g.dslot = g.dqc + 32
    g.blanes = cin == 1 and k == 5 and cout % 3 == 0 and cout <= 8 and h % 2 == 0 and w % 2 == 0
    g.dxb = g.ddt = g.dkt = g.dg2 = 0  # used only with blanes
    if g.blanes:
        g.dxb = g.dslot
        g.ddt = g.dxb + 16 * <Py_ssize_t>g.plane
        g.dkt = g.ddt + 16 * <Py_ssize_t>cout * (h // 2) * (w // 2)
        g.dg2 = g.dkt + 16 * <Py_ssize_t>cout * (h // 2) * (w // 2)
        g.dslot = g.dg2 + 16 * 2 * <Py_ssize_t>cout * w
    g.wino = HPC_DIRECT and HPC_POOL_SIMD and k == 5 and cout % 16 == 0 and h % 2 == 0 and w % 2 == 0
    g.dwu = g.dwx = g.dwt = g.dwv = g.dwm = g.dwp = 0  # used only with wino
    if g.wino:
        g.dwu = g.shared
        g.shared += _up16(<Py_ssize_t>36 * cin * cout)
        g.dwx = g.dslot
        g.dwt = g.dwx + 16 * <Py_ssize_t>cin * (h + 4) * (w + 4)
        g.dwv = g.dwt + 16 * 6 * <Py_ssize_t>cin * (h + 4)
        g.dwm = g.dwv + 16 * 36 * <Py_ssize_t>cin
        g.dwp = g.dwm + 16 * 36 * 16
        g.dslot = g.dwp + 16 * <Py_ssize_t>cout * (h // 2) * (w // 2)
    return g


cdef inline int _threads(Py_ssize_t n, int nthreads) noexcept nogil:
    """Threads actually used: no more than there are images, and at least one."""
    return <int>max(1, min(n, <Py_ssize_t>nthreads))


def conv2d_work_size(n, cin, h, w, cout, k, nthreads=1):
    """Elements of float32 scratch that conv2d_forward/backward need.

    n, cin, h, w, cout, k   the problem: x (n, cin, h, w), weights (cout, cin, k, k)
    nthreads                the thread count the kernels will be called with
    A buffer sized for a batch of n also serves every smaller batch.
    """
    if min(n, cin, h, w, cout, k) < 0 or nthreads < 1:
        raise ValueError(f"conv2d_work_size needs non-negative sizes and nthreads >= 1, got "
                         f"n={n}, cin={cin}, h={h}, w={w}, cout={cout}, k={k}, "
                         f"nthreads={nthreads}")
    cdef Geom g = _geom(cin, h, w, cout, k)
    if HPC_DIRECT:
        return int(WORK_SLACK + g.shared + _threads(n, nthreads) * g.dslot)
    return int(WORK_SLACK + _threads(n, nthreads) * g.slot)


cdef void _check_w(w, cin) except *:
    """w must be float32 (Cout, Cin, K, K), K odd, Cout >= 1."""
    _checked(w, "w", np.float32, None)
    if (w.ndim != 4 or w.shape[1] != cin or w.shape[2] != w.shape[3]
            or w.shape[2] % 2 == 0 or w.shape[0] == 0):
        raise ValueError(f"w must have shape (Cout, {cin}, K, K) with K odd and Cout >= 1, "
                         f"got {w.shape}")


cdef void _check_work(work, need, str sizer) except *:
    """work must be a writable float32 1-D buffer of at least ``need`` elements (from ``sizer``)."""
    _checked(work, "work", np.float32, None, out=True)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must be 1-D with at least {sizer}(...) = {need} "
                         f"elements, got shape {work.shape}")


cdef tuple _check_common(x, w, work, int nthreads):
    """Check x, w, work and nthreads; return (n, cin, h, wd, cout, k)."""
    _check_threads(nthreads)
    _checked(x, "x", np.float32, None)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, Cin, H, W), got {x.shape}")
    n, cin, h, wd = x.shape
    _check_w(w, cin)
    cout, k = w.shape[0], w.shape[2]
    _check_work(work, conv2d_work_size(n, cin, h, wd, cout, k, nthreads), "conv2d_work_size")
    return n, cin, h, wd, cout, k


cdef void _pad_image(const float* x, float* xp, const Geom* g) noexcept nogil:
    """xp[c, y + pad, u + pad] = x[c, y, u]; zero elsewhere, slack included."""
    cdef int c, y, u
    cdef float* dst
    memset(xp, 0, (<size_t>g.cin * g.plane + 2 * g.pad) * sizeof(float))
    for c in range(g.cin):
        for y in range(g.h):
            dst = xp + <Py_ssize_t>c * g.plane + (y + g.pad) * g.wp + g.pad
            for u in range(g.w):
                dst[u] = x[(<Py_ssize_t>c * g.h + y) * g.w + u]


cdef void _im2col(const float* xp, float* cols, const Geom* g) noexcept nogil:
    """cols[(c*K + p)*K + q, j] = xp[c*plane + p*Wp + q + j] for j < HWp: one run per row."""
    cdef int c, p, q
    for c in range(g.cin):
        for p in range(g.k):
            for q in range(g.k):
                memcpy(cols, xp + <Py_ssize_t>c * g.plane + p * g.wp + q,
                       <size_t>g.hwp * sizeof(float))
                cols += g.hwp


cdef void _col2im(const float* dcols, float* dxp, const Geom* g) noexcept nogil:
    """Adjoint of _im2col: dxp = 0, then dxp[c*plane + p*Wp + q + j] += dcols[(c, p, q), j]."""
    cdef int c, p, q, j
    cdef float* dst
    memset(dxp, 0, (<size_t>g.cin * g.plane + 2 * g.pad) * sizeof(float))
    for c in range(g.cin):
        for p in range(g.k):
            for q in range(g.k):
                dst = dxp + <Py_ssize_t>c * g.plane + p * g.wp + q
                for j in range(g.hwp):
                    dst[j] += dcols[j]
                dcols += g.hwp


cdef inline void _columns(const float* x, float* slot, const Geom* g) noexcept nogil:
    """Sgemm path, per image, forward and backward alike: pad image ``x`` (Cin, H, W) into the
    thread's ``slot + xp``, then im2col it into ``slot + cols`` (CKK, HWp)."""
    _pad_image(x, slot + g.xp, g)
    _im2col(slot + g.xp, slot + g.cols, g)


cdef void _zero_wrapped(float* cols, const Geom* g) noexcept nogil:
    """Zero the 2*pad extra columns of every grid row of cols.

    There _im2col leaves pixels wrapped in from the next padded row, which would meet
    the zero extra columns of the padded dout in the dw product: 0 * x is 0 for finite
    x but NaN for an inf or NaN pixel on the image's left edge, a term the reference
    (valid dout positions only) does not have.
    """
    cdef Py_ssize_t r
    cdef int y
    for r in range(g.ckk):
        for y in range(g.h):
            memset(cols + r * g.hwp + y * g.wp + g.w, 0, 2 * g.pad * sizeof(float))


def _dx_padding_terms(w, dx):
    """Portable path: the w * 0 terms of dx that the padded-width grid leaves out.

    The reference (and the direct path) convolve the zero-PADDED dout with the flipped
    weights, so a tap that falls on the padding adds w * 0: nothing for a finite weight,
    NaN for an inf or NaN one.  The padded-width grid holds every dout row once, so the
    taps above the first row and below the last are missing; this sets the dx positions
    they reach to NaN, exactly where the reference has NaN.  Called only when some
    weight is not finite (ordinary training never pays for it).
    """
    cout, cin, k, _ = w.shape
    n, _, h, wd = dx.shape
    pad, wp = k // 2, wd + 2 * (k // 2)
    yy, xx = np.meshgrid(np.arange(h), np.arange(wd), indexing="ij")
    for c, p, q in zip(*np.nonzero(~np.isfinite(w).all(axis=0))):
        j = (yy + pad - p) * wp + (xx + pad - q)
        dx[:, c][:, (j < 0) | (j >= h * wp)] = np.nan


cdef void _direct_forward(x, w, b, out, idx, work, int nt, float x_scale=1.0, bint pooled=False):
    """Direct path of conv2d_forward (not pooled) and conv2d_pool_relu_forward (pooled: each
    image's convolution goes to the thread's ``dda`` and only its pooled, ReLU'd map to ``out``,
    the pooling positions to ``idx`` unless it is None).  x float32, or uint8 scaled by
    ``x_scale`` as each image is padded.  Arguments already checked."""
    cdef bint want_idx = pooled and idx is not None
    cdef bint u8 = x.dtype == np.uint8
    # 1-element dummies keep the memoryviews typed for the dtype x does not have.
    cdef const float[:, :, :, ::1] xv = np.empty((1, 1, 1, 1), np.float32) if u8 else x
    cdef const unsigned char[:, :, :, ::1] xu = x if u8 else np.empty((1, 1, 1, 1), np.uint8)
    cdef Py_ssize_t nimg = x.shape[0]
    cdef const float[:, :, :, ::1] wv = w
    cdef const float[::1] bv = b
    cdef float[:, :, :, ::1] ov = out
    # A 1-element dummy keeps the memoryview typed when no positions are wanted; the kernels then
    # get NULL for idx and for their scratch of positions.
    cdef unsigned char[:, :, :, ::1] iv = idx if want_idx else np.empty((1, 1, 1, 1), np.uint8)
    cdef float[::1] workv = work
    cdef Geom g = _geom(x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2])
    cdef int t, o, c, p, q
    cdef Py_ssize_t i
    cdef float* slot
    cdef float* wt = _aligned(&workv[0])
    # Channels in the lanes and pooling in registers where the shape allows (conv2).
    cdef bint olanes = pooled and g.olanes and g.w >= 14 and HPC_POOL_SIMD
    if olanes:
        # wt[c, p, q, o] = w[o, c, p, q]: 16 output channels' weights of a tap in one vector.
        for o in range(g.cout):
            for c in range(g.cin):
                for p in range(5):
                    for q in range(5):
                        wt[((c * 5 + p) * 5 + q) * g.cout + o] = wv[o, c, p, q]
    # conv1 (one input channel): 16 (AVX2: 8) images at a time with the images in the lanes, the
    # rest image by image below.
    cdef bint groups = pooled and g.blanes and HPC_POOL_SIMD and (g.cout == 3 or g.cout == 6)
    # Forward only (no positions) with Cout a multiple of 16 (conv2): 16 images (AVX2: 8) at a
    # time by Winograd F(2x2, 5x5) (:data:`WINOGRAD`), the rest image by image below.
    cdef bint wino = pooled and not want_idx and not u8 and g.wino
    cdef int gsz = 16 if HPC_POOL_AVX512 else 8
    cdef Py_ssize_t i0, grp, n16 = (nimg // gsz) * gsz if groups or wino else 0
    if wino and n16:
        hpc_wino_weights(&wv[0, 0, 0, 0], g.cout, g.cin, wt + g.dwu)
    with nogil, parallel(num_threads=nt):
        t = threadid()
        slot = wt + g.shared + t * g.dslot
        hpc_pad_zero(g.cin, g.h, g.w, g.pad, slot + g.dxp)
        if n16 and wino:  # the grids' zero borders
            memset(slot + g.dwx, 0, 16 * <Py_ssize_t>g.cin * g.plane * sizeof(float))
        elif n16:
            memset(slot + g.dxb, 0, 16 * <Py_ssize_t>g.plane * sizeof(float))
        for grp in prange(n16 // gsz, schedule="static"):
            i0 = grp * gsz
            if wino and HPC_POOL_AVX512:
                hpc_fwd_wino25_group16(&xv[i0, 0, 0, 0], g.cin, wt + g.dwu, &bv[0], &ov[i0, 0, 0, 0], g.cout,
                                       g.h, g.w, slot + g.dwx, slot + g.dwt, slot + g.dwv, slot + g.dwm,
                                       slot + g.dwp)
            elif wino:
                hpc_fwd_wino25_group8(&xv[i0, 0, 0, 0], g.cin, wt + g.dwu, &bv[0], &ov[i0, 0, 0, 0], g.cout,
                                      g.h, g.w, slot + g.dwx, slot + g.dwt, slot + g.dwv, slot + g.dwm,
                                      slot + g.dwp)
            elif HPC_POOL_AVX512:
                hpc_fwd1_group16(NULL if u8 else &xv[i0, 0, 0, 0], &xu[i0, 0, 0, 0] if u8 else NULL, x_scale,
                                 &wv[0, 0, 0, 0], &bv[0], &ov[i0, 0, 0, 0],
                                 &iv[i0, 0, 0, 0] if want_idx else NULL, g.cout, g.h, g.w, slot + g.dxb,
                                 slot + g.ddt, <unsigned char*>(slot + g.dkt) if want_idx else NULL)
            else:
                hpc_fwd1_group8(NULL if u8 else &xv[i0, 0, 0, 0], &xu[i0, 0, 0, 0] if u8 else NULL, x_scale,
                                &wv[0, 0, 0, 0], &bv[0], &ov[i0, 0, 0, 0],
                                &iv[i0, 0, 0, 0] if want_idx else NULL, g.cout, g.h, g.w, slot + g.dxb,
                                slot + g.ddt, <unsigned char*>(slot + g.dkt) if want_idx else NULL)
        for i in prange(n16, nimg, schedule="static"):
            if u8:
                hpc_pad_rows_u8(&xu[i, 0, 0, 0], g.cin, g.h, g.w, g.pad, x_scale, slot + g.dxp)
            else:
                hpc_pad_rows(&xv[i, 0, 0, 0], g.cin, g.h, g.w, g.pad, slot + g.dxp)
            if olanes:
                hpc_fwd_pool_olanes5(slot + g.dxp, g.cin, wt, &bv[0], &ov[i, 0, 0, 0],
                                     &iv[i, 0, 0, 0] if want_idx else NULL, g.cout, g.h, g.w, slot + g.dda,
                                     slot + g.dda + _up16(16 * g.w),
                                     <unsigned char*>(slot + g.dda + _up16(16 * g.w)
                                                      + _up16(<Py_ssize_t>4 * g.h * g.w)) if want_idx else NULL)
            elif pooled:
                hpc_fwd_planes(slot + g.dxp, g.cin, g.k, &wv[0, 0, 0, 0], &bv[0], slot + g.dda,
                               g.cout, g.h, g.w)
                hpc_pool_fwd(slot + g.dda, g.cout, g.h, g.w, &ov[i, 0, 0, 0],
                             &iv[i, 0, 0, 0] if want_idx else NULL, 1)
            else:
                hpc_fwd_planes(slot + g.dxp, g.cin, g.k, &wv[0, 0, 0, 0], &bv[0], &ov[i, 0, 0, 0],
                               g.cout, g.h, g.w)


cdef void _direct_backward(x, w, dout, y, idx, dx, dw, db, work, int nt):
    """Direct path of conv2d_backward (y None: dout is (N, Cout, H, W)) and of
    conv2d_pool_relu_backward (dout is the pooled map's gradient, y the pooled ReLU output,
    idx the pooling's positions: each image's pre-pool gradient is built in the thread's
    ``dda`` and never goes to memory).  Arguments already checked."""
    cdef bint pooled = y is not None, want_dx = dx is not None
    cdef const float[:, :, :, ::1] xv = x
    cdef const float[:, :, :, ::1] wv = w
    cdef const float[:, :, :, ::1] gv = dout
    # 1-element dummies keep the memoryviews typed when dx or the pooling is absent.
    cdef const float[:, :, :, ::1] yv = y if pooled else np.empty((1, 1, 1, 1), np.float32)
    cdef const unsigned char[:, :, :, ::1] iv = idx if pooled else np.empty((1, 1, 1, 1), np.uint8)
    cdef float[:, :, :, ::1] dxv = dx if want_dx else np.empty((1, 1, 1, 1), np.float32)
    cdef float[::1] dwv = dw.reshape(-1)
    cdef float[::1] dbv = db
    cdef float[::1] workv = work
    cdef Geom g = _geom(x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2])
    cdef int t, o, c, p, q
    cdef Py_ssize_t i
    cdef float* slot
    cdef const float* gi
    cdef float* wf = _aligned(&workv[0])
    if want_dx:
        # wf[c, o, p, q] = w[o, c, K-1-p, K-1-q]: dx is the forward convolution of dout with it.
        for c in range(g.cin):
            for o in range(g.cout):
                for p in range(g.k):
                    for q in range(g.k):
                        wf[((c * g.cout + o) * g.k + p) * g.k + q] = wv[o, c, g.k - 1 - p, g.k - 1 - q]
    # Zeroed here rather than by each thread, so a slot whose thread never starts
    # still adds nothing in the reduction below; up to the forward pass's Winograd pieces, which
    # come last in a slot and which the backward pass never reads.
    cdef Py_ssize_t zero_end = g.dwx if g.wino else g.dslot
    for t in range(nt):
        memset(wf + g.shared + t * g.dslot + g.dacc, 0, (zero_end - g.dacc) * sizeof(float))
    # conv1's fused backward (one input channel, no dx) on the AVX-512 build: 16 images at a time
    # with the images in the lanes, the rest image by image.  The zeroing above left the padded
    # grid's border zero.  The pooled weight gradient (hpc_dw_pooled5; on AVX-512
    # hpc_dw_pooled_hwc5) where the build has it (AVX2: conv1 and conv2; AVX-512: conv2), for
    # every image whose x is finite.
    cdef bint pooled_dw = pooled and g.pooled_dw, sparse = False, sparse_dx = False
    # dx from the listed windows too (hpc_dx_pooled14; on AVX-512 hpc_dw_pooled_hwc5's) where the
    # build and shape have it and w is finite (the terms it leaves out are 0 * w), for every image
    # whose dout is finite; its table tw[c, o, p, 7 + q] = w[o, c, p, q] (AVX-512: tt).
    cdef bint pooled_dx = (pooled_dw and want_dx and (g.pooled_dx or g.hwc)
                           and bool(np.isfinite(w).all()))
    cdef float* tw = wf + g.dtw
    # the AVX-512 build's table tt[o, p, q cin + c] = w[o, c, p, q], 0 in lanes 5 cin to 31
    cdef float* tt = wf + g.dtt
    cdef int px = g.cin if g.hwc else 1
    if pooled_dx and g.hwc:
        memset(tt, 0, <size_t>g.cout * 160 * sizeof(float))
        for o in range(g.cout):
            for c in range(g.cin):
                for p in range(5):
                    for q in range(5):
                        tt[(o * 5 + p) * 32 + q * g.cin + c] = wv[o, c, p, q]
    elif pooled_dx:
        memset(tw, 0, <size_t>g.cin * g.cout * 100 * sizeof(float))
        for c in range(g.cin):
            for o in range(g.cout):
                for p in range(5):
                    for q in range(5):
                        tw[((c * g.cout + o) * 5 + p) * 20 + 7 + q] = wv[o, c, p, q]
    cdef bint groups = pooled and not want_dx and g.blanes and HPC_POOL_AVX512 and not pooled_dw
    cdef int gsz = 16
    cdef Py_ssize_t i0, grp, n16 = (xv.shape[0] // gsz) * gsz if groups else 0
    with nogil, parallel(num_threads=nt):
        t = threadid()
        slot = wf + g.shared + t * g.dslot
        hpc_pad_zero(g.cin, g.h, g.w, g.pad, slot + g.dxp)
        if want_dx:
            hpc_pad_zero(g.cout, g.h, g.w, g.pad, slot + g.dgp)
        if pooled_dw:  # pixels cin floats apart channel-last (hwc), 1 in planes
            hpc_window_base(<int*>(slot + g.dpb), g.h // 2, g.w // 2, g.wp * px, px)
        for grp in prange(n16 // gsz, schedule="static"):
            i0 = grp * gsz
            hpc_bwd1_group16(&xv[i0, 0, 0, 0], &gv[i0, 0, 0, 0], &yv[i0, 0, 0, 0], &iv[i0, 0, 0, 0],
                             g.cout, g.h, g.w, slot + g.dxb, slot + g.ddt, slot + g.dkt, slot + g.dg2,
                             slot + g.dacc, slot + g.ddb)
        for i in prange(n16, xv.shape[0], schedule="static"):
            sparse = pooled_dw and hpc_finite(&xv[i, 0, 0, 0], <long>g.cin * g.h * g.w)
            # an inf or NaN v would reach the other lanes of its 8-pixel rows as v * 0
            sparse_dx = pooled_dx and hpc_finite(&gv[i, 0, 0, 0], <long>g.cout * (g.h // 2) * (g.w // 2))
            # the AVX-512 build's dx comes with its dw, from the same windows: only where x is finite
            sparse_dx = sparse_dx and (sparse or not g.hwc)
            if not pooled:
                gi = &gv[i, 0, 0, 0]
            elif (want_dx and not sparse_dx) or not sparse:
                hpc_pool_bwd(&gv[i, 0, 0, 0], &iv[i, 0, 0, 0], g.cout, g.h // 2, g.w // 2,
                             slot + g.dda, &yv[i, 0, 0, 0])
                gi = slot + g.dda
            if sparse and g.hwc:
                hpc_pad_hwc(&xv[i, 0, 0, 0], g.cin, g.h, g.w, slot + g.dph)
                hpc_dw_pooled_hwc5(slot + g.dph, &gv[i, 0, 0, 0], &yv[i, 0, 0, 0], &iv[i, 0, 0, 0],
                                   g.cin, g.cout, g.h, g.w, slot + g.dpa, slot + g.ddb,
                                   <const int*>(slot + g.dpb), <int*>(slot + g.dpo), slot + g.dpv,
                                   tt if sparse_dx else NULL, slot + g.dpd, g.dps)
                if sparse_dx:
                    hpc_dx_hwc_finish(slot + g.dpd, g.dps, g.cin, g.h, g.w, &dxv[i, 0, 0, 0])
            else:
                hpc_pad_rows(&xv[i, 0, 0, 0], g.cin, g.h, g.w, g.pad, slot + g.dxp)
                if sparse:
                    hpc_dw_pooled5(slot + g.dxp, &gv[i, 0, 0, 0], &yv[i, 0, 0, 0], &iv[i, 0, 0, 0],
                                   g.cin, g.cout, g.h, g.w, slot + g.dpa, slot + g.ddb,
                                   <const int*>(slot + g.dpb), <int*>(slot + g.dpo), slot + g.dpv)
                elif g.olanes:
                    hpc_dw_image_olanes5(slot + g.dxp, gi, slot + g.dgt, slot + g.dacc, g.cin, g.cout,
                                         g.h, g.w)
                else:
                    hpc_dw_image(slot + g.dxp, gi, slot + g.dacc, g.cin, g.cout, g.h, g.w, g.k)
            if not sparse:
                hpc_db_image(gi, g.cout, g.h, g.w, slot + g.ddb)
            if sparse_dx and not g.hwc:  # (with hwc, written above with dw)
                hpc_dx_pooled14(&gv[i, 0, 0, 0], &yv[i, 0, 0, 0], &iv[i, 0, 0, 0], g.cin, g.cout,
                                g.w, tw, slot + g.dqv, <int*>(slot + g.dqo), <int*>(slot + g.dqc),
                                &dxv[i, 0, 0, 0])
            elif want_dx and not sparse_dx:
                hpc_pad_rows(gi, g.cout, g.h, g.w, g.pad, slot + g.dgp)
                hpc_fwd_planes(slot + g.dgp, g.cout, g.k, wf, NULL, &dxv[i, 0, 0, 0], g.cin, g.h, g.w)
    for t in range(nt):
        slot = wf + g.shared + t * g.dslot
        if g.olanes:
            hpc_dwt_reduce(slot + g.dacc, g.cout, g.ckk, &dwv[0])
        else:
            hpc_dw_reduce(slot + g.dacc, <long>g.cout * g.ckk, &dwv[0])
        if pooled_dw and g.hwc:
            hpc_dw_hwc_reduce(slot + g.dpa, g.cout, g.cin, &dwv[0])
        elif pooled_dw:
            hpc_dw_pooled_reduce(slot + g.dpa, g.cout, g.cin, &dwv[0])
        for o in range(g.cout):
            dbv[o] += slot[g.ddb + o]


def conv2d_forward(x, w, b, out, work, int nthreads=1):
    """Stride-1 'same' convolution (zero padding K // 2): out = conv(x, w) + b.

    x    (N, Cin, H, W)       IN   float32
    w    (Cout, Cin, K, K)    IN   float32, K odd
    b    (Cout,)              IN   float32
    out  (N, Cout, H, W)      OUT  float32
    work (>= conv2d_work_size(N, Cin, H, W, Cout, K, nthreads),)  scratch, float32
    """
    n, cin, h, wd, cout, k = _check_common(x, w, work, nthreads)
    _checked(b, "b", np.float32, (cout,))
    _checked(out, "out", np.float32, (n, cout, h, wd), out=True)
    if n == 0 or h == 0 or wd == 0:
        return
    cdef int nt = _threads(n, nthreads), t, o, y, u
    if HPC_DIRECT:
        _direct_forward(x, w, b, out, None, work, nt)
        return
    # The portable path: im2col + sgemm.
    cdef const float[:, :, :, ::1] xv = x
    cdef const float[:, :, :, ::1] wv = w
    cdef const float[::1] bv = b
    cdef float[:, :, :, ::1] ov = out
    cdef float[::1] workv = work
    cdef float* base = _aligned(&workv[0])  # the slots start at work's first 64-byte boundary
    cdef Geom g = _geom(cin, h, wd, cout, k)
    cdef Py_ssize_t i
    cdef float one = 1.0, zero = 0.0, bias
    cdef float* slot
    cdef float* outp
    cdef const float* src
    with nogil, parallel(num_threads=nt):
        t = threadid()
        slot = base + t * g.slot
        outp = slot + g.outp
        for i in prange(xv.shape[0], schedule="static"):
            _columns(&xv[i, 0, 0, 0], slot, &g)
            # outp^T (HWp, Cout) = cols^T (HWp, CKK) @ w^T (CKK, Cout)
            sgemm("N", "N", &g.hwp, &g.cout, &g.ckk, &one, slot + g.cols, &g.hwp,
                  <float*>&wv[0, 0, 0, 0], &g.ckk, &zero, outp, &g.hwp)
            for o in range(g.cout):
                bias = bv[o]
                for y in range(g.h):
                    src = outp + <Py_ssize_t>o * g.hwp + y * g.wp
                    for u in range(g.w):
                        ov[i, o, y, u] = src[u] + bias


def conv2d_backward(x, w, dout, dx, dw, db, work, int nthreads=1):
    """Gradients of conv2d_forward w.r.t. x (optional), w and b.

    x    (N, Cin, H, W)       IN   float32, the forward input
    w    (Cout, Cin, K, K)    IN   float32
    dout (N, Cout, H, W)      IN   float32, gradient of the loss w.r.t. the output
    dx   (N, Cin, H, W)       OUT  float32, or None to skip (the first layer needs no dx)
    dw   (Cout, Cin, K, K)    INOUT float32, accumulated
    db   (Cout,)              INOUT float32, accumulated
    work (>= conv2d_work_size(N, Cin, H, W, Cout, K, nthreads),)  scratch, float32
    """
    n, cin, h, wd, cout, k = _check_common(x, w, work, nthreads)
    _checked(dout, "dout", np.float32, (n, cout, h, wd))
    cdef bint want_dx = dx is not None
    if want_dx:
        _checked(dx, "dx", np.float32, x.shape, out=True)
    _checked(dw, "dw", np.float32, w.shape, out=True)
    _checked(db, "db", np.float32, (cout,), out=True)
    if n == 0 or h == 0 or wd == 0:
        return
    cdef int nt = _threads(n, nthreads), t, o, c, y, u, j
    if HPC_DIRECT:
        _direct_backward(x, w, dout, None, None, dx, dw, db, work, nt)
        return
    # The portable path: im2col + sgemm.
    cdef const float[:, :, :, ::1] xv = x
    cdef const float[:, :, :, ::1] wv = w
    cdef const float[:, :, :, ::1] gv = dout
    # A 1-element dummy keeps the memoryview typed when dx is skipped.
    cdef float[:, :, :, ::1] dxv = dx if want_dx else np.empty((1, 1, 1, 1), np.float32)
    cdef float[::1] dwv = dw.reshape(-1)
    cdef float[::1] dbv = db
    cdef float[::1] workv = work
    cdef float* base = _aligned(&workv[0])  # the slots start at work's first 64-byte boundary
    cdef Geom g = _geom(cin, h, wd, cout, k)
    cdef Py_ssize_t i
    cdef float one = 1.0, zero = 0.0
    cdef double acc
    cdef float* slot
    cdef float* doutp
    cdef float* dst
    cdef const float* src
    # Zeroed here rather than by each thread, so a slot whose thread never starts
    # still adds nothing in the reduction below.
    for t in range(nt):
        memset(base + t * g.slot + g.dw, 0, (g.slot - g.dw) * sizeof(float))
    with nogil, parallel(num_threads=nt):
        t = threadid()
        slot = base + t * g.slot
        doutp = slot + g.outp
        for i in prange(xv.shape[0], schedule="static"):
            _columns(&xv[i, 0, 0, 0], slot, &g)
            _zero_wrapped(slot + g.cols, &g)
            # doutp: dout_i on the padded-width grid, zero in the extra columns.
            for o in range(g.cout):
                acc = 0.0
                for y in range(g.h):
                    dst = doutp + <Py_ssize_t>o * g.hwp + y * g.wp
                    for u in range(g.w):
                        dst[u] = gv[i, o, y, u]
                        acc = acc + dst[u]
                    for u in range(g.w, g.wp):
                        dst[u] = 0
                slot[g.db + o] += <float>acc
            # dw_t^T (CKK, Cout) += cols (CKK, HWp) @ doutp^T (HWp, Cout)
            sgemm("T", "N", &g.ckk, &g.cout, &g.hwp, &one, slot + g.cols, &g.hwp,
                  doutp, &g.hwp, &one, slot + g.dw, &g.ckk)
            if want_dx:
                # dcols^T (HWp, CKK) = doutp^T (HWp, Cout) @ w (Cout, CKK); overwrites cols.
                sgemm("N", "T", &g.hwp, &g.ckk, &g.cout, &one, doutp, &g.hwp,
                      <float*>&wv[0, 0, 0, 0], &g.ckk, &zero, slot + g.cols, &g.hwp)
                _col2im(slot + g.cols, slot + g.xp, &g)
                for c in range(g.cin):
                    for y in range(g.h):
                        src = slot + g.xp + <Py_ssize_t>c * g.plane + (y + g.pad) * g.wp + g.pad
                        for u in range(g.w):
                            dxv[i, c, y, u] = src[u]
    for t in range(nt):
        slot = base + t * g.slot
        for j in range(g.cout * g.ckk):
            dwv[j] += slot[g.dw + j]
        for o in range(g.cout):
            dbv[o] += slot[g.db + o]
    if want_dx and not np.isfinite(w).all():
        _dx_padding_terms(w, dx)


#: True where conv2d_pool_relu_* keep each image's pre-pool activations in the thread's scratch
#: (direct AVX-512 or AVX2 convolution and pooling); False: they run the separate kernels over the
#: batch.
FUSED = bool(HPC_DIRECT and HPC_POOL_SIMD)


def conv2d_pool_relu_work_size(n, cin, h, w, cout, k, nthreads=1):
    """Elements of float32 scratch that conv2d_pool_relu_forward/backward need.

    Arguments as :func:`conv2d_work_size`.  Where :data:`FUSED` is False the scratch also
    holds the batch's pre-pool activations (N*Cout*H*W) and a pooled map (N*Cout*H/2*W/2).
    """
    need = conv2d_work_size(n, cin, h, w, cout, k, nthreads)
    if FUSED:
        return need
    return int(need + n * cout * h * w + n * cout * (h // 2) * (w // 2))


cdef tuple _check_fused(x, w, out, idx, work, int nthreads, bint forward):
    """Check the arguments the fused kernels share (out and idx writable on the forward pass;
    x float32, or also uint8 on the forward pass); return (n, cin, h, wd, cout, k)."""
    _check_threads(nthreads)
    if forward and isinstance(x, np.ndarray) and x.dtype == np.uint8:
        _checked(x, "x", np.uint8, None)
    else:
        _checked(x, "x", np.float32, None)
    if x.ndim != 4 or x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"x must have shape (N, Cin, H, W) with H and W even, got {x.shape}")
    n, cin, h, wd = x.shape
    _check_w(w, cin)
    cout, k = w.shape[0], w.shape[2]
    pooled = (n, cout, h // 2, wd // 2)
    _checked(out, "out", np.float32, pooled, out=forward)
    if idx is not None or not forward:  # the forward pass may skip the positions (evaluation)
        _checked(idx, "idx", np.uint8, pooled, out=forward)
    _check_work(work, conv2d_pool_relu_work_size(n, cin, h, wd, cout, k, nthreads),
                "conv2d_pool_relu_work_size")
    return n, cin, h, wd, cout, k


def _unfused_parts(work, n, cin, h, wd, cout, k, nthreads):
    """Portable path: (convolution scratch, pre-pool activations, pooled map) views of work."""
    base = conv2d_work_size(n, cin, h, wd, cout, k, nthreads)
    a_end = base + n * cout * h * wd
    return (work[:base], work[base:a_end].reshape(n, cout, h, wd),
            work[a_end:a_end + n * cout * (h // 2) * (wd // 2)].reshape(n, cout, h // 2, wd // 2))


def conv2d_pool_relu_forward(x, w, b, out, idx, work, int nthreads=1, x_scale=None):
    """out = relu(maxpool2(conv2d(x, w) + b)), the model's conv -> max pool -> ReLU block.

    x    (N, Cin, H, W)          IN   float32, H and W even; or uint8 with ``x_scale``: the
                                      input is then x * x_scale, each product rounded to float32
                                      (:func:`hpclars.data.to_float`'s scaling for 1/255), formed
                                      as each image is padded, with no float32 copy of the batch
    w    (Cout, Cin, K, K)       IN   float32, K odd
    b    (Cout,)                 IN   float32
    out  (N, Cout, H/2, W/2)     OUT  float32
    idx  (N, Cout, H/2, W/2)     OUT  uint8, the max's position in its window (0..3), as
                                      maxpool2_forward on the convolution's output; or None
                                      for a forward pass that no backward pass follows
                                      (evaluation): no position computed or stored, and where
                                      :data:`WINOGRAD` (K = 5, Cout a multiple of 16, float32 x)
                                      the batch's groups of 16 (AVX2: 8) images by Winograd
                                      F(2x2, 5x5), equal to rounding (module docstring: an inf
                                      in a window's input may make that window NaN)
    work (>= conv2d_pool_relu_work_size(N, Cin, H, W, Cout, K, nthreads),)  scratch, float32

    The same values as conv2d_forward, maxpool2_forward and relu_forward in turn (ReLU
    after pooling: relu(max(.)) = max(relu(.)), ReLU is monotone), bit for bit with positions,
    to rounding by Winograd without them.  Where :data:`FUSED`,
    each image's convolution stays in the thread's scratch (Cout*H*W floats, in cache), so
    the pre-pool activations never go to memory.  Raises ValueError for a bad argument (a
    uint8 x without a finite x_scale, or an x_scale with a float32 x).
    """
    n, cin, h, wd, cout, k = _check_fused(x, w, out, idx, work, nthreads, True)
    _checked(b, "b", np.float32, (cout,))
    cdef bint u8 = x.dtype == np.uint8
    if u8 and (x_scale is None or not np.isfinite(x_scale)):
        raise ValueError(f"x_scale must be a finite number for a uint8 x, got {x_scale!r}")
    if not u8 and x_scale is not None:
        raise ValueError("x_scale applies only to a uint8 x; x is float32")
    if n == 0 or h == 0 or wd == 0:
        return
    if FUSED:
        _direct_forward(x, w, b, out, idx, work, _threads(n, nthreads), np.float32(x_scale) if u8 else 1.0,
                        True)
        return
    if u8:  # the portable path convolves float32: one rounded product per pixel, as to_float
        x = np.multiply(x, np.float32(x_scale), dtype=np.float32)
    from hpclars.kernels import elementwise, pool
    conv_work, a, _ = _unfused_parts(work, n, cin, h, wd, cout, k, nthreads)
    conv2d_forward(x, w, b, a, conv_work, nthreads)
    pool.maxpool2_forward(a, out, idx, nthreads)
    elementwise.relu_forward(out, out, nthreads)


def conv2d_pool_relu_backward(x, w, out, idx, dout, dx, dw, db, work, int nthreads=1):
    """Gradients of conv2d_pool_relu_forward w.r.t. x (optional), w and b.

    x    (N, Cin, H, W)          IN    float32, the forward input
    w    (Cout, Cin, K, K)       IN    float32
    out  (N, Cout, H/2, W/2)     IN    float32, the forward output (the ReLU's)
    idx  (N, Cout, H/2, W/2)     IN    uint8, the forward pass's pooling positions
    dout (N, Cout, H/2, W/2)     IN    float32, gradient of the loss w.r.t. out
    dx   (N, Cin, H, W)          OUT   float32, or None to skip
    dw   (Cout, Cin, K, K)       INOUT float32, accumulated
    db   (Cout,)                 INOUT float32, accumulated
    work (>= conv2d_pool_relu_work_size(N, Cin, H, W, Cout, K, nthreads),)  scratch, float32

    The same values as relu_backward, maxpool2_backward and conv2d_backward in turn; where
    :data:`FUSED`, each image's pre-pool gradient is built in the thread's scratch and never
    goes to memory.  Where :data:`POOLED_DW` (K = 5, H and W even; any Cin on the AVX2 build,
    2 to 6 on AVX-512), dw and db of an image with a finite x are summed over its pooling windows
    with a nonzero gradient only (the other terms are exact zeros; module docstring): equal to
    rounding.  Where :data:`POOLED_DX` (on AVX2 the same with H = 14 and even W of 10 to 16; on
    AVX-512 the same as dw's, with a finite x), so is dx of an image with a finite dout, if w is
    finite.
    Raises ValueError for a bad argument.
    """
    n, cin, h, wd, cout, k = _check_fused(x, w, out, idx, work, nthreads, False)
    _checked(dout, "dout", np.float32, out.shape)
    if dx is not None:
        _checked(dx, "dx", np.float32, x.shape, out=True)
    _checked(dw, "dw", np.float32, w.shape, out=True)
    _checked(db, "db", np.float32, (cout,), out=True)
    if n == 0 or h == 0 or wd == 0:
        return
    if FUSED:
        _direct_backward(x, w, dout, out, idx, dx, dw, db, work, _threads(n, nthreads))
        return
    from hpclars.kernels import elementwise, pool
    conv_work, da, g = _unfused_parts(work, n, cin, h, wd, cout, k, nthreads)
    elementwise.relu_backward(out, dout, g, nthreads)
    pool.maxpool2_backward(g, idx, da, nthreads)
    conv2d_backward(x, w, da, dx, dw, db, conv_work, nthreads)
