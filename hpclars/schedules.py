"""Learning-rate schedules for the global rate, as pure functions of the step.

``t`` counts optimizer steps already taken (0 for the first step), so a
schedule carries no state and a resumed run recomputes exactly the same rates.
Linear warm-up over ``warmup`` steps multiplies any schedule; the decay part
then runs over the remaining ``total - warmup`` steps.

Deliberately left out: step-wise (piecewise constant) decay and restarts; the four
schedules here cover the paper and the large-batch literature it leads to.
"""

import math

from .config import scaled_lr, steps_per_epoch, total_steps


def warmup_steps(cfg):
    return int(round(cfg.warmup_epochs * steps_per_epoch(cfg)))


def lr_at(cfg, t):
    """The global learning rate used by step ``t`` of a run configured by ``cfg``."""
    base = scaled_lr(cfg)
    warm = warmup_steps(cfg)
    if t < warm:
        return base * (t + 1) / warm
    s = t - warm
    span = max(total_steps(cfg) - warm, 1)
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "inverse-time":
        return base / (1.0 + cfg.lr_decay * s)
    progress = min(s / span, 1.0)
    if cfg.schedule == "poly":
        return base * (1.0 - progress) ** cfg.poly_power
    if cfg.schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


def describe(cfg):
    """The schedule and its parameters, for the log."""
    return {
        "schedule": cfg.schedule, "base_lr": scaled_lr(cfg), "lr_scaling": cfg.lr_scaling,
        "warmup_steps": warmup_steps(cfg), "total_steps": total_steps(cfg),
        "lr_decay": cfg.lr_decay, "poly_power": cfg.poly_power,
    }
