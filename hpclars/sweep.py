"""Sweeps: a grid of runs defined once in a TOML file, run locally or as a SLURM array.

A grid file (see ``jobs/grids/``) holds:

    name = "paper"                 # the sweep's name
    batch_sizes = [64, 128, ...]   # global batch sizes
    seeds = [0, 1]
    [common]                       # Config fields for every run (e.g. epochs = 30)
    [[runs]]                       # one table per optimizer configuration
    name = "lars-paper"            # used in the log names
    preset = "paper"               # optional
    optimizer = "lars"             # any other Config fields; may also override
                                   # batch_sizes or seeds for this entry
    eval_every_images = 10240      # optional, in [common] or a [[runs]] entry: evaluate
                                   # the test set every round(10240 / batch) steps (at
                                   # least 1), the same images between evaluations at
                                   # every batch size; excludes eval_every_steps

Runs are numbered seed-major (so a first complete picture comes before the
repeats), then by [[runs]] entry, then batch size; run ``i`` logs to
``OUT_DIR/<run name>-b<batch>-s<seed>.h5``.  ``hpclars sweep --task i`` runs one
(a SLURM array task), no ``--task`` runs them all in order.  Every run is
started with ``--resume`` semantics: completed and diverged logs are skipped,
interrupted ones continue from their checkpoint, failed ones are rerun.

Every grid point is validated before any run starts.

Deliberately left out: running grid points concurrently inside one process (give the
sweep more ranks, or use the SLURM array job) and any scheduling of its own.
"""

import argparse
import dataclasses
import os
import re
import tomllib

from . import config as C

GRID_KEYS = {"name", "batch_sizes", "seeds", "common", "runs"}
# Config fields the sweep sets for every run, so a grid may not (the hint says what to use).
# Not config.RUN_CONTROL: a grid may set threads or chunk_size, and the sweep sets batch_size
# and seed, which do change what a run computes.
SET_BY_SWEEP = {"out": "", "resume": "", "overwrite": "", "stop_file": "; use hpclars sweep --stop-file",
                "data_dir": "; use hpclars sweep --data-dir", "progress": "; use hpclars sweep --progress",
                "batch_size": "; use batch_sizes", "seed": "; use seeds",
                "mllog": "; every run of the grid would write the same file"}
RUN_KEYS = {"name", "preset", "batch_sizes", "seeds"}  # besides config fields, in a [[runs]] entry
GRID_ONLY = {"eval_every_images"}  # grid keys that become config fields per batch size (eval_every_steps)


@dataclasses.dataclass(frozen=True)
class Task:
    index: int
    name: str
    config: C.Config


class GridError(C.ConfigError):
    pass


