"""Per-layer local learning rates over training, for every configuration and batch size.

Small multiples, one panel per configuration and batch size, so no run hides another: a
table (rows: configurations, columns: batch sizes) when every configuration has every batch
size, as in a sweep, else the panels that exist in reading order.  Each panel shows the per-tensor ``local_lr`` (LARS's local rate,
LAMB's trust ratio; 1 for SGD and Adam), averaged over each epoch's steps, of the lowest
seed of that configuration and batch size (other seeds: left out, as the title says); log
scale shared by all panels.  ``--batch`` keeps one column, and the title names the batch
sizes left out.  Writes local_lr.png and .pdf.

    python analysis/local_lr.py results/paper --out figures
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

import common


def make(runs, out, batch=None):
    groups = common.by_label_and_batch(runs)
    present = sorted({b for per in groups.values() for b in per})
    if batch is not None and batch not in present:
        raise SystemExit(f"error: --batch: no runs at batch {batch}; the logs have {present}")
    columns = present if batch is None else [batch]
    panels = [(label, b) for label in sorted(groups) for b in columns if groups[label].get(b)]
    # Every configuration at every batch size: a table (rows: configurations, columns: batch
    # sizes) when each has them all, else the panels that exist, in reading order.
    cols = len(columns) if len(panels) == len(groups) * len(columns) else min(5, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + 0.6, 1.9 * rows + 0.8), squeeze=False,
                             sharey=True)
    more_seeds = 0
    for ax, (label, b) in zip(axes.flat, panels):
        ax.set_title(f"{label}\nbatch {b}", fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        seeds = sorted(groups[label][b], key=lambda r: r.config["seed"])
        run = seeds[0]
        more_seeds += len(seeds) - 1
        epochs, local = run.epochs["epoch"][1:], run.tensors["local_lr"][1:]
        few = dict(marker="o", ms=2.5) if len(epochs) < 4 else {}  # one epoch is a point, not a line
        for t, name in enumerate(run.tensor_names):
            ax.plot(epochs, local[:, t], lw=1.0, color=f"C{t // 2 % 10}",
                    ls="-" if name.endswith(".w") else "--", label=name, **few)
        notes = [f"seed {run.config['seed']}" + (", diverged" if run.status == "diverged" else "")]
        finite = local[np.isfinite(local)]
        if not finite.size:
            notes.append("no completed epoch: nothing to show")
        elif np.all(finite == 1):
            notes.append("every tensor at 1 (no layer-wise rate)")
        ax.text(0.03, 0.04, "\n".join(notes), transform=ax.transAxes, fontsize=6, color="0.3")
        ax.set_xlabel("epoch", fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes[0, 0].set_yscale("log")
    for ax in axes[:, 0]:
        ax.set_ylabel("local rate\n(x global lr)", fontsize=7)
    title = ("Per-tensor local rate, mean over each epoch's steps: every configuration at every batch "
             "size it was run at")
    left = []
    if more_seeds:
        left.append(f"{more_seeds} run(s) of other seeds (each panel: its lowest seed)")
    if batch is not None and len(present) > 1:
        left.append("batch sizes " + ", ".join(str(b) for b in present if b != batch))
    if left:
        title += "\nnot shown: " + "; ".join(left)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    first = next(ax for ax in axes.flat if ax.get_lines())
    common.legend_outside(axes[0, -1], *first.get_legend_handles_labels(), title="tensor (solid: weights)")
    return common.save(fig, out, "local_lr")


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="show only this batch size (default: all)")
    args = p.parse_args()
    print(make(common.load_runs(args.logs), args.out, args.batch))
