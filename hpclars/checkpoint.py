"""Checkpoints: everything needed to continue a run exactly, in one HDF5 file.

Stored: the flat parameters, all optimizer state (momentum, Adam/LAMB moments,
step count), the position in the run (step, epoch, batch within the epoch),
the partial per-epoch accumulators, the wall time so far (and, in the position, the
training-only and evaluation seconds and the step of the last test evaluation:
:meth:`hpclars.target.Evaluations.position`) and the config.  The
data order is a pure function of (seed, epoch) and the learning rate of the
step count, so no random-generator state needs saving.

Written atomically (temporary file, flush, fsync, rename): a process killed
while writing leaves the previous checkpoint intact.

Deliberately left out: the run log (see :mod:`hpclars.log`).
"""

import dataclasses
import json
import os

import numpy as np

from .config import normalize
from .h5io import read_hdf5, write_atomically

FORMAT = "hpclars-checkpoint"
FORMAT_VERSION = 1  # checkpoints written before this attribute existed are version 1 too


class CheckpointError(ValueError):
    """A file is not a usable hpclars checkpoint; the message is one line naming it."""


def checkpoint_path(out):
    root, _ = os.path.splitext(os.fspath(out))
    return root + ".ckpt.h5"


def save(path, params, optimizer_state, position, accumulators, config_json, world_size):
    """Write a checkpoint.  ``position`` and ``accumulators`` are JSON-able dicts
    except that accumulator values may be NumPy arrays."""
    arrays = {k: v for k, v in accumulators.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in accumulators.items() if not isinstance(v, np.ndarray)}

    def fill(f):
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["config"] = config_json
        f.attrs["world_size"] = int(world_size)
        f.attrs["position"] = json.dumps(position)
        f.attrs["accumulators"] = json.dumps(scalars)
        f.attrs["optimizer_t"] = int(optimizer_state["t"])
        f.create_dataset("params", data=params)
        g = f.create_group("optimizer")
        for k, v in optimizer_state.items():
            if k != "t":
                g.create_dataset(k, data=v)
        g = f.create_group("accumulators")
        for k, v in arrays.items():
            g.create_dataset(k, data=v)

    write_atomically(path, fill)


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load` returns; plain values, the file is closed."""

    params: np.ndarray     # float32 (n_params,), the flat parameter buffer
    optimizer_state: dict  # "t" (steps taken) and one float32 (n_params,) array per state buffer
    position: dict         # epoch, batch (steps done in that epoch) and wall_s so far
    accumulators: dict     # the epoch's partial sums (scalars and per-tensor arrays)
    config: dict           # the run's Config fields, in today's names (config.normalize)
    world_size: int        # MPI ranks of the run that wrote it


def load(path):
    """Read the checkpoint at ``path``; returns a :class:`Checkpoint` (params float32, 1-D).

    Raises :class:`CheckpointError` naming the file and what is wrong: missing,
    truncated or not HDF5, another program's file, another format version, or
    part of its content missing.
    """
    return read_hdf5(path, _load, CheckpointError, "checkpoint")


def _load(f, path):
    fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt != FORMAT:
        raise CheckpointError(f"{path}: not an hpclars checkpoint (attribute 'format' is {fmt!r})")
    version = int(f.attrs.get("format_version", 1))
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: hpclars checkpoint format version {version}; this hpclars "
                              f"reads version {FORMAT_VERSION}")
    state = {"t": int(f.attrs["optimizer_t"])}
    state.update({k: f["optimizer"][k][()] for k in f["optimizer"]})
    acc = json.loads(f.attrs["accumulators"])
    acc.update({k: f["accumulators"][k][()] for k in f["accumulators"]})
    params = f["params"][()]
    if params.dtype != np.float32 or params.ndim != 1:
        raise CheckpointError(f"{path}: params are {params.dtype} {params.shape}, expected float32 (n,)")
    return Checkpoint(
        params=params, optimizer_state=state,
        position=json.loads(f.attrs["position"]), accumulators=acc,
        config=normalize(json.loads(f.attrs["config"])), world_size=int(f.attrs["world_size"]),
    )
