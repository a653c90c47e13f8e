"""Benchmark windows: a timed run takes exactly the steps it says, across epoch boundaries, and
its untimed warm-up steps are outside the timed window.  Never a timing."""

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
