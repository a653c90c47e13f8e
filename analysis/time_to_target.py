"""Time to a test-accuracy target: measured from run logs, and predicted for any rank count.

    python analysis/time_to_target.py results/paper --out figures/time-to-target \\
        --step-times results/scaling-local results/scaling-16core

Measured (always): for each configuration (label, as the other figures), rank count and
global batch size, the wall-clock seconds and the training-only seconds until the first
evaluation that reaches each target (--targets, default 0.97 and 0.99); median over the
seeds that reach it, min-max spread.  Wall clock counts everything after the data is
loaded (evaluations too); training-only counts the optimizer steps alone (AlgoPerf's
accumulated submission time).  Writes time_to_target.png/.pdf (one column per target, wall
clock above, training-only below, one line per configuration and rank count) and
time_to_target.md (the numbers, and per rank count the fastest configuration).

Predicted (with --step-times): time(B, N) = steps_to_target(B) x step_time(B / N, N) for
the target --predict (default 0.99), every batch size with a measured steps-to-target and
every rank count with a measured step time.  steps_to_target(B): median over seeds, from
the logs above (at any rank count), for the batch sizes at which every seed reached it.  step_time(b, N) = a(N) b + c(N), from logs of runs
with at least one training epoch (``jobs/scaling.sbatch``'s strong/weak logs,
``hpclars bench scaling --keep-logs DIR``, or any run): a(N) = per-image compute seconds
(the epoch's ``time_compute`` / (steps x b), maximum over ranks), c(N) = the rest of a
step's wall time (batch / ``images_per_s`` minus the compute: Allreduce, optimizer, data
gathering), medians over the logs at N ranks.  Writes predicted.md (the table, with the
fastest configuration per rank count marked and the model's assumptions) and
predicted.png/.pdf (heat maps: batch size x ranks, one panel per configuration).

Validation (with --step-times and --validate LOGS): runs measured at the rank counts to check
(for example a 2-rank sweep), kept out of the steps-to-target the prediction uses (they still
appear in the measured figure).  For every configuration, batch size and rank count they
reach the target at, validation.md sets the predicted training-only seconds beside the
measured ones (median over seeds) and their ratio, the predicted-fastest configuration of
each rank count first.

Schema expected: hpclars logs (hpclars/log.py); /evals where the runs had
--eval-every-steps, else the per-epoch records (exact to one epoch then; analysis/common.py
``evaluation_points``).  Runs that diverged count as never reaching a target.
"""

import os
import sys
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

import common

ASSUMPTIONS = (
    "steps to the target depend on the global batch size only, not on the rank count "
    "(data parallelism computes the same steps at any number of ranks, up to float rounding)",
    "a step at b = B/N images per rank on N ranks takes a(N) b + c(N) seconds: compute "
    "proportional to the per-rank batch, plus a per-step cost (Allreduce, optimizer, data "
    "gathering) independent of it; both measured at N ranks on the machine of the step-time "
    "logs, with their threads per rank; per-rank batches outside the measured ones are extrapolated",
    "training-only time: evaluations, logging and checkpoints are not counted (add the "
    "evaluation time of your schedule to compare with wall clock)",
    "B must be divisible by N (the trainer refuses other splits); such cells are left empty",
    "only batch sizes at which every run of the configuration reached the target are predicted "
    "(one that some seed misses at is not a recipe)",
)


