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

Exit statuses: completed, diverged (a non-finite loss, gradient, parameter or
optimizer state; the run still counts as a result), interrupted (a stop signal
or stop file: it checkpointed and wants to be requeued).

Stops: between phases (after loading the data, after an epoch's evaluation and
checkpoint) the ranks agree on the stop flag with one tiny Allreduce; during an
epoch it rides in the step's.  The checkpoint then records the exact position,
including "all steps of this epoch done, evaluation not yet", so a resume
reaches the uninterrupted run's log whatever the moment of the stop.  A resume
may run on another number of ranks (see README.md, "Guarantees").

With --overlap-allreduce the same buffer is summed in pieces instead: one
non-blocking Allreduce per layer, started as soon as the backward pass has
produced that layer's gradient, and one for the four extra slots; the step waits
for all of them before the optimizer (:class:`OverlappedGradients`).

Deliberately left out: data augmentation and gradient accumulation across steps
(a larger global batch is the same thing here).
"""

import errno
import json
import math
import os
import signal
import socket
import time

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import checkpoint as ckpt
from . import config as C
from . import schedules
from .comm import Comm
from .data import ENV_VAR as DATA_ENV
from .data import DataError, load_mnist
from .h5io import write_atomically
from .log import LogError, RunLog, read_log
from .model import LAYOUT, LeNet, init_params, layer_slices
from .optim import make_optimizer, norm

EXTRA = 4  # loss_sum, n_correct, local grad squared norm, stop flag


class OverlappedGradients:
    """--overlap-allreduce: the step's buffer summed layer by layer while backward runs.

    ``layer_done`` is the model's ``on_layer_done``: it takes the layer's local squared
    norm (for the noise scale; summed per layer, so it may differ from the blocking
    path's single dot product in the last bits) and starts that layer's Allreduce;
    ``finish`` starts the extra slots' and waits for all.
    """

    def __init__(self, comm, gbuf):
        self.reducer = comm.overlapped_sum(gbuf, {**layer_slices(LAYOUT), "extra": slice(LAYOUT.size, None)})
        self.local_sq = 0.0

    def layer_done(self, layer):
        g = self.reducer.views[layer]
        self.local_sq += float(np.dot(g, g))
        self.reducer.start(layer)

    def take_local_sq(self):
        sq, self.local_sq = self.local_sq, 0.0
        return sq

    def finish(self):
        self.reducer.start("extra")
        self.reducer.wait()


class StopRequest:
    """A stop asked of this rank: SIGUSR1, SIGTERM or SIGINT, or (rank 0 only) the stop file.

    Only rank 0 looks for the stop file: on a parallel file system that is one
    metadata call per step, not one per rank.  The flag reaches the other ranks
    through the step's Allreduce (or :meth:`Trainer._agree_stop` between phases).
    The handlers are installed before any data is loaded, so a stop at any moment
    ends in a clean, resumable state instead of a KeyboardInterrupt per rank.
    """

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)

    def __init__(self, stop_file, poll_file):
        self.stop_file = stop_file if poll_file else ""
        self.reason = ""  # what asked this rank to stop, "" while nothing did
        self._previous = {}

    def _handle(self, signum, frame):
        self.reason = self.reason or signal.Signals(signum).name

    def install(self):
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)

    def uninstall(self):
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()

    def requested(self):
        if not self.reason and self.stop_file and os.path.exists(self.stop_file):
            self.reason = f"stop file {self.stop_file}"
        return bool(self.reason)


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
    return sorted(k for k in now if k not in C.RUN_CONTROL and saved.get(k, default[k]) != now[k])


def prepare_output(cfg, world_size):
    """Decide, on rank 0 and before any heavy work, whether to start, resume or stop.

    Returns ("fresh", None), ("resume", Checkpoint) or ("done", status).  Raises
    ConfigError (one line naming the file) for an output directory where an HDF5
    file cannot be written, or an existing log or checkpoint that cannot be used.
    """
    out = os.path.abspath(cfg.out)
    _check_writable(os.path.dirname(out))
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
    except LogError as exc:
        raise C.ConfigError(f"--out: {exc}; pass --overwrite to replace it") from None
    if not cfg.resume:
        raise C.ConfigError(f"--out: {out} exists (status: {status}); pass --resume to continue it "
                            "or --overwrite to replace it")
    if status in ("completed", "diverged"):
        return ("done", status)
    if not os.path.exists(ck_path):
        return ("fresh", None)  # killed before its first checkpoint: nothing to continue
    try:
        saved = ckpt.load(ck_path)
    except ckpt.CheckpointError as exc:
        raise C.ConfigError(f"--resume: {exc}; delete it to restart the run from the beginning, "
                            "or pass --overwrite") from None
    diff = _config_mismatch(saved.config, cfg)
    if diff:
        raise C.ConfigError(f"--resume: the checkpoint {ck_path} was made with different settings for "
                            f"{', '.join('--' + d.replace('_', '-') for d in diff)}")
    _check_checkpoint_content(saved, ck_path, cfg)
    return ("resume", saved)


def _check_writable(directory):
    """Create, fsync, rename and delete a small HDF5 file in ``directory`` as the log writer does.

    Catches what would otherwise fail only after the data is loaded and epoch 0 is
    evaluated: a read-only or missing directory, or HDF5 refusing the file system.
    """
    probe = os.path.join(directory, f".hpclars-write-test-{os.getpid()}.h5")
    try:
        os.makedirs(directory, exist_ok=True)
        write_atomically(probe, lambda f: f.attrs.__setitem__("probe", 1))
        os.unlink(probe)
    except OSError as exc:
        what = exc.strerror or " ".join(str(exc).split())
        hint = ("file locking fails on this file system and hpclars does not need it: unset "
                "HDF5_USE_FILE_LOCKING (or set it to FALSE)" if exc.errno == errno.ENOLCK
                else "choose a writable directory")
        raise C.ConfigError(f"--out: cannot write to directory {directory}: {what}; {hint}") from None


def _check_checkpoint_content(saved, path, cfg):
    """The checkpoint's arrays and position fit this model, optimizer and run."""
    state_names = make_optimizer(cfg, LAYOUT).state_names
    sizes = {"params": saved.params.size, **{k: np.size(saved.optimizer_state.get(k)) for k in state_names}}
    wrong = [f"{k} has {n} values, expected {LAYOUT.size}" for k, n in sizes.items() if n != LAYOUT.size]
    pos = saved.position
    if not (1 <= pos.get("epoch", 0) <= cfg.epochs and 0 <= pos.get("batch", -1) <= C.steps_per_epoch(cfg)):
        wrong.append(f"position {pos} is outside the run")
    if wrong:
        raise C.ConfigError(f"--resume: {path}: {'; '.join(wrong)}; delete it to restart the run "
                            "from the beginning, or pass --overwrite")


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
        a.flags.writeable = False  # as the loader hands them out
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
        if self._data is None:
            self._data = load_data(cfg.data_dir, comm)
        self.data = self._data
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
        cfg, comm, k = self.cfg, self.comm, self.kernels
        B, N = cfg.batch_size, comm.size
        b = B // N

        flat = self.flat = np.zeros(LAYOUT.size, dtype=np.float32)
        self.last_finite = np.zeros_like(flat)  # parameters before the step, for a diverged log
        self.gbuf = np.zeros(LAYOUT.size + EXTRA, dtype=np.float32)
        self.P, self.G = LAYOUT.views(flat), LAYOUT.views(self.gbuf[:LAYOUT.size])
        opt = self.opt = make_optimizer(cfg, LAYOUT)
        self.model = LeNet(k, min(cfg.chunk_size, max(b, 1)), cfg.threads)
        self.overlap = OverlappedGradients(comm, self.gbuf) if cfg.overlap_allreduce else None
        self.eval_model = LeNet(k, cfg.chunk_size, cfg.threads) if cfg.chunk_size > b else self.model

        if saved is None:
            if comm.is_root:
                init_params(flat, cfg.seed, cfg.init)
            comm.bcast_(flat)
            self.epoch, self.k, wall0 = 1, 0, 0.0
            self.acc = self._new_accumulators()
        else:
            flat[...] = saved.params
            opt.load_state_dict(saved.optimizer_state)
            pos = saved.position
            self.epoch, self.k, wall0 = pos["epoch"], pos["batch"], pos["wall_s"]
            self.acc = {**self._new_accumulators(), **saved.accumulators}
            if "noise_steps" not in saved.accumulators:  # older checkpoint: one world size so far
                self.acc["noise_steps"] = self.acc["steps"] if saved.world_size > 1 else 0

        log = None
        hosts = comm.gather_obj(socket.gethostname())  # collective: every rank calls it
        if comm.is_root:
            if saved is None:
                log = self.log = RunLog.create(cfg.out, cfg.to_json(), N, LAYOUT.names, LAYOUT.size,
                                    schedules.describe(cfg))
            else:
                log = self.log = RunLog.reopen(cfg.out, keep_epochs_through=self.epoch - 1)
                log.attrs["world_size"] = N
            log.attrs["rank_hosts"] = json.dumps(hosts)
        t_start = time.perf_counter()
        self.wall = lambda: wall0 + time.perf_counter() - t_start

        if saved is None:
            self.say(f"hpclars: {cfg.optimizer} batch {B} on {N} rank(s) x {cfg.threads} thread(s), "
                     f"{C.describe_steps(cfg)} -> {cfg.out}")
            t0 = time.perf_counter()
            ev = self._evaluate(self.P, self.eval_model)
            times = comm.allreduce_max_(np.array([np.nan, np.nan, np.nan, time.perf_counter() - t0]))
            self._log_epoch(log, 0, opt.t, schedules.lr_at(cfg, 0), ev, self.acc, flat, times, self.wall())
        else:
            self.say(f"hpclars: resuming {cfg.out} at epoch {self.epoch}, batch {self.k}, step {opt.t}"
                     + self._world_change(saved.world_size))

        status, message = self._loop()
        return self._finish(status, message)

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
            if status:
                return status, message
            if self._end_epoch():
                return "completed", ""
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
        try:
            while self.k < spe and self.opt.t < total:
                status, message = self._step(perm)
                if status:
                    return status, message
            return "", ""
        finally:
            self.acc["train_time"] += time.perf_counter() - t_epoch
            self.bar.close()

    def _step(self, perm):
        """One optimizer step (batch self.k of the epoch); returns (status, message) as _epoch_steps."""
        cfg, comm, opt, gbuf = self.cfg, self.comm, self.opt, self.gbuf
        B, N = cfg.batch_size, comm.size
        b = B // N
        grads = gbuf[:LAYOUT.size]
        lo = self.k * B + comm.rank * b
        idx = perm[lo:lo + b]
        images, labels = self.data.train_images[idx], self.data.train_labels[idx]
        t0 = time.perf_counter()
        gbuf[...] = 0
        overlap = self.overlap
        loss, correct = self.model.forward_backward(self.P, self.G, images, labels, 1.0 / b,
                                                    overlap and overlap.layer_done)
        gbuf[-4] = loss
        gbuf[-3] = correct
        gbuf[-2] = overlap.take_local_sq() if overlap else np.dot(grads, grads)
        gbuf[-1] = 1.0 if self.stop.requested() else 0.0
        t1 = time.perf_counter()
        if overlap:  # time_allreduce is then the communication left exposed
            overlap.finish()
        else:
            comm.allreduce_sum_(gbuf)
        if N > 1:
            grads *= np.float32(1.0 / N)
        t2 = time.perf_counter()
        step_loss = float(gbuf[-4]) / B
        g2 = float(np.dot(grads.astype(np.float64), grads.astype(np.float64)))
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
        self._accumulate(self.acc, opt, step_loss, float(gbuf[-2]) / N, g2, b, B, N,
                         (t1 - t0, t2 - t1, t3 - t2))
        self.acc["last_lr"] = lr
        self.k += 1
        self.bar.set_postfix_str(f"loss {step_loss:.4f}", refresh=False)
        self.bar.update()
        if gbuf[-1] > 0:
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
            if status in ("completed", "diverged"):
                path = ckpt.checkpoint_path(cfg.out)
                if os.path.exists(path):
                    os.unlink(path)
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
        n = len(LAYOUT.names)
        return {"steps": 0, "loss_sum": 0.0, "grad_norm_sum": np.zeros(n), "local_sum": np.zeros(n),
                "noise_s": 0.0, "noise_g2": 0.0, "noise_steps": 0, "time_compute": 0.0, "time_allreduce": 0.0,
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
            acc["noise_steps"] += 1
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
        # Only an epoch whose every step ran on >= 2 ranks has the estimate (a resume on one
        # rank leaves part of the epoch unmeasured; a part-epoch figure would mislead).
        measured = steps and acc["noise_steps"] == steps and acc["noise_g2"] > 0
        noise = acc["noise_s"] / acc["noise_g2"] if measured else float("nan")
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

    def _checkpoint(self):
        """Save the current position (self.epoch, self.k) with everything needed to continue."""
        ckpt.save(ckpt.checkpoint_path(self.cfg.out), self.flat, self.opt.state_dict(),
                  {"epoch": self.epoch, "batch": self.k, "wall_s": self.wall()}, self.acc,
                  self.cfg.to_json(), self.comm.size)


def train(cfg, comm=None, kernels=None, data=None):
    """Run training as configured; returns the final status string."""
    return Trainer(cfg, comm, kernels, data).run()


__all__ = ["train", "Trainer", "DataError", "prepare_output", "load_data"]
