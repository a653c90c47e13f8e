"""Training to a target (issue 18): --target-accuracy stops a run at the first evaluation that
reaches it, --eval-every-steps evaluates between epoch ends, the log records every evaluation
and where each target was first reached, a stopped target run resumes to exactly the
uninterrupted one, sweeps treat it as finished, --mllog writes MLPerf-style lines, and
analysis/time_to_target.py turns the logs into measured and predicted times.  Real runs on
real MNIST, under mpiexec where ranks matter."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _util import assert_ok, flat_params, metrics, read_log, run, train_args
from hpclars import checkpoint as ckpt
from hpclars import config as C
from hpclars import mllog, target

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "analysis"
# 30 steps per epoch; with these settings the test accuracy passes 0.95 at step 40 (epoch 2),
# on 1 and on 2 ranks, and 0.93 at the end of epoch 1 (step 30, a full evaluation).
FLAGS = dict(preset="lars-scaled", batch_size=2000, epochs=3, warmup_epochs=0.36, eval_every_steps=10,
             target_accuracy=0.95)
SPE, HIT = 30, 40
EVAL_METRICS = ("step", "epoch", "test_loss", "test_acc")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """The uninterrupted target run, per rank count (computed once, on demand)."""
    logs = {}

    def get(ranks):
        if ranks not in logs:
            out = tmp_path_factory.mktemp(f"ref{ranks}") / f"ref{ranks}.h5"
            assert_ok(run(train_args(out, data_dir, mllog=out.with_suffix(".mllog"), **FLAGS), ranks=ranks))
            logs[ranks] = read_log(out)
        return logs[ranks]

    return get


# -- the schedule and the bookkeeping, as pure functions ------------------------------------------

def test_step_evaluations_compose_with_epoch_evaluations():
    """Every K steps, except where an epoch end evaluated in full (--eval-every, the last) is."""
    cfg = C.build(batch_size=6000, epochs=3, eval_every=2, eval_every_steps=5)  # 10 steps per epoch
    due = [t for t in range(1, 31) for k in [(t - 1) % 10 + 1] for e in [(t - 1) // 10 + 1]
           if target.step_eval_due(cfg, t, k, e)]
    # epoch 1 (step 10) is not evaluated by --eval-every 2, so step 10 gets a test evaluation;
    # epoch 2 (step 20) and the last epoch (step 30) are evaluated in full, so not again.
    assert due == [5, 10, 15, 25]
    assert not any(target.step_eval_due(C.build(batch_size=6000), t, 1, 1) for t in range(1, 50))


def test_first_reached_is_the_first_evaluation_at_or_above_each_target():
    evals = dict(step=[0, 10, 20, 30], epoch=[0, 0.5, 1, 1.5], wall_s=[1.0, 2.0, 3.0, 4.0],
                 train_s=[0.0, 0.5, 1.0, 1.5], test_acc=[0.1, 0.97, 0.965, 0.99])
    got = target.first_reached(evals, (0.97, 0.98, 0.99, 0.995))
    last = dict(step=30, epoch=1.5, wall_s=4.0, train_s=1.5)
    assert got == {"0.97": dict(step=10, epoch=0.5, wall_s=2.0, train_s=0.5), "0.98": last, "0.99": last,
                   "0.995": None}
    assert target.targets_for(0.95) == (0.95, 0.97, 0.98, 0.99) and target.targets_for(0) == (0.97, 0.98, 0.99)


def test_mllog_hyperparameters_map_lars_and_lamb_to_their_mlperf_keys():
    lars = dict(mllog.hyperparameters(C.build("lars-scaled", batch_size=2048)))
    assert lars == {"lars_opt_base_learning_rate": pytest.approx(11.96 * (2048 / 8192) ** 0.5),
                    "lars_opt_momentum": 0.9, "lars_opt_weight_decay": 1e-4, "lars_epsilon": 0.0,
                    "lars_opt_learning_rate_warmup_epochs": 3.6,
                    "lars_opt_learning_rate_decay_poly_power": 2.0,
                    # 29 steps per epoch x 30 epochs, less round(3.6 x 29) = 104 warm-up steps
                    "lars_opt_learning_rate_decay_steps": 29 * 30 - 104, "lars_opt_end_learning_rate": 0.0}
    lamb = dict(mllog.hyperparameters(C.build("lamb-tuned", batch_size=8192)))
    assert {k: lamb[k] for k in lamb if k.startswith("opt_lamb")} == {
        "opt_lamb_beta_1": 0.9, "opt_lamb_beta_2": 0.999, "opt_lamb_epsilon": 1e-6,
        "opt_lamb_weight_decay_rate": 1e-4, "opt_lamb_learning_rate_decay_poly_power": 2.0,
        "opt_lamb_learning_rate_min": 0.0}
    assert lamb["opt_base_learning_rate"] == 0.04637
    paper = dict(mllog.hyperparameters(C.build("paper")))  # inverse-time: no decay keys
    assert paper == {"opt_base_learning_rate": 0.01, "opt_learning_rate_warmup_epochs": 0.0,
                     "opt_weight_decay": 1e-4}


# -- bad input: one line, before anything is loaded ---------------------------------------------------

@pytest.mark.parametrize("flags,message", [
    (dict(target_accuracy=99), "--target-accuracy: must be a test accuracy as a fraction in (0, 1] "
                               "(0: no target), got 99.0 (did you mean 0.99?)"),
    (dict(target_accuracy=-0.5), "--target-accuracy: must be a test accuracy as a fraction in (0, 1] "
                                 "(0: no target), got -0.5"),
    (dict(target_accuracy=1.5), "(0: no target), got 1.5"),
    (dict(eval_every_steps=-1), "--eval-every-steps: must be an integer >= 0 (0: off), got -1"),
])
def test_bad_target_flags_get_one_line(tmp_path, flags, message):
    proc = run(train_args(tmp_path / "x.h5", tmp_path / "no-data-here", **flags))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpclars train: error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_an_unwritable_mllog_is_refused_before_the_data_is_read(tmp_path):
    # The data directory does not exist: the --mllog error must come first.
    proc = run(train_args(tmp_path / "x.h5", tmp_path / "no-data-here", mllog=tmp_path / "no" / "dir" / "m.txt"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"hpclars train: error: --mllog: cannot write {tmp_path / 'no' / 'dir' / 'm.txt'}: No such file or directory"]


# -- the stop and the log -------------------------------------------------------------------------------

@pytest.mark.parametrize("ranks", [1, 2])
def test_a_run_stops_at_the_first_evaluation_that_reaches_the_target(reference, ranks):
    log = reference(ranks)
    assert log.status == "target_reached"
    assert log.attrs["message"].startswith("test accuracy 0.95") and f"at step {HIT}" in log.attrs["message"]
    ev = log.evals
    # Epoch 0, the step evaluations at 10 and 20, the full one at the end of epoch 1 (step 30,
    # not evaluated twice), then step 40, which reached 0.95; nothing after it.
    np.testing.assert_array_equal(ev["step"], [0, 10, 20, SPE, HIT])
    np.testing.assert_allclose(ev["epoch"], np.array([0, 10, 20, SPE, HIT]) / SPE)
    assert ev["test_acc"][-1] >= 0.95 and (ev["test_acc"][:-1] < 0.95).all()
    assert np.all(np.diff(ev["train_s"]) > 0) and np.all(np.diff(ev["wall_s"]) > 0)
    assert ev["train_s"][0] == 0 and np.all(ev["eval_s"] > 0)
    # The partial epoch 2: its steps so far, the test metrics of the evaluation that reached
    # the target, no training-set evaluation.  The rest of the budget (90 steps) is unused.
    e = log.epochs
    np.testing.assert_array_equal(e["epoch"], [0, 1, 2])
    np.testing.assert_array_equal(e["step"], [0, SPE, HIT])
    assert e["test_acc"][-1] == ev["test_acc"][-1] and e["test_loss"][-1] == ev["test_loss"][-1]
    assert np.isnan(e["train_acc"][-1]) and not np.isnan(e["train_acc"][1])
    assert e["test_acc"][1] == ev["test_acc"][3]
    # Attributes: where each target was first reached, the run's own and the standard ones.
    hit = dict(step=HIT, epoch=HIT / SPE, wall_s=float(ev["wall_s"][-1]), train_s=float(ev["train_s"][-1]))
    assert log.targets == {"0.95": hit, "0.97": None, "0.98": None, "0.99": None}
    assert not os.path.exists(ckpt.checkpoint_path(log.path))


def test_every_rank_stops_after_the_same_evaluation(reference):
    """At 2 ranks the run ended cleanly (a rank that kept training would hang the other in its
    next Allreduce) with the parameters identical on both ranks (the trainer checks that before
    the final status, which would otherwise be failed), after the same evaluation as at 1 rank."""
    two = reference(2)
    assert two.status == "target_reached" and two.world_size == 2
    np.testing.assert_array_equal(two.evals["step"], reference(1).evals["step"])


def test_a_target_reached_at_a_full_epoch_evaluation_ends_there(tmp_path, data_dir):
    out = tmp_path / "e.h5"
    assert_ok(run(train_args(out, data_dir, **{**FLAGS, "target_accuracy": 0.93})))
    log = read_log(out)
    assert log.status == "target_reached" and log.targets["0.93"]["step"] == SPE
    np.testing.assert_array_equal(log.evals["step"], [0, 10, 20, SPE])
    np.testing.assert_array_equal(log.epochs["step"], [0, SPE])
    assert not np.isnan(log.epochs["train_acc"][-1])  # a full evaluation: nothing cut short


# -- resume ------------------------------------------------------------------------------------------

def assert_same_target_run(a, b):
    assert a.status == b.status == "target_reached"
    for k, v in metrics(b).items():
        np.testing.assert_array_equal(metrics(a)[k], v, err_msg=k)
    for k in EVAL_METRICS:
        np.testing.assert_array_equal(a.evals[k], b.evals[k], err_msg=k)
    for k in b.tensors:
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k], err_msg=k)
    np.testing.assert_array_equal(flat_params(a), flat_params(b))
    assert {t: v and v["step"] for t, v in a.targets.items()} == {t: v and v["step"] for t, v in b.targets.items()}


# (ranks, moment, rank asked to stop): stop.py's moments (tests/stop_at.py) around the evaluations.
MOMENTS = [
    (1, f"step:{HIT - 1}", 0),   # in the step before an evaluation that is due: it must run on resume
    (1, "eval:20", 0),           # during a step evaluation: the next step carries the stop
    (1, f"step:{SPE - 1}", 0),   # the last step of epoch 1: its full evaluation comes after the resume
    (2, f"step:{HIT - 1}", 1),   # on rank 1 only
]


@pytest.mark.parametrize("ranks,moment,rank", MOMENTS, ids=[f"{m[0]}ranks-{m[1]}-rank{m[2]}" for m in MOMENTS])
def test_a_stopped_target_run_resumes_to_the_uninterrupted_run(tmp_path, data_dir, reference, ranks, moment, rank):
    out, stop = tmp_path / "run.h5", tmp_path / "STOP"
    ml = tmp_path / "run.mllog"
    args = train_args(out, data_dir, stop_file=stop, mllog=ml, **FLAGS)
    proc = run([moment, rank, "SIGTERM"] + args, ranks=ranks, script="stop_at.py")
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert read_log(out).status == "interrupted"
    assert "run_stop" not in ml.read_text()  # a stopped run is not over
    assert_ok(run(train_args(out, data_dir, stop_file=stop, mllog=ml, resume=True, **FLAGS), ranks=ranks))
    log = read_log(out)
    assert_same_target_run(log, reference(ranks))
    assert not os.path.exists(ckpt.checkpoint_path(out))
    # The clocks continued from the checkpoint: the training-only time never goes back.
    assert np.all(np.diff(log.evals["train_s"]) > 0)
    events = [json.loads(line[len(mllog.PREFIX):]) for line in ml.read_text().splitlines()]
    assert [e["key"] for e in events].count("run_start") == 1
    assert [e["metadata"]["status"] for e in events if e["key"] == "run_stop"] == ["success"]
    assert [e["value"] for e in events if e["key"] == "eval_accuracy"] == list(log.evals["test_acc"])


def test_resume_and_sweep_treat_a_target_run_as_finished(tmp_path, data_dir, reference):
    done = tmp_path / "done.h5"
    shutil.copy(reference(1).path, done)
    proc = run(train_args(done, data_dir, resume=True, **FLAGS))
    assert_ok(proc)
    assert f"{done}: already target_reached; nothing to do" in proc.stdout
    grid = tmp_path / "grid.toml"
    grid.write_text('name = "t"\nbatch_sizes = [2000]\nseeds = [0]\n[common]\nepochs = 3\n'
                    'warmup_epochs = 0.36\neval_every_steps = 5\ntarget_accuracy = 0.6\n'
                    '[[runs]]\nname = "lars"\npreset = "lars-scaled"\n')
    sweep = ["sweep", "--grid", grid, "--out-dir", tmp_path / "out", "--data-dir", data_dir]
    assert_ok(run(sweep))
    log = read_log(tmp_path / "out" / "lars-b2000-s0.h5")
    assert log.status == "target_reached" and log.evals["step"][-1] == log.targets["0.6"]["step"] == 10
    proc = run(sweep)
    assert_ok(proc)
    assert "lars-b2000-s0.h5: already target_reached; nothing to do" in proc.stdout


# -- the MLPerf log ----------------------------------------------------------------------------------

MLLOG_KEYS = {"namespace", "time_ms", "event_type", "key", "value", "metadata"}
REQUIRED = ["init_start", "init_stop", "run_start", "run_stop", "epoch_start", "epoch_stop", "eval_start",
            "eval_stop", "eval_accuracy", "submission_benchmark", "submission_division", "submission_org",
            "submission_platform", "submission_status", "seed", "global_batch_size", "train_samples",
            "eval_samples", "opt_name"]


def read_mllog(path):
    """Every line must be the prefix and one JSON object with exactly the MLPerf keys."""
    events = []
    for line in Path(path).read_text().splitlines():
        assert line.startswith(":::MLLOG "), line
        event = json.loads(line[len(":::MLLOG "):])
        assert set(event) == MLLOG_KEYS, line
        assert event["namespace"] == "" and isinstance(event["time_ms"], int) and isinstance(event["metadata"], dict)
        assert event["event_type"] in ("INTERVAL_START", "INTERVAL_END", "POINT_IN_TIME"), line
        events.append(event)
    return events


@pytest.mark.parametrize("ranks", [1, 2])
def test_mllog_of_a_target_run_has_the_mlperf_format_and_keys(reference, ranks):
    log = reference(ranks)
    events = read_mllog(Path(log.path).with_suffix(".mllog"))
    keys = [e["key"] for e in events]
    for key in REQUIRED + [k for k, _ in mllog.hyperparameters(C.build(**{**FLAGS, "out": "x.h5"}))]:
        assert key in keys, key
    for key in ("init_start", "init_stop", "run_start", "run_stop", "global_batch_size"):
        assert keys.count(key) == 1, key  # rank 0 only
    value = {e["key"]: e["value"] for e in events if e["event_type"] == "POINT_IN_TIME"}
    assert value["global_batch_size"] == 2000 and value["opt_name"] == "lars" and value["seed"] == 0
    assert value["train_samples"] == 60000 and value["eval_samples"] == 10000
    assert f"{ranks} MPI rank(s)" in value["submission_platform"]
    assert keys.index("init_stop") < keys.index("run_start") < keys.index("epoch_start") < keys.index("run_stop")
    assert keys[-1] == "run_stop" and events[-1]["metadata"] == {"status": "success"}
    acc = [e for e in events if e["key"] == "eval_accuracy"]
    assert [e["value"] for e in acc] == list(log.evals["test_acc"])
    assert [e["metadata"]["step_num"] for e in acc] == list(log.evals["step"])
    assert [e["metadata"]["epoch_num"] for e in acc] == pytest.approx(list(log.evals["epoch"]))
    assert [e["metadata"]["epoch_num"] for e in events if e["key"] == "epoch_start"] == [1, 2]
    assert [e["metadata"]["epoch_num"] for e in events if e["key"] == "epoch_stop"] == [1, 2]


def test_mllog_of_a_lamb_run_that_misses_its_target_says_aborted(tmp_path, data_dir):
    out, ml = tmp_path / "l.h5", tmp_path / "l.mllog"
    assert_ok(run(train_args(out, data_dir, optimizer="lamb", lr=0.005, batch_size=3000, epochs=1,
                             max_steps=2, target_accuracy=0.99, mllog=ml), ranks=2))
    assert read_log(out).status == "completed"
    events = read_mllog(ml)
    keys = [e["key"] for e in events]
    for key in ("opt_lamb_beta_1", "opt_lamb_beta_2", "opt_lamb_epsilon", "opt_lamb_weight_decay_rate",
                "opt_base_learning_rate"):
        assert key in keys, key
    assert events[-1]["key"] == "run_stop" and events[-1]["metadata"] == {"status": "aborted"}


# -- analysis/time_to_target.py ---------------------------------------------------------------------

def _analysis(*args):
    return subprocess.run([sys.executable, ANALYSIS / "time_to_target.py", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def logs_dir(tmp_path_factory, reference):
    d = tmp_path_factory.mktemp("ttt")
    for ranks in (1, 2):
        shutil.copy(reference(ranks).path, d / f"r{ranks}.h5")
    return d


def _table_rows(text):
    """The cells of every Markdown table row in ``text`` but the header."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| configuration") and not line.startswith("| ranks")]


