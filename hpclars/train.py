"""The data-parallel training loop.

One step on each rank: gather this rank's contiguous slice of the global batch
from a per-epoch permutation that every rank draws identically, accumulate the
gradient of the local images chunk by chunk, average it with ONE in-place
Allreduce of the flat buffer, then run the optimizer on identical data on every
rank (so LARS/LAMB norms need no communication).

The flat Allreduce buffer carries four extra float32 slots after the gradient:
the local summed loss, the local number correct, the squared norm of the local
mean gradient (for the gradient noise scale) and a stop flag.  They ride along
in the same call, so every rank learns the global minibatch loss, the noise
scale terms and whether any rank was asked to stop, with no extra message.

Only rank 0 prints and writes the log and checkpoints.  Evaluation is shared:
each rank evaluates a slice of the train and test sets and the sums are reduced.

Exit statuses: completed, diverged (a non-finite loss or gradient; the run
still counts as a result), interrupted (a stop signal or stop file: it
checkpointed and wants to be requeued).

Deliberately left out: data augmentation, gradient accumulation across steps (a
larger global batch is the same thing here) and overlapping the Allreduce with
the backward pass (it costs well under 1% of a step for this model).
"""

import math
import os
import signal
import sys
import time

import numpy as np

from . import checkpoint as ckpt
from . import config as C
from . import schedules
from .comm import Comm
from .data import ENV_VAR as DATA_ENV
from .data import DataError, load_mnist
from .log import RunLog, read_log
from .model import LAYOUT, LeNet, init_params
from .optim import make_optimizer, norm

EXTRA = 4  # loss_sum, n_correct, local grad squared norm, stop flag
# Config fields that may differ between a run and its resumption: they change
# where things go or how fast, not what is computed (beyond float rounding).
RUN_CONTROL = ("out", "overwrite", "resume", "stop_file", "progress", "data_dir",
               "threads", "chunk_size", "checkpoint_every", "preset")


class StopRequest:
    """Set by SIGUSR1/SIGTERM/SIGINT on this rank or by the stop file's existence."""

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)

    def __init__(self, stop_file):
        self.stop_file = stop_file
        self.flag = False
        self.signal_name = ""
        self._previous = {}

    def _handle(self, signum, frame):
        self.flag = True
        self.signal_name = signal.Signals(signum).name

    def install(self):
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)

    def uninstall(self):
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()

    def requested(self):
        if self.flag:
            return True
        return bool(self.stop_file) and os.path.exists(self.stop_file)


def noise_terms(local_sq_mean, global_sq, b, B):
    """Unbiased estimates of |G|^2 and tr(Sigma) from gradients at two batch sizes.

    McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", App. A:
    with E|g_b|^2 = |G|^2 + tr(Sigma)/b, the squared norms of the per-rank mean
    gradients (batch b, averaged over ranks: ``local_sq_mean``) and of the
    all-reduced one (batch B: ``global_sq``) give
    |G|^2 ~ (B |g_B|^2 - b |g_b|^2) / (B - b) and tr(Sigma) ~ (|g_b|^2 - |g_B|^2) / (1/b - 1/B).
    The gradient noise scale B_simple = tr(Sigma) / |G|^2 is the ratio of their
    sums over an epoch's steps (the ratio of single-step estimates is too noisy).
    """
    g2 = (B * global_sq - b * local_sq_mean) / (B - b)
    s = (local_sq_mean - global_sq) / (1.0 / b - 1.0 / B)
    return g2, s


def _config_mismatch(saved, cfg):
    """Fields that differ; a field newer than the checkpoint counts as its default."""
    now, default = cfg.__dict__, C.Config().__dict__
    return sorted(k for k in now if k not in RUN_CONTROL and saved.get(k, default[k]) != now[k])


