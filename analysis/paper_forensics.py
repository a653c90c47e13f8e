"""What reproduces the paper?  The factorial's figures and verdict, from its logs.

Chowdhury, Sharma and Chandrasekar (*Evaluating Deep Learning in SystemML using
Layer-wise Adaptive Rate Scaling (LARS) Optimizer*, text in ../shared/paper/)
leave out the initialisation, the epoch budget, whether a batch size is per
worker or global ("4 parallel batches") and how their LARS treats biases.
This script reads the logs of ``jobs/grids/factorial.toml`` and judges the
paper's claims under every combination of those choices:

    python analysis/paper_forensics.py results/factorial --out figures/factorial

It writes, into --out (PNG and PDF):

- ``epoch_budget_fig2`` / ``_fig3`` / ``_fig4``: the paper's Figures 2-4 (test
  accuracy, training accuracy, generalization error against batch size) at
  epoch budgets 1, 2, 5, 10, 20 and 30, read from the same 30-epoch logs.
  For a schedule that does not depend on the run's total length (inverse-time
  or constant, with or without warm-up), the state after epoch E of a 30-epoch
  run IS the final state of an E-epoch run (same data order, same rates), so
  no extra run is needed.  Logs whose schedule depends on the total (poly,
  cosine) are refused with a message; so are logs not evaluated every epoch.
- ``two_readings``: Figures 2-4 with the paper's batch axis read two ways:
  B is the global batch; or B is each of the 4 parallel batches, so SystemML's
  ``mnist_lenet_distrib_sgd.dml`` makes one update per 4B rows, i.e. a global
  batch of 4B, which the script caps at the 60,000-row training set (what that
  script does when 4B > 60000: one group, one update per epoch; see README).
- ``plateau``: the mechanism.  With a small-scale initialisation the network
  starts on a plateau at loss ln 10 (uniform outputs) and leaves it only after
  a roughly fixed number of optimizer steps; a fixed epoch budget gives batch B
  only E * floor(60000 / B) steps.  For each configuration and batch size the
  figure brackets the step at which the training loss first falls below
  ``PLATEAU_EXIT_LOSS`` (between the last evaluation above it and the first
  below; exact to one epoch's steps), beside the step budgets of 5, 10 and 30
  epochs; ``plateau.md`` lists the brackets.
- ``verdict.md``: every claim (rows) under every assumption set (columns), each
  cell the measured mean over seeds with its [min, max], and the assumption sets
  under which all claims hold.

Reads logs through :func:`hpclars.log.read_log` only.  Configurations are
identified by their logged config (optimizer, init, exclude_from_adaptation),
never by file name; runs that differ in any other training field are refused.
"""

import itertools
import os
import sys
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

import common
from hpclars import config as C
from hpclars.log import DIVERGED_SCORES

BUDGETS = (1, 2, 5, 10, 20, 30)
PLATEAU_EXIT_LOSS = 2.2     # 0.1 below ln 10 = 2.303, the loss of uniform outputs
PARALLEL_BATCHES = 4
TRAIN_SIZE = 60000
INITS = ("he-normal", "glorot-uniform", "torch-default")
RULES = ("none", "systemds")            # LARS: adapt every tensor (paper) / SystemDS lars.dml
READINGS = ("global", "per-worker")     # the paper's batch axis
PAPER_BATCHES = (256, 1024, 4096, 8192, 16384, 28000, 32768)
# Fields that may differ between the runs of one configuration.
PER_RUN = {"seed", "batch_size", *C.RUN_CONTROL}
# Fields that tell the configurations of the factorial apart.
KEY = ("optimizer", "init", "exclude_from_adaptation")
SHORT = {"he-normal": "He", "glorot-uniform": "Glorot", "torch-default": "PyTorch"}
COLOR = {"he-normal": "tab:blue", "glorot-uniform": "tab:green", "torch-default": "tab:red"}


class ForensicsError(ValueError):
    """Logs this analysis cannot judge; the message names the file and the reason."""


def config_key(cfg):
    rule = cfg["exclude_from_adaptation"] if cfg["optimizer"] == "lars" else "none"
    return cfg["optimizer"], cfg["init"], rule


def label(key):
    opt, init, rule = key
    name = f"{opt.upper()} {SHORT.get(init, init)}"
    return name + (" SystemDS-rule" if rule == "systemds" else "")