def load_grid(path, out_dir, data_dir="", stop_file="", threads=None, chunk_size=None, progress=False):
    """Read and validate a grid file; returns the list of Tasks."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        grid = tomllib.loads(text)
    except OSError as exc:
        raise GridError(f"--grid: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"--grid: {path} is not valid TOML: {exc}") from None
    lines = text.splitlines()
    check_keys(path, lines, grid, "", None, GRID_KEYS)
    runs = grid.get("runs") or []
    if not runs:
        raise GridError(f"--grid: {path} defines no [[runs]]")
    common = dict(grid.get("common", {}))
    check_keys(path, lines, common, "[common]", 0, set(C.field_names()) | {"preset"} | GRID_ONLY)
    entries, names = [], set()
    for r, entry in enumerate(runs):
        check_keys(path, lines, entry, "[[runs]]", r, set(C.field_names()) | RUN_KEYS | GRID_ONLY)
        entry = dict(entry)
        run_name = entry.pop("name", None)
        if not run_name or not isinstance(run_name, str):
            raise GridError(f"--grid: {path}: runs[{r}] needs a name")
        if run_name in names:
            raise GridError(f"--grid: {path}: two runs are named {run_name!r}")
        names.add(run_name)
        batches = entry.pop("batch_sizes", grid.get("batch_sizes"))
        seeds = entry.pop("seeds", grid.get("seeds", [0]))
        if not batches:
            raise GridError(f"--grid: {path}: no batch_sizes for run {run_name!r}")
        preset = entry.pop("preset", common.get("preset", ""))
        entries.append((run_name, entry, preset, batches, seeds))
    all_seeds = sorted({s for e in entries for s in e[4]})
    tasks = []
    for seed in all_seeds:  # seed-major: a first complete picture comes before the repeats
        for run_name, entry, preset, batches, seeds in entries:
            if seed not in seeds:
                continue
            for batch in batches:
                name = f"{run_name}-b{batch}-s{seed}"
                values = {k: v for k, v in common.items() if k != "preset"}
                values.update(entry)
                images = values.pop("eval_every_images", None)
                if images is not None:
                    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
                        raise GridError(f"--grid: {path}: run {name}: eval_every_images must be a positive "
                                        f"integer (images between test evaluations), got {images!r}")
                    if values.get("eval_every_steps"):
                        raise GridError(f"--grid: {path}: run {name}: eval_every_images and eval_every_steps "
                                        "both set; keep one")
                    values["eval_every_steps"] = max(1, round(images / batch))
                values.update(batch_size=batch, seed=seed, out=os.path.join(out_dir, name + ".h5"),
                              resume=True, data_dir=data_dir, stop_file=stop_file, progress=progress)
                if threads is not None:
                    values["threads"] = threads
                if chunk_size is not None:
                    values["chunk_size"] = chunk_size
                try:
                    cfg = C.build(preset=preset, **values)
                except (C.ConfigError, TypeError) as exc:
                    raise GridError(f"--grid: {path}: run {name}: {exc}") from None
                tasks.append(Task(len(tasks), name, cfg))
    return tasks


def key_line(lines, header, nth, key):
    """The 1-based line where ``key = ...`` is set in the ``nth`` table with this header line
    (``[common]``, ``[[runs]]``; "" for the top level), or None.

    tomllib reports no positions, so this is a plain scan of the text: it finds keys written
    one per line (as in jobs/grids/), not inside inline tables.
    """
    count, inside = -1, header == ""
    pattern = re.compile(rf"""\s*(["']?){re.escape(key)}\1\s*=""")
    for number, line in enumerate(lines, 1):
        stripped = re.sub(r"\s+", "", line.split("#")[0])  # "[ common ]" is "[common]"
        if stripped.startswith("["):
            if stripped == header:
                count += 1
            inside = stripped == header and count == nth
        elif inside and pattern.match(line):
            return number
    return None


def check_keys(path, lines, table, header, nth, allowed):
    """Refuse keys a grid table may not hold, naming the table, the line and a guess."""
    where = header or "top level"
    if header == "[[runs]]":
        name = table.get("name")
        where = f"[[runs]] entry {nth + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
    for key in table:
        line = key_line(lines, header, nth, key)
        at = f"{path}: {where}" + (f", line {line}" if line else "")
        if key in SET_BY_SWEEP and header:
            raise GridError(f"--grid: {at}: may not set {key} (set by the sweep{SET_BY_SWEEP[key]})")
        if key not in allowed:
            raise GridError(f"--grid: {at}: unknown key {key}{C.did_you_mean(key, allowed)}"
                            + ("" if header else f"; allowed: {', '.join(sorted(allowed))}"))


def run_sweep(tasks, only=None, comm=None):
    """Run the tasks (or just task ``only``) in this MPI world; returns an exit status string."""
    from .comm import Comm
    from .data import load_data
    from .train import train

    comm = comm or Comm()
    selected = tasks if only is None else [tasks[only]]
    for t in selected:
        C.validate_for_world(t.config, comm.size)
    data = load_data(selected[0].config.data_dir, comm)
    outcome = "completed"
    for t in selected:
        if comm.is_root:
            print(f"== sweep task {t.index}/{len(tasks)}: {t.name}", flush=True)
        status = train(t.config, comm, data=data)
        if status == "interrupted":
            return "interrupted"
        if status == "failed":
            outcome = "failed"
    return outcome


def add_parser(sub, parser_class):
    p = sub.add_parser("sweep", help="run a grid of runs (locally, or one task of a SLURM array)",
                       description="Run the grid defined in a TOML file (see jobs/grids/). Resumable: "
                       "completed logs are skipped, interrupted runs resume, failed runs are rerun. "
                       "Under mpiexec -n N every run uses N ranks.")
    p.add_argument("--grid", required=True, help="grid file (TOML)")
    p.add_argument("--out-dir", default="",
                   help="directory for the run logs (required unless --count, --list or --print-config)")
    p.add_argument("--task", type=int, default=None,
                   help="run only this grid point, 0-based (default: all, one after another)")
    p.add_argument("--count", action="store_true", help="print the number of grid points and exit")
    p.add_argument("--list", action="store_true", help="list the grid points and exit")
    p.add_argument("--print-config", action="store_true",
                   help="print every grid point's fully resolved configuration and exit")
    p.add_argument("--data-dir", default="", help="MNIST directory (default: $HPCLARS_DATA or the cache)")
    p.add_argument("--stop-file", default="", help="checkpoint and exit 75 when this file appears (default: none)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"OpenMP threads per rank for every run (default: the grid's setting, else {C.Config.threads})")
    p.add_argument("--chunk-size", type=int, default=None,
                   help=f"images per kernel call for every run (default: the grid's setting, else {C.Config.chunk_size})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="tqdm progress bar while an epoch runs, on a terminal only (default: off)")
    return p


def print_configs(tasks):
    """Each task's resolved configuration as TOML lines, under a comment naming the task."""
    for t in tasks:
        print(f"# task {t.index}: {t.name}\n{C.format_config(t.config)}\n")


def main(args, comm=None):
    if not (args.count or args.list or args.print_config) and not args.out_dir:
        raise C.ConfigError("--out-dir: required to run a sweep")
    tasks = load_grid(args.grid, args.out_dir or ".", args.data_dir, args.stop_file,
                      args.threads, args.chunk_size, args.progress)
    if args.count:
        print(len(tasks))
        return "completed"
    if args.list:
        for t in tasks:
            print(f"{t.index:>4}  {t.name}")
        return "completed"
    if args.print_config:
        print_configs(tasks)
        return "completed"
    if args.task is not None and not 0 <= args.task < len(tasks):
        raise C.ConfigError(f"--task: {args.task} is outside the grid's 0..{len(tasks) - 1}")
    return run_sweep(tasks, args.task, comm)


__all__ = ["load_grid", "run_sweep", "Task", "GridError", "main", "add_parser"]
