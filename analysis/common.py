"""Shared pieces of the analysis scripts: find run logs, group them, save figures.

Reads HDF5 run logs through :func:`hpclars.log.read_log` only; it never imports
the trainer.  Expected schema: the one defined in hpclars/log.py (``hpclars
schema`` prints it; root attributes ``config``, ``status``, ``world_size``; datasets
``/epochs/<field>`` with epoch 0 before training; ``/tensors/<field>``; optionally
``/evals/<field>``, one record per test evaluation, in logs written since --eval-every-steps).

Runs are grouped by *configuration*: the full resolved ``config`` minus the seed and the
fields that do not change what a run computes (``hpclars.config.RUN_CONTROL``: out, data_dir,
progress, threads, ...; and ``eval_every_steps``); a field the log predates counts as its default.  Within a
configuration, runs at one batch size are the repeats over seeds that figures average; runs
that differ in anything else are never averaged.  Each configuration gets one *label* (one
line in the figures, one row per batch size in the table):

- a log named as ``hpclars sweep`` names them (``<name>-b<batch>-s<seed>.h5``) is labelled
  ``<name>``; if two configurations share that name, each label adds what differs from its
  preset, e.g. ``lars-tuned (epochs=3)``;
- any other log is labelled by its preset, or its optimizer without one, plus what differs
  from that preset: ``lars-tuned (warmup_epochs=1)``, ``lars/paper`` (the paper preset with
  the LARS optimizer), ``sgd (lr=0.05)``.
"""

import argparse
import dataclasses
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hpclars import config as C  # noqa: E402
from hpclars.log import FINISHED, read_log  # noqa: E402

SWEEP_NAME = re.compile(r"^(?P<label>.+)-b(?P<batch>\d+)-s(?P<seed>\d+)$")
# Not part of a configuration: the seed (what repeats vary), the batch size (each figure's x
# axis), the run control, and how often the test set is evaluated in steps (evaluation does not
# change the training; a grid's eval_every_images sets a different step count per batch size).
NOT_CONFIGURATION = {"seed", "batch_size", "eval_every_steps", *C.RUN_CONTROL}


def find_logs(paths):
    """Every run log under the given files or directories (recursively), sorted."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [q for q in p.rglob("*.h5") if not q.name.endswith(".ckpt.h5")]
        elif p.exists():
            found.append(p)
        else:
            raise SystemExit(f"error: {p}: no such file or directory")
    return sorted(found)


def resolved_config(run):
    """The run's full configuration; fields newer than the log take their defaults."""
    return {**dataclasses.asdict(C.Config()), **run.config}


def configuration(run):
    """What identifies a run's configuration (hashable): its config minus NOT_CONFIGURATION."""
    cfg = resolved_config(run)
    return json.dumps({k: v for k, v in cfg.items() if k not in NOT_CONFIGURATION}, sort_keys=True)


def differences(run):
    """{field: value} where the run differs from its preset (or the defaults), in field order."""
    cfg = resolved_config(run)
    try:
        reference = dataclasses.asdict(C.resolve(cfg.get("preset") or ""))
    except C.ConfigError:  # a preset this version no longer has: compare with the defaults
        reference = dataclasses.asdict(C.Config())
    order = {f: i for i, f in enumerate(C.field_names())}
    return {k: cfg[k] for k in sorted(cfg, key=lambda k: order.get(k, len(order)))
            if k not in NOT_CONFIGURATION and reference.get(k) != cfg[k]}


def _describe(diffs):
    def value(v):
        return f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)
    return f" ({', '.join(f'{k}={value(v)}' for k, v in diffs.items())})" if diffs else ""


def described_label(run):
    """Preset (or optimizer) plus what differs from it: ``lars-tuned (warmup_epochs=1)``."""
    cfg, diffs = resolved_config(run), differences(run)
    preset = cfg.get("preset") or ""
    if not preset:
        diffs.pop("optimizer", None)
        return cfg["optimizer"] + _describe(diffs)
    if "optimizer" in diffs:
        return f"{diffs.pop('optimizer')}/{preset}" + _describe(diffs)
    return preset + _describe(diffs)


def label_of(run):
    """One run's label on its own: its sweep name, else :func:`described_label`."""
    m = SWEEP_NAME.match(Path(run.path).stem)
    return m.group("label") if m else described_label(run)


def _clashes(names):
    count = defaultdict(int)
    for name in names.values():
        count[name] += 1
    return sorted(key for key, name in names.items() if count[name] > 1)


