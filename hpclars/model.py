"""The paper's LeNet-5 over one flat parameter buffer.

conv 6@5x5 pad 2 -> ReLU -> maxpool 2 -> conv 16@5x5 pad 2 -> ReLU -> maxpool 2
-> dense 784->120 -> ReLU -> dense 120->84 -> ReLU -> dense 84->10 -> softmax
cross-entropy; 107,786 parameters.  Each ReLU runs after its max pooling, on the pooled map:
relu(maxpool(a)) = maxpool(relu(a)) and the gradients agree (ReLU is monotone), with a
quarter of the elements to touch (``test_model.py`` checks the identity, ties and NaN
included); conv, pool and ReLU are one kernel per layer (``conv2d_pool_relu_*``), so the
pre-pool activations and their gradients are never stored for the batch.

All parameters are views into one contiguous buffer, and so are the gradients,
so the trainer can average the gradient with a single Allreduce and the
optimizers can take per-tensor norms of views.  A batch is processed in chunks
of at most ``chunk_size`` images whose gradients accumulate into the buffer, so
memory does not grow with the batch size.

The model runs on any module with the kernel signatures of
:mod:`hpclars.reference`: the compiled :mod:`hpclars.kernels` for training, the
NumPy references in float64 for the finite-difference tests.

Deliberately left out: anything about optimizers, data order or MPI.
"""

from dataclasses import dataclass

import numpy as np

from .data import PIXEL_SCALE, to_float

PARAM_SHAPES = (
    ("conv1.w", (6, 1, 5, 5)),
    ("conv1.b", (6,)),
    ("conv2.w", (16, 6, 5, 5)),
    ("conv2.b", (16,)),
    ("fc1.w", (120, 784)),
    ("fc1.b", (120,)),
    ("fc2.w", (84, 120)),
    ("fc2.b", (84,)),
    ("fc3.w", (10, 84)),
    ("fc3.b", (10,)),
)
IMAGE_SHAPE = (1, 28, 28)
N_CLASSES = 10


@dataclass(frozen=True)
class Layout:
    """Where each tensor lives in the flat buffer."""

    names: tuple
    shapes: tuple
    slices: tuple
    is_bias: tuple
    size: int

    def views(self, flat):
        """Dict name -> view of ``flat`` with the tensor's shape (no copies)."""
        return {n: flat[s].reshape(shape) for n, s, shape in zip(self.names, self.slices, self.shapes)}


def make_layout(specs=PARAM_SHAPES):
    names, shapes, slices, is_bias = [], [], [], []
    offset = 0
    for name, shape in specs:
        n = int(np.prod(shape))
        names.append(name)
        shapes.append(shape)
        slices.append(slice(offset, offset + n))
        is_bias.append(len(shape) == 1)
        offset += n
    return Layout(tuple(names), tuple(shapes), tuple(slices), tuple(is_bias), offset)


LAYOUT = make_layout()


def layer_slices(layout=LAYOUT):
    """Layer name ("conv1", ..., "fc3") -> the slice of the flat buffer holding its weight
    and bias, which are adjacent, in buffer order."""
    spans = {}
    for name, s in zip(layout.names, layout.slices):
        layer = name.rsplit(".", 1)[0]
        lo, hi = spans.get(layer, (s.start, s.stop))
        if hi != s.start and (lo, hi) != (s.start, s.stop):
            raise ValueError(f"the tensors of layer {layer} are not adjacent in the layout")
        spans[layer] = (min(lo, s.start), max(hi, s.stop))
    return {layer: slice(lo, hi) for layer, (lo, hi) in spans.items()}


def fans(shape):
    """(fan_in, fan_out) of a weight tensor, as Keras and PyTorch count them.

    Dense ``(out, in)``: (in, out).  Conv ``(out_c, in_c, kh, kw)``: (in_c*kh*kw, out_c*kh*kw).
    """
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _he_normal(rng, w_shape, b_shape):
    """SystemML nn ``init``: W ~ N(0, 2/fan_in), b = 0 (He et al. 2015)."""
    fan_in, _ = fans(w_shape)
    return rng.standard_normal(w_shape) * np.sqrt(2.0 / fan_in), np.zeros(b_shape)


def _lecun_normal(rng, w_shape, b_shape):
    """W ~ N(0, 1/fan_in), b = 0 (LeCun et al. 1998, "Efficient BackProp"; untruncated)."""
    fan_in, _ = fans(w_shape)
    return rng.standard_normal(w_shape) * np.sqrt(1.0 / fan_in), np.zeros(b_shape)


