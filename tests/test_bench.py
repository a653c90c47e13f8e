"""Benchmark windows: a timed run takes exactly the steps it says, across epoch boundaries, and
its untimed warm-up steps are outside the timed window.  Never a timing."""

import re

import numpy as np
import pytest

from _util import read_log
from hpclars.bench import trainer_window


def test_trainer_window_takes_exactly_the_steps_asked_across_epochs(tmp_path, data_dir):
    # Batch 8192 has 7 steps per epoch: 2 + 9 = 11 steps cross one epoch boundary, which
    # the old `--epochs 1 --max-steps N` cut to 7.
    out = tmp_path / "w.h5"
    w = trainer_window(1, 8192, steps=9, warmup=2, out=str(out), data_dir=str(data_dir))
    run = read_log(out)
    assert w["steps"] == 11 and int(run.epochs["step"][-1]) == 11
    assert run.attrs["status"] == "completed"
    steps = run.evals["step"].tolist()
    assert 2 in steps and 11 in steps          # the window's two ends are on the training clock
    clock = dict(zip(steps, run.evals["train_s"].tolist()))
    assert 0 < clock[2] < clock[11]
    assert w["images_per_s"] == pytest.approx(9 * 8192 / (clock[11] - clock[2]))


def test_bench_refuses_a_negative_warmup():
    from _util import run

    proc = run(["bench", "scaling", "--warmup", "-1"])
    assert proc.returncode != 0 and "--warmup" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_scaling_repeats_interleave_and_report_the_median_efficiency(tmp_path, data_dir):
    """--repeats R runs 1, 2, 1, 2, ... ranks; each repeat's efficiency is against its own 1-rank run."""
    import os
    import statistics

    from _util import assert_ok, run

    kept = tmp_path / "logs"
    proc = run(["bench", "scaling", "--ranks", "1,2", "--batch-per-rank", 100, "--steps", 2, "--warmup", 1,
                "--repeats", 2, "--no-torch", "--data-dir", data_dir, "--keep-logs", kept])
    assert_ok(proc)
    names = ["weak-n1-r0.h5", "weak-n2-r0.h5", "weak-n1-r1.h5", "weak-n2-r1.h5"]
    assert sorted(p.name for p in kept.iterdir()) == sorted(names)
    assert sorted(names, key=lambda n: os.stat(kept / n).st_mtime_ns) == names  # interleaved

    def images_per_s(name):
        log = read_log(kept / name)
        assert int(log.epochs["step"][-1]) == 3 and log.world_size == int(name[6])
        clock = dict(zip(log.evals["step"].tolist(), log.evals["train_s"].tolist()))
        return 2 * 100 * log.world_size / (clock[3] - clock[1])

    effs = [images_per_s(f"weak-n2-r{r}.h5") / 2 / images_per_s(f"weak-n1-r{r}.h5") for r in (0, 1)]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line[:5].strip().isdigit()}
    assert set(rows) == {"1", "2"}
    assert rows["1"][2] == "100.0%" and rows["1"][3] == "100.0-100.0%"
    assert float(rows["2"][2].rstrip("%")) == pytest.approx(100 * statistics.median(effs), abs=0.051)
    lo, hi = (float(v) for v in rows["2"][3].rstrip("%").split("-"))
    assert (lo, hi) == pytest.approx((100 * min(effs), 100 * max(effs)), abs=0.051)


