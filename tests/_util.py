"""Helpers for tests that run hpclars as users do: as a command, under mpiexec."""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hpclars.log import read_log

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent
TIMING_FIELDS = ("wall_s", "time_compute", "time_allreduce", "time_optim", "time_eval", "images_per_s")


def mpiexec():
    exe = BIN / "mpiexec"
    if exe.exists():
        return str(exe)
    found = shutil.which("mpiexec")
    if not found:
        raise RuntimeError("mpiexec not found next to the Python interpreter or on PATH")
    return found


def launch(args, ranks=1, script=None):
    """The command line for `hpclars ARGS` (or a test script) on `ranks` ranks."""
    prog = [sys.executable, str(TESTS / script)] if script else [sys.executable, "-m", "hpclars"]
    cmd = prog + [str(a) for a in args]
    return [mpiexec(), "-n", str(ranks)] + cmd if ranks > 1 else cmd


def run(args, ranks=1, script=None, timeout=300, cwd=None, env=None):
    """Run to completion; returns the CompletedProcess (text output captured)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(launch(args, ranks, script), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=full_env)


def run_concurrently(*calls):
    """Run independent single-rank commands side by side, as many at once as this machine has
    cores; each call is ``(args, run's keyword arguments)``.  Returns the CompletedProcesses in
    the order given.  Only for runs that neither read each other's files nor are timed: each
    is still a separate ``hpclars`` process, run exactly as :func:`run` runs it."""
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda c: run(c[0], **c[1]), calls))


def in_background(args, **kw):
    """Start :func:`run` in a thread (for an independent reference run while the test goes
    on); ``.result()`` waits for its CompletedProcess."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(run, args, **kw)
    pool.shutdown(wait=False)
    return future


def train_args(out, data_dir, **flags):
    args = ["train", "--out", out, "--data-dir", data_dir, "--no-progress"]
    for k, v in flags.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        else:
            args += [flag, v]
    return args


def flat_params(log):
    return np.concatenate([log.params[n].ravel() for n in log.tensor_names])


def metrics(log):
    """Logged metrics without the timing fields, which legitimately differ."""
    return {k: v for k, v in log.epochs.items() if k not in TIMING_FIELDS}


def assert_ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


__all__ = ["read_log", "run", "run_concurrently", "in_background", "launch", "train_args", "flat_params", "metrics", "assert_ok", "mpiexec"]
