"""NumPy references for every kernel in :mod:`hpclars.kernels`.

Each function has exactly the signature of the compiled kernel of the same name
and writes the same output buffers, so tests and benchmarks can call either one
with the same arguments and compare.  They are the oracle the Cython kernels are
validated against; they work in float32 and in float64 (the finite-difference
tests use float64).  Training never imports this module.

Conventions shared with the kernels:
- Activations are NCHW, C-contiguous.
- ``# OUT`` buffers are overwritten; ``# INOUT`` gradient buffers of parameters
  are *accumulated into* (``+=``), so a caller can sum the gradient of a batch
  processed in chunks by zeroing once and calling the backward kernels per chunk.
- ``work`` is caller-owned scratch (1-D, float32) sized by the matching
  ``*_work_size`` function; the references ignore it.
- ``nthreads`` is the number of OpenMP threads a kernel may use; the references
  ignore it.
- Max pooling breaks ties by taking the first maximum in row-major window order
  (positions 0 = top-left, 1 = top-right, 2 = bottom-left, 3 = bottom-right).
  Ties are common (ReLU zeros), so the kernels must follow the same rule.
"""

import numpy as np


def conv2d_work_size(n, cin, h, w, cout, k, nthreads=1):
    """Elements of float32 scratch that conv2d_forward/backward need (0 here)."""
    return 0


