"""Per-layer local learning rates over training.

For each optimizer configuration at one batch size (``--batch``, default: the
largest present), the per-tensor ``local_lr`` (LARS's local rate, LAMB's trust
ratio; 1 for SGD) averaged over each epoch's steps, first seed.  One panel per
configuration, log scale.  Writes local_lr.png and .pdf.

    python analysis/local_lr.py results/paper --batch 8192 --out figures
"""

import matplotlib.pyplot as plt

import common


def make(runs, out, batch=None):
    groups = common.by_label_and_batch(runs)
    if batch is None:
        batch = max(b for per in groups.values() for b in per)
    chosen = [(label, per[batch][0]) for label, per in sorted(groups.items()) if per.get(batch)]
    if not chosen:
        raise SystemExit(f"error: no runs at batch {batch}")
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.6), squeeze=False, sharey=True)
    for ax, (label, run) in zip(axes[0], chosen):
        local = run.tensors["local_lr"]
        for j, name in enumerate(run.tensor_names):
            ax.plot(run.epochs["epoch"][1:], local[1:, j], lw=1.2, color=f"C{j}",
                    ls="-" if name.endswith(".w") else "--", label=name)
        ax.set_yscale("log")
        ax.set_title(f"{label}, batch {batch}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("local rate (x global lr)")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return common.save(fig, out, "local_lr")


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="batch size to show (default: the largest)")
    args = p.parse_args()
    print(make(common.load_runs(args.logs), args.out, args.batch))
