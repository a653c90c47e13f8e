"""Stops at every moment of a run, with real signals, stop files and MPI ranks: a stopped
run resumes to exactly the uninterrupted run; only rank 0 polls the stop file; a resume
may change the number of ranks."""

import os
import subprocess
import sys

import numpy as np
import pytest

from _util import assert_ok, flat_params, in_background, metrics, mpiexec, read_log, run, train_args
from hpclars import checkpoint as ckpt

# 20 steps per epoch; max_steps ends the run two steps into epoch 2.
FLAGS = dict(optimizer="lamb", lr=0.005, batch_size=3000, epochs=2, max_steps=22)
SPE, LAST = 20, 22


class References:
    """The uninterrupted run per rank count, computed once: ``start(ranks)`` launches it in the
    background (a test does that before its own runs, which share nothing with it), calling
    the object waits for it and returns its log."""

    def __init__(self, tmp_path_factory, data_dir):
        self.tmp, self.data_dir, self.procs, self.logs = tmp_path_factory, data_dir, {}, {}

    def start(self, ranks):
        if ranks not in self.procs:
            out = self.tmp.mktemp(f"ref{ranks}") / "ref.h5"
            self.procs[ranks] = (out, in_background(train_args(out, self.data_dir, **FLAGS), ranks=ranks))

    def __call__(self, ranks):
        if ranks not in self.logs:
            self.start(ranks)
            out, proc = self.procs[ranks]
            assert_ok(proc.result())
            self.logs[ranks] = read_log(out)
        return self.logs[ranks]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """The uninterrupted run, per rank count (computed once, on demand)."""
    return References(tmp_path_factory, data_dir)


def assert_same_run(a, b):
    assert a.status == b.status == "completed"
    for k, v in metrics(b).items():
        np.testing.assert_array_equal(metrics(a)[k], v, err_msg=k)
    for k in b.tensors:
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k], err_msg=k)
    np.testing.assert_array_equal(flat_params(a), flat_params(b))


# (ranks, moment, rank asked to stop, how): every boundary of a run, each way of asking.
MOMENTS = [
    (1, "load", 0, "SIGTERM"),             # while the data loads
    (1, "eval:0", 0, "SIGINT"),            # during epoch 0's evaluation, before any step
    (1, "step:0", 0, "file"),              # in the first step
    (1, "step:7", 0, "SIGUSR1"),           # mid-epoch
    (1, f"step:{SPE - 1}", 0, "file"),     # the last step of an epoch
    (1, f"eval:{SPE}", 0, "SIGTERM"),      # during the end-of-epoch evaluation
    (1, f"checkpoint:{SPE}", 0, "SIGINT"),  # while the end-of-epoch checkpoint is written
    (1, f"step:{LAST - 1}", 0, "file"),    # the last step of the run
    (1, f"eval:{LAST}", 0, "SIGTERM"),     # during the final evaluation: the run completes
    (2, "load", 1, "SIGTERM"),             # on rank 1 only: the flag reaches rank 0
    (2, "eval:0", 1, "SIGUSR1"),
    (2, f"step:{SPE - 1}", 1, "SIGTERM"),
    (2, f"eval:{SPE}", 1, "SIGINT"),
    (2, f"checkpoint:{SPE}", 0, "SIGTERM"),
    (2, f"step:{LAST - 1}", 0, "file"),
]


@pytest.mark.parametrize("ranks,moment,rank,how", MOMENTS, ids=[f"{m[0]}ranks-{m[1]}-rank{m[2]}-{m[3]}" for m in MOMENTS])
def test_stop_at_any_moment_then_resume_is_the_uninterrupted_run(tmp_path, data_dir, reference, ranks,
                                                                  moment, rank, how):
    out, stop = tmp_path / "run.h5", tmp_path / "STOP"
    if ranks == 1:  # one core each: the reference runs beside this test's runs (none is timed)
        reference.start(ranks)
    args = train_args(out, data_dir, stop_file=stop, **FLAGS)
    proc = run([moment, rank, how] + args, ranks=ranks, script="stop_at.py")
    completes = moment == f"eval:{LAST}"
    assert proc.returncode == (0 if completes else 75), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "failed" not in proc.stderr, proc.stderr
    if not completes:
        assert "interrupted" in proc.stdout
        if out.exists():
            assert read_log(out).status == "interrupted"
            assert os.path.exists(ckpt.checkpoint_path(out))
        stop.unlink(missing_ok=True)
        assert_ok(run(train_args(out, data_dir, stop_file=stop, resume=True, **FLAGS), ranks=ranks))
    assert_same_run(read_log(out), reference(ranks))
    assert not os.path.exists(ckpt.checkpoint_path(out))