def test_time_to_target_measures_from_the_logs(logs_dir, tmp_path):
    proc = _analysis(logs_dir, "--out", tmp_path, "--targets", "0.9,0.95")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "time_to_target.png").exists() and (tmp_path / "time_to_target.pdf").exists()
    section = (tmp_path / "time_to_target.md").read_text().split("## 95% test accuracy")[1]
    rows = {tuple(r[1:3]): r[3:] for r in _table_rows(section)}
    for ranks in (1, 2):  # one seed each: median, min and max are that run's
        hit = read_log(logs_dir / f"r{ranks}.h5").targets["0.95"]
        wall, train = f"{hit['wall_s']:.1f}", f"{hit['train_s']:.1f}"
        assert rows[str(ranks), "2000"] == ["1/1", str(hit["step"]), f"{wall} [{wall}, {wall}]",
                                            f"{train} [{train}, {train}]"]


def test_time_to_target_predicts_from_steps_and_step_times(logs_dir, tmp_path):
    proc = _analysis(logs_dir, "--out", tmp_path, "--step-times", logs_dir, "--predict", "0.95")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "predicted.md").read_text()
    assert "Assumptions:" in md and (tmp_path / "predicted.png").exists()
    expected = []
    for ranks in (1, 2):  # the model from each log's last epoch with steps: the partial epoch 2
        e = read_log(logs_dir / f"r{ranks}.h5").epochs
        n, b = e["step"][-1] - e["step"][-2], 2000 / ranks
        a = e["time_compute"][-1] / (n * b)
        c = 2000 / e["images_per_s"][-1] - e["time_compute"][-1] / n
        expected.append(HIT * (a * 2000 / ranks + c))
    row = next(r for r in _table_rows(md) if len(r) == 5 and r[1] == "2000")
    assert row[2] == str(HIT)
    assert [float(v.strip("*")) for v in row[3:]] == pytest.approx([round(t, 1) for t in expected], abs=0.051)
    # One batch size: it is the fastest configuration at each rank count, so both cells are bold.
    assert row[3].startswith("**") and row[4].startswith("**")
    assert "Fastest on 1 rank(s):" in md and "Fastest on 2 rank(s):" in md and "x the fastest on 1 rank" in md


