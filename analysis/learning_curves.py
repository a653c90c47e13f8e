"""Learning curves: test and training accuracy per epoch, one panel per batch size.

Reads hpclars run logs (schema: analysis/common.py); one line per optimizer
configuration (mean over seeds), solid for test accuracy, dashed for training
accuracy.  Writes learning_curves.png and .pdf.

    python analysis/learning_curves.py results/paper --out figures
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import common


def make(runs, out):
    groups = common.by_label_and_batch(runs)
    batches = sorted({b for per in groups.values() for b in per})
    cols = min(4, len(batches))
    rows = math.ceil(len(batches) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    colors = {label: f"C{i}" for i, label in enumerate(sorted(groups))}
    for ax, batch in zip(axes.flat, batches):
        for label, per in sorted(groups.items()):
            seeds = [r for r in per.get(batch, []) if r.status == "completed"]
            if not seeds:
                continue
            n = min(len(r.epochs["epoch"]) for r in seeds)
            epochs = seeds[0].epochs["epoch"][:n]
            for field, style in (("test_acc", "-"), ("train_acc", "--")):
                mean = np.mean([r.epochs[field][:n] for r in seeds], axis=0) * 100
                shown = np.isfinite(mean)  # epochs run with --eval-every > 1 have no accuracy
                ax.plot(epochs[shown], mean[shown], style, color=colors[label], lw=1.2,
                        label=label if field == "test_acc" else None)
        ax.set_title(f"batch {batch}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(batches):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    legend = {}
    for ax in axes.flat:  # a configuration may be missing from some panels
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, 1.02))
    fig.suptitle("solid: test, dashed: train", y=-0.01, fontsize=8)
    fig.tight_layout()
    return common.save(fig, out, "learning_curves")


if __name__ == "__main__":
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    print(make(common.load_runs(args.logs), args.out))
