"""The compiled kernels against their NumPy references, and the references against calculus.

Three layers of checks:
- every kernel equals its reference in float32 (relative error <= 1e-5) on the
  model's shapes, at several batch sizes and thread counts, including the
  dx=None paths and the accumulate-into (INOUT) semantics of parameter gradients;
- every reference's backward pass matches central finite differences in float64;
- bad arguments are refused with a ValueError whose message starts with the
  argument's name.
Output and scratch buffers are pre-filled with NaN, so a kernel that leaves part
of an output unwritten, or reads scratch it did not write, fails.
"""

import numpy as np
import pytest

from hpclars import kernels as K
from hpclars import reference as R

TOL = 1e-5
BATCHES = [1, 3, 17]
THREADS = [1, 2]
# (Cin, Cout, H) of conv1 and conv2; K = 5 for both.
CONV_SHAPES = [(1, 6, 28), (6, 16, 14)]
# (C, H) of the two pooling inputs.
POOL_SHAPES = [(6, 28), (16, 14)]
# (In, Out) of the three dense layers.
DENSE_SHAPES = [(784, 120), (120, 84), (84, 10)]
KSIZE = 5


def rel_err(a, b):
    """max|a - b| / max|b|, the figure every kernel-vs-reference check bounds."""
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0))


def randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def nans(shape, dtype=np.float32):
    return np.full(shape, np.nan, dtype=dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------
# Kernels == references (float32)
# --------------------------------------------------------------------------

def conv_problem(rng, n, cin, cout, h):
    x = randn(rng, n, cin, h, h)
    w = randn(rng, cout, cin, KSIZE, KSIZE) * 0.2
    b = randn(rng, cout)
    dout = randn(rng, n, cout, h, h)
    return x, w, b, dout


def conv_work(n, cin, cout, h, nthreads):
    return nans(K.conv2d_work_size(n, cin, h, h, cout, KSIZE, nthreads))


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_forward_matches_reference(rng, cin, cout, h, n, nthreads):
    x, w, b, _ = conv_problem(rng, n, cin, cout, h)
    out, ref = nans((n, cout, h, h)), nans((n, cout, h, h))
    K.conv2d_forward(x, w, b, out, conv_work(n, cin, cout, h, nthreads), nthreads)
    R.conv2d_forward(x, w, b, ref, None)
    assert rel_err(out, ref) <= TOL


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_backward_matches_reference(rng, cin, cout, h, n, nthreads):
    x, w, _, dout = conv_problem(rng, n, cin, cout, h)
    work = conv_work(n, cin, cout, h, nthreads)
    dx_ref, dw_ref, db_ref = nans(x.shape), np.zeros_like(w), np.zeros(cout, np.float32)
    R.conv2d_backward(x, w, dout, dx_ref, dw_ref, db_ref, None)

    dx, dw, db = nans(x.shape), np.zeros_like(w), np.zeros(cout, np.float32)
    K.conv2d_backward(x, w, dout, dx, dw, db, work, nthreads)
    assert rel_err(dx, dx_ref) <= TOL
    assert rel_err(dw, dw_ref) <= TOL
    assert rel_err(db, db_ref) <= TOL

    # A second call accumulates into dw/db (and skips dx): they double.
    K.conv2d_backward(x, w, dout, None, dw, db, work, nthreads)
    assert rel_err(dw, 2 * dw_ref) <= TOL
    assert rel_err(db, 2 * db_ref) <= TOL


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_backward_without_dx_matches_reference(rng, cin, cout, h, nthreads):
    n = 3
    x, w, _, dout = conv_problem(rng, n, cin, cout, h)
    dw_ref, db_ref = np.zeros_like(w), np.zeros(cout, np.float32)
    R.conv2d_backward(x, w, dout, None, dw_ref, db_ref, None)
    dw, db = np.zeros_like(w), np.zeros(cout, np.float32)
    K.conv2d_backward(x, w, dout, None, dw, db, conv_work(n, cin, cout, h, nthreads), nthreads)
    assert rel_err(dw, dw_ref) <= TOL
    assert rel_err(db, db_ref) <= TOL


def fused_work(n, cin, cout, h, wd, nthreads, k=KSIZE):
    return nans(K.conv2d_pool_relu_work_size(n, cin, h, wd, cout, k, nthreads))


def check_fused_against_reference(x, w, b, dout, nthreads, want_dx=True, tol=TOL):
    """conv2d_pool_relu_forward/backward (compiled) against their references, twice, the
    second backward accumulating into dw/db (which double)."""
    n, cin, h, wd = x.shape
    cout, k = w.shape[0], w.shape[2]
    pooled = (n, cout, h // 2, wd // 2)
    work = fused_work(n, cin, cout, h, wd, nthreads, k)
    out, idx = nans(pooled), np.full(pooled, 255, np.uint8)
    out_ref, idx_ref = nans(pooled), np.full(pooled, 255, np.uint8)
    K.conv2d_pool_relu_forward(x, w, b, out, idx, work, nthreads)
    R.conv2d_pool_relu_forward(x, w, b, out_ref, idx_ref, None)
    assert rel_err(out, out_ref) <= tol
    # A window whose two largest values differ by rounding may pick another position; such
    # windows must be rare, and the gradient below uses the reference's positions.
    assert np.mean(idx != idx_ref) < 1e-3
    dx = nans(x.shape) if want_dx else None
    dx_ref = nans(x.shape) if want_dx else None
    dw, db = np.zeros_like(w), np.zeros_like(b)
    dw_ref, db_ref = np.zeros_like(w), np.zeros_like(b)
    K.conv2d_pool_relu_backward(x, w, out_ref, idx_ref, dout, dx, dw, db, work, nthreads)
    R.conv2d_pool_relu_backward(x, w, out_ref, idx_ref, dout, dx_ref, dw_ref, db_ref, None)
    if want_dx:
        assert rel_err(dx, dx_ref) <= tol
    assert rel_err(dw, dw_ref) <= tol
    assert rel_err(db, db_ref) <= tol
    K.conv2d_pool_relu_backward(x, w, out_ref, idx_ref, dout, None, dw, db, work, nthreads)
    assert rel_err(dw, 2 * dw_ref) <= tol
    assert rel_err(db, 2 * db_ref) <= tol


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_pool_relu_matches_reference(rng, cin, cout, h, n, nthreads):
    x, w, b, _ = conv_problem(rng, n, cin, cout, h)
    dout = randn(rng, n, cout, h // 2, h // 2)
    check_fused_against_reference(x, w, b, dout, nthreads, want_dx=cin > 1)


@pytest.mark.parametrize("cin", [1, 6])
def test_conv2d_pool_relu_backward_drops_a_pooling_position_past_3(rng, cin):
    # A corrupted position (the forward pass writes 0-3) must neither read outside the window nor
    # count: the gradient is that of the same window with a zero dout, on every build's path.
    n, cout, h = 2, 16 if cin > 1 else 6, 14
    x, w, b, _ = conv_problem(rng, n, cin, cout, h)
    out, idx = nans((n, cout, h // 2, h // 2)), np.zeros((n, cout, h // 2, h // 2), np.uint8)
    work = fused_work(n, cin, cout, h, h, 1)
    K.conv2d_pool_relu_forward(x, w, b, out, idx, work, 1)
    dout = randn(rng, *out.shape)
    out[:] = np.abs(out) + 1  # every window's ReLU on
    bad, zeroed = idx.copy(), dout.copy()
    bad[1, 3, 6, 6], bad[0, 0, 0, 0] = 200, 4
    zeroed[1, 3, 6, 6] = zeroed[0, 0, 0, 0] = 0
    grads = []
    for i, d in ((bad, dout), (idx, zeroed)):
        dw, db = np.zeros_like(w), np.zeros_like(b)
        dx = nans(x.shape) if cin > 1 else None
        K.conv2d_pool_relu_backward(x, w, out, i, d, dx, dw, db, work, 1)
        grads.append((dw, db) + ((dx,) if cin > 1 else ()))
    for got, want in zip(*grads):
        assert rel_err(got, want) <= TOL


# Besides the model's: K = 3 and 1; Cout = 32 on rows narrower than 14 (no channel-lane
# forward), on 20-pixel rows (two blocks of 14 that overlap) and 28-pixel rows (two channel
# blocks); Cout = 12 on rows of three 16-wide chunks.  The AVX2 channel-lane forward's strips of
# 5 pixels end in one of 4 that overlaps the one before by 1 (16-pixel rows), 3 (18, 28) or not
# at all (14, 24), or in none (20).  The AVX2 build's dx from the pooled gradient holds 14-row
# images in registers, a half row at a time: rows of 10, 12 and 16 pixels (a last half of 2, 4 and
# 8), and of 18 (the dense dx).  The AVX-512 build's weight gradient and dx from the pooled
# gradient, on images padded channel-last (2 to 6 input channels): 5 and 6 channels (25 and 30
# of a row's 32 lanes) on small images, and 7 (past it: the dense kernels).
@pytest.mark.parametrize("n, cin, cout, h, wd, k", [(3, 2, 3, 6, 8, 3), (2, 3, 32, 6, 10, 5),
                                                    (2, 5, 3, 6, 10, 5), (3, 6, 2, 4, 6, 5),
                                                    (2, 7, 4, 4, 8, 5),
                                                    (2, 3, 16, 4, 20, 5), (1, 2, 32, 2, 28, 5),
                                                    (3, 2, 12, 8, 34, 5), (1, 5, 4, 2, 2, 1),
                                                    (33, 1, 3, 8, 12, 5), (2, 3, 16, 4, 16, 5),
                                                    (1, 2, 16, 6, 18, 5), (2, 2, 16, 2, 24, 5),
                                                    (3, 3, 5, 14, 10, 5), (2, 4, 7, 14, 12, 5),
                                                    (2, 2, 16, 14, 16, 5), (1, 3, 4, 14, 18, 5)])
def test_conv2d_pool_relu_other_shapes_match_reference(rng, n, cin, cout, h, wd, k):
    x, w = randn(rng, n, cin, h, wd), randn(rng, cout, cin, k, k) * 0.2
    b, dout = randn(rng, cout), randn(rng, n, cout, h // 2, wd // 2)
    check_fused_against_reference(x, w, b, dout, 2)


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("cin,cout,h,wd", [(1, 6, 28, 28), (6, 16, 14, 14), (2, 32, 4, 30)])
@pytest.mark.parametrize("kern", [K, R], ids=["compiled", "reference"])
def test_conv2d_pool_relu_forward_on_uint8_pixels_is_the_scaled_float_input(rng, kern, cin, cout, h, wd,
                                                                            n, nthreads):
    """A uint8 x with x_scale gives bit for bit what the float32 input x * x_scale (one rounded
    product per pixel, as hpclars.data.to_float) gives: evaluation feeds the pixels unconverted."""
    x8 = rng.integers(0, 256, size=(n, cin, h, wd), dtype=np.uint8)
    x8.reshape(-1)[:3] = (0, 255, 1)
    scale = 1.0 / 255.0
    x = np.multiply(x8, np.float32(scale), dtype=np.float32)
    w, b = randn(rng, cout, cin, KSIZE, KSIZE) * 0.2, randn(rng, cout)
    pooled = (n, cout, h // 2, wd // 2)
    work = fused_work(n, cin, cout, h, wd, nthreads)
    out8, idx8 = nans(pooled), np.full(pooled, 255, np.uint8)
    out, idx = nans(pooled), np.full(pooled, 255, np.uint8)
    kern.conv2d_pool_relu_forward(x8, w, b, out8, idx8, work, nthreads, scale)
    kern.conv2d_pool_relu_forward(x, w, b, out, idx, work, nthreads)
    np.testing.assert_array_equal(out8, out)
    np.testing.assert_array_equal(idx8, idx)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference on NaN and inf
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("cout, h, wd", [(6, 28, 28), (3, 8, 12)])
@pytest.mark.parametrize("pixels", [False, True], ids=["float32", "uint8"])
def test_conv1_forward_images_in_the_lanes_is_image_by_image_bit_for_bit(rng, cout, h, wd, pixels, nthreads):
    """conv1's fused forward takes 16 images at a time with the images in the vector lanes on the
    AVX-512 build, 8 on the AVX2 one, and a batch's last N mod 16 (8) one by one: a batch of 33
    gives, bit for bit, the outputs and positions each image gives alone (a batch of one never
    fills a group)."""
    n = 33
    x8 = rng.integers(0, 256, size=(n, 1, h, wd), dtype=np.uint8)
    x = np.multiply(x8, np.float32(1 / 255), dtype=np.float32)
    x[5, 0, 3, :4] = (np.nan, np.inf, -np.inf, 0.0) if not pixels else x[5, 0, 3, :4]
    w, b = randn(rng, cout, 1, KSIZE, KSIZE) * 0.3, randn(rng, cout) * 0.1
    pooled = (n, cout, h // 2, wd // 2)
    extra = (1 / 255,) if pixels else ()
    xin = x8 if pixels else x
    out, idx = nans(pooled), np.full(pooled, 255, np.uint8)
    K.conv2d_pool_relu_forward(xin, w, b, out, idx, fused_work(n, 1, cout, h, wd, nthreads), nthreads, *extra)
    one, one_idx = nans(pooled), np.full(pooled, 255, np.uint8)
    work1 = fused_work(1, 1, cout, h, wd, 1)
    for i in range(n):
        K.conv2d_pool_relu_forward(xin[i:i + 1], w, b, one[i:i + 1], one_idx[i:i + 1], work1, 1, *extra)
    np.testing.assert_array_equal(out.view(np.int32), one.view(np.int32))
    np.testing.assert_array_equal(idx, one_idx)
    out_ref, idx_ref = nans(pooled), np.full(pooled, 255, np.uint8)
    R.conv2d_pool_relu_forward(x, w, b, out_ref, idx_ref, None)
    assert_same_specials(out, out_ref, "conv2d_pool_relu_forward")


def winograd_images(n, cout, k=KSIZE):
    """How many of a float32 batch of n conv2d_pool_relu_forward without positions takes by
    Winograd F(2x2, 5x5) on this build: whole groups of 16 images (AVX-512) or 8 (AVX2), where
    K = 5 and Cout is a multiple of 16."""
    group = 16 if K.KERNEL_PATH == "avx512" else 8
    return n // group * group if K.CONV_WINOGRAD and k == 5 and cout % 16 == 0 else 0


# The model's two layers, a channel count past the AVX-512 pooled backward's 6, two 16-channel
# blocks, and images of one 2 x 2 tile; batches below one group of 16, of two groups with a tail
# of 1, and of exactly two groups.
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", [3, 33, 32])
@pytest.mark.parametrize("cin,cout,h,wd", [(1, 6, 28, 28), (6, 16, 14, 14), (7, 16, 6, 8), (3, 32, 10, 4),
                                           (2, 16, 2, 2)])
@pytest.mark.parametrize("pixels", [False, True], ids=["float32", "uint8"])
def test_conv2d_pool_relu_forward_without_positions(rng, cin, cout, h, wd, n, nthreads, pixels):
    """idx None (evaluation): the outputs of the forward pass that records positions, bit for bit,
    except where a float32 batch with Cout a multiple of 16 goes by Winograd F(2x2, 5x5)
    (CONV_WINOGRAD): there its groups of 16 (AVX2: 8) are within TOL of the float64 reference and
    its last N mod 16 (8) images are the positions' pass's bit for bit.  uint8 pixels never go by
    Winograd."""
    x8 = rng.integers(0, 256, size=(n, cin, h, wd), dtype=np.uint8)
    x = np.multiply(x8, np.float32(1 / 255), dtype=np.float32) - np.float32(0.3)
    xin, extra = (x8, (1 / 255,)) if pixels else (x, ())
    w, b = randn(rng, cout, cin, KSIZE, KSIZE) * 0.2, randn(rng, cout) * 0.1
    pooled = (n, cout, h // 2, wd // 2)
    work = fused_work(n, cin, cout, h, wd, nthreads)
    out, idx, bare = nans(pooled), np.full(pooled, 255, np.uint8), nans(pooled)
    K.conv2d_pool_relu_forward(xin, w, b, out, idx, work, nthreads, *extra)
    K.conv2d_pool_relu_forward(xin, w, b, bare, None, work, nthreads, *extra)
    exact = n - (0 if pixels else winograd_images(n, cout))
    np.testing.assert_array_equal(bare[n - exact:].view(np.int32), out[n - exact:].view(np.int32))
    if exact < n:
        ref = nans(pooled, np.float64)  # (float32 only: uint8 pixels never go by Winograd)
        R.conv2d_pool_relu_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), ref,
                                   None, None)
        assert rel_err(bare[:n - exact], ref[:n - exact]) <= TOL
        assert not np.array_equal(bare[:n - exact], out[:n - exact])  # it did take the other sum


def _blocks_holding(special, n, cout, h, wd):
    """(n, cout, h/2, wd/2): the pooling windows whose 6 x 6 input block (rows 2r-2 .. 2r+3, columns
    2s-2 .. 2s+3 of any input channel) holds a True of ``special`` (n, cin, h, wd)."""
    any_c = special.any(axis=1)
    out = np.zeros((n, cout, h // 2, wd // 2), bool)
    for r in range(h // 2):
        for s in range(wd // 2):
            hit = any_c[:, max(2 * r - 2, 0):2 * r + 4, max(2 * s - 2, 0):2 * s + 4].any(axis=(1, 2))
            out[:, :, r, s] = hit[:, None]
    return out


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference on NaN and inf
@pytest.mark.parametrize("where", ["x", "w"])
def test_conv2d_pool_relu_forward_without_positions_keeps_nan_and_inf(rng, where):
    """Without positions (Winograd's groups where CONV_WINOGRAD: 35 images, two groups of 16 and 3
    direct) and NaN and inf in x or w: a NaN makes NaN exactly the pooled outputs the reference
    makes NaN (a window's 2 x 2 outputs read exactly its 6 x 6 input block); an inf may make NaN
    of a window whose block holds it, even where the reference's is finite, but nothing else:
    every other output is the reference's (its inf, or within TOL)."""
    n, cin, cout, h = 35, 6, 16, 14
    x, w = randn(rng, n, cin, h, h), randn(rng, cout, cin, KSIZE, KSIZE) * 0.2
    b = randn(rng, cout) * 0.1
    pooled = (n, cout, h // 2, h // 2)
    for special in (np.nan, np.inf, -np.inf):
        xs, ws = x.copy(), w.copy()
        if where == "x":
            xs[[2, 20, 34], [0, 3, 5], [0, 7, 13], [5, 0, 13]] = special
            near = _blocks_holding(~np.isfinite(xs), n, cout, h, h)
        else:
            ws[4, 2, 1, 3] = special
            near = np.zeros(pooled, bool)
            near[:, 4] = True  # that weight meets every input block of channel 4
        out, ref = nans(pooled), nans(pooled, np.float64)
        K.conv2d_pool_relu_forward(xs, ws, b, out, None, fused_work(n, cin, cout, h, h, 1), 1)
        R.conv2d_pool_relu_forward(xs.astype(np.float64), ws.astype(np.float64), b.astype(np.float64), ref,
                                   None, None)
        if np.isnan(special):
            np.testing.assert_array_equal(np.isnan(out), np.isnan(ref), err_msg="NaN positions")
        made_nan = np.isnan(out) & ~np.isnan(ref)
        assert not (made_nan & ~near).any(), special
        rest = ~made_nan
        np.testing.assert_array_equal(np.isinf(out[rest]), np.isinf(ref[rest]))
        np.testing.assert_array_equal(out[rest & np.isinf(out)], ref[rest & np.isinf(out)])
        finite = rest & np.isfinite(ref)
        assert finite.sum() > out.size // 2
        assert rel_err(out[finite], ref[finite]) <= TOL


@pytest.mark.parametrize("kern", [K, R], ids=["compiled", "reference"])
@pytest.mark.parametrize("h, wd", [(28, 28), (14, 14), (4, 66), (2, 6)])
def test_maxpool2_forward_without_positions_is_the_same_out(rng, kern, h, wd):
    x = np.maximum(randn(rng, 3, 4, h, wd), 0)
    x[1, 2, 0, 1] = np.nan
    pooled = (3, 4, h // 2, wd // 2)
    out, idx, bare = nans(pooled), np.full(pooled, 255, np.uint8), nans(pooled)
    kern.maxpool2_forward(x, out, idx, 2)
    kern.maxpool2_forward(x, bare, None, 2)
    np.testing.assert_array_equal(bare.view(np.int32), out.view(np.int32))


@pytest.mark.parametrize("cin,cout,h", [(1, 6, 28), (6, 16, 14)])
def test_work_at_any_address_gives_the_same_results_and_stays_in_its_bounds(rng, cin, cout, h):
    """The kernels start their scratch at work's first 64-byte boundary: a work of exactly the
    size asked for, at each float offset of a cache line, gives bit for bit the same outputs and
    gradients (plain and fused convolutions, 2 threads) and writes nothing past its end."""
    n, nt = 17, 2
    x, w, b, dout = conv_problem(rng, n, cin, cout, h)
    pooled = (n, cout, h // 2, h // 2)
    gp = randn(rng, *pooled)
    sizes = (K.conv2d_work_size(n, cin, h, h, cout, KSIZE, nt),
             K.conv2d_pool_relu_work_size(n, cin, h, h, cout, KSIZE, nt))
    runs = []
    for off in range(16):
        bufs = [np.full(m + 32, 7.0, np.float32) for m in sizes]
        work, fused = (buf[off:off + m] for buf, m in zip(bufs, sizes))
        out, dx, dw, db = nans((n, cout, h, h)), nans(x.shape), np.zeros_like(w), np.zeros_like(b)
        K.conv2d_forward(x, w, b, out, work, nt)
        K.conv2d_backward(x, w, dout, dx, dw, db, work, nt)
        pout, pidx = nans(pooled), np.zeros(pooled, np.uint8)
        pdx, pdw, pdb = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
        K.conv2d_pool_relu_forward(x, w, b, pout, pidx, fused, nt)
        K.conv2d_pool_relu_backward(x, w, pout, pidx, gp, pdx if cin > 1 else None, pdw, pdb, fused, nt)
        for buf, m in zip(bufs, sizes):
            assert np.all(buf[:off] == 7.0) and np.all(buf[off + m:] == 7.0), f"offset {off}"
        runs.append([a.view(np.uint8) for a in (out, dx, dw, db, pout, pidx, pdx, pdw, pdb)])
    for off, got in enumerate(runs[1:], 1):
        for a, ref in zip(got, runs[0]):
            np.testing.assert_array_equal(a, ref, err_msg=f"work at float offset {off}")


def test_uint8_input_needs_its_scale_and_only_it_takes_one():
    a = _fused_args(cin=1, cout=6, h=28)
    x8 = np.zeros((2, 1, 28, 28), np.uint8)
    for scale in (None, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^x_scale\b"):
            K.conv2d_pool_relu_forward(x8, a["w"], a["b"], a["out"], a["idx"], a["work"], 2, scale)
    with pytest.raises(ValueError, match=r"^x_scale\b"):
        K.conv2d_pool_relu_forward(a["x"], a["w"], a["b"], a["out"], a["idx"], a["work"], 2, 1.0)
    with pytest.raises(ValueError, match=r"^x\b"):  # the backward pass needs float32 pixels
        K.conv2d_pool_relu_backward(x8, a["w"], a["out"], a["idx"], a["dout"], None, a["dw"], a["db"],
                                    a["work"], 2)


def test_fused_build_flag_names_what_ran():
    """On a build with both fast paths the fused kernels keep the pre-pool maps in the
    threads' scratch: the scratch holds no whole-batch copy, unlike the portable fallback."""
    n, cin, h, cout = 64, 6, 14, 16
    per_batch = K.conv2d_pool_relu_work_size(n, cin, h, h, cout, KSIZE) - K.conv2d_work_size(
        n, cin, h, h, cout, KSIZE)
    assert K.CONV_POOL_FUSED == (K.KERNEL_PATH in ("avx512", "avx2"))
    assert per_batch == (0 if K.CONV_POOL_FUSED else n * cout * h * h + n * cout * (h // 2) ** 2)


# Not the model's shapes: K != 5 with H != W guards the padding arithmetic; at K = 5, other
# output-channel x row blocks than the model's, and rows of two and three 16-wide chunks with a
# partial last one; Cout = 32 with an odd width takes the channel-lane dw path with two channel
# blocks and a last single pixel per row.  (n, cin, cout, h, wd, k, scale of w)
OTHER_CONV_SHAPES = ([(4, 2, 3, 5, 8, k, 1.0) for k in (1, 3, 7)]
                     + [(3, cin, cout, h, wd, KSIZE, 0.2)
                        for cin, cout, h, wd in [(3, 8, 12, 40), (2, 12, 7, 33), (5, 4, 8, 17),
                                                 (3, 32, 6, 9)]])


@pytest.mark.parametrize("n, cin, cout, h, wd, k, w_scale", OTHER_CONV_SHAPES)
def test_conv2d_other_shapes_match_reference(rng, n, cin, cout, h, wd, k, w_scale):
    x, w = randn(rng, n, cin, h, wd), randn(rng, cout, cin, k, k) * w_scale
    b, dout = randn(rng, cout), randn(rng, n, cout, h, wd)
    work = nans(K.conv2d_work_size(n, cin, h, wd, cout, k, 2))
    out, ref = nans(dout.shape), nans(dout.shape)
    K.conv2d_forward(x, w, b, out, work, 2)
    R.conv2d_forward(x, w, b, ref, None)
    assert rel_err(out, ref) <= TOL
    dx, dw, db = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    dx_ref, dw_ref, db_ref = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    K.conv2d_backward(x, w, dout, dx, dw, db, work, 2)
    R.conv2d_backward(x, w, dout, dx_ref, dw_ref, db_ref, None)
    assert rel_err(dx, dx_ref) <= TOL
    assert rel_err(dw, dw_ref) <= TOL
    assert rel_err(db, db_ref) <= TOL


def test_conv2d_work_sized_for_a_larger_batch_serves_a_smaller_one(rng):
    cin, cout, h = CONV_SHAPES[1]
    x, w, b, _ = conv_problem(rng, 3, cin, cout, h)
    out, ref = nans((3, cout, h, h)), nans((3, cout, h, h))
    K.conv2d_forward(x, w, b, out, conv_work(64, cin, cout, h, 2), 2)
    R.conv2d_forward(x, w, b, ref, None)
    assert rel_err(out, ref) <= TOL


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("c,h", POOL_SHAPES)
def test_maxpool2_matches_reference(rng, c, h, n, nthreads):
    # ReLU-like input: about half the entries tie at zero, so the tie rule is exercised.
    x = np.maximum(randn(rng, n, c, h, h), 0)
    pooled = (n, c, h // 2, h // 2)
    out, idx = nans(pooled), np.full(pooled, 255, np.uint8)
    out_ref, idx_ref = nans(pooled), np.full(pooled, 255, np.uint8)
    K.maxpool2_forward(x, out, idx, nthreads)
    R.maxpool2_forward(x, out_ref, idx_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert rel_err(out, out_ref) <= TOL

    dout = randn(rng, *pooled)
    dx, dx_ref = nans(x.shape), nans(x.shape)
    K.maxpool2_backward(dout, idx, dx, nthreads)
    R.maxpool2_backward(dout, idx_ref, dx_ref)
    assert rel_err(dx, dx_ref) <= TOL


@pytest.mark.parametrize("h, wd", [(6, 40), (4, 66), (2, 2), (4, 10), (2, 6), (4, 36)])
def test_maxpool2_non_square_and_wide_rows(rng, h, wd):
    # Rows of more than 16 outputs, with a partial last chunk, and H != W; pooled rows ending in
    # every tail length the 8-lane stores split into pieces of 4, 2 and 1 (4, 1, 1, 5, 3, 2).
    n, c = 3, 2
    x = np.maximum(randn(rng, n, c, h, wd), 0)
    pooled = (n, c, h // 2, wd // 2)
    out, idx = nans(pooled), np.full(pooled, 255, np.uint8)
    out_ref, idx_ref = nans(pooled), np.full(pooled, 255, np.uint8)
    K.maxpool2_forward(x, out, idx, 2)
    R.maxpool2_forward(x, out_ref, idx_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert rel_err(out, out_ref) <= TOL
    dout = randn(rng, *pooled)
    dx, dx_ref = nans(x.shape), nans(x.shape)
    K.maxpool2_backward(dout, idx, dx, 2)
    R.maxpool2_backward(dout, idx_ref, dx_ref)
    assert rel_err(dx, dx_ref) <= TOL


@pytest.mark.parametrize("nthreads", THREADS)
def test_maxpool2_ties_take_first_position(nthreads):
    x = np.zeros((2, 3, 4, 6), np.float32)
    out, idx = nans((2, 3, 2, 3)), np.full((2, 3, 2, 3), 255, np.uint8)
    idx_ref = np.full((2, 3, 2, 3), 255, np.uint8)
    K.maxpool2_forward(x, out, idx, nthreads)
    R.maxpool2_forward(x, nans((2, 3, 2, 3)), idx_ref)
    assert not idx.any()
    assert not idx_ref.any()
    assert not out.any()


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("n_in,n_out", DENSE_SHAPES)
def test_dense_matches_reference(rng, n_in, n_out, n, nthreads):
    x, w, b = randn(rng, n, n_in), randn(rng, n_out, n_in) * 0.1, randn(rng, n_out)
    out, out_ref = nans((n, n_out)), nans((n, n_out))
    K.dense_forward(x, w, b, out, nthreads)
    R.dense_forward(x, w, b, out_ref)
    assert rel_err(out, out_ref) <= TOL

    dout = randn(rng, n, n_out)
    dx_ref, dw_ref, db_ref = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    R.dense_backward(x, w, dout, dx_ref, dw_ref, db_ref)
    dx, dw, db = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    K.dense_backward(x, w, dout, dx, dw, db, nthreads)
    assert rel_err(dx, dx_ref) <= TOL
    assert rel_err(dw, dw_ref) <= TOL
    assert rel_err(db, db_ref) <= TOL

    # A second call accumulates into dw/db (and skips dx): they double.
    K.dense_backward(x, w, dout, None, dw, db, nthreads)
    assert rel_err(dw, 2 * dw_ref) <= TOL
    assert rel_err(db, 2 * db_ref) <= TOL


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
def test_relu_matches_reference(rng, n, nthreads):
    x = randn(rng, n, 6, 28, 28)
    out, out_ref = nans(x.shape), nans(x.shape)
    K.relu_forward(x, out, nthreads)
    R.relu_forward(x, out_ref)
    np.testing.assert_array_equal(out, out_ref)

    dout = randn(rng, *x.shape)
    dx, dx_ref = nans(x.shape), nans(x.shape)
    K.relu_backward(out, dout, dx, nthreads)
    R.relu_backward(out_ref, dout, dx_ref)
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("in_place", [False, True], ids=["out-of-place", "in-place"])
def test_relu_backward_specials_and_signs_as_reference(rng, in_place):
    # Rows of 13 (vector body and tail): y with NaN, +-0, +-inf; dout with +-inf, NaN and negative
    # values where y <= 0 (the product gives NaN and -0.0 there, a select would give 0).
    y = np.maximum(randn(rng, 7, 13), 0)
    dout = randn(rng, 7, 13)
    y[0, :6] = [np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-45]
    dout[1, :4] = [np.inf, -np.inf, np.nan, -3.0]
    y[1, :4] = 0.0
    dout[2, :3] = [np.inf, np.nan, -np.inf]
    y[2, :3] = [np.nan, np.nan, np.inf]
    ref = nans(y.shape)
    with np.errstate(invalid="ignore"):  # inf * 0
        R.relu_backward(y, dout, ref)
    dx = dout.copy() if in_place else nans(y.shape)
    K.relu_backward(y, dx if in_place else dout, dx, 2)
    np.testing.assert_array_equal(dx, ref)
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(ref))
    assert np.isnan(dx[1, 0]) and np.signbit(dx[1, 3])


def test_relu_in_place(rng):
    x = randn(rng, 5, 120)
    expected_out = np.maximum(x, 0)
    K.relu_forward(x, x, 2)
    np.testing.assert_array_equal(x, expected_out)
    dout = randn(rng, 5, 120)
    expected_dx = np.where(x > 0, dout, 0).astype(np.float32)
    K.relu_backward(x, dout, dout, 2)
    np.testing.assert_array_equal(dout, expected_dx)


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("n", BATCHES)
def test_softmax_xent_matches_reference(rng, n, nthreads):
    logits = randn(rng, n, 10) * 3
    labels = rng.integers(0, 10, n).astype(np.int32)
    # Force some rows to be right, so n_correct is not trivially 0.
    labels[::2] = logits[::2].argmax(axis=1)
    scale = 1.0 / 37
    dl, dl_ref = nans((n, 10)), nans((n, 10))
    loss, correct = K.softmax_xent(logits, labels, dl, scale, nthreads)
    loss_ref, correct_ref = R.softmax_xent(logits, labels, dl_ref, scale)
    assert isinstance(loss, float) and isinstance(correct, int)
    assert abs(loss - loss_ref) <= TOL * abs(loss_ref)
    assert correct == correct_ref
    assert rel_err(dl, dl_ref) <= TOL

    assert K.softmax_xent(logits, labels, None, scale, nthreads) == (loss, correct)


def test_softmax_xent_argmax_ties_take_first():
    logits = np.zeros((2, 10), np.float32)
    labels = np.array([0, 1], np.int32)
    assert K.softmax_xent(logits, labels, None, 1.0)[1] == 1
    assert R.softmax_xent(logits, labels, None, 1.0)[1] == 1


# --------------------------------------------------------------------------
# References == central finite differences (float64)
# --------------------------------------------------------------------------

FD_EPS = 1e-6
FD_TOL = 1e-6


def numeric_grad(f, a):
    """Central differences of the scalar f() w.r.t. every entry of a (perturbed in place)."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        v = flat[j]
        flat[j] = v + FD_EPS
        up = f()
        flat[j] = v - FD_EPS
        down = f()
        flat[j] = v
        gflat[j] = (up - down) / (2 * FD_EPS)
    return g


def assert_fd(analytic, f, a):
    numeric = numeric_grad(f, a)
    assert rel_err(analytic, numeric) <= FD_TOL, (analytic, numeric)


def test_reference_conv2d_backward_matches_finite_differences(rng):
    n, cin, cout, h, wd, k = 2, 2, 3, 5, 4, 3
    x = randn(rng, n, cin, h, wd, dtype=np.float64)
    w = randn(rng, cout, cin, k, k, dtype=np.float64)
    b = randn(rng, cout, dtype=np.float64)
    g = randn(rng, n, cout, h, wd, dtype=np.float64)  # L = sum(out * g), so dL/dout = g
    out = np.empty_like(g)

    def loss():
        R.conv2d_forward(x, w, b, out, None)
        return float(np.sum(out * g))

    dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros_like(b)
    R.conv2d_backward(x, w, g, dx, dw, db, None)
    assert_fd(dw, loss, w)
    assert_fd(db, loss, b)
    assert_fd(dx, loss, x)


def test_reference_conv2d_pool_relu_backward_matches_finite_differences(rng):
    n, cin, cout, h, wd, k = 2, 2, 3, 4, 6, 3
    x = randn(rng, n, cin, h, wd, dtype=np.float64)
    w = randn(rng, cout, cin, k, k, dtype=np.float64)
    b = randn(rng, cout, dtype=np.float64) * 0.1
    g = randn(rng, n, cout, h // 2, wd // 2, dtype=np.float64)
    out, idx = np.empty_like(g), np.empty(g.shape, np.uint8)

    def loss():
        R.conv2d_pool_relu_forward(x, w, b, out, idx, None)
        return float(np.sum(out * g))

    loss()
    assert 0 < np.mean(out > 0) < 1  # both sides of the ReLU are exercised
    dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros_like(b)
    R.conv2d_pool_relu_backward(x, w, out.copy(), idx.copy(), g, dx, dw, db, None)
    assert_fd(dw, loss, w)
    assert_fd(db, loss, b)
    assert_fd(dx, loss, x)


def test_reference_maxpool2_backward_matches_finite_differences(rng):
    shape = (2, 2, 4, 6)
    # Distinct values 0.1 apart: no ties, and the argmax cannot flip within FD_EPS.
    x = (rng.permutation(int(np.prod(shape))) * 0.1).reshape(shape).astype(np.float64)
    g = randn(rng, 2, 2, 2, 3, dtype=np.float64)
    out, idx = np.empty_like(g), np.empty(g.shape, np.uint8)

    def loss():
        R.maxpool2_forward(x, out, idx)
        return float(np.sum(out * g))

    loss()
    dx = np.empty_like(x)
    R.maxpool2_backward(g, idx, dx)
    assert_fd(dx, loss, x)


def test_reference_relu_backward_matches_finite_differences(rng):
    x = randn(rng, 3, 7, dtype=np.float64)
    x += np.sign(x) * 0.1  # keep every entry away from the kink at 0
    g = randn(rng, 3, 7, dtype=np.float64)
    y = np.empty_like(x)

    def loss():
        R.relu_forward(x, y)
        return float(np.sum(y * g))

    loss()
    dx = np.empty_like(x)
    R.relu_backward(y, g, dx)
    assert_fd(dx, loss, x)


def test_reference_dense_backward_matches_finite_differences(rng):
    x = randn(rng, 3, 5, dtype=np.float64)
    w = randn(rng, 4, 5, dtype=np.float64)
    b = randn(rng, 4, dtype=np.float64)
    g = randn(rng, 3, 4, dtype=np.float64)
    out = np.empty_like(g)

    def loss():
        R.dense_forward(x, w, b, out)
        return float(np.sum(out * g))

    dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros_like(b)
    R.dense_backward(x, w, g, dx, dw, db)
    assert_fd(dw, loss, w)
    assert_fd(db, loss, b)
    assert_fd(dx, loss, x)


def test_reference_softmax_xent_matches_finite_differences(rng):
    logits = randn(rng, 4, 10, dtype=np.float64)
    labels = np.array([3, 0, 9, 3], np.int32)
    dl = np.empty_like(logits)
    R.softmax_xent(logits, labels, dl, 1.0)
    assert_fd(dl, lambda: R.softmax_xent(logits, labels, None, 1.0)[0], logits)


# --------------------------------------------------------------------------
# Bad arguments are refused, naming the argument
# --------------------------------------------------------------------------

def _conv_args(n=2, cin=6, cout=16, h=14):
    f = np.float32
    return dict(
        x=np.zeros((n, cin, h, h), f), w=np.zeros((cout, cin, KSIZE, KSIZE), f),
        b=np.zeros(cout, f), out=np.zeros((n, cout, h, h), f),
        dout=np.zeros((n, cout, h, h), f), dx=np.zeros((n, cin, h, h), f),
        dw=np.zeros((cout, cin, KSIZE, KSIZE), f), db=np.zeros(cout, f),
        work=np.zeros(K.conv2d_work_size(n, cin, h, h, cout, KSIZE, 2), f),
    )


def _conv_fwd(**bad):
    a = {**_conv_args(), **bad}
    K.conv2d_forward(a["x"], a["w"], a["b"], a["out"], a["work"], bad.get("nthreads", 2))


def _conv_bwd(**bad):
    a = {**_conv_args(), **bad}
    K.conv2d_backward(a["x"], a["w"], a["dout"], a["dx"], a["dw"], a["db"], a["work"], 2)


def _pool_fwd(**bad):
    a = {"x": np.zeros((2, 6, 28, 28), np.float32), "out": np.zeros((2, 6, 14, 14), np.float32),
         "idx": np.zeros((2, 6, 14, 14), np.uint8), **bad}
    K.maxpool2_forward(a["x"], a["out"], a["idx"])


def _pool_bwd(**bad):
    a = {"dout": np.zeros((2, 6, 14, 14), np.float32), "idx": np.zeros((2, 6, 14, 14), np.uint8),
         "dx": np.zeros((2, 6, 28, 28), np.float32), **bad}
    K.maxpool2_backward(a["dout"], a["idx"], a["dx"])


def _dense_fwd(**bad):
    a = {"x": np.zeros((3, 84), np.float32), "w": np.zeros((10, 84), np.float32),
         "b": np.zeros(10, np.float32), "out": np.zeros((3, 10), np.float32), **bad}
    K.dense_forward(a["x"], a["w"], a["b"], a["out"])


def _dense_bwd(**bad):
    a = {"x": np.zeros((3, 84), np.float32), "w": np.zeros((10, 84), np.float32),
         "dout": np.zeros((3, 10), np.float32), "dx": np.zeros((3, 84), np.float32),
         "dw": np.zeros((10, 84), np.float32), "db": np.zeros(10, np.float32), **bad}
    K.dense_backward(a["x"], a["w"], a["dout"], a["dx"], a["dw"], a["db"])


def _relu_fwd(**bad):
    a = {"x": np.zeros((3, 4), np.float32), "out": np.zeros((3, 4), np.float32), **bad}
    K.relu_forward(a["x"], a["out"])


def _relu_bwd(**bad):
    a = {"y": np.zeros((3, 4), np.float32), "dout": np.zeros((3, 4), np.float32),
         "dx": np.zeros((3, 4), np.float32), **bad}
    K.relu_backward(a["y"], a["dout"], a["dx"])


def _xent(**bad):
    a = {"logits": np.zeros((3, 10), np.float32), "labels": np.zeros(3, np.int32),
         "dlogits": np.zeros((3, 10), np.float32), **bad}
    K.softmax_xent(a["logits"], a["labels"], a["dlogits"], 1.0)


def _fused_args(n=2, cin=6, cout=16, h=14):
    f = np.float32
    return dict(x=np.zeros((n, cin, h, h), f), w=np.zeros((cout, cin, 5, 5), f), b=np.zeros(cout, f),
                out=np.zeros((n, cout, h // 2, h // 2), f), idx=np.zeros((n, cout, h // 2, h // 2), np.uint8),
                dout=np.zeros((n, cout, h // 2, h // 2), f), dx=np.zeros((n, cin, h, h), f),
                dw=np.zeros((cout, cin, 5, 5), f), db=np.zeros(cout, f),
                work=np.zeros(K.conv2d_pool_relu_work_size(n, cin, h, h, cout, KSIZE, 2), f))


def _fused_fwd(**bad):
    a = {**_fused_args(), **bad}
    K.conv2d_pool_relu_forward(a["x"], a["w"], a["b"], a["out"], a["idx"], a["work"], 2)


def _fused_bwd(**bad):
    a = {**_fused_args(), **bad}
    K.conv2d_pool_relu_backward(a["x"], a["w"], a["out"], a["idx"], a["dout"], a["dx"], a["dw"],
                                a["db"], a["work"], 2)


F32, F64 = np.float32, np.float64
BAD_ARGUMENTS = [
    (_conv_fwd, "x", np.zeros((2, 6, 14, 14), F64)),
    (_conv_fwd, "x", np.zeros((2, 6, 14), F32)),
    (_conv_fwd, "w", np.zeros((16, 5, 5, 5), F32)),
    (_conv_fwd, "w", np.zeros((16, 6, 4, 4), F32)),
    (_conv_fwd, "b", np.zeros(15, F32)),
    (_conv_fwd, "out", np.zeros((2, 16, 14, 13), F32)),
    (_conv_fwd, "work", np.zeros(10, F32)),
    (_conv_fwd, "nthreads", 0),
    (_conv_bwd, "dout", np.zeros((2, 16, 14, 13), F32)),
    (_conv_bwd, "dx", np.zeros((2, 6, 14, 13), F32)),
    (_conv_bwd, "dw", np.zeros((16, 6, 5, 10), F32)[..., ::2]),
    (_conv_bwd, "db", np.zeros(16, F64)),
    (_pool_fwd, "x", np.zeros((2, 6, 27, 28), F32)),
    (_pool_fwd, "out", np.zeros((2, 6, 14, 15), F32)),
    (_pool_fwd, "idx", np.zeros((2, 6, 14, 14), np.int32)),
    (_pool_bwd, "idx", np.zeros((2, 6, 14, 13), np.uint8)),
    (_pool_bwd, "dx", np.zeros((2, 6, 28, 27), F32)),
    (_dense_fwd, "w", np.zeros((10, 83), F32)),
    (_dense_fwd, "b", np.zeros(11, F32)),
    (_dense_fwd, "out", np.zeros((3, 11), F32)),
    (_dense_bwd, "dout", np.zeros((4, 10), F32)),
    (_dense_bwd, "dx", np.zeros((3, 85), F32)),
    (_dense_bwd, "dw", np.zeros((84, 10), F32).T),
    (_dense_bwd, "db", np.zeros(9, F32)),
    (_relu_fwd, "out", np.zeros((4, 3), F32)),
    (_relu_bwd, "dx", np.zeros((3, 4), F64)),
    (_xent, "logits", np.zeros((3, 10), F64)),
    (_xent, "labels", np.zeros(3, np.int64)),
    (_xent, "labels", np.array([0, 10, 1], np.int32)),
    (_xent, "dlogits", np.zeros((3, 9), F32)),
    (_fused_fwd, "x", np.zeros((2, 6, 13, 14), F32)),
    (_fused_fwd, "w", np.zeros((16, 6, 4, 4), F32)),
    (_fused_fwd, "b", np.zeros(15, F32)),
    (_fused_fwd, "out", np.zeros((2, 16, 14, 14), F32)),
    (_fused_fwd, "idx", np.zeros((2, 16, 7, 7), np.int8)),
    (_fused_fwd, "work", np.zeros(10, F32)),
    (_fused_bwd, "dout", np.zeros((2, 16, 7, 6), F32)),
    (_fused_bwd, "dx", np.zeros((2, 6, 14, 13), F32)),
    (_fused_bwd, "dw", np.zeros((16, 6, 5, 5), F64)),
    (_fused_bwd, "db", np.zeros(17, F32)),
    (_fused_fwd, "out", np.zeros((2, 16, 7, 7), F32)[..., ::-1]),
]


@pytest.mark.parametrize(
    "call,name,value", BAD_ARGUMENTS,
    ids=[f"{c.__name__[1:]}-{n}-{i}" for i, (c, n, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_argument_is_refused_by_name(call, name, value):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call(**{name: value})


def test_fused_backward_needs_the_forward_passs_positions():
    """idx None is a forward pass's choice (evaluation); the backward pass refuses it by name."""
    n, cin, cout, h = 2, 6, 16, 14
    x, w = randn(np.random.default_rng(0), n, cin, h, h), np.zeros((cout, cin, KSIZE, KSIZE), np.float32)
    out = np.zeros((n, cout, h // 2, h // 2), np.float32)
    with pytest.raises(ValueError, match="^idx "):
        K.conv2d_pool_relu_backward(x, w, out, None, out, None, np.zeros_like(w), np.zeros(cout, np.float32),
                                    fused_work(n, cin, cout, h, h, 1), 1)


def test_read_only_output_is_refused_by_name():
    out = np.zeros((3, 4), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"^out\b"):
        K.relu_forward(np.zeros((3, 4), np.float32), out)


def test_read_only_fused_output_is_refused_by_name():
    out = _fused_args()["out"]
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"^out\b"):
        _fused_fwd(out=out)


# --------------------------------------------------------------------------
# NaN and inf: every kernel treats them exactly as its reference does
# --------------------------------------------------------------------------

SPECIALS = (np.nan, np.inf, -np.inf)
# The references compute inf - inf and 0 * inf on purpose here.
IGNORE_INVALID = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")


def sprinkle(rng, a, count=7):
    """``a`` with ``count`` entries (spread over the batch) set to NaN, +inf or -inf."""
    a = a.copy()
    flat = a.reshape(-1)
    for j, pos in enumerate(rng.choice(flat.size, size=min(count, flat.size), replace=False)):
        flat[pos] = SPECIALS[j % len(SPECIALS)]
    return a


def assert_same_specials(out, ref, what):
    """NaN, +inf and -inf at exactly the same places, the finite rest within TOL."""
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(test(out), test(ref), err_msg=f"{what}: {name} positions differ")
    finite = np.isfinite(ref)
    if finite.any():
        assert rel_err(out[finite], ref[finite]) <= TOL, what


@IGNORE_INVALID
def test_relu_nan_and_inf_as_reference():
    # The input of the issue: the compiled ReLU turned NaN into 0.
    x = np.array([[np.nan, 0, 2, np.inf, -np.inf, -1]], np.float32)
    out, out_ref = nans(x.shape), nans(x.shape)
    K.relu_forward(x, out)
    R.relu_forward(x, out_ref)
    np.testing.assert_array_equal(out_ref, [[np.nan, 0, 2, np.inf, 0, 0]])
    assert_same_specials(out, out_ref, "relu_forward")
    y = np.array([[np.nan, 0, 2, np.inf, 0, 3, 0]], np.float32)
    dout = np.array([[1, np.inf, np.nan, 2, np.nan, -np.inf, -np.inf]], np.float32)
    dx, dx_ref = nans(y.shape), nans(y.shape)
    K.relu_backward(y, dout, dx)
    R.relu_backward(y, dout, dx_ref)
    assert_same_specials(dx, dx_ref, "relu_backward")


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("where", ["input", "output_grad"])
def test_relu_random_specials_as_reference(rng, where, nthreads):
    x = randn(rng, 5, 6, 28, 28)
    dout = randn(rng, *x.shape)
    if where == "input":
        x = sprinkle(rng, x, 50)
    else:
        dout = sprinkle(rng, dout, 50)
    out, out_ref = nans(x.shape), nans(x.shape)
    K.relu_forward(x, out, nthreads)
    R.relu_forward(x, out_ref)
    assert_same_specials(out, out_ref, "relu_forward")
    dx, dx_ref = nans(x.shape), nans(x.shape)
    K.relu_backward(out_ref, dout, dx, nthreads)
    R.relu_backward(out_ref, dout, dx_ref)
    assert_same_specials(dx, dx_ref, "relu_backward")


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("h, wd", [(28, 28), (14, 14), (4, 66)])
def test_maxpool2_specials_as_reference(rng, h, wd, nthreads):
    n, c = 3, 4
    x = sprinkle(rng, np.maximum(randn(rng, n, c, h, wd), 0), 40)
    x[0, 0, :2, :2] = [[1, np.nan], [np.nan, np.inf]]  # the first NaN wins, as np.argmax has it
    x[0, 1, :2, :2] = [[np.nan, np.inf], [1, np.nan]]
    x[0, 2, :2, :2] = [[-np.inf, -np.inf], [-np.inf, -np.inf]]
    pooled = (n, c, h // 2, wd // 2)
    out, idx = nans(pooled), np.full(pooled, 255, np.uint8)
    out_ref, idx_ref = nans(pooled), np.full(pooled, 255, np.uint8)
    K.maxpool2_forward(x, out, idx, nthreads)
    R.maxpool2_forward(x, out_ref, idx_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert_same_specials(out, out_ref, "maxpool2_forward")
    dout = sprinkle(rng, randn(rng, *pooled), 10)
    dx, dx_ref = nans(x.shape), nans(x.shape)
    K.maxpool2_backward(dout, idx_ref, dx, nthreads)
    R.maxpool2_backward(dout, idx_ref, dx_ref)
    assert_same_specials(dx, dx_ref, "maxpool2_backward")


@IGNORE_INVALID
@pytest.mark.parametrize("wd", [2, 6, 14, 16, 18])
def test_maxpool2_backward_writes_only_inside_dx(rng, wd):
    # Rows of fewer than 8 pooled values are stored 16 floats wide, into the rows after them,
    # which the same call writes later: nothing may land outside dx, nor in another thread's
    # images, and every element must end up the reference's.
    n, c, h = 5, 3, 6
    x = np.maximum(randn(rng, n, c, h, wd), 0)
    pooled = (n, c, h // 2, wd // 2)
    idx, idx_ref = np.full(pooled, 255, np.uint8), np.full(pooled, 255, np.uint8)
    K.maxpool2_forward(x, nans(pooled), idx, 2)
    R.maxpool2_forward(x, nans(pooled), idx_ref)
    dout = sprinkle(rng, randn(rng, *pooled), 10)
    guard = 64
    buf = np.full(x.size + 2 * guard, -123.0, np.float32)
    dx = buf[guard:guard + x.size].reshape(x.shape)
    dx[...] = np.nan
    dx_ref = nans(x.shape)
    K.maxpool2_backward(dout, idx, dx, 2)
    R.maxpool2_backward(dout, idx_ref, dx_ref)
    assert_same_specials(dx, dx_ref, "maxpool2_backward")
    assert (buf[:guard] == -123.0).all() and (buf[guard + x.size:] == -123.0).all()


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("where", ["x", "w", "b", "dout"])
@pytest.mark.parametrize("n_in,n_out", DENSE_SHAPES[1:])
def test_dense_specials_as_reference(rng, n_in, n_out, where, nthreads):
    n = 5
    a = {"x": randn(rng, n, n_in), "w": randn(rng, n_out, n_in) * 0.1, "b": randn(rng, n_out),
         "dout": randn(rng, n, n_out)}
    a[where] = sprinkle(rng, a[where], 3)
    out, out_ref = nans((n, n_out)), nans((n, n_out))
    K.dense_forward(a["x"], a["w"], a["b"], out, nthreads)
    R.dense_forward(a["x"], a["w"], a["b"], out_ref)
    assert_same_specials(out, out_ref, "dense_forward")
    dx, dw, db = nans((n, n_in)), np.zeros((n_out, n_in), np.float32), np.zeros(n_out, np.float32)
    dx_ref, dw_ref, db_ref = nans((n, n_in)), np.zeros_like(dw), np.zeros_like(db)
    K.dense_backward(a["x"], a["w"], a["dout"], dx, dw, db, nthreads)
    R.dense_backward(a["x"], a["w"], a["dout"], dx_ref, dw_ref, db_ref)
    for got, ref, name in ((dx, dx_ref, "dx"), (dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert_same_specials(got, ref, f"dense_backward {name}")


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("where", ["x", "w", "b", "dout"])
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_specials_as_reference(rng, cin, cout, h, where, nthreads):
    n = 3
    x, w, b, dout = conv_problem(rng, n, cin, cout, h)
    a = {"x": x, "w": w, "b": b, "dout": dout}
    a[where] = sprinkle(rng, a[where], 2)
    out, out_ref = nans((n, cout, h, h)), nans((n, cout, h, h))
    K.conv2d_forward(a["x"], a["w"], a["b"], out, conv_work(n, cin, cout, h, nthreads), nthreads)
    R.conv2d_forward(a["x"], a["w"], a["b"], out_ref, None)
    assert_same_specials(out, out_ref, "conv2d_forward")
    dx, dw, db = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    dx_ref, dw_ref, db_ref = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    K.conv2d_backward(a["x"], a["w"], a["dout"], dx, dw, db, conv_work(n, cin, cout, h, nthreads), nthreads)
    R.conv2d_backward(a["x"], a["w"], a["dout"], dx_ref, dw_ref, db_ref, None)
    for got, ref, name in ((dx, dx_ref, "dx"), (dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert_same_specials(got, ref, f"conv2d_backward {name}")


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("where", ["x", "w", "b", "dout"])
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_pool_relu_specials_as_reference(rng, cin, cout, h, where, nthreads):
    n = 3
    x, w, b, _ = conv_problem(rng, n, cin, cout, h)
    a = {"x": x, "w": w, "b": b, "dout": randn(rng, n, cout, h // 2, h // 2)}
    a[where] = sprinkle(rng, a[where], 2)
    pooled = (n, cout, h // 2, h // 2)
    work = fused_work(n, cin, cout, h, h, nthreads)
    out, idx, out_ref, idx_ref = nans(pooled), np.zeros(pooled, np.uint8), nans(pooled), np.zeros(pooled, np.uint8)
    K.conv2d_pool_relu_forward(a["x"], a["w"], a["b"], out, idx, work, nthreads)
    R.conv2d_pool_relu_forward(a["x"], a["w"], a["b"], out_ref, idx_ref, None)
    assert_same_specials(out, out_ref, "conv2d_pool_relu_forward")
    dx, dw, db = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    dx_ref, dw_ref, db_ref = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    K.conv2d_pool_relu_backward(a["x"], a["w"], out_ref, idx_ref, a["dout"], dx, dw, db, work, nthreads)
    R.conv2d_pool_relu_backward(a["x"], a["w"], out_ref, idx_ref, a["dout"], dx_ref, dw_ref, db_ref, None)
    for got, ref, name in ((dx, dx_ref, "dx"), (dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert_same_specials(got, ref, f"conv2d_pool_relu_backward {name}")


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("where", ["x", "dout"])
def test_conv1_backward_sixteen_images_at_a_time_specials_as_reference(rng, where, nthreads):
    """conv1's fused backward without dx takes 16 images at a time with the images in the
    vector lanes on the AVX-512 build, and the pooled weight gradient image by image on the AVX2
    one (the dense path for an image with a non-finite x): NaN and inf in the inputs or the
    incoming gradient of a batch of 16 + 1 images land in dw and db as in the reference."""
    n, cin, cout, h = 17, 1, 6, 28
    x, w, b, _ = conv_problem(rng, n, cin, cout, h)
    dout = randn(rng, n, cout, h // 2, h // 2)
    a = {"x": x, "dout": dout}
    a[where] = sprinkle(rng, a[where], 3)
    pooled = (n, cout, h // 2, h // 2)
    out, idx = nans(pooled), np.zeros(pooled, np.uint8)
    R.conv2d_pool_relu_forward(a["x"], w, b, out, idx, None)
    dw, db, dw_ref, db_ref = np.zeros_like(w), np.zeros_like(b), np.zeros_like(w), np.zeros_like(b)
    K.conv2d_pool_relu_backward(a["x"], w, out, idx, a["dout"], None, dw, db,
                                fused_work(n, cin, cout, h, h, nthreads), nthreads)
    R.conv2d_pool_relu_backward(a["x"], w, out, idx, a["dout"], None, dw_ref, db_ref, None)
    for got, ref, name in ((dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert_same_specials(got, ref, f"conv2d_pool_relu_backward {name}")


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
def test_softmax_xent_specials_as_reference(rng, nthreads):
    logits = randn(rng, 8, 10) * 3
    logits[0, [2, 5]] = np.nan            # the first NaN is the argmax, as np.argmax has it
    logits[1, 7] = np.nan
    logits[2, [1, 4]] = np.inf
    logits[3, 3] = -np.inf
    logits[4, :] = -np.inf
    logits[5, [0, 9]] = [np.inf, np.nan]
    labels = np.array([2, 7, 1, 3, 0, 9, 1, 2], np.int32)
    for rows in (slice(0, 8), slice(3, 4), slice(6, 8)):
        z, lab = np.ascontiguousarray(logits[rows]), np.ascontiguousarray(labels[rows])
        dl, dl_ref = nans(z.shape), nans(z.shape)
        loss, correct = K.softmax_xent(z, lab, dl, 0.5, nthreads)
        loss_ref, correct_ref = R.softmax_xent(z, lab, dl_ref, 0.5)
        assert correct == correct_ref
        assert_same_specials(np.array([loss]), np.array([loss_ref]), "softmax_xent loss")
        assert_same_specials(dl, dl_ref, "softmax_xent dlogits")


# The random positions above rarely hit an image's border, where the portable (im2col +
# sgemm) path once differed from the reference: an inf pixel in the first or last columns
# (dw) and an inf or NaN weight whose taps fall on dout's zero padding rows (dx).
BORDER_SPECIALS = [("x", (0, 0, 3, 0)), ("x", (1, 0, 5, 1)), ("x", (2, 0, 0, 13)), ("x", (0, 0, 13, 12)),
                   ("w", (0, 0, 0, 0)), ("w", (3, 0, 4, 2)), ("w", (5, 0, 2, 4))]


@IGNORE_INVALID
@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("where,pos", BORDER_SPECIALS)
@pytest.mark.parametrize("cin,cout,h", CONV_SHAPES)
def test_conv2d_border_specials_as_reference(rng, cin, cout, h, where, pos, value, nthreads):
    n = 3
    x, w, b, dout = conv_problem(rng, n, cin, cout, h)
    a = {"x": x, "w": w}
    a[where][pos] = value
    dx, dw, db = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    dx_ref, dw_ref, db_ref = nans(x.shape), np.zeros_like(w), np.zeros_like(b)
    K.conv2d_backward(x, w, dout, dx, dw, db, conv_work(n, cin, cout, h, nthreads), nthreads)
    R.conv2d_backward(x, w, dout, dx_ref, dw_ref, db_ref, None)
    for got, ref, name in ((dx, dx_ref, "dx"), (dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert_same_specials(got, ref, f"conv2d_backward {name}")


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("shape", [(256,), (3, 28, 28), (17, 1, 5, 7), (0, 28, 28)])
def test_scale_u8_is_numpys_rounded_product_bit_for_bit(shape, nthreads):
    x = (np.arange(int(np.prod(shape))) * 7 % 256).astype(np.uint8).reshape(shape)  # every byte value
    r = np.float32(1.0 / 255.0)
    out = nans(shape)
    K.scale_u8(x, out, r, nthreads)
    expected = np.multiply(x, r, out=np.empty(shape, np.float32), casting="unsafe")
    np.testing.assert_array_equal(out.view(np.int32), expected.view(np.int32))


def test_scale_u8_refuses_bad_arrays_by_name():
    x = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match=r"^x must have dtype uint8, got float32$"):
        K.scale_u8(x.astype(np.float32), np.zeros((2, 3), np.float32), 1.0)
    with pytest.raises(ValueError, match=r"^out has 5 elements, x has 6$"):
        K.scale_u8(x, np.zeros(5, np.float32), 1.0)
    with pytest.raises(ValueError, match=r"^out must have dtype float32, got float64$"):
        K.scale_u8(x, np.zeros((2, 3)), 1.0)


# -- how the kernels find SciPy's BLAS ------------------------------------------------------

_DENSE_CHECK = """
import numpy as np
from hpclars import kernels as K, reference as R
rng = np.random.default_rng(0)
x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((5, 84), (10, 84), (10,)))
out, ref = np.full((5, 10), np.nan, np.float32), np.zeros((5, 10), np.float32)
K.dense_forward(x, w, b, out)
R.dense_forward(x, w, b, ref)
assert np.allclose(out, ref, rtol=1e-5, atol=1e-6), abs(out - ref).max()
"""


@pytest.mark.parametrize("first", ["", "import scipy.linalg", "import scipy.linalg.cython_blas"])
def test_kernels_take_scipys_blas_without_importing_scipy_linalg(first):
    """Importing the kernels loads scipy.linalg.cython_blas from its file, not the whole
    scipy.linalg package (0.2-0.4 s in every process), and leaves nothing behind: a later
    import of scipy.linalg gets the package and its submodule as usual, and with either
    imported first the kernels still run on SciPy's sgemm."""
    import subprocess
    import sys

    code = f"""
import sys
{first}
before = "scipy.linalg" in sys.modules
import hpclars.kernels
after = {{m for m in ("scipy.linalg", "scipy.linalg.cython_blas") if m in sys.modules}}
{_DENSE_CHECK}
import scipy.linalg.cython_blas
import scipy.linalg
assert scipy.linalg.cython_blas is sys.modules["scipy.linalg.cython_blas"]
assert scipy.linalg.blas.sgemm(1.0, np.eye(3, dtype=np.float32), np.ones((3, 2), np.float32)).sum() == 6
print(before, sorted(after))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.split(" ", 1)
    if first:
        assert before == "True"  # imported first: the normal import, nothing borrowed
    else:
        assert before == "False" and after.strip() == "[]", proc.stdout
