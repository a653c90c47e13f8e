"""Elementwise kernels of the LeNet model: ReLU, fused softmax + cross-entropy, and the input's
uint8 -> float32 scaling (:func:`scale_u8`, behind :func:`hpclars.data.to_float`).

Signatures and buffer semantics are those of :mod:`hpclars.reference`.  Every
argument is checked once at entry (dtype, C-contiguity, shape); a bad one gets
a ValueError that names it.  The loops run without the GIL, split over the
batch (first) axis across ``nthreads`` OpenMP threads.  Deliberately left out:
any other activation, and a separate softmax (only the fused loss is needed).
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport exp, log


include "_checks.pxi"


cdef extern from *:
    """
    /* dx = dout * (y > 0) over n contiguous floats: a compare, an AND with 1.0f and a multiply per
       vector, no branch.  GCC turns the product into y > 0 ? g : g * 0, one branch per element and
       no vectors, unless it may compute g * 0 where it would not have (no-trapping-math; `omp simd`
       alone is not enough): Cython's loop over the memoryviews took 131-142 us on fc1's 256 x 120
       with mixed signs (45-56 all positive), this one 9-15 (AMD EPYC, 2026-12-01, BENCHMARKS.md
       session 17).  dx may be dout (each element is read before it is written): no loop-carried
       dependence. */
    static __attribute__((optimize("no-trapping-math"))) void
    hpc_relu_bwd_row(const float* y, const float* g, float* d, long n) {
        #pragma omp simd
        for (long j = 0; j < n; j++) d[j] = g[j] * (float)(y[j] > 0.0f);
    }
    """
    void hpc_relu_bwd_row(const float* y, const float* g, float* d, long n) nogil


cdef object _rows(object a):
    """View of a C-contiguous array as (first axis, everything else), so prange splits the batch."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    return a.reshape(a.shape[0], a.size // a.shape[0] if a.shape[0] else 0)


def relu_forward(x, out, int nthreads=1):
    """out = max(x, 0) elementwise; any shape; out may be x.  NaN stays NaN (as np.maximum).

    x   (any shape)           IN   float32
    out (same shape as x)     OUT  float32
    """
    _check_threads(nthreads)
    _checked(x, "x", np.float32, None)
    _checked(out, "out", np.float32, x.shape, out=True)
    cdef const float[:, ::1] xv = _rows(x)
    cdef float[:, ::1] ov = _rows(out)
    cdef Py_ssize_t i, j, m = xv.shape[1]
    cdef float v
    for i in prange(xv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        for j in range(m):
            v = xv[i, j]
            # Not `v > 0`: a NaN must pass through, or the loss never shows it.
            ov[i, j] = 0 if v <= 0 else v


def relu_backward(y, dout, dx, int nthreads=1):
    """dx = dout * (y > 0); y is the ReLU *output*; dx may be dout.

    A product, not a select, so NaN and inf behave as in the reference: an inf or
    NaN dout where y <= 0 gives NaN (0 * inf), not 0.

    y    (any shape)          IN   float32, output of relu_forward
    dout (same shape as y)    IN   float32
    dx   (same shape as y)    OUT  float32
    """
    _check_threads(nthreads)
    _checked(y, "y", np.float32, None)
    _checked(dout, "dout", np.float32, y.shape)
    _checked(dx, "dx", np.float32, y.shape, out=True)
    cdef const float[:, ::1] yv = _rows(y)
    cdef const float[:, ::1] gv = _rows(dout)
    cdef float[:, ::1] dv = _rows(dx)
    cdef Py_ssize_t i, m = yv.shape[1]
    if m == 0:
        return
    for i in prange(yv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        hpc_relu_bwd_row(&yv[i, 0], &gv[i, 0], &dv[i, 0], m)


def softmax_xent(logits, labels, dlogits, float scale, int nthreads=1):
    """Fused softmax + cross-entropy over a batch; returns (loss_sum, n_correct).

    logits  (N, K)   IN   float32
    labels  (N,)     IN   int32 class indices in [0, K)
    dlogits (N, K)   OUT  float32, scale * (softmax(logits) - onehot(labels)), or None to skip
    scale   float         usually 1 / (images in the global batch)
    loss_sum is the summed (not averaged) cross-entropy as a Python float; n_correct
    counts rows whose argmax (first maximum; a NaN counts as the maximum, as in
    np.argmax) equals the label.  Each row is reduced in double precision.
    """
    _check_threads(nthreads)
    _checked(logits, "logits", np.float32, None)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (N, K) with K >= 1, got {logits.shape}")
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1]
    _checked(labels, "labels", np.int32, (n,))
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    cdef bint want_grad = dlogits is not None
    if want_grad:
        _checked(dlogits, "dlogits", np.float32, (n, k), out=True)
    cdef const float[:, ::1] z = logits
    cdef const int[::1] lab = labels
    # A 1x1 dummy keeps the memoryview typed when the gradient is skipped.
    cdef float[:, ::1] g = dlogits if want_grad else np.empty((1, 1), np.float32)

    cdef Py_ssize_t i, j, best
    cdef double zmax, s, p, inv_s, loss = 0.0
    cdef int correct = 0
    # Each exp once: kept for the gradient in float64, so its values are those of computing it again.
    cdef double[:, ::1] e = np.empty((n if want_grad else 1, k), np.float64)
    for i in prange(n, nogil=True, num_threads=nthreads, schedule="static"):
        best = 0
        zmax = z[i, 0]
        for j in range(1, k):
            # The first NaN is the maximum (np.argmax), so NaN reaches zmax and the loss.
            if z[i, j] > zmax or (z[i, j] != z[i, j] and zmax == zmax):
                zmax = z[i, j]
                best = j
        s = 0.0
        if want_grad:
            for j in range(k):
                p = exp(z[i, j] - zmax)
                e[i, j] = p
                s = s + p
        else:
            for j in range(k):
                s = s + exp(z[i, j] - zmax)
        loss += log(s) - (z[i, lab[i]] - zmax)
        if best == lab[i]:
            correct += 1
        if want_grad:
            inv_s = 1.0 / s
            for j in range(k):
                p = e[i, j] * inv_s
                if j == lab[i]:
                    p = p - 1.0
                g[i, j] = <float>(scale * p)
    return float(loss), int(correct)


def scale_u8(x, out, float r, int nthreads=1):
    """out = float32(x) * r elementwise: uint8 pixels to float32, one rounded multiplication each.

    x   (any shape, n elements)    IN   uint8, C-contiguous
    out (any shape, n elements)    OUT  float32, C-contiguous
    r   float32 scale (1/255 for pixels in [0, 1]; :func:`hpclars.data.to_float`)
    The values are NumPy's ``np.multiply(x, np.float32(r), out=out, casting="unsafe")`` bit for
    bit: the cast of a byte to float32 is exact and the product is rounded once.  Raises
    ValueError naming a bad array (dtype, contiguity, a size that differs, a read-only out).
    """
    _check_threads(nthreads)
    _checked(x, "x", np.uint8, None)
    _checked(out, "out", np.float32, None, out=True)
    if out.size != x.size:
        raise ValueError(f"out has {out.size} elements, x has {x.size}")
    cdef const unsigned char[:, ::1] xv = _rows(x)
    cdef float[:, ::1] ov = out.reshape(xv.shape[0], xv.shape[1])
    cdef Py_ssize_t i, j, m = xv.shape[1]
    for i in prange(xv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        for j in range(m):
            ov[i, j] = <float>xv[i, j] * r
