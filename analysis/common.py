"""Shared pieces of the analysis scripts: find run logs, group them, save figures.

Reads HDF5 run logs through :func:`hpclars.log.read_log` only; it never imports
the trainer.  Expected schema: the one documented in hpclars/log.py and
README.md (root attributes ``config``, ``status``, ``world_size``; datasets
``/epochs/<field>`` with epoch 0 before training; ``/tensors/<field>``).

A run's *label* (one line per label in the figures) is the file name without
its ``-b<batch>-s<seed>.h5`` suffix, as ``hpclars sweep`` names logs; other
logs are labelled ``<optimizer>`` (plus ``/<preset>`` when a preset was used).
"""

import argparse
import os
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hpclars.log import read_log  # noqa: E402

SWEEP_NAME = re.compile(r"^(?P<label>.+)-b(?P<batch>\d+)-s(?P<seed>\d+)$")


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


def label_of(run):
    m = SWEEP_NAME.match(Path(run.path).stem)
    if m:
        return m.group("label")
    cfg = run.config
    return cfg["optimizer"] + (f"/{cfg['preset']}" if cfg.get("preset") else "")


def load_runs(paths, statuses=("completed", "diverged")):
    """Read logs; keep those whose status is in ``statuses``.  Unreadable files are reported, skipped."""
    runs = []
    for path in find_logs(paths):
        try:
            run = read_log(path)
        except (OSError, ValueError) as exc:
            print(f"warning: skipping {path}: {exc}")
            continue
        if run.status in statuses:
            runs.append(run)
    return runs


def by_label_and_batch(runs):
    """{label: {batch: [runs over seeds]}}"""
    groups = defaultdict(lambda: defaultdict(list))
    for r in runs:
        groups[label_of(r)][r.config["batch_size"]].append(r)
    return groups


def final_metric(run, field):
    """The field at the run's last epoch; a diverged run counts as chance level (accuracy 0.1)."""
    if run.status == "diverged" and field in ("test_acc", "train_acc"):
        return 0.1
    if run.status == "diverged" and field == "gen_error":
        return 0.0
    return run.final(field)


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
    mean over seeds with the min-max spread shaded; diverged runs are marked with x."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    scale = 100 if percent else 1
    for label, batches in sorted(by_label_and_batch(runs).items()):
        xs = sorted(batches)
        stats = [mean_spread([final_metric(r, field) for r in batches[b]]) for b in xs]
        mean = np.array([s[0] for s in stats]) * scale
        lo = np.array([s[1] for s in stats]) * scale
        hi = np.array([s[2] for s in stats]) * scale
        line, = ax.plot(xs, mean, marker="o", ms=4, label=label)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        div = [b for b in xs if any(r.status == "diverged" for r in batches[b])]
        if div:
            ax.plot(div, [mean[xs.index(b)] for b in div], "x", color=line.get_color(), ms=9)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("global batch size")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
