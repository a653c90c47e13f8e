"""HDF5 run logs: the writer the trainer uses and the reader analysis uses.

One file per run.  The schema is defined once, below, as data: :data:`ROOT_ATTRS`,
:data:`EPOCH_FIELDS` and :data:`TENSOR_FIELDS` (name -> meaning) and :data:`GROUPS`;
:func:`schema` writes it out (``hpclars schema`` prints it, and it ends this docstring).

Writes are atomic (:func:`hpclars.h5io.write_atomically`): the whole file is rewritten to a temporary name, flushed,
fsync'ed and renamed over the old one, so a process killed at any moment leaves
either the previous or the new complete log, never a corrupt one.  Logs are
small (a few KB per epoch), so rewriting costs milliseconds per epoch.

Deliberately left out: per-step records (the per-epoch means and the timings are
what the analysis needs; a per-step log would dwarf the model) and the checkpoint.
"""

import dataclasses
import datetime
import json
import os
import socket

import h5py
import numpy as np

from . import __version__
from .config import normalize
from .h5io import read_hdf5, write_atomically

FORMAT = "hpclars-log"
FORMAT_VERSION = 1
STATUSES = ("running", "completed", "target_reached", "diverged", "failed", "interrupted")
# A run with one of these is over: a resume or a sweep does not run it again, and the analysis
# counts it as a result.
FINISHED = ("completed", "target_reached", "diverged")

ROOT_ATTRS = {
    "format": '"hpclars-log"',
    "format_version": "1",
    "config": "the full resolved Config, JSON (read it as RunData.config: today's field names)",
    "status": "running | completed | target_reached | diverged | failed | interrupted "
              "(target_reached: --target-accuracy was reached and the run ended there, its "
              "remaining budget unused)",
    "message": 'why the run ended that way ("" when completed)',
    "world_size": "MPI ranks of the latest start or resume (per epoch: /epochs/world_size)",
    "n_params": "number of parameters (the flat buffer's length)",
    "schedule": "the learning-rate schedule and its parameters, JSON",
    "hpclars_version": "the package version",
    "hostname": "host of rank 0 when the log was created",
    "created": "when the log was created, ISO 8601 UTC",
    "tensor_names": "the parameter tensors, in buffer order (the columns of /tensors)",
    "rank_hosts": "JSON list: the host of each rank, by rank, of the latest attempt (a requeued "
                  "run may land on other nodes); absent in older logs",
    "targets": 'JSON {"0.97": {"step", "epoch", "wall_s", "train_s"} or null, ...}: where each '
               "target (0.97, 0.98, 0.99 and --target-accuracy) was first reached by an evaluation "
               "(hpclars.target.first_reached); absent in older logs",
    "environment": "JSON: what ran it, of the latest attempt (hpclars.provenance.environment: "
                   "git_commit, cpu_model, mpi_library, blas, kernel_path); absent in older logs",
    "rank_shares": 'JSON [{"step": t, "shares": [images of rank 0, 1, ...]}, ...]: the split of the '
                   "global batch from optimizer step t + 1 on, one entry per start, resume and "
                   "change (hpclars.balance); only in runs that had --rank-weights or --balance-every",
}
GROUPS = {
    "/epochs/<field>": "1-D, one entry per logged epoch; epoch 0 is the evaluation before any "
                       "training.  Fields: EPOCH_FIELDS",
    "/tensors/<field>": "2-D (epochs, tensors), columns in tensor_names order.  Fields: TENSOR_FIELDS",
    "/evals/<field>": "1-D, one entry per evaluation of the test set, in step order: epoch 0, every "
                      "evaluated epoch end and every --eval-every-steps evaluation.  Fields: "
                      "EVAL_FIELDS.  Absent in older logs (read_log then gives empty arrays)",
    "/params/<tensor>": "the parameters at the end of the run (for a diverged or interrupted run "
                        "the last finite ones; absent while running)",
}
EPOCH_FIELDS = {
    "epoch": "0 = before training",
    "step": "optimizer steps taken so far",
    "lr": "global learning rate of the epoch's last step (the first step's rate at epoch 0)",
    "train_loss": "mean cross-entropy over the full 60k training set, evaluated after the epoch",
    "train_acc": "accuracy over the training set, a fraction in [0, 1]",
    "test_loss": "mean cross-entropy over the 10k test set",
    "test_acc": "accuracy over the test set, a fraction in [0, 1]",
    "gen_error": "train_acc - test_acc",
    "step_loss": "mean of the minibatch losses seen during the epoch's steps (higher than train_loss)",
    "wall_s": "wall seconds since the run started (across restarts)",
    "time_compute": "seconds in forward+backward this epoch (max over ranks)",
    "time_allreduce": "seconds in the gradient Allreduce (max over ranks; with --overlap-allreduce "
                      "the wait before the optimizer, the communication backward did not hide)",
    "time_optim": "seconds in the optimizer step (max over ranks)",
    "time_eval": "seconds evaluating (max over ranks)",
    "images_per_s": "training images per second over the epoch's steps",
    "noise_scale": "gradient noise scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018; "
                   "hpclars.stats), NaN unless every step of the epoch had >= 2 ranks",
    "world_size": "MPI ranks that ended the epoch (a resume may change it)",
}
TENSOR_FIELDS = {
    "weight_norm": "||w|| of each tensor at the end of the epoch",
    "grad_norm": "mean over the epoch's steps of ||g|| (NaN at epoch 0)",
    "local_lr": "mean over the epoch's steps of the factor multiplying the global rate: LARS's "
                "local rate, LAMB's trust ratio, 1 for SGD and Adam (NaN at epoch 0)",
}
NAN_NOTE = ("NaN marks what does not exist: timings and step_loss at epoch 0, the metrics of "
            "epochs skipped by --eval-every, the noise scale with one rank.  A run that reaches "
            "--target-accuracy in the middle of an epoch ends with a partial epoch: its record has "
            "the step and test metrics of that evaluation and NaN train metrics.")


