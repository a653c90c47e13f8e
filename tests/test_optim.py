"""One optimizer step against formulas written out by hand, per optimizer and switch."""

import math

import numpy as np
import pytest

from hpclars import config as C
from hpclars.model import make_layout
from hpclars.optim import AdamFamily, Momentum, make_optimizer, trust_ratio
from hpclars.schedules import lr_at

# Two tensors: a weight and a bias, so per-tensor behaviour and bias switches show.
LAYOUT = make_layout((("w", (3, 4)), ("b", (3,))))


def cfg(**kw):
    return C.build(**kw)


def tensors(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(LAYOUT.size).astype(np.float32)
    g = rng.standard_normal(LAYOUT.size).astype(np.float32) * 0.1
    return w, g


def n(x):
    return math.sqrt(float(np.sum(np.asarray(x, np.float64) ** 2)))


def split(x):
    return [x[s].astype(np.float64) for s in LAYOUT.slices]


def run_steps(opt, w, grads, lrs):
    w = w.copy()
    for g, lr in zip(grads, lrs):
        opt.step(w, g.copy(), lr)
    return w


def test_sgd_one_step_is_table1_formula():
    c = cfg(optimizer="sgd", lr=0.1, weight_decay=0.01, momentum=0.9)
    w0, g = tensors()
    opt = make_optimizer(c, LAYOUT)
    w1 = run_steps(opt, w0, [g], [0.1])
    # v = m*0 + lr*(g + wd*w); w = w - v
    expected = w0.astype(np.float64) - 0.1 * (g + 0.01 * w0.astype(np.float64))
    np.testing.assert_allclose(w1, expected, rtol=1e-6, atol=1e-7)


def test_sgd_two_steps_use_momentum():
    c = cfg(optimizer="sgd", lr=0.1, weight_decay=0.0, momentum=0.5)
    w0, g = tensors()
    opt = make_optimizer(c, LAYOUT)
    w2 = run_steps(opt, w0, [g, g], [0.1, 0.05])
    v1 = 0.1 * g.astype(np.float64)
    v2 = 0.5 * v1 + 0.05 * g
    np.testing.assert_allclose(w2, w0 - v1 - v2, rtol=1e-6, atol=1e-7)


def test_nesterov_step():
    c = cfg(optimizer="sgd", lr=0.1, weight_decay=0.0, momentum=0.5, nesterov=True)
    w0, g = tensors()
    w2 = run_steps(make_optimizer(c, LAYOUT), w0, [g, g], [0.1, 0.1])
    d = 0.1 * g.astype(np.float64)
    v1 = d
    step1 = 0.5 * v1 + d
    v2 = 0.5 * v1 + d
    step2 = 0.5 * v2 + d
    np.testing.assert_allclose(w2, w0 - step1 - step2, rtol=1e-6, atol=1e-7)


def lars_expected(w0, g, lr, wd, eta, denom="sum", mode="scale", eps=0.0, no_adapt=(), no_wd=()):
    """One LARS step by hand; tensors in ``no_adapt`` take the plain rate, in ``no_wd`` no decay."""
    out = []
    for i, (w, gg) in enumerate(zip(split(w0), split(g))):
        d_wd = 0.0 if i in no_wd else wd
        d = gg + d_wd * w
        if i in no_adapt:
            rate = lr
        else:
            den = n(gg) + d_wd * n(w) if denom == "sum" else n(d)
            local = eta * n(w) / (den + eps)
            rate = min(local, lr) if mode == "clip" else lr * local
        out.append(w - rate * d)
    return np.concatenate(out)


@pytest.mark.parametrize("denom", ["sum", "norm"])
@pytest.mark.parametrize("mode", ["scale", "clip"])
def test_lars_one_step(denom, mode):
    c = cfg(optimizer="lars", lr=0.5, weight_decay=0.01, trust_coef=0.02, lars_denominator=denom,
            lars_mode=mode, lars_eps=1e-3)
    w0, g = tensors(1)
    w1 = run_steps(make_optimizer(c, LAYOUT), w0, [g], [0.5])
    np.testing.assert_allclose(w1, lars_expected(w0, g, 0.5, 0.01, 0.02, denom, mode, 1e-3),
                               rtol=1e-6, atol=1e-7)


def test_lars_clip_mode_caps_rate_at_lr():
    # eta large: local far above lr, so clip gives exactly plain SGD's step.
    c = cfg(optimizer="lars", lr=0.01, weight_decay=0.0, trust_coef=10.0, lars_mode="clip")
    w0, g = tensors(2)
    w1 = run_steps(make_optimizer(c, LAYOUT), w0, [g], [0.01])
    np.testing.assert_allclose(w1, w0 - 0.01 * g.astype(np.float64), rtol=1e-6, atol=1e-7)


def test_lars_momentum_after():
    c = cfg(optimizer="lars", lr=0.5, weight_decay=0.01, trust_coef=0.02, momentum=0.9,
            lars_momentum="after")
    w0, g = tensors(3)
    opt = make_optimizer(c, LAYOUT)
    w1 = run_steps(opt, w0, [g], [0.5])
    w2 = run_steps(opt, w1, [g], [0.25])
    # v = m*v + (g + wd*w); w -= lr*local*v, local from the current w and g.
    exp, v = [], []
    for w, gg in zip(split(w0), split(g)):
        d = gg + 0.01 * w
        local = 0.02 * n(w) / (n(gg) + 0.01 * n(w))
        v.append(d)
        exp.append(w - 0.5 * local * d)
    exp2 = []
    for w, gg, vv, wprev in zip(split(w1), split(g), v, exp):
        d = gg + 0.01 * w
        local = 0.02 * n(w) / (n(gg) + 0.01 * n(w))
        vv = 0.9 * vv + d
        exp2.append(w - 0.25 * local * vv)
    np.testing.assert_allclose(w1, np.concatenate(exp), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w2, np.concatenate(exp2), rtol=1e-5, atol=1e-7)


# Tensor 0 is the weight (3x4), tensor 1 the bias (3,).
@pytest.mark.parametrize("adapt_rule, wd_rule, no_adapt, no_wd", [
    ("bias", "none", {1}, set()),
    ("none", "bias", set(), {1}),
    ("bias", "bias", {1}, {1}),
    ("systemds", "none", {1}, set()),
])
def test_lars_bias_switches_are_independent(adapt_rule, wd_rule, no_adapt, no_wd):
    c = cfg(optimizer="lars", lr=0.5, weight_decay=0.01, trust_coef=0.02,
            exclude_from_adaptation=adapt_rule, exclude_from_weight_decay=wd_rule)
    w0, g = tensors(4)
    opt = make_optimizer(c, LAYOUT)
    w1 = run_steps(opt, w0, [g], [0.5])
    exp = lars_expected(w0, g, 0.5, 0.01, 0.02, no_adapt=no_adapt, no_wd=no_wd)
    np.testing.assert_allclose(w1, exp, rtol=1e-6, atol=1e-7)
    assert (opt.local[1] == 1.0) == (1 in no_adapt)
    assert opt.local[0] != 1.0


@pytest.mark.parametrize("scale, adapted", [(1e-4, False), (1.0, True)])
def test_lars_systemds_rule_gives_small_weights_the_global_rate(scale, adapted):
    # SystemDS nn/optim/lars.dml: a weight whose norm is below 1e-3 gets the plain rate,
    # with weight decay kept; epsilon 1e-8 in the denominator.
    c = cfg(optimizer="lars", lr=0.5, weight_decay=0.01, trust_coef=0.02, lars_eps=1e-8,
            exclude_from_adaptation="systemds")
    w0, g = tensors(6)
    w0[LAYOUT.slices[0]] *= np.float32(scale)
    assert (n(w0[LAYOUT.slices[0]]) < 1e-3) != adapted
    opt = make_optimizer(c, LAYOUT)
    w1 = run_steps(opt, w0, [g], [0.5])
    no_adapt = {1} if adapted else {0, 1}
    exp = lars_expected(w0, g, 0.5, 0.01, 0.02, eps=1e-8, no_adapt=no_adapt)
    np.testing.assert_allclose(w1, exp, rtol=1e-6, atol=1e-9)


def test_lamb_exclude_from_adaptation_bias():
    c = cfg(optimizer="lamb", lr=0.1, weight_decay=0.01, exclude_from_adaptation="bias")
    w0, g = tensors(7)
    opt = make_optimizer(c, LAYOUT)
    run_steps(opt, w0, [g], [0.1])
    assert opt.local[1] == 1.0 and opt.local[0] != 1.0


def test_retired_exclude_bias_maps_to_both_switches():
    d = C.normalize({"optimizer": "lars", "exclude_bias": True})
    assert d["exclude_from_adaptation"] == "bias" and d["exclude_from_weight_decay"] == "bias"
    d = C.normalize({"optimizer": "lars", "exclude_bias": False})
    assert d["exclude_from_adaptation"] == "none" and d["exclude_from_weight_decay"] == "none"
    assert d["init"] == "he-normal"


@pytest.mark.parametrize("zero", ["weight", "grad"])
def test_lars_zero_norm_falls_back_to_one(zero):
    c = cfg(optimizer="lars", lr=0.1, weight_decay=0.01, trust_coef=0.001)
    w0, g = tensors(5)
    s = LAYOUT.slices[1]
    (w0 if zero == "weight" else g)[s] = 0
    opt = make_optimizer(c, LAYOUT)
    w1 = run_steps(opt, w0, [g], [0.1])
    assert opt.local[1] == 1.0
    assert opt.local[0] != 1.0
    np.testing.assert_allclose(w1[s], w0[s] - 0.1 * (g[s] + 0.01 * w0[s]), rtol=1e-6, atol=1e-8)


def test_trust_ratio_helper():
    assert trust_ratio(2.0, 1.0, 4.0, coef=0.5) == 0.25
    assert trust_ratio(0.0, 1.0, 4.0) == 1.0
    assert trust_ratio(2.0, 0.0, 4.0) == 1.0
    assert trust_ratio(2.0, 1.0, 3.0, eps=1.0) == 0.5


def test_sgd_is_lars_with_trust_ratio_off():
    lars_cfg = cfg(optimizer="lars", lr=0.1, weight_decay=0.01, momentum=0.9)
    sgd_cfg = cfg(optimizer="sgd", lr=0.1, weight_decay=0.01, momentum=0.9)
    w0, g = tensors(6)
    _, g2 = tensors(7)
    a = run_steps(Momentum(LAYOUT, momentum=0.9, weight_decay=0.01, trust=None), w0, [g, g2], [0.1, 0.09])
    b = run_steps(make_optimizer(sgd_cfg, LAYOUT), w0, [g, g2], [0.1, 0.09])
    np.testing.assert_array_equal(a, b)
    c = run_steps(make_optimizer(lars_cfg, LAYOUT), w0, [g, g2], [0.1, 0.09])
    assert not np.allclose(a, c)


def adam_expected(w0, g, lr, kind, wd, b1=0.9, b2=0.999, eps=1e-6):
    out = []
    for w, gg in zip(split(w0), split(g)):
        if kind == "adam":
            gg = gg + wd * w
        m = (1 - b1) * gg
        v = (1 - b2) * gg * gg
        r = (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)
        u = r if kind == "adam" else r + wd * w
        ratio = n(w) / n(u) if kind == "lamb" else 1.0
        out.append(w - lr * ratio * u)
    return np.concatenate(out)


@pytest.mark.parametrize("kind", ["lamb", "adam", "adamw"])
def test_adam_family_one_step(kind):
    c = cfg(optimizer=kind, lr=0.01, weight_decay=0.1)
    w0, g = tensors(8)
    opt = make_optimizer(c, LAYOUT)
    assert isinstance(opt, AdamFamily)
    w1 = run_steps(opt, w0, [g], [0.01])
    np.testing.assert_allclose(w1, adam_expected(w0, g, 0.01, kind, 0.1), rtol=1e-5, atol=1e-7)


def test_lamb_second_step_bias_correction():
    c = cfg(optimizer="lamb", lr=0.01, weight_decay=0.0, beta1=0.8, beta2=0.9, adam_eps=1e-8)
    w0, g = tensors(9)
    _, g2 = tensors(10)
    opt = make_optimizer(c, LAYOUT)
    w1 = run_steps(opt, w0, [g], [0.01])
    w2 = run_steps(opt, w1, [g2], [0.02])
    exp, ratios = [], []
    for w, ga, gb in zip(split(w1), split(g), split(g2)):
        m = 0.8 * (0.2 * ga) + 0.2 * gb
        v = 0.9 * (0.1 * ga * ga) + 0.1 * gb * gb
        r = (m / (1 - 0.8 ** 2)) / (np.sqrt(v / (1 - 0.9 ** 2)) + 1e-8)
        ratios.append(n(w) / n(r))
        exp.append(w - 0.02 * ratios[-1] * r)
    np.testing.assert_allclose(w2, np.concatenate(exp), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(opt.local, ratios, rtol=1e-5)


def test_lamb_zero_weight_falls_back_to_one():
    c = cfg(optimizer="lamb", lr=0.01, weight_decay=0.0)
    w0, g = tensors(11)
    w0[LAYOUT.slices[1]] = 0
    opt = make_optimizer(c, LAYOUT)
    run_steps(opt, w0, [g], [0.01])
    assert opt.local[1] == 1.0


def test_state_dict_round_trip_continues_identically():
    c = cfg(optimizer="lamb", lr=0.01)
    w0, g = tensors(12)
    a = make_optimizer(c, LAYOUT)
    wa = run_steps(a, w0, [g, g], [0.01, 0.01])
    b = make_optimizer(c, LAYOUT)
    wb = run_steps(b, w0, [g], [0.01])
    state = b.state_dict()
    b2 = make_optimizer(c, LAYOUT)
    b2.load_state_dict(state)
    wb = run_steps(b2, wb, [g], [0.01])
    np.testing.assert_array_equal(wa, wb)


def test_schedules():
    base = dict(batch_size=600, epochs=10, lr=1.0)  # 100 steps per epoch, 1000 in all
    assert lr_at(cfg(**base, schedule="inverse-time", lr_decay=0.01), 100) == pytest.approx(0.5)
    assert lr_at(cfg(**base, schedule="constant"), 999) == 1.0
    warm = cfg(**base, schedule="poly", warmup_epochs=1, poly_power=2)
    assert lr_at(warm, 0) == pytest.approx(0.01)
    assert lr_at(warm, 99) == pytest.approx(1.0)
    assert lr_at(warm, 100) == pytest.approx(1.0)
    assert lr_at(warm, 100 + 450) == pytest.approx(0.25)
    cos = cfg(**base, schedule="cosine", warmup_epochs=0)
    assert lr_at(cos, 500) == pytest.approx(0.5)
    assert lr_at(cfg(**base, lr_scaling="linear", base_batch_size=300, schedule="constant"), 0) == 2.0
    assert lr_at(cfg(**base, lr_scaling="sqrt", base_batch_size=150, schedule="constant"), 0) == 2.0


def test_scaled_presets_are_the_tuned_ones_with_the_sqrt_rule():
    """lars-scaled / lamb-scaled: identical to the tuned presets at 8192, lr * sqrt(B / 8192) elsewhere."""
    from hpclars.config import build, field_names, scaled_lr

    for name in ("lars", "lamb"):
        tuned, scaled = build(f"{name}-tuned", batch_size=8192), build(f"{name}-scaled", batch_size=8192)
        differ = {f for f in field_names() if getattr(tuned, f) != getattr(scaled, f)}
        assert differ == {"preset", "lr_scaling", "base_batch_size"}
        assert scaled_lr(scaled) == tuned.lr
        assert scaled_lr(build(f"{name}-scaled", batch_size=2048)) == pytest.approx(tuned.lr / 2)


def test_presets_hold_only_what_differs_from_the_defaults():
    """A preset is a set of overrides, not a second copy of the defaults; the one exception is
    the optimizer a tuned preset was tuned for, which it always names (sgd-tuned: sgd)."""
    defaults = C.Config()
    for name, overrides in C.PRESETS.items():
        same = {k for k, v in overrides.items() if getattr(defaults, k) == v and k != "optimizer"}
        assert same == set(), name


@pytest.mark.parametrize("preset,trial", [
    ("lars-tuned", "lars-b8192/trial-01.h5"),
    ("lamb-tuned", "lamb-b28000/trial-05.h5"),
    ("sgd-tuned", "sgd-b28000/trial-03.h5"),
    ("adam-tuned", "adam-wide-b28000/trial-04.h5"),
    ("adamw-tuned", "adamw-wide-b28000/trial-04.h5"),
    ("fast-99", "../tune-ttt/adam-b512-n2/trial-07.h5"),
])
def test_tuned_presets_are_the_committed_trials_they_cite(preset, trial):
    """A preset holds exactly the settings of the tuning trial it was taken from (results/tune/)."""
    from pathlib import Path

    from hpclars.config import build
    from hpclars.log import read_log

    log = read_log(Path(__file__).resolve().parents[1] / "results" / "tune" / trial)
    assert log.status in ("completed", "target_reached")
    # What a trial sets besides the preset's settings: run control, the batch and seed it was
    # tuned at, and how often it was evaluated, which does not change the training (fast-99
    # names its batch, so for it the batch must match too).
    run_control = {*C.RUN_CONTROL, "seed", "eval_every", "eval_every_steps"}
    run_control |= {"batch_size"} if "batch_size" not in C.PRESETS[preset] else set()
    cfg = build(preset)
    differ = {k for k, v in log.config.items() if k not in run_control and getattr(cfg, k) != v}
    assert differ == set()


# --------------------------------------------------------------------------
# Edge values a user can set or a schedule can reach: every optimizer and variant
# --------------------------------------------------------------------------

VARIANTS = [
    dict(optimizer="sgd"), dict(optimizer="sgd", nesterov=True),
    *[dict(optimizer="lars", lars_denominator=d, lars_mode=m, lars_momentum=p, nesterov=nv)
      for d in C.LARS_DENOMINATORS for m in C.LARS_MODES for p in C.LARS_MOMENTUM for nv in (False, True)],
    *[dict(optimizer=o, exclude_from_adaptation=a, exclude_from_weight_decay=w)
      for o in ("lars", "lamb") for a in C.ADAPTATION_EXCLUDES for w in C.WEIGHT_DECAY_EXCLUDES],
    dict(optimizer="lars", lars_eps=1e-3), dict(optimizer="lamb"), dict(optimizer="adam"),
    dict(optimizer="adamw"),
]
EDGES = [
    dict(momentum=0.0), dict(weight_decay=0.0), dict(beta1=0.0), dict(beta2=0.0),
    dict(beta1=0.0, beta2=0.0), dict(beta1=0.9999999, beta2=0.9999999), dict(momentum=0.9999999),
    dict(adam_eps=C.FLOAT32_TINY), dict(trust_coef=1e-12), dict(lr=1e-30),
]


def _ids(d):
    return ",".join(f"{k}={v}" for k, v in d.items())


def _steps(c, w, grads, lrs):
    opt = make_optimizer(c, LAYOUT)
    w = run_steps(opt, w, grads, lrs)
    return opt, w


@pytest.mark.parametrize("edge", EDGES, ids=_ids)
@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_edge_settings_keep_everything_finite(variant, edge):
    c = cfg(**{**variant, **edge})
    w0, g = tensors(20)
    zero = np.zeros_like(g)
    grads = [g, zero, g * 1e-30, zero, -g]  # zero and denormal-sized gradients between real ones
    opt, w = _steps(c, w0, grads, [c.lr] * len(grads))
    assert opt.nonfinite(w) == "", (variant, edge)
    assert np.all(np.isfinite(opt.local)) and np.all(np.isfinite(opt.g_norm))


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_zero_learning_rate_changes_nothing(variant):
    # Where a schedule ends: poly decay with a high power underflows to exactly 0.
    c = cfg(**variant, schedule="poly", poly_power=1000.0, epochs=1, batch_size=6000)
    assert lr_at(c, C.total_steps(c) - 1) == 0.0
    w0, g = tensors(21)
    opt, w = _steps(c, w0, [g, g], [0.0, 0.0])
    np.testing.assert_array_equal(w, w0)
    assert opt.nonfinite(w) == ""


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
@pytest.mark.parametrize("where", ["weights", "all"])
def test_zero_gradient_and_no_decay_changes_nothing(variant, where):
    # Zero gradients (a dead layer) with zero weights (a bias at init) or not: 0/0 nowhere.
    c = cfg(**variant, weight_decay=0.0)
    w0, _ = tensors(22)
    if where == "all":
        w0[:] = 0
    opt, w = _steps(c, w0, [np.zeros_like(w0)] * 3, [c.lr] * 3)
    np.testing.assert_array_equal(w, w0)
    assert opt.nonfinite(w) == ""
    np.testing.assert_array_equal(opt.local, 1.0)  # zero norms: the trust ratio falls back to 1


def test_momentum_zero_is_plain_gradient_descent():
    c = cfg(optimizer="sgd", lr=0.1, weight_decay=0.01, momentum=0.0)
    w0, g = tensors(23)
    _, w = _steps(c, w0, [g, g], [0.1, 0.1])
    w1 = w0 - 0.1 * (g + 0.01 * w0)
    np.testing.assert_allclose(w, w1 - 0.1 * (g + 0.01 * w1), rtol=1e-6)


@pytest.mark.parametrize("kind", ["adam", "adamw", "lamb"])
def test_betas_zero_is_sign_descent(kind):
    # beta1 = beta2 = 0: m = g, v = g^2, no bias correction, so u = g / (|g| + eps).
    c = cfg(optimizer=kind, lr=0.01, weight_decay=0.0, beta1=0.0, beta2=0.0, adam_eps=1e-8)
    w0, g = tensors(24)
    g[0] = 0  # a zero gradient entry: 0 / (0 + eps) = 0, not 0/0
    _, w = _steps(c, w0, [g], [0.01])
    out = []
    for wt, gt in zip(split(w0), split(g)):
        u = gt / (np.abs(gt) + 1e-8)
        ratio = n(wt) / n(u) if kind == "lamb" else 1.0
        out.append(wt - 0.01 * ratio * u)
    np.testing.assert_allclose(w, np.concatenate(out), rtol=1e-5, atol=1e-7)
    assert w[0] == w0[0]


def test_lars_clip_at_zero_learning_rate_reports_factor_one():
    c = cfg(optimizer="lars", lars_mode="clip", trust_coef=0.01)
    w0, g = tensors(25)
    opt, w = _steps(c, w0, [g], [0.0])
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(opt.local, 1.0)


@pytest.mark.parametrize("buffer", ["params", "state"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_names_the_buffer_and_tensor(buffer, value):
    c = cfg(optimizer="adam")
    w0, g = tensors(26)
    opt, w = _steps(c, w0, [g], [0.01])
    assert opt.nonfinite(w) == ""
    bias = LAYOUT.slices[1]
    if buffer == "params":
        w[bias.start + 1] = value
        assert opt.nonfinite(w) == "parameters of b"
    else:
        opt.state["v"][bias.start] = value  # an inf v hides from the weights: u = m / inf = 0
        assert opt.nonfinite(w) == "state v of b"


@pytest.mark.parametrize("value", [0.0, 1e-39, -1e-6, float("nan")])
def test_adam_eps_that_makes_the_update_undefined_is_refused(value):
    with pytest.raises(C.ConfigError, match=r"^--adam-eps: must be >= 2\*\*-126 = 1.18e-38"):
        cfg(optimizer="adam", adam_eps=value)


def test_optimizers_refuse_an_unknown_mode_once_at_construction():
    with pytest.raises(ValueError, match=r"^lars_momentum: 'before' is not one of inside, after$"):
        Momentum(LAYOUT, momentum=0.9, weight_decay=0.0, order="before")
    with pytest.raises(ValueError, match=r"^exclude_from_adaptation: 'biases' is not one of none, bias, systemds$"):
        AdamFamily(LAYOUT, 0.9, 0.999, 1e-6, 0.0, decoupled=True, trust=True, exclude_from_adaptation="biases")


# --------------------------------------------------------------------------
# The step computes in preallocated scratch (no temporaries); its values are those of the
# plain float32 expressions, bit for bit, and it never writes into the gradient.
# --------------------------------------------------------------------------

def _f32_momentum(w, g, v, lr, m, wd, nesterov, order):
    f = np.float32
    d = g + f(wd) * w
    if order == "inside":
        u = f(lr) * d
        v = f(m) * v + u
        u = f(m) * v + u if nesterov else v
    else:
        v = f(m) * v + d
        u = f(m) * v + d if nesterov else v
        u = f(lr) * u
    return w - u, v


@pytest.mark.parametrize("order", C.LARS_MOMENTUM)
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_step_is_the_float32_expressions_bit_for_bit(order, nesterov):
    c = cfg(optimizer="sgd", weight_decay=0.01, momentum=0.9, nesterov=nesterov, lars_momentum=order)
    opt = make_optimizer(c, LAYOUT)
    w, g = tensors(30)
    w_ref, v_ref = w.copy(), np.zeros_like(w)
    for lr in (0.1, 0.05, 0.02):
        g_before = g.copy()
        opt.step(w, g, lr)
        np.testing.assert_array_equal(g, g_before)
        w_ref, v_ref = _f32_momentum(w_ref, g, v_ref, lr, 0.9, 0.01, nesterov, order)
        np.testing.assert_array_equal(w, w_ref)
        np.testing.assert_array_equal(opt.state["momentum"], v_ref)
        g = g[::-1].copy()


@pytest.mark.parametrize("kind", ["adam", "adamw", "lamb"])
def test_adam_family_step_is_the_float32_expressions_bit_for_bit(kind):
    c = cfg(optimizer=kind, weight_decay=0.01)
    opt = make_optimizer(c, LAYOUT)
    w, g = tensors(31)
    f = np.float32
    b1, b2, eps = f(c.beta1), f(c.beta2), f(c.adam_eps)
    w_ref, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for t, lr in enumerate((0.5, 0.25), start=1):  # large: a last-bit change in u shows in w
        g_before = g.copy()
        opt.step(w, g, lr)
        np.testing.assert_array_equal(g, g_before)
        for i, s in enumerate(LAYOUT.slices):
            gi = g[s] + f(0.01) * w_ref[s] if kind == "adam" else g[s]
            m[s] = b1 * m[s] + (1 - b1) * gi
            v[s] = b2 * v[s] + (1 - b2) * gi * gi
            u = (m[s] / f(1 - c.beta1 ** t)) / (np.sqrt(v[s] / f(1 - c.beta2 ** t)) + eps)
            if kind != "adam":
                u = u + f(0.01) * w_ref[s]
            ratio = trust_ratio(n(w_ref[s]), n(u), n(u)) if kind == "lamb" else 1.0
            w_ref[s] = w_ref[s] - f(lr * ratio) * u
        np.testing.assert_array_equal(w, w_ref)
        np.testing.assert_array_equal(opt.state["m"], m)
        g = g[::-1].copy()


# --------------------------------------------------------------------------
# SGD and LARS update every tensor in one kernel call: the same values as tensor by tensor
# --------------------------------------------------------------------------

MOMENTUM_VARIANTS = [v for v in VARIANTS if v["optimizer"] in ("sgd", "lars")]


@pytest.mark.parametrize("variant", MOMENTUM_VARIANTS, ids=_ids)
def test_momentum_one_call_step_is_the_tensor_by_tensor_loop_bit_for_bit(variant):
    # The model's own layout (ten tensors, 156 to 94080 entries), with a zero-gradient
    # tensor and a tiny one (below the SystemDS rule's 1e-3) so exemptions take both ways.
    from hpclars.model import LAYOUT as MODEL_LAYOUT, init_params
    from hpclars.optim import Optimizer

    c = cfg(**variant)
    w0 = init_params(np.zeros(MODEL_LAYOUT.size, np.float32), 3)
    w0[MODEL_LAYOUT.slices[0]] *= 1e-5
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(MODEL_LAYOUT.size).astype(np.float32) * 0.01 for _ in range(3)]
    grads[1][MODEL_LAYOUT.slices[2]] = 0
    one_call, loop = make_optimizer(c, MODEL_LAYOUT), make_optimizer(c, MODEL_LAYOUT)
    assert isinstance(one_call, Momentum)
    wa, wb = w0.copy(), w0.copy()
    for g, lr in zip(grads, (c.lr, 0.5 * c.lr, 3.0)):
        one_call.step(wa, g.copy(), lr)
        Optimizer.step(loop, wb, g.copy(), lr)
        np.testing.assert_array_equal(wa.view(np.int32), wb.view(np.int32))
        np.testing.assert_array_equal(one_call.state["momentum"].view(np.int32),
                                      loop.state["momentum"].view(np.int32))
        for name in ("w_norm", "g_norm", "local"):
            np.testing.assert_array_equal(getattr(one_call, name), getattr(loop, name), err_msg=name)
    assert not np.array_equal(wa, w0)
