"""Optimizers: SGD, LARS, LAMB, Adam and AdamW over a flat parameter buffer.

Every optimizer updates each parameter tensor (each weight and each bias is its
own "layer") through views into one contiguous float32 buffer, so it neither
knows nor cares that the gradient was averaged over MPI ranks: the trainer
hands it the already-reduced gradient and every rank applies the same update.

Each optimizer gets its hyperparameters explicitly (optax style); :func:`make_optimizer` is
the one place that reads them from a :class:`hpclars.config.Config`, and every mode string
(which tensors to exempt, LARS's denominator, clip or scale, where the momentum goes, which
Adam variant) is parsed once, at construction, never per tensor per step.

Shared pieces are defined once and composed: :func:`trust_ratio` (used by LARS and LAMB),
:class:`LarsRate` (LARS's local rate: denominator, coefficient, clipping), the momentum
update (:func:`hpclars.kernels.momentum_update`: weight decay, the rate, the momentum buffer
"inside" or "after" the rate, Nesterov, in one pass per tensor; its NumPy oracle is
:func:`hpclars.reference.momentum_update`), and the learning-rate schedule in
:mod:`hpclars.schedules`.  SGD is LARS with the trust ratio switched off
(``Momentum(trust=None)``).  Norms are float64 sums of squares (:func:`hpclars.kernels.sumsq`).

Zero norms: the trust ratio falls back to 1 when the weight norm or the norm it
is compared with is 0 (a bias initialised to zero, or a tensor whose gradient
vanished): there is nothing to measure the update against, so the global rate
applies unchanged.  This is the rule of TensorFlow's LARSOptimizer (tf.contrib.opt).
SystemDS's ``nn/optim/lars.dml`` instead gives 1-D tensors and tensors with
||w|| < 1e-3 the global rate (``exclude_from_adaptation="systemds"``).

Non-finite values: :meth:`Optimizer.nonfinite` says where parameters or
state went NaN or inf, so the trainer can end the run as diverged; settings
that would make an update undefined (``adam_eps`` 0: 0/0 where a gradient
entry is 0) are refused by :func:`hpclars.config.validate`.

Deliberately left out: gradient clipping and anything MPI.
"""

import math

import numpy as np

from . import kernels
from .config import (ADAPTATION_EXCLUDES, LARS_DENOMINATORS, LARS_MODES, LARS_MOMENTUM, SYSTEMDS_MIN_NORM,
                     WEIGHT_DECAY_EXCLUDES)


def norm(x):
    """Euclidean norm of a float32, C-contiguous array of any shape, accumulated in float64
    (:func:`hpclars.kernels.sumsq`, one pass, no copy).  Returns a Python float."""
    return math.sqrt(kernels.sumsq(x))


def _finite(x):
    """True if no entry of ``x`` is NaN or inf (max and min propagate NaN)."""
    return math.isfinite(float(x.max())) and math.isfinite(float(x.min()))


def trust_ratio(w_norm, check_norm, denominator, coef=1.0, eps=0.0):
    """``coef * w_norm / (denominator + eps)``, or 1.0 if ``w_norm`` or ``check_norm`` is 0.

    ``check_norm`` is the norm whose vanishing disables adaptation: the gradient
    norm for LARS (paper: "either norm is 0"), the update norm for LAMB.
    """
    if w_norm == 0.0 or check_norm == 0.0 or denominator + eps == 0.0:
        return 1.0
    return coef * w_norm / (denominator + eps)