def check(run):
    """Refuse a log whose epoch-E state is not an E-epoch run's final state."""
    cfg = run.config
    if cfg["schedule"] not in ("inverse-time", "constant"):
        raise ForensicsError(
            f"{run.path}: schedule {cfg['schedule']!r} depends on the run's total length, so "
            "epoch E of it is not an E-epoch run; use inverse-time or constant logs")
    if cfg["eval_every"] != 1:
        raise ForensicsError(f"{run.path}: evaluated every {cfg['eval_every']} epochs; the "
                             "epoch budgets need every epoch (--eval-every 1)")


def group(runs):
    """{config key: {batch: [runs]}}; refuses runs of one key that differ in another field."""
    groups = defaultdict(lambda: defaultdict(list))
    reference = {}
    for r in runs:
        check(r)
        cfg = r.config
        key = config_key(cfg)
        shared = {k: v for k, v in cfg.items() if k not in PER_RUN}
        if key in reference:
            differ = sorted(k for k in shared if shared[k] != reference[key][1][k])
            if differ:
                raise ForensicsError(f"{r.path} and {reference[key][0]}: same configuration "
                                     f"{label(key)} but different {', '.join(differ)}")
        else:
            reference[key] = (r.path, shared)
        groups[key][cfg["batch_size"]].append(r)
    return groups


def at_budget(run, field, epochs):
    """``field`` after ``epochs`` epochs (a run that diverged by then counts as chance)."""
    ep = run.epochs["epoch"]
    idx = np.nonzero(ep == epochs)[0]
    if len(idx):
        value = float(run.epochs[field][idx[0]])
        if np.isfinite(value):
            return value
    if run.status == "diverged" and ep[-1] <= epochs:
        return DIVERGED_SCORES[field]
    return float("nan")


def stats(groups, key, batch, field, epochs):
    """(mean, min, max, n) over seeds, or None if that run is missing."""
    rs = groups.get(key, {}).get(batch, [])
    values = [v for v in (at_budget(r, field, epochs) for r in rs) if np.isfinite(v)]
    if not values:
        return None
    v = np.array(values)
    return float(v.mean()), float(v.min()), float(v.max()), len(v)


def global_batch(paper_b, reading):
    if reading == "global":
        return paper_b
    return min(PARALLEL_BATCHES * paper_b, TRAIN_SIZE)


# ---- the claims -------------------------------------------------------------------------
# Each: (id, quoted text, test).  A test gets a lookup f(optimizer, paper_B, field) -> stats
# and returns (holds: bool|None, shown value string).  Thresholds are the paper's words.
def _pct(s):
    return f"{100 * s[0]:.1f} [{100 * s[1]:.1f}, {100 * s[2]:.1f}]" if s[3] > 1 else f"{100 * s[0]:.1f}"


def _all(parts):
    """Combine sub-checks, (holds, shown, short) triples: one that fails fails the claim (its
    value is the short form); else one that is missing leaves it undecided (None); else it holds."""
    shown = "; ".join(p[1] for p in parts)
    for verdict in (False, None):
        hit = [p for p in parts if p[0] is verdict]
        if hit:
            return verdict, shown, hit[0][2]
    return True, shown, "all hold"


def _bound(s, low=None, high=None, name=""):
    if s is None:
        return None, f"{name} missing", f"{name} missing"
    ok = (low is None or s[0] > low) and (high is None or s[0] < high)
    return ok, f"{name} {_pct(s)}", f"{name} {_pct(s)}"


def claim_99_to_1024(f):
    return _all([_bound(f(o, b, "test_acc"), low=0.98, name=f"{o.upper()}@{b}")
                 for o in ("sgd", "lars") for b in (256, 1024)])


def claim_90_to_8000(f):
    return _all([_bound(f(o, b, "test_acc"), low=0.90, name=f"{o.upper()}@{b}")
                 for o in ("sgd", "lars") for b in (4096, 8192)])


def claim_sgd_below_40(f):
    return _bound(f("sgd", 28000, "test_acc"), high=0.40, name="SGD@28000")


def claim_lars_above_55(f):
    return _bound(f("lars", 28000, "test_acc"), low=0.55, name="LARS@28000")


LARGE = (16384, 28000, 32768)


def _compare(f, field, better):
    """At every large batch: does ``better(sgd mean, lars mean)`` hold?"""
    parts = []
    for b in LARGE:
        s, lrs = f("sgd", b, field), f("lars", b, field)
        if s is None or lrs is None:
            parts.append((None, f"@{b} missing", f"@{b} missing"))
        else:
            text = f"@{b} SGD {100 * s[0]:.1f} LARS {100 * lrs[0]:.1f}"
            parts.append((better(s[0], lrs[0]), text, text))
    return _all(parts)


