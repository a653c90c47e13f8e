"""Optimizers: SGD, LARS, LAMB, Adam and AdamW over a flat parameter buffer.

Every optimizer updates each parameter tensor (each weight and each bias is its
own "layer") through views into one contiguous float32 buffer, so it neither
knows nor cares that the gradient was averaged over MPI ranks: the trainer
hands it the already-reduced gradient and every rank applies the same update.

Shared pieces are defined once: :func:`trust_ratio` (used by LARS and LAMB)
and the learning-rate schedule in :mod:`hpclars.schedules`.  SGD is LARS with
the trust ratio switched off (``Momentum(adapt=False)``).

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

from .config import SYSTEMDS_MIN_NORM


def norm(x):
    """Euclidean norm of a float32 array, accumulated in float64."""
    x = x.ravel()
    return float(np.sqrt(np.dot(x.astype(np.float64), x.astype(np.float64))))


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

    After each :meth:`step`, ``w_norm``, ``g_norm`` and ``local`` hold, per
    tensor, the weight norm before the update, the gradient norm, and the
    factor the global learning rate was multiplied by (1 for plain SGD).
    """

    state_names = ()

    def __init__(self, cfg, layout):
        self.cfg = cfg
        self.layout = layout
        n = layout.size
        self.state = {name: np.zeros(n, dtype=np.float32) for name in self.state_names}
        self.t = 0
        k = len(layout.names)
        self.w_norm = np.zeros(k)
        self.g_norm = np.zeros(k)
        self.local = np.ones(k)

    def _decay(self, i):
        """Weight decay of tensor ``i``: 0 if ``exclude_from_weight_decay`` covers it."""
        if self.cfg.exclude_from_weight_decay == "bias" and self.layout.is_bias[i]:
            return 0.0
        return self.cfg.weight_decay

    def _adapts(self, i):
        """Whether tensor ``i`` gets a trust ratio (else the plain global rate).

        ``exclude_from_adaptation``: none adapts every tensor (the paper's
        equations); bias exempts 1-D tensors; systemds exempts 1-D tensors and any
        tensor whose norm before this step is below ``SYSTEMDS_MIN_NORM`` (1e-3),
        as SystemDS ``nn/optim/lars.dml`` does.
        """
        rule = self.cfg.exclude_from_adaptation
        if rule == "none":
            return True
        if self.layout.is_bias[i]:
            return False
        return not (rule == "systemds" and self.w_norm[i] < SYSTEMDS_MIN_NORM)

    def step(self, params, grads, lr):
        """Update ``params`` in place from the (already averaged) ``grads``."""
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


class Momentum(Optimizer):
    """Heavy-ball momentum SGD with weight decay; with ``adapt`` it is LARS.

    SGD (Chowdhury et al. Table 1):  v <- m*v + lr*(g + wd*w);         w <- w - v
    LARS (You, Gitman and Ginsburg 2017, Algorithm 1; Chowdhury et al. eqs. 1 and 3):
                           v <- m*v + lr*local*(g + wd*w);         w <- w - v
      local = eta*||w|| / (||g|| + wd*||w|| + eps)   (denominator "sum", both papers)
      local = eta*||w|| / (||g + wd*w|| + eps)       (denominator "norm")
    mode "clip" (apex LARC): the rate is min(local, lr) instead of lr*local.
    momentum "after" (TensorFlow LARSOptimizer): v <- m*v + (g + wd*w); w <- w - rate*v.
    Nesterov: the step is m*v_new + d instead of v_new (d the term added to v).
    """

    state_names = ("momentum",)

    def __init__(self, cfg, layout, adapt):
        super().__init__(cfg, layout)
        self.adapt = adapt

    def local_rate(self, i, w_norm, g_norm, d, lr):
        """The factor multiplying the global rate for tensor ``i``."""
        if not (self.adapt and self._adapts(i)):
            return 1.0
        cfg = self.cfg
        if cfg.lars_denominator == "sum":
            denom = g_norm + self._decay(i) * w_norm
        else:
            denom = norm(d)
        local = trust_ratio(w_norm, g_norm, denom, cfg.trust_coef, cfg.lars_eps)
        if cfg.lars_mode == "clip":
            # A schedule can reach lr = 0 (poly decay underflows); the factor's limit there is 1.
            return min(local, lr) / lr if lr > 0 else 1.0
        return local

    def _update(self, i, w, g, state, lr):
        cfg, v = self.cfg, state["momentum"]
        d = g + np.float32(self._decay(i)) * w
        local = self.local_rate(i, self.w_norm[i], self.g_norm[i], d, lr)
        rate = np.float32(lr * local)
        m = np.float32(cfg.momentum)
        if cfg.lars_momentum == "inside":
            d *= rate
            v *= m
            v += d
            step = m * v + d if cfg.nesterov else v
        else:
            v *= m
            v += d
            step = rate * (m * v + d if cfg.nesterov else v)
        w -= step
        return local


class AdamFamily(Optimizer):
    """Adam, AdamW and LAMB (You et al. 2019, arXiv 1904.00962, Algorithm 2).

    m <- b1*m + (1-b1)*g';  v <- b2*v + (1-b2)*g'^2;  bias-corrected m_hat, v_hat
    r = m_hat / (sqrt(v_hat) + eps)
    adam:  g' = g + wd*w, u = r
    adamw: g' = g,        u = r + wd*w
    lamb:  g' = g,        u = r + wd*w, ratio = ||w|| / ||u|| (1 if either is 0)
    w <- w - lr * ratio * u   (ratio = 1 for adam and adamw)
    """

    state_names = ("m", "v")

    def __init__(self, cfg, layout, kind):
        super().__init__(cfg, layout)
        self.kind = kind

    def _update(self, i, w, g, state, lr):
        cfg = self.cfg
        wd = np.float32(self._decay(i))
        if self.kind == "adam":
            g = g + wd * w
        b1, b2 = np.float32(cfg.beta1), np.float32(cfg.beta2)
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        t = self.t + 1
        m_hat = m / np.float32(1 - cfg.beta1 ** t)
        v_hat = v / np.float32(1 - cfg.beta2 ** t)
        u = m_hat / (np.sqrt(v_hat) + np.float32(cfg.adam_eps))
        if self.kind != "adam":
            u += wd * w
        ratio = 1.0
        if self.kind == "lamb" and self._adapts(i):
            u_norm = norm(u)
            ratio = trust_ratio(self.w_norm[i], u_norm, u_norm)
        w -= np.float32(lr * ratio) * u
        return ratio


def make_optimizer(cfg, layout):
    if cfg.optimizer in ("sgd", "lars"):
        return Momentum(cfg, layout, adapt=cfg.optimizer == "lars")
    if cfg.optimizer in ("lamb", "adam", "adamw"):
        return AdamFamily(cfg, layout, kind=cfg.optimizer)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
