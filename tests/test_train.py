"""`hpclars train` on one process, run as a user runs it: the log, accuracy, resume,
divergence and bad input."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from _util import assert_ok, flat_params, in_background, launch, metrics, read_log, run, train_args
from hpclars import checkpoint as ckpt
from hpclars.log import EPOCH_FIELDS, ROOT_ATTRS, TENSOR_FIELDS


@pytest.fixture(scope="module")
def paper_sgd_run(tmp_path_factory, data_dir):
    """Two epochs of the paper's SGD at batch 64: the accuracy check of the core issue."""
    out = tmp_path_factory.mktemp("paper") / "sgd64.h5"
    proc = run(train_args(out, data_dir, preset="paper", optimizer="sgd", batch_size=64, epochs=2))
    assert_ok(proc)
    return proc, read_log(out)


def test_two_epochs_paper_sgd_reach_97_5_percent(paper_sgd_run):
    _, log = paper_sgd_run
    assert log.status == "completed"
    assert log.final("test_acc") >= 0.975


def test_log_holds_every_field(paper_sgd_run):
    proc, log = paper_sgd_run
    assert set(log.epochs) == set(EPOCH_FIELDS)
    assert set(log.tensors) == set(TENSOR_FIELDS)
    # The schema names every attribute (rank_shares only in runs with --rank-weights or
    # --balance-every: test_mpi.py).
    assert set(log.attrs) | {"tensor_names", "rank_shares"} == set(ROOT_ATTRS)
    assert set(log.environment) == {"git_commit", "cpu_model", "mpi_library", "blas", "kernel_path"}
    np.testing.assert_array_equal(log.epochs["epoch"], [0, 1, 2])
    np.testing.assert_array_equal(log.epochs["step"], [0, 937, 1874])
    cfg = log.config
    assert (cfg["optimizer"], cfg["batch_size"], cfg["lr"], cfg["preset"]) == ("sgd", 64, 0.01, "paper")
    assert log.world_size == 1 and log.attrs["n_params"] == 107786
    # Epoch 0 is evaluated before training: chance level, no steps.
    assert 0.05 < log.epochs["test_acc"][0] < 0.2
    np.testing.assert_allclose(log.epochs["gen_error"], log.epochs["train_acc"] - log.epochs["test_acc"])
    # lr follows the paper's inverse-time decay: lr / (1 + 1e-4 * t) at the epoch's last step.
    assert log.epochs["lr"][2] == pytest.approx(0.01 / (1 + 1e-4 * 1873))
    assert np.all(log.epochs["train_loss"][1:] < log.epochs["train_loss"][0])
    for f in ("time_compute", "time_allreduce", "time_optim", "time_eval", "images_per_s", "wall_s"):
        assert np.all(np.isfinite(log.epochs[f][1:])) and np.all(log.epochs[f][1:] >= 0), f
    assert np.isnan(log.epochs["noise_scale"]).all()  # one rank: no noise-scale estimate
    k = len(log.tensor_names)
    assert log.tensors["weight_norm"].shape == (3, k)
    assert np.isnan(log.tensors["grad_norm"][0]).all() and np.all(log.tensors["grad_norm"][1:] > 0)
    np.testing.assert_array_equal(log.tensors["local_lr"][1:], 1.0)  # SGD: no adaptation
    assert set(log.params) == set(log.tensor_names)
    assert log.params["conv2.w"].shape == (16, 6, 5, 5)
    # One line per epoch on stdout.
    assert [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("epoch")] == ["0/2", "1/2", "2/2"]


def test_lars_logs_local_rates_and_eval_every_skips_epochs(tmp_path, data_dir):
    out = tmp_path / "lars.h5"
    assert_ok(run(train_args(out, data_dir, preset="paper", optimizer="lars", batch_size=6000,
                             epochs=2, eval_every=2)))
    log = read_log(out)
    local = log.tensors["local_lr"][1]
    assert np.all(local > 0) and np.all(local < 1)  # eta = 0.001 makes every local rate small
    assert not np.allclose(local, local[0])  # and they differ per tensor
    np.testing.assert_array_equal(log.epochs["epoch"], [0, 1, 2])
    assert np.isnan(log.epochs["test_acc"][1]) and np.isnan(log.epochs["train_loss"][1])
    assert np.isfinite(log.epochs["test_acc"][[0, 2]]).all()  # epoch 0 and the last always are
    assert np.isfinite(log.epochs["images_per_s"][1])


