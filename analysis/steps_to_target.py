"""Steps to reach a test-accuracy target against batch size (Shallue et al. 2018).

For each run, the optimizer steps taken by the end of the first epoch whose
test accuracy reaches the target (the log has one evaluation per epoch, so this
is an upper bound, exact to one epoch).  Mean over the seeds that reach it;
configurations that never reach it at a batch size are left out there.  Log-log,
with the line of perfect scaling (steps halve when the batch doubles) through
each configuration's smallest batch.  Writes steps_to_target.png and .pdf.

    python analysis/steps_to_target.py results/paper --targets 0.97,0.99 --out figures
"""

import matplotlib.pyplot as plt
import numpy as np

import common


def steps_to(run, target):
    """Steps at the first epoch with test_acc >= target, or None."""
    if run.status != "completed":
        return None
    hit = np.nonzero(run.epochs["test_acc"] >= target)[0]
    return int(run.epochs["step"][hit[0]]) if len(hit) else None


def table(runs, target):
    """{label: {batch: mean steps over the seeds that reach target}}"""
    out = {}
    for label, per in common.by_label_and_batch(runs).items():
        row = {}
        for batch, seeds in per.items():
            steps = [s for s in (steps_to(r, target) for r in seeds) if s is not None]
            if steps:
                row[batch] = float(np.mean(steps))
        out[label] = row
    return out


def make(runs, out, targets=(0.97, 0.99)):
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 4.2), squeeze=False)
    for ax, target in zip(axes[0], targets):
        rows = table(runs, target)
        if not any(rows.values()):
            ax.text(0.5, 0.5, f"no run reached {100 * target:g}%", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_title(f"test accuracy >= {100 * target:g}%", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for i, (label, row) in enumerate(sorted(rows.items())):
            if not row:
                continue
            xs = sorted(row)
            ax.plot(xs, [row[b] for b in xs], "o-", color=f"C{i}", ms=4, label=label)
            ideal = [row[xs[0]] * xs[0] / b for b in xs]
            ax.plot(xs, ideal, ":", color=f"C{i}", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("global batch size")
        ax.set_ylabel("steps to target")
        ax.set_title(f"test accuracy >= {100 * target:g}% (dotted: perfect scaling)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return common.save(fig, out, "steps_to_target")


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--targets", default="0.97,0.99", help="comma-separated accuracies (default 0.97,0.99)")
    args = p.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    if not all(0 < t < 1 for t in targets):
        raise SystemExit(f"error: --targets: each must be a fraction in (0, 1), got {args.targets}")
    print(make(common.load_runs(args.logs), args.out, targets))
