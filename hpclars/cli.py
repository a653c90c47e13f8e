"""Command line: ``hpclars train | sweep | bench ...`` (also ``python -m hpclars``).

The train flags are generated from :class:`hpclars.config.Config`, so the
dataclass stays the only home of defaults; each flag's help text lives here.
Every flag is validated before MPI communication or data loading starts.

Exit codes: 0 completed, target_reached (or diverged: the status is in the log), 1 failure,
2 bad arguments or a bad input file (data, log, checkpoint, grid), 75 stopped by
a signal or stop file after checkpointing (requeue and run again with --resume).
"""

import argparse
import dataclasses
import difflib
import os
import sys

from . import config as C

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REQUEUE = 0, 1, 2, 75
STATUS_EXIT = {"completed": EXIT_OK, "target_reached": EXIT_OK, "diverged": EXIT_OK, "interrupted": EXIT_REQUEUE, "failed": EXIT_FAILURE}

HELP = {
    "optimizer": "optimizer: sgd (paper Table 1), lars, lamb, adam or adamw",
    "batch_size": "global batch size, split evenly over the MPI ranks",
    "epochs": "number of passes over the 60k training images",
    "max_steps": "stop after this many optimizer steps (0: no limit)",
    "lr": "global learning rate (before the batch-size scaling rule)",
    "schedule": "learning-rate schedule: inverse-time (the paper's lr/(1+decay*t)), constant, "
                "poly (polynomial decay to 0) or cosine",
    "lr_decay": "inverse-time decay rate per step",
    "warmup_epochs": "linear warm-up of the learning rate over this many epochs (fractions allowed)",
    "poly_power": "power of the polynomial decay",
    "lr_scaling": "scale the learning rate with batch-size/base-batch-size: none, linear or sqrt",
    "base_batch_size": "the batch size at which --lr applies unscaled",
    "weight_decay": "L2 weight decay (LARS: also the beta of the trust-ratio denominator)",
    "momentum": "momentum coefficient for sgd and lars",
    "nesterov": "use Nesterov momentum (sgd and lars)",
    "trust_coef": "LARS trust coefficient eta",
    "lars_denominator": "LARS trust-ratio denominator: sum (||g|| + wd*||w||, the paper) or "
                        "norm (||g + wd*w||)",
    "lars_mode": "LARS rate: scale (lr * local, the paper) or clip (min(local, lr), apex LARC)",
    "lars_momentum": "where LARS applies the rate: inside the momentum buffer (You, Gitman and "
                     "Ginsburg 2017, Algorithm 1) or after it (TensorFlow LARSOptimizer)",
    "lars_eps": "epsilon added to the trust-ratio denominator",
    "exclude_from_adaptation": "tensors that get the plain global rate instead of a trust ratio "
                               "(lars, lamb): none (the paper's equations), bias (1-D tensors) or "
                               "systemds (1-D tensors and any with ||w|| < 1e-3, as SystemDS "
                               "nn/optim/lars.dml)",
    "exclude_from_weight_decay": "tensors that get no weight decay: none or bias (1-D tensors)",
    "init": "weight initialisation: he-normal (N(0, 2/fan_in), zero biases: SystemML nn, the "
            "paper's platform), glorot-uniform (what Keras uses), torch-default "
            "(what PyTorch's Conv2d/Linear use: U(+-1/sqrt(fan_in)) for weights and biases) or lecun-normal "
            "(N(0, 1/fan_in))",
    "beta1": "first-moment decay (lamb, adam, adamw)",
    "beta2": "second-moment decay (lamb, adam, adamw)",
    "adam_eps": "epsilon of the Adam denominator (lamb, adam, adamw)",
    "seed": "random seed for the initialisation and the data order",
    "data_dir": "directory with the MNIST IDX files",
    "out": "path of the HDF5 run log (the checkpoint goes beside it as NAME.ckpt.h5)",
    "overwrite": "replace an existing log at --out",
    "resume": "continue the run at --out from its checkpoint (a completed run exits at once; "
              "no checkpoint: start fresh)",
    "stop_file": "if this file appears, finish the step, checkpoint and exit with code 75",
    "checkpoint_every": "epochs between checkpoints (0: only when stopped)",
    "eval_every": "evaluate train and test accuracy every K epochs (the last epoch always; "
                  "skipped epochs log NaN metrics)",
    "eval_every_steps": "also evaluate the test set (only) every K optimizer steps, so that the "
                        "step at which a --target-accuracy is reached is exact to K steps; composes "
                        "with --eval-every (an epoch end already evaluated is not evaluated twice); "
                        "0: off",
    "target_accuracy": "end the run as soon as an evaluation reaches this test accuracy (a fraction, "
                       "e.g. 0.99), with status target_reached; 0: train the whole budget",
    "mllog": "also write an MLPerf-style log (':::MLLOG {json}' lines, rank 0) to this file; "
             "--resume appends to it",
    "chunk_size": "images per kernel call; bounds memory at any batch size",
    "threads": "OpenMP threads per rank",
    "progress": "show a tqdm progress bar (rate, ETA, loss) on rank 0 while an epoch runs; only "
                "when stderr is a terminal, so none under mpiexec (pipes) or in batch logs",
    "overlap_allreduce": "sum each layer's gradient over the ranks with a non-blocking Allreduce as "
                         "soon as the backward pass has produced it (fc3 first, conv1 last), and "
                         "wait only before the optimizer step; pays off on slow networks "
                         "(BENCHMARKS.md); same results as the blocking Allreduce to rounding",
    "rank_weights": "split each global batch over the ranks in proportion to these relative speeds, "
                    "one per rank, e.g. 2,1,1 (for ranks on cores or nodes of known, unequal speed); "
                    "the gradient is the same mean over the global batch, to rounding",
    "balance_every": "every K optimizer steps, re-split the global batch over the ranks in proportion "
                     "to each rank's measured images/s over those K steps (one small Allreduce), so "
                     "that a slow core no longer paces every step; the gradient is the same mean over "
                     "the global batch, to rounding; shares start from --rank-weights; 0: off",
    "preset": f"named set of overrides applied before the flags: {', '.join(sorted(C.PRESETS))}",
}