def test_time_to_target_validates_the_prediction_against_runs_it_did_not_see(logs_dir, tmp_path):
    one = tmp_path / "one-rank"
    one.mkdir()
    shutil.copy(logs_dir / "r1.h5", one / "r1.h5")
    proc = _analysis(one, "--out", tmp_path / "fig", "--step-times", logs_dir, "--validate", logs_dir / "r2.h5",
                     "--predict", "0.95", "--targets", "0.95")
    assert proc.returncode == 0, proc.stderr
    e = read_log(logs_dir / "r2.h5").epochs
    predicted = HIT * (2000 / e["images_per_s"][-1])  # a b + c is the measured step time at b = 1000
    measured = read_log(logs_dir / "r2.h5").targets["0.95"]["train_s"]
    md = (tmp_path / "fig" / "validation.md").read_text()
    rows = [r for r in _table_rows(md) if len(r) == 9]
    assert len(rows) == 1
    label, ranks, batch, best, steps_pred, steps_meas, pred_s, meas_s, ratio = rows[0]
    assert (ranks, batch, best, steps_pred, steps_meas) == ("2", "2000", "yes", str(HIT), str(HIT))
    assert float(pred_s) == pytest.approx(predicted, abs=0.051)
    assert meas_s == f"{measured:.1f} [{measured:.1f}, {measured:.1f}]"
    assert float(ratio) == pytest.approx(measured / predicted, abs=0.006)
    # The validation run is measured too, beside the run the prediction used.
    rows = {tuple(r[1:3]) for r in _table_rows((tmp_path / "fig" / "time_to_target.md").read_text()) if len(r) == 7}
    assert {("1", "2000"), ("2", "2000")} <= rows