def prepare_output(cfg, world_size):
    """Decide, on rank 0 and before any heavy work, whether to start, resume or stop.

    Returns ("fresh", None), ("resume", Checkpoint) or ("done", status).
    """
    out = os.path.abspath(cfg.out)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        probe = os.path.join(parent, f".hpclars-write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise C.ConfigError(f"--out: cannot write to directory {parent}: {exc.strerror}") from None
    ck_path = ckpt.checkpoint_path(out)
    if not os.path.exists(out):
        return ("fresh", None)
    if cfg.overwrite:
        for p in (out, ck_path):
            if os.path.exists(p):
                os.unlink(p)
        return ("fresh", None)
    try:
        status = read_log(out).status
    except (OSError, ValueError) as exc:
        raise C.ConfigError(f"--out: {out} exists but is not a readable hpclars log ({exc}); "
                            "pass --overwrite to replace it") from None
    if not cfg.resume:
        raise C.ConfigError(f"--out: {out} exists (status: {status}); pass --resume to continue it "
                            "or --overwrite to replace it")
    if status in ("completed", "diverged"):
        return ("done", status)
    if not os.path.exists(ck_path):
        return ("fresh", None)  # killed before its first checkpoint: nothing to continue
    saved = ckpt.load(ck_path)
    diff = _config_mismatch(saved.config, cfg)
    if diff:
        raise C.ConfigError(f"--resume: the checkpoint {ck_path} was made with different settings for "
                            f"{', '.join('--' + d.replace('_', '-') for d in diff)}")
    return ("resume", saved)


def _bcast_mnist(comm, data):
    """Rank 0 read the data; give every rank its own copy with buffer broadcasts."""
    from .data import MNIST

    shapes = comm.bcast_obj(None if data is None else
                            [(a.shape, a.dtype.str) for a in
                             (data.train_images, data.train_labels, data.test_images, data.test_labels)])
    # The loader hands out read-only arrays; MPI wants writable buffers (at any rank count).
    arrays = ([a if a.flags.writeable else a.copy() for a in
               (data.train_images, data.train_labels, data.test_images, data.test_labels)]
              if comm.is_root else [np.empty(s, dtype=np.dtype(d)) for s, d in shapes])
    for a in arrays:
        comm.bcast_(a)
    return MNIST(*arrays)


def load_data(data_dir, comm):
    """MNIST on every rank: rank 0 reads it, then broadcasts.

    Only the per-user cache is filled from the mirrors: a directory the user
    named (--data-dir or $HPCLARS_DATA) that lacks the files is an error, so a
    typo does not silently start a download into the wrong place.
    """
    named = bool(data_dir) or bool(os.environ.get(DATA_ENV))
    loaded = comm.on_root(lambda: load_mnist(data_dir or None, download=not named), share_result=False)
    return _bcast_mnist(comm, loaded)


class Progress:
    """A progress indicator on rank 0's stderr: live on a terminal, sparse in a batch log.

    On a terminal it redraws one line 4 times a second; in a batch log (stderr not a
    terminal) it writes a line only every 30 s, so short epochs leave none.
    """

    def __init__(self, enabled):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.interval = 0.25 if self.tty else 30.0
        self.last = None  # when the indicator was last drawn in this epoch

    def update(self, epoch, epochs, k, steps, loss):
        if not self.enabled:
            return
        now = time.monotonic()
        if self.last is None:
            self.last = now - self.interval if self.tty else now
        if now - self.last < self.interval:
            return
        self.last = now
        frac = (k + 1) / steps
        bar = "#" * int(frac * 20)
        msg = f"epoch {epoch}/{epochs} [{bar:<20}] {100 * frac:5.1f}% step {k + 1}/{steps} loss {loss:.4f}"
        sys.stderr.write(("\r" + msg) if self.tty else (msg + "\n"))
        sys.stderr.flush()

    def done(self):
        if self.enabled and self.tty and self.last is not None:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()
        self.last = None


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
        mode, payload = comm.on_root(lambda: prepare_output(cfg, comm.size))
        if mode == "done":
            self.say(f"{cfg.out}: already {payload}; nothing to do")
            return payload
        if self._data is None:
            self._data = load_data(cfg.data_dir, comm)
        self.data = self._data
        try:
            return self._train(payload if mode == "resume" else None)
        except Exception as exc:
            if self.log is not None:  # leave a log that says what happened
                self.log.set_status("failed", f"{type(exc).__name__}: {exc}")
                self.log.flush()
            raise

    def _train(self, saved):
        cfg, comm, k = self.cfg, self.comm, self.kernels
        B, N = cfg.batch_size, comm.size
        b = B // N
        spe = C.steps_per_epoch(cfg)
        total = C.total_steps(cfg)

        flat = self.flat = np.zeros(LAYOUT.size, dtype=np.float32)
        gbuf = np.zeros(LAYOUT.size + EXTRA, dtype=np.float32)
        grads = gbuf[:LAYOUT.size]
        P, G = LAYOUT.views(flat), LAYOUT.views(grads)
        opt = make_optimizer(cfg, LAYOUT)
        model = LeNet(k, min(cfg.chunk_size, max(b, 1)), cfg.threads)
        eval_model = LeNet(k, cfg.chunk_size, cfg.threads) if cfg.chunk_size > b else model

        if saved is None:
            if comm.is_root:
                init_params(flat, cfg.seed)
            comm.bcast_(flat)
            epoch, start_k, wall0 = 1, 0, 0.0
            acc = self._new_accumulators()
        else:
            flat[...] = saved.params
            opt.load_state_dict(saved.optimizer_state)
            pos = saved.position
            epoch, start_k, wall0 = pos["epoch"], pos["batch"], pos["wall_s"]
            acc = {**self._new_accumulators(), **saved.accumulators}

        log = None
        if comm.is_root:
            if saved is None:
                log = self.log = RunLog.create(cfg.out, cfg.to_json(), N, LAYOUT.names, LAYOUT.size,
                                    schedules.describe(cfg))
            else:
                log = self.log = RunLog.reopen(cfg.out, keep_epochs_through=epoch - 1)
                log.attrs["world_size"] = N
        t_start = time.perf_counter()

        def wall():
            return wall0 + time.perf_counter() - t_start

        if saved is None:
            self.say(f"hpclars: {cfg.optimizer} batch {B} on {N} rank(s) x {cfg.threads} thread(s), "
                     f"{spe} steps/epoch, {cfg.epochs} epochs -> {cfg.out}")
            t0 = time.perf_counter()
            ev = self._evaluate(P, eval_model)
            times = comm.allreduce_max_(np.array([np.nan, np.nan, np.nan, time.perf_counter() - t0]))
            self._log_epoch(log, 0, opt.t, schedules.lr_at(cfg, 0), ev, acc, flat, times, wall())
        else:
            self.say(f"hpclars: resuming {cfg.out} at epoch {epoch}, batch {start_k}, step {opt.t}")

        stop = StopRequest(cfg.stop_file)
        stop.install()
        progress = Progress(cfg.progress and comm.is_root)
        status, message = "completed", ""
        try:
            while epoch <= cfg.epochs and opt.t < total:
                perm = np.random.default_rng([cfg.seed, epoch]).permutation(C.TRAIN_SIZE)
                k_step = start_k
                t_epoch = time.perf_counter()
                while k_step < spe and opt.t < total:
                    lo = k_step * B + comm.rank * b
                    idx = perm[lo:lo + b]
                    images, labels = self.data.train_images[idx], self.data.train_labels[idx]
                    t0 = time.perf_counter()
                    gbuf[...] = 0
                    loss, correct = model.forward_backward(P, G, images, labels, 1.0 / b)
                    gbuf[-4] = loss
                    gbuf[-3] = correct
                    gbuf[-2] = np.dot(grads, grads)
                    gbuf[-1] = 1.0 if stop.requested() else 0.0
                    t1 = time.perf_counter()
                    comm.allreduce_sum_(gbuf)
                    if N > 1:
                        grads *= np.float32(1.0 / N)
                    t2 = time.perf_counter()
                    step_loss = float(gbuf[-4]) / B
                    g2 = float(np.dot(grads.astype(np.float64), grads.astype(np.float64)))
                    if not (math.isfinite(step_loss) and math.isfinite(g2)):
                        status = "diverged"
                        message = f"non-finite {'loss' if not math.isfinite(step_loss) else 'gradient'} at step {opt.t}"
                        break
                    lr = schedules.lr_at(cfg, opt.t)
                    opt.step(flat, grads, lr)
                    t3 = time.perf_counter()
                    self._accumulate(acc, opt, step_loss, float(gbuf[-2]) / N, g2, b, B, N,
                                     (t1 - t0, t2 - t1, t3 - t2))
                    acc["last_lr"] = lr
                    k_step += 1
                    progress.update(epoch, cfg.epochs, k_step - 1, spe, step_loss)
                    if gbuf[-1] > 0:
                        status = "interrupted"
                        why = stop.signal_name or (f"stop file {cfg.stop_file}" if stop.requested()
                                                   else "a signal on another rank")
                        message = f"stopped by {why} at step {opt.t}; resume with --resume"
                        break
                progress.done()
                if status != "completed":
                    break
                acc["train_time"] += time.perf_counter() - t_epoch
                t0 = time.perf_counter()
                last = epoch == cfg.epochs or opt.t >= total
                if last or epoch % cfg.eval_every == 0:
                    ev = self._evaluate(P, eval_model)
                else:
                    ev = np.full(4, np.nan)  # logged as NaN: this epoch was not evaluated
                times = np.array([acc["time_compute"], acc["time_allreduce"], acc["time_optim"],
                                  time.perf_counter() - t0])
                comm.allreduce_max_(times)
                self._log_epoch(log, epoch, opt.t, acc["last_lr"], ev, acc, flat, times, wall())
                acc = self._new_accumulators()
                epoch, start_k = epoch + 1, 0
                if comm.is_root and cfg.checkpoint_every and (epoch - 1) % cfg.checkpoint_every == 0 \
                        and epoch <= cfg.epochs and opt.t < total:
                    self._checkpoint(flat, opt, epoch, 0, acc, wall())
        finally:
            stop.uninstall()

        if status == "interrupted" and comm.is_root:
            acc["train_time"] += time.perf_counter() - t_epoch  # the part of the epoch done here
            self._checkpoint(flat, opt, epoch, k_step, acc, wall())
        if comm.is_root:
            if not comm.same_everywhere(flat):  # collective: every rank calls it
                status, message = "failed", "parameters differ between ranks"
        elif N > 1:
            comm.same_everywhere(flat)
        if comm.is_root:
            log.set_status(status, message)
            log.set_params(P)
            log.flush()
            if status in ("completed", "diverged"):
                path = ckpt.checkpoint_path(cfg.out)
                if os.path.exists(path):
                    os.unlink(path)
            final = f" ({message})" if message else ""
            self.say(f"hpclars: {status}{final}; log {cfg.out}")
        return status

    # -- bookkeeping ------------------------------------------------------
    @staticmethod
    def _new_accumulators():
        n = len(LAYOUT.names)
        return {"steps": 0, "loss_sum": 0.0, "grad_norm_sum": np.zeros(n), "local_sum": np.zeros(n),
                "noise_s": 0.0, "noise_g2": 0.0, "time_compute": 0.0, "time_allreduce": 0.0,
                "time_optim": 0.0, "train_time": 0.0, "last_lr": float("nan")}

    @staticmethod
    def _accumulate(acc, opt, step_loss, local_g2_mean, g2, b, B, N, times):
        acc["steps"] += 1
        acc["loss_sum"] += step_loss
        acc["grad_norm_sum"] += opt.g_norm
        acc["local_sum"] += opt.local
        if N > 1:
            g2_est, s_est = noise_terms(local_g2_mean, g2, b, B)
            acc["noise_g2"] += g2_est
            acc["noise_s"] += s_est
        acc["time_compute"] += times[0]
        acc["time_allreduce"] += times[1]
        acc["time_optim"] += times[2]

    def _log_epoch(self, log, epoch, step, lr, ev, acc, flat, times, wall_s):
        """Log and print one epoch.  ev: summed [train loss, train correct, test loss, test
        correct] (NaN if not evaluated); times: [compute, allreduce, optim, eval] seconds."""
        if not self.comm.is_root:
            return
        n_train, n_test = len(self.data.train_labels), len(self.data.test_labels)
        steps = acc["steps"]
        train_acc, test_acc = ev[1] / n_train, ev[3] / n_test
        noise = acc["noise_s"] / acc["noise_g2"] if steps and acc["noise_g2"] > 0 else float("nan")
        ips = steps * self.cfg.batch_size / acc["train_time"] if steps and acc["train_time"] > 0 else float("nan")
        record = dict(
            epoch=epoch, step=step, lr=lr, train_loss=ev[0] / n_train, train_acc=train_acc,
            test_loss=ev[2] / n_test, test_acc=test_acc, gen_error=train_acc - test_acc,
            step_loss=acc["loss_sum"] / steps if steps else float("nan"), wall_s=wall_s,
            time_compute=times[0], time_allreduce=times[1], time_optim=times[2], time_eval=times[3],
            images_per_s=ips, noise_scale=noise,
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
        if np.isnan(ev[1]):
            line += "  (not evaluated this epoch)"
        else:
            line += (f"  train {100 * train_acc:6.2f}% (loss {record['train_loss']:.4f})"
                     f"  test {100 * test_acc:6.2f}% (loss {record['test_loss']:.4f})"
                     f"  gen {100 * record['gen_error']:+.2f} pt")
        line += f"  {wall_s:7.1f}s"
        if epoch:
            line += f"  {ips:8.0f} img/s"
        self.say(line)

    def _checkpoint(self, flat, opt, epoch, batch, acc, wall_s):
        ckpt.save(ckpt.checkpoint_path(self.cfg.out), flat, opt.state_dict(),
                  {"epoch": epoch, "batch": batch, "wall_s": wall_s}, acc,
                  self.cfg.to_json(), self.comm.size)


def train(cfg, comm=None, kernels=None, data=None):
    """Run training as configured; returns the final status string."""
    return Trainer(cfg, comm, kernels, data).run()


__all__ = ["train", "Trainer", "DataError", "prepare_output", "load_data"]