class Optimizer:
    """Base class: walks the tensors and records per-tensor diagnostics.

    layout: the :class:`hpclars.model.Layout` of the flat buffer.  weight_decay: the L2
    coefficient (>= 0).  exclude_from_weight_decay: "none" or "bias" (1-D tensors get none).
    exclude_from_adaptation: "none", "bias" or "systemds" (see :func:`_exempt`).  Raises
    ValueError for any other string.

    After each :meth:`step`, ``w_norm``, ``g_norm`` and ``local`` hold, per
    tensor, the weight norm before the update, the gradient norm, and the
    factor the global learning rate was multiplied by (1 for plain SGD).
    """

    state_names = ()
    scratch_buffers = 0  # float32 scratch buffers per tensor that ``_update`` writes into

    def __init__(self, layout, weight_decay, exclude_from_weight_decay="none", exclude_from_adaptation="none"):
        _one_of("exclude_from_weight_decay", exclude_from_weight_decay, WEIGHT_DECAY_EXCLUDES)
        _one_of("exclude_from_adaptation", exclude_from_adaptation, ADAPTATION_EXCLUDES)
        self.layout = layout
        n = layout.size
        self.state = {name: np.zeros(n, dtype=np.float32) for name in self.state_names}
        # Scratch for the NumPy parts of an update: results are written with out= in the order
        # the formulas give, so a step makes no temporaries and its values are those of the
        # plain expressions, bit for bit.
        self._tmp = [tuple(np.empty(sl.stop - sl.start, np.float32) for _ in range(self.scratch_buffers))
                     for sl in layout.slices]
        self.t = 0
        k = len(layout.names)
        self.w_norm = np.zeros(k)
        self.g_norm = np.zeros(k)
        self.local = np.ones(k)
        # Parsed once: each tensor's weight decay, and whether it may ever get a trust ratio.
        no_decay = exclude_from_weight_decay == "bias"
        self.decay = tuple(0.0 if no_decay and bias else weight_decay for bias in layout.is_bias)
        self.adaptable = tuple(not (exclude_from_adaptation != "none" and bias) for bias in layout.is_bias)
        self.min_norm = SYSTEMDS_MIN_NORM if exclude_from_adaptation == "systemds" else 0.0

    def _adapts(self, i):
        """Whether tensor ``i`` gets a trust ratio this step (else the plain global rate).

        ``exclude_from_adaptation``: none adapts every tensor (the paper's
        equations); bias exempts 1-D tensors; systemds exempts 1-D tensors and any
        tensor whose norm before this step is below ``SYSTEMDS_MIN_NORM`` (1e-3),
        as SystemDS ``nn/optim/lars.dml`` does.
        """
        return self.adaptable[i] and not self.w_norm[i] < self.min_norm

    def step(self, params, grads, lr):
        """Update ``params`` in place from the (already averaged) ``grads``.

        params, grads: float32 (layout.size,), C-contiguous; lr: the global rate (float).
        """
        for i, sl in enumerate(self.layout.slices):
            w, g = params[sl], grads[sl]
            self.w_norm[i] = norm(w)
            self.g_norm[i] = norm(g)
            self.local[i] = self._update(i, w, g, {k: v[sl] for k, v in self.state.items()}, lr)
        self.t += 1

    def nonfinite(self, params):
        """Where ``params`` (the flat float32 buffer) or the optimizer state hold NaN or inf.

        Returns "" when everything is finite, else e.g. ``"parameters of fc1.b"`` or
        ``"state v of fc1.b"`` (the first such tensor).  The common case costs one
        min and one max per buffer, no copies; the result is the same on every rank
        because parameters and state are.
        """
        for what, buf in (("parameters", params), *((f"state {k}", v) for k, v in self.state.items())):
            if not _finite(buf):
                name = next(n for n, sl in zip(self.layout.names, self.layout.slices) if not _finite(buf[sl]))
                return f"{what} of {name}"
        return ""

    def state_dict(self):
        return {"t": self.t, **{k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        for k in self.state_names:
            self.state[k][...] = state[k]


class LarsRate:
    """LARS's local rate (You, Gitman and Ginsburg 2017, eq. 6; Chowdhury et al. eq. 3).

    local = coef*||w|| / (||g|| + wd*||w|| + eps)   denominator "sum" (both papers)
    local = coef*||w|| / (||g + wd*w|| + eps)       denominator "norm"
    1 when ||w|| or ||g|| is 0 (:func:`trust_ratio`).  With ``clip`` (apex LARC) the rate
    used is min(local, lr), returned as the factor min(local, lr) / lr.
    coef > 0 and eps >= 0 are floats; raises ValueError for another denominator.
    """

    def __init__(self, coef, eps=0.0, denominator="sum", clip=False):
        _one_of("lars_denominator", denominator, LARS_DENOMINATORS)
        self.coef, self.eps, self.clip = coef, eps, clip
        self.sum_denominator = denominator == "sum"

    def __call__(self, w_norm, g_norm, d_norm, decay, lr):
        """The factor multiplying the global rate ``lr``; ``d_norm()`` returns ||g + decay*w||
        (called only by the "norm" denominator)."""
        denom = g_norm + decay * w_norm if self.sum_denominator else d_norm()
        local = trust_ratio(w_norm, g_norm, denom, self.coef, self.eps)
        if self.clip:
            # A schedule can reach lr = 0 (poly decay underflows); the factor's limit there is 1.
            return min(local, lr) / lr if lr > 0 else 1.0
        return local


class Momentum(Optimizer):
    """Heavy-ball momentum SGD with weight decay; with a ``trust`` rate it is LARS.

    Per tensor: d = g + wd*w, rate = lr * local (local = ``trust(...)``, 1 for SGD), then
    the momentum buffer inside or after the rate (:func:`hpclars.kernels.momentum_update`):
    order "inside": v <- m*v + rate*d, w <- w - v, as SGD in Chowdhury et al. Table 1 and
    LARS in You, Gitman and Ginsburg 2017, Algorithm 1.
    order "after": v <- m*v + d, w <- w - rate*v, as TensorFlow's LARSOptimizer.
    Nesterov: w <- w - (m*v + rate*d), or w <- w - rate*(m*v + d) after.
    momentum in [0, 1), weight_decay >= 0; raises ValueError for an unknown order.
    """

    state_names = ("momentum",)
    scratch_buffers = 1  # d = g + decay*w, for LARS's "norm" denominator only

    def __init__(self, layout, momentum, weight_decay, nesterov=False, order="inside", trust=None,
                 exclude_from_weight_decay="none", exclude_from_adaptation="none"):
        super().__init__(layout, weight_decay, exclude_from_weight_decay, exclude_from_adaptation)
        _one_of("lars_momentum", order, LARS_MOMENTUM)
        self.m = np.float32(momentum)
        self.nesterov = nesterov
        self.trust = trust
        self.after = order == "after"
        # For the one-call step: segment offsets, each tensor's decay and rate as float32.
        self._offsets = np.array([0, *(sl.stop for sl in layout.slices)], dtype=np.int64)
        self._decays = np.array(self.decay, dtype=np.float32)
        self._rates64 = np.ones(len(layout.names))
        self._rates = np.ones(len(layout.names), dtype=np.float32)

    def step(self, params, grads, lr):
        """Update ``params`` in place from the (already averaged) ``grads``: every tensor's
        norms in one kernel call, the local rates in Python, every tensor's update in one more
        (:func:`hpclars.kernels.momentum_update_segments`); without a trust ratio (SGD) the
        norms come from the update's own pass, one kernel call in all.  The same values, bit for bit, as
        the tensor-by-tensor loop of :meth:`Optimizer.step`: each tensor's rate depends only on
        that tensor's own weights and gradient before the update.

        params, grads: float32 (layout.size,), C-contiguous; lr: the global rate (float).
        """
        if self.trust is None:
            # No rate depends on a norm: the norms (for the log) come from the update's own pass.
            self._rates[...] = np.float32(lr)  # local = 1: lr rounded as the per-tensor path rounds it
            kernels.momentum_update_segments(params, grads, self.state["momentum"], self._offsets, self._decays,
                                             self._rates, self.m, self.nesterov, self.after, self.w_norm, self.g_norm)
            np.sqrt(self.w_norm, out=self.w_norm)
            np.sqrt(self.g_norm, out=self.g_norm)
            self.t += 1
            return
        kernels.sumsq_segments(params, self._offsets, self.w_norm)
        kernels.sumsq_segments(grads, self._offsets, self.g_norm)
        np.sqrt(self.w_norm, out=self.w_norm)
        np.sqrt(self.g_norm, out=self.g_norm)
        for i, sl in enumerate(self.layout.slices):
            self.local[i] = self._rate(i, params[sl], grads[sl], lr)
        # Each entry rounded to float32 as the one-tensor kernel's `float rate` argument is.
        np.multiply(self.local, lr, out=self._rates64)
        self._rates[...] = self._rates64
        kernels.momentum_update_segments(params, grads, self.state["momentum"], self._offsets, self._decays,
                                         self._rates, self.m, self.nesterov, self.after)
        self.t += 1

    def _rate(self, i, w, g, lr):
        """Tensor i's local rate (the factor of ``lr``): the trust ratio, or 1 if exempt."""
        if not self._adapts(i):
            return 1.0
        return self.trust(self.w_norm[i], self.g_norm[i], lambda: self._d_norm(i, w, g), self.decay[i], lr)

    def _d_norm(self, i, w, g):
        """||g + decay*w|| of tensor i, through its scratch."""
        d = np.multiply(w, np.float32(self.decay[i]), out=self._tmp[i][0])
        d += g
        return norm(d)

    def _update(self, i, w, g, state, lr):
        """One tensor's update, as the base class's loop makes it (:meth:`step` does all at once)."""
        local = self._rate(i, w, g, lr) if self.trust is not None else 1.0
        kernels.momentum_update(w, g, state["momentum"], self.decay[i], lr * local, self.m, self.nesterov,
                                self.after)
        return local


class AdamFamily(Optimizer):
    """Adam, AdamW and LAMB (You et al. 2019, arXiv 1904.00962, Algorithm 2).

    m <- b1*m + (1-b1)*g';  v <- b2*v + (1-b2)*g'^2;  bias-corrected m_hat, v_hat
    r = m_hat / (sqrt(v_hat) + eps)
    decoupled False (Adam): g' = g + wd*w, u = r
    decoupled True (AdamW): g' = g,        u = r + wd*w
    with trust (LAMB):      ratio = ||w|| / ||u|| (1 if either is 0), else ratio = 1
    w <- w - lr * ratio * u
    beta1, beta2 in [0, 1), eps > 0 (floats).
    """

    state_names = ("m", "v")
    scratch_buffers = 2

    def __init__(self, layout, beta1, beta2, eps, weight_decay, decoupled, trust,
                 exclude_from_weight_decay="none", exclude_from_adaptation="none"):
        super().__init__(layout, weight_decay, exclude_from_weight_decay, exclude_from_adaptation)
        self.beta1, self.beta2 = beta1, beta2
        self.b1, self.b2, self.eps = np.float32(beta1), np.float32(beta2), np.float32(eps)
        self.decoupled, self.trust = decoupled, trust

    def _update(self, i, w, g, state, lr):
        # Each line computes what its comment says, in that order, into the scratch (t1, t2).
        wd = np.float32(self.decay[i])
        t1, t2 = self._tmp[i]
        b1, b2 = self.b1, self.b2
        m, v = state["m"], state["v"]
        if not self.decoupled:
            wdw = np.multiply(w, wd, out=t2)  # g' = g + wd*w
            wdw += g
            g = wdw
        m *= b1
        m += np.multiply(g, 1 - b1, out=t1)  # m = b1*m + (1-b1)*g'
        v *= b2
        t1 = np.multiply(g, 1 - b2, out=t1)  # v = b2*v + (1-b2)*g'*g'
        t1 *= g
        v += t1
        t = self.t + 1
        u = np.divide(m, np.float32(1 - self.beta1 ** t), out=t1)  # m_hat
        s = np.divide(v, np.float32(1 - self.beta2 ** t), out=t2)  # v_hat
        np.sqrt(s, out=s)
        s += self.eps
        u /= s  # u = m_hat / (sqrt(v_hat) + eps)
        if self.decoupled:
            u += np.multiply(w, wd, out=t2)  # u = r + wd*w
        ratio = 1.0
        if self.trust and self._adapts(i):
            u_norm = norm(u)
            ratio = trust_ratio(self.w_norm[i], u_norm, u_norm)
        u *= np.float32(lr * ratio)
        w -= u
        return ratio


# Adam variant -> (decoupled weight decay, trust ratio).
ADAM_VARIANTS = {"adam": (False, False), "adamw": (True, False), "lamb": (True, True)}


def make_optimizer(cfg, layout):
    """The optimizer ``cfg.optimizer`` names, over ``layout``, with ``cfg``'s hyperparameters.

    The only place that reads a Config.  Raises ValueError for an unknown optimizer or mode.
    """
    excludes = dict(exclude_from_weight_decay=cfg.exclude_from_weight_decay,
                    exclude_from_adaptation=cfg.exclude_from_adaptation)
    if cfg.optimizer in ("sgd", "lars"):
        _one_of("lars_mode", cfg.lars_mode, LARS_MODES)
        trust = None if cfg.optimizer == "sgd" else LarsRate(
            cfg.trust_coef, cfg.lars_eps, cfg.lars_denominator, clip=cfg.lars_mode == "clip")
        return Momentum(layout, cfg.momentum, cfg.weight_decay, cfg.nesterov, cfg.lars_momentum, trust,
                        **excludes)
    if cfg.optimizer in ADAM_VARIANTS:
        decoupled, trust = ADAM_VARIANTS[cfg.optimizer]
        return AdamFamily(layout, cfg.beta1, cfg.beta2, cfg.adam_eps, cfg.weight_decay, decoupled, trust,
                          **excludes)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
