"""The analysis scripts over real logs of tiny runs: grouping by configuration (never by name
alone), labels that say what differs from the preset, and figures that hide no run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from _util import assert_ok, read_log, run, run_concurrently, train_args

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "analysis"
TINY = dict(batch_size=6000, epochs=1, max_steps=2)
# Labels: the preset (or optimizer) and what differs from it, in Config field order.
SGD = "sgd (epochs=1, max_steps=2)"
SGD_HOT = "sgd (epochs=1, max_steps=2, lr=50)"
LARS_WARM = "lars-tuned (epochs=1, max_steps=2, warmup_epochs=1)"


@pytest.fixture(scope="module")
def logs(tmp_path_factory, data_dir):
    """Four real runs in one directory: same seed and optimizer with lr 0.01 and 50, the first
    again with seed 1 (and another chunk size, which is run control), lars-tuned with a warm-up
    of its own at another batch size."""
    d = tmp_path_factory.mktemp("mixed")
    runs = (("a", dict(lr=0.01)), ("b", dict(lr=50)), ("a1", dict(lr=0.01, seed=1, chunk_size=128)),
            ("c", dict(preset="lars-tuned", warmup_epochs=1, batch_size=3000)))
    # Four independent single-rank runs, side by side (nothing here is timed).
    for proc in run_concurrently(*[(train_args(d / f"{name}.h5", data_dir, **{**TINY, **flags}), {})
                                   for name, flags in runs]):
        assert_ok(proc)
    return d


def _report(logs_dir, out):
    proc = subprocess.run([sys.executable, ANALYSIS / "report.py", logs_dir, "--out", out],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [row.split(" | ") for row in (out / "report.md").read_text().splitlines()
            if row.startswith("| ") and not row.startswith("| configuration")]


def test_runs_that_differ_in_anything_but_the_seed_are_never_averaged(logs, tmp_path):
    rows = {(r[0].lstrip("| "), r[1]): r for r in _report(logs, tmp_path)}
    assert sorted(rows) == sorted([(SGD, "6000"), (SGD_HOT, "6000"), (LARS_WARM, "3000")])
    # lr 0.01 and lr 50, same seed: two rows; seeds 0 and 1 of lr 0.01 (chunk sizes differ): one.
    assert rows[SGD, "6000"][6] == "2 (0, 1)"
    assert rows[SGD_HOT, "6000"][6] == "1 (0)" and rows[LARS_WARM, "3000"][6] == "1 (0)"
    a, a1 = read_log(logs / "a.h5"), read_log(logs / "a1.h5")
    mean = 100 * (a.final("test_acc") + a1.final("test_acc")) / 2
    assert rows[SGD, "6000"][3].startswith(f"{mean:.2f} [")


def test_a_shared_sweep_name_gets_what_differs(logs, tmp_path):
    """Two sweep directories whose entry 'sgd' means different things: two labelled lines."""
    for sub, epochs in (("x", 1), ("y", 2)):
        (tmp_path / sub).mkdir()
        copy = tmp_path / sub / "sgd-b6000-s0.h5"
        shutil.copy(logs / "a.h5", copy)
        with h5py.File(copy, "a") as f:
            f.attrs["config"] = json.dumps({**json.loads(f.attrs["config"]), "epochs": epochs})
    labels = sorted(r[0].lstrip("| ") for r in _report(tmp_path, tmp_path / "out"))
    assert labels == ["sgd (epochs=1, max_steps=2)", "sgd (epochs=2, max_steps=2)"]
    # One directory alone keeps the sweep name.
    assert [r[0].lstrip("| ") for r in _report(tmp_path / "x", tmp_path / "out-x")] == ["sgd"]


def test_a_log_left_out_is_named(logs, tmp_path):
    d = tmp_path / "logs"
    shutil.copytree(logs, d)
    with h5py.File(d / "b.h5", "a") as f:
        f.attrs["status"] = "running"
    _report(d, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"- `{d / 'b.h5'}`: status running" in text
    assert SGD_HOT not in text


def _figures(monkeypatch):
    """Import the analysis modules; capture each figure instead of only writing it."""
    monkeypatch.syspath_prepend(str(ANALYSIS))
    import common

    made = {}
    save = common.save

    def capture(fig, out, stem):
        fig.canvas.draw()
        made[stem] = fig
        return save(fig, out, stem)

    monkeypatch.setattr(common, "save", capture)
    return common, made


def test_local_lr_shows_every_configuration_at_every_batch(logs, tmp_path, monkeypatch):
    common, made = _figures(monkeypatch)
    import local_lr

    local_lr.make(common.load_runs([logs]), tmp_path)
    titles = [ax.get_title() for ax in made["local_lr"].axes if ax.get_title()]
    assert sorted(titles) == sorted([f"{SGD}\nbatch 6000", f"{SGD_HOT}\nbatch 6000", f"{LARS_WARM}\nbatch 3000"])
    assert "not shown: 1 run(s) of other seeds" in made["local_lr"]._suptitle.get_text()
    local_lr.make(common.load_runs([logs]), tmp_path, batch=3000)
    assert "not shown: batch sizes 6000" in made["local_lr"]._suptitle.get_text()


def test_learning_curves_train_and_test_lines_differ(logs, tmp_path, monkeypatch):
    common, made = _figures(monkeypatch)
    import learning_curves

    learning_curves.make(common.load_runs([logs]), tmp_path)
    lines = [ln for ax in made["learning_curves"].axes for ln in ax.get_lines() if len(ln.get_xdata())]
    test = [ln for ln in lines if ln.get_linestyle() == "-"]
    train = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(test) == len(train) == 3
    assert all(ln.get_marker() in ("None", None, "") for ln in test)
    assert all(ln.get_marker() == "o" and ln.get_zorder() > test[0].get_zorder() for ln in train)


def test_metric_figure_legend_is_outside_the_data(logs, tmp_path, monkeypatch):
    common, made = _figures(monkeypatch)
    runs = common.load_runs([logs])
    for stem, (field, ylabel, title) in common.METRIC_FIGURES.items():
        fig = common.metric_vs_batch(runs, field, ylabel, title)
        fig.canvas.draw()
        legends = [lg for ax in fig.axes for lg in [ax.get_legend()] if lg]
        assert len(legends) == 1
        box = legends[0].get_window_extent()
        assert all(box.x0 >= ax.get_window_extent().x1 for ax in fig.axes), stem


def test_scaling_figure_takes_repeats_and_agrees_with_bench_scaling(tmp_path):
    # The 4-repeat logs of the 16-core node study (`bench scaling --repeats 4 --keep-logs`,
    # weak-n<k>-r<repeat>.h5): the analysis's medians over repeats, from each log's own timed
    # window, are the images/s that bench scaling printed in the same run.
    study = ROOT / "results/node-16core-2026-11-30/run2"
    printed = {int(f[0]): float(f[1]) for f in (line.split() for line in (study / "scaling.txt").read_text()
                                                  .splitlines()) if f and f[0].isdigit()}
    sys.path.insert(0, str(ANALYSIS))
    try:
        import common
        import scaling
        rows = scaling.series(common.load_runs([study / "sc4"], statuses=("completed",)))
    finally:
        sys.path.remove(str(ANALYSIS))
    assert sorted(rows) == ["weak"]
    got = {r[0]: r for r in rows["weak"]}
    assert sorted(got) == sorted(printed) == [1, 2, 4, 8, 16]
    for n, r in got.items():
        assert r[7] == 4 and r[5] <= r[1] <= r[6]           # 4 repeats, the median within their range
        assert r[1] == pytest.approx(printed[n], abs=0.6)    # bench printed it rounded to 1 image/s
    proc = subprocess.run([sys.executable, ANALYSIS / "scaling.py", study / "sc4", "--out", tmp_path],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "scaling.png").stat().st_size > 10_000 and (tmp_path / "scaling.pdf").exists()