def fail(message):
    """One line on stderr naming what is wrong, exit status 2."""
    print(f"time_to_target.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def reached(run, target):
    """(step, wall_s, train_s) of the run's first evaluation with test_acc >= target, or None."""
    if run.status not in ("completed", "target_reached"):
        return None
    p = common.evaluation_points(run)
    hit = np.nonzero(p["test_acc"] >= target)[0]
    if not len(hit):
        return None
    i = hit[0]
    return int(p["step"][i]), float(p["wall_s"][i]), float(p["train_s"][i])


def measured(runs, target):
    """{(label, ranks): {batch: dict(n, seeds, steps, wall, train: median/min/max lists)}}."""
    out = defaultdict(dict)
    for label, per in common.by_label_and_batch(runs).items():
        for batch, seeds in per.items():
            by_ranks = defaultdict(list)
            for r in seeds:
                by_ranks[r.world_size].append(r)
            for ranks, rs in by_ranks.items():
                hits = [h for h in (reached(r, target) for r in rs) if h is not None]
                if not hits:
                    continue
                cols = np.array(hits, dtype=np.float64)
                out[label, ranks][batch] = dict(
                    n=len(hits), seeds=len(rs),
                    steps=float(np.median(cols[:, 0])),
                    wall=(float(np.median(cols[:, 1])), float(cols[:, 1].min()), float(cols[:, 1].max())),
                    train=(float(np.median(cols[:, 2])), float(cols[:, 2].min()), float(cols[:, 2].max())))
    return dict(out)


def measured_figure(runs, targets, out):
    labels = sorted({label for label in common.by_label_and_batch(runs)})
    style = common.styles(labels)
    ranks_all = sorted({r.world_size for r in runs})
    markers = dict(zip(ranks_all, "osD^v<>p*h"))
    dashes = dict(zip(ranks_all, ["-", "--", ":", "-."] * 3))
    fig, axes = plt.subplots(2, len(targets), figsize=(5.4 * len(targets), 7.4), squeeze=False)
    batches = sorted({r.config["batch_size"] for r in runs})
    for j, target in enumerate(targets):
        table = measured(runs, target)
        for i, (clock, name) in enumerate((("wall", "wall clock, evaluation included"),
                                           ("train", "training only (steps)"))):
            ax = axes[i, j]
            for (label, ranks), row in sorted(table.items()):
                xs = sorted(row)
                med = [row[b][clock][0] for b in xs]
                lo = [row[b][clock][1] for b in xs]
                hi = [row[b][clock][2] for b in xs]
                color = style[label]["color"]
                ax.plot(xs, med, ls=dashes[ranks], marker=markers[ranks], ms=4, color=color,
                        label=f"{label}, {ranks} rank(s)")
                ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
                for b in xs:  # open marker: not every seed reached the target
                    if row[b]["n"] < row[b]["seeds"]:
                        ax.plot([b], [row[b][clock][0]], marker=markers[ranks], ms=7, mfc="white", color=color)
            if not table:
                ax.text(0.5, 0.5, f"no run reached {100 * target:g}%", ha="center", va="center",
                        transform=ax.transAxes)
            common.batch_axis(ax, batches)
            ax.set_yscale("log")
            ax.set_ylabel("seconds")
            ax.set_title(f"time to {100 * target:g}% test accuracy: {name}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    handles, names = {}, []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in handles:
                handles[n] = h
                names.append(n)
    common.legend_outside(fig.axes[len(targets) - 1], [handles[n] for n in names], names,
                          title="median over seeds that reach it; band: min-max;\nopen marker: not every seed")
    return common.save(fig, out, "time_to_target")


def measured_markdown(runs, targets):
    lines = ["# Time to accuracy: measured", "",
             "Seconds until the first evaluation that reaches the target: median [min, max] over the "
             "seeds that reach it. Wall clock includes evaluations (of the training set too, at the "
             "epoch ends --eval-every evaluates); training-only counts the optimizer steps alone. "
             "Logs without /evals (no --eval-every-steps) are exact to one epoch.", ""]
    for target in targets:
        table = measured(runs, target)
        lines += [f"## {100 * target:g}% test accuracy", "",
                  "| configuration | ranks | batch | reached | steps | wall s | training-only s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        best = {}
        for (label, ranks), row in sorted(table.items()):
            for b in sorted(row):
                c = row[b]
                lines.append(f"| {label} | {ranks} | {b} | {c['n']}/{c['seeds']} | {c['steps']:.0f} | "
                             f"{_spread(c['wall'])} | {_spread(c['train'])} |")
                key = (c["n"] < c["seeds"], c["wall"][0])  # every seed reaching it first
                if ranks not in best or key < best[ranks][0]:
                    best[ranks] = (key, label, b, c)
        if not table:
            lines.append("| (no run reached it) | | | | | | |")
        lines.append("")
        for ranks, ((missed, wall), label, b, c) in sorted(best.items()):
            which = "of the configurations every seed of which reached it" if not missed else \
                "no configuration reached it with every seed"
            lines.append(f"Fastest on {ranks} rank(s) (median wall clock, {which}): {label} at batch {b}, "
                         f"{wall:.1f} s ({c['n']}/{c['seeds']} seeds, {_spread(c['wall'])}).")
        lines.append("")
    return "\n".join(lines)


def _spread(t):
    return f"{t[0]:.1f} [{t[1]:.1f}, {t[2]:.1f}]"


# -- prediction --------------------------------------------------------------------------------

def step_time_model(paths):
    """{N: (a, c, per-rank batches measured, hosts)} from logs with a training epoch, or fail.

    a: seconds of forward+backward per image per rank; c: the rest of a step's wall time.
    Each log contributes its last epoch with steps; medians over the logs at N ranks.
    """
    samples = defaultdict(list)
    for run in common.load_runs(paths, statuses=("completed", "target_reached")):
        e = run.epochs
        steps = np.diff(np.asarray(e["step"], dtype=np.float64), prepend=0.0)
        trained = np.nonzero((steps > 0) & np.isfinite(e["images_per_s"]) & np.isfinite(e["time_compute"]))[0]
        if not len(trained):
            continue
        i = trained[-1]
        n, batch, ranks = steps[i], run.config["batch_size"], int(e["world_size"][i])
        b = batch / ranks
        step_s = batch / float(e["images_per_s"][i])
        compute = float(e["time_compute"][i]) / n
        samples[ranks].append((compute / b, max(step_s - compute, 0.0), b, run.attrs.get("hostname", "?")))
    if not samples:
        fail(f"--step-times: no finished log with a training epoch in {' '.join(map(str, paths))}")
    return {n: (float(np.median([s[0] for s in v])), float(np.median([s[1] for s in v])),
                sorted({s[2] for s in v}), sorted({s[3] for s in v})) for n, v in sorted(samples.items())}


def steps_by_batch(runs, target):
    """{label: {batch: median steps to target over the seeds (any rank count)}}, for the batch
    sizes at which every seed reached the target."""
    out = {}
    for label, per in common.by_label_and_batch(runs).items():
        row = {}
        for batch, rs in per.items():
            hits = [h[0] for h in (reached(r, target) for r in rs) if h is not None]
            if hits and len(hits) == len(rs):  # a batch some seed misses the target at is no recipe
                row[batch] = float(np.median(hits))
        if row:
            out[label] = row
    return out


def predict(steps, model):
    """{label: {(batch, ranks): seconds}} for every batch with steps and every N with a model."""
    out = {}
    for label, row in steps.items():
        cells = {}
        for batch, s in row.items():
            for n, (a, c, _, _) in model.items():
                if batch % n == 0:
                    cells[batch, n] = s * (a * batch / n + c)
        out[label] = cells
    return out


def fastest(pred):
    """{ranks: (seconds, label, batch)}: the fastest predicted configuration per rank count."""
    best = {}
    for label, cells in pred.items():
        for (batch, n), t in cells.items():
            if n not in best or t < best[n][0]:
                best[n] = (t, label, batch)
    return best


def predicted_markdown(pred, model, target, steps):
    best = fastest(pred)
    ranks = sorted(model)
    lines = [f"# Time to accuracy: predicted time to {100 * target:g}% test accuracy", "",
             "time(B, N) = steps_to_target(B) x step_time(B / N, N), seconds of training (no evaluation). "
             "**bold**: the fastest configuration at that rank count.", "", "Assumptions:", ""]
    lines += [f"- {a}" for a in ASSUMPTIONS] + ["", "Step-time model per rank count (median over logs):", "",
                                                "| ranks | a: compute s per image | c: rest of a step, ms | "
                                                "per-rank batches measured | hosts |", "|---:|---:|---:|---|---|"]
    for n, (a, c, bs, hosts) in model.items():
        lines.append(f"| {n} | {a:.3g} | {1e3 * c:.3g} | {', '.join(f'{b:g}' for b in bs)} | {', '.join(hosts)} |")
    lines += ["", "| configuration | batch | steps | " + " | ".join(f"{n} rank(s)" for n in ranks) + " |",
              "|---|---:|---:|" + "---:|" * len(ranks)]
    for label in sorted(pred):
        for batch in sorted(steps[label]):
            cells = []
            for n in ranks:
                t = pred[label].get((batch, n))
                text = "" if t is None else f"{t:.1f}"
                if t is not None and best[n][1:] == (label, batch):
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {label} | {batch} | {steps[label][batch]:.0f} | " + " | ".join(cells) + " |")
    lines.append("")
    base = best.get(1)
    for n, (t, label, batch) in sorted(best.items()):
        speedup = f"; {base[0] / t:.2f}x the fastest on 1 rank" if base and n != 1 else ""
        lines.append(f"Fastest on {n} rank(s): {label} at batch {batch}, {t:.1f} s{speedup}.")
    return "\n".join(lines) + "\n"


def predicted_figure(pred, model, target, out):
    labels = sorted(pred)
    ranks = sorted(model)
    best = fastest(pred)
    cols = min(3, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 + 1.1 * len(ranks) * cols + 1.5, 0.45 * 12 * rows + 1),
                             squeeze=False)
    finite = [t for cells in pred.values() for t in cells.values()]
    norm = matplotlib_lognorm(min(finite), max(finite))
    for ax, label in zip(axes.flat, labels):
        batches = sorted({b for b, _ in pred[label]})
        grid = np.full((len(batches), len(ranks)), np.nan)
        for (b, n), t in pred[label].items():
            grid[batches.index(b), ranks.index(n)] = t
        image = ax.imshow(grid, cmap="viridis_r", norm=norm, aspect="auto")
        for i, b in enumerate(batches):
            for j, n in enumerate(ranks):
                if np.isfinite(grid[i, j]):
                    mark = best[n][1:] == (label, b)
                    ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] > np.sqrt(norm.vmin * norm.vmax) else "black",
                            fontweight="bold" if mark else "normal")
                    if mark:
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.set_xticks(range(len(ranks)), [str(n) for n in ranks])
        ax.set_yticks(range(len(batches)), [str(b) for b in batches])
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel("global batch size")
        ax.set_title(label, fontsize=9)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="predicted seconds of training")
    fig.suptitle(f"Predicted time to {100 * target:g}% test accuracy (red box: fastest per rank count; "
                 "model and assumptions: predicted.md)", fontsize=9)
    return common.save(fig, out, "predicted")


