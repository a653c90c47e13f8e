"""Optimizer update kernels: the sum of squares behind every norm, and the momentum update of
SGD and LARS in one pass over a tensor.

NumPy runs the update as one pass per operation (weight decay, scaling, momentum, the
subtraction) and the two norms as a float64 copy each; in a training step the tensors
arrive cold from the backward pass, so those passes cost 5% of a batch-256 step
(``hpclars bench step``, Xeon, 2026-11-30).  Here LARS reads each tensor once for its norms and
once for the update (its rates need the norms first); SGD, whose norms are only logged, takes
them in the update's own pass (:func:`momentum_update_segments` with ``w_sumsq``), so each tensor
is read once.

This module is built with ``-ffp-contract=off`` (setup.py): every multiply and add is rounded
on its own, as in NumPy, so :func:`momentum_update` gives the values of the float32
expressions in :func:`hpclars.reference.momentum_update` bit for bit.  Deliberately left out:
threads (a step's whole update is 108k parameters, 0.1-0.2 ms) and the Adam family, whose
update stays NumPy (:class:`hpclars.optim.AdamFamily`).

The ``_segments`` variants do the same for every tensor of the flat buffer in one call (the
tensors given by their offsets, each with its own weight decay and rate), as PyTorch's
"foreach" optimizers do: a step of ten tensors then costs two Python calls, not thirty.
Each segment goes through the same C code as the one-tensor call, so the results are the
same bit for bit.
"""

import numpy as np


include "_checks.pxi"

# Stands in for w_sumsq when no norms are asked for (never read then): keeps the memoryview typed
# without allocating per call.
_NO_NORMS = np.zeros(0)


cdef extern from *:
    """
    #if defined(__AVX512F__) || defined(__AVX__)
    #include <immintrin.h>
    #endif

    /* s[j] += x[i + j]^2 (in double, each product rounded, then added) for i = 0, 8, 16, ...: the
       eight running sums of hpc_sumsq, continued over x (n floats); entries past the last whole
       group of eight go to s[0].  A caller that feeds a long array in pieces whose lengths are
       multiples of 8 gets the running sums of one pass over it, bit for bit.  GCC left the scalar
       loop scalar (-ffp-contract=off); the vector forms below add in the same order per sum. */
    static void hpc_sumsq_acc(const float* x, long n, double s[8]) {
        long i = 0;
    #if defined(__AVX512F__)
        __m512d a = _mm512_loadu_pd(s);
        for (; i + 8 <= n; i += 8) {
            const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
            a = _mm512_add_pd(a, _mm512_mul_pd(v, v));
        }
        _mm512_storeu_pd(s, a);
    #elif defined(__AVX__)
        __m256d a0 = _mm256_loadu_pd(s), a1 = _mm256_loadu_pd(s + 4);
        for (; i + 8 <= n; i += 8) {
            const __m256d v0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), v1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
            a0 = _mm256_add_pd(a0, _mm256_mul_pd(v0, v0));
            a1 = _mm256_add_pd(a1, _mm256_mul_pd(v1, v1));
        }
        _mm256_storeu_pd(s, a0);
        _mm256_storeu_pd(s + 4, a1);
    #else
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) s[j] += (double)x[i + j] * (double)x[i + j];
    #endif
        for (; i < n; i++) s[0] += (double)x[i] * (double)x[i];
    }

    static double hpc_sumsq_total(const double s[8]) {
        return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }

    /* s = sum of x[i]^2 in double: eight running sums (one per x[i] with i mod 8 = j), then
       added pairwise. */
    static double hpc_sumsq(const float* x, long n) {
        double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        hpc_sumsq_acc(x, n, s);
        return hpc_sumsq_total(s);
    }

    /* The momentum update of hpclars.reference.momentum_update, element by element. */
    static void hpc_momentum(float* w, const float* g, float* v, long n, float decay, float rate,
                             float m, int nesterov, int after) {
        for (long i = 0; i < n; i++) {
            const float d = g[i] + decay * w[i];
            float u;
            if (after) {
                const float vi = m * v[i] + d;
                v[i] = vi;
                u = rate * (nesterov ? m * vi + d : vi);
            } else {
                const float s = rate * d;
                const float vi = m * v[i] + s;
                v[i] = vi;
                u = nesterov ? m * vi + s : vi;
            }
            w[i] = w[i] - u;
        }
    }

    /* hpc_momentum, with *w_ss = hpc_sumsq(w before the update) and *g_ss = hpc_sumsq(g), bit for
       bit, in the same pass: the tensor goes through in pieces of HPC_PIECE floats (a multiple of 8,
       so the running sums are those of one pass), each piece's w and g summed, then updated, while
       they are in L1.  In a training step w, g and the momentum buffer arrive cold from the
       backward pass; three passes over them (two norms, the update) fetched w and g twice. */
    #define HPC_PIECE 2048
    static void hpc_momentum_sumsq(float* w, const float* g, float* v, long n, float decay, float rate,
                                   float m, int nesterov, int after, double* w_ss, double* g_ss) {
        double sw[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sg[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (long i = 0; i < n; i += HPC_PIECE) {
            const long k = n - i < HPC_PIECE ? n - i : HPC_PIECE;
            hpc_sumsq_acc(w + i, k, sw);
            hpc_sumsq_acc(g + i, k, sg);
            hpc_momentum(w + i, g + i, v + i, k, decay, rate, m, nesterov, after);
        }
        *w_ss = hpc_sumsq_total(sw);
        *g_ss = hpc_sumsq_total(sg);
    }
    """
    double hpc_sumsq(const float* x, long n) noexcept nogil
    void hpc_momentum(float* w, const float* g, float* v, long n, float decay, float rate, float m,
                      int nesterov, int after) noexcept nogil
    void hpc_momentum_sumsq(float* w, const float* g, float* v, long n, float decay, float rate, float m,
                            int nesterov, int after, double* w_ss, double* g_ss) noexcept nogil