def test_issue_reproducer_stop_file_at_the_last_step_keeps_the_last_epoch(tmp_path, data_dir):
    out, stop = tmp_path / "last.h5", tmp_path / "stop"
    flags = dict(batch_size=6000, epochs=1, max_steps=1, stop_file=stop)
    stop.touch()
    assert run(train_args(out, data_dir, **flags)).returncode == 75
    stop.unlink()
    assert_ok(run(train_args(out, data_dir, resume=True, **flags)))
    log = read_log(out)
    assert log.status == "completed"
    np.testing.assert_array_equal(log.epochs["epoch"], [0, 1])
    np.testing.assert_array_equal(log.epochs["step"], [0, 1])


def _two_ranks_in_two_directories(dirs, args):
    """mpiexec with rank r working in dirs[r], so a relative --stop-file is a different file per rank."""
    cmd = [mpiexec()]
    for i, d in enumerate(dirs):
        cmd += ([":"] if i else []) + ["-n", "1", "-wdir", str(d), sys.executable, "-m", "hpclars"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("seen_by", [0, 1])
def test_only_rank_0_polls_the_stop_file(tmp_path, data_dir, seen_by):
    dirs = [tmp_path / "rank0", tmp_path / "rank1"]
    for d in dirs:
        d.mkdir()
    (dirs[seen_by] / "STOP").touch()  # only the rank working in that directory could see it
    out = tmp_path / "run.h5"
    proc = _two_ranks_in_two_directories(dirs, [str(a) for a in train_args(
        out, data_dir, batch_size=3000, epochs=1, max_steps=3, stop_file="STOP")])
    log = read_log(out) if out.exists() else None
    if seen_by == 0:  # rank 0 saw it: both ranks stop, through the Allreduce
        assert proc.returncode == 75, proc.stderr
        assert "stop file STOP" in proc.stdout
    else:  # rank 1 never looks: the run completes
        assert_ok(proc)
        assert log.status == "completed" and log.epochs["step"][-1] == 3


def _stopped_run(tmp_path, data_dir, ranks, moment):
    out, stop = tmp_path / "run.h5", tmp_path / "STOP"
    args = train_args(out, data_dir, stop_file=stop, **FLAGS)
    assert run([moment, 0, "file", *args], ranks=ranks, script="stop_at.py").returncode == 75
    stop.unlink()
    return out, stop


@pytest.mark.parametrize("before,after", [(2, 1), (1, 2)])
def test_resume_on_another_rank_count_logs_it_and_matches_up_to_rounding(tmp_path, data_dir, reference,
                                                                          before, after):
    out, stop = _stopped_run(tmp_path, data_dir, before, "step:7")
    proc = run(train_args(out, data_dir, stop_file=stop, resume=True, **FLAGS), ranks=after)
    assert_ok(proc)
    assert f"on {after} rank(s) instead of the checkpoint's {before}" in proc.stdout
    log, ref = read_log(out), reference(2)
    assert log.status == "completed" and log.world_size == after
    np.testing.assert_array_equal(log.epochs["world_size"], [before, after, after])
    # The noise scale needs every step of an epoch on >= 2 ranks: epoch 1 mixed, so NaN.
    assert np.isnan(log.epochs["noise_scale"][:2]).all()
    assert np.isnan(log.epochs["noise_scale"][2]) == (after == 1)
    if after == 2:
        assert log.epochs["noise_scale"][2] == pytest.approx(ref.epochs["noise_scale"][2], rel=1e-2)
    np.testing.assert_array_equal(log.epochs["step"], ref.epochs["step"])
    # "Up to rounding" as these 22 LAMB steps amplify it: a batch summed in another order can
    # flip a ReLU or a max-pool choice, and runs that differ only in the chunk size end
    # 2.5e-4 to 7.2e-4 apart (max |difference| / max |w|, measured with both the kernels of
    # 956f32f and those after it).  A learning rate 1% off ends 4.8e-3 away; one step fewer,
    # 1.8e-3 (the step check above catches that).  Test accuracy moves with such rounding by a
    # few of the 10000 images: up to 3 with the AVX-512 kernels, 4 with the AVX2 ones (1 -> 2
    # ranks, 2026-12-01), whose sums run in other orders; 10 leaves room without hiding a wrong
    # resume, which the parameter check catches first.
    a, b = flat_params(log), flat_params(ref)
    assert np.max(np.abs(a - b)) <= 2e-3 * np.max(np.abs(b))
    np.testing.assert_allclose(log.epochs["test_acc"], ref.epochs["test_acc"], atol=1e-3)