def _resume_args(out, data_dir, **extra):
    return train_args(out, data_dir, optimizer="lamb", lr=0.005, batch_size=2000, epochs=2, **extra)


def test_stop_file_checkpoints_and_resume_matches_uninterrupted(tmp_path, data_dir):
    ref = tmp_path / "ref.h5"
    # The uninterrupted run is independent of the stopped one (own files, nothing timed): it
    # runs beside it, and is waited for before the comparison.
    ref_proc = in_background(_resume_args(ref, data_dir))

    out = tmp_path / "run.h5"
    stop = tmp_path / "STOP"
    stop.touch()  # present from the start: the run stops before training, having written nothing
    proc = run(_resume_args(out, data_dir, stop_file=stop))
    assert proc.returncode == 75, proc.stderr
    assert "before training started; nothing written" in proc.stdout and not out.exists()
    stop.unlink()
    proc = run(["step:0", 0, "file"] + _resume_args(out, data_dir, stop_file=stop), script="stop_at.py")
    assert proc.returncode == 75, proc.stderr  # the file appears during the first step
    log = read_log(out)
    assert log.status == "interrupted" and "stop file" in log.attrs["message"]
    assert os.path.exists(ckpt.checkpoint_path(out))
    saved = ckpt.load(ckpt.checkpoint_path(out))
    # The position: one step into epoch 1, and the clocks and evaluation schedule of
    # hpclars.target (the last test evaluation was epoch 0's, at step 0).
    pos = saved.position
    assert pos == {"epoch": 1, "batch": 1, "wall_s": pytest.approx(pos["wall_s"]), "evaluated_step": 0,
                   "train_s": pytest.approx(pos["train_s"]), "eval_s": pytest.approx(pos["eval_s"])}

    stop.unlink()
    assert_ok(run(_resume_args(out, data_dir, stop_file=stop, resume=True)))
    assert_ok(ref_proc.result())
    a, b = read_log(out), read_log(ref)
    assert a.status == "completed"
    assert not os.path.exists(ckpt.checkpoint_path(out))  # done: the log holds the final params
    np.testing.assert_array_equal(flat_params(a), flat_params(b))
    for k, v in metrics(b).items():
        np.testing.assert_array_equal(metrics(a)[k], v, err_msg=k)
    for k in b.tensors:
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k], err_msg=k)

    # Resuming a completed run is a no-op that succeeds.
    proc = run(_resume_args(out, data_dir, resume=True))
    assert_ok(proc)
    assert "already completed" in proc.stdout