MARGIN = 0.01   # "much higher", "outperforms": by at least one point, not a tie at chance


def claim_lars_beats_sgd_large(f):
    return _compare(f, "test_acc", lambda sgd, lars: lars > sgd + MARGIN)


def claim_fig3_train(f):
    return _compare(f, "train_acc", lambda sgd, lars: lars > sgd + MARGIN)


def claim_fig4_gen(f):
    return _compare(f, "gen_error", lambda sgd, lars: sgd > lars)


CLAIMS = (
    ("C1", "\"Both optimizers maintain a test accuracy of around 99% until batch size reaches "
           "1024\" (both > 98% at 256 and 1024: within a point of 99)", claim_99_to_1024),
    ("C2", "\"they maintain an accuracy of more than 90% until batch size reaches 8000\" "
           "(both > 90% at 4096 and 8192)", claim_90_to_8000),
    ("C3", "\"Test accuracy for SGD drops below 40% after 28000 batch size\" (SGD < 40% at 28000)",
     claim_sgd_below_40),
    ("C4", "\"LARS optimizer maintains more than 55% test accuracy for similar batch size\" "
           "(LARS > 55% at 28000)", claim_lars_above_55),
    ("F2", "Fig. 2: from 16000 on \"LARS optimizer maintains much higher test accuracy compared "
           "to SGD\" (LARS > SGD + 1 point at 16384, 28000, 32768)", claim_lars_beats_sgd_large),
    ("F3", "Fig. 3: \"LARS outperforms SGD for both train accuracy and test accuracy if batch "
           "size is larger than or equal to 16000\" (train accuracy, LARS > SGD + 1 point, same "
           "batches)", claim_fig3_train),
    ("F4", "Fig. 4: \"generalization error for LARS is much smaller than SGD for batch sizes "
           "larger than 8000\" (SGD's gen. error > LARS's at 16384, 28000, 32768)", claim_fig4_gen),
)


# The columns of the headline table: hpclars's defaults, then one choice changed at a time.
HEADLINE = (("he-normal", "none", "global", 30), ("torch-default", "none", "global", 30),
            ("glorot-uniform", "none", "global", 30), ("he-normal", "systemds", "global", 30),
            ("he-normal", "none", "per-worker", 30), ("torch-default", "none", "per-worker", 30),
            ("he-normal", "none", "global", 5))


def assumption_sets():
    """Every (init, LARS bias rule, batch reading, epoch budget) combination."""
    return list(itertools.product(INITS, RULES, READINGS, BUDGETS))


def lookup(groups, init, rule, reading, epochs):
    def f(opt, paper_b, field):
        key = (opt, init, rule if opt == "lars" else "none")
        return stats(groups, key, global_batch(paper_b, reading), field, epochs)
    return f


def judge(groups):
    """{assumption set: {claim id: (holds, shown)}}"""
    out = {}
    for a in assumption_sets():
        f = lookup(groups, *a)
        out[a] = {cid: test(f) for cid, _, test in CLAIMS}
    return out


def departures(a):
    """How far an assumption set is from hpclars's defaults (He, paper rule, global, 30)."""
    init, rule, reading, epochs = a
    return (init != "he-normal") + (rule != "none") + (reading != "global") + (epochs != 30)


def set_name(a):
    init, rule, reading, epochs = a
    return (f"{SHORT[init]}, {'SystemDS rule' if rule == 'systemds' else 'adapt all'}, "
            f"B {'global' if reading == 'global' else 'per worker (x4)'}, {epochs} ep")


