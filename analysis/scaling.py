"""Scaling: images/s and parallel efficiency against ranks, with the step's time split.

Reads the logs of a scaling study (``jobs/scaling.sbatch`` names them
``strong-n<k>.h5`` and ``weak-n<k>.h5``, ``hpclars bench scaling --repeats R --keep-logs``
``weak-n<k>-r<repeat>.h5``; any other logs form one series named after their label).
Repeats of one rank count are summarised by their medians, the images/s with the repeats'
min-max as an error bar.  Images/s over each run's timed window (``common.timed_window``:
the steps after its warm-up, on the training clock), and from its last epoch the
per-step seconds in forward+backward (``time_compute``), ``time_allreduce`` and
``time_optim`` (maxima over ranks).  Efficiency: strong, ips(k) / (k ips(1));
weak, the same ratio with a per-rank batch held fixed.  Writes scaling.png and .pdf.

    python analysis/scaling.py runs/scaling-1234 --out figures
"""

import re
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import common

SERIES = re.compile(r"^(?P<kind>strong|weak)-n(?P<n>\d+)(?:-r\d+)?$")


def series(runs):
    """{name: [(ranks, images/s, compute, allreduce, optim, images/s min, images/s max, repeats)]}
    sorted by ranks; images/s and the per-step seconds are medians over a rank count's repeats."""
    per = defaultdict(list)
    for r in runs:
        m = SERIES.match(Path(r.path).stem)
        name = m.group("kind") if m else common.label_of(r)
        steps = r.epochs["step"]
        n_steps = steps[-1] - steps[-2] if len(steps) > 1 else 0
        if n_steps <= 0:
            continue
        e = r.epochs
        ips, _ = common.timed_window(r)
        per[name, r.world_size].append((ips, e["time_compute"][-1] / n_steps,
                                        e["time_allreduce"][-1] / n_steps, e["time_optim"][-1] / n_steps))
    out = defaultdict(list)
    for (name, ranks), reps in per.items():
        cols = np.array(reps)
        out[name].append((ranks, *np.median(cols, axis=0).tolist(), float(cols[:, 0].min()),
                          float(cols[:, 0].max()), len(reps)))
    return {k: sorted(v) for k, v in out.items()}


def make(runs, out):
    data = series(runs)
    if not data:
        raise SystemExit("error: no scaling logs with at least one training epoch")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (name, rows) in enumerate(sorted(data.items())):
        ranks = np.array([r[0] for r in rows])
        ips = np.array([r[1] for r in rows])
        spread = np.array([[r[1] - r[5] for r in rows], [r[6] - r[1] for r in rows]])
        reps = max(r[7] for r in rows)
        axes[0].errorbar(ranks, ips, yerr=spread if reps > 1 else None, fmt="o-", color=f"C{i}", capsize=3,
                         label=name + (f" (median of {reps}, min-max)" if reps > 1 else ""))
        base = ips[0] / ranks[0]
        axes[1].plot(ranks, 100 * ips / (ranks * base), "o-", color=f"C{i}", label=name)
        width = 0.38
        x = np.arange(len(rows)) + (i - 0.5) * width
        bottom = np.zeros(len(rows))
        for j, (part, hatch) in enumerate((("compute", ""), ("allreduce", "//"), ("optimizer", ".."))):
            ms = np.array([r[2 + j] for r in rows]) * 1e3
            axes[2].bar(x, ms, width, bottom=bottom, color=f"C{i}", alpha=1 - 0.3 * j, hatch=hatch,
                        label=f"{name}: {part}")
            bottom += ms
        axes[2].set_xticks(np.arange(len(rows)), [str(r) for r in ranks])
    axes[0].set_ylabel("training images/s")
    axes[1].set_ylabel("parallel efficiency (%)")
    axes[1].axhline(100, color="gray", lw=0.8)
    axes[2].set_ylabel("ms per step (max over ranks)")
    for ax in axes:
        ax.set_xlabel("MPI ranks")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_xscale("log", base=2)
    axes[1].set_xscale("log", base=2)
    fig.tight_layout()
    return common.save(fig, out, "scaling")


if __name__ == "__main__":
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    print(make(common.load_runs(args.logs, statuses=("completed",)), args.out))
