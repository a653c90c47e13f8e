"""Learning curves: test and training accuracy per epoch, one panel per batch size.

Reads hpclars run logs (schema: analysis/common.py); one colour per configuration (mean
over seeds, the band the min-max of test accuracy over seeds): a solid line for test accuracy
and, drawn over it, a dashed line with open circles for training accuracy, so the two stay
apart to the eye where they coincide.  A
diverged run has no curve past its divergence; each panel names the configurations that
diverged there.  Writes learning_curves.png and .pdf.

    python analysis/learning_curves.py results/paper --out figures
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

import common


def make(runs, out):
    groups = common.by_label_and_batch(runs)
    style = common.styles(groups)
    batches = sorted({b for per in groups.values() for b in per})
    cols = min(4, len(batches))
    rows = math.ceil(len(batches) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, batch in zip(axes.flat, batches):
        diverged = []
        for label, per in sorted(groups.items()):
            seeds = [r for r in per.get(batch, []) if r.status in ("completed", "target_reached")]
            if any(r.status == "diverged" for r in per.get(batch, [])):
                diverged.append(label)
            if not seeds:
                continue
            n = min(len(r.epochs["epoch"]) for r in seeds)
            epochs = seeds[0].epochs["epoch"][:n]
            color = style[label]["color"]
            for field, kw in (("test_acc", dict(ls="-", lw=1.4, zorder=2)),
                              ("train_acc", dict(ls="--", lw=1.0, marker="o", ms=3.5, mfc="none",
                                                 zorder=3))):
                values = np.array([r.epochs[field][:n] for r in seeds]) * 100
                mean = values.mean(axis=0)
                shown = np.isfinite(mean)  # epochs run with --eval-every > 1 have no accuracy
                ax.plot(epochs[shown], mean[shown], color=color,
                        markevery=max(1, math.ceil(shown.sum() / 8)), **kw)
                if field == "test_acc" and len(seeds) > 1:  # a mean of unlike seeds hides them
                    ax.fill_between(epochs[shown], values.min(axis=0)[shown], values.max(axis=0)[shown],
                                    color=color, alpha=0.15, lw=0)
        ax.set_title(f"batch {batch}", fontsize=9)
        if diverged:
            ax.text(0.97, 0.04, "diverged (no curve):\n" + "\n".join(diverged), transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=6, color="0.3")
        ax.set_ylim(0, 100)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(batches):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    handles = [Line2D([], [], color=style[label]["color"], lw=1.4) for label in sorted(groups)]
    handles += [Line2D([], [], color="0.3", ls="-", lw=1.4),
                Line2D([], [], color="0.3", ls="--", lw=1.0, marker="o", ms=3.5, mfc="none")]
    names = sorted(groups) + ["test accuracy", "training accuracy"]
    fig.tight_layout()
    common.legend_outside(axes[0, -1], handles, names, title="mean over seeds\n(band: test min-max)")
    return common.save(fig, out, "learning_curves")


if __name__ == "__main__":
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    print(make(common.load_runs(args.logs), args.out))