def labels(runs):
    """{configuration: label}, one distinct label per configuration among ``runs``."""
    first = {}
    for r in runs:
        first.setdefault(configuration(r), r)
    names = {key: label_of(r) for key, r in first.items()}
    for key in _clashes(names):  # a sweep name shared by configurations: say what differs
        m = SWEEP_NAME.match(Path(first[key].path).stem)
        if m:
            names[key] = m.group("label") + _describe(differences(first[key]))
    for i, key in enumerate(_clashes(names)):  # still the same words: number them
        names[key] = f"{names[key]} [{i + 1}]"
    return names


def load_runs(paths, statuses=FINISHED, left_out=None):
    """Read logs; keep those whose status is in ``statuses``.

    Every log not kept (unreadable, or another status such as a running or failed run) is
    reported on stderr as ``note: left out PATH: why`` and appended to ``left_out`` as
    ``(path, why)`` when a list is given, so a report can say what it does not show.
    """
    runs = []
    for path in find_logs(paths):
        try:
            run = read_log(path)
        except (OSError, ValueError) as exc:
            why = f"unreadable ({exc})"
        else:
            if run.status in statuses:
                runs.append(run)
                continue
            why = f"status {run.status}"
        print(f"note: left out {path}: {why}", file=sys.stderr)
        if left_out is not None:
            left_out.append((str(path), why))
    return runs


