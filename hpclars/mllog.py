"""MLPerf-style logging (``--mllog FILE``): a run as ``:::MLLOG {json}`` lines.

Tools that read MLPerf Training results (the ``mlperf_logging`` package's log parser and
result summarizer, most submission dashboards) read these lines; the HDF5 log stays the
record hpclars's own analysis reads.

Format (mlcommons/logging, ``mlperf_logging/mllog/mllog.py``): one event per line, the
prefix ``:::MLLOG `` and one JSON object with exactly the keys ``namespace`` (""),
``time_ms`` (Unix time in milliseconds, int), ``event_type`` (``INTERVAL_START``,
``INTERVAL_END`` or ``POINT_IN_TIME``), ``key``, ``value`` and ``metadata`` (an object).
Key names are those of ``mlperf_logging/mllog/constants.py``.

Written by rank 0 only, in this order:

- ``init_start`` (after the data is loaded: the run's clock, like the HDF5 log's
  ``wall_s``, leaves loading out); the submission info (``submission_benchmark`` "hpclars_lenet_mnist",
  ``submission_division`` "open", ``submission_org`` "hpclars", ``submission_platform``
  host and ranks, ``submission_status`` "research"); ``seed``, ``global_batch_size``,
  ``gradient_accumulation_steps`` (1), ``train_samples``, ``eval_samples``, ``opt_name``
  and the optimizer's hyperparameters (:func:`hyperparameters`);
- ``init_stop`` and ``run_start`` when the run's clock starts (after the model and the log
  are set up, before the evaluation of epoch 0);
- ``epoch_start`` / ``epoch_stop`` around each epoch's steps (metadata ``epoch_num``, from 1);
- ``eval_start`` / ``eval_stop`` around each evaluation and ``eval_accuracy`` (a fraction)
  after it, metadata ``epoch_num`` (epochs done, fractional: step / steps per epoch) and
  ``step_num``;
- ``run_stop``, metadata ``status``: ``success`` if the run reached --target-accuracy, or
  ran its whole budget without one; ``aborted`` if it diverged, or ended its budget short
  of its target.

A stopped run writes no ``run_stop`` (it is not over); ``--resume`` appends to the same
file, so the time between the stop and the resume lies inside run_start..run_stop (MLPerf
has no resume).  A run that fails with an error writes no ``run_stop`` either.

Deliberately left out: the ``mlperf_logging`` package (the format is a JSON object per
line), its compliance checker's benchmark-specific rules (LeNet on MNIST is not an MLPerf
benchmark) and the ``file``/``lineno`` metadata its logger adds; hyperparameters with no
MLPerf key (LARS's trust coefficient, SGD's momentum, the inverse-time decay) are in the
HDF5 log's ``config`` only.
"""

import json
import os
import socket
import time

from .config import ConfigError, scaled_lr, steps_per_epoch, total_steps

PREFIX = ":::MLLOG "
INTERVAL_START, INTERVAL_END, POINT_IN_TIME = "INTERVAL_START", "INTERVAL_END", "POINT_IN_TIME"
BENCHMARK = "hpclars_lenet_mnist"


def hyperparameters(cfg):
    """[(MLPerf key, value)] for the optimizer of ``cfg``: only keys whose meaning matches.

    Rates are after the batch-size scaling rule (:func:`hpclars.config.scaled_lr`); warm-up in
    epochs; the poly schedule decays to 0 over the steps after the warm-up
    (:mod:`hpclars.schedules`), so its power, decay steps and end rate have MLPerf keys and
    the other schedules' parameters do not.
    """
    opt, base = cfg.optimizer, scaled_lr(cfg)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch(cfg)))
    decay_steps = max(total_steps(cfg) - warm, 1)
    poly = cfg.schedule == "poly"
    if opt == "lars":
        out = [("lars_opt_base_learning_rate", base), ("lars_opt_momentum", cfg.momentum),
               ("lars_opt_weight_decay", cfg.weight_decay), ("lars_epsilon", cfg.lars_eps),
               ("lars_opt_learning_rate_warmup_epochs", cfg.warmup_epochs)]
        if poly:
            out += [("lars_opt_learning_rate_decay_poly_power", cfg.poly_power),
                    ("lars_opt_learning_rate_decay_steps", decay_steps), ("lars_opt_end_learning_rate", 0.0)]
        return out
    out = [("opt_base_learning_rate", base), ("opt_learning_rate_warmup_epochs", cfg.warmup_epochs)]
    if opt == "lamb":
        out += [("opt_lamb_beta_1", cfg.beta1), ("opt_lamb_beta_2", cfg.beta2),
                ("opt_lamb_epsilon", cfg.adam_eps), ("opt_lamb_weight_decay_rate", cfg.weight_decay)]
        if poly:
            out += [("opt_lamb_learning_rate_decay_poly_power", cfg.poly_power),
                    ("opt_learning_rate_decay_steps", decay_steps), ("opt_lamb_learning_rate_min", 0.0)]
        return out
    if opt in ("adam", "adamw"):
        out += [("opt_adam_beta_1", cfg.beta1), ("opt_adam_beta_2", cfg.beta2),
                ("opt_adam_epsilon", cfg.adam_eps)]
    out.append(("opt_weight_decay", cfg.weight_decay))
    if poly:
        out.append(("opt_learning_rate_decay_steps", decay_steps))
    return out


