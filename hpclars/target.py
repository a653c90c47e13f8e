"""Training to a test-accuracy target: the evaluation schedule, the clocks, the targets reached.

Time to accuracy needs three things the per-epoch log does not give: evaluations between
epoch ends (``--eval-every-steps K``: the test set every K optimizer steps, so the step at
which a target is reached is exact to K steps at any batch size), the time spent training
apart from the time spent evaluating (AlgoPerf scores the first and excludes the second:
Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms", arXiv 2306.07179), and a stop
as soon as an evaluation reaches ``--target-accuracy`` (MLPerf Training's time-to-train:
Mattson et al. 2020, "MLPerf Training Benchmark", arXiv 1910.01500).

The schedule, which composes with ``--eval-every`` (epochs):

- every epoch end that ``--eval-every`` evaluates (and the run's last) evaluates the
  training and the test set, as without this module;
- after every optimizer step t with t % K == 0 that is not such an epoch end, the test set
  alone is evaluated (the training set is 6 times larger and not needed for a target);
- each evaluation is one record in the log's ``/evals`` (step, wall and training-only
  seconds, its own seconds, test loss and accuracy), and the root attribute ``targets``
  says where each of :data:`STANDARD_TARGETS` and the run's own target was first reached.

Every rank keeps an :class:`Evaluations` and takes the same decisions: whether to stop
follows from the reduced number of correct test images, an integer that is the same on
every rank, so all ranks stop after the same evaluation without another message.

Deliberately left out: early stopping on the training loss or on a plateau (a target is a
quality bar, not a convergence test), and evaluating on a held-out part of the training set
(the paper and the committed logs use the MNIST test set).
"""

import json

import numpy as np

from .config import steps_per_epoch, total_steps

# The targets every run's log reports (test accuracy, fraction): the 97% and 99% and
# the step between them.  A run's --target-accuracy is added to them.
STANDARD_TARGETS = (0.97, 0.98, 0.99)


def targets_for(target_accuracy):
    """STANDARD_TARGETS plus ``target_accuracy`` (if > 0), sorted, without repeats."""
    return tuple(sorted(set(STANDARD_TARGETS) | ({float(target_accuracy)} if target_accuracy else set())))


def target_key(target):
    """How a target is written in the ``targets`` attribute: 0.99 -> "0.99"."""
    return f"{float(target):g}"


def epoch_end_evaluated(cfg, step, batch, epoch):
    """True if position (optimizer step ``step``, ``batch`` steps into ``epoch``) ends an epoch
    that the trainer evaluates in full (``--eval-every`` epochs, or the run's last)."""
    total = total_steps(cfg)
    at_end = batch >= steps_per_epoch(cfg) or step >= total
    return at_end and (epoch >= cfg.epochs or step >= total or epoch % cfg.eval_every == 0)


def step_eval_due(cfg, step, batch, epoch):
    """True if a test-set evaluation of its own follows step ``step`` (``--eval-every-steps``).

    ``batch`` is the number of steps of ``epoch`` done, ``step`` the optimizer steps of the
    run.  Not at step 0 (epoch 0 evaluates) nor at an epoch end evaluated in full anyway.
    """
    k = cfg.eval_every_steps
    return bool(k) and step > 0 and step % k == 0 and not epoch_end_evaluated(cfg, step, batch, epoch)


def first_reached(evals, targets):
    """Where each target was first reached: {target_key: {"step", "epoch", "wall_s", "train_s"}
    or None}.

    ``evals``: the log's /evals fields (equal-length sequences, in step order; ``test_acc`` a
    fraction).  A target counts as reached at the first evaluation with test_acc >= target.
    """
    acc = np.asarray(evals["test_acc"], dtype=np.float64)
    out = {}
    for t in targets:
        hit = np.nonzero(acc >= t)[0]
        out[target_key(t)] = None if not len(hit) else {
            "step": int(evals["step"][hit[0]]), "epoch": float(evals["epoch"][hit[0]]),
            "wall_s": float(evals["wall_s"][hit[0]]), "train_s": float(evals["train_s"][hit[0]])}
    return out