def sumsq(x):
    """Sum of the squares of a float32 array's entries, accumulated in float64.

    x: float32, C-contiguous, any shape.  Returns a Python float (0.0 for an empty array; NaN
    or inf propagate).  The summation order (eight running sums) differs from NumPy's, so the
    result may differ from ``np.dot(x64, x64)`` in the last bits of the float64.
    Raises ValueError for another dtype or a non-contiguous array.
    """
    _checked(x, "x", np.float32, None)
    cdef const float[::1] xv = x.reshape(-1)
    cdef double s
    with nogil:
        s = hpc_sumsq(&xv[0], xv.shape[0]) if xv.shape[0] else 0.0
    return s


cdef const long long[::1] _checked_offsets(offsets, Py_ssize_t n) except *:
    """The segment offsets as a typed view, after checking they run from 0 up to n."""
    _checked(offsets, "offsets", np.int64, None)
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be 1-D with at least one entry, got shape {offsets.shape}")
    # offsets[-1] would not wrap: the kernels compile with wraparound=False, and some Cython
    # versions then hand -1 to NumPy's item lookup unadjusted (IndexError on Cython 3.x, Open MPI node)
    if offsets[0] != 0 or offsets[offsets.shape[0] - 1] != n or (offsets.shape[0] > 1 and (np.diff(offsets) < 0).any()):
        raise ValueError(f"offsets must rise from 0 to the length {n}, got {offsets.tolist()}")
    return offsets


def sumsq_segments(x, offsets, out):
    """:func:`sumsq` of every segment x[offsets[i]:offsets[i + 1]] in one call.

    x       (n,)     IN   float32, C-contiguous, 1-D
    offsets (k + 1,) IN   int64, rising from 0 to n (segment i is x[offsets[i]:offsets[i + 1]])
    out     (k,)     OUT  float64: out[i] = sumsq(segment i), bit for bit (0.0 if it is empty)
    Raises ValueError naming a bad array (dtype, shape, contiguity, offsets not rising 0..n).
    """
    _checked(x, "x", np.float32, None)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    cdef const long long[::1] off = _checked_offsets(offsets, x.shape[0])
    _checked(out, "out", np.float64, (off.shape[0] - 1,), out=True)
    cdef const float[::1] xv = x
    cdef double[::1] ov = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(ov.shape[0]):
            ov[i] = hpc_sumsq(&xv[0] + off[i], off[i + 1] - off[i]) if off[i + 1] > off[i] else 0.0