def test_interleaved_times_calls_every_function_once_per_repeat_in_turn():
    from hpclars.bench import interleaved_times

    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("sgemm", "step", "eval")}
    times = interleaved_times(fns, repeats=3, warmup=1)
    # 1 warm-up round, then 3 rounds in which each call is made twice (untimed, then timed),
    # so that the timed call finds its own data in cache, not the previous function's
    assert calls == ["sgemm", "step", "eval"] + ["sgemm", "sgemm", "step", "step", "eval", "eval"] * 3
    assert {k: len(v) for k, v in times.items()} == {"sgemm": 3, "step": 3, "eval": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_bench_train_reports_the_median_share_of_sgemm_inside_its_range():
    from _util import assert_ok, run
    from hpclars import kernels
    from hpclars.bench import TRAIN_FLOPS

    proc = run(["bench", "train", "--batch-sizes", "16", "--repeats", 3, "--no-torch"])
    assert_ok(proc)
    row = next(line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["16"])
    # batch, img/s, GFLOP/s, sgemm GFLOP/s, % sgemm, min-max %, best %, % exec, exec MFLOP,
    # eval img/s, x train, -, -
    share = float(row[4].rstrip("%"))
    lo, hi = (float(v) for v in row[5].rstrip("%").split("-"))
    assert round(lo) <= round(share) <= round(hi) and float(row[1]) > 0 and float(row[9]) > 0
    assert float(row[6].rstrip("%")) > 0 and row[11:] == ["-", "-"]
    # % exec is % sgemm scaled by the executed share of the dense FLOPs
    executed = float(row[8])
    assert 0 < executed <= TRAIN_FLOPS / 1e6 + 5e-4
    assert float(row[7].rstrip("%")) == pytest.approx(share * executed * 1e6 / TRAIN_FLOPS, abs=0.11)  # both rounded to 0.1
    if not kernels.CONV_POOLED_DW:
        assert row[8] == f"{TRAIN_FLOPS / 1e6:.3f}" and row[7] == row[4]
    assert "interleaved" in proc.stdout


def test_executed_flops_counts_the_pooled_parts_by_their_nonzero_windows():
    from hpclars import kernels
    from hpclars.bench import CONV1, CONV2, DENSE, FWD_FLOPS, TRAIN_FLOPS, OneRankStep, executed_flops

    s = OneRankStep(12, 1, 12)
    s.forward_backward()
    m = s.model
    flops, share = executed_flops(m)
    assert set(share) == {"conv1", "conv2"} and all(0 < v <= 1 for v in share.values())
    # the shares are those of the windows whose gradient reaches the kernels' sums
    live = (m.dp2 != 0) & (m.p2 > 0)
    assert share["conv2"] == pytest.approx(live.mean())
    if not kernels.CONV_POOLED_DW:
        assert flops == TRAIN_FLOPS
    else:
        assert FWD_FLOPS + 2 * DENSE < flops < TRAIN_FLOPS
        # no conv2 window with a gradient: its pooled parts execute nothing
        m.dp2[...] = 0
        flops, share = executed_flops(m)
        assert share["conv2"] == 0
        dw1 = CONV1 * share["conv1"] / 4 if kernels.CONV_POOLED_DW1 else CONV1
        assert flops == pytest.approx(FWD_FLOPS + 2 * DENSE + dw1 + (0 if kernels.CONV_POOLED_DX else CONV2))
        # every window with a gradient: a quarter of each pooled part's dense FLOPs
        m.dp1[...], m.p1[...], m.dp2[...], m.p2[...] = 1, 1, 1, 1
        assert executed_flops(m)[0] == pytest.approx(
            FWD_FLOPS + 2 * DENSE + (CONV1 / 4 if kernels.CONV_POOLED_DW1 else CONV1) + CONV2 / 4
            + (CONV2 / 4 if kernels.CONV_POOLED_DX else CONV2))


def test_bench_train_times_the_optimizer_it_is_given():
    from _util import assert_ok, run

    proc = run(["bench", "train", "--batch-sizes", "8", "--repeats", 2, "--optimizer", "lamb"])
    assert_ok(proc)
    assert "optimizer lamb" in proc.stdout
    row = next(line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["8"])
    assert float(row[1]) > 0 and row[11:] == ["-", "-"]  # no PyTorch column: its step is SGD
    assert "this run's update is lamb" in proc.stdout
    bad = run(["bench", "train", "--optimizer", "rmsprop"])
    assert bad.returncode == 2 and "invalid choice: 'rmsprop'" in bad.stderr


def test_timed_kernels_pass_every_call_through_and_time_each_part():
    from hpclars import kernels
    from hpclars.bench import PART_FLOPS, STEP_PARTS, TRAIN_FLOPS, TimedKernels, _batch
    from hpclars.model import LAYOUT, LeNet, init_params

    flat = init_params(np.zeros(LAYOUT.size, np.float32), 3)
    images, labels = _batch(5, seed=1)
    grads = {}
    for name, k in (("plain", kernels), ("timed", TimedKernels(kernels))):
        g = np.zeros_like(flat)
        result = LeNet(k, 4).forward_backward(LAYOUT.views(flat), LAYOUT.views(g), images, labels, 0.2)
        grads[name] = (g, result)
    np.testing.assert_array_equal(grads["plain"][0], grads["timed"][0])
    assert grads["plain"][1] == grads["timed"][1]
    assert set(k.seconds) == set(STEP_PARTS)
    timed_parts = {p for p, s in k.seconds.items() if s > 0}
    assert timed_parts == set(STEP_PARTS) - {"input", "optimizer", "rest"}  # those the caller times
    assert set(PART_FLOPS) <= timed_parts and sum(PART_FLOPS.values()) == TRAIN_FLOPS  # every FLOP, once


def test_bench_step_accounts_for_the_whole_step():
    from _util import assert_ok, run
    from hpclars.bench import STEP_PARTS

    proc = run(["bench", "step", "--batch", "8", "--repeats", 3])
    assert_ok(proc)
    rows = {}
    for line in proc.stdout.splitlines():
        for part in (*STEP_PARTS, "step"):
            if line.startswith(f"{part:>15} "):
                rows[part] = line[16:].split()
    assert set(rows) == {*STEP_PARTS, "step"}
    # Each part's share of the median step; medians of parts need not add up exactly, but
    # nothing may be missing or counted twice.
    shares = sum(float(rows[p][1].rstrip("%")) for p in STEP_PARTS)
    assert 80 < shares < 120, shares
    assert rows["conv2 bwd"][2] != "-" and rows["optimizer"][2] == "-"
    assert "% of sgemm" in proc.stdout.splitlines()[-2]
    # The closing line sets the step (the table's GFLOP/s) and the sgemm against the core's FMA peak.
    m = re.search(r"FMA peak .*: ([\d.]+) GFLOP/s; the step at ([\d.]+)% of it in model FLOPs, ([\d.]+)% in "
                  r"executed FLOPs; sgemm at ([\d.]+)%", proc.stdout.splitlines()[-1])
    assert m, proc.stdout.splitlines()[-1]
    peak, model_pct, exec_pct, sgemm_pct = map(float, m.groups())
    step_gflops, step_pct_sgemm = float(rows["step"][2]), float(rows["step"][3].rstrip("%"))
    assert model_pct == pytest.approx(100 * step_gflops / peak, rel=0.01, abs=0.1)
    assert 0 < exec_pct <= model_pct
    assert sgemm_pct == pytest.approx(100 * model_pct / step_pct_sgemm, rel=0.01, abs=0.2)


def test_fma_peak_gflops_is_a_rate_and_rejects_bad_counts():
    from hpclars.bench import fma_peak_gflops

    assert fma_peak_gflops(repeats=3, rounds=1 << 12) > 0
    for bad in ({"repeats": 0}, {"rounds": 0}):
        with pytest.raises(ValueError, match="fma_peak_gflops needs"):
            fma_peak_gflops(**bad)


def _bench_in_child(args):
    """Run ``hpclars bench ARGS`` in a fresh Python, then report whether that process had
    initialised MPI.  Returns (exit code, stdout, stderr)."""
    import subprocess
    import sys

    code = ("import sys\nfrom hpclars.cli import main\nrc = main(sys.argv[1:])\n"
            "from mpi4py import MPI\nprint('MPI initialised:', MPI.Is_initialized(), flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, "bench", *args], capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_launcher_benches_are_not_mpi_processes_and_pass_the_launcher_options(data_dir):
    # Open MPI's mpiexec fails, silently, when started from a process that ran MPI_Init: a
    # bench that launches runs must leave MPI alone.  Its launcher options reach mpiexec.
    args = ["hybrid", "--cores", "1", "--batch-size", "8192", "--steps", "1", "--warmup", "1",
            "--data-dir", str(data_dir), "--mpiexec-args=--bind-to none"]
    rc, out, err = _bench_in_child(args)
    assert rc == 0, err
    assert "-n RANKS" in out and "--bind-to none -n RANKS" in out
    assert "MPI initialised: False" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:2] == ["1", "1"]]
    assert len(rows) == 1 and float(rows[0][2]) > 0           # the 1 x 1 split ran: img/s
    # An option the launcher does not know fails the run, by name, before any step.
    rc, out, err = _bench_in_child(args[:-1] + ["--mpiexec-args=--no-such-launcher-option"])
    assert rc != 0 and "the 1-rank run failed" in err


