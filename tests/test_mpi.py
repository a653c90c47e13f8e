"""Data parallelism with real MPI processes: N ranks equal 1 rank, failures end the job."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from _util import assert_ok, flat_params, launch, metrics, read_log, run, run_concurrently, train_args
from hpclars.balance import RankShares
from hpclars.log import ROOT_ATTRS

STEPS = 20
BATCH = 64  # divisible by 1, 2 and 4


@pytest.fixture(scope="module")
def one_rank_logs(tmp_path_factory, data_dir):
    """The 1-rank reference runs, shared by the 2- and 4-rank comparisons."""
    out = tmp_path_factory.mktemp("one_rank")
    logs = {}
    # The two are independent single-rank runs: side by side (nothing here is timed).
    opts = ("sgd", "lars")
    procs = run_concurrently(*[(train_args(out / f"{opt}.h5", data_dir, preset="paper", optimizer=opt,
                                           batch_size=BATCH, epochs=1, max_steps=STEPS), {}) for opt in opts])
    for opt, proc in zip(opts, procs):
        assert_ok(proc)
        logs[opt] = read_log(out / f"{opt}.h5")
    return logs


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("opt", ["sgd", "lars"])
def test_n_ranks_equal_one_rank(tmp_path, data_dir, one_rank_logs, ranks, opt):
    path = tmp_path / "n.h5"
    assert_ok(run(train_args(path, data_dir, preset="paper", optimizer=opt,
                             batch_size=BATCH, epochs=1, max_steps=STEPS), ranks=ranks))
    one, many = one_rank_logs[opt], read_log(path)
    assert many.world_size == ranks and one.world_size == 1
    assert many.status == one.status == "completed"
    assert many.epochs["step"][-1] == STEPS
    for name in one.tensor_names:
        a, b = many.params[name], one.params[name]
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), name
    # Not vacuous: the 20 steps trained the model.
    assert one.epochs["train_loss"][-1] < one.epochs["train_loss"][0] - 0.1
    np.testing.assert_allclose(many.epochs["test_acc"], one.epochs["test_acc"], atol=2e-4)


@pytest.mark.parametrize("ranks,weights,overlap", [(2, "3,1", False), (2, "3,1", True), (4, "1,2,3,4", False)])
def test_unequal_rank_shares_train_what_one_rank_trains(tmp_path, data_dir, one_rank_logs, ranks, weights, overlap):
    """--rank-weights splits each global batch unequally; the gradient is the same mean over it,
    with the blocking Allreduce and with --overlap-allreduce's per-layer ones."""
    path, equal = tmp_path / "w.h5", tmp_path / "e.h5"
    flags = dict(preset="paper", optimizer="sgd", batch_size=BATCH, epochs=1, max_steps=STEPS,
                 **({"overlap_allreduce": True} if overlap else {}))
    assert_ok(run(train_args(path, data_dir, rank_weights=weights, **flags), ranks=ranks))
    assert_ok(run(train_args(equal, data_dir, **flags), ranks=ranks))
    one, many, eq = one_rank_logs["sgd"], read_log(path), read_log(equal)
    expected = RankShares(BATCH, ranks, [float(w) for w in weights.split(",")]).shares.tolist()
    assert many.rank_shares == [{"step": 0, "shares": expected}] and len(set(expected)) > 1
    assert eq.rank_shares == [] and "rank_shares" not in eq.attrs  # equal shares: nothing to record
    assert set(many.attrs) | {"tensor_names"} == set(ROOT_ATTRS)  # the schema names it
    assert many.status == "completed" and many.epochs["step"][-1] == STEPS
    for name in one.tensor_names:
        a, b = many.params[name], one.params[name]
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), name
    np.testing.assert_allclose(many.epochs["test_acc"], one.epochs["test_acc"], atol=2e-4)
    # The noise scale's per-rank terms are rescaled to each rank's own mean gradient: the
    # estimate is of the same size as with equal shares (without the rescaling it is negative).
    ns, ns_eq = many.epochs["noise_scale"][-1], eq.epochs["noise_scale"][-1]
    assert 0 < ns and 0 < ns_eq and 1 / 3 < ns / ns_eq < 3, (ns, ns_eq)