# Defaults that need words rather than the dataclass value.
DEFAULT_SHOWN = {
    "data_dir": "$HPCLARS_DATA, else a per-user cache filled from the public mirrors",
    "preset": "none",
    "rank_weights": "none, equal shares",
}

CHOICES = {
    "optimizer": C.OPTIMIZERS, "schedule": C.SCHEDULES, "lr_scaling": C.LR_SCALING,
    "lars_denominator": C.LARS_DENOMINATORS, "lars_mode": C.LARS_MODES,
    "lars_momentum": C.LARS_MOMENTUM, "preset": tuple(sorted(C.PRESETS)), "init": C.INITS,
    "exclude_from_adaptation": C.ADAPTATION_EXCLUDES,
    "exclude_from_weight_decay": C.WEIGHT_DECAY_EXCLUDES,
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that name the program and the flag."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_config_flags(parser):
    """One flag per Config field; its help states the default once, after the text in HELP."""
    defaults = C.Config()
    for f in dataclasses.fields(C.Config):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = HELP[f.name]
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        kind = {"int": int, "float": float, "str": str}.get(f.type, f.type)
        shown = DEFAULT_SHOWN.get(f.name, repr(default) if default != "" else "none")
        parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(),
                            help=f"{help_text} (default: {shown}"
                                 + (f"; one of {', '.join(CHOICES[f.name])})" if f.name in CHOICES else ")"))


