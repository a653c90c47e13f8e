"""Two builds of hpclars, one training step (or evaluation, or update) each, timed in alternation.

    git worktree add /tmp/base <commit> && (cd /tmp/base && python setup.py -q build_ext --inplace)
    python jobs/ab_builds.py /tmp/base [--batch 256] [--rounds 40]
                             [--what step|eval|optimizer|conv1-bwd|conv2-bwd]
                             [--optimizer sgd|lars|lamb|adam|adamw]

Two worker processes, one importing hpclars from BASE (a checkout built in place), one from the
installed hpclars (an editable install times the working tree), take turns running 3 steps
each, ``--rounds`` times: a machine whose speed drifts (a shared VM) slows both alike.  Prints
each build's directory and commit, each side's min, quartile and median step time and the
speed-up (base time / this build's time; above 1: this build is faster) of the minima and of
the medians.  Single thread, the step of ``hpclars bench train`` (hpclars.bench.hpclars_step /
hpclars_eval).
``--what optimizer`` times the update alone (``make_optimizer(...).step`` on LeNet's parameters
and a fixed gradient), with ``--optimizer`` (default sgd, as the step's).  ``--what conv1-bwd`` and
``conv2-bwd`` time one fused conv -> max pool -> ReLU backward pass of LeNet's conv1 (no dx) or
conv2 (with dx) on a fixed random problem (:func:`conv_backward`).
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from hpclars.config import OPTIMIZERS


def optimizer_update(name):
    """A closure applying one update of optimizer ``name`` (default settings) to LeNet's
    parameters, with a fixed gradient; only API that every build has."""
    from hpclars import config
    from hpclars.model import LAYOUT, init_params
    from hpclars.optim import make_optimizer

    flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
    grads = np.random.default_rng(0).standard_normal(LAYOUT.size).astype(np.float32) * 1e-3
    opt = make_optimizer(config.build(optimizer=name, batch_size=256), LAYOUT)
    return lambda: opt.step(flat, grads, 1e-4)


def conv_backward(layer, batch):
    """A closure running ``kernels.conv.conv2d_pool_relu_backward`` once for LeNet's conv1
    (1 -> 6 channels, 28 x 28, no dx) or conv2 (6 -> 16, 14 x 14, with dx), batch ``batch``,
    1 thread: x uniform in [0, 1), w normal times 0.1, b 0 (the forward pass's pooled output and
    positions from the same kernels), the pooled gradient standard normal, all from seed 0.  About
    half of conv1's and 70% of conv2's pooling windows carry a gradient, near real training's 62%
    and 74% (BENCHMARKS.md session 18)."""
    from hpclars.kernels import conv

    cin, hw, cout = {"conv1-bwd": (1, 28, 6), "conv2-bwd": (6, 14, 16)}[layer]
    rng = np.random.default_rng(0)
    x = rng.random((batch, cin, hw, hw), dtype=np.float32)
    w = (rng.standard_normal((cout, cin, 5, 5)) * 0.1).astype(np.float32)
    out = np.empty((batch, cout, hw // 2, hw // 2), np.float32)
    idx = np.empty(out.shape, np.uint8)
    g = rng.standard_normal(out.shape).astype(np.float32)
    work = np.empty(conv.conv2d_pool_relu_work_size(batch, cin, hw, hw, cout, 5, 1), np.float32)
    conv.conv2d_pool_relu_forward(x, w, np.zeros(cout, np.float32), out, idx, work, 1)
    dx = np.empty_like(x) if layer == "conv2-bwd" else None
    dw, db = np.zeros_like(w), np.zeros(cout, np.float32)
    return lambda: conv.conv2d_pool_relu_backward(x, w, out, idx, g, dx, dw, db, work, 1)


def worker(batch, what, optimizer):
    import hpclars
    from hpclars import bench

    if what == "optimizer":
        fn = optimizer_update(optimizer)
    elif what in ("conv1-bwd", "conv2-bwd"):
        fn = conv_backward(what, batch)
    elif optimizer != "sgd":
        try:
            fn = bench.hpclars_step(batch, 1, 256, optimizer)
        except TypeError:  # builds before the optimizer argument (2026-11-30)
            sys.exit(f"ab_builds: {os.path.dirname(hpclars.__file__)}: its step is SGD only; "
                     "compare the update alone with --what optimizer")
    else:
        fn = {"step": bench.hpclars_step, "eval": bench.hpclars_eval}[what](batch, 1, 256)
    fn()
    fn()
    print("ready", os.path.dirname(hpclars.__file__), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(" ".join(f"{t:.6f}" for t in times), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="a checkout of the baseline commit, built in place")
    ap.add_argument("--batch", type=int, default=256, help="images per step (default 256; not used by optimizer)")
    ap.add_argument("--rounds", type=int, default=40, help="turns of 3 calls per build (default 40)")
    ap.add_argument("--what", choices=("step", "eval", "optimizer", "conv1-bwd", "conv2-bwd"),
                    default="step",
                    help="step: one training step; eval: the forward-only evaluation; optimizer: the "
                         "update alone; conv1-bwd, conv2-bwd: that layer's fused backward pass "
                         "(default step)")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                    help="the update timed by --what optimizer, or the step's (default sgd)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.what not in ("step", "optimizer") and args.optimizer != "sgd":
        sys.exit(f"ab_builds: --optimizer applies to --what step or optimizer, not {args.what}")
    if args.worker:
        return worker(args.batch, args.what, args.optimizer)
    if not os.path.isfile(os.path.join(args.base, "hpclars", "__init__.py")):
        sys.exit(f"ab_builds: {args.base} is not an hpclars checkout")
    procs = {}
    for name, path in (("base", os.path.abspath(args.base)), ("this", None)):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if path:
            env["PYTHONPATH"] = path
        cmd = [sys.executable, os.path.abspath(__file__), "-", "--worker", "--batch", str(args.batch),
               "--what", args.what, "--optimizer", args.optimizer]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        ready = p.stdout.readline().split()
        if not ready:  # the worker said why on stderr
            sys.exit(f"ab_builds: the {name} worker did not start")
        commit = subprocess.run(["git", "-C", ready[-1], "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "not a git checkout"
        dirty = subprocess.run(["git", "-C", ready[-1], "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        print(f"# {name}: {ready[-1]} (commit {commit}{'-dirty' if dirty else ''})")
        procs[name] = p
    times = {name: [] for name in procs}
    for _ in range(args.rounds):
        for name, p in procs.items():
            p.stdin.write("3\n")
            p.stdin.flush()
            times[name] += [float(t) for t in p.stdout.readline().split()]
    for p in procs.values():
        p.stdin.close()
        p.wait()
    what = f"{args.optimizer} update alone" if args.what == "optimizer" else \
        f"{args.what}, batch {args.batch}" + (f", {args.optimizer}" if args.optimizer != "sgd" else "")
    print(f"# {what}, 1 thread, {args.rounds} rounds of 3 per build, alternating")
    for name, v in times.items():
        v = np.array(v) * 1e3
        rate = "" if args.what == "optimizer" else f"  -> {args.batch / np.median(v) * 1e3:.0f} img/s (median)"
        print(f"{name:>5}: min {v.min():.2f} ms  25% {np.percentile(v, 25):.2f}  median {np.median(v):.2f}{rate}")
    b, t = np.array(times["base"]), np.array(times["this"])
    print(f"speed-up: {b.min() / t.min():.3f} (minima), {np.median(b) / np.median(t):.3f} (medians)")


if __name__ == "__main__":
    main()