@pytest.mark.parametrize("args,message", [
    (["--validate", "LOGS"], "--validate: needs --step-times (there is no prediction to validate without it)"),
    (["--targets", "95"], "--targets: each target must be a test accuracy as a fraction in (0, 1], got 95"),
    (["--predict", "0.9,0.95", "--step-times", "LOGS"], "--predict: one target, got 0.9,0.95"),
    (["--step-times", "EMPTY"], "--step-times: no finished log with a training epoch in EMPTY"),
    (["--step-times", "MISSING"], "MISSING: no such file or directory"),
])
def test_time_to_target_refuses_bad_input_with_one_line(logs_dir, tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    names = {"LOGS": str(logs_dir), "EMPTY": str(empty), "MISSING": str(tmp_path / "missing")}
    args = [names.get(a, a) for a in args]
    message = message.replace("EMPTY", str(empty)).replace("MISSING", str(tmp_path / "missing"))
    proc = _analysis(logs_dir, "--out", tmp_path / "fig", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"time_to_target.py: error: {message}"]
    assert not (tmp_path / "fig").exists()


def test_bench_scaling_keeps_logs_that_time_to_target_predicts_from(logs_dir, tmp_path, data_dir):
    kept = tmp_path / "bench"
    proc = run(["bench", "scaling", "--ranks", "1,2", "--batch-per-rank", 100, "--steps", 3, "--no-torch",
                "--data-dir", data_dir, "--keep-logs", kept])
    assert_ok(proc)
    assert sorted(p.name for p in kept.glob("*.h5")) == ["weak-n1.h5", "weak-n2.h5"]
    proc = _analysis(logs_dir, "--out", tmp_path / "fig", "--step-times", kept, "--predict", "0.95")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "fig" / "predicted.md").read_text()
    model = {r[0]: r for r in _table_rows(md) if len(r) == 5 and r[0] in ("1", "2")}
    assert model["1"][3] == "100" and model["2"][3] == "100"  # the per-rank batch each was measured at