def momentum_update_segments(w, g, v, offsets, decay, rate, float momentum, bint nesterov=False,
                             bint after=False, w_sumsq=None, g_sumsq=None):
    """:func:`momentum_update` of every segment [offsets[i], offsets[i + 1]) in one call.

    w, v    (n,)     INOUT float32, C-contiguous, 1-D
    g       (n,)     IN    float32, C-contiguous, 1-D
    offsets (k + 1,) IN    int64, rising from 0 to n
    decay   (k,)     IN    float32: each segment's weight decay
    rate    (k,)     IN    float32: each segment's rate (lr x its local rate)
    w_sumsq (k,)     OUT   float64 or None: :func:`sumsq` of each segment of w before the update
    g_sumsq (k,)     OUT   float64 or None: :func:`sumsq` of each segment of g
    Segment i gets exactly ``momentum_update(w[s], g[s], v[s], decay[i], rate[i], momentum,
    nesterov, after)``, bit for bit.  With w_sumsq and g_sumsq (both or neither) the norms an
    optimizer without a trust ratio logs are taken in the same pass, bit for bit those of
    :func:`sumsq_segments` on w and g before the call: each piece of 2048 floats is summed,
    then updated, while it is in L1, so w and g are fetched once, not twice.  Raises ValueError
    naming a bad array, or for only one of w_sumsq and g_sumsq.
    """
    _checked(w, "w", np.float32, None, out=True)
    if w.ndim != 1:
        raise ValueError(f"w must be 1-D, got shape {w.shape}")
    _checked(g, "g", np.float32, w.shape)
    _checked(v, "v", np.float32, w.shape, out=True)
    cdef const long long[::1] off = _checked_offsets(offsets, w.shape[0])
    cdef Py_ssize_t k = off.shape[0] - 1
    _checked(decay, "decay", np.float32, (k,))
    _checked(rate, "rate", np.float32, (k,))
    if (w_sumsq is None) != (g_sumsq is None):
        raise ValueError("w_sumsq and g_sumsq go together: give both or neither")
    cdef bint norms = w_sumsq is not None
    if norms:
        _checked(w_sumsq, "w_sumsq", np.float64, (k,), out=True)
        _checked(g_sumsq, "g_sumsq", np.float64, (k,), out=True)
    cdef double[::1] wss = w_sumsq if norms else _NO_NORMS
    cdef double[::1] gss = g_sumsq if norms else wss
    cdef float[::1] wv = w
    cdef const float[::1] gv = g
    cdef float[::1] vv = v
    cdef const float[::1] dv = decay
    cdef const float[::1] rv = rate
    cdef Py_ssize_t i
    with nogil:
        for i in range(k):
            if off[i + 1] == off[i]:
                if norms:
                    wss[i] = gss[i] = 0.0
            elif norms:
                hpc_momentum_sumsq(&wv[0] + off[i], &gv[0] + off[i], &vv[0] + off[i], off[i + 1] - off[i],
                                   dv[i], rv[i], momentum, nesterov, after, &wss[i], &gss[i])
            else:
                hpc_momentum(&wv[0] + off[i], &gv[0] + off[i], &vv[0] + off[i], off[i + 1] - off[i],
                             dv[i], rv[i], momentum, nesterov, after)


def momentum_update(w, g, v, float decay, float rate, float momentum, bint nesterov=False,
                    bint after=False):
    """Heavy-ball momentum step with weight decay, in place on ``w`` and ``v``.

    w, v (n,) INOUT float32, C-contiguous, 1-D: the parameters and the momentum buffer
    g    (n,) IN    float32, C-contiguous, 1-D: the gradient (not written)
    decay, rate, momentum: float32 scalars (weight decay, rate = lr x local rate, m)

    d = g + decay*w, then (You, Gitman and Ginsburg 2017, Algorithm 1; Chowdhury et al.,
    Table 1) with after False:  v <- m*v + rate*d;  w <- w - v  (Nesterov: w <- w - (m*v + rate*d));
    with after True (TensorFlow's LARSOptimizer):  v <- m*v + d;  w <- w - rate*v
    (Nesterov: w <- w - rate*(m*v + d)).  Each operation is rounded to float32 on its own.
    Raises ValueError naming a bad array (dtype, shape, contiguity, a read-only w or v).
    """
    _checked(w, "w", np.float32, None, out=True)
    if w.ndim != 1:
        raise ValueError(f"w must be 1-D, got shape {w.shape}")
    _checked(g, "g", np.float32, w.shape)
    _checked(v, "v", np.float32, w.shape, out=True)
    cdef float[::1] wv = w
    cdef const float[::1] gv = g
    cdef float[::1] vv = v
    if wv.shape[0] == 0:
        return
    with nogil:
        hpc_momentum(&wv[0], &gv[0], &vv[0], wv.shape[0], decay, rate, momentum, nesterov, after)