def _padded(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _correlate(xp, w, spec, shape):
    """sum over taps (p, q) of einsum(spec, w[:, :, p, q], window (p, q) of xp), in float64.

    Padding zeros are multiplied like any other input, so a NaN or inf weight
    reaches the border outputs (0 * inf = NaN), exactly as in the kernels.
    """
    k, h, wd = w.shape[2], shape[2], shape[3]
    acc = np.zeros(shape, dtype=np.float64)
    for p in range(k):
        for q in range(k):
            acc += np.einsum(spec, w[:, :, p, q], xp[:, :, p:p + h, q:q + wd])
    return acc


def conv2d_forward(x, w, b, out, work, nthreads=1):
    """Stride-1 'same' convolution (zero padding k // 2).

    x   (N, Cin, H, W)        IN
    w   (Cout, Cin, K, K)     IN, K odd
    b   (Cout,)               IN
    out (N, Cout, H, W)       OUT
    """
    k = w.shape[2]
    acc = _correlate(_padded(x, k // 2), w, "oc,nchw->nohw", out.shape)
    acc += b[None, :, None, None]
    out[...] = acc


def conv2d_backward(x, w, dout, dx, dw, db, work, nthreads=1):
    """Gradients of conv2d_forward.

    x    (N, Cin, H, W)       IN   the forward input
    w    (Cout, Cin, K, K)    IN
    dout (N, Cout, H, W)      IN   gradient of the loss w.r.t. the output
    dx   (N, Cin, H, W)       OUT  or None to skip (the first layer needs no dx)
    dw   (Cout, Cin, K, K)    INOUT accumulated
    db   (Cout,)              INOUT accumulated
    """
    n, cin, h, wd = x.shape
    k = w.shape[2]
    xp = _padded(x, k // 2)
    for p in range(k):
        for q in range(k):
            dw[:, :, p, q] += np.einsum("nohw,nchw->oc", dout, xp[:, :, p:p + h, q:q + wd])
    db += dout.sum(axis=(0, 2, 3))
    if dx is not None:
        # dx is the 'same' convolution of dout with w flipped in both spatial axes (and its
        # channel axes swapped); the zero padding of dout takes part in the products here
        # as the padding of x does in the forward pass.
        dx[...] = _correlate(_padded(dout, k // 2), w[:, :, ::-1, ::-1], "oc,nohw->nchw", dx.shape)


def maxpool2_forward(x, out, idx, nthreads=1):
    """2x2 max pooling, stride 2.

    x   (N, C, H, W)          IN   H and W even
    out (N, C, H/2, W/2)      OUT
    idx (N, C, H/2, W/2)      OUT  uint8, position of the max in its window (0..3), or None
    """
    n, c, h, wd = x.shape
    win = (x.reshape(n, c, h // 2, 2, wd // 2, 2)
            .transpose(0, 1, 2, 4, 3, 5)
            .reshape(n, c, h // 2, wd // 2, 4))
    arg = win.argmax(axis=-1)  # argmax returns the first maximum
    if idx is not None:
        idx[...] = arg
    out[...] = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]


def maxpool2_backward(dout, idx, dx, nthreads=1):
    """Gradient of maxpool2_forward.

    dout (N, C, H/2, W/2)     IN
    idx  (N, C, H/2, W/2)     IN   uint8 from the forward pass
    dx   (N, C, H, W)         OUT  dout routed to each window's max, zero elsewhere
    """
    n, c, h2, w2 = dout.shape
    win = np.zeros((n, c, h2, w2, 4), dtype=dx.dtype)
    np.put_along_axis(win, idx[..., None].astype(np.intp), dout[..., None], axis=-1)
    dx[...] = (win.reshape(n, c, h2, w2, 2, 2)
                 .transpose(0, 1, 2, 4, 3, 5)
                 .reshape(n, c, 2 * h2, 2 * w2))


def relu_forward(x, out, nthreads=1):
    """out = max(x, 0) elementwise; any shape; out may be x."""
    np.maximum(x, 0, out=out)


def relu_backward(y, dout, dx, nthreads=1):
    """dx = dout where y > 0 else 0; y is the ReLU *output*; dx may be dout."""
    np.multiply(dout, y > 0, out=dx)


def conv2d_pool_relu_work_size(n, cin, h, w, cout, k, nthreads=1):
    """Scratch for the fused conv -> max pool -> ReLU kernels; the references need none."""
    return 0


def conv2d_pool_relu_forward(x, w, b, out, idx, work, nthreads=1, x_scale=None):
    """out = relu(maxpool2(conv2d(x, w) + b)); idx as maxpool2_forward on the convolution.

    x (N, Cin, H, W) IN, H and W even, in out's dtype, or uint8 with ``x_scale``: then the
    input is x * x_scale, each product rounded to out's dtype (as :func:`hpclars.data.to_float`);
    w (Cout, Cin, K, K) IN; b (Cout,) IN; out, idx (N, Cout, H/2, W/2) OUT (idx uint8, or None
    where no backward pass follows).
    """
    if x.dtype == np.uint8:
        x = np.multiply(x, out.dtype.type(x_scale), dtype=out.dtype)
    n, _, h, wd = x.shape
    a = np.empty((n, w.shape[0], h, wd), dtype=out.dtype)
    conv2d_forward(x, w, b, a, None)
    maxpool2_forward(a, out, idx)
    relu_forward(out, out)


def conv2d_pool_relu_backward(x, w, out, idx, dout, dx, dw, db, work, nthreads=1):
    """Gradients of conv2d_pool_relu_forward: relu_backward, maxpool2_backward and
    conv2d_backward in turn.  out, idx: the forward's outputs; dout (N, Cout, H/2, W/2) IN;
    dx OUT (or None), dw and db INOUT (accumulated)."""
    g = np.empty_like(dout)
    relu_backward(out, dout, g)
    da = np.empty((x.shape[0], w.shape[0], x.shape[2], x.shape[3]), dtype=dout.dtype)
    maxpool2_backward(g, idx, da)
    conv2d_backward(x, w, da, dx, dw, db, None)


def dense_forward(x, w, b, out, nthreads=1):
    """Fully connected layer, out = x @ w.T + b.

    x   (N, In)     IN
    w   (Out, In)   IN
    b   (Out,)      IN
    out (N, Out)    OUT
    """
    out[...] = x @ w.T + b


def dense_backward(x, w, dout, dx, dw, db, nthreads=1):
    """Gradients of dense_forward.

    x    (N, In)    IN
    w    (Out, In)  IN
    dout (N, Out)   IN
    dx   (N, In)    OUT  or None to skip
    dw   (Out, In)  INOUT accumulated: dw += dout.T @ x
    db   (Out,)     INOUT accumulated: db += dout.sum(0)
    """
    if dx is not None:
        dx[...] = dout @ w
    dw += dout.T @ x
    db += dout.sum(axis=0)


def softmax_xent(logits, labels, dlogits, scale, nthreads=1):
    """Fused softmax + cross-entropy over a batch.

    logits  (N, K)   IN
    labels  (N,)     IN   int32 class indices in [0, K)
    dlogits (N, K)   OUT  scale * (softmax(logits) - onehot(labels)), or None to skip
    scale   float         usually 1 / (images in the global batch)
    Returns (loss_sum, n_correct): the summed (not averaged) cross-entropy as a
    Python float, and how many rows have argmax (first maximum) == label.
    """
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(logits.shape[0])
    loss = float(np.sum(np.log(s[:, 0]) - z[rows, labels], dtype=np.float64))
    correct = int(np.count_nonzero(logits.argmax(axis=1) == labels))
    if dlogits is not None:
        p = e / s
        p[rows, labels] -= 1
        dlogits[...] = scale * p
    return loss, correct


def sumsq(x):
    """Sum of squares of a float32 array, in float64 (NumPy: a float64 copy and a dot product)."""
    x = x.ravel().astype(np.float64)
    return float(np.dot(x, x))


def momentum_update(w, g, v, decay, rate, momentum, nesterov=False, after=False):
    """Momentum step with weight decay, in place on w and v (float32 1-D); NumPy oracle of
    :func:`hpclars.kernels.momentum_update`, one float32 operation at a time.

    d = g + decay*w; after False: v <- m*v + rate*d, w <- w - v (Nesterov: w - (m*v + rate*d));
    after True: v <- m*v + d, w <- w - rate*v (Nesterov: w - rate*(m*v + d)).
    """
    f = np.float32
    decay, rate, m = f(decay), f(rate), f(momentum)
    d = g + decay * w
    if after:
        v *= m
        v += d
        u = rate * (m * v + d if nesterov else v)
    else:
        s = rate * d
        v *= m
        v += s
        u = m * v + s if nesterov else v
    w -= u
