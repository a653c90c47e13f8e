"""Training statistics: the per-epoch sums the trainer keeps, and the gradient noise scale.

An epoch's log record is built from these sums (see :meth:`hpclars.train.Trainer._log_epoch`):
the mean minibatch loss, the mean per-tensor gradient norm and local rate (the optimizer's
diagnostics ``g_norm`` and ``local``, :class:`hpclars.optim.Optimizer`), the time split, and
the gradient noise scale B_simple of McCandlish et al. 2018: :func:`noise_terms` gives one
step's terms, :func:`accumulate` sums them over the epoch, :func:`noise_scale` returns B_simple.
The sums travel in the checkpoint, so a resumed epoch logs what an uninterrupted one would.

Deliberately left out: per-step records and anything MPI (the trainer hands in the
already-reduced numbers).
"""

import numpy as np


def noise_terms(local_sq_mean, global_sq, b, B):
    """Unbiased estimates of |G|^2 and tr(Sigma) from gradients at two batch sizes.

    McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", App. A:
    with E|g_b|^2 = |G|^2 + tr(Sigma)/b, the squared norms of the per-rank mean
    gradients (batch b, averaged over ranks: ``local_sq_mean``) and of the
    all-reduced one (batch B: ``global_sq``) give
    |G|^2 ~ (B |g_B|^2 - b |g_b|^2) / (B - b) and tr(Sigma) ~ (|g_b|^2 - |g_B|^2) / (1/b - 1/B).
    The gradient noise scale B_simple = tr(Sigma) / |G|^2 is the ratio of their
    sums over an epoch's steps (the ratio of single-step estimates is too noisy).

    local_sq_mean, global_sq: floats (squared norms); b < B: the per-rank and global batch
    sizes (with unequal shares b_r, b is their harmonic mean N / sum(1 / b_r), a float:
    :attr:`hpclars.balance.RankShares.harmonic_mean`).  Returns (|G|^2 estimate, tr(Sigma) estimate), floats; either may be
    negative for one step (they are unbiased, not clipped).
    """
    g2 = (B * global_sq - b * local_sq_mean) / (B - b)
    s = (local_sq_mean - global_sq) / (1.0 / b - 1.0 / B)
    return g2, s


def new_accumulators(n_tensors):
    """Zeroed sums for one epoch.  ``n_tensors``: tensors of the model (``len(LAYOUT.names)``).

    steps, loss_sum (of the mean minibatch loss per step), grad_norm_sum and local_sum
    (float64 (n_tensors,), per-tensor sums over the steps), noise_g2, noise_s and
    noise_steps (the :func:`noise_terms` sums and the steps that had them), time_compute,
    time_allreduce, time_optim, train_time (seconds), last_lr (the epoch's last rate).
    """
    return {"steps": 0, "loss_sum": 0.0, "grad_norm_sum": np.zeros(n_tensors), "local_sum": np.zeros(n_tensors),
            "noise_s": 0.0, "noise_g2": 0.0, "noise_steps": 0, "time_compute": 0.0, "time_allreduce": 0.0,
            "time_optim": 0.0, "train_time": 0.0, "last_lr": float("nan")}


def accumulate(acc, opt, step_loss, local_g2_mean, g2, b, B, N, times):
    """Add one step to ``acc``: its loss, ``opt``'s per-tensor diagnostics, the noise-scale
    terms (only with N >= 2 ranks: b < B) and ``times`` (compute, allreduce, optim seconds)."""
    acc["steps"] += 1
    acc["loss_sum"] += step_loss
    acc["grad_norm_sum"] += opt.g_norm
    acc["local_sum"] += opt.local
    if N > 1:
        g2_est, s_est = noise_terms(local_g2_mean, g2, b, B)
        acc["noise_g2"] += g2_est
        acc["noise_s"] += s_est
        acc["noise_steps"] += 1
    acc["time_compute"] += times[0]
    acc["time_allreduce"] += times[1]
    acc["time_optim"] += times[2]


def noise_scale(acc):
    """B_simple = sum tr(Sigma) / sum |G|^2 over the epoch's steps, or NaN if not measured.

    Only an epoch whose every step ran on >= 2 ranks has the estimate (a resume on one rank
    leaves part of the epoch unmeasured; a part-epoch figure would mislead).
    """
    steps = acc["steps"]
    measured = steps and acc["noise_steps"] == steps and acc["noise_g2"] > 0
    return acc["noise_s"] / acc["noise_g2"] if measured else float("nan")