def test_sigterm_checkpoints_and_exits_75(tmp_path, data_dir):
    out = tmp_path / "t.h5"
    proc = subprocess.Popen(launch(train_args(out, data_dir, batch_size=64, epochs=3)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    assert read_log(out).status == "interrupted"
    assert "SIGTERM" in read_log(out).attrs["message"]
    assert ckpt.load(ckpt.checkpoint_path(out)).position["batch"] > 0


def test_kill_9_then_resume_reaches_uninterrupted_params(tmp_path, data_dir):
    flags = dict(optimizer="lars", lr=2.0, trust_coef=0.01, batch_size=3000, epochs=3)
    ref = tmp_path / "ref.h5"
    # The uninterrupted run beside the killed one: independent files, and the kill waits for
    # the checkpoint file, not for a time.
    ref_proc = in_background(train_args(ref, data_dir, **flags))
    out = tmp_path / "k.h5"
    proc = subprocess.Popen(launch(train_args(out, data_dir, **flags)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = ckpt.checkpoint_path(out)
    deadline = time.monotonic() + 120
    while not os.path.exists(ck) and time.monotonic() < deadline:  # first epoch checkpointed
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert os.path.exists(ck)
    assert read_log(out).status == "running"
    assert_ok(run(train_args(out, data_dir, resume=True, **flags)))
    assert_ok(ref_proc.result())
    a, b = read_log(out), read_log(ref)
    np.testing.assert_array_equal(a.epochs["epoch"], [0, 1, 2, 3])
    np.testing.assert_array_equal(flat_params(a), flat_params(b))
    np.testing.assert_array_equal(metrics(a)["test_acc"], metrics(b)["test_acc"])


def test_log_readable_after_kill_9_at_any_moment(tmp_path, data_dir):
    out = tmp_path / "r.h5"
    for delay in (1.0, 2.2, 3.1, 4.7):
        proc = subprocess.Popen(launch(train_args(out, data_dir, batch_size=1000, epochs=3,
                                                  checkpoint_every=1, overwrite=True)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        if out.exists():
            log = read_log(out)
            assert log.status in ("running", "completed")
            assert len(log.epochs["epoch"]) >= 1
        if os.path.exists(ckpt.checkpoint_path(out)):
            ckpt.load(ckpt.checkpoint_path(out))


CHECKPOINT_WRITER = """
import sys, numpy as np
from hpclars import checkpoint as ckpt
path = sys.argv[1]
big = np.random.default_rng(0).standard_normal(4_000_000).astype(np.float32)
i = 0
while True:
    i += 1
    ckpt.save(path, big + i, {"t": i, "momentum": big}, {"epoch": i, "batch": 0, "wall_s": 0.0},
              {"steps": i}, "{}", 1)
    print(i, flush=True)
"""


def test_kill_during_checkpoint_write_leaves_previous_loadable(tmp_path):
    path = tmp_path / "c.ckpt.h5"
    for delay in (0.6, 0.9, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", CHECKPOINT_WRITER, str(path)],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # at least one checkpoint completed
        assert first.strip()
        time.sleep(delay)
        proc.kill()
        proc.wait()
        saved = ckpt.load(path)
        i = saved.position["epoch"]
        assert saved.optimizer_state["t"] == i and saved.accumulators["steps"] == i
        assert saved.params[0] == pytest.approx(np.float32(np.random.default_rng(0).standard_normal(1)[0] + i))


def test_huge_learning_rate_diverges_cleanly(tmp_path, data_dir):
    out = tmp_path / "d.h5"
    proc = run(train_args(out, data_dir, optimizer="sgd", lr=1e8, batch_size=256, epochs=2))
    assert_ok(proc)  # a diverged run is a result, not a failure
    log = read_log(out)
    assert log.status == "diverged"
    assert "non-finite" in log.attrs["message"]
    assert not os.path.exists(ckpt.checkpoint_path(out))


@pytest.mark.parametrize("ranks", [1, 2])
def test_non_finite_parameters_end_the_run_as_diverged(tmp_path, data_dir, ranks):
    # One step whose loss and gradient are finite but whose update is not (an lr that is
    # inf in float32): the parameters go non-finite on the last step, where no later loss
    # could show it.
    out = tmp_path / "nan.h5"
    proc = run(train_args(out, data_dir, optimizer="sgd", lr=1e39, batch_size=600, epochs=1,
                          max_steps=1), ranks=ranks)
    assert_ok(proc)
    log = read_log(out)
    assert log.status == "diverged", log.attrs["message"]
    assert log.attrs["message"].startswith("non-finite parameters of conv1.w after step 0")
    assert np.all(np.isfinite(flat_params(log)))  # the last finite parameters are kept
    assert not os.path.exists(ckpt.checkpoint_path(out))


@pytest.mark.parametrize("flags,message", [
    (dict(optimizer="adagrad"), "--optimizer: 'adagrad' is not one of sgd, lars, lamb, adam, adamw"),
    (dict(batch_size=0), "--batch-size: must be an integer in [1, 60000], got 0"),
    (dict(batch_size=70000), "--batch-size: must be an integer in [1, 60000], got 70000"),
    (dict(momentum=1.5), "--momentum: must be in [0, 1), got 1.5"),
    (dict(lr=-1), "--lr: must be > 0, got -1.0"),
    (dict(epochs=0), "--epochs: must be a number >= 1, got 0"),
    (dict(schedule="step"), "--schedule: 'step' is not one of inverse-time, constant, poly, cosine"),
    (dict(preset="imagenet"), "--preset: unknown preset 'imagenet'; choose from adam-tuned, "
                              "adamw-tuned, fast-99, lamb-scaled, lamb-tuned, lars-scaled, lars-tuned, paper, sgd-tuned"),
    (dict(threads=0), "--threads: must be a number >= 1, got 0"),
    (dict(chunk_size=0), "--chunk-size: must be a number >= 1, got 0"),
    (dict(lars_mode="both"), "--lars-mode: 'both' is not one of scale, clip"),
    (dict(warmup_epochs=5, epochs=2), "--warmup-epochs: 5.0 is longer than --epochs 2"),
    (dict(resume=True, overwrite=True), "--overwrite and --resume: choose one"),
    (dict(batch_size="many"), "--batch-size: invalid int value: 'many'"),
    (dict(optimizer="adam", adam_eps=0), "--adam-eps: must be >= 2**-126 = 1.18e-38 (a normal float32; "
                                         "at 0 the update is 0/0 wherever a gradient entry is 0), got 0.0"),
])
def test_bad_flags_get_one_line_naming_them(tmp_path, data_dir, flags, message):
    out = tmp_path / "x.h5"
    proc = run(train_args(out, data_dir, **flags))
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2  # usage line + the error
    assert not out.exists()


def test_output_path_checks(tmp_path, data_dir):
    proc = run(train_args(tmp_path / "run.txt", data_dir))
    assert proc.returncode == 2 and "--out: " in proc.stderr and "must end in .h5" in proc.stderr

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run(train_args(blocker / "run.h5", data_dir))
    assert proc.returncode == 2 and f"--out: cannot write to directory {blocker}" in proc.stderr

    existing = tmp_path / "done.h5"
    assert_ok(run(train_args(existing, data_dir, batch_size=60000, epochs=1)))
    before = existing.read_bytes()
    proc = run(train_args(existing, data_dir, batch_size=60000, epochs=1))
    assert proc.returncode == 2
    assert f"--out: {existing} exists (status: completed); pass --resume" in proc.stderr
    assert existing.read_bytes() == before  # nothing lost

    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    proc = run(train_args(junk, data_dir, resume=True))
    assert proc.returncode == 2 and f"{junk}: not a readable hpclars log" in proc.stderr


def test_corrupt_data_gets_one_clear_error(tmp_path, data_dir):
    bad = tmp_path / "mnist"
    bad.mkdir()
    for f in os.listdir(data_dir):
        if f.endswith(".gz"):
            (bad / f).write_bytes((data_dir / f).read_bytes())
    target = bad / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:100])
    out = tmp_path / "run.h5"
    proc = run(train_args(out, bad, epochs=1))
    assert proc.returncode == 2  # a corrupt data file is bad input
    assert str(target) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or read_log(out).status != "completed"


def test_resume_refuses_changed_settings(tmp_path, data_dir):
    out = tmp_path / "r.h5"
    stop = tmp_path / "STOP"
    args = ["step:0", 0, "file"] + train_args(out, data_dir, batch_size=1000, epochs=1, stop_file=stop)
    assert run(args, script="stop_at.py").returncode == 75
    proc = run(train_args(out, data_dir, batch_size=1000, epochs=1, lr=0.5, resume=True))
    assert proc.returncode == 2
    assert "--resume: the checkpoint" in proc.stderr and "different settings for --lr" in proc.stderr
    with h5py.File(out, "r") as f:  # the interrupted log is untouched
        assert f.attrs["status"] == "interrupted"


def test_blas_threads_are_capped_whatever_was_imported_first(tmp_path, data_dir):
    # No thread variables: the state of a user's script that imported NumPy and SciPy first.
    env = {k: "" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {k: v for k, v in os.environ.items() if k not in env}
    # 2 ranks x --threads 2 on a 2-core CI machine: OpenMP's default spin-waiting made each
    # thread burn the core its partner needed (29 s for 2 steps and 2 evaluations, 4 s
    # passive).  The wait policy is not a pool size: what is checked below is unchanged.
    env["OMP_WAIT_POLICY"] = "passive"
    prefix = tmp_path / "pools"
    cmd = launch([prefix] + train_args(tmp_path / "b.h5", data_dir, batch_size=512, epochs=1,
                                       max_steps=2, threads=2), ranks=2, script="blas_driver.py")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert_ok(proc)
    import json

    for rank in (0, 1):
        report = json.loads((tmp_path / f"pools.{rank}.json").read_text())
        blas_before = [p["num_threads"] for p in report["before"] if p["user_api"] == "blas"]
        assert blas_before and max(blas_before) > 1, report["before"]  # not vacuous
        during = report["during"]
        blas = [p["num_threads"] for p in during if p["user_api"] == "blas"]
        openmp = [p["num_threads"] for p in during if p["user_api"] == "openmp"]
        assert blas and set(blas) == {1}, during  # BLAS runs inside the kernels' threads
        assert openmp and set(openmp) == {2}, during  # --threads 2
