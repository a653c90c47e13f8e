"""Steps to reach a test-accuracy target against batch size (Shallue et al. 2018).

For each run, the optimizer steps taken by its first evaluation whose test
accuracy reaches the target: exact to K steps for a run with --eval-every-steps K
(the log's /evals), else to one epoch (an upper bound from the per-epoch log).  Mean over the seeds that reach it;
configurations that never reach it at a batch size are left out there.  Log-log,
with the line of perfect scaling (steps halve when the batch doubles) through
each configuration's smallest batch.  Each panel names the configurations that reach the
target at no batch size (they have no line).  Writes steps_to_target.png and .pdf.

    python analysis/steps_to_target.py results/paper --targets 0.97,0.99 --out figures
"""

import matplotlib.pyplot as plt
import numpy as np

import common


def steps_to(run, target):
    """Steps at the first evaluation with test_acc >= target, or None (also for a run that
    diverged or was not finished)."""
    if run.status not in ("completed", "target_reached"):
        return None
    points = common.evaluation_points(run)
    hit = np.nonzero(points["test_acc"] >= target)[0]
    return int(points["step"][hit[0]]) if len(hit) else None


def table(runs, target):
    """{label: {batch: (mean steps over the seeds that reach target, whether all of them do)}}"""
    out = {}
    for label, per in common.by_label_and_batch(runs).items():
        row = {}
        for batch, seeds in per.items():
            steps = [s for s in (steps_to(r, target) for r in seeds) if s is not None]
            if steps:
                row[batch] = (float(np.mean(steps)), len(steps) == len(seeds))
        out[label] = row
    return out


def make(runs, out, targets=(0.97, 0.99)):
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 4.2), squeeze=False)
    style = common.styles(common.by_label_and_batch(runs))
    for ax, target in zip(axes[0], targets):
        rows = table(runs, target)
        never = sorted(label for label, row in rows.items() if not row)
        if never and any(rows.values()):
            ax.text(0.02, 0.02, "never reached:\n" + "\n".join(never), transform=ax.transAxes,
                    fontsize=6, color="0.3", va="bottom")
        if not any(rows.values()):
            ax.text(0.5, 0.5, f"no run reached {100 * target:g}%", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_title(f"test accuracy >= {100 * target:g}%", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for label, row in sorted(rows.items()):
            if not row:
                continue
            xs = sorted(row)
            ys = [row[b][0] for b in xs]
            ax.plot(xs, ys, label=label, **style[label])
            color = style[label]["color"]
            for x, y in zip(xs, ys):
                ax.plot([x], [y], "o", ms=4.5, color=color, mfc=color if row[x][1] else "white")
            ideal = [ys[0] * xs[0] / b for b in xs]
            ax.plot(xs, ideal, ":", color=color, lw=1)
        if any(not all_seeds for row in rows.values() for _, all_seeds in row.values()):
            ax.plot([], [], "o", ms=4.5, color="0.3", mfc="white", label="open: not every seed reached it")
        common.batch_axis(ax, sorted({b for per in common.by_label_and_batch(runs).values() for b in per}))
        ax.set_yscale("log")
        ax.set_ylabel("steps to target")
        ax.set_title(f"test accuracy >= {100 * target:g}% (dotted: perfect scaling)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    common.legend_outside(axes[0, -1], *_legend(axes[0]), title="mean over seeds that reach it")
    return common.save(fig, out, "steps_to_target")


def _legend(axes):
    """Handles and labels of every panel, each label once (panels may show different ones)."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--targets", default="0.97,0.99", help="comma-separated accuracies (default 0.97,0.99)")
    args = p.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    if not all(0 < t < 1 for t in targets):
        raise SystemExit(f"error: --targets: each must be a fraction in (0, 1), got {args.targets}")
    print(make(common.load_runs(args.logs), args.out, targets))
