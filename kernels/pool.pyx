"""2x2 stride-2 max pooling of the LeNet model, forward and backward.

Signatures and buffer semantics are those of :mod:`hpclars.reference`.  The
forward pass records which window position won (uint8, 0..3 in row-major
window order, first maximum on ties) so the backward pass needs no comparison.
Every argument is checked once at entry; the loops run without the GIL, split
over the batch axis.  Deliberately left out: other window sizes and strides.
"""

import numpy as np

from cython.parallel cimport prange


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
    for i in prange(xv.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        for c in range(xv.shape[1]):
            for r in range(ho):
                for s in range(wo):
                    # Strict '>' in row-major order keeps the first maximum on ties.
                    best = xv[i, c, 2 * r, 2 * s]
                    arg = 0
                    v = xv[i, c, 2 * r, 2 * s + 1]
                    if v > best:
                        best = v
                        arg = 1
                    v = xv[i, c, 2 * r + 1, 2 * s]
                    if v > best:
                        best = v
                        arg = 2
                    v = xv[i, c, 2 * r + 1, 2 * s + 1]
                    if v > best:
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
