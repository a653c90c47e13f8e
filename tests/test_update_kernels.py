"""The optimizer update kernels (kernels/update.pyx) against their NumPy references.

momentum_update must equal hpclars.reference.momentum_update bit for bit (the module is built
without FMA contraction so that it rounds as NumPy does); sumsq must equal the float64 sum
of squares to float64 rounding.  Sizes cover empty, shorter than one vector, not a multiple
of eight, and the model's largest tensor (fc1.w, 94080 entries).
"""

import numpy as np
import pytest

from hpclars import kernels as K
from hpclars import reference as R

SIZES = [0, 1, 7, 8, 9, 1000, 94080]


@pytest.mark.parametrize("n", SIZES)
def test_sumsq_is_the_float64_sum_of_squares(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 3
    assert K.sumsq(x) == pytest.approx(R.sumsq(x), rel=1e-13, abs=0)
    assert K.sumsq(x.reshape(1, -1)) == K.sumsq(x)  # any shape


@pytest.mark.parametrize("n", [*SIZES, 2047, 2049, 4101])
def test_sumsq_adds_in_eight_running_sums_in_order(n):
    # The documented order, exactly: sum j holds x[i]^2 for i = j mod 8 over the whole groups of
    # eight, added one by one (np.cumsum is sequential); the leftover entries go to sum 0; then
    # ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)).  A vector form that regrouped the
    # additions would differ from this in the last bits for most sizes.
    x = np.random.default_rng(n + 1).standard_normal(n).astype(np.float32) * 3
    sq = x.astype(np.float64) ** 2
    whole = n // 8 * 8
    s = [float(np.cumsum(sq[j:whole:8])[-1]) if whole else 0.0 for j in range(8)]
    for t in sq[whole:]:
        s[0] += float(t)
    assert K.sumsq(x) == ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


def test_sumsq_propagates_nan_and_inf_and_keeps_float32_overflow_finite():
    x = np.ones(20, np.float32)
    x[13] = np.inf
    assert K.sumsq(x) == np.inf
    x[3] = np.nan
    assert np.isnan(K.sumsq(x))
    big = np.full(10, 3e38, np.float32)  # (3e38)^2 overflows float32, not float64
    assert K.sumsq(big) == pytest.approx(9e77, rel=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay", [0.0, 1e-4])
def test_momentum_update_is_the_reference_bit_for_bit(n, after, nesterov, decay):
    rng = np.random.default_rng(n + 10 * after + 20 * nesterov)
    w, g, v = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    w_ref, v_ref, g_before = w.copy(), v.copy(), g.copy()
    for rate in (0.1, 0.0123):
        K.momentum_update(w, g, v, decay, rate, 0.9, nesterov, after)
        R.momentum_update(w_ref, g, v_ref, decay, rate, 0.9, nesterov, after)
        np.testing.assert_array_equal(w, w_ref)
        np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(g, g_before)


def test_momentum_update_changes_what_it_should():
    # One step from v = 0, inside: v = rate*(g + decay*w), w -= v; a wrong order or a missing
    # term moves these by far more than float32 rounding.
    w, g, v = np.array([1.0, -2.0], np.float32), np.array([0.5, 0.25], np.float32), np.zeros(2, np.float32)
    K.momentum_update(w, g, v, 0.1, 0.2, 0.9)
    np.testing.assert_allclose(v, [0.2 * (0.5 + 0.1), 0.2 * (0.25 - 0.2)], rtol=1e-6)
    np.testing.assert_allclose(w, [1.0 - 0.12, -2.0 - 0.01], rtol=1e-6)
    K.momentum_update(w, g, v, 0.0, 1.0, 0.5, after=True)  # after: v = 0.5 v + g, w -= 1.0 * v
    np.testing.assert_allclose(v, [0.5 * 0.12 + 0.5, 0.5 * 0.01 + 0.25], rtol=1e-6)


def test_momentum_update_propagates_nan():
    w, g, v = np.ones(5, np.float32), np.ones(5, np.float32), np.zeros(5, np.float32)
    g[2] = np.nan
    K.momentum_update(w, g, v, 1e-4, 0.1, 0.9)
    assert np.isnan(w[2]) and np.isnan(v[2]) and np.isfinite(np.delete(w, 2)).all()


def _arrays(n=4):
    return np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)


@pytest.mark.parametrize("bad, message", [
    (lambda w, g, v: (w.astype(np.float64), g, v), r"^w must have dtype float32, got float64$"),
    (lambda w, g, v: (w.reshape(2, 2), g.reshape(2, 2), v.reshape(2, 2)), r"^w must be 1-D, got shape \(2, 2\)$"),
    (lambda w, g, v: (w, g[:3], v), r"^g has shape \(3,\), expected \(4,\)$"),
    (lambda w, g, v: (w, g, np.zeros(8, np.float32)[::2]), r"^v must be C-contiguous$"),
    (lambda w, g, v: (w, g, np.frombuffer(v.tobytes(), np.float32)), r"^v is an output and must be writeable$"),
])
def test_momentum_update_refuses_bad_arrays_by_name(bad, message):
    w, g, v = bad(*_arrays())
    with pytest.raises(ValueError, match=message):
        K.momentum_update(w, g, v, 0.0, 0.1, 0.9)


def test_sumsq_refuses_another_dtype():
    with pytest.raises(ValueError, match=r"^x must have dtype float32, got float64$"):
        K.sumsq(np.ones(3))


def _segments(sizes):
    return np.array([0, *np.cumsum(sizes)], dtype=np.int64)


SEGMENTS = [(), (0,), (5, 0, 17), (150, 6, 2400, 16, 94080, 120, 10080, 84, 840, 10)]


@pytest.mark.parametrize("sizes", SEGMENTS)
def test_sumsq_segments_is_sumsq_of_each_segment_bit_for_bit(sizes):
    off = _segments(sizes)
    x = np.random.default_rng(len(sizes)).standard_normal(off[-1]).astype(np.float32)
    out = np.full(len(sizes), -1.0)
    K.sumsq_segments(x, off, out)
    assert out.tolist() == [K.sumsq(x[a:b]) if b > a else 0.0 for a, b in zip(off[:-1], off[1:])]


@pytest.mark.parametrize("sizes", SEGMENTS)
@pytest.mark.parametrize("after, nesterov", [(False, False), (True, False), (False, True), (True, True)])
def test_momentum_update_segments_is_the_one_tensor_kernel_bit_for_bit(sizes, after, nesterov):
    off = _segments(sizes)
    rng = np.random.default_rng(7)
    w, g, v = (rng.standard_normal(off[-1]).astype(np.float32) for _ in range(3))
    decay = rng.uniform(0, 1e-3, len(sizes)).astype(np.float32)
    rate = rng.uniform(0, 0.1, len(sizes)).astype(np.float32)
    w2, v2 = w.copy(), v.copy()
    K.momentum_update_segments(w, g, v, off, decay, rate, 0.9, nesterov, after)
    for i, (a, b) in enumerate(zip(off[:-1], off[1:])):
        if b > a:
            K.momentum_update(w2[a:b], g[a:b], v2[a:b], decay[i], rate[i], 0.9, nesterov, after)
    np.testing.assert_array_equal(w.view(np.int32), w2.view(np.int32))
    np.testing.assert_array_equal(v.view(np.int32), v2.view(np.int32))


@pytest.mark.parametrize("sizes", SEGMENTS)
@pytest.mark.parametrize("after, nesterov", [(False, False), (True, True)])
def test_momentum_update_segments_takes_the_norms_in_its_own_pass_bit_for_bit(sizes, after, nesterov):
    # With w_sumsq and g_sumsq: the same w and v as without, and the norms sumsq_segments gives
    # on w (before the update) and g; sizes cross the kernel's 2048-float pieces (2400, 94080).
    off = _segments(sizes)
    rng = np.random.default_rng(11)
    w, g, v = (rng.standard_normal(off[-1]).astype(np.float32) for _ in range(3))
    decay = rng.uniform(0, 1e-3, len(sizes)).astype(np.float32)
    rate = rng.uniform(0, 0.1, len(sizes)).astype(np.float32)
    w_ss, g_ss = np.zeros(len(sizes)), np.zeros(len(sizes))
    K.sumsq_segments(w, off, w_ss)
    K.sumsq_segments(g, off, g_ss)
    w2, v2, g_before = w.copy(), v.copy(), g.copy()
    got_w, got_g = np.full(len(sizes), -1.0), np.full(len(sizes), -1.0)
    K.momentum_update_segments(w, g, v, off, decay, rate, 0.9, nesterov, after, got_w, got_g)
    K.momentum_update_segments(w2, g, v2, off, decay, rate, 0.9, nesterov, after)
    assert got_w.tolist() == w_ss.tolist() and got_g.tolist() == g_ss.tolist()
    np.testing.assert_array_equal(w.view(np.int32), w2.view(np.int32))
    np.testing.assert_array_equal(v.view(np.int32), v2.view(np.int32))
    np.testing.assert_array_equal(g, g_before)
    if off[-1]:
        assert not np.array_equal(w, g_before)  # the update ran


def test_momentum_update_segments_wants_both_norm_outputs_or_neither():
    w, off = np.ones(4, np.float32), np.array([0, 1, 4], np.int64)
    args = (w, w.copy(), w.copy(), off, np.zeros(2, np.float32), np.ones(2, np.float32), 0.9, False, False)
    with pytest.raises(ValueError, match=r"^w_sumsq and g_sumsq go together: give both or neither$"):
        K.momentum_update_segments(*args, np.zeros(2))
    with pytest.raises(ValueError, match=r"^g_sumsq has shape \(3,\), expected \(2,\)$"):
        K.momentum_update_segments(*args, np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"^w_sumsq must have dtype float64, got float32$"):
        K.momentum_update_segments(*args, np.zeros(2, np.float32), np.zeros(2))
    assert (w == 1).all()


@pytest.mark.parametrize("offsets, message", [
    (np.array([0, 3], np.int32), r"^offsets must have dtype int64, got int32$"),
    (np.array([1, 4], np.int64), r"^offsets must rise from 0 to the length 4, got \[1, 4\]$"),
    (np.array([0, 3], np.int64), r"^offsets must rise from 0 to the length 4, got \[0, 3\]$"),
    (np.array([0, 3, 2, 4], np.int64), r"^offsets must rise from 0 to the length 4, got \[0, 3, 2, 4\]$"),
    (np.zeros(0, np.int64), r"^offsets must be 1-D with at least one entry, got shape \(0,\)$"),
])
def test_segment_kernels_refuse_bad_offsets_before_touching_anything(offsets, message):
    w, g, v = np.ones(4, np.float32), np.ones(4, np.float32), np.ones(4, np.float32)
    k = max(len(offsets) - 1, 0)
    with pytest.raises(ValueError, match=message):
        K.sumsq_segments(w, offsets, np.zeros(k))
    with pytest.raises(ValueError, match=message):
        K.momentum_update_segments(w, g, v, offsets, np.zeros(k, np.float32), np.ones(k, np.float32), 0.9)
    assert (w == 1).all() and (v == 1).all()


def test_segment_kernels_refuse_a_wrong_length_of_decay_rate_or_out():
    w, off = np.ones(4, np.float32), np.array([0, 1, 4], np.int64)
    with pytest.raises(ValueError, match=r"^out has shape \(3,\), expected \(2,\)$"):
        K.sumsq_segments(w, off, np.zeros(3))
    with pytest.raises(ValueError, match=r"^rate has shape \(1,\), expected \(2,\)$"):
        K.momentum_update_segments(w, w.copy(), w.copy(), off, np.zeros(2, np.float32), np.ones(1, np.float32), 0.9)