def verdict_markdown(verdicts):
    mark = {True: "yes", False: "no", None: "n/a"}
    lines = ["# What reproduces the paper: verdict per assumption set", "",
             "Each cell: holds? and the measured values, mean [min, max] over seeds, in %. "
             "Written by `python analysis/paper_forensics.py results/factorial --out "
             "figures/factorial`.", ""]
    for cid, text, _ in CLAIMS:
        lines.append(f"- **{cid}** {text}")
    lines.append("")
    order = sorted(verdicts, key=lambda a: (departures(a), a))
    every = [a for a in order if all(x[0] is True for x in verdicts[a].values())]
    open_ = [a for a in order if a not in every and not any(x[0] is False for x in verdicts[a].values())]
    lines += ["## Headline assumption sets", "",
              "| claim | " + " | ".join(set_name(a) for a in HEADLINE) + " |",
              "|---|" + "---|" * len(HEADLINE)]
    for cid, _, _ in CLAIMS:
        lines.append(f"| {cid} | " + " | ".join(
            f"{mark[verdicts[a][cid][0]]} ({verdicts[a][cid][2]})" for a in HEADLINE) + " |")
    lines += ["", "## Assumption sets under which every claim holds", ""]
    lines += [f"- {set_name(a)} ({departures(a)} departure(s) from hpclars's defaults)" for a in every]
    if not every:
        lines.append("None measured.")
    lines += ["", f"Not yet decided (runs missing, no claim failed yet): {len(open_)} set(s)"
              + (": " + "; ".join(set_name(a) for a in open_) if open_ else "") + ". Every other "
              "set fails at least one claim with the runs it has.", ""]
    lines += ["", "## Claims held, per assumption set", "",
              "| assumption set | " + " | ".join(c for c, _, _ in CLAIMS) + " | held |",
              "|---|" + "---|" * (len(CLAIMS) + 1)]
    for a in sorted(verdicts, key=lambda a: (departures(a), a)):
        v = verdicts[a]
        held = sum(1 for x in v.values() if x[0])
        lines.append(f"| {set_name(a)} | " + " | ".join(mark[v[c][0]] for c, _, _ in CLAIMS)
                     + f" | {held} |")
    lines += ["", "## The numbers behind each cell", ""]
    for a in sorted(verdicts, key=lambda a: (departures(a), a)):
        lines.append(f"### {set_name(a)}")
        lines += [f"- {cid}: {mark[h]}: {shown}" for cid, (h, shown, _) in verdicts[a].items()]
        lines.append("")
    return "\n".join(lines) + "\n"


# ---- figures ------------------------------------------------------------------------------
LINESTYLE = {("sgd", "none"): "-", ("lars", "none"): "--", ("lars", "systemds"): ":"}


def _plot_lines(ax, groups, field, epochs, xs_of):
    """One line per configuration; a batch size some configuration has and this one lacks
    breaks the line there (NaN), so no line is drawn across runs that do not exist."""
    every = sorted({b for per in groups.values() for b in per})
    nan = (np.nan, np.nan, np.nan, 0)
    for key in sorted(groups):
        opt, init, rule = key
        pts = [(x, stats(groups, key, gb, field, epochs) or nan) for x, gb in xs_of(every)]
        if all(p[1] is nan for p in pts):
            continue
        xs = [p[0] for p in pts]
        mean = np.array([p[1][0] for p in pts]) * 100
        lo = np.array([p[1][1] for p in pts]) * 100
        hi = np.array([p[1][2] for p in pts]) * 100
        ax.plot(xs, mean, LINESTYLE[(opt, rule)], color=COLOR.get(init, "k"), marker="o", ms=3,
                label=label(key))
        ax.fill_between(xs, lo, hi, color=COLOR.get(init, "k"), alpha=0.12, lw=0)
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.3)


def epoch_budget_figure(groups, title, field, ylabel):
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True, sharey=True)
    for ax, e in zip(axes.flat, BUDGETS):
        _plot_lines(ax, groups, field, e, lambda bs: [(b, b) for b in bs])
        ax.set_title(f"after {e} epoch{'s' if e > 1 else ''}")
    for ax in axes[-1]:
        ax.set_xlabel("global batch size")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{title} of Chowdhury et al., at six epoch budgets read from the same "
                 "30-epoch runs\n(LeNet-5, MNIST, Table 1 settings; colour = init, style = optimizer / LARS "
                 "bias rule; band = seed range)", fontsize=10)
    fig.tight_layout()
    return fig


def two_readings_figure(groups):
    fig, axes = plt.subplots(3, 2, figsize=(11, 11), sharex=True)
    for row, (stem, (field, ylabel, _)) in enumerate(common.METRIC_FIGURES.items()):
        for col, reading in enumerate(READINGS):
            ax = axes[row, col]

            def xs_of(batches, reading=reading):
                if reading == "global":
                    return [(b, b) for b in batches]
                return [(b, global_batch(b, reading)) for b in PAPER_BATCHES
                        if global_batch(b, reading) in batches]
            _plot_lines(ax, groups, field, 30, xs_of)
            ax.set_ylabel(ylabel)
            if row == 0:
                ax.set_title("B = global batch" if reading == "global" else
                             "B = each of 4 parallel batches (global min(4B, 60000))")
    for ax in axes[-1]:
        ax.set_xlabel("the paper's batch size B")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle("Figures 2-4 of Chowdhury et al. under the two readings of \"4 parallel batches\" "
                 "(30 epochs)", fontsize=10)
    fig.tight_layout()
    return fig