def validation_markdown(pred, steps, checks, target):
    """Predicted against measured training-only seconds to ``target``, from ``checks`` (runs
    the prediction did not see).  Rows: every (label, ranks, batch) the checks reach the
    target at; the predicted-fastest configuration per rank count first."""
    best = fastest(pred)
    found = measured(checks, target)
    rows = []
    for (label, n), per in found.items():
        for batch, m in per.items():
            t = pred.get(label, {}).get((batch, n))
            if t is None:
                continue
            rows.append((best.get(n, (None,))[1:] != (label, batch), n, label, batch, t, m))
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    lines = [f"# Time to accuracy: predicted against measured time to {100 * target:g}%", "",
             "Predicted: steps to target from the prediction's logs (not these) x the step-time model "
             "(predicted.md). Measured: the --validate runs, training-only seconds to the target, median "
             "[min, max] over the seeds that reach it. Ratio: measured / predicted.", "",
             "| configuration | ranks | batch | predicted-fastest | steps predicted | steps measured | "
             "predicted s | measured s | ratio |", "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    ratios = []
    for not_best, n, label, batch, t, m in rows:
        ratio = m["train"][0] / t
        ratios.append(ratio)
        lines.append(f"| {label} | {n} | {batch} | {'' if not_best else 'yes'} | {steps[label][batch]:.0f} | "
                     f"{m['steps']:.0f} | {t:.1f} | {_spread(m['train'])} | {ratio:.2f} |")
    if not rows:
        lines.append("| (no --validate run reached the target in a configuration the prediction covers) |"
                     " | | | | | | | |")
    else:
        r = np.array(ratios)
        lines += ["", f"{len(r)} configurations; measured / predicted: median {np.median(r):.2f}, "
                      f"range {r.min():.2f}-{r.max():.2f}; within 20% in {int(np.sum(np.abs(r - 1) <= 0.2))} "
                      f"of {len(r)}."]
    return "\n".join(lines) + "\n"


def matplotlib_lognorm(lo, hi):
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 1.01)


