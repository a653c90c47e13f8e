"""Run control: stop requests, and the policy for an output that already exists.

- :class:`StopRequest`: SIGUSR1, SIGTERM, SIGINT or a stop file asks a run to checkpoint
  and exit (status "interrupted", exit code 75), so a batch system can requeue it.  How the
  ranks agree on a stop (inside the step's Allreduce, or one tiny Allreduce between phases)
  is the trainer's part (:mod:`hpclars.train`).
- :func:`prepare_output`: the resume policy.  Before any heavy work, rank 0 decides whether
  a run starts fresh, resumes from its checkpoint or has nothing to do, and refuses (one line
  naming the file) an output directory it cannot write or a log or checkpoint it cannot use.
  A resume may change only :data:`hpclars.config.RUN_CONTROL` fields.

Deliberately left out: writing logs and checkpoints (:mod:`hpclars.log`,
:mod:`hpclars.checkpoint`) and anything MPI (the caller runs :func:`prepare_output` on rank 0
and shares its answer).
"""

import errno
import os
import signal

import numpy as np

from . import checkpoint as ckpt
from . import config as C
from .h5io import write_atomically
from .log import FINISHED, LogError, read_log
from .model import LAYOUT
from .optim import make_optimizer


class StopRequest:
    """A stop asked of this rank: SIGUSR1, SIGTERM or SIGINT, or (rank 0 only) the stop file.

    Only rank 0 looks for the stop file: on a parallel file system that is one
    metadata call per step, not one per rank.  The flag reaches the other ranks
    through the step's Allreduce (or :meth:`hpclars.train.Trainer._agree_stop` between phases).
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
    if status in FINISHED:
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