def schema():
    """The log schema as text: every root attribute, group and field with its meaning."""
    def block(title, entries):
        width = max(map(len, entries))
        return [title] + [f"    {k.ljust(width)}  {v}" for k, v in entries.items()]

    lines = [f'format "{FORMAT}", version {FORMAT_VERSION}', ""]
    lines += block("root attributes", ROOT_ATTRS) + [""] + block("groups", GROUPS) + [""]
    lines += block("/epochs fields", EPOCH_FIELDS) + [""] + block("/tensors fields", TENSOR_FIELDS)
    lines += [""] + block("/evals fields", EVAL_FIELDS)
    return "\n".join(lines + ["", NAN_NOTE])


# A diverged run counts as chance level wherever runs are scored (tune's ranking, the figures,
# the forensics): its last logged accuracies describe parameters that no longer exist.
DIVERGED_SCORES = {"train_acc": 0.1, "test_acc": 0.1, "gen_error": 0.0}  # 1 of 10 classes; no gap
INT_FIELDS = ("epoch", "step", "world_size")
EVAL_FIELDS = {
    "step": "optimizer steps taken when the test set was evaluated",
    "epoch": "epochs completed, fractional: step / steps per epoch",
    "wall_s": "wall seconds since the run started (across restarts), at the evaluation's end",
    "train_s": "seconds spent in optimizer steps so far (data, forward, backward, Allreduce, update): "
               "the wall time without evaluations, logging and checkpoints (AlgoPerf's accumulated "
               "submission time)",
    "eval_s": "seconds this evaluation took (rank 0, including its reduction)",
    "test_loss": "mean cross-entropy over the 10k test set",
    "test_acc": "accuracy over the test set, a fraction in [0, 1]",
}


