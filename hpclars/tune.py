"""Equal-budget tuning: a quasi-random search of learning rate and warm-up.

For one optimizer and one batch size, ``--trials`` points of a scrambled Halton
sequence over (log learning rate, warm-up epochs) inside the optimizer's
search box; every trial is a normal run with its own log in ``--out-dir``
(``trial-NN.h5``), with the same epoch budget.  Running the same number of
trials and epochs for every optimizer is what makes a comparison fair
(Nado et al. 2021).  Resumable like a sweep: finished trials are skipped.

The summary ranks trials by their final test accuracy (``--objective accuracy``) or
by the wall-clock seconds to reach ``--target`` test accuracy (``--objective
time-to-target``: every trial stops at the target, evaluates the test set every
``--eval-every-steps`` steps, and trials that never reach it rank after those
that do, by final accuracy), prints a table and writes ``summary.json`` beside
the logs.

Deliberately left out: adaptive search (successive halving, Bayesian): with
equal budgets and a handful of trials, a quasi-random search is the honest
baseline.
"""

import json
import math
import os

import numpy as np

from . import config as C
from .log import LogError, read_log
from .target import target_key
from .sweep import Task

# Search boxes for the global learning rate, per optimizer (log-uniform).
LR_RANGES = {
    "sgd": (0.01, 2.0),
    "lars": (0.5, 100.0),
    "lamb": (1e-3, 0.2),
    "adam": (1e-4, 0.05),
    "adamw": (1e-4, 0.05),
}


def trial_points(trials, lr_range, warmup_range, seed):
    """``trials`` (lr, warmup_epochs) pairs from a scrambled 2-D Halton sequence."""
    # Imported here, not at the top: every hpclars command builds the tune parser, and
    # scipy.stats took ~0.6 s of each command's start (train included).
    from scipy.stats import qmc

    sampler = qmc.Halton(d=2, scramble=True, seed=seed)
    u = sampler.random(trials)
    lo, hi = math.log(lr_range[0]), math.log(lr_range[1])
    lrs = np.exp(lo + u[:, 0] * (hi - lo))
    warm = warmup_range[0] + u[:, 1] * (warmup_range[1] - warmup_range[0])
    return [(float(f"{lr:.4g}"), round(float(w), 2)) for lr, w in zip(lrs, warm)]


def make_tasks(args):
    lr_range = args.lr_range or LR_RANGES[args.optimizer]
    points = trial_points(args.trials, lr_range, args.warmup_range, args.search_seed)
    extra = dict(args.set or [])
    tasks = []
    for i, (lr, warm) in enumerate(points):
        values = dict(optimizer=args.optimizer, batch_size=args.batch_size, epochs=args.epochs,
                      schedule=args.schedule, lr=lr, warmup_epochs=min(warm, args.epochs), seed=args.seed,
                      out=os.path.join(args.out_dir, f"trial-{i:02d}.h5"), resume=True,
                      data_dir=args.data_dir, progress=False, eval_every=args.eval_every)
        if args.optimizer == "sgd":
            values["nesterov"] = True
        if args.objective == "time-to-target":
            if not 0 < args.target <= 1:
                raise C.ConfigError(f"--target: must be a test accuracy as a fraction in (0, 1], got {args.target!r}")
            values.update(target_accuracy=args.target, eval_every_steps=args.eval_every_steps or 20)
        elif args.eval_every_steps is not None:
            values["eval_every_steps"] = args.eval_every_steps
        values.update(extra)
        try:
            cfg = C.build(preset=args.preset, **values)
        except TypeError as exc:
            raise C.ConfigError(f"--set: {exc}") from None
        tasks.append(Task(i, f"trial-{i:02d}", cfg))
    return tasks


def summarize(tasks, out_dir):
    """Rank the trials that have a log; write and return the summary (see the module docstring)."""
    goal = tasks[0].config.target_accuracy
    rows = []
    for t in tasks:
        if not os.path.exists(t.config.out):
            continue  # a trial not run yet
        try:
            log = read_log(t.config.out)
        except LogError as exc:  # never summarize around a trial silently
            raise C.ConfigError(f"--out-dir: trial log {exc}; rerun the trial (delete the log) "
                                "or remove it") from None
        acc = log.epochs["test_acc"]
        final = log.final_score("test_acc")
        rows.append(dict(trial=t.name, lr=t.config.lr, warmup_epochs=t.config.warmup_epochs,
                         status=log.status, final_test_acc=final,
                         best_test_acc=float(np.nanmax(acc)), final_train_acc=float(log.epochs["train_acc"][-1])))
        if goal:
            hit = log.targets.get(target_key(goal)) if log.status != "diverged" else None
            rows[-1].update(steps_to_target=hit and hit["step"], wall_s_to_target=hit and hit["wall_s"],
                            train_s_to_target=hit and hit["train_s"])
    if goal:  # the soonest first; trials that never reach it after, best accuracy first
        rows.sort(key=lambda r: (r["wall_s_to_target"] is None, r["wall_s_to_target"] or -r["final_test_acc"]))
    else:
        rows.sort(key=lambda r: -r["final_test_acc"])
    summary = dict(optimizer=tasks[0].config.optimizer, batch_size=tasks[0].config.batch_size,
                   epochs=tasks[0].config.epochs, target_accuracy=goal or None, trials=rows,
                   best=rows[0] if rows else None)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def print_summary(summary):
    goal = summary.get("target_accuracy")
    print(f"# tuning {summary['optimizer']} at batch {summary['batch_size']}, {summary['epochs']} epochs, "
          f"{len(summary['trials'])} trials (best first"
          + (f": wall-clock seconds to {100 * goal:g}% test accuracy)" if goal else ")"))
    print(f"{'trial':>9} {'lr':>9} {'warmup':>7} {'status':>14} {'final test':>10} {'best test':>9}"
          + (f" {'steps':>6} {'wall s':>7} {'train s':>7}" if goal else ""))
    for r in summary["trials"]:
        line = (f"{r['trial']:>9} {r['lr']:>9.4g} {r['warmup_epochs']:>7.2f} {r['status']:>14} "
                f"{100 * r['final_test_acc']:>9.2f}% {100 * r['best_test_acc']:>8.2f}%")
        if goal:
            line += (f" {r['steps_to_target']:>6} {r['wall_s_to_target']:>7.1f} {r['train_s_to_target']:>7.1f}"
                     if r["wall_s_to_target"] is not None else f" {'never':>6}")
        print(line)