def evaluate_test(model, views, data, comm):
    """Summed test loss and number correct over the whole test set, shared out by rank.

    Each rank evaluates its contiguous slice (the split of ``Trainer._evaluate``); the two
    sums are Allreduced, so every rank returns the same float64 array [loss_sum, correct].
    """
    y = data.test_labels
    lo, hi = (len(y) * comm.rank) // comm.size, (len(y) * (comm.rank + 1)) // comm.size
    out = np.zeros(2)
    out[0], out[1] = model.evaluate(views, data.test_images[lo:hi], y[lo:hi])
    return comm.allreduce_sum_(out)


class Evaluations:
    """The run's test evaluations: the two clocks, the /evals records and the target stop.

    ``position`` is a checkpoint's position (None for a fresh run): the clocks and the step
    of the last evaluation continue from it.  ``mllog`` gets each evaluation's MLPerf
    events (:mod:`hpclars.mllog`).  Attributes: ``train_s`` (seconds in optimizer steps so
    far; the trainer adds to it), ``eval_s`` (seconds evaluating so far), ``last_step`` (the
    step of the last evaluation, -1 before any), ``reached`` (this run's target reached),
    ``last`` ([loss_sum, correct, seconds] of the last evaluation).
    """

    def __init__(self, cfg, n_test, mllog, position=None):
        position = position or {}
        self.cfg, self.n_test, self.mllog = cfg, n_test, mllog
        self.spe = steps_per_epoch(cfg)
        self.targets = targets_for(cfg.target_accuracy)
        self.train_s = float(position.get("train_s", 0.0))
        self.eval_s = float(position.get("eval_s", 0.0))
        self.last_step = int(position.get("evaluated_step", -1))
        self.reached = False
        self.last = (np.nan, np.nan, np.nan)

    def position(self):
        """What a checkpoint keeps so that a resume continues the clocks and the schedule."""
        return {"train_s": self.train_s, "eval_s": self.eval_s, "evaluated_step": self.last_step}

    def due(self, step, batch, epoch):
        """A test evaluation of its own is due after ``step`` and has not run yet (a stop
        during step ``step`` checkpoints before it, so a resume starts with it)."""
        return step_eval_due(self.cfg, step, batch, epoch) and step != self.last_step

    def record(self, log, step, wall_s, seconds, loss_sum, correct):
        """Account one evaluation of the test set; True if it reached --target-accuracy.

        ``log`` is the RunLog on rank 0 (None elsewhere): it gets the record and the
        ``targets`` attribute (written at its next flush).  ``loss_sum``, ``correct``: the
        reduced sums over the test set; ``seconds``: how long the evaluation took.
        """
        acc = float(correct) / self.n_test
        self.last_step, self.eval_s, self.last = step, self.eval_s + seconds, (loss_sum, correct, seconds)
        epoch = step / self.spe
        if log is not None:
            log.append_eval(dict(step=step, epoch=epoch, wall_s=wall_s, train_s=self.train_s,
                                 eval_s=seconds, test_loss=float(loss_sum) / self.n_test, test_acc=acc))
            write_targets(log, self.targets)
        self.mllog.evaluation(step, epoch, seconds, acc)
        self.reached = bool(self.cfg.target_accuracy) and acc >= self.cfg.target_accuracy
        return self.reached

    def final_status(self):
        """(status, message) of a run whose last evaluation ended it: target_reached or completed."""
        if not self.reached:
            return "completed", ""
        return "target_reached", (f"test accuracy {float(self.last[1]) / self.n_test:.4f} >= "
                                  f"{self.cfg.target_accuracy:g} at step {self.last_step}")


def write_targets(log, targets):
    """Set the ``targets`` attribute of a RunLog from its /evals records."""
    log.attrs["targets"] = json.dumps(first_reached(log.evals, targets), sort_keys=True)


__all__ = ["STANDARD_TARGETS", "targets_for", "target_key", "step_eval_due", "first_reached",
           "evaluate_test", "Evaluations", "write_targets"]