class RunLog:
    """The log of one run, held in memory and rewritten atomically on flush."""

    def __init__(self, path, attrs, tensor_names):
        self.path = os.fspath(path)
        self.attrs = dict(attrs)
        self.tensor_names = list(tensor_names)
        self.epochs = {f: [] for f in EPOCH_FIELDS}
        self.tensors = {f: [] for f in TENSOR_FIELDS}
        self.evals = {f: [] for f in EVAL_FIELDS}
        self.params = None

    @classmethod
    def create(cls, path, config_json, world_size, tensor_names, n_params, schedule):
        attrs = dict(
            format=FORMAT, format_version=FORMAT_VERSION, config=config_json,
            status="running", message="", world_size=int(world_size),
            hpclars_version=__version__, hostname=socket.gethostname(),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            n_params=int(n_params), schedule=json.dumps(schedule, sort_keys=True),
        )
        return cls(path, attrs, tensor_names)

    @classmethod
    def reopen(cls, path, keep_epochs_through, keep_evals_through_step=None):
        """Continue an existing log, dropping epochs after ``keep_epochs_through`` and
        evaluations after step ``keep_evals_through_step`` (None: keep all)."""
        data = read_log(path)
        log = cls(path, data.attrs, data.tensor_names)
        keep = data.epochs["epoch"] <= keep_epochs_through
        for f in EPOCH_FIELDS:
            log.epochs[f] = list(data.epochs[f][keep])
        last = np.inf if keep_evals_through_step is None else keep_evals_through_step
        keep_evals = data.evals["step"] <= last
        for f in EVAL_FIELDS:
            log.evals[f] = list(data.evals[f][keep_evals])
        for f in TENSOR_FIELDS:
            log.tensors[f] = [row for row in data.tensors[f][keep]]
        log.attrs["status"] = "running"
        log.attrs["message"] = ""
        return log

    @property
    def n_epochs(self):
        return len(self.epochs["epoch"])

    def append_epoch(self, record, tensor_record):
        missing = set(EPOCH_FIELDS) - set(record)
        if missing:
            raise KeyError(f"epoch record lacks {sorted(missing)}")
        for f in EPOCH_FIELDS:
            self.epochs[f].append(record[f])
        for f in TENSOR_FIELDS:
            self.tensors[f].append(np.asarray(tensor_record[f], dtype=np.float64))

    def append_eval(self, record):
        """One evaluation of the test set (a dict with every field of EVAL_FIELDS)."""
        missing = set(EVAL_FIELDS) - set(record)
        if missing:
            raise KeyError(f"evaluation record lacks {sorted(missing)}")
        for f in EVAL_FIELDS:
            self.evals[f].append(record[f])

    def set_status(self, status, message=""):
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        self.attrs["status"] = status
        self.attrs["message"] = message

    def set_params(self, views):
        self.params = {name: np.array(v) for name, v in views.items()}

    def flush(self):
        write_atomically(self.path, self._fill)

    def _fill(self, f):
        for k, v in self.attrs.items():
            f.attrs[k] = v
        f.attrs["tensor_names"] = np.array(self.tensor_names, dtype=h5py.string_dtype())
        g = f.create_group("epochs")
        for name in EPOCH_FIELDS:
            dtype = np.int64 if name in INT_FIELDS else np.float64
            g.create_dataset(name, data=np.array(self.epochs[name], dtype=dtype))
        g = f.create_group("tensors")
        k = len(self.tensor_names)
        for name in TENSOR_FIELDS:
            rows = np.array(self.tensors[name], dtype=np.float64).reshape(-1, k)
            g.create_dataset(name, data=rows)
        g = f.create_group("evals")
        for name in EVAL_FIELDS:
            g.create_dataset(name, data=np.array(self.evals[name], dtype=np.int64 if name == "step" else np.float64))
        if self.params is not None:
            g = f.create_group("params")
            for name, value in self.params.items():
                g.create_dataset(name, data=value)