def _given(args):
    """The Config fields set on the command line (None: not given), and the preset."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(C.Config)}
    return values.pop("preset") or "", values


def config_from_args(args):
    preset, values = _given(args)
    return C.build(preset=preset, **values)


def print_config(args):
    """``hpclars train ... --print-config``: the resolved configuration, then the verdict.

    Printed even when the configuration would be refused, so the user sees which value
    (flag, preset or default) is at fault; the refusal follows on stderr with exit code 2.
    """
    preset, values = _given(args)
    cfg = C.resolve(preset, **values)
    sources = {k: f"preset {preset}" for k in C.PRESETS.get(preset, {})}
    sources.update({k: "flag" for k, v in values.items() if v is not None})
    if preset:
        sources["preset"] = "flag"
    if _rank() == 0:  # under mpiexec, once
        print(f"# hpclars train: the resolved configuration (defaults <- "
              f"{'preset ' + preset + ' <- ' if preset else ''}flags); nothing was run")
        print(C.format_config(cfg, sources))
    C.build(preset=preset, **values)  # raises ConfigError (exit 2) if it would be refused
    return EXIT_OK


def _presets(args):
    """``hpclars presets [NAME ...]``: each preset's overrides and where it came from."""
    names = args.names or sorted(C.PRESETS)
    for name in names:
        if name not in C.PRESETS:
            raise C.ConfigError(f"unknown preset {name!r}{C.did_you_mean(name, C.PRESETS)}; "
                                f"choose from {', '.join(sorted(C.PRESETS))}")
    for i, name in enumerate(names):
        overrides = C.PRESETS[name]
        print(("\n" if i else "") + f"{name}: {C.PRESET_ORIGINS.get(name, 'origin not recorded')}")
        for field in (f for f in C.field_names() if f in overrides):
            print(f"    {field} = {C.toml_value(overrides[field])}")
    if not args.names:
        print("\nEvery other field keeps its default (hpclars train --help). Flags win over a "
              "preset; `hpclars train --preset NAME ... --print-config` shows the result.")
    return EXIT_OK


def make_parser():
    parser = _Parser(prog="hpclars", description="HPC benchmark suite for large-batch training "
                     "(LeNet-5 on MNIST; SGD, LARS, LAMB; MPI data parallel).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train one run (use mpiexec -n N for N ranks)",
                       description="Train the paper's LeNet-5 on MNIST. Launch with "
                       "`mpiexec -n N hpclars train ...` or srun for data-parallel training. "
                       "Exit codes: 0 completed, target reached or diverged, 1 failure, 2 bad arguments, "
                       "75 stopped and checkpointed (rerun with --resume).")
    add_config_flags(p)
    p.add_argument("--print-config", action="store_true",
                   help="print the fully resolved configuration (and where each value came from) "
                        "and exit without training")
    ps = sub.add_parser("presets", help="list the presets: each one's settings and where it came from",
                        description="Show each preset's overrides (every other field keeps its "
                        "default) and where its values came from.")
    ps.add_argument("names", nargs="*", metavar="NAME", help="only these presets (default: all)")
    sub.add_parser("schema", help="print the run log's schema: every attribute and field, with its meaning",
                   description="Print the HDF5 run log's schema, as defined in hpclars/log.py.")
    d = sub.add_parser("data", help="download MNIST (if missing) and verify it",
                       description="Make sure the MNIST directory is complete and intact: "
                       "download the missing files from the public mirrors (checksummed) and "
                       "verify the size and MD5 of all four. Run it once on a machine with "
                       "internet (a cluster's login node) before jobs that cannot download.")
    d.add_argument("--data-dir", default="", help="MNIST directory (default: $HPCLARS_DATA or "
                   "the per-user cache ~/.cache/hpclars/mnist)")
    d.add_argument("--no-download", action="store_true", help="only verify; missing files are an error")
    d.add_argument("--print-dir", action="store_true",
                   help="print the directory hpclars would use (--data-dir, else $HPCLARS_DATA, else "
                        "the per-user cache under $XDG_CACHE_HOME or ~/.cache) and exit; the job scripts "
                        "use it")
    from . import bench

    bench.add_parser(sub, _Parser)
    from . import sweep

    sweep.add_parser(sub, _Parser)
    from . import tune

    tune.add_parser(sub, _Parser)
    parser.commands = sub.choices  # name -> subparser, for errors that name the command
    return parser


