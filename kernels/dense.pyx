"""Fully connected layer of the LeNet model, forward and backward, on BLAS sgemm.

Signatures and buffer semantics are those of :mod:`hpclars.reference`.  All
matrix products go to ``scipy.linalg.cython_blas.sgemm``, called from inside
OpenMP threads (BLAS itself is kept single-threaded by ``hpclars/__init__.py``).
BLAS is column-major, so a row-major (r, c) array is passed as its (c, r)
transpose and the row-major ``C = A @ B`` is computed as ``C^T = B^T @ A^T``.

Work is split into ``nthreads`` contiguous blocks of the batch, one sgemm per
block.  The one exception is ``dw += dout.T @ x``, a sum over the batch: it is
split over the input features instead, which needs no per-thread scratch and
no reduction.  Deliberately left out: anything but float32.
"""

import numpy as np

from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport sgemm


include "_checks.pxi"


cdef (int, int) _shapes(x, w):
    """Check x (N, In) and w (Out, In) with In, Out >= 1; return (N, Out)."""
    _checked(x, "x", np.float32, None)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x must have shape (N, In) with In >= 1, got {x.shape}")
    _checked(w, "w", np.float32, None)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] != x.shape[1]:
        raise ValueError(f"w must have shape (Out, {x.shape[1]}) with Out >= 1 to match x, "
                         f"got {w.shape}")
    return x.shape[0], w.shape[0]


cdef inline int _block(int t, int n, int parts, int align) noexcept nogil:
    """Start of block t of `parts` near-equal blocks of 0..n, rounded to `align`."""
    cdef int start = <int>((<long long>n * t) // parts)
    if t == parts:
        return n
    return (start // align) * align


def dense_forward(x, w, b, out, int nthreads=1):
    """Fully connected layer, out = x @ w.T + b.

    x   (N, In)     IN   float32
    w   (Out, In)   IN   float32
    b   (Out,)      IN   float32
    out (N, Out)    OUT  float32
    """
    _check_threads(nthreads)
    cdef int n, n_out
    n, n_out = _shapes(x, w)
    _checked(b, "b", np.float32, (n_out,))
    _checked(out, "out", np.float32, (n, n_out), out=True)
    cdef const float[:, ::1] xv = x
    cdef const float[:, ::1] wv = w
    cdef const float[::1] bv = b
    cdef float[:, ::1] ov = out
    cdef int n_in = xv.shape[1], t, lo, rows, i, j
    cdef float one = 1.0
    if n == 0:
        return
    for t in prange(nthreads, nogil=True, num_threads=nthreads, schedule="static"):
        lo = _block(t, n, nthreads, 1)
        rows = _block(t + 1, n, nthreads, 1) - lo
        if rows > 0:
            for i in range(lo, lo + rows):
                for j in range(n_out):
                    ov[i, j] = bv[j]
            # out[lo:lo+rows]^T (Out, rows) += w (Out, In) @ x[lo:lo+rows]^T (In, rows)
            sgemm("T", "N", &n_out, &rows, &n_in, &one, <float*>&wv[0, 0], &n_in,
                  <float*>&xv[lo, 0], &n_in, &one, &ov[lo, 0], &n_out)


def dense_backward(x, w, dout, dx, dw, db, int nthreads=1):
    """Gradients of dense_forward.

    x    (N, In)    IN   float32
    w    (Out, In)  IN   float32
    dout (N, Out)   IN   float32
    dx   (N, In)    OUT  float32, dx = dout @ w, or None to skip
    dw   (Out, In)  INOUT float32, accumulated: dw += dout.T @ x
    db   (Out,)     INOUT float32, accumulated: db += dout.sum(0)
    """
    _check_threads(nthreads)
    cdef int n, n_out
    n, n_out = _shapes(x, w)
    cdef int n_in = x.shape[1]
    _checked(dout, "dout", np.float32, (n, n_out))
    cdef bint want_dx = dx is not None
    if want_dx:
        _checked(dx, "dx", np.float32, (n, n_in), out=True)
    _checked(dw, "dw", np.float32, (n_out, n_in), out=True)
    _checked(db, "db", np.float32, (n_out,), out=True)
    cdef const float[:, ::1] xv = x
    cdef const float[:, ::1] wv = w
    cdef const float[:, ::1] gv = dout
    # A 1x1 dummy keeps the memoryview typed when dx is skipped.
    cdef float[:, ::1] dxv = dx if want_dx else np.empty((1, 1), np.float32)
    cdef float[:, ::1] dwv = dw
    cdef float[::1] dbv = db
    cdef int t, lo, cnt, i, j
    cdef float one = 1.0, zero = 0.0
    # db's float64 sums, one per output: the image loop outside, so each row of dout is read
    # once, in order, and the adds over j vectorise (column by column, the strided reads and
    # one dependent add per element cost ~40 us at LeNet's fc1); each sum still adds the
    # images in order 0..N-1, so the values are those of the column-by-column loop.
    cdef double[::1] acc = np.zeros(n_out, np.float64)
    if n == 0:
        return
    for t in prange(nthreads, nogil=True, num_threads=nthreads, schedule="static"):
        if want_dx:
            lo = _block(t, n, nthreads, 1)
            cnt = _block(t + 1, n, nthreads, 1) - lo
            if cnt > 0:
                # dx[lo:lo+cnt]^T (In, cnt) = w^T (In, Out) @ dout[lo:lo+cnt]^T (Out, cnt)
                sgemm("N", "N", &n_in, &cnt, &n_out, &one, <float*>&wv[0, 0], &n_in,
                      <float*>&gv[lo, 0], &n_out, &zero, &dxv[lo, 0], &n_in)
        # Feature blocks are aligned to 16 floats (one cache line) so threads never share one.
        lo = _block(t, n_in, nthreads, 16)
        cnt = _block(t + 1, n_in, nthreads, 16) - lo
        if cnt > 0:
            # dw[:, lo:lo+cnt]^T (cnt, Out) += x[:, lo:lo+cnt]^T (cnt, N) @ dout (N, Out)
            sgemm("N", "T", &cnt, &n_out, &n, &one, <float*>&xv[0, lo], &n_in,
                  <float*>&gv[0, 0], &n_out, &one, &dwv[0, lo], &n_in)
    for i in range(n):
        for j in range(n_out):
            acc[j] = acc[j] + gv[i, j]
    for j in range(n_out):
        dbv[j] += <float>acc[j]