@dataclasses.dataclass
class RunData:
    """What :func:`read_log` returns; plain arrays, the file is closed."""

    path: str
    attrs: dict          # root attributes, decoded (str, int, float)
    epochs: dict         # field -> 1-D array, one entry per logged epoch
    tensors: dict        # field -> 2-D array (epochs, tensors)
    tensor_names: list
    params: dict | None  # tensor -> array at the end of the run; None while running
    evals: dict = dataclasses.field(default_factory=lambda: _no_evals())  # /evals: field -> 1-D array

    @property
    def config(self):
        """The run's Config as a dict in today's fields (:func:`config.normalize`)."""
        return normalize(json.loads(self.attrs["config"]))

    @property
    def status(self):
        return self.attrs["status"]

    @property
    def world_size(self):
        return int(self.attrs["world_size"])

    @property
    def environment(self):
        """What ran the latest attempt: git_commit, cpu_model, mpi_library, blas, kernel_path
        (:func:`hpclars.provenance.environment`); {} for logs older than the attribute."""
        return json.loads(self.attrs.get("environment", "{}"))

    @property
    def rank_hosts(self):
        """The host of each rank, by rank ([] for logs older than the attribute)."""
        return json.loads(self.attrs.get("rank_hosts", "[]"))

    @property
    def rank_shares(self):
        """[{"step", "shares"}, ...]: how the global batch was split, from step + 1 on ([]: equal
        shares throughout, or a log older than the attribute)."""
        return json.loads(self.attrs.get("rank_shares", "[]"))

    @property
    def targets(self):
        """{target as text: {"step", "epoch", "wall_s", "train_s"} or None} ({} if not logged)."""
        return json.loads(self.attrs.get("targets", "{}"))

    def final(self, field):
        """The field's value at the last logged epoch (NaN if none)."""
        values = self.epochs[field]
        return float(values[-1]) if len(values) else float("nan")

    def final_score(self, field):
        """:meth:`final`, except that a diverged run scores :data:`DIVERGED_SCORES` (chance)."""
        if self.status == "diverged" and field in DIVERGED_SCORES:
            return DIVERGED_SCORES[field]
        return self.final(field)


def _no_evals():
    return {f: np.zeros(0, np.int64 if f == "step" else np.float64) for f in EVAL_FIELDS}


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class LogError(ValueError):
    """A file is not a readable hpclars log; the message is one line naming it."""


def read_log(path):
    """Read a run log written by :class:`RunLog`.

    Returns a :class:`RunData`.  Raises :class:`LogError` (a ValueError) naming the
    file and what is wrong with it: missing, unreadable, truncated or not HDF5,
    another program's file, another format version, or a field missing.
    """
    return read_hdf5(path, _read_log, LogError, "log")


def _read_log(f, path):
    fmt, version = _attr(f.attrs.get("format")), _attr(f.attrs.get("format_version"))
    if fmt != FORMAT:
        raise LogError(f"{path}: not an hpclars log (attribute 'format' is {fmt!r})")
    if version != FORMAT_VERSION:
        raise LogError(f"{path}: hpclars log format version {version!r}; this hpclars "
                       f"({__version__}) reads version {FORMAT_VERSION}")
    attrs = {k: _attr(v) for k, v in f.attrs.items() if k != "tensor_names"}
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["tensor_names"]]
    epochs = {k: f["epochs"][k][()] for k in f["epochs"]}
    tensors = {k: f["tensors"][k][()] for k in f["tensors"]}
    params = {k: f["params"][k][()] for k in f["params"]} if "params" in f else None
    evals = {**_no_evals(), **{k: f["evals"][k][()] for k in f["evals"]}} if "evals" in f else _no_evals()
    if "world_size" not in epochs and "epoch" in epochs:  # written before it was logged per epoch
        epochs["world_size"] = np.full(len(epochs["epoch"]), int(attrs["world_size"]), np.int64)
    missing = sorted((set(EPOCH_FIELDS) - set(epochs)) | (set(TENSOR_FIELDS) - set(tensors)))
    if missing:
        raise LogError(f"{path}: hpclars log without the field(s) {', '.join(missing)}")
    json.loads(attrs["config"])  # a log whose configuration does not parse is corrupt
    return RunData(path, attrs, epochs, tensors, names, params, evals)


__doc__ += "\nSchema\n------\n\n" + schema() + "\n"