# -- the grid and the tuning objective ---------------------------------------------------------------

def test_the_time_to_target_grid_lists_every_preset_batch_and_seed():
    proc = run(["sweep", "--grid", ROOT / "jobs" / "grids" / "time-to-target.toml", "--list"])
    assert_ok(proc)
    names = proc.stdout.split()[1::2]
    presets = ["sgd-paper", "sgd-tuned", "lars-tuned", "lamb-tuned", "lars-scaled", "lamb-scaled", "adam-tuned"]
    batches = (128, 256, 512, 1024, 2048, 4096)
    assert sorted(names) == sorted([f"{p}-b{b}-s{s}" for p in presets for b in batches for s in (0, 1)]
                                   + [f"fast-99-b{b}-s{s}" for b in batches for s in (0, 1, 2)])
    from hpclars import sweep
    tasks = sweep.load_grid(ROOT / "jobs" / "grids" / "time-to-target.toml", "unused")
    # About 10240 images between test evaluations at every batch size (to half a batch).
    assert {t.config.target_accuracy for t in tasks} == {0.99}
    assert all(abs(t.config.batch_size * t.config.eval_every_steps - 10240) <= t.config.batch_size / 2 for t in tasks)
    assert {t.config.epochs for t in tasks if not t.name.startswith("fast-99")} == {5}
    fast = [t.config for t in tasks if t.name.startswith("fast-99-b512")]
    assert len(fast) == 3 and all(c.epochs == 3 and c.optimizer == "adam" and c.eval_every_steps == 20 for c in fast)


