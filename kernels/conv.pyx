"""Stride-1 'same' 2-D convolution of the LeNet model, forward and backward.

Signatures and buffer semantics are those of :mod:`hpclars.reference`.

Method: per image, im2col into the thread's slice of ``work``, then one BLAS
sgemm (``scipy.linalg.cython_blas``, single-threaded BLAS called from inside the
OpenMP threads).  The products run on a *padded-width grid*: the image is first
copied into a zero-padded plane of Wp = W + 2*pad columns, and output position
(y, u) becomes column j = y*Wp + u of a (Cout, H*Wp) matrix.  Then row (c, p, q)
of the im2col matrix is one contiguous run of the padded plane, starting at
offset p*Wp + q, so im2col and col2im are plain memcpy/axpy loops with no
boundary tests.  The 2*pad extra columns per row (u >= W) cost (Wp - W)/W more
GEMM work (14% for conv1, 29% for conv2) and are dropped when the result is
copied out; on the backward pass they are zero in the padded copy of dout, so
they contribute nothing to dw or dx.  Measured (batch 256, one thread) about
10% faster for fwd+bwd than a plain im2col with boundary tests on every short
row.  With CKK = Cin*K*K and HWp = H*Wp:

    forward    outp  (Cout, HWp) = w (Cout, CKK) @ cols (CKK, HWp); out_i = crop(outp) + b
    backward   dw_t  (Cout, CKK) += doutp (Cout, HWp) @ cols^T        (per-thread dw_t)
               dcols (CKK, HWp)  = w^T @ doutp, then col2im into the padded dx, cropped

BLAS is column-major, so a row-major (r, c) array is passed as its (c, r)
transpose and the row-major ``C = A @ B`` is computed as ``C^T = B^T @ A^T``.
The per-thread dw/db accumulators are summed into the caller's ``dw``/``db``
after the parallel loop.

Layout of one thread's slot of ``work`` (float32), each piece starting on a
64-byte boundary: ``xp`` the padded image (Cin*Hp*Wp plus 2*pad floats of slack
that the last row of windows reads; reused for the padded dx), ``cols``
(CKK*HWp; reused for dcols), ``outp`` (Cout*HWp; the padded dout on the backward
pass), ``dw_t`` (Cout*CKK), ``db_t`` (Cout).  Deliberately left out: strides,
dilation, groups, even K, and any padding other than K // 2.
"""

import numpy as np

from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm


cdef object _checked(object a, str name, object dtype, tuple shape, bint out=False):
    """Return `a` after checking it is a C-contiguous ndarray of `dtype` and `shape`."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if out and not a.flags.writeable:
        raise ValueError(f"{name} is an output and must be writeable")
    return a


cdef _check_threads(int nthreads):
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")


ctypedef struct Geom:
    int cin, h, w, cout, k, pad
    int hp, wp, plane          # padded height and width; plane = hp * wp
    int hwp, ckk               # hwp = h * wp columns of the padded-width grid
    Py_ssize_t xp, cols, outp, dw, db, slot   # offsets of the pieces in a slot, and its size


cdef inline Py_ssize_t _up16(Py_ssize_t m) noexcept nogil:
    """m rounded up to a multiple of 16 floats (64 bytes, one cache line)."""
    return (m + 15) // 16 * 16


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
    return int(_threads(n, nthreads) * _geom(cin, h, w, cout, k).slot)


cdef tuple _check_common(x, w, work, int nthreads):
    """Check x, w, work and nthreads; return (n, cin, h, wd, cout, k)."""
    _check_threads(nthreads)
    _checked(x, "x", np.float32, None)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, Cin, H, W), got {x.shape}")
    n, cin, h, wd = x.shape
    _checked(w, "w", np.float32, None)
    if (w.ndim != 4 or w.shape[1] != cin or w.shape[2] != w.shape[3]
            or w.shape[2] % 2 == 0 or w.shape[0] == 0):
        raise ValueError(f"w must have shape (Cout, {cin}, K, K) with K odd and Cout >= 1, "
                         f"got {w.shape}")
    cout, k = w.shape[0], w.shape[2]
    _checked(work, "work", np.float32, None, out=True)
    need = conv2d_work_size(n, cin, h, wd, cout, k, nthreads)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must be 1-D with at least conv2d_work_size(...) = {need} "
                         f"elements, got shape {work.shape}")
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
    cdef const float[:, :, :, ::1] xv = x
    cdef const float[:, :, :, ::1] wv = w
    cdef const float[::1] bv = b
    cdef float[:, :, :, ::1] ov = out
    cdef float[::1] workv = work
    cdef Geom g = _geom(cin, h, wd, cout, k)
    cdef int nt = _threads(n, nthreads), t, o, y, u
    cdef Py_ssize_t i
    cdef float one = 1.0, zero = 0.0, bias
    cdef float* slot
    cdef float* outp
    cdef const float* src
    with nogil, parallel(num_threads=nt):
        t = threadid()
        slot = &workv[0] + t * g.slot
        outp = slot + g.outp
        for i in prange(xv.shape[0], schedule="static"):
            _pad_image(&xv[i, 0, 0, 0], slot + g.xp, &g)
            _im2col(slot + g.xp, slot + g.cols, &g)
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
    cdef const float[:, :, :, ::1] xv = x
    cdef const float[:, :, :, ::1] wv = w
    cdef const float[:, :, :, ::1] gv = dout
    # A 1-element dummy keeps the memoryview typed when dx is skipped.
    cdef float[:, :, :, ::1] dxv = dx if want_dx else np.empty((1, 1, 1, 1), np.float32)
    cdef float[::1] dwv = dw.reshape(-1)
    cdef float[::1] dbv = db
    cdef float[::1] workv = work
    cdef Geom g = _geom(cin, h, wd, cout, k)
    cdef int nt = _threads(n, nthreads), t, o, c, y, u, j
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
        memset(&workv[0] + t * g.slot + g.dw, 0, (g.slot - g.dw) * sizeof(float))
    with nogil, parallel(num_threads=nt):
        t = threadid()
        slot = &workv[0] + t * g.slot
        doutp = slot + g.outp
        for i in prange(xv.shape[0], schedule="static"):
            _pad_image(&xv[i, 0, 0, 0], slot + g.xp, &g)
            _im2col(slot + g.xp, slot + g.cols, &g)
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
        slot = &workv[0] + t * g.slot
        for j in range(g.cout * g.ckk):
            dwv[j] += slot[g.dw + j]
        for o in range(g.cout):
            dbv[o] += slot[g.db + o]