def _glorot_uniform(rng, w_shape, b_shape):
    """Keras default: W ~ U(+-sqrt(6/(fan_in+fan_out))), b = 0 (Glorot and Bengio 2010)."""
    fan_in, fan_out = fans(w_shape)
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, w_shape), np.zeros(b_shape)


def _torch_default(rng, w_shape, b_shape):
    """PyTorch Conv2d/Linear ``reset_parameters``: kaiming_uniform_(a=sqrt(5)) for W,
    i.e. U(+-gain*sqrt(3/fan_in)) with gain = sqrt(2/(1+5)), = U(+-1/sqrt(fan_in));
    b ~ U(+-1/sqrt(fan_in))."""
    fan_in, _ = fans(w_shape)
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, w_shape), rng.uniform(-bound, bound, b_shape)


INITIALIZERS = {
    "he-normal": _he_normal,
    "glorot-uniform": _glorot_uniform,
    "torch-default": _torch_default,
    "lecun-normal": _lecun_normal,
}


def init_params(flat, seed, scheme="he-normal", layout=LAYOUT):
    """Seeded initialisation of every tensor in ``flat`` (any float dtype), in place.

    ``scheme`` is one of :data:`INITIALIZERS` (``config.INITS``); each layer's
    weight and bias are drawn together, layer by layer in buffer order, from one
    generator seeded by ``seed``, so a run is reproducible on any rank count.
    he-normal draws exactly what hpclars drew before the schemes existed.
    Raises KeyError for an unknown scheme (the config validates it first).
    """
    make = INITIALIZERS[scheme]
    rng = np.random.default_rng([seed, 0x1E7E7])
    views = layout.views(flat)
    for name in layout.names:
        if name.endswith(".w"):
            bias = name[:-2] + ".b"
            w, b = make(rng, views[name].shape, views[bias].shape)
            views[name][...] = w
            views[bias][...] = b
    return flat


def _nothing(layer):
    pass