def test_balance_every_resplits_by_measured_speed(tmp_path, data_dir, one_rank_logs):
    """--balance-every: from a 7:1 split of two equal processes (48 and 16 images: shares come in
    16s) a re-split comes, every split sums to the batch, and the run trains what one rank does."""
    path = tmp_path / "b.h5"
    assert_ok(run(train_args(path, data_dir, preset="paper", optimizer="sgd", batch_size=BATCH, epochs=1,
                             max_steps=STEPS, rank_weights="7,1", balance_every=5), ranks=2))
    log, one = read_log(path), one_rank_logs["sgd"]
    entries = log.rank_shares
    assert entries[0] == {"step": 0, "shares": [48, 16]}
    assert all(e["step"] % 5 == 0 and 0 < e["step"] < STEPS and sum(e["shares"]) == BATCH and min(e["shares"]) >= 16
               for e in entries[1:])
    # Equal processes are nowhere near 3:1: a re-split came (what it chose depends on timing;
    # hpclars.balance.resplit's choices are tested in test_balance.py).
    assert len(entries) >= 2, entries
    for name in one.tensor_names:
        a, b = log.params[name], one.params[name]
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), name


def test_a_resume_without_the_balance_flags_logs_equal_shares(tmp_path, data_dir, one_rank_logs):
    """Stopped at step 13 of a --rank-weights 3,1 --balance-every 5 run, resumed without the
    flags: the log keeps the splits before the stop and records equal shares from there on,
    and the parameters are still those one rank trains."""
    path = tmp_path / "r.h5"
    flags = dict(preset="paper", optimizer="sgd", batch_size=BATCH, epochs=1, max_steps=STEPS)
    stopped = run(["step:12", 0, "SIGTERM"] + train_args(path, data_dir, rank_weights="3,1", balance_every=5, **flags),
                  ranks=2, script="stop_at.py")
    assert stopped.returncode == 75, stopped.stderr
    before = read_log(path).rank_shares
    assert before[0] == {"step": 0, "shares": [48, 16]} and all(e["step"] <= 13 for e in before)
    assert_ok(run(train_args(path, data_dir, resume=True, **flags), ranks=2))
    log, one = read_log(path), one_rank_logs["sgd"]
    assert log.status == "completed" and log.rank_shares == before + [{"step": 13, "shares": [32, 32]}]
    for name in one.tensor_names:
        a, b = log.params[name], one.params[name]
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), name


@pytest.mark.parametrize("ranks", [2, 4])
def test_parameters_bitwise_identical_on_all_ranks(tmp_path, data_dir, ranks):
    digests = tmp_path / "digests.json"
    proc = run([data_dir, tmp_path / "g.h5", digests], ranks=ranks, script="mpi_gather.py")
    assert_ok(proc)
    report = json.loads(digests.read_text())
    assert report["status"] == "completed"
    assert report["size"] == ranks and len(report["digests"]) == ranks
    assert len(set(report["digests"])) == 1


def test_same_seed_same_ranks_gives_bitwise_identical_logs(tmp_path, data_dir):
    logs = []
    for name in ("a.h5", "b.h5"):
        path = tmp_path / name
        assert_ok(run(train_args(path, data_dir, optimizer="lars", lr=1.0, trust_coef=0.01,
                                 batch_size=BATCH, epochs=1, max_steps=STEPS, seed=5), ranks=2))
        logs.append(read_log(path))
    a, b = logs
    for k, v in metrics(a).items():
        np.testing.assert_array_equal(v, metrics(b)[k], err_msg=k)
    for k in a.tensors:
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k], err_msg=k)
    np.testing.assert_array_equal(flat_params(a), flat_params(b))