def parse_targets(text, flag):
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        fail(f"{flag}: not a comma-separated list of numbers: {text!r}")
    if not values or not all(0 < t <= 1 for t in values):
        fail(f"{flag}: each target must be a test accuracy as a fraction in (0, 1], got {text}")
    return values


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--targets", default="0.97,0.99", help="comma-separated test accuracies (default 0.97,0.99)")
    p.add_argument("--step-times", nargs="+", default=None, metavar="LOGS",
                   help="logs (or directories) of runs with a training epoch, all from ONE machine (its "
                        "step times), at the rank counts to predict for; without it, only the measured "
                        "figure and table are written")
    p.add_argument("--validate", nargs="+", default=None, metavar="LOGS",
                   help="runs to check the prediction against (with --step-times): measured, but kept out of "
                        "the steps-to-target the prediction uses; writes validation.md")
    p.add_argument("--predict", default="0.99", help="the target of the prediction (default 0.99)")
    args = p.parse_args(argv)
    targets = parse_targets(args.targets, "--targets")
    goal = parse_targets(args.predict, "--predict")
    if len(goal) != 1:
        fail(f"--predict: one target, got {args.predict}")
    if args.validate and not args.step_times:
        fail("--validate: needs --step-times (there is no prediction to validate without it)")
    for path in list(args.logs) + list(args.step_times or []) + list(args.validate or []):
        if not os.path.exists(path):
            fail(f"{path}: no such file or directory")
    runs = common.load_runs(args.logs)
    if not runs:
        fail(f"no finished run logs (completed, target_reached or diverged) in {' '.join(args.logs)}")
    model = step_time_model(args.step_times) if args.step_times else None  # bad input before any figure
    checks = common.load_runs(args.validate) if args.validate else []
    if args.validate and not checks:
        fail(f"--validate: no finished run logs in {' '.join(args.validate)}")
    made = [measured_figure(runs + checks, targets, args.out)]
    path = os.path.join(args.out, "time_to_target.md")
    with open(path, "w") as f:
        f.write(measured_markdown(runs + checks, targets))
    made.append(path)
    if model is not None:
        steps = steps_by_batch(runs, goal[0])
        if not steps:
            fail(f"--predict: no run in {' '.join(args.logs)} reached {goal[0]:g}, so no steps-to-target to predict from")
        pred = predict(steps, model)
        path = os.path.join(args.out, "predicted.md")
        with open(path, "w") as f:
            f.write(predicted_markdown(pred, model, goal[0], steps))
        made += [predicted_figure(pred, model, goal[0], args.out), path]
        if checks:
            path = os.path.join(args.out, "validation.md")
            with open(path, "w") as f:
                f.write(validation_markdown(pred, steps, checks, goal[0]))
            made.append(path)
    print("\n".join(made))


if __name__ == "__main__":
    main()
