"""Files: hpclars runs where file locking fails (NFS, some Lustre mounts), and every file it
reads that is truncated, corrupt, of another format version or another program's gets one
line naming it and exit code 2, at 1 and 2 ranks."""

import shutil
import subprocess

import h5py
import numpy as np
import pytest

from _util import assert_ok, read_log, run, train_args
from hpclars import checkpoint as ckpt

# fcntl/flock lock calls fail with ENOLCK (errno 37, "No locks available"), as they do on a
# file system without locking; everything else goes through to libc.
NOLOCK_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
static int refuse(void) { errno = ENOLCK; return -1; }
int flock(int fd, int op) { (void)fd; (void)op; return refuse(); }
static int is_lock(int cmd) {
    return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK
        || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK;
}
#define FORWARD(name) \
    int name(int fd, int cmd, ...) { \
        va_list ap; va_start(ap, cmd); void* arg = va_arg(ap, void*); va_end(ap); \
        if (is_lock(cmd)) return refuse(); \
        static int (*real)(int, int, ...); \
        if (!real) real = (int (*)(int, int, ...))dlsym(RTLD_NEXT, #name); \
        return real(fd, cmd, arg); }
FORWARD(fcntl)
FORWARD(fcntl64)
"""
SMALL = dict(batch_size=3000, epochs=2, max_steps=22)


@pytest.fixture(scope="module")
def nolock(tmp_path_factory):
    """LD_PRELOAD environment of the no-locks shim, compiled here with gcc."""
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build the no-locks shim")
    d = tmp_path_factory.mktemp("shim")
    (d / "nolock.c").write_text(NOLOCK_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(d / "nolock.so"), str(d / "nolock.c"), "-ldl"],
                   check=True)
    env = {"LD_PRELOAD": str(d / "nolock.so")}
    probe = subprocess.run(["python3", "-c", "import fcntl, sys; fcntl.flock(sys.stdout, fcntl.LOCK_EX)"],
                           env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert "No locks available" in probe.stderr  # the shim works: locking fails as on NFS
    return env


@pytest.mark.parametrize("ranks", [1, 2])
def test_runs_stops_and_resumes_without_file_locking(tmp_path, data_dir, nolock, ranks):
    out, stop = tmp_path / "run.h5", tmp_path / "STOP"
    args = train_args(out, data_dir, stop_file=stop, **SMALL)
    proc = run(["step:5", 0, "file", *args], ranks=ranks, script="stop_at.py", env=nolock)
    assert proc.returncode == 75, proc.stderr  # log and checkpoint written without locks
    stop.unlink()
    proc = run(train_args(out, data_dir, stop_file=stop, resume=True, **SMALL), ranks=ranks, env=nolock)
    assert_ok(proc)  # and read back without locks
    log = read_log(out)
    assert log.status == "completed" and list(log.epochs["epoch"]) == [0, 1, 2]


def test_forced_hdf5_locking_is_refused_before_the_data_is_loaded(tmp_path, nolock):
    # A site module may export HDF5_USE_FILE_LOCKING=TRUE, which overrides hpclars's choice.
    out = tmp_path / "run.h5"
    proc = run(train_args(out, tmp_path / "no-data-here", epochs=1), ranks=2,
               env={**nolock, "HDF5_USE_FILE_LOCKING": "TRUE"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"--out: cannot write to directory {tmp_path}" in lines[0]
    assert "unset HDF5_USE_FILE_LOCKING" in lines[0]
    assert "MNIST" not in proc.stderr  # refused before the (missing) data was looked at
    assert not out.exists()


# ---------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, data_dir):
    """A real interrupted log and its checkpoint, and a completed log."""
    d = tmp_path_factory.mktemp("stopped")
    out, stop = d / "run.h5", d / "STOP"
    proc = run(["step:2", 0, "file", *train_args(out, data_dir, stop_file=stop, **SMALL)], script="stop_at.py")
    assert proc.returncode == 75, proc.stderr
    return out, ckpt.checkpoint_path(out)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _junk(path):
    path.write_text("this is not HDF5\n")


def _foreign_hdf5(path):
    path.unlink()
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)


def _set_attr(name, value):
    def edit(path):
        with h5py.File(path, "r+") as f:
            f.attrs[name] = value
    return edit


def _delete(name):
    def edit(path):
        with h5py.File(path, "r+") as f:
            del f[name]
    return edit


def _resize_params(path):
    with h5py.File(path, "r+") as f:
        del f["params"]
        f["params"] = np.zeros(10, np.float32)


LOG_DAMAGE = {"truncated": _truncate, "junk": _junk, "foreign": _foreign_hdf5,
              "version": _set_attr("format_version", 2), "no-epochs": _delete("epochs")}
CKPT_DAMAGE = {**{k: v for k, v in LOG_DAMAGE.items() if k != "no-epochs"}, "version": _set_attr("format_version", 7), "no-params": _delete("params"),
               "wrong-size": _resize_params, "no-optimizer": _delete("optimizer")}
EXPECTED = {"truncated": "not a readable hpclars", "junk": "not a readable hpclars",
            "foreign": "not an hpclars", "version": "format version", "no-epochs": "",
            "no-params": "not a readable hpclars", "wrong-size": "params has 10 values",
            "no-optimizer": ""}


def assert_one_line(proc, path, what=""):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, from rank 0 only
    assert str(path) in lines[0] and what in lines[0], lines[0]


def _copy_run(stopped_run, tmp_path):
    log, ck = stopped_run
    shutil.copy(log, tmp_path / "run.h5")
    shutil.copy(ck, tmp_path / "run.ckpt.h5")
    return tmp_path / "run.h5", tmp_path / "run.ckpt.h5"


DAMAGE = [("log", d) for d in sorted(LOG_DAMAGE)] + [("checkpoint", d) for d in sorted(CKPT_DAMAGE)]


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("which, damage", DAMAGE, ids=[f"{w}-{d}" for w, d in DAMAGE])
def test_bad_log_or_checkpoint_gets_one_line(tmp_path, data_dir, stopped_run, which, damage, ranks):
    log, ck = _copy_run(stopped_run, tmp_path)
    bad = log if which == "log" else ck
    (LOG_DAMAGE if which == "log" else CKPT_DAMAGE)[damage](bad)
    before = bad.read_bytes()
    proc = run(train_args(log, data_dir, resume=True, **SMALL), ranks=ranks)
    assert_one_line(proc, bad, EXPECTED[damage])
    assert bad.read_bytes() == before  # nothing lost
    if which == "checkpoint":
        assert "--resume:" in proc.stderr and read_log(log).status == "interrupted"


def test_read_log_checks_the_format_version(stopped_run, tmp_path):
    from hpclars.log import LogError

    log, _ = _copy_run(stopped_run, tmp_path)
    _set_attr("format_version", 2)(log)
    with pytest.raises(LogError, match=rf"^{log}: hpclars log format version 2; this hpclars .* reads version 1$"):
        read_log(log)


GRIDS = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "truncated": b'name = "t"\nbatch_sizes = [1024, 2',
    "runs-not-tables": b'name = "t"\nbatch_sizes = [1024]\nruns = 5\n',
    "seeds-not-a-list": b'name = "t"\nbatch_sizes = [1024]\nseeds = 3\n[[runs]]\nname = "a"\n',
}


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("kind", sorted(GRIDS))
def test_bad_grid_gets_one_line(tmp_path, kind, ranks):
    grid = tmp_path / "grid.toml"
    grid.write_bytes(GRIDS[kind])
    proc = run(["sweep", "--grid", grid, "--out-dir", tmp_path / "runs"], ranks=ranks)
    assert_one_line(proc, grid, "--grid:")


@pytest.mark.parametrize("ranks", [1, 2])
def test_bad_data_file_gets_one_line_and_exit_2(tmp_path, data_dir, ranks):
    bad = tmp_path / "mnist"
    shutil.copytree(data_dir, bad)
    target = next(bad.glob("t10k-labels-idx1-ubyte*"))
    target.write_bytes(target.read_bytes()[:100])
    proc = run(train_args(tmp_path / "run.h5", bad, epochs=1), ranks=ranks)
    assert_one_line(proc, target)


@pytest.mark.parametrize("ranks", [1, 2])
def test_bad_trial_log_in_a_tuning_summary_gets_one_line(tmp_path, stopped_run, ranks):
    trial = tmp_path / "trial-00.h5"
    shutil.copy(stopped_run[0], trial)
    _truncate(trial)
    proc = run(["tune", "--optimizer", "lars", "--batch-size", 3000, "--trials", 2, "--epochs", 1,
                "--out-dir", tmp_path, "--summary-only"], ranks=ranks)
    assert_one_line(proc, trial, "not a readable hpclars log")
    assert not (tmp_path / "summary.json").exists()