def test_exception_on_one_rank_ends_the_job(tmp_path, data_dir):
    start = time.monotonic()
    proc = run([data_dir, tmp_path / "f.h5", 2], ranks=4, script="mpi_fault.py", timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 30
    assert "rank 2 of 4 failed: RuntimeError: injected fault in conv2d_pool_relu_forward" in proc.stderr


def _rank_pids(out_path):
    """PIDs of the python processes training into ``out_path`` (found via /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if str(out_path).encode() in cmd and any(b"python" in c for c in cmd[:1]):
            pids.append(int(entry))
    return pids


def test_kill_9_of_one_rank_ends_the_job(tmp_path, data_dir):
    out = tmp_path / "k.h5"
    proc = subprocess.Popen(launch(train_args(out, data_dir, batch_size=BATCH, epochs=5), ranks=2),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:  # epoch 0 evaluated: mid-run now
            time.sleep(0.2)
        pids = _rank_pids(out)
        assert len(pids) == 2, pids
        os.kill(pids[-1], signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - killed < 30
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert read_log(out).status == "running"  # the log written so far stays readable


@pytest.mark.parametrize("batch,message", [
    (66, "--batch-size: 66 is not divisible by the 4 ranks; try 64 or 68"),
    (2, "--batch-size: 2 is smaller than the 4 ranks"),
])
def test_bad_batch_for_world_size_refused_before_work(tmp_path, data_dir, batch, message):
    out = tmp_path / "bad.h5"
    proc = run(train_args(out, data_dir, batch_size=batch, epochs=1), ranks=4, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count(message) == 1, proc.stderr
    assert not out.exists()


def test_one_rank_refuses_the_buffers_n_ranks_refuse(tmp_path):
    reports = {}
    for ranks in (1, 2):
        path = tmp_path / f"r{ranks}.json"
        assert_ok(run([path], ranks=ranks, script="mpi_buffers.py", timeout=120))
        reports[ranks] = json.loads(path.read_text())
    one, two = reports[1][0], reports[2]
    assert one["good sum"] == [0, 1, 2, 3] and two[0]["good sum"] == [0, 2, 4, 6]
    assert two[0] == two[1]  # every rank refused alike, so no rank was left waiting
    for key, message in one.items():
        if key == "good sum":
            continue
        assert message != "accepted", key
        assert message == two[0][key], key
        call, name = key.split()
        assert message.startswith(f"{call}: buffer")
        expected = {"strided": "C-contiguous", "transposed": "C-contiguous", "read-only": "writeable",
                    "object": "dtype object", "float16": "dtype float16", "list": "numpy.ndarray"}[name]
        assert expected in message, (key, message)


def test_abort_waits_until_the_launcher_has_read_the_message():
    """The failing rank's message must leave the pipe before MPI_Abort kills the forwarder."""
    import threading
    from hpclars.comm import _wait_for_launcher_to_read

    read_fd, write_fd = os.pipe()
    received = []
    with os.fdopen(write_fd, "w") as writer:
        writer.write("hpclars: rank 2 of 4 failed\n")
        writer.flush()
        # A slow launcher: reads 0.5 s later.
        reader = threading.Timer(0.5, lambda: received.append(os.read(read_fd, 4096)))
        reader.start()
        start = time.monotonic()
        _wait_for_launcher_to_read(writer, timeout=5.0)
        waited = time.monotonic() - start
        reader.join()
    os.close(read_fd)
    assert received == [b"hpclars: rank 2 of 4 failed\n"]
    assert 0.5 <= waited < 4.0


def test_abort_does_not_wait_on_a_file_or_an_unread_pipe_forever(tmp_path):
    from hpclars.comm import _wait_for_launcher_to_read

    with open(tmp_path / "err.txt", "w") as f:
        f.write("message\n")
        f.flush()
        start = time.monotonic()
        _wait_for_launcher_to_read(f, timeout=5.0)
        assert time.monotonic() - start < 0.1  # a file: nothing to wait for
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as writer:
        writer.write("nobody reads this\n")
        writer.flush()
        start = time.monotonic()
        _wait_for_launcher_to_read(writer, timeout=0.5)
        assert 0.5 <= time.monotonic() - start < 2.0  # gives up after the timeout
    os.close(read_fd)


# --- MPI start-up: the netmod under srun's PMI (hpclars.comm.slurm_pmi1_netmod) ------------------

WHEEL = ("MPICH Version:      5.0.2\nMPICH Release date: Fri Sep 25 20:45:26 UTC 2026\n"
         "MPICH ABI:          18:2:6\nMPICH Device:       ch4:ucx ofi\n"
         "MPICH configure:    --with-device=ch4:ucx,ofi --with-pm=hydra:gforker\n")
SRUN_PMI2 = {"SLURM_MPI_TYPE": "pmi2", "PMI_FD": "11", "PMI_RANK": "0", "PMI_SIZE": "4"}


@pytest.mark.parametrize("library, environ, netmod", [
    (WHEEL, SRUN_PMI2, "ofi"),                                            # the case it is for
    (WHEEL, {**SRUN_PMI2, "MPIR_CVAR_PMI_VERSION": "1"}, "ofi"),
    (WHEEL, {**SRUN_PMI2, "MPI_LOCALNRANKS": "2"}, None),                 # hydra's ranks inside a job
    (WHEEL, {"PMI_FD": "5", "MPI_LOCALNRANKS": "2"}, None),               # mpiexec outside SLURM
    (WHEEL, {}, None),                                                    # no launcher
    (WHEEL, {**SRUN_PMI2, "MPIR_CVAR_CH4_NETMOD": "ucx"}, None),          # the user chose
    (WHEEL, {**SRUN_PMI2, "MPICH_CH4_NETMOD": "ucx"}, None),              # ... in any spelling
    (WHEEL, {**SRUN_PMI2, "MPIR_PARAM_CH4_NETMOD": "ucx"}, None),
    (WHEEL, {**SRUN_PMI2, "MPIR_CVAR_PMI_VERSION": "2"}, None),           # PMI-2 is length-prefixed
    (WHEEL, {**SRUN_PMI2, "MPICH_PMI_VERSION": "x"}, None),
    (WHEEL, {**SRUN_PMI2, "SLURM_MPI_TYPE": "pmix"}, None),
    (WHEEL, {k: v for k, v in SRUN_PMI2.items() if k != "PMI_FD"}, None),
    (WHEEL.replace("ch4:ucx ofi", "ch4:ucx"), SRUN_PMI2, None),           # no OFI netmod to take
    (WHEEL.replace("ch4:ucx ofi", "ch4:ofi"), SRUN_PMI2, None),           # no UCX: nothing to avoid
    ("Open MPI v4.1.6, package: Debian OpenMPI, ident: 4.1.6\x00", SRUN_PMI2, None),
    ("Intel(R) MPI Library 2021.10 for Linux* OS\n", SRUN_PMI2, None),
    ("", SRUN_PMI2, None),
])
def test_mpich_takes_ofi_only_under_sruns_pmi1_and_only_if_the_user_did_not_choose(library, environ, netmod):
    from hpclars.comm import slurm_pmi1_netmod

    assert slurm_pmi1_netmod(library, environ) == netmod


def _start_up(prelude="", env=None, srun=False):
    """Import hpclars.comm in 2 ranks under mpiexec; with ``srun``, made to look like ranks of
    srun's PMI (hydra's PMI_FD kept, its MPI_LOCALNRANKS removed, SLURM_MPI_TYPE=pmi2).
    Returns (rank 0's "initialised thread-level finalize netmod" words, stderr)."""
    code = (f"{prelude}\nimport mpi4py, os\nfrom hpclars.comm import MPI\n"
            "if os.environ['PMI_RANK'] == '0':  # one rank prints, also where MPI is not started\n"
            "    print(MPI.Is_initialized(), MPI.Is_initialized() and MPI.Query_thread(), mpi4py.rc.finalize,\n"
            "          os.environ.get('MPIR_CVAR_CH4_NETMOD'), flush=True)")
    wrap = ["env", "-u", "MPI_LOCALNRANKS", "SLURM_MPI_TYPE=pmi2"] if srun else []
    env = {k: v for k, v in dict(os.environ, **(env or {})).items() if not k.startswith("SLURM_")}
    proc = subprocess.run(launch([], ranks=2)[:3] + wrap + [sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[:4], proc.stderr


def test_importing_comm_starts_mpi_as_mpi4py_would():
    from mpi4py import MPI

    multiple, funneled = str(MPI.THREAD_MULTIPLE), str(MPI.THREAD_FUNNELED)
    # Not under srun's PMI: mpi4py starts MPI on import, as always (MPI_THREAD_MULTIPLE).
    assert _start_up() == (["True", multiple, "None", "None"], "")
    # Under it: MPI starts after the netmod is chosen, with mpi4py's thread level and
    # MPI_Finalize at exit, and rank 0 (only) says why.
    words, err = _start_up(srun=True)
    assert words == ["True", multiple, "True", "ofi"]
    assert err.count("hpclars: srun's PMI with MPICH: MPIR_CVAR_CH4_NETMOD=ofi") == 1, err
    assert _start_up("import mpi4py; mpi4py.rc.thread_level = 'funneled'", srun=True)[0] == \
        ["True", funneled, "True", "ofi"]
    # The user's choices stand: a netmod in any spelling MPICH reads, mpi4py's settings, MPI
    # already imported, initialisation turned off (hpclars bench's launchers).
    assert _start_up(env={"MPICH_CH4_NETMOD": "ucx"}, srun=True) == (["True", multiple, "True", "None"], "")
    assert _start_up(env={"MPI4PY_RC_THREAD_LEVEL": "funneled"}, srun=True)[0] == \
        ["True", funneled, "None", "None"]
    assert _start_up("from mpi4py import MPI", srun=True)[0] == ["True", multiple, "None", "None"]
    assert _start_up(env={"MPI4PY_RC_INITIALIZE": "0"}, srun=True)[0][0] == "False"
    assert _start_up("import mpi4py; mpi4py.rc.initialize = False", srun=True)[0][0] == "False"
