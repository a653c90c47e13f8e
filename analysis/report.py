"""One command for every figure of a sweep directory plus a Markdown table of the numbers.

    python analysis/report.py results/paper --out figures

Writes fig_test_accuracy, fig_train_accuracy, fig_generalization,
learning_curves, steps_to_target and local_lr (PNG and PDF) into --out, and
report.md there: per configuration and batch size, the final test and training
accuracy and generalization error (mean and min-max over seeds), the seeds
counted, and how many runs diverged.  Reads logs only (schema: analysis/common.py).
"""

import os

import common
import learning_curves
import local_lr
import steps_to_target

def fmt(values):
    mean, lo, hi = common.mean_spread(values)
    return f"{100 * mean:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]" if len(values) > 1 else f"{100 * mean:.2f}"


def markdown(runs):
    lines = ["| configuration | batch | epochs | test acc % | train acc % | gen. error (points) | seeds | diverged "
             "| ranks |", "|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for label, per in sorted(common.by_label_and_batch(runs).items()):
        for batch in sorted(per):
            rs = per[batch]
            cells = [fmt([common.final_metric(r, f) for r in rs]) for f in ("test_acc", "train_acc", "gen_error")]
            div = sum(r.status == "diverged" for r in rs)
            ranks = ",".join(sorted({str(r.world_size) for r in rs}))
            epochs = ",".join(sorted({str(int(r.epochs["epoch"][-1])) for r in rs}))
            seeds = ", ".join(str(r.config["seed"]) for r in sorted(rs, key=lambda r: r.config["seed"]))
            lines.append(f"| {label} | {batch} | {epochs} | {' | '.join(cells)} | {len(rs)} ({seeds}) | {div} "
                         f"| {ranks} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    left_out = []
    runs = common.load_runs(args.logs, left_out=left_out)
    if not runs:
        raise SystemExit(f"error: no completed or diverged runs in {' '.join(args.logs)}")
    made = [common.save(common.metric_vs_batch(runs, f, y, t), args.out, stem)
            for stem, (f, y, t) in common.METRIC_FIGURES.items()]
    made.append(learning_curves.make(runs, args.out))
    made.append(steps_to_target.make(runs, args.out))
    made.append(local_lr.make(runs, args.out))
    report = os.path.join(args.out, "report.md")
    with open(report, "w") as f:
        f.write("# hpclars sweep report\n\nFinal-epoch metrics; mean [min, max] over seeds; "
                "a diverged run counts as 10% accuracy. A configuration is everything in a run's "
                "config but the seed, the batch size and the run control (out, threads, ...); runs "
                "are averaged only over seeds of one configuration.\n\n")
        f.write(markdown(runs))
        if left_out:
            f.write(f"\nLeft out ({len(left_out)} log(s) not finished, i.e. neither completed, target_reached "
                    "nor diverged):\n\n"
                    + "".join(f"- `{path}`: {why}\n" for path, why in left_out))
        f.write("\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in made) + "\n")
    made.append(report)
    print("\n".join(made))


if __name__ == "__main__":
    main()