def plateau_exit(run):
    """(lo, hi): the run's training loss first falls below PLATEAU_EXIT_LOSS after step lo
    and by step hi (hi = None: never within the run; lo = hi = 0: never on the plateau)."""
    steps, loss = run.epochs["step"], run.epochs["train_loss"]
    below = np.nonzero(loss < PLATEAU_EXIT_LOSS)[0]
    if not len(below):
        return int(steps[-1]), None
    i = below[0]
    return (0, 0) if i == 0 else (int(steps[i - 1]), int(steps[i]))


def plateau_rows(groups):
    """[(config key, batch, seed, lo, hi, steps in the run)]"""
    rows = []
    for key in sorted(groups):
        for batch in sorted(groups[key]):
            for r in sorted(groups[key][batch], key=lambda r: r.config["seed"]):
                lo, hi = plateau_exit(r)
                rows.append((key, batch, r.config["seed"], lo, hi, int(r.epochs["step"][-1])))
    return rows


def plateau_figure(groups):
    rows = [r for r in plateau_rows(groups) if r[4] != 0]   # runs that started on the plateau
    fig, ax = plt.subplots(figsize=(8.5, 5))
    keys = sorted({r[0] for r in rows})
    palette = plt.get_cmap("tab10")
    color = {k: palette(i % 10) for i, k in enumerate(keys)}
    offset = {k: 1.0 + 0.035 * (i - len(keys) / 2) for i, k in enumerate(keys)}
    seen = set()
    for key, batch, _, lo, hi, total in rows:
        x = batch * offset[key]
        lab = None if key in seen else label(key)
        seen.add(key)
        if hi is None:       # never left it: a triangle at the run's last step, pointing up
            ax.plot([x], [total], marker="^", ms=7, color=color[key], ls="none", label=lab)
        else:
            ax.plot([x, x], [max(lo, 0.8), hi], color=color[key], lw=3.5, solid_capstyle="butt",
                    marker="_", ms=9, mew=2, label=lab)
    b = np.array(sorted({r[1] for r in plateau_rows(groups)}), dtype=float)
    for e, shade in ((30, "k"), (10, "0.4"), (5, "0.65")):
        ax.plot(b, e * np.floor(TRAIN_SIZE / b), color=shade, lw=1, ls="-.")
        ax.text(b[0] * 0.9, e * np.floor(TRAIN_SIZE / b[0]), f"{e} epochs", fontsize=7,
                color=shade, va="center", ha="right")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(b[0] / 2.2, b[-1] * 1.4)
    ax.set_xlabel("global batch size")
    ax.set_ylabel(f"optimizer steps until training loss < {PLATEAU_EXIT_LOSS}")
    ax.set_title("Leaving the ln 10 plateau (bars: between two evaluations; triangles: not by the "
                 "run's last step)\nagainst the steps an epoch budget gives (dash-dot lines)",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def plateau_markdown(groups):
    lines = ["# Leaving the ln 10 plateau", "",
             f"Steps until the training loss (full 60k set, evaluated at epoch ends) first falls "
             f"below {PLATEAU_EXIT_LOSS}: (last step above, first step below]; 'never' = still "
             "above at the run's last step; '-' = below already before training.", "",
             "| configuration | batch | seed | steps to leave | steps in the run |",
             "|---|---:|---:|---|---:|"]
    for key, batch, seed, lo, hi, total in plateau_rows(groups):
        cell = "-" if hi == 0 else ("never" if hi is None else f"({lo}, {hi}]")
        lines.append(f"| {label(key)} | {batch} | {seed} | {cell} | {total} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    runs = common.load_runs(args.logs)
    if not runs:
        raise SystemExit(f"error: no completed or diverged runs in {' '.join(args.logs)}")
    try:
        groups = group(runs)
    except ForensicsError as exc:
        raise SystemExit(f"error: {exc}") from None
    made = []
    for (field, ylabel, title), fig in zip(common.METRIC_FIGURES.values(), ("fig2", "fig3", "fig4")):
        made.append(common.save(epoch_budget_figure(groups, title, field, ylabel), args.out,
                                f"epoch_budget_{fig}"))
    made.append(common.save(two_readings_figure(groups), args.out, "two_readings"))
    made.append(common.save(plateau_figure(groups), args.out, "plateau"))
    path = os.path.join(args.out, "plateau.md")
    with open(path, "w") as f:
        f.write(plateau_markdown(groups))
    made.append(path)
    path = os.path.join(args.out, "verdict.md")
    with open(path, "w") as f:
        f.write(verdict_markdown(judge(groups)))
    made.append(path)
    print("\n".join(made))


if __name__ == "__main__":
    sys.exit(main())