def _range(text):
    parts = [float(v) for v in text.split(",")]
    if len(parts) != 2 or not parts[0] <= parts[1]:
        raise ValueError(text)
    return tuple(parts)


def _assignment(text):
    key, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return key.replace("-", "_"), kind(value)
        except ValueError:
            pass
    if value in ("true", "false"):
        return key.replace("-", "_"), value == "true"
    return key.replace("-", "_"), value


def add_parser(sub, parser_class):
    p = sub.add_parser("tune", help="equal-budget quasi-random search of lr and warm-up",
                       description=__doc__.split("\n\n")[1].replace("``", ""))
    p.add_argument("--optimizer", required=True, choices=C.OPTIMIZERS, help="optimizer to tune")
    p.add_argument("--batch-size", type=int, required=True, help="global batch size")
    p.add_argument("--out-dir", required=True, help="directory for the trial logs and summary.json")
    p.add_argument("--trials", type=int, default=8, help="number of trials (default 8)")
    p.add_argument("--epochs", type=int, default=C.Config.epochs,
                   help=f"epochs per trial: the budget (default {C.Config.epochs})")
    p.add_argument("--eval-every", type=int, default=5,
                   help="evaluate every K epochs; the summary needs only the last (default 5)")
    p.add_argument("--schedule", default="poly", choices=C.SCHEDULES, help="lr schedule (default poly)")
    p.add_argument("--lr-range", type=_range, default=None,
                   help="LOW,HIGH of the log-uniform lr box (default per optimizer: "
                        + "; ".join(f"{k} {a:g}-{b:g}" for k, (a, b) in LR_RANGES.items()) + ")")
    p.add_argument("--warmup-range", type=_range, default=(0.0, 5.0),
                   help="LOW,HIGH warm-up epochs (default 0,5)")
    p.add_argument("--seed", type=int, default=C.Config.seed,
                   help=f"training seed of every trial (default {C.Config.seed})")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the Halton scrambling (default 0)")
    p.add_argument("--objective", default="accuracy", choices=("accuracy", "time-to-target"),
                   help="rank trials by final test accuracy, or by wall-clock seconds to --target "
                        "(each trial then stops there) (default accuracy)")
    p.add_argument("--target", type=float, default=0.99,
                   help="test accuracy (fraction) of --objective time-to-target (default 0.99)")
    p.add_argument("--eval-every-steps", type=int, default=None,
                   help="evaluate the test set every K steps (default: 20 with --objective "
                        "time-to-target, else off)")
    p.add_argument("--preset", default="", help="preset applied under the trial's settings (default: none)")
    p.add_argument("--set", type=_assignment, action="append", metavar="FIELD=VALUE",
                   help="any other config field for every trial, e.g. --set weight_decay=5e-4; repeatable "
                        "(default: none)")
    p.add_argument("--data-dir", default="",
                   help="MNIST directory (default: $HPCLARS_DATA, else the per-user cache)")
    p.add_argument("--summary-only", action="store_true", help="summarize existing trial logs; run nothing")
    p.add_argument("--print-config", action="store_true",
                   help="print every trial's fully resolved configuration and exit")
    return p


def main(args, comm=None):
    from .sweep import run_sweep

    if args.trials < 1:
        raise C.ConfigError(f"--trials: must be >= 1, got {args.trials}")
    tasks = make_tasks(args)
    status = "completed"
    if args.summary_only and not any(os.path.exists(t.config.out) for t in tasks):
        raise C.ConfigError(f"--summary-only: no trial logs in {args.out_dir}")
    if not args.summary_only:
        status = run_sweep(tasks, comm=comm)
    if comm is None or comm.is_root:
        os.makedirs(args.out_dir, exist_ok=True)
        print_summary(summarize(tasks, args.out_dir))
    return status
