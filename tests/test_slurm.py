"""The job scripts in jobs/ under a real SLURM: submitted with sbatch, run by slurmd, no mocks.

A module-scoped fixture starts a single-node cluster with ``jobs/local_slurm.sh start`` in a
fresh state directory (installing SLURM with apt-get when it is missing and we are root) and
stops exactly that cluster at the end.  Where SLURM is missing and cannot be installed, the
tests are skipped, or fail when ``CI=true``.

The job scripts find ``hpclars`` and ``mpiexec`` through the variables of their edit block,
set here with ``sbatch --export=ALL,...`` to the executables beside ``sys.executable``, so the
tests use whatever environment runs pytest.  MNIST comes from ``$HPCLARS_DATA`` or the shared
copy at ``../shared/data/mnist``.

Deliberately left out: timings (SLURM's ~30 s signal tick makes them meaningless here) and
multi-node runs (one machine).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
SCRIPTS = ("train.sbatch", "sweep.sbatch", "scaling.sbatch")
BIN = Path(sys.executable).parent  # the venv's bin/; not resolved, which would leave the venv
from conftest import DATA_DIR as DATA  # noqa: E402  ($HPCLARS_DATA, ../shared, or the cache)
TINY_GRID = JOBS / "grids" / "tiny.toml"
TINY = ["--max-steps", "5", "--batch-size", "64", "--epochs", "1"]
CANNOT_RUN_HERE = 3  # local_slurm.sh: SLURM missing and not installable (not root, no apt-get)
REFUSAL = "not running under SLURM (SLURM_JOB_ID is unset); submit it with: sbatch jobs/{}"


def _free_ports(n):
    """n distinct ports that are free now (all bound at once, so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _no_slurm(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but no SLURM can run here: {reason}")
    pytest.skip(f"no SLURM can run here: {reason}")


def _export(work, **more):
    """sbatch --export: this environment plus the job scripts' edit-block variables."""
    values = {"HPCLARS": BIN / "hpclars", "MPIEXEC": BIN / "mpiexec", "DATA_DIR": DATA,
              "RUN_DIR": work / "runs", **more}
    return "--export=ALL," + ",".join(f"{k}={v}" for k, v in values.items())


class Cluster:
    """A running local cluster: the environment that reaches it and a directory for job files."""

    def __init__(self, state_dir, env, work):
        self.state_dir = state_dir
        self.env = env
        self.work = work

    def run(self, *cmd, timeout=60, **kw):
        return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, **kw)

    def sbatch(self, script, *args, options=(), export=(), timeout=120):
        """``sbatch --wait`` SCRIPT ARGS; returns (completed process, job id, output files)."""
        name = Path(script).stem
        ids = "%A_%a" if any(o.startswith("--array") for o in options) else "%j"
        r = self.run("sbatch", "--wait", "--parsable", f"--output={self.work}/{name}-{ids}.out",
                     _export(self.work, **dict(export)), *options,
                     JOBS / script, *args, timeout=timeout)
        job_id = r.stdout.strip().split(";")[0]
        outputs = sorted(self.work.glob(f"{name}-{job_id}*.out"))
        return r, job_id, outputs

    def explain(self, r, outputs):
        """Everything needed to understand a failed job, for the assertion message."""
        text = [f"sbatch exit {r.returncode}", r.stdout, r.stderr]
        for p in outputs:
            text += [f"--- {p.name}", p.read_text(errors="replace")]
        log = self.state_dir / "log" / "slurmctld.log"
        if log.exists():
            text += ["--- slurmctld.log (tail)", *log.read_text(errors="replace").splitlines()[-15:]]
        return "\n".join(text)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    script = JOBS / "local_slurm.sh"
    # Under /tmp, not pytest's 0700 tmp dir: the cluster's munged runs as the munge user and
    # must be able to reach its socket in the state directory.
    state = Path(tempfile.mkdtemp(prefix="hpclars-slurm-test-", dir="/tmp"))
    # Own ports, so a cluster already running on this machine (6817/6818) is left alone.
    ctld_port, slurmd_port = _free_ports(2)
    env = dict(os.environ, HPCLARS_SLURMCTLD_PORT=str(ctld_port), HPCLARS_SLURMD_PORT=str(slurmd_port))

    def stop():
        subprocess.run(["bash", script, "stop", state], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)

    r = subprocess.run(["bash", script, "start", state], env=env, capture_output=True, text=True,
                       timeout=600)
    if r.returncode == CANNOT_RUN_HERE:
        stop()
        _no_slurm(r.stderr.strip())
    if r.returncode != 0:
        stop()
        pytest.fail(f"jobs/local_slurm.sh start failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    env["SLURM_CONF"] = str(state / "slurm.conf")
    try:
        yield Cluster(state, env, tmp_path_factory.mktemp("slurm-jobs"))
    finally:
        stop()


def _read_log(path):
    with h5py.File(path, "r") as f:
        return str(f.attrs["status"]), int(f.attrs["world_size"]), f["epochs/epoch"][:].tolist()


# --- the cluster itself -------------------------------------------------------------------------

def test_mpi_job_has_world_size_4(slurm):
    """mpiexec inside a 4-task job gives one 4-rank world (MpiDefault=none would give 4 x 1)."""
    code = ("from mpi4py import MPI; c = MPI.COMM_WORLD; s = c.allgather(c.size); "
            "c.rank or print('sizes', s)")
    out = slurm.work / "mpi.out"
    r = slurm.run("sbatch", "--wait", "--ntasks=4", f"--output={out}",
                  f"--wrap={BIN / 'mpiexec'} -n 4 {sys.executable} -c \"{code}\"")
    assert r.returncode == 0, r.stderr + (out.read_text() if out.exists() else "")
    assert out.read_text().split() == ["sizes", "[4,", "4,", "4,", "4]"]


# --- the scripts, without running them ----------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_refuses_to_run_outside_slurm(script):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    r = subprocess.run(["bash", JOBS / script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == f"{script}: {REFUSAL.format(script)}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_sbatch_test_only_accepts(slurm, script):
    options = ["--array=0-1"] if script == "sweep.sbatch" else []
    r = slurm.run("sbatch", "--test-only", *options, JOBS / script)
    assert r.returncode == 0, r.stderr
    assert "to start at" in r.stderr


# --- the scripts, run ----------------------------------------------------------------------------

def test_train_job_completes_with_4_ranks(slurm):
    r, job, outputs = slurm.sbatch("train.sbatch", *TINY)
    assert r.returncode == 0, slurm.explain(r, outputs)
    log = slurm.work / "runs" / f"train-{job}.h5"
    status, world_size, _ = _read_log(log)
    assert (status, world_size) == ("completed", 4), slurm.explain(r, outputs)


def test_train_job_with_a_preset_uses_the_presets_optimizer(slurm):
    """The script's default `--preset paper --optimizer lars` gives way to a --preset passed to it."""
    r, job, outputs = slurm.sbatch("train.sbatch", *TINY, "--preset", "lamb-tuned", "--epochs", "3")
    assert r.returncode == 0, slurm.explain(r, outputs)
    with h5py.File(slurm.work / "runs" / f"train-{job}.h5", "r") as f:
        config = json.loads(f.attrs["config"])
    assert (config["preset"], config["optimizer"], config["lr"]) == ("lamb-tuned", "lamb", 0.04637)


def test_sweep_array_runs_one_grid_point_per_task(slurm):
    count = slurm.run(BIN / "hpclars", "sweep", "--grid", TINY_GRID, "--count")
    assert count.returncode == 0, count.stderr
    n = int(count.stdout.strip())
    assert n == 2, f"{TINY_GRID} should hold 2 runs, not {n}"
    sweep_dir = slurm.work / "sweep"
    r, _, outputs = slurm.sbatch("sweep.sbatch", options=[f"--array=0-{n - 1}"],
                                 export={"GRID": TINY_GRID, "SWEEP_DIR": sweep_dir})
    assert r.returncode == 0, slurm.explain(r, outputs)
    assert len(outputs) == n
    logs = sorted(p for p in sweep_dir.rglob("*.h5") if not p.name.endswith(".ckpt.h5"))
    assert [_read_log(p)[0] for p in logs] == ["completed"] * n, slurm.explain(r, outputs)


def test_usr1_to_the_batch_shell_checkpoints_requeues_and_resumes(slurm):
    """USR1 to the batch shell -> checkpoint, exit 75 -> requeue -> --resume -> completed.

    At a time limit SLURM delivers this signal because of the script's ``--signal=B:USR1@90``;
    here slurmctld delivers the same signal to the same shell on request (``scancel --batch
    --signal=USR1``) as soon as the first epoch is logged, so the test does not depend on how
    fast this machine trains relative to slurmctld's 30 s limit tick (an earlier version, which
    waited for a 1-minute limit, failed on an idle machine that finished first).
    """
    # Signalled once epoch 1 is logged: epochs 2-4 leave slurmctld some 15 s to deliver USR1
    # before the run could end on its own (10 epochs took a minute of CI for no more coverage).
    epochs = 4
    name = f"requeue-{uuid.uuid4().hex[:8]}"
    out = slurm.work / f"{name}.out"
    proc = subprocess.Popen(
        [str(c) for c in ("sbatch", "--wait", "--parsable", f"--job-name={name}", f"--output={out}",
                          _export(slurm.work), JOBS / "train.sbatch", "--optimizer", "sgd",
                          "--batch-size", "128", "--epochs", str(epochs))],
        cwd=ROOT, env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job, signalled, deadline = "", False, time.monotonic() + 150
        while proc.poll() is None and not signalled and time.monotonic() < deadline:
            time.sleep(0.2)
            job = job or slurm.run("squeue", "-h", "-n", name, "-o", "%A").stdout.strip()
            if job and out.exists() and f"epoch   1/{epochs}" in out.read_text(errors="replace"):
                sig = slurm.run("scancel", "--batch", "--signal=USR1", job)
                assert sig.returncode == 0, sig.stderr
                signalled = True
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "\n".join([f"sbatch exit {proc.returncode}", stdout, stderr,
                      out.read_text(errors="replace") if out.exists() else "(no output file)"])
    assert signalled, "the first epoch never appeared:\n" + text
    assert proc.returncode == 0, text
    # The output file is appended to by every attempt: exactly one requeue, one restart.
    assert text.count("checkpointed; requeueing") == 1 and "(restart 1)" in text, text
    assert "(restart 2)" not in text, text
    status, world_size, epoch = _read_log(slurm.work / "runs" / f"train-{job}.h5")
    assert (status, world_size) == ("completed", 4), text
    assert epoch == list(range(epochs + 1)), text


# --- where the job output goes ---------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_job_output_goes_under_runs_slurm(slurm, script):
    """Submitted from the repository root, each script's output file is runs/slurm/<name>-<id>.out,
    as slurmctld resolves it (the job is held and cancelled: nothing runs, nothing is written)."""
    options = ["--array=0-1"] if script == "sweep.sbatch" else []
    r = slurm.run("sbatch", "--parsable", "--hold", *options, JOBS / script)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    try:
        shown = slurm.run("scontrol", "show", "job", job).stdout
    finally:
        slurm.run("scancel", job)
    stdout = next(w.split("=", 1)[1] for w in shown.split() if w.startswith("StdOut="))
    name = "hpclars-" + Path(script).stem
    tail = rf"{name}-{job}_\d+\.out" if options else rf"{name}-{job}\.out"
    assert re.fullmatch(re.escape(str(ROOT / "runs" / "slurm")) + "/" + tail, stdout), stdout


def test_runs_slurm_is_in_the_repository_and_its_output_ignored():
    """SLURM does not create the output directory (a missing one fails the job at launch with no
    output), so runs/slurm/ is in every clone; what jobs write there is ignored by git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)

    if shutil.which("git") is None or git("rev-parse", "--is-inside-work-tree").returncode != 0:
        pytest.skip("not a git checkout")
    assert git("ls-files", "--error-unmatch", "runs/slurm/README.md").returncode == 0
    for path in ("runs/slurm/hpclars-train-12.out", "runs/slurm/hpclars-sweep-3_1.out", "runs/train-12.h5"):
        assert git("check-ignore", "-q", path).returncode == 0, path
    assert git("check-ignore", "-q", "runs/slurm/README.md").returncode == 1


def test_train_job_writes_its_output_under_runs_slurm(slurm):
    """A real job, no --output given: its output is in runs/slurm/ of the submission directory
    (here a scratch directory, via --chdir) and nowhere else."""
    work = slurm.work / "chdir"
    (work / "runs" / "slurm").mkdir(parents=True)
    r = slurm.run("sbatch", "--wait", "--parsable", f"--chdir={work}", _export(work), JOBS / "train.sbatch",
                  *TINY, timeout=120)
    job = r.stdout.strip().split(";")[0]
    output = work / "runs" / "slurm" / f"hpclars-train-{job}.out"
    assert r.returncode == 0 and output.exists(), f"{r.stdout}\n{r.stderr}\n{sorted(work.rglob('*'))}"
    text = output.read_text()
    assert f"job {job} (restart 0)" in text and f"hpclars: completed; log {work}/runs/train-{job}.h5" in text
    assert sorted(p.name for p in work.rglob("*.out")) == [output.name]


def test_scaling_job_runs_exactly_warmup_plus_steps_in_every_run(slurm):
    """Each scaling run takes WARMUP + STEPS steps across epoch boundaries (it used to stop at the
    end of the first epoch), and its log's training clock has points at both ends of the window."""
    export = {"SCALING_DIR": slurm.work / "scaling", "STRONG_BATCH": 16384, "WEAK_BATCH_PER_RANK": 8192,
              "STEPS": 4, "WARMUP": 2}
    r, _, outputs = slurm.sbatch("scaling.sbatch", options=["--ntasks=2"], export=export, timeout=600)
    assert r.returncode == 0, slurm.explain(r, outputs)
    logs = sorted((slurm.work / "scaling").glob("*-n*.h5"))
    assert [p.stem for p in logs] == ["strong-n1", "strong-n2", "weak-n1", "weak-n2"], slurm.explain(r, outputs)
    for p in logs:
        with h5py.File(p, "r") as f:
            steps, evals = f["epochs/step"][:].tolist(), f["evals/step"][:].tolist()
            batch = json.loads(f.attrs["config"])["batch_size"]
        per_epoch = 60000 // batch                       # 3 at 16384, 7 at 8192
        assert steps[-1] == 6 and len(steps) == 1 + -(-6 // per_epoch), (p.name, steps)
        assert {2, 6} <= set(evals), (p.name, evals)
