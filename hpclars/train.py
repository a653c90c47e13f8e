"""The data-parallel training loop: :class:`Trainer` (``_setup``, ``_step``, ``_end_epoch``, ``_finish``).

Where the rest lives: stop requests and the resume policy in :mod:`hpclars.runcontrol`, the
gradient's communication in :mod:`hpclars.comm`, the epoch statistics and the gradient noise
scale in :mod:`hpclars.stats`, the data and its broadcast in :mod:`hpclars.data`, the log and
checkpoint files in :mod:`hpclars.log` and :mod:`hpclars.checkpoint`.

One step on each rank: gather this rank's contiguous slice of the global batch
from a per-epoch permutation that every rank draws identically, accumulate the
gradient of the local images chunk by chunk, average it with ONE in-place
Allreduce of the flat buffer, then run the optimizer on identical data on every
rank (so LARS/LAMB norms need no communication).  The slices are equal unless
--rank-weights or --balance-every split the batch by speed (:mod:`hpclars.balance`).

The flat Allreduce buffer (:class:`hpclars.comm.GradientReducer`) carries three
named float32 slots after the gradient: the local summed loss, the squared norm
of the local mean gradient (for the gradient noise scale) and a stop flag.  They
ride along in the same call, so every rank learns the global minibatch loss, the
noise scale terms and whether any rank was asked to stop, with no extra message.

Only rank 0 prints and writes the log and checkpoints.  Evaluation is shared:
each rank evaluates a slice of the train and test sets and the sums are reduced.

Exit statuses: completed, target_reached (an evaluation reached --target-accuracy;
the rest of the budget is not used, see :mod:`hpclars.target`), diverged (a
non-finite loss, gradient, parameter or optimizer state; the run still counts as
a result), interrupted (a stop signal or stop file: it checkpointed and wants to
be requeued).

Stops: between phases (after loading the data, after an epoch's evaluation and
checkpoint) the ranks agree on the stop flag with one tiny Allreduce; during an
epoch it rides in the step's.  The checkpoint then records the exact position,
including "all steps of this epoch done, evaluation not yet", so a resume
reaches the uninterrupted run's log whatever the moment of the stop.  A resume
may run on another number of ranks (see README.md, "Guarantees").

With --overlap-allreduce the same buffer is summed in pieces instead: one
non-blocking Allreduce per layer, started as soon as the backward pass has
produced that layer's gradient, and one for the extra slots; the step waits
for all of them before the optimizer (the same reducer, built with the layers).

Deliberately left out: data augmentation and gradient accumulation across steps
(a larger global batch is the same thing here).
"""

import json
import math
import os
import socket
import time

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import checkpoint as ckpt
from . import config as C
from . import schedules
from . import stats, target
from .balance import RankShares, parse_weights
from .comm import Comm, GradientReducer
from .data import DataError, load_data
from .log import FINISHED, RunLog
from .mllog import MLLog
from .model import LAYOUT, LeNet, init_params, layer_slices
from .optim import make_optimizer, norm
from .provenance import environment
from .runcontrol import StopRequest, prepare_output

def progress_bar(enabled, epoch, epochs, first, last):
    """A tqdm bar over this epoch's steps ``first..last`` on stderr (rate, ETA, loss).

    ``enabled`` is --progress on rank 0.  tqdm switches itself off when stderr is not a
    terminal (``disable=None``), so batch logs such as SLURM output get only the per-epoch
    lines, which are the record.
    """
    return tqdm(total=last, initial=first, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False,
                dynamic_ncols=True, mininterval=0.25, disable=None if enabled else True)


