"""The LeNet model: layout, initialisation, whole-model gradient, chunking."""

import numpy as np
import pytest

from hpclars import kernels, reference
from hpclars.model import LAYOUT, LeNet, init_params


def test_parameter_count_and_layout():
    assert LAYOUT.size == 107786
    assert LAYOUT.names[0] == "conv1.w" and LAYOUT.names[-1] == "fc3.b"
    flat = np.zeros(LAYOUT.size, np.float32)
    views = LAYOUT.views(flat)
    views["fc1.w"][3, 5] = 7.0
    # Views share memory with the flat buffer: the Allreduce sees every tensor.
    assert flat[LAYOUT.slices[4]][3 * 784 + 5] == 7.0
    assert all(np.shares_memory(v, flat) for v in views.values())


def test_init_is_seeded_he():
    a = init_params(np.zeros(LAYOUT.size, np.float32), seed=3)
    b = init_params(np.zeros(LAYOUT.size, np.float32), seed=3)
    c = init_params(np.zeros(LAYOUT.size, np.float32), seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    v = LAYOUT.views(a)
    assert np.all(v["conv1.b"] == 0) and np.all(v["fc3.b"] == 0)
    # He: std sqrt(2 / fan_in); fc1 has 94080 samples, so 2% is generous.
    assert v["fc1.w"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


# fan_in, fan_out of each weight, counted by hand from PARAM_SHAPES:
# conv (out, in, 5, 5): fan_in = in*25, fan_out = out*25; dense (out, in): in, out.
FANS = {"conv1.w": (25, 150), "conv2.w": (150, 400), "fc1.w": (784, 120),
        "fc2.w": (120, 84), "fc3.w": (84, 10)}


def _sample_std_ok(x, std):
    # The sample std of n draws has relative standard error ~ 1/sqrt(2n); allow 5 of them.
    return abs(x.std() / std - 1) < 5 / np.sqrt(2 * x.size)


@pytest.mark.parametrize("scheme", ["he-normal", "lecun-normal"])
def test_normal_inits_std_and_zero_bias(scheme):
    gain = 2.0 if scheme == "he-normal" else 1.0
    v = LAYOUT.views(init_params(np.zeros(LAYOUT.size, np.float32), seed=0, scheme=scheme))
    for name, (fan_in, _) in FANS.items():
        assert _sample_std_ok(v[name], np.sqrt(gain / fan_in)), name
        assert abs(v[name].mean()) < 5 * np.sqrt(gain / fan_in) / np.sqrt(v[name].size), name
        assert np.all(v[name[:-2] + ".b"] == 0)


@pytest.mark.parametrize("scheme", ["glorot-uniform", "torch-default"])
def test_uniform_inits_bounds(scheme):
    v = LAYOUT.views(init_params(np.zeros(LAYOUT.size, np.float64), seed=0, scheme=scheme))
    for name, (fan_in, fan_out) in FANS.items():
        bias = v[name[:-2] + ".b"]
        if scheme == "glorot-uniform":     # Keras: U(+-sqrt(6 / (fan_in + fan_out))), b = 0
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            assert np.all(bias == 0)
        else:                              # PyTorch: U(+-1/sqrt(fan_in)) for W and b
            bound = 1.0 / np.sqrt(fan_in)
            assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.5 * bound
        w = v[name]
        assert np.abs(w).max() <= bound, name
        # Filled to the bound (not a smaller range): the max of n uniforms is near the bound.
        assert np.abs(w).max() > bound * (1 - 20 / w.size), name
        assert _sample_std_ok(w, bound / np.sqrt(3)), name


def test_init_schemes_differ_and_are_seeded():
    draws = {s: init_params(np.zeros(LAYOUT.size, np.float32), seed=1, scheme=s)
             for s in ("he-normal", "glorot-uniform", "torch-default", "lecun-normal")}
    again = init_params(np.zeros(LAYOUT.size, np.float32), seed=1, scheme="torch-default")
    np.testing.assert_array_equal(draws["torch-default"], again)
    names = list(draws)
    assert all(not np.array_equal(draws[a], draws[b]) for a in names for b in names if a < b)


def _loss(model, flat, x, y):
    loss, _ = model.evaluate(LAYOUT.views(flat), x, y)
    return loss


def test_whole_model_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    flat = init_params(np.zeros(LAYOUT.size, np.float64), seed=1)
    x = rng.random((3, 1, 28, 28))
    y = np.array([1, 7, 3], dtype=np.int32)
    model = LeNet(reference, chunk_size=2, dtype=np.float64)  # 2 chunks: accumulation too
    grads = np.zeros_like(flat)
    model.forward_backward(LAYOUT.views(flat), LAYOUT.views(grads), x, y, scale=1.0)
    h = 1e-6
    for s in LAYOUT.slices:  # a few coordinates of every tensor
        for i in rng.choice(np.arange(s.start, s.stop), size=4, replace=False):
            e = flat.copy()
            e[i] += h
            up = _loss(model, e, x, y)
            e[i] -= 2 * h
            down = _loss(model, e, x, y)
            fd = (up - down) / (2 * h)
            assert grads[i] == pytest.approx(fd, rel=1e-4, abs=1e-7), (i, grads[i], fd)


def _grad(kern, chunk, images, labels, threads=1):
    flat = init_params(np.zeros(LAYOUT.size, np.float32), seed=2)
    grads = np.zeros_like(flat)
    model = LeNet(kern, chunk_size=chunk, nthreads=threads)
    loss, correct = model.forward_backward(LAYOUT.views(flat), LAYOUT.views(grads), images, labels,
                                           1.0 / len(labels))
    return grads, loss, correct


@pytest.fixture(scope="module")
def batch(mnist):
    return mnist.train_images[:96], mnist.train_labels[:96]


def test_compiled_model_matches_reference_model(batch):
    images, labels = batch
    g_ref, l_ref, c_ref = _grad(reference, 96, images, labels)
    g, loss, c = _grad(kernels, 96, images, labels)
    assert c == c_ref
    assert loss == pytest.approx(l_ref, rel=1e-5)
    assert np.max(np.abs(g - g_ref)) <= 1e-5 * np.max(np.abs(g_ref))


@pytest.mark.parametrize("kern,dtype", [(kernels, np.float32), (reference, np.float64)])
def test_evaluation_on_uint8_pixels_is_evaluation_on_scaled_floats(batch, kern, dtype):
    """evaluate() hands uint8 pixels to the first convolution unconverted; the loss and the
    correct count are bit for bit those of the same images scaled by to_float first."""
    from hpclars.data import to_float

    images, labels = batch
    flat = init_params(np.zeros(LAYOUT.size, dtype), seed=3)
    model = LeNet(kern, chunk_size=40, nthreads=2, dtype=dtype)  # 40, 40, 16: a short last chunk
    floats = to_float(images, np.empty((len(labels), 1, 28, 28), dtype))
    assert model.evaluate(LAYOUT.views(flat), images, labels) == model.evaluate(LAYOUT.views(flat), floats,
                                                                                labels)


@pytest.mark.parametrize("threads", [1, 2])
def test_evaluation_is_the_training_forward_pass(batch, threads):
    """evaluate() runs the forward pass only (no pooling positions; conv2 by Winograd F(2x2, 5x5)
    where kernels.CONV_WINOGRAD): the summed loss of forward_backward's forward pass to rounding and
    the same correct count, on 96 MNIST images in chunks of 40, 40 and 16 (groups of 16 or 8 and a
    tail), at the he-normal start and after a step.  The count is equal on these images and
    weights; elsewhere an image whose two largest logits lie within rounding could differ."""
    images, labels = batch
    flat = init_params(np.zeros(LAYOUT.size, np.float32), seed=4)
    model = LeNet(kernels, chunk_size=40, nthreads=threads)
    for _ in range(2):
        grads = np.zeros_like(flat)
        loss, correct = model.forward_backward(LAYOUT.views(flat), LAYOUT.views(grads), images, labels, 1.0)
        ev_loss, ev_correct = model.evaluate(LAYOUT.views(flat), images, labels)
        assert ev_loss == pytest.approx(loss, rel=1e-5)
        assert ev_correct == correct
        flat -= 0.05 * grads / len(labels)


@pytest.mark.parametrize("chunk,threads", [(1, 1), (7, 1), (32, 2), (96, 2)])
def test_chunked_gradient_equals_unchunked(batch, chunk, threads):
    images, labels = batch
    g_full, loss_full, c_full = _grad(kernels, 96, images, labels)
    g, loss, c = _grad(kernels, chunk, images, labels, threads)
    assert c == c_full
    assert loss == pytest.approx(loss_full, rel=1e-6)
    assert np.max(np.abs(g - g_full)) <= 1e-5 * np.max(np.abs(g_full))


def test_relu_after_pooling_is_the_papers_relu_before_pooling():
    """The model pools first and applies ReLU to the pooled map; the paper's order (ReLU, then
    pool) gives the same output and the same input gradient, with ties, all-negative windows,
    zeros and NaN in the input."""
    rng = np.random.default_rng(7)
    a = np.round(rng.standard_normal((3, 4, 8, 8)), 1)  # rounding makes ties
    a[0, 0, :2, :2] = -1.0          # an all-negative window
    a[0, 1, :2, :2] = 0.0           # an all-zero window
    a[1, 2, 2, 3] = np.nan
    a[2, 3, 4:6, 4:6] = [[-np.inf, 0.5], [0.5, 0.2]]
    dp = rng.standard_normal((3, 4, 4, 4))
    R = reference

    r = np.empty_like(a)                                     # paper: relu, pool
    R.relu_forward(a, r)
    p_paper, i_paper = np.empty_like(dp), np.empty(dp.shape, np.uint8)
    R.maxpool2_forward(r, p_paper, i_paper)
    d_paper = np.empty_like(a)
    R.maxpool2_backward(dp, i_paper, d_paper)
    R.relu_backward(r, d_paper, d_paper)

    p_ours, i_ours = np.empty_like(dp), np.empty(dp.shape, np.uint8)  # ours: pool, relu
    R.maxpool2_forward(a, p_ours, i_ours)
    R.relu_forward(p_ours, p_ours)
    d_pooled = np.empty_like(dp)
    R.relu_backward(p_ours, dp, d_pooled)
    d_ours = np.empty_like(a)
    R.maxpool2_backward(d_pooled, i_ours, d_ours)

    np.testing.assert_array_equal(p_ours, p_paper)  # NaN where NaN
    np.testing.assert_array_equal(d_ours, d_paper)
    assert np.isnan(p_ours[1, 2, 1, 1]) and p_ours[0, 0, 0, 0] == 0 and p_ours[0, 1, 0, 0] == 0
