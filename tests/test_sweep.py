"""`hpclars sweep` over a grid file, and the analysis scripts over the logs it writes."""

import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from _util import assert_ok, read_log, run

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "jobs" / "grids" / "tiny.toml"
ANALYSIS = ROOT / "analysis"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("sweep")
    proc = run(["sweep", "--grid", TINY, "--out-dir", out, "--data-dir", data_dir], ranks=2)
    assert_ok(proc)
    return out


def test_count_and_list():
    proc = run(["sweep", "--grid", TINY, "--count"])
    assert_ok(proc)
    assert proc.stdout.strip() == "2"
    proc = run(["sweep", "--grid", TINY, "--list"])
    assert proc.stdout.split() == ["0", "sgd-paper-b64-s0", "1", "sgd-paper-b128-s0"]


def test_eval_every_images_gives_each_batch_size_its_step_interval(tmp_path):
    """The same number of images between test evaluations at every batch size:
    round(images / batch) steps, at least 1; a [[runs]] entry's value wins over [common]'s."""
    from hpclars.sweep import load_grid

    grid = tmp_path / "g.toml"
    grid.write_text("batch_sizes=[64, 256, 1000, 8192]\n[common]\neval_every_images=2560\n"
                    "[[runs]]\nname='a'\n[[runs]]\nname='b'\neval_every_images=512\n")
    steps = {t.name: t.config.eval_every_steps for t in load_grid(grid, tmp_path / "out")}
    assert steps == {"a-b64-s0": 40, "a-b256-s0": 10, "a-b1000-s0": 3, "a-b8192-s0": 1,
                     "b-b64-s0": 8, "b-b256-s0": 2, "b-b1000-s0": 1, "b-b8192-s0": 1}