class Trainer:
    def __init__(self, cfg, comm=None, kernels=None, data=None):
        self.cfg = cfg
        self.comm = comm or Comm()
        if kernels is None:
            from . import kernels
        self.kernels = kernels
        self._data = data
        self.log = None

    # -- helpers ---------------------------------------------------------
    def say(self, text):
        if self.comm.is_root:
            print(text, flush=True)

    def _evaluate(self, views, model):
        """Summed loss and correct counts over this rank's slice of train and test."""
        comm, d = self.comm, self.data
        out = np.zeros(4)
        for j, (x, y) in enumerate(((d.train_images, d.train_labels), (d.test_images, d.test_labels))):
            lo, hi = (len(y) * comm.rank) // comm.size, (len(y) * (comm.rank + 1)) // comm.size
            out[2 * j], out[2 * j + 1] = model.evaluate(views, x[lo:hi], y[lo:hi])
        return comm.allreduce_sum_(out)

    # -- the run ---------------------------------------------------------
    def run(self):
        cfg, comm = self.cfg, self.comm
        C.validate_for_world(cfg, comm.size)
        self.stop = StopRequest(cfg.stop_file, poll_file=comm.is_root)
        self.stop.install()
        try:
            # BLAS runs inside the kernels' OpenMP threads, so it gets one thread of its own,
            # whatever NumPy or SciPy started before hpclars was imported.
            with threadpool_limits(limits=1, user_api="blas"), \
                    threadpool_limits(limits=cfg.threads, user_api="openmp"):
                return self._run()
        finally:
            self.stop.uninstall()

    def _run(self):
        cfg, comm = self.cfg, self.comm
        mode, payload = comm.on_root(lambda: prepare_output(cfg, comm.size))
        if mode == "done":
            self.say(f"{cfg.out}: already {payload}; nothing to do")
            return payload
        self.mllog = comm.on_root(lambda: MLLog.open(cfg.mllog, append=mode == "resume") if cfg.mllog
                                  else MLLog(), share_result=False) or MLLog()
        if self._data is None:
            self._data = load_data(cfg.data_dir, comm)
        self.data = self._data
        if mode == "fresh":
            self.mllog.initialization(cfg, comm.size, len(self.data.train_labels), len(self.data.test_labels))
        if self._agree_stop():  # nothing written yet: the log and checkpoint are as they were
            why = self.stop.reason or "a stop request on another rank"
            self.say(f"hpclars: interrupted (stopped by {why} before training started; nothing "
                     "written; rerun with --resume)")
            return "interrupted"
        try:
            return self._train(payload if mode == "resume" else None)
        except Exception as exc:
            if self.log is not None:  # leave a log that says what happened
                self.log.set_status("failed", f"{type(exc).__name__}: {exc}")
                self.log.flush()
            raise

    def _train(self, saved):
        """The run after the output policy and the data: set up, start or restore, open the log,
        train epoch after epoch, finish.  ``saved``: the Checkpoint to resume, or None."""
        self._setup()
        wall0 = self._initialise() if saved is None else self._restore(saved)
        self.evals = target.Evaluations(self.cfg, len(self.data.test_labels), self.mllog,
                                        saved.position if saved else None)
        self._open_log(saved)
        t_start = time.perf_counter()
        self.wall = lambda: wall0 + time.perf_counter() - t_start
        if saved is None:
            self._log_start()
        else:
            self.say(f"hpclars: resuming {self.cfg.out} at epoch {self.epoch}, batch {self.k}, step "
                     f"{self.opt.t}" + self._world_change(saved.world_size))
        status, message = self.evals.final_status() if self.evals.reached else self._loop()
        return self._finish(status, message)

    def _setup(self):
        """Buffers, model and optimizer; the parameters are not set yet."""
        cfg, comm, k = self.cfg, self.comm, self.kernels
        self.shares = RankShares(cfg.batch_size, comm.size, parse_weights(cfg.rank_weights), cfg.balance_every)
        # The model's buffers hold the largest share this run can give a rank.
        b = cfg.batch_size if cfg.balance_every else int(self.shares.shares.max())
        flat = self.flat = np.zeros(LAYOUT.size, dtype=np.float32)
        self.last_finite = np.zeros_like(flat)  # parameters before the step, for a diverged log
        self.reducer = GradientReducer(comm, LAYOUT.size, layer_slices(LAYOUT) if cfg.overlap_allreduce else None)
        self.P, self.G = LAYOUT.views(flat), LAYOUT.views(self.reducer.grads)
        self.opt = make_optimizer(cfg, LAYOUT)
        self.model = LeNet(k, min(cfg.chunk_size, max(b, 1)), cfg.threads)
        self.eval_model = LeNet(k, cfg.chunk_size, cfg.threads) if cfg.chunk_size > b else self.model

    def _initialise(self):
        """A fresh run: rank 0 draws the parameters and broadcasts them; returns the wall time so far."""
        if self.comm.is_root:
            init_params(self.flat, self.cfg.seed, self.cfg.init)
        self.comm.bcast_(self.flat)
        self.epoch, self.k = 1, 0
        self.acc = self._new_accumulators()
        return 0.0

    def _restore(self, saved):
        """Parameters, optimizer state, position and the epoch's sums from the checkpoint;
        returns the wall time the run had used."""
        self.flat[...] = saved.params
        self.opt.load_state_dict(saved.optimizer_state)
        pos = saved.position
        self.epoch, self.k = pos["epoch"], pos["batch"]
        self.acc = {**self._new_accumulators(), **saved.accumulators}
        if "noise_steps" not in saved.accumulators:  # older checkpoint: one world size so far
            self.acc["noise_steps"] = self.acc["steps"] if saved.world_size > 1 else 0
        return pos["wall_s"]

    def _open_log(self, saved):
        """Rank 0 creates the log (or reopens it, dropping epochs past the checkpoint) and records
        where this attempt runs (rank_hosts, environment); collective."""
        cfg, comm = self.cfg, self.comm
        hosts = comm.gather_obj(socket.gethostname())  # collective: every rank calls it
        if not comm.is_root:
            return
        if saved is None:
            self.log = RunLog.create(cfg.out, cfg.to_json(), comm.size, LAYOUT.names, LAYOUT.size,
                                     schedules.describe(cfg))
        else:
            self.log = RunLog.reopen(cfg.out, keep_epochs_through=self.epoch - 1,
                                     keep_evals_through_step=self.opt.t)
            self.log.attrs["world_size"] = comm.size
            target.write_targets(self.log, self.evals.targets)
        self.log.attrs["rank_hosts"] = json.dumps(hosts)
        self.log.attrs["environment"] = json.dumps(environment())
        # The split this attempt starts from, whenever one was ever unequal (a resume may drop
        # the flags: then the log says that equal shares took over).
        if cfg.rank_weights or cfg.balance_every or "rank_shares" in self.log.attrs:
            kept = [e for e in json.loads(self.log.attrs.get("rank_shares", "[]")) if e["step"] < self.opt.t]
            self.log.attrs["rank_shares"] = json.dumps(kept)
            self._log_shares()

    def _log_shares(self):
        """Append the current split to the log's rank_shares attribute (rank 0)."""
        entries = json.loads(self.log.attrs["rank_shares"])
        entries.append({"step": int(self.opt.t), "shares": self.shares.shares.tolist()})
        self.log.attrs["rank_shares"] = json.dumps(entries)

    def _log_start(self):
        """Announce a fresh run and log epoch 0: the evaluation before any training."""
        cfg, comm = self.cfg, self.comm
        self.mllog.run_started()
        split = ""
        if cfg.rank_weights or cfg.balance_every:
            split = f", shares {'/'.join(map(str, self.shares.shares))}" + (
                f" re-split by speed every {cfg.balance_every} steps" if cfg.balance_every else "")
        self.say(f"hpclars: {cfg.optimizer} batch {cfg.batch_size} on {comm.size} rank(s) x {cfg.threads} "
                 f"thread(s){split}, {C.describe_steps(cfg)} -> {cfg.out}")
        t0 = time.perf_counter()
        ev = self._evaluate(self.P, self.eval_model)
        times = comm.allreduce_max_(np.array([np.nan, np.nan, np.nan, time.perf_counter() - t0]))
        self.evals.record(self.log, 0, self.wall(), times[3], ev[2], ev[3])
        self._log_epoch(self.log, 0, self.opt.t, schedules.lr_at(cfg, 0), ev, self.acc, self.flat, times,
                        self.wall())

    def _world_change(self, saved_size):
        if saved_size == self.comm.size:
            return ""
        return (f" on {self.comm.size} rank(s) instead of the checkpoint's {saved_size}: results match "
                "an uninterrupted run up to float rounding")

    def _loop(self):
        """Epochs from (self.epoch, self.k) until the run ends; returns (status, message).

        Every way out leaves a position that --resume continues exactly: a stop between
        phases (after epoch 0 or an epoch's evaluation or checkpoint) is caught by the
        agreement at the top, a stop during a step by the step's Allreduce; an epoch whose
        steps all ran before a stop (the last step of an epoch or of the run) resumes with
        zero steps and goes straight to its evaluation.
        """
        cfg = self.cfg
        while True:
            if self._agree_stop():
                return "interrupted", self._stop_message()
            status, message = self._epoch_steps()
            if status == "target_reached":
                self._end_at_target()
            if status:
                return status, message
            if self._end_epoch() or self.evals.reached:
                return self.evals.final_status()
            self.epoch, self.k, self.acc = self.epoch + 1, 0, self._new_accumulators()
            if self.comm.is_root and cfg.checkpoint_every and (self.epoch - 1) % cfg.checkpoint_every == 0:
                self._checkpoint()

    def _epoch_steps(self):
        """The current epoch's remaining steps; returns (status, message), status "" if all ran."""
        cfg = self.cfg
        spe, total = C.steps_per_epoch(cfg), C.total_steps(cfg)
        perm = np.random.default_rng([cfg.seed, self.epoch]).permutation(C.TRAIN_SIZE)
        t_epoch = time.perf_counter()
        self.bar = progress_bar(cfg.progress and self.comm.is_root, self.epoch, cfg.epochs, self.k,
                                min(spe, self.k + total - self.opt.t))
        k0 = self.k
        if k0 == 0:
            self.mllog.epoch("epoch_start", self.epoch)
        try:
            status, message = self._evaluate_if_due()  # a resume whose stop came before it
            while not status and self.k < spe and self.opt.t < total:
                t0 = time.perf_counter()
                status, message = self._step(perm)
                self.evals.train_s += time.perf_counter() - t0
                if not status:
                    status, message = self._evaluate_if_due()
            return status, message
        finally:
            self.acc["train_time"] += time.perf_counter() - t_epoch
            self.bar.close()
            done = self.k == spe or self.opt.t >= total  # (a resume at an epoch end logged it before)
            if (done and self.k > k0) or (self.evals.reached and not done):
                self.mllog.epoch("epoch_stop", self.epoch)

    def _evaluate_if_due(self):
        """The --eval-every-steps evaluation of the test set after this step, if due (see
        :mod:`hpclars.target`); returns (status, message) as _step."""
        ev = self.evals
        if not ev.due(self.opt.t, self.k, self.epoch):
            return "", ""
        t0 = time.perf_counter()
        loss_sum, correct = target.evaluate_test(self.eval_model, self.P, self.data, self.comm)
        seconds = time.perf_counter() - t0
        ev.record(self.log, self.opt.t, self.wall(), seconds, loss_sum, correct)
        n = len(self.data.test_labels)
        self.bar.clear()
        self.say(f"   step {self.opt.t:>6}  test {100 * correct / n:6.2f}% (loss {loss_sum / n:.4f})"
                 f"  {self.wall():7.1f}s")
        self.acc["train_time"] -= time.perf_counter() - t0  # the epoch's images/s counts steps only
        return ev.final_status() if ev.reached else ("", "")

    def _end_at_target(self):
        """Log the epoch that the target cut short: its steps so far and the test metrics of the
        evaluation that reached the target (the training set was not evaluated: NaN)."""
        loss_sum, correct, seconds = self.evals.last
        acc = self.acc
        times = self.comm.allreduce_max_(np.array([acc["time_compute"], acc["time_allreduce"],
                                                   acc["time_optim"], seconds]))
        self._log_epoch(self.log, self.epoch, self.opt.t, acc["last_lr"], np.array([np.nan, np.nan, loss_sum, correct]),
                        acc, self.flat, times, self.wall())

    def _step(self, perm):
        """One optimizer step (batch self.k of the epoch); returns (status, message) as _epoch_steps."""
        cfg, comm, opt, red = self.cfg, self.comm, self.opt, self.reducer
        B, N, shares = cfg.batch_size, comm.size, self.shares
        b = int(shares.shares[comm.rank])
        grads = red.grads
        ts = time.perf_counter()
        lo = self.k * B + int(shares.offsets[comm.rank])
        idx = perm[lo:lo + b]
        images, labels = self.data.train_images[idx], self.data.train_labels[idx]
        t0 = time.perf_counter()
        red.zero()
        # Equal shares: each rank's mean, then the mean over ranks (reduce divides by N); unequal
        # ones (hpclars.balance): each rank's sum over B, whose sum over ranks is the mean.
        # The step's number correct is not reduced: accuracies come from the evaluations.
        loss, _ = self.model.forward_backward(self.P, self.G, images, labels, 1.0 / (b if shares.equal else B),
                                              red.on_layer_done)
        red["loss_sum"] = loss
        red["local_sq"] = red.local_sq_norm() * (1.0 if shares.equal else (B / b) ** 2)  # |rank's mean|^2
        red["stop"] = 1.0 if self.stop.requested() else 0.0
        t1 = time.perf_counter()
        shares.record(b, t1 - ts)
        red.reduce(mean=shares.equal)  # with --overlap-allreduce, time_allreduce is the communication left exposed
        t2 = time.perf_counter()
        step_loss = red["loss_sum"] / B
        g2 = self.kernels.sumsq(grads)  # float64 sums, no float64 copies of the buffer
        if not (math.isfinite(step_loss) and math.isfinite(g2)):
            return "diverged", f"non-finite {'loss' if not math.isfinite(step_loss) else 'gradient'} at step {opt.t}"
        lr = schedules.lr_at(cfg, opt.t)
        np.copyto(self.last_finite, self.flat)
        opt.step(self.flat, grads, lr)
        where = opt.nonfinite(self.flat)  # the same on every rank: so are parameters and state
        if where:
            self.flat[...] = self.last_finite  # the log keeps the last finite parameters
            return "diverged", f"non-finite {where} after step {opt.t - 1}"
        t3 = time.perf_counter()
        stats.accumulate(self.acc, opt, step_loss, red["local_sq"] / N, g2, shares.harmonic_mean, B, N,
                         (t1 - t0, t2 - t1, t3 - t2))
        self.acc["last_lr"] = lr
        self.k += 1
        if shares.due(opt.t) and opt.t < C.total_steps(cfg) and shares.rebalance(comm) and comm.is_root:
            self._log_shares()
        self.bar.set_postfix_str(f"loss {step_loss:.4f}", refresh=False)
        self.bar.update()
        if red["stop"] > 0:
            return "interrupted", self._stop_message()
        return "", ""

    def _end_epoch(self):
        """Evaluate (if due) and log the epoch just trained; True if it was the run's last."""
        cfg, comm = self.cfg, self.comm
        t0 = time.perf_counter()
        last = self.epoch >= cfg.epochs or self.opt.t >= C.total_steps(cfg)
        if last or self.epoch % cfg.eval_every == 0:
            ev = self._evaluate(self.P, self.eval_model)
        else:
            ev = np.full(4, np.nan)  # logged as NaN: this epoch was not evaluated
        acc = self.acc
        times = np.array([acc["time_compute"], acc["time_allreduce"], acc["time_optim"],
                          time.perf_counter() - t0])
        comm.allreduce_max_(times)
        if not np.isnan(ev[3]):
            self.evals.record(self.log, self.opt.t, self.wall(), times[3], ev[2], ev[3])
        self._log_epoch(self.log, self.epoch, self.opt.t, acc["last_lr"], ev, acc, self.flat, times,
                        self.wall())
        return last

    def _finish(self, status, message):
        """Checkpoint a stopped run, check the ranks agree, write the final log (rank 0)."""
        cfg, comm = self.cfg, self.comm
        if status == "interrupted" and comm.is_root:
            self._checkpoint()
        if not comm.same_everywhere(self.flat):  # collective: every rank calls it
            status, message = "failed", "parameters differ between ranks"
        if comm.is_root:
            self.log.set_status(status, message)
            self.log.set_params(self.P)
            self.log.flush()
            if status in FINISHED:
                path = ckpt.checkpoint_path(cfg.out)
                if os.path.exists(path):
                    os.unlink(path)
                self.mllog.run_stopped(status, cfg.target_accuracy)
            final = f" ({message})" if message else ""
            self.say(f"hpclars: {status}{final}; log {cfg.out}")
        return status

    def _agree_stop(self):
        """Collective: True on every rank if a stop was requested of any rank."""
        flag = np.array([1.0 if self.stop.requested() else 0.0])
        return bool(self.comm.allreduce_max_(flag)[0] > 0)

    def _stop_message(self):
        why = self.stop.reason or "a stop request on another rank"
        return f"stopped by {why} at step {self.opt.t}; resume with --resume"

    # -- bookkeeping ------------------------------------------------------
    @staticmethod
    def _new_accumulators():
        return stats.new_accumulators(len(LAYOUT.names))

    def _log_epoch(self, log, epoch, step, lr, ev, acc, flat, times, wall_s):
        """Log and print one epoch.  ev: summed [train loss, train correct, test loss, test
        correct] (NaN if not evaluated); times: [compute, allreduce, optim, eval] seconds."""
        if not self.comm.is_root:
            return
        n_train, n_test = len(self.data.train_labels), len(self.data.test_labels)
        steps = acc["steps"]
        train_acc, test_acc = ev[1] / n_train, ev[3] / n_test
        noise = stats.noise_scale(acc)
        ips = steps * self.cfg.batch_size / acc["train_time"] if steps and acc["train_time"] > 0 else float("nan")
        record = dict(
            epoch=epoch, step=step, lr=lr, train_loss=ev[0] / n_train, train_acc=train_acc,
            test_loss=ev[2] / n_test, test_acc=test_acc, gen_error=train_acc - test_acc,
            step_loss=acc["loss_sum"] / steps if steps else float("nan"), wall_s=wall_s,
            time_compute=times[0], time_allreduce=times[1], time_optim=times[2], time_eval=times[3],
            images_per_s=ips, noise_scale=noise, world_size=self.comm.size,
        )
        weight_norm = [norm(flat[s]) for s in LAYOUT.slices]
        nan = np.full(len(LAYOUT.names), np.nan)
        log.append_epoch(record, dict(
            weight_norm=weight_norm,
            grad_norm=acc["grad_norm_sum"] / steps if steps else nan,
            local_lr=acc["local_sum"] / steps if steps else nan))
        log.flush()
        line = f"epoch {epoch:>3}/{self.cfg.epochs}"
        if epoch:
            line += f" step {step:>6} lr {lr:.3g}"
        if np.isnan(ev[1]) and not np.isnan(ev[3]):  # cut short by the target: test set only
            line += f"  test {100 * test_acc:6.2f}% (loss {record['test_loss']:.4f})  (target reached)"
        elif np.isnan(ev[1]):
            line += "  (not evaluated this epoch)"
        else:
            line += (f"  train {100 * train_acc:6.2f}% (loss {record['train_loss']:.4f})"
                     f"  test {100 * test_acc:6.2f}% (loss {record['test_loss']:.4f})"
                     f"  gen {100 * record['gen_error']:+.2f} pt")
        line += f"  {wall_s:7.1f}s"
        if epoch:
            line += f"  {ips:8.0f} img/s"
            if not self.shares.equal:
                line += f"  shares {self.shares.shares.min()}-{self.shares.shares.max()}"
        self.say(line)

    def _checkpoint(self):
        """Save the current position (self.epoch, self.k) with everything needed to continue."""
        ckpt.save(ckpt.checkpoint_path(self.cfg.out), self.flat, self.opt.state_dict(),
                  {"epoch": self.epoch, "batch": self.k, "wall_s": self.wall(), **self.evals.position()}, self.acc,
                  self.cfg.to_json(), self.comm.size)


def train(cfg, comm=None, kernels=None, data=None):
    """Run training as configured; returns the final status string."""
    return Trainer(cfg, comm, kernels, data).run()


__all__ = ["train", "Trainer", "DataError"]