@pytest.mark.parametrize("text, message", [
    ("-n 3", "-n is set by hpclars"),
    ("--bind-to core -np 2", "-np is set by hpclars"),
    ("'unclosed", "cannot split"),
])
def test_launcher_options_are_refused_before_any_run(text, message):
    from _util import run

    proc = run(["bench", "scaling", f"--mpiexec-args={text}"])
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3           # usage + one line naming the problem


def test_rank_spread_is_what_a_synchronous_step_loses():
    from hpclars.bench import rank_spread

    even = rank_spread([0.01] * 4)
    assert even["synchronous"] == pytest.approx(1.0) and even["balanced"] == pytest.approx(1.0)
    s = rank_spread([1.0, 1.0, 2.0])
    assert s["median_s"] == 1.0 and s["slowest_s"] == 2.0
    assert s["synchronous"] == pytest.approx(0.5)              # every step waits for the 2 s rank
    assert s["balanced"] == pytest.approx((1 + 1 + 0.5) * 2.0 / 3)   # rates summed vs 3 at the slowest's
    for bad in ([], [0.01, 0.0], [0.01, float("nan")]):
        with pytest.raises(ValueError, match="positive seconds"):
            rank_spread(bad)


def test_bench_step_on_two_ranks_times_both_and_prints_once():
    from _util import run

    proc = run(["bench", "step", "--batch", "16", "--repeats", "3"], ranks=2)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("# hpclars bench step:") == 1 and out.count("           step ") == 1   # rank 0's table only
    rows = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "sgemm"])
    for line in lines[start + 1:start + 3]:
        rank, sgemm, step_ms, gflops, pct = line.split()
        rows[int(rank)] = (float(sgemm), float(step_ms))
    assert sorted(rows) == [0, 1] and all(g > 0 and ms > 0 for g, ms in rows.values())
    slowest = max(ms for _, ms in rows.values())
    assert f"-{slowest:.3f} ms" in out and "a synchronous step waits for the slowest rank" in out


def test_bench_step_back_to_back_times_the_steps_without_an_sgemm_between():
    from _util import run

    proc = run(["bench", "step", "--batch", "16", "--repeats", "3", "--back-to-back"])
    assert proc.returncode == 0, proc.stderr
    assert "3 calls before and 3 after the steps, which run back to back" in proc.stdout
    steps = [float(f[1]) for f in (line.split() for line in proc.stdout.splitlines()) if f[:1] == ["step"]]
    assert len(steps) == 1 and steps[0] > 0