@pytest.mark.parametrize("grid", sorted((ROOT / "jobs" / "grids").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_grids_are_valid(grid):
    """Every grid the README and the job scripts name validates, and its log names are unique."""
    from hpclars import sweep
    tasks = sweep.load_grid(grid, "unused")
    names = [t.name for t in tasks]
    assert tasks and len(set(names)) == len(names)
    assert all(t.config.epochs >= 1 and t.config.batch_size >= 1 for t in tasks)


def test_sweep_writes_one_completed_log_per_point(sweep_dir):
    logs = sorted(p.name for p in sweep_dir.glob("*.h5"))
    assert logs == ["sgd-paper-b128-s0.h5", "sgd-paper-b64-s0.h5"]
    for name in logs:
        log = read_log(sweep_dir / name)
        assert log.status == "completed" and log.world_size == 2
        assert log.config["preset"] == "paper" and log.epochs["step"][-1] == 5


def test_sweep_skips_completed_and_reruns_failed(sweep_dir, data_dir):
    failed = sweep_dir / "sgd-paper-b64-s0.h5"
    with h5py.File(failed, "a") as f:
        f.attrs["status"] = "failed"
    proc = run(["sweep", "--grid", TINY, "--out-dir", sweep_dir, "--data-dir", data_dir])
    assert_ok(proc)
    assert "sgd-paper-b128-s0.h5: already completed; nothing to do" in proc.stdout
    assert read_log(failed).status == "completed"
    assert read_log(failed).world_size == 1  # it really ran again, on this one rank


def test_single_task(tmp_path, data_dir):
    proc = run(["sweep", "--grid", TINY, "--out-dir", tmp_path, "--data-dir", data_dir, "--task", "1"])
    assert_ok(proc)
    assert [p.name for p in tmp_path.glob("*.h5")] == ["sgd-paper-b128-s0.h5"]
    proc = run(["sweep", "--grid", TINY, "--out-dir", tmp_path, "--task", "2"])
    assert proc.returncode == 2 and "--task: 2 is outside the grid's 0..1" in proc.stderr


@pytest.mark.parametrize("text,message", [
    ("batch_sizes=[64]\n[[runs]]\nname='a'\noptimizer='rmsprop'\n",
     "run a-b64-s0: --optimizer: 'rmsprop' is not one of"),
    ("batch_sizes=[64]\nwhat=1\n[[runs]]\nname='a'\n", "top level, line 2: unknown key what; allowed:"),
    ("batch_size=[64]\n[[runs]]\nname='a'\n",
     "top level, line 1: unknown key batch_size (did you mean batch_sizes?)"),
    ("batch_sizes=[64]\n", "defines no [[runs]]"),
    ("batch_sizes=[64]\n[common]\nout='x.h5'\n[[runs]]\nname='a'\n",
     "[common], line 3: may not set out (set by the sweep)"),
    ("batch_sizes=[64]\n[[runs]]\nname='a'\nseed=1\n",
     "[[runs]] entry 1 ('a'), line 4: may not set seed (set by the sweep; use seeds)"),
    ("batch_sizes=[64]\n[[runs]]\nname='a'\nlearning_rate=1\n",
     "[[runs]] entry 1 ('a'), line 4: unknown key learning_rate"),
    # A typo in [common] is reported against [common] and its line, not against the first run.
    ("batch_sizes=[64]\n[common]\nepochs=1\n# a comment\n  max_step = 3\n[[runs]]\nname='a'\n",
     "[common], line 5: unknown key max_step (did you mean max_steps?)"),
    ("batch_sizes=[64]\n[[runs]]\nname='a'\n[[runs]]\nname='b'\noptimiser='lars'\n",
     "[[runs]] entry 2 ('b'), line 6: unknown key optimiser (did you mean optimizer?)"),
    # Keys in an inline table have no line the scan can find: the table is still named.
    ("batch_sizes=[64]\ncommon={max_step=3}\n[[runs]]\nname='a'\n",
     ": [common]: unknown key max_step (did you mean max_steps?)"),
    ("batch_sizes=[64\n", "is not valid TOML"),
    ("batch_sizes=[64]\n[common]\neval_every_images=0\n[[runs]]\nname='a'\n",
     "run a-b64-s0: eval_every_images must be a positive integer (images between test evaluations), got 0"),
    ("batch_sizes=[64]\n[common]\neval_every_images=640\n[[runs]]\nname='a'\neval_every_steps=5\n",
     "run a-b64-s0: eval_every_images and eval_every_steps both set; keep one"),
])
def test_bad_grid_is_refused_with_its_name(tmp_path, text, message):
    grid = tmp_path / "g.toml"
    grid.write_text(text)
    proc = run(["sweep", "--grid", grid, "--out-dir", tmp_path / "out"])
    assert proc.returncode == 2
    assert f"--grid: {grid}" in proc.stderr and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_report_writes_every_figure_and_the_table(sweep_dir, tmp_path):
    proc = subprocess.run([sys.executable, ANALYSIS / "report.py", sweep_dir, "--out", tmp_path],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for stem in ("fig_test_accuracy", "fig_train_accuracy", "fig_generalization", "learning_curves",
                 "steps_to_target", "local_lr"):
        for ext in ("png", "pdf"):
            f = tmp_path / f"{stem}.{ext}"
            assert f.stat().st_size > 1000, f
    assert (tmp_path / "fig_test_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "report.md").read_text()
    b64 = read_log(sweep_dir / "sgd-paper-b64-s0.h5")
    assert f"| sgd-paper | 64 | 1 | {100 * b64.final('test_acc'):.2f} |" in table
    assert "| sgd-paper | 128 | 1 |" in table


def test_scaling_figure(sweep_dir, tmp_path):
    proc = subprocess.run([sys.executable, ANALYSIS / "scaling.py", sweep_dir, "--out", tmp_path],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "scaling.png").stat().st_size > 1000


def test_analysis_refuses_an_empty_directory(tmp_path):
    proc = subprocess.run([sys.executable, ANALYSIS / "fig_test_accuracy.py", tmp_path, "--out", tmp_path],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "no completed or diverged runs" in proc.stderr


def test_a_diverged_run_does_not_stop_the_sweep(tmp_path, data_dir):
    grid = tmp_path / "g.toml"
    grid.write_text("batch_sizes=[256]\n[common]\nepochs=1\nmax_steps=5\n"
                    "[[runs]]\nname='hot'\nlr=1e8\n[[runs]]\nname='ok'\n")
    proc = run(["sweep", "--grid", grid, "--out-dir", tmp_path / "out", "--data-dir", data_dir])
    assert_ok(proc)
    assert read_log(tmp_path / "out" / "hot-b256-s0.h5").status == "diverged"
    assert read_log(tmp_path / "out" / "ok-b256-s0.h5").status == "completed"