def test_tune_ranks_trials_by_time_to_target(tmp_path, data_dir):
    out = tmp_path / "tune"
    proc = run(["tune", "--optimizer", "lars", "--batch-size", 2000, "--trials", 2, "--epochs", 2,
                "--lr-range", "2,6", "--warmup-range", "0.2,0.5", "--objective", "time-to-target",
                "--target", 0.9, "--eval-every-steps", 10, "--out-dir", out, "--data-dir", data_dir])
    assert_ok(proc)
    assert "wall-clock seconds to 90% test accuracy" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_accuracy"] == 0.9 and len(summary["trials"]) == 2
    for row in summary["trials"]:
        log = read_log(out / f"{row['trial']}.h5")
        assert log.config["target_accuracy"] == 0.9 and log.config["eval_every_steps"] == 10
        hit = log.targets["0.9"]
        assert row["wall_s_to_target"] == (hit and hit["wall_s"]) and row["steps_to_target"] == (hit and hit["step"])
    walls = [r["wall_s_to_target"] for r in summary["trials"]]
    reached = [w for w in walls if w is not None]
    assert walls[:len(reached)] == sorted(reached)  # the soonest first, the others after


def test_tune_refuses_a_target_that_is_not_a_fraction(tmp_path):
    proc = run(["tune", "--optimizer", "lars", "--batch-size", 2000, "--objective", "time-to-target",
                "--target", 99, "--out-dir", tmp_path])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hpclars tune: error: --target: must be a test accuracy as a fraction in (0, 1], got 99.0"]


def test_a_grid_may_not_send_every_run_to_one_mllog(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('batch_sizes = [64]\n[common]\nmllog = "m.txt"\n[[runs]]\nname = "a"\n')
    proc = run(["sweep", "--grid", grid, "--count"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"hpclars sweep: error: --grid: {grid}: [common], line 3: may not set mllog (set by the sweep; "
        "every run of the grid would write the same file)"]