class LeNet:
    """Forward and backward passes with preallocated activations for one chunk."""

    def __init__(self, kernels, chunk_size, nthreads=1, dtype=np.float32):
        self.k = kernels
        self.chunk = int(chunk_size)
        self.nthreads = int(nthreads)
        self.dtype = dtype
        c = self.chunk
        z = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
        self.x = z(c, 1, 28, 28)
        self.p1 = z(c, 6, 14, 14)
        self.i1 = np.zeros((c, 6, 14, 14), dtype=np.uint8)
        self.p2 = z(c, 16, 7, 7)
        self.i2 = np.zeros((c, 16, 7, 7), dtype=np.uint8)
        self.h1 = z(c, 120)
        self.h2 = z(c, 84)
        self.logits = z(c, 10)
        self.dlogits = z(c, 10)
        self.dh2 = z(c, 84)
        self.dh1 = z(c, 120)
        self.dp2 = z(c, 16, 7, 7)
        self.dp1 = z(c, 6, 14, 14)
        work = max(kernels.conv2d_pool_relu_work_size(c, 1, 28, 28, 6, 5, self.nthreads),
                   kernels.conv2d_pool_relu_work_size(c, 6, 14, 14, 16, 5, self.nthreads))
        self.work = np.zeros(max(work, 1), dtype=np.float32)

    def _load(self, images, n):
        """Copy ``n`` images into the input buffer, scaling uint8 pixels to [0, 1]."""
        x = self.x[:n]
        if images.dtype == np.uint8:
            to_float(images.reshape(n, 28, 28), x)
        else:
            x[...] = images.reshape(n, 1, 28, 28)
        return x

    def _forward(self, p, x, n, x_scale=None, for_backward=True):
        """Logits of the chunk ``x``: float (n, 1, 28, 28), or uint8 pixels with ``x_scale``
        (:data:`hpclars.data.PIXEL_SCALE`), scaled by the first convolution as it pads each
        image (no float copy).  ``for_backward`` False (evaluation): the pooling positions, which
        only the backward pass reads, are neither computed nor stored, and conv2 goes by Winograd
        F(2x2, 5x5) where ``kernels.CONV_WINOGRAD`` (the same logits to rounding)."""
        k, t = self.k, self.nthreads
        p1, p2 = self.p1[:n], self.p2[:n]
        i1, i2 = (self.i1[:n], self.i2[:n]) if for_backward else (None, None)
        h1, h2, logits = self.h1[:n], self.h2[:n], self.logits[:n]
        # conv -> max pool -> ReLU in one kernel per layer: the pre-pool activations stay in
        # cache, image by image (where the build fuses them; kernels.CONV_POOL_FUSED).
        k.conv2d_pool_relu_forward(x, p["conv1.w"], p["conv1.b"], p1, i1, self.work, t, x_scale)
        k.conv2d_pool_relu_forward(p1, p["conv2.w"], p["conv2.b"], p2, i2, self.work, t)
        k.dense_forward(p2.reshape(n, 784), p["fc1.w"], p["fc1.b"], h1, t)
        k.relu_forward(h1, h1, t)
        k.dense_forward(h1, p["fc2.w"], p["fc2.b"], h2, t)
        k.relu_forward(h2, h2, t)
        k.dense_forward(h2, p["fc3.w"], p["fc3.b"], logits, t)
        return logits

    def _backward(self, p, g, x, n, done):
        """``done(layer)`` is called as soon as that layer's gradients are written."""
        k, t = self.k, self.nthreads
        dlogits, dh2, dh1 = self.dlogits[:n], self.dh2[:n], self.dh1[:n]
        dp2, dp1 = self.dp2[:n], self.dp1[:n]
        p1, i1, p2, i2 = self.p1[:n], self.i1[:n], self.p2[:n], self.i2[:n]
        h1, h2 = self.h1[:n], self.h2[:n]
        k.dense_backward(h2, p["fc3.w"], dlogits, dh2, g["fc3.w"], g["fc3.b"], t)
        done("fc3")
        k.relu_backward(h2, dh2, dh2, t)
        k.dense_backward(h1, p["fc2.w"], dh2, dh1, g["fc2.w"], g["fc2.b"], t)
        done("fc2")
        k.relu_backward(h1, dh1, dh1, t)
        k.dense_backward(p2.reshape(n, 784), p["fc1.w"], dh1, dp2.reshape(n, 784),
                         g["fc1.w"], g["fc1.b"], t)
        done("fc1")
        k.conv2d_pool_relu_backward(p1, p["conv2.w"], p2, i2, dp2, dp1, g["conv2.w"], g["conv2.b"],
                                    self.work, t)
        done("conv2")
        k.conv2d_pool_relu_backward(x, p["conv1.w"], p1, i1, dp1, None, g["conv1.w"], g["conv1.b"],
                                    self.work, t)
        done("conv1")

    def forward_backward(self, params, grads, images, labels, scale, on_layer_done=None):
        """Accumulate ``scale`` * d(summed loss)/d(params) into ``grads``.

        params, grads: dicts of views (``LAYOUT.views(flat)``); grads are added to,
        not overwritten.  images: (n, 28, 28) uint8 or (n, 1, 28, 28) float;
        labels: (n,) int32.  Returns (summed loss, number correct).
        ``on_layer_done(layer)``, if given, is called once per layer (fc3 first, conv1
        last; names as in :func:`layer_slices`) as soon as its gradients are final,
        i.e. during the last chunk's backward pass, so that a caller can start
        communicating them while the earlier layers are still being computed.
        """
        loss, correct = 0.0, 0
        last = ((len(labels) - 1) // self.chunk) * self.chunk
        for lo in range(0, len(labels), self.chunk):
            hi = min(lo + self.chunk, len(labels))
            n = hi - lo
            x = self._load(images[lo:hi], n)
            logits = self._forward(params, x, n)
            chunk_loss, chunk_correct = self.k.softmax_xent(logits, labels[lo:hi], self.dlogits[:n], scale,
                                                            self.nthreads)
            loss += chunk_loss
            correct += chunk_correct
            done = on_layer_done if on_layer_done is not None and lo == last else _nothing
            self._backward(params, grads, x, n, done)
        return loss, correct

    def evaluate(self, params, images, labels):
        """(summed loss, number correct) over ``images`` without touching gradients.

        Forward only: no pooling positions kept, conv2 by Winograd F(2x2, 5x5) where
        ``kernels.CONV_WINOGRAD`` (Lavin and Gray 2016), and uint8 images go to the first
        convolution as they are, scaled there (no backward pass needs them as floats), the same
        values as :func:`to_float`'s; so its logits are those of :meth:`forward_backward`'s forward
        pass to rounding (within 1.2e-5 of logits up to 22 on MNIST's test set, BENCHMARKS.md
        session 22)."""
        loss, correct = 0.0, 0
        pixels = images.dtype == np.uint8 and images.flags.c_contiguous
        for lo in range(0, len(labels), self.chunk):
            hi = min(lo + self.chunk, len(labels))
            n = hi - lo
            if pixels:
                logits = self._forward(params, images[lo:hi].reshape(n, *IMAGE_SHAPE), n, PIXEL_SCALE,
                                       for_backward=False)
            else:
                logits = self._forward(params, self._load(images[lo:hi], n), n, for_backward=False)
            chunk_loss, chunk_correct = self.k.softmax_xent(logits, labels[lo:hi], None, 1.0, self.nthreads)
            loss += chunk_loss
            correct += chunk_correct
        return loss, correct