def _train(args):
    if args.print_config:
        return print_config(args)
    cfg = config_from_args(args)  # before MPI starts: bad flags cost nothing
    from .train import train

    return _collective(lambda comm: train(cfg, comm))


def _collective(fn):
    """Run ``fn(comm)`` on every rank; a rank-local failure aborts the whole job."""
    from .comm import Comm, abort_on_error
    from .data import DataError

    comm = Comm()
    with abort_on_error(comm, expected=(C.ConfigError, DataError)):
        status = fn(comm)
    return STATUS_EXIT[status]


def _sweep(args):
    from . import sweep

    if args.count or args.list or args.print_config:
        _checked_grid(sweep, args.grid, args.out_dir or ".")
        sweep.main(args)
        return EXIT_OK
    _checked_grid(sweep, args.grid, args.out_dir or ".")  # a bad grid fails before MPI starts
    return _collective(lambda comm: sweep.main(args, comm))


def _checked_grid(sweep, path, out_dir):
    """Load the grid; anything malformed becomes one line naming the file."""
    try:
        return sweep.load_grid(path, out_dir)
    except C.ConfigError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # wrong types, binary junk
        text = " ".join((str(exc) or type(exc).__name__).split())
        raise C.ConfigError(f"--grid: {path} is not a valid grid file ({type(exc).__name__}: {text})") from None


def _tune(args):
    from . import tune

    tasks = tune.make_tasks(args)  # bad settings fail before MPI starts
    if args.print_config:
        from .sweep import print_configs

        print_configs(tasks)
        return EXIT_OK
    return _collective(lambda comm: tune.main(args, comm))


def _data(args):
    from . import data

    root = data.resolve_data_dir(args.data_dir or None)
    if args.print_dir:
        print(root)
        return EXIT_OK
    mnist = data.load_mnist(root, download=not args.no_download, verify=True)
    print(f"{root}: MNIST complete and verified ({len(mnist.train_labels)} training and "
          f"{len(mnist.test_labels)} test images)")
    return EXIT_OK


def _unrecognized(parser, args, extra):
    """Report unknown arguments from the subcommand's parser, with a guess for each typo."""
    sub = parser.commands[args.command]
    known = [o for a in sub._actions for o in a.option_strings]
    hints = []
    for word in extra:
        guess = difflib.get_close_matches(word.split("=")[0], known, n=1)
        if word.startswith("-") and guess:
            hints.append(f"{word} (did you mean {guess[0]}?)")
        else:
            hints.append(word)
    sub.error(f"unrecognized arguments: {' '.join(hints)}; see hpclars {args.command} --help")


def main(argv=None):
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(parser, args, extra)
    from .data import DataError

    try:
        if args.command == "train":
            return _train(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "data":
            return _data(args)
        if args.command == "presets":
            return _presets(args)
        if args.command == "schema":
            from .log import schema

            print(schema())
            return EXIT_OK
        if args.command == "tune":
            return _tune(args)
        if args.command == "bench":
            from . import bench

            return bench.main(args)
    except C.ConfigError as exc:
        _error_once(f"hpclars {args.command}: error: {exc}")
        return EXIT_USAGE
    except DataError as exc:  # a missing, corrupt or foreign data file is bad input too
        _error_once(f"hpclars {args.command}: data error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    parser.error(f"unknown command {args.command!r}")


def _rank():
    """This process's MPI rank, also before MPI starts (from the launcher's environment)."""
    if "mpi4py.MPI" in sys.modules:
        from mpi4py import MPI

        return MPI.COMM_WORLD.Get_rank()
    return next((int(os.environ[v]) for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
                 if os.environ.get(v, "").isdigit()), 0)


def _error_once(message):
    """Print on rank 0 only (every rank raised the same error)."""
    if _rank() == 0:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