class MLLog:
    """Appends events to ``path``; with ``path`` "" every method does nothing (other ranks,
    or no --mllog).  Each event opens, appends and closes, so nothing is left open and a
    killed run loses no line it has written."""

    def __init__(self, path=""):
        self.path = path

    @classmethod
    def open(cls, path, append):
        """Start (or, on --resume, continue) the file; ConfigError naming it if it cannot be written."""
        try:
            with open(path, "a" if append else "w"):
                pass
        except OSError as exc:
            raise ConfigError(f"--mllog: cannot write {path}: {exc.strerror or exc}") from None
        return cls(os.fspath(path))

    def event(self, event_type, key, value=None, metadata=None, time_ms=None):
        if not self.path:
            return
        line = json.dumps({"namespace": "", "time_ms": int(time.time() * 1000) if time_ms is None else int(time_ms),
                           "event_type": event_type, "key": key, "value": value, "metadata": metadata or {}})
        with open(self.path, "a") as f:
            f.write(PREFIX + line + "\n")

    def initialization(self, cfg, world_size, n_train, n_test):
        """init_start and everything known before training: submission info and hyperparameters."""
        self.event(INTERVAL_START, "init_start")
        platform = f"{socket.gethostname()}: {world_size} MPI rank(s) x {cfg.threads} thread(s)"
        for key, value in (("submission_benchmark", BENCHMARK), ("submission_division", "open"),
                           ("submission_org", "hpclars"), ("submission_platform", platform),
                           ("submission_status", "research"), ("seed", cfg.seed),
                           ("global_batch_size", cfg.batch_size), ("gradient_accumulation_steps", 1),
                           ("train_samples", n_train), ("eval_samples", n_test), ("opt_name", cfg.optimizer),
                           *hyperparameters(cfg)):
            self.event(POINT_IN_TIME, key, value)

    def run_started(self):
        self.event(INTERVAL_END, "init_stop")
        self.event(INTERVAL_START, "run_start")

    def epoch(self, key, epoch):
        """``epoch_start`` or ``epoch_stop`` of ``epoch`` (1-based)."""
        self.event(INTERVAL_START if key == "epoch_start" else INTERVAL_END, key, metadata={"epoch_num": epoch})

    def evaluation(self, step, epoch, seconds, accuracy):
        """eval_start (``seconds`` ago), eval_stop and eval_accuracy of the evaluation after ``step``."""
        now = time.time() * 1000
        meta = {"epoch_num": epoch, "step_num": step}
        self.event(INTERVAL_START, "eval_start", metadata=meta, time_ms=now - 1000 * seconds)
        self.event(INTERVAL_END, "eval_stop", metadata=meta, time_ms=now)
        self.event(POINT_IN_TIME, "eval_accuracy", accuracy, metadata=meta, time_ms=now)

    def run_stopped(self, status, target_accuracy):
        """run_stop for a run that is over (hpclars status completed, target_reached or diverged)."""
        success = status == "target_reached" or (status == "completed" and not target_accuracy)
        self.event(INTERVAL_END, "run_stop", metadata={"status": "success" if success else "aborted"})


__all__ = ["MLLog", "hyperparameters", "PREFIX", "BENCHMARK"]
