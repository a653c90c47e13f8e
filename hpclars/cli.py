"""Command line: ``hpclars train | sweep | bench ...`` (also ``python -m hpclars``).

The train flags are generated from :class:`hpclars.config.Config`, so the
dataclass stays the only home of defaults; each flag's help text lives here.
Every flag is validated before MPI communication or data loading starts.

Exit codes: 0 completed (or diverged: the status is in the log), 1 failure,
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
STATUS_EXIT = {"completed": EXIT_OK, "diverged": EXIT_OK, "interrupted": EXIT_REQUEUE, "failed": EXIT_FAILURE}

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
    "lars_momentum": "where LARS applies the rate: inside the momentum buffer (You et al. "
                     "Algorithm 1) or after it (TensorFlow LARSOptimizer)",
    "lars_eps": "epsilon added to the trust-ratio denominator",
    "exclude_bias": "exempt biases from layer-wise adaptation and weight decay",
    "beta1": "first-moment decay (lamb, adam, adamw)",
    "beta2": "second-moment decay (lamb, adam, adamw)",
    "adam_eps": "epsilon of the Adam denominator (lamb, adam, adamw)",
    "seed": "random seed for the initialisation and the data order",
    "data_dir": "directory with the MNIST IDX files (default: $HPCLARS_DATA, else a per-user "
                "cache filled from the public mirrors)",
    "out": "path of the HDF5 run log (the checkpoint goes beside it as NAME.ckpt.h5)",
    "overwrite": "replace an existing log at --out",
    "resume": "continue the run at --out from its checkpoint (a completed run exits at once; "
              "no checkpoint: start fresh)",
    "stop_file": "if this file appears, finish the step, checkpoint and exit with code 75",
    "checkpoint_every": "epochs between checkpoints (0: only when stopped)",
    "eval_every": "evaluate train and test accuracy every K epochs (the last epoch always; "
                  "skipped epochs log NaN metrics)",
    "chunk_size": "images per kernel call; bounds memory at any batch size",
    "threads": "OpenMP threads per rank",
    "progress": "show a progress indicator while an epoch runs",
    "preset": f"named set of overrides applied before the flags: {', '.join(sorted(C.PRESETS))}",
}

CHOICES = {
    "optimizer": C.OPTIMIZERS, "schedule": C.SCHEDULES, "lr_scaling": C.LR_SCALING,
    "lars_denominator": C.LARS_DENOMINATORS, "lars_mode": C.LARS_MODES,
    "lars_momentum": C.LARS_MOMENTUM, "preset": tuple(sorted(C.PRESETS)),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that name the program and the flag."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_config_flags(parser):
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
        shown = repr(default) if default != "" else "none"
        parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(),
                            help=f"{help_text} (default: {shown}"
                                 + (f"; one of {', '.join(CHOICES[f.name])})" if f.name in CHOICES else ")"))


def config_from_args(args):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(C.Config)}
    preset = values.pop("preset") or ""
    return C.build(preset=preset, **values)


def make_parser():
    parser = _Parser(prog="hpclars", description="HPC benchmark suite for large-batch training "
                     "(LeNet-5 on MNIST; SGD, LARS, LAMB; MPI data parallel).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train one run (use mpiexec -n N for N ranks)",
                       description="Train the paper's LeNet-5 on MNIST. Launch with "
                       "`mpiexec -n N hpclars train ...` or srun for data-parallel training. "
                       "Exit codes: 0 completed or diverged, 1 failure, 2 bad arguments, "
                       "75 stopped and checkpointed (rerun with --resume).")
    add_config_flags(p)
    d = sub.add_parser("data", help="download MNIST (if missing) and verify it",
                       description="Make sure the MNIST directory is complete and intact: "
                       "download the missing files from the public mirrors (checksummed) and "
                       "verify the size and MD5 of all four. Run it once on a machine with "
                       "internet (a cluster's login node) before jobs that cannot download.")
    d.add_argument("--data-dir", default="", help="MNIST directory (default: $HPCLARS_DATA or "
                   "the per-user cache ~/.cache/hpclars/mnist)")
    d.add_argument("--no-download", action="store_true", help="only verify; missing files are an error")
    from . import bench

    bench.add_parser(sub, _Parser)
    from . import sweep

    sweep.add_parser(sub, _Parser)
    from . import tune

    tune.add_parser(sub, _Parser)
    parser.commands = sub.choices  # name -> subparser, for errors that name the command
    return parser


def _train(args):
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

    if args.count or args.list:
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

    tune.make_tasks(args)  # bad settings fail before MPI starts
    return _collective(lambda comm: tune.main(args, comm))


def _data(args):
    from . import data

    root = data.resolve_data_dir(args.data_dir or None)
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
    parser.error(f"unknown command {args.command!r}")


def _error_once(message):
    """Print on rank 0 only when MPI is up (every rank raised the same error)."""
    if "mpi4py.MPI" in sys.modules:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
    else:  # MPI not started yet: ask the launcher
        rank = next((int(os.environ[v]) for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
                     if os.environ.get(v, "").isdigit()), 0)
    if rank == 0:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
