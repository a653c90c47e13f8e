"""The paper forensics: epoch budgets read from longer runs, the refusals, the claims' logic.

The premise of analysis/paper_forensics.py is that, for a schedule that does not depend on
the run's length, epoch E of a longer run IS an E-epoch run; that is tested here on real
runs, not assumed.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _util import assert_ok, metrics, read_log, run, run_concurrently, train_args

ROOT = Path(__file__).resolve().parents[1]
FORENSICS = ROOT / "analysis" / "paper_forensics.py"
sys.path.insert(0, str(ROOT / "analysis"))
import paper_forensics as pf  # noqa: E402

# 2 steps per epoch: the cheapest real runs that cross an epoch boundary.
BATCH = 30000


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("forensics")
    common = dict(batch_size=BATCH, optimizer="lars", init="torch-default",
                  exclude_from_adaptation="systemds", lars_eps=1e-8, seed=3)
    # Two independent single-rank runs, side by side (nothing here is timed).
    for proc in run_concurrently(*[(train_args(d / f"{name}.h5", data_dir, epochs=epochs, **common), {})
                                   for name, epochs in (("long", 2), ("short", 1))]):
        assert_ok(proc)
    return d


def test_epoch_e_of_a_longer_run_is_the_e_epoch_run(runs):
    long_, short = read_log(runs / "long.h5"), read_log(runs / "short.h5")
    assert list(long_.epochs["epoch"]) == [0, 1, 2] and list(short.epochs["epoch"]) == [0, 1]
    a, b = metrics(long_), metrics(short)
    for field in ("step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "step_loss"):
        np.testing.assert_array_equal(a[field][:2], b[field], err_msg=field)
    for field in ("test_acc", "train_acc", "gen_error"):
        assert pf.at_budget(long_, field, 1) == short.final(field)


def test_config_is_logged_and_grouped_by_its_fields(runs):
    cfg = read_log(runs / "long.h5").config
    assert (cfg["init"], cfg["exclude_from_adaptation"]) == ("torch-default", "systemds")
    groups = pf.group([read_log(runs / "long.h5")])
    assert list(groups) == [("lars", "torch-default", "systemds")]


def test_plateau_exit_brackets_the_logged_loss(runs):
    r = read_log(runs / "long.h5")
    lo, hi = pf.plateau_exit(r)
    loss, steps = r.epochs["train_loss"], r.epochs["step"]
    if hi is None:
        assert np.all(loss >= pf.PLATEAU_EXIT_LOSS) and lo == steps[-1]
    else:
        i = list(steps).index(hi)
        assert loss[i] < pf.PLATEAU_EXIT_LOSS and np.all(loss[:i] >= pf.PLATEAU_EXIT_LOSS)


def _forensics(*args):
    return subprocess.run([sys.executable, str(FORENSICS), *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_refuses_a_schedule_that_depends_on_the_total(tmp_path, data_dir):
    assert_ok(run(train_args(tmp_path / "poly.h5", data_dir, batch_size=BATCH, epochs=1,
                             schedule="poly", max_steps=1)))
    proc = _forensics(tmp_path, "--out", tmp_path / "fig")
    assert proc.returncode != 0
    assert "poly.h5" in proc.stderr and "'poly' depends on the run's total length" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "fig").exists()


def test_refuses_to_pool_runs_that_differ_beyond_seed_and_batch(runs, tmp_path):
    proc = _forensics(runs, "--out", tmp_path)   # long (2 epochs) and short (1 epoch)
    assert proc.returncode != 0
    assert "short.h5" in proc.stderr and "long.h5" in proc.stderr and "different epochs" in proc.stderr


def test_writes_every_figure_and_the_verdict(runs, tmp_path):
    proc = _forensics(runs / "long.h5", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    for stem in ("epoch_budget_fig2", "epoch_budget_fig3", "epoch_budget_fig4", "two_readings", "plateau"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10000
    verdict = (tmp_path / "verdict.md").read_text()
    # Only LARS runs at one batch size: every claim lacks data, none is judged true.
    assert "| PyTorch, SystemDS rule, B global, 30 ep | n/a" in verdict
    assert "## Assumption sets under which every claim holds\n\nNone measured." in verdict


def _lookup(table):
    """A lookup f(optimizer, paper batch, field) over {(opt, batch, field): mean}."""
    def f(opt, b, field):
        v = table.get((opt, b, field))
        return None if v is None else (v, v - 0.01, v + 0.01, 2)
    return f


def test_claims_use_the_papers_thresholds():
    f = _lookup({("sgd", 28000, "test_acc"): 0.39, ("lars", 28000, "test_acc"): 0.56})
    assert pf.claim_sgd_below_40(f)[0] is True
    assert pf.claim_lars_above_55(f)[0] is True
    f = _lookup({("sgd", 28000, "test_acc"): 0.41, ("lars", 28000, "test_acc"): 0.55})
    assert pf.claim_sgd_below_40(f)[0] is False
    assert pf.claim_lars_above_55(f)[0] is False
    assert pf.claim_99_to_1024(_lookup({}))[0] is None       # missing runs are not a verdict
    # ... unless a run that is there already fails the claim.
    assert pf.claim_99_to_1024(_lookup({("lars", 1024, "test_acc"): 0.9}))[0] is False
    assert pf.claim_99_to_1024(_lookup({("lars", 1024, "test_acc"): 0.99}))[0] is None


def test_readings_of_the_batch_axis():
    assert [pf.global_batch(b, "global") for b in (256, 28000)] == [256, 28000]
    # 4 parallel batches of B rows per update, capped at the training set.
    assert [pf.global_batch(b, "per-worker") for b in (256, 8192, 16384, 28000)] == [1024, 32768,
                                                                                     60000, 60000]