def styles(labels):
    """{label: line style kwargs}: one colour per label (tab10, or tab20 beyond 10 labels),
    and beyond 20 a second line style, so no two configurations look alike."""
    labels = sorted(labels)
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: dict(color=cmap(i % cmap.N), ls=("-", "-.", ":")[i // cmap.N % 3])
            for i, label in enumerate(labels)}


def batch_axis(ax, batches):
    """Log2 x axis labelled with the batch sizes themselves (28000 is not a power of two)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches], rotation=90, fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("global batch size")


def legend_outside(ax_or_fig, handles=None, labels=None, title=None):
    """A legend right of the axes (or the figure), never over the data."""
    kw = dict(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8, title=title,
              title_fontsize=8, frameon=False)
    if handles is None:
        return ax_or_fig.legend(**kw)
    return ax_or_fig.legend(handles, labels, **kw)


def by_label_and_batch(runs):
    """{label: {batch: [runs of one configuration, over seeds]}}; see the module docstring."""
    names = labels(runs)
    groups = defaultdict(lambda: defaultdict(list))
    for r in runs:
        groups[names[configuration(r)]][r.config["batch_size"]].append(r)
    return groups


def final_metric(run, field):
    """The field at the run's last epoch; a diverged run counts as chance level
    (:meth:`hpclars.log.RunData.final_score`)."""
    return run.final_score(field)


def evaluation_points(run):
    """The run's test evaluations: {"step", "epoch", "wall_s", "train_s", "test_acc"} arrays.

    From ``/evals`` where the log has it (every evaluation, --eval-every-steps included).
    Older logs have only ``/epochs``: its evaluated epochs (test_acc not NaN), with
    ``train_s`` the seconds of training steps up to each, summed over epochs as
    (steps in the epoch) x batch / images_per_s (the trainer's images/s counts its steps
    only), and ``epoch`` the epoch number.
    """
    ev = run.evals
    if len(ev["step"]):
        return {k: np.asarray(ev[k]) for k in ("step", "epoch", "wall_s", "train_s", "test_acc")}
    e = run.epochs
    steps = np.diff(np.asarray(e["step"], dtype=np.float64), prepend=0.0)
    ips = np.asarray(e["images_per_s"], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_epoch = np.where(steps > 0, steps * run.config["batch_size"] / ips, 0.0)
    train_s = np.cumsum(np.nan_to_num(per_epoch))
    keep = ~np.isnan(np.asarray(e["test_acc"], dtype=np.float64))
    return {"step": np.asarray(e["step"])[keep], "epoch": np.asarray(e["epoch"], dtype=np.float64)[keep],
            "wall_s": np.asarray(e["wall_s"])[keep], "train_s": train_s[keep],
            "test_acc": np.asarray(e["test_acc"])[keep]}


def timed_window(run):
    """(images/s, steps timed) over a benchmark run's timed window.

    A run of ``hpclars bench`` or ``jobs/scaling.sbatch`` evaluates at the end of its untimed
    warm-up and at its last step (``/evals``), so the window is the steps between those two
    points of the training clock ``train_s``: first evaluation after step 0 to the last.
    Older logs, or a run without such points, fall back to the last epoch's ``images_per_s``
    (which includes that epoch's first steps).
    """
    ev = run.evals
    steps, clock = np.asarray(ev["step"]), np.asarray(ev["train_s"], dtype=np.float64)
    inner = np.nonzero(steps > 0)[0]
    if len(inner) >= 2 and steps[inner[-1]] > steps[inner[0]]:
        a, b = inner[0], inner[-1]
        n = int(steps[b] - steps[a])
        return n * run.config["batch_size"] / (clock[b] - clock[a]), n
    e = run.epochs
    n = int(e["step"][-1] - e["step"][-2]) if len(e["step"]) > 1 else 0
    return float(e["images_per_s"][-1]), n


def mean_spread(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.min()), float(v.max())


def save(fig, out, stem):
    """Write ``out/stem.png`` and ``out/stem.pdf``; return the PNG path."""
    os.makedirs(out, exist_ok=True)
    png = os.path.join(out, stem + ".png")
    fig.savefig(png, dpi=130, bbox_inches="tight")
    fig.savefig(os.path.join(out, stem + ".pdf"), bbox_inches="tight")
    plt.close(fig)
    return png


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("logs", nargs="+", help="run logs or directories of them (searched recursively)")
    p.add_argument("--out", required=True, help="output directory for the PNG and PDF files")
    return p


def metric_vs_batch(runs, field, ylabel, title, percent=True):
    """A figure of ``field`` at the end of training against batch size, one line per label,
    mean over seeds with the min-max spread shaded; diverged runs are marked with x.

    Accuracy figures get a second panel zoomed on the top 3 points, where the best
    configurations lie on top of each other in the full range."""
    scale = 100 if percent else 1
    groups = by_label_and_batch(runs)
    style = styles(groups)
    zoom = field in ("test_acc", "train_acc")
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(11 if zoom else 6.4, 4.2), squeeze=False)
    means = []
    for ax in axes[0]:
        for label, batches in sorted(groups.items()):
            xs = sorted(batches)
            stats = [mean_spread([final_metric(r, field) for r in batches[b]]) for b in xs]
            mean = np.array([s[0] for s in stats]) * scale
            lo = np.array([s[1] for s in stats]) * scale
            hi = np.array([s[2] for s in stats]) * scale
            means += list(mean)
            ax.plot(xs, mean, marker="o", ms=4, label=label, **style[label])
            ax.fill_between(xs, lo, hi, color=style[label]["color"], alpha=0.2, lw=0)
            if len(xs) == 1:  # a band at a single batch size has no width: draw the spread
                ax.errorbar(xs, mean, yerr=[mean - lo, hi - mean], color=style[label]["color"], capsize=3)
            div = [b for b in xs if any(r.status == "diverged" for r in batches[b])]
            if div:
                ax.plot(div, [mean[xs.index(b)] for b in div], "x", color=style[label]["color"], ms=9)
        batch_axis(ax, sorted({b for per in groups.values() for b in per}))
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_title(title, fontsize=10)
    if zoom:
        top = np.nanmax(means)
        high = min(top + 0.3, 100)
        axes[0, 1].set_ylim(top - 3, high + 0.05)
        axes[0, 1].set_title(f"zoom: {top - 3:.1f}-{high:.1f} (points below are off the panel)", fontsize=9)
    if any(r.status == "diverged" for r in runs):
        counted = "counted as 0" if field == "gen_error" else "counted as 10%"
        axes[0, -1].plot([], [], "x", color="gray", ms=9, label=f"a run diverged ({counted})")
    fig.tight_layout()
    legend_outside(axes[0, -1], title="mean, band: min-max over seeds")
    return fig


# The paper's Figures 2-4: file stem -> (log field, y label, title).  Defined once, for the
# three figure scripts and report.py.
METRIC_FIGURES = {
    "fig_test_accuracy": ("test_acc", "test accuracy (%)", "Test accuracy vs batch size (paper Fig. 2)"),
    "fig_train_accuracy": ("train_acc", "training accuracy (%)", "Training accuracy vs batch size (paper Fig. 3)"),
    "fig_generalization": ("gen_error", "train - test accuracy (points)",
                           "Generalization error vs batch size (paper Fig. 4)"),
}


def metric_figure_main(stem, argv=None):
    """The whole of a metric-vs-batch script: parse arguments, read logs, write the figure."""
    field, ylabel, title = METRIC_FIGURES[stem]
    args = parser(title).parse_args(argv)
    runs = load_runs(args.logs)
    if not runs:
        raise SystemExit(f"error: no completed or diverged runs in {' '.join(args.logs)}")
    print(save(metric_vs_batch(runs, field, ylabel, title), args.out, stem))
