"""Benchmarks: ``hpclars bench train | step | kernels | scaling | allreduce | machine | hybrid``.

Every figure is measured against a named baseline in the same process run:
warm-up first, then several repeats, the median quoted.

- ``train``: images/s of a whole training step (forward, backward, optimizer)
  at several batch sizes, beside PyTorch CPU on the same model with the same
  thread count when torch is installed (a benchmark-only extra), and the
  achieved GFLOP/s beside this machine's single-thread sgemm rate.
- ``step``: where one training step's time goes: every kernel call, the input conversion and
  the optimizer, each part's GFLOP/s beside the same run's sgemm, and what the step would take
  were every FLOP to run at the sgemm rate; then the step and the sgemm against the core's FMA
  peak (:func:`fma_peak_gflops`), a ceiling that holds where the BLAS's sgemm is not one.
- ``kernels``: each kernel, forward and backward, checked against its NumPy
  reference before it is timed.
- ``scaling``: weak scaling (fixed images per rank) of hpclars under mpiexec
  beside PyTorch DDP (gloo over loopback) on the same rank counts, 1 thread
  per rank, in the same run.
- ``machine``: the machine's own ceiling, no hpclars code: per-rank in-register FMA
  peak, cache-resident sgemm and STREAM triad, all ranks at once (hpclars/machine.py).
- ``allreduce``: OSU-style latency of ``Allreduce`` for the model's gradient
  buffer and sizes around it, beside the per-step compute time, so the
  fraction of a step spent communicating is visible at any rank count; then
  the latency-bandwidth (alpha-beta) model fitted to those medians, and the
  same model with the per-message latency of real links added analytically
  (labelled MODELLED: the network it ran on may add bandwidth limits with
  ``tc`` but cannot add latency).

Every subcommand starts with the code and the machine it ran on, as ``# name: value``
lines (:func:`hpclars.provenance.environment`: commit, CPU, MPI, BLAS, kernel path).

Deliberately left out: asserting anything about speed (tests never time).
"""

import os
import statistics
import time

import numpy as np

from . import config as C
from . import reference
from .model import LAYOUT, LeNet, init_params

# FLOPs per image (multiply-add = 2): forward, and backward as the trainer runs it
# (conv1 needs no input gradient).
CONV1 = 2 * 6 * 1 * 25 * 28 * 28
CONV2 = 2 * 16 * 6 * 25 * 14 * 14
FC = {"fc1": 2 * 784 * 120, "fc2": 2 * 120 * 84, "fc3": 2 * 84 * 10}
DENSE = sum(FC.values())
FWD_FLOPS = CONV1 + CONV2 + DENSE
TRAIN_FLOPS = FWD_FLOPS + CONV1 + 2 * CONV2 + 2 * DENSE


def flops_note():
    """A '# ...' line for the outputs that quote GFLOP/s, where the build's kernels do fewer FLOPs
    than the dense computation counted here (hpclars.kernels.CONV_POOLED_DW), else None."""
    from . import kernels

    if not kernels.CONV_POOLED_DW:
        return None
    parts = (["conv1's weight gradient"] if kernels.CONV_POOLED_DW1 else []) + ["conv2's weight gradient"] \
        + (["conv2's dx"] if kernels.CONV_POOLED_DX else [])
    what = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
    return ("# GFLOP/s (and % sgemm where shown) count the dense computation's FLOPs; this build's "
            f"fused conv -> pool -> ReLU backward sums {what} over the nonzero "
            "pooling windows only (kernels.CONV_POOLED_DW, _DW1, _DX: their nonzero terms are "
            "at most a quarter of those parts' dense FLOPs), so its rates are dense-equivalent (model FLOPs)")


def executed_flops(model):
    """The FLOPs per image of a training step that this build's kernels execute, on the batch
    that ``model`` (a :class:`hpclars.model.LeNet`) last ran forward and backward.

    The dense count is :data:`TRAIN_FLOPS` (multiply-add = 2).  Where the build sums the
    convolutions' weight gradients (``kernels.CONV_POOLED_DW``: conv2, ``CONV_POOLED_DW1``: conv1)
    or conv2's input gradient (``kernels.CONV_POOLED_DX``) over the pooling windows with a nonzero gradient only,
    such a part executes a quarter of its dense FLOPs (one pre-pool position of the window's
    four) times the share of those windows: the pooled values whose gradient times the ReLU's
    mask, ``dp * (p > 0)``, is nonzero, the kernels' own test.  The shares are those of the
    model's chunk buffers (the batch's last chunk).  An image with a non-finite value takes the
    dense path; this count does not see that.
    Returns (FLOPs per image: float, {"conv1": share, "conv2": share}: floats in [0, 1]).
    """
    from . import kernels

    share = {name: float(np.count_nonzero(dp * (p > 0)) / dp.size)
             for name, dp, p in (("conv1", model.dp1, model.p1), ("conv2", model.dp2, model.p2))}
    dw1 = CONV1 * share["conv1"] / 4 if kernels.CONV_POOLED_DW1 else CONV1
    dw2 = CONV2 * share["conv2"] / 4 if kernels.CONV_POOLED_DW else CONV2
    dx2 = CONV2 * share["conv2"] / 4 if kernels.CONV_POOLED_DX else CONV2
    return FWD_FLOPS + 2 * DENSE + dw1 + dw2 + dx2, share


def median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fma_peak_gflops(repeats=21, rounds=1 << 20):
    """This core's arithmetic peak in GFLOP/s: independent float32 FMAs one register wide
    (:func:`hpclars.kernels.probes.fma_peak`: 16, 8 or 4 lanes as the build's ISA), median of
    ``repeats`` calls of ``rounds`` rounds (about 2 ms each at 200 GFLOP/s), after 2 untimed ones.

    The ceiling of a single-threaded kernel, which a BLAS's sgemm need not reach and which no
    BLAS setting moves: on an AMD EPYC Zen 5 (2026-12-02, BENCHMARKS.md session 21) a shell with
    ``OPENBLAS_CORETYPE=Haswell`` held OpenBLAS to its AVX2 kernels, sgemm 1024^3 at 108-113
    GFLOP/s (180 without it) against 227-237 here, and conv2's AVX-512 forward pass ran at
    192-201.  Raises ValueError for repeats < 1 or rounds < 1.
    """
    from .kernels import probes

    if repeats < 1 or rounds < 1:
        raise ValueError(f"fma_peak_gflops needs repeats >= 1 and rounds >= 1, got {repeats}, {rounds}")
    return rounds * probes.FMA_FLOPS_PER_ROUND / median_time(lambda: probes.fma_peak(rounds), repeats) / 1e9


def sgemm_call(n=1024):
    """(call, FLOPs): one n x n x n sgemm of the BLAS the kernels use (scipy's)."""
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    return (lambda: sgemm(1.0, a, b)), 2 * n ** 3


def sgemm_gflops(n=1024, repeats=5):
    """Single-call sgemm rate of the BLAS the kernels use (scipy's), in GFLOP/s (median)."""
    call, flops = sgemm_call(n)
    return flops / median_time(call, repeats) / 1e9


def interleaved_times(fns, repeats, warmup=2):
    """{name: [seconds per call]}: each repeat times every function of ``fns`` (a dict) once,
    in turn, so a machine whose speed drifts (a shared VM) slows all of them alike and each
    repeat's ratios stay fair; ``warmup`` untimed rounds first.

    Each timed call follows an untimed call of the same function, so it runs with its own
    data in cache, as a training step does in the trainer, where steps follow steps.  Without
    that a step would be timed right after the sgemm before it, whose 12 MB evict the step's
    buffers: 7-9% slower at batch 256 on the 2-core Xeon
    (BENCHMARKS.md, session 12).  Costs twice the calls."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            fn()  # untimed: the timed call below finds its own data in cache
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _batch(batch, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=batch).astype(np.int32)
    return images, labels


class OneRankStep:
    """One hpclars training step (1 rank) on a fixed random batch, in its two halves: the
    gradient (:meth:`forward_backward`, zeroing it first) and the update (:meth:`update`, by
    ``optimizer``, a name of :data:`hpclars.config.OPTIMIZERS`, with its built-in settings).
    ``kernels``: the compiled kernels module, or a stand-in for it (:class:`TimedKernels`)."""

    def __init__(self, batch, threads, chunk_size, optimizer="sgd", kernels=None):
        from . import kernels as compiled
        from .optim import make_optimizer

        cfg = C.build(optimizer=optimizer, batch_size=batch, threads=threads, chunk_size=chunk_size)
        self.flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
        self.grads = np.zeros_like(self.flat)
        self.P, self.G = LAYOUT.views(self.flat), LAYOUT.views(self.grads)
        self.model = LeNet(kernels or compiled, min(chunk_size, batch), threads)
        self.opt = make_optimizer(cfg, LAYOUT)
        self.images, self.labels = _batch(batch)
        self.scale = 1.0 / batch

    def forward_backward(self):
        self.grads[...] = 0
        self.model.forward_backward(self.P, self.G, self.images, self.labels, self.scale)

    def update(self):
        self.opt.step(self.flat, self.grads, 0.01)


def hpclars_step(batch, threads, chunk_size, optimizer="sgd"):
    """A closure running one :class:`OneRankStep`, both halves."""
    s = OneRankStep(batch, threads, chunk_size, optimizer)

    def step():
        s.forward_backward()
        s.update()

    step.model = s.model  # for executed_flops
    return step


def hpclars_eval(batch, threads, chunk_size):
    """A closure running the trainer's evaluation (forward only, no activations kept for a
    backward pass, loss and correct count) of one rank on a fixed random batch."""
    from . import kernels

    flat = init_params(np.zeros(LAYOUT.size, np.float32), 0)
    P = LAYOUT.views(flat)
    model = LeNet(kernels, min(chunk_size, batch), threads)
    images, labels = _batch(batch)
    return lambda: model.evaluate(P, images, labels)


def torch_step(batch, threads, ddp=False):
    """The same model, loss and optimizer in PyTorch CPU, or None without torch.

    With ``ddp`` the model is wrapped in DistributedDataParallel (the process group must
    exist) and the network is returned too."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(784, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    model = torch.nn.parallel.DistributedDataParallel(net) if ddp else net
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    images, labels = _batch(batch)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(batch, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))

    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(model(x), y).backward()
        opt.step()

    return (step, torch.__version__, model) if ddp else (step, torch.__version__)


def bench_train(args):
    from . import kernels

    print(f"# hpclars bench train: {args.threads} thread(s), chunk {args.chunk_size}, {args.repeats} "
          f"repeats, {TRAIN_FLOPS / 1e6:.2f} MFLOP per image, optimizer {args.optimizer}")
    print("# interleaved: each repeat times one sgemm 1024^3 (scipy OpenBLAS, 1 call), the training "
          "step, the evaluation and PyTorch's step in turn, each call after an untimed call of itself "
          "(its own data in cache, as in a loop of steps); every figure is a median over "
          "repeats, each ratio the median of the repeats' own ratios (% sgemm: the step's GFLOP/s "
          "over the same repeat's sgemm GFLOP/s, with its min-max); best: the fastest step over the "
          "fastest sgemm of all repeats, the machine's undisturbed rates where neighbours come and go")
    if note := flops_note():
        print(note)
    print("# % exec: the median % sgemm over the FLOPs this build executes on the batch "
          "(bench.executed_flops; the same as % sgemm where a build computes every dense term); "
          "exec MFLOP: those FLOPs per image")
    wino = ("; this build takes conv2 by Winograd F(2x2, 5x5) there (kernels.CONV_WINOGRAD: fewer "
            "operations than the 1.39 model MFLOP per image, equal to rounding)" if kernels.CONV_WINOGRAD else "")
    print("# eval: the trainer's forward-only evaluation (no pooling positions) at the same batch and chunk"
          f"{wino}; x train = its images/s over the training step's")
    print(f"{'batch':>6} {'hpclars img/s':>14} {'GFLOP/s':>8} {'sgemm':>6} {'% sgemm':>8} {'min-max':>12} "
          f"{'best':>6} {'% exec':>7} {'exec MFLOP':>10} {'eval img/s':>11} {'x train':>8} {'torch img/s':>12} "
          f"{'ratio':>6}")
    sgemm, sgemm_flops = sgemm_call()
    torch_version = None
    for batch in args.batch_sizes:
        fns = {"sgemm": sgemm, "step": hpclars_step(batch, args.threads, args.chunk_size, args.optimizer),
               "eval": hpclars_eval(batch, args.threads, args.chunk_size)}
        baseline = None if args.no_torch or args.optimizer != "sgd" else torch_step(batch, args.threads)
        if baseline is not None:
            fns["torch"], torch_version = baseline
        t = interleaved_times(fns, args.repeats)
        executed, _ = executed_flops(fns["step"].model)
        med = {name: statistics.median(v) for name, v in t.items()}
        pct = [100 * (batch * TRAIN_FLOPS / ts) / (sgemm_flops / tg) for ts, tg in zip(t["step"], t["sgemm"])]
        share = statistics.median(pct)
        row = (f"{batch:>6} {batch / med['step']:>14.0f} {batch * TRAIN_FLOPS / med['step'] / 1e9:>8.1f} "
               f"{sgemm_flops / med['sgemm'] / 1e9:>6.1f} {share:>7.1f}% "
               f"{f'{min(pct):.0f}-{max(pct):.0f}%':>12} "
               f"{100 * (batch * TRAIN_FLOPS / min(t['step'])) / (sgemm_flops / min(t['sgemm'])):>5.1f}% "
               f"{share * executed / TRAIN_FLOPS:>6.1f}% {executed / 1e6:>10.3f} "
               f"{batch / med['eval']:>11.0f} "
               f"{statistics.median(s / e for s, e in zip(t['step'], t['eval'])):>8.2f}")
        if "torch" in t:
            row += (f" {batch / med['torch']:>12.0f} "
                    f"{statistics.median(tt / ts for tt, ts in zip(t['torch'], t['step'])):>6.2f}")
        else:
            row += f" {'-':>12} {'-':>6}"
        print(row, flush=True)
    if torch_version:
        print(f"# baseline: PyTorch {torch_version} CPU, torch.set_num_threads({args.threads}), "
              "same model, loss and SGD momentum; ratio = hpclars img/s / torch img/s")
    elif args.optimizer != "sgd":
        print(f"# no PyTorch baseline: it is SGD with momentum, this run's update is {args.optimizer} "
              "(run --optimizer sgd for it)")
    else:
        print("# no PyTorch baseline (install torch to get one; see BENCHMARKS.md)")


# FLOPs per image of each part of the training step (multiply-add = 2), for ``bench step``.
PART_FLOPS = {"conv1 fwd": CONV1, "conv2 fwd": CONV2, **{f"{fc} fwd": f for fc, f in FC.items()},
              **{f"{fc} bwd": 2 * f for fc, f in FC.items()}, "conv2 bwd": 2 * CONV2, "conv1 bwd": CONV1}
# The step's parts in the order it runs them.
STEP_PARTS = ("input", "conv1 fwd", "conv2 fwd", "fc1 fwd", "fc2 fwd", "fc3 fwd", "ReLU", "softmax + loss",
              "fc3 bwd", "fc2 bwd", "fc1 bwd", "conv2 bwd", "conv1 bwd", "optimizer", "rest")


class TimedKernels:
    """The compiled kernels module with every call timed, seconds summed per part of the step.

    ``seconds[part]`` accumulates; part is "<layer> fwd" or "<layer> bwd" for the convolution
    (conv -> pool -> ReLU) and dense kernels (the layer found by its weight's shape in
    :data:`hpclars.model.PARAM_SHAPES`), "ReLU" for the dense layers' ReLU, "softmax + loss".
    Arguments and results pass through unchanged; anything that is not a kernel call (the
    ``*_work_size`` helpers, constants) is the module's own.  Each timed wrapper is made on
    first use and kept, so later calls cost one instance-attribute lookup.
    """

    _direction = {"conv2d_pool_relu_forward": "fwd", "conv2d_pool_relu_backward": "bwd",
                  "dense_forward": "fwd", "dense_backward": "bwd"}

    def __init__(self, kernels):
        from .model import PARAM_SHAPES

        self._k = kernels
        self._layer = {shape: name.split(".")[0] for name, shape in PARAM_SHAPES if name.endswith(".w")}
        self.seconds = dict.fromkeys(STEP_PARTS, 0.0)

    def __getattr__(self, name):
        fn = getattr(self._k, name)
        if not callable(fn) or name.endswith("_work_size"):
            return fn
        if name in self._direction:
            part = lambda args: f"{self._layer[args[1].shape]} {self._direction[name]}"  # noqa: E731
        else:
            part = lambda args, p="ReLU" if name.startswith("relu") else "softmax + loss": p  # noqa: E731

        def timed(*args):
            t0 = time.perf_counter()
            result = fn(*args)
            self.seconds[part(args)] += time.perf_counter() - t0
            return result

        setattr(self, name, timed)  # __getattr__ runs only for names not yet set
        return timed


def step_parts(batch, threads, chunk_size, optimizer, repeats, between=None):
    """({part: [seconds per step]}, executed FLOPs per image): the times for :data:`STEP_PARTS`
    and "step" (the whole step), over ``repeats`` timed :class:`OneRankStep`: the kernels through
    :class:`TimedKernels`, the input conversion and the optimizer timed around their calls,
    "rest" the step minus every part (Python, zeroing the gradient, the timers themselves); and
    :func:`executed_flops` of the last step's batch (int).
    ``between``, if given, is called and timed (as "between") before each step, e.g. the
    sgemm the step is compared with, so that both see the same machine; an untimed step then
    follows it, so that the timed step finds its own data in cache, as the trainer's steps do
    (see :func:`interleaved_times`)."""
    from . import kernels

    timed = TimedKernels(kernels)
    s = OneRankStep(batch, threads, chunk_size, optimizer, timed)
    model = s.model
    load = model._load

    def timed_load(imgs, n):
        t0 = time.perf_counter()
        x = load(imgs, n)
        timed.seconds["input"] += time.perf_counter() - t0
        return x

    model._load = timed_load
    out = {part: [] for part in (*STEP_PARTS, "step", "between")}
    for rep in range(repeats + 2):  # 2 untimed warm-up steps
        if between is not None:
            between()  # untimed, as in interleaved_times: the timed call finds its data in cache
            t0 = time.perf_counter()
            between()
            if rep >= 2:
                out["between"].append(time.perf_counter() - t0)
            s.forward_backward()  # untimed: the between call evicted the step's data
            s.update()
        timed.seconds = dict.fromkeys(STEP_PARTS, 0.0)
        t0 = time.perf_counter()
        s.forward_backward()
        t1 = time.perf_counter()
        s.update()
        t2 = time.perf_counter()
        timed.seconds["optimizer"] = t2 - t1
        timed.seconds["rest"] = (t2 - t0) - sum(timed.seconds.values())
        if rep >= 2:
            for part, sec in timed.seconds.items():
                out[part].append(sec)
            out["step"].append(t2 - t0)
    return out, executed_flops(model)[0]


def bench_step(args):
    """Where one training step's time goes, part by part (rank 0's table).  Under ``mpiexec -n
    N`` every rank runs the same timed steps at once, with no communication between them (the
    per-rank compute of an N-rank run, without its Allreduce), and rank 0 adds one row per rank
    (its own sgemm rate and step) and what the spread costs a synchronous step, which waits for
    the slowest rank."""
    from .comm import Comm

    comm = Comm()
    say = print if comm.is_root else (lambda *a, **k: None)
    say(f"# hpclars bench step: where one training step's time goes; batch {args.batch}, "
        f"{args.threads} thread(s), chunk {args.chunk_size}, optimizer {args.optimizer}, median of "
        f"{args.repeats} steps" + (f"; {comm.size} ranks timing at once, rank 0's parts shown" if comm.size > 1
                                   else ""))
    say("# each kernel call timed as the trainer makes it (conv = conv -> max pool -> ReLU in one "
        "kernel); rest = the step minus its parts (Python, zeroing the gradient, the timers)")
    if note := flops_note():
        say(note)
    sgemm, sgemm_flops = sgemm_call()
    comm.barrier()  # the ranks start their timed steps together
    if args.back_to_back:  # the steps one after another, as the trainer runs them; sgemm around them
        calls = [median_time(sgemm, 3)]
        t, executed = step_parts(args.batch, args.threads, args.chunk_size, args.optimizer, args.repeats)
        calls.append(median_time(sgemm, 3))
        sgemm_s, where = statistics.median(calls), "3 calls before and 3 after the steps, which run back to back"
    else:
        t, executed = step_parts(args.batch, args.threads, args.chunk_size, args.optimizer, args.repeats,
                                 between=sgemm)
        sgemm_s, where = statistics.median(t["between"]), ("1 call before each step, after an untimed one; "
                                                      "an untimed step between it and the timed step")
    med = {part: statistics.median(v) for part, v in t.items() if v}
    rate = sgemm_flops / sgemm_s / 1e9
    say(f"# sgemm 1024^3 (scipy OpenBLAS, {where}, median): {rate:.1f} GFLOP/s; "
        "at sgemm = the part's time were it to run at that rate")
    say(f"{'part':>15} {'ms':>8} {'% step':>7} {'GFLOP/s':>8} {'% sgemm':>8} {'at sgemm':>9}")
    bound = 0.0
    for part in STEP_PARTS:
        flops = PART_FLOPS.get(part, 0) * args.batch
        at = flops / (rate * 1e9)
        bound += at if flops else med[part]
        cols = (f"{flops / med[part] / 1e9:8.1f} {100 * flops / med[part] / 1e9 / rate:7.1f}% {1e3 * at:9.3f}"
                if flops and med[part] > 0 else f"{'-':>8} {'-':>8} {'-':>9}")
        say(f"{part:>15} {1e3 * med[part]:8.3f} {100 * med[part] / med['step']:6.1f}% {cols}")
    step_rate = TRAIN_FLOPS * args.batch / med["step"] / 1e9
    say(f"{'step':>15} {1e3 * med['step']:8.3f} {100.0:6.1f}% {step_rate:8.1f} {100 * step_rate / rate:7.1f}% "
        f"{1e3 * bound:9.3f}")
    say(f"# every FLOP at the sgemm rate and the parts without FLOPs as measured: a {1e3 * bound:.3f} ms "
        f"step, {100 * TRAIN_FLOPS * args.batch / bound / 1e9 / rate:.1f}% of sgemm")
    if executed < TRAIN_FLOPS:
        say(f"# this build executed {executed / 1e6:.3f} of the {TRAIN_FLOPS / 1e6:.3f} MFLOP per image on this "
            f"batch (bench.executed_flops): the step at {100 * step_rate / rate * executed / TRAIN_FLOPS:.1f}% "
            "of sgemm in executed FLOPs")
    from .kernels.probes import FMA_LANES

    peak = fma_peak_gflops()
    say(f"# this core's FMA peak (kernels.probes.fma_peak, {FMA_LANES} float32 lanes, in registers, "
        f"after the steps): {peak:.1f} GFLOP/s; the step at {100 * step_rate / peak:.1f}% of it in model "
        f"FLOPs, {100 * step_rate * executed / TRAIN_FLOPS / peak:.1f}% in executed FLOPs; sgemm at "
        f"{100 * rate / peak:.1f}%")
    rows = comm.gather_obj((comm.rank, rate, med["step"]))
    if comm.size > 1 and comm.is_root:
        print_rank_spread(rows, TRAIN_FLOPS * args.batch)


def rank_spread(step_s):
    """What a spread of per-rank step times costs synchronous data parallelism.

    step_s   per-rank compute time of one step, seconds (sequence of floats > 0, one per rank)
    Returns {"median_s", "slowest_s", "synchronous", "balanced"}:
      synchronous  median / slowest: the pace of a step that waits for the slowest rank (as the
                   Allreduce does), relative to the median rank's own pace (1.0 = no loss)
      balanced     (sum of 1 / t_i) / (N / slowest): how much faster the N ranks together would
                   be if each rank's share of the global batch followed its speed
    Raises ValueError if step_s is empty or holds a time <= 0.
    """
    t = np.asarray(step_s, dtype=float)
    if t.size == 0 or not (t > 0).all():
        raise ValueError(f"per-rank step times must be a non-empty list of positive seconds, got {t.tolist()}")
    return {"median_s": float(np.median(t)), "slowest_s": float(t.max()),
            "synchronous": float(np.median(t) / t.max()), "balanced": float((1.0 / t).sum() * t.max() / t.size)}


def print_rank_spread(rows, flops):
    """rows: (rank, sgemm GFLOP/s, step s) per rank; flops: FLOPs of one step."""
    print("# every rank at once: its own sgemm 1024^3 rate and training step (medians over its steps)")
    print(f"{'rank':>5} {'sgemm GFLOP/s':>13} {'step ms':>8} {'GFLOP/s':>8} {'% sgemm':>8}")
    for rank, rate, step in rows:
        print(f"{rank:>5} {rate:>13.1f} {1e3 * step:>8.3f} {flops / step / 1e9:>8.1f} "
              f"{100 * flops / step / 1e9 / rate:>7.1f}%")
    rates, steps = [r for _, r, _ in rows], [t for _, _, t in rows]
    s = rank_spread(steps)
    print(f"# spread: sgemm {min(rates):.1f}-{max(rates):.1f} GFLOP/s over ranks, step {1e3 * min(steps):.3f}"
          f"-{1e3 * s['slowest_s']:.3f} ms (median {1e3 * s['median_s']:.3f})")
    print(f"# a synchronous step waits for the slowest rank: {100 * s['synchronous']:.1f}% of the median "
          f"rank's pace; shares of the batch by speed would be {s['balanced']:.2f}x the synchronous rate "
          "(rank_spread)")


def _kernel_cases(batch, threads):
    """(name, flops, call(kernels_module), outputs) for every kernel at the model's shapes.

    Inputs come from a fixed seed, so two calls build identical cases: one for
    the compiled kernels, one for the reference, compared before timing.
    """
    from . import kernels as K

    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    cases = []
    for name, (cin, cout, hw) in (("conv1", (1, 6, 28)), ("conv2", (6, 16, 14))):
        x, w, b, dout = f32(batch, cin, hw, hw), f32(cout, cin, 5, 5), f32(cout), f32(batch, cout, hw, hw)
        out, dx, dw, db = z(batch, cout, hw, hw), z(batch, cin, hw, hw), z(cout, cin, 5, 5), z(cout)
        work = z(max(K.conv2d_work_size(batch, cin, hw, hw, cout, 5, threads), 1))
        flops = 2 * cout * cin * 25 * hw * hw * batch
        cases.append((f"{name} fwd", flops, lambda k, x=x, w=w, b=b, out=out, work=work:
                      k.conv2d_forward(x, w, b, out, work, threads), [out]))
        cases.append((f"{name} bwd", 2 * flops,
                      lambda k, x=x, w=w, dout=dout, dx=dx, dw=dw, db=db, work=work:
                      (dw.fill(0), db.fill(0), k.conv2d_backward(x, w, dout, dx, dw, db, work, threads)),
                      [dx, dw, db]))
    # The fused conv -> pool -> ReLU kernels as the model calls them (conv1: no dx); the backward
    # pass's pooled output and positions come from the reference, so both sides get the same.
    for name, (cin, cout, hw) in (("conv1", (1, 6, 28)), ("conv2", (6, 16, 14))):
        x, w, b = f32(batch, cin, hw, hw), f32(cout, cin, 5, 5) * 0.2, f32(cout)
        pooled = (batch, cout, hw // 2, hw // 2)
        out, idx, dout = z(*pooled), np.zeros(pooled, np.uint8), f32(*pooled)
        y, yidx = z(*pooled), np.zeros(pooled, np.uint8)
        reference.conv2d_pool_relu_forward(x, w, b, y, yidx, None)
        dx = z(batch, cin, hw, hw) if cin > 1 else None
        dw, db = z(cout, cin, 5, 5), z(cout)
        work = z(max(K.conv2d_pool_relu_work_size(batch, cin, hw, hw, cout, 5, threads), 1))
        flops = 2 * cout * cin * 25 * hw * hw * batch
        cases.append((f"{name}+pool fwd", flops, lambda k, x=x, w=w, b=b, out=out, idx=idx, work=work:
                      k.conv2d_pool_relu_forward(x, w, b, out, idx, work, threads), [out]))
        cases.append((f"{name}+pool bwd", flops * (2 if dx is not None else 1),
                      lambda k, x=x, w=w, y=y, yidx=yidx, dout=dout, dx=dx, dw=dw, db=db, work=work:
                      (dw.fill(0), db.fill(0),
                       k.conv2d_pool_relu_backward(x, w, y, yidx, dout, dx, dw, db, work, threads)),
                      [o for o in (dx, dw, db) if o is not None]))
    x = np.maximum(f32(batch, 16, 14, 14), 0)
    pout, idx, dp = z(batch, 16, 7, 7), np.zeros((batch, 16, 7, 7), np.uint8), z(batch, 16, 14, 14)
    dpool = f32(batch, 16, 7, 7)
    cases.append(("pool2 fwd", 0, lambda k: k.maxpool2_forward(x, pout, idx, threads), [pout, idx]))
    cases.append(("pool2 bwd", 0, lambda k: k.maxpool2_backward(dpool, idx, dp, threads), [dp]))
    xi, w, b, dh = f32(batch, 784), f32(120, 784), f32(120), f32(batch, 120)
    h, dxi, dw, db = z(batch, 120), z(batch, 784), z(120, 784), z(120)
    cases.append(("fc1 fwd", 2 * 784 * 120 * batch, lambda k: k.dense_forward(xi, w, b, h, threads), [h]))
    cases.append(("fc1 bwd", 4 * 784 * 120 * batch,
                  lambda k: (dw.fill(0), db.fill(0), k.dense_backward(xi, w, dh, dxi, dw, db, threads)),
                  [dxi, dw, db]))
    logits, labels, dl = f32(batch, 10), rng.integers(0, 10, batch).astype(np.int32), z(batch, 10)
    cases.append(("softmax_xent", 0, lambda k: k.softmax_xent(logits, labels, dl, 1.0, threads), [dl]))
    return K, cases


def _max_rel_err(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def bench_kernels(args):
    K, cases = _kernel_cases(args.batch, args.threads)
    _, ref_cases = _kernel_cases(args.batch, args.threads)
    peak = sgemm_gflops()
    print(f"# hpclars bench kernels: batch {args.batch}, {args.threads} thread(s), median of "
          f"{args.repeats}; sgemm {peak:.1f} GFLOP/s; each kernel checked against hpclars.reference "
          "first (max relative error shown)")
    if note := flops_note():
        print(note)
    print(f"{'kernel':>15} {'ms':>9} {'img/s':>10} {'GFLOP/s':>8} {'ref ms':>9} {'speed-up':>9} {'rel err':>9}")
    for (name, flops, call, outs), (_, _, ref_call, ref_outs) in zip(cases, ref_cases):
        call(K)
        t_ref = median_time(lambda: ref_call(reference), 1, warmup=0)
        err = max(_max_rel_err(a, b) for a, b in zip(outs, ref_outs))
        if err > 1e-4:
            raise SystemExit(f"hpclars bench: {name} differs from its reference (relative error {err:.2e})")
        t = median_time(lambda: call(K), args.repeats)
        gf = f"{flops / t / 1e9:8.1f}" if flops else f"{'-':>8}"
        print(f"{name:>15} {1e3 * t:9.3f} {args.batch / t:10.0f} {gf} {1e3 * t_ref:9.2f} "
              f"{t_ref / t:8.1f}x {err:9.1e}", flush=True)


def _ddp_worker(rank, size, port, batch, steps, warmup, result):
    """One PyTorch DDP (gloo) rank: the same model, loss and optimizer as ``torch_step``;
    ``warmup`` untimed steps, then ``steps`` timed ones."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    step = torch_step(batch, 1, ddp=True)[0]
    for _ in range(warmup):
        step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dist.barrier()
    if rank == 0:
        result.put(size * batch * steps / (time.perf_counter() - t0))
    dist.destroy_process_group()


def ddp_images_per_s(size, batch, steps, warmup=5):
    """Images/s of PyTorch DDP (gloo, loopback) on ``size`` processes of 1 thread each, over
    ``steps`` steps after ``warmup`` untimed ones."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port on this machine for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, size, port, batch, steps, warmup, result)) for r in range(size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"a PyTorch DDP rank failed (exit codes {[p.exitcode for p in procs]})")
    return result.get()


def _launcher_args(text):
    """``--mpiexec-args``: one shell-quoted string of launcher options, split as a shell would
    (``shlex.split``).  Raises argparse.ArgumentTypeError (one line) if the quoting is broken or
    the options contain ``-n``/``-np``, which hpclars sets itself."""
    import argparse
    import shlex

    try:
        words = tuple(shlex.split(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"cannot split {text!r}: {err}") from None
    clash = [w for w in words if w in ("-n", "-np", "--n", "--np")]
    if clash:
        raise argparse.ArgumentTypeError(f"{clash[0]} is set by hpclars for every rank count; leave it out")
    return words


def _mpiexec():
    """The launcher that belongs to this Python: the ``mpiexec`` beside ``sys.executable`` (the
    ``mpich`` wheel installs one into the virtual environment), else the first on PATH."""
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else "mpiexec"


def trainer_window(ranks, batch, steps, warmup, out, threads=1, chunk_size=256, data_dir="", extra=(),
                   mpiexec_args=()):
    """Run ``hpclars train`` under mpiexec for exactly ``warmup + steps`` optimizer steps and time
    the last ``steps``.

    ranks, threads    MPI ranks and OpenMP threads per rank
    batch             global batch (images per step over all ranks)
    steps, warmup     timed steps, and untimed steps before them (cold caches, page faults,
                      lazy allocation); the run crosses epoch boundaries as needed
                      (--epochs ceil((warmup + steps) / steps per epoch), --max-steps ends it)
    out               the run's log (overwritten)
    mpiexec_args      launcher options put before ``-n`` (e.g. ``("--bind-to", "core")``)
    Returns {"images_per_s", "step_ms", "compute_ms", "allreduce_ms", "optim_ms", "steps"}:
    images/s and ms per step over the timed steps only, read from the log's /evals training
    clock (``train_s``, which leaves evaluations out) at steps ``warmup`` and ``warmup + steps``
    (--eval-every-steps gcd(warmup, steps) puts an evaluation at both); the compute /
    Allreduce / optimizer split is the per-step mean over all the run's steps (the log sums
    it per epoch).  Raises SystemExit with the run's stderr if it fails, and if the log does
    not hold exactly the steps asked for.
    """
    import math
    import subprocess
    import sys

    from .config import TRAIN_SIZE
    from .log import read_log

    mpiexec = _mpiexec()
    total = warmup + steps
    epochs = -(-total // (TRAIN_SIZE // batch))
    cmd = [mpiexec, *mpiexec_args, "-n", str(ranks), sys.executable, "-m", "hpclars", "train",
           "--no-progress", "--overwrite",
           "--batch-size", str(batch), "--threads", str(threads), "--chunk-size", str(chunk_size),
           "--epochs", str(epochs), "--max-steps", str(total), "--eval-every", str(epochs),
           "--eval-every-steps", str(math.gcd(warmup, steps)), "--out", out, *extra]
    cmd += ["--data-dir", data_dir] if data_dir else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"hpclars bench: the {ranks}-rank run failed:\n{proc.stderr}")
    run = read_log(out)
    clock = dict(zip(run.evals["step"].tolist(), run.evals["train_s"].tolist()))
    if int(run.epochs["step"][-1]) != total or warmup not in clock or total not in clock:
        raise SystemExit(f"hpclars bench: {out} ran {int(run.epochs['step'][-1])} steps (evaluated at "
                         f"{sorted(clock)}), expected {total} with evaluations at {warmup} and {total}")
    timed = clock[total] - clock[warmup]
    e = run.epochs
    split = {f"{k}_ms": 1e3 * float(np.nansum(e[f"time_{k}"][1:])) / total for k in ("compute", "allreduce", "optim")}
    return {"images_per_s": steps * batch / timed, "step_ms": 1e3 * timed / steps, "steps": total, **split}


def bench_scaling(args):
    """Weak scaling: hpclars under mpiexec against PyTorch DDP (gloo), same per-rank batch, and
    against the machine's own per-rank rates at the same rank count (hpclars/machine.py).

    With ``--repeats R`` the rank counts are run R times interleaved (1, 2, ..., 1, 2, ...), each
    repeat's efficiency taken against the 1-rank run of the same repeat, so that a drift of the
    machine's speed between runs hits both sides of a ratio alike; the row gives medians over
    the repeats and the efficiencies' min-max.
    """
    import json
    import subprocess
    import sys
    import tempfile

    mpiexec = _mpiexec()
    from .machine import traffic_per_image

    have_torch = not args.no_torch and torch_step(1, 1) is not None
    bytes_per_image = sum(r + w for _, r, w, _ in traffic_per_image())
    repeats = args.repeats
    print(f"# hpclars bench scaling: weak scaling, {args.batch_per_rank} images per rank, 1 thread per rank, "
          f"{args.warmup} untimed + {args.steps} timed steps on both sides; hpclars: the trainer under mpiexec, "
          "timed by its training clock; baseline: PyTorch DDP, gloo over loopback")
    print(f"# launcher: {' '.join([mpiexec, *args.mpiexec_args])} -n N (the probes and the trainer alike)")
    if args.balance_every < 0:
        raise SystemExit(f"hpclars bench scaling: --balance-every must be >= 0 (0: equal shares), got {args.balance_every}")
    balance = ("--balance-every", str(args.balance_every)) if args.balance_every else ()
    if balance:
        print(f"# hpclars re-splits the global batch by each rank's measured speed every {args.balance_every} "
              "steps (--balance-every; hpclars.balance), from equal shares; the DDP baseline keeps equal shares; "
              "'vs slowest' may then exceed 100%: a step no longer waits for the slowest rank's pace")
    if repeats > 1:
        print(f"# {repeats} repeats, the rank counts interleaved; each repeat's efficiency is against its own "
              "1-rank run; img/s, ms and efficiency: medians over the repeats, eff range: their min-max")
    print("# machine: per-rank rates of hpclars bench machine at the same rank count, relative to 1 rank "
          "(fma: in-register peak, sgemm: cache-resident, triad: STREAM memory bandwidth); "
          "vs ceiling = hpclars efficiency / the lowest of the three (medians over ranks); vs slowest = the "
          "same against the slowest rank's rate in the lowest probe, the pace of a synchronous step; "
          "needs GB/s = the memory traffic per rank if every activation went to memory "
          "(hpclars.machine.traffic_per_image: "
          f"{bytes_per_image / 1e3:.0f} KB per image), beside the triad's GB/s per rank")
    print(f"{'ranks':>5} {'hpclars img/s':>14} {'efficiency':>10} " + (f"{'eff range':>13} " if repeats > 1 else "")
          + f"{'compute ms':>10} {'allreduce ms':>12} "
          f"{'fma':>6} {'sgemm':>6} {'triad':>6} {'vs ceiling':>10} {'vs slowest':>11} {'needs GB/s':>10} "
          f"{'triad GB/s':>10} "
          f"{'DDP img/s':>10} {'efficiency':>10} {'ratio':>6}")
    if args.keep_logs:
        os.makedirs(args.keep_logs, exist_ok=True)
    rates, slowest = {}, {}
    for n in args.ranks:
        probe = subprocess.run([mpiexec, *args.mpiexec_args, "-n", str(n), sys.executable, "-m", "hpclars", "bench",
                                "machine", "--json", "--seconds", "0.3"], capture_output=True, text=True)
        if probe.returncode:
            raise SystemExit(f"hpclars bench: the {n}-rank machine probe failed:\n{probe.stderr}")
        got = json.loads(probe.stdout.strip().splitlines()[-1])
        rates[n], slowest[n] = got["median"], got["min"]
    first = args.ranks[0]  # efficiencies are against the first rank count (1 by default)
    windows, ddp_base = {n: [] for n in args.ranks}, None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for n in args.ranks:
                # Kept logs carry the step times that analysis/time_to_target.py predicts from.
                name = f"weak-n{n}.h5" if repeats == 1 else f"weak-n{n}-r{r}.h5"
                out = os.path.join(args.keep_logs or tmp, name)
                windows[n].append(trainer_window(n, n * args.batch_per_rank, args.steps, args.warmup, out,
                                                 data_dir=args.data_dir, mpiexec_args=args.mpiexec_args,
                                                 extra=balance))
                if r < repeats - 1:
                    continue
                # The last repeat: this rank count's row is complete, print it as it comes.
                ws = windows[n]
                ips = float(np.median([w["images_per_s"] for w in ws]))
                effs = [w["images_per_s"] / n / (b["images_per_s"] / first) for w, b in zip(ws, windows[first])]
                eff = float(np.median(effs))
                rel = {p: rates[n][p] / rates[first][p] for p in rates[n]}
                low = min(slowest[n][p] / rates[first][p] for p in rates[n])
                row = (f"{n:>5} {ips:>14.0f} {100 * eff:>9.1f}% "
                       + (f"{f'{100 * min(effs):.1f}-{100 * max(effs):.1f}%':>13} " if repeats > 1 else "")
                       + f"{np.median([w['compute_ms'] for w in ws]):>10.1f} "
                       f"{np.median([w['allreduce_ms'] for w in ws]):>12.2f} "
                       f"{100 * rel['fma_gflops']:>5.0f}% {100 * rel['sgemm_gflops']:>5.0f}% "
                       f"{100 * rel['triad_gbs']:>5.0f}% {100 * eff / min(rel.values()):>9.1f}% "
                       f"{100 * eff / low:>10.1f}% "
                       f"{bytes_per_image * ips / n / 1e9:>10.2f} {rates[n]['triad_gbs']:>10.2f}")
                if have_torch:
                    try:  # a failing baseline must not lose hpclars's row or the rank counts after it
                        d = ddp_images_per_s(n, args.batch_per_rank, args.steps, args.warmup)
                    except (RuntimeError, OSError) as err:
                        print(f"hpclars bench: the {n}-rank PyTorch DDP baseline failed: {err}", file=sys.stderr)
                        row += f" {'failed':>10}"
                    else:
                        ddp_base = d / n if n == first else ddp_base
                        eff_ddp = f"{100 * d / (n * ddp_base):>9.1f}%" if ddp_base else f"{'-':>10}"
                        row += f" {d:>10.0f} {eff_ddp} {ips / d:>6.2f}"
                print(row, flush=True)
    if args.no_torch:
        print("# no PyTorch baseline (--no-torch)")
    elif not have_torch:
        print("# no PyTorch baseline (install torch to get one)")


def bench_hybrid(args):
    """Ranks x threads on a fixed number of cores: the same global batch at every split."""
    import tempfile

    splits = [(r, args.cores // r) for r in range(1, args.cores + 1) if args.cores % r == 0]
    print(f"# hpclars bench hybrid: {args.cores} cores as ranks x threads, global batch {args.batch_size}, "
          f"{args.warmup} untimed + {args.steps} timed steps; step ms from the training clock, the split "
          "(compute / Allreduce / optimizer, ms per step, max over ranks) over all steps")
    print(f"# launcher: {' '.join([_mpiexec(), *args.mpiexec_args])} -n RANKS")
    print(f"{'ranks':>5} {'threads':>7} {'img/s':>9} {'step ms':>8} {'compute':>8} {'allreduce':>9} {'optim':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for r, t in splits:
            if args.batch_size % r:
                print(f"{r:>5} {t:>7}   skipped: batch {args.batch_size} is not divisible by {r} ranks")
                continue
            w = trainer_window(r, args.batch_size, args.steps, args.warmup, os.path.join(tmp, f"h{r}x{t}.h5"),
                               threads=t, chunk_size=args.chunk_size, data_dir=args.data_dir,
                               mpiexec_args=args.mpiexec_args)
            print(f"{r:>5} {t:>7} {w['images_per_s']:>9.0f} {w['step_ms']:>8.1f} {w['compute_ms']:>8.1f} "
                  f"{w['allreduce_ms']:>9.2f} {w['optim_ms']:>6.2f}", flush=True)


def bench_allreduce(args):
    from mpi4py import MPI

    from .comm import Comm, GradientReducer

    comm = Comm()
    grad_size = GradientReducer(comm, LAYOUT.size).size  # the trainer's buffer: gradient and slots
    sizes = sorted(set(args.sizes + [grad_size]))
    step = hpclars_step(args.batch_size // comm.size, args.threads, args.chunk_size)
    t_step = median_time(step, 5)
    if comm.is_root:
        print(f"# hpclars bench allreduce: {comm.size} rank(s), {args.iters} iterations after "
              f"{args.warmup} warm-up, MPI: {MPI.Get_library_version().splitlines()[0].strip()}")
        print(f"# per-step compute (fwd+bwd+optimizer, {args.batch_size // comm.size} images per rank, "
              f"global batch {args.batch_size}): {1e3 * t_step:.3f} ms on rank 0")
        print(f"{'floats':>10} {'bytes':>10} {'min us':>9} {'median us':>10} {'max us':>9} {'% of step':>9}")
    medians = []
    for n in sizes:
        buf = np.ones(n, dtype=np.float32)
        times = []
        for i in range(args.warmup + args.iters):
            comm.barrier()
            t0 = MPI.Wtime()
            comm.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            dt = MPI.Wtime() - t0
            if i >= args.warmup:
                times.append(dt)
        t = np.array(times)
        worst = np.zeros(3)
        comm.comm.Allreduce(np.array([t.min(), np.median(t), t.max()]), worst, op=MPI.MAX)
        medians.append(worst[1])
        if comm.is_root:
            mark = "  <- gradient buffer" if n == grad_size else ""
            frac = 100 * worst[1] / (worst[1] + t_step)
            print(f"{n:>10} {4 * n:>10} {1e6 * worst[0]:9.1f} {1e6 * worst[1]:10.1f} "
                  f"{1e6 * worst[2]:9.1f} {frac:8.1f}%{mark}", flush=True)
    if comm.is_root and comm.size > 1:
        _print_model(sizes, medians, t_step, comm.size)


# Per-message latency of real links, in seconds (low, high), added by the model: what an
# emulation with tc (no netem) cannot add.  RDMA and kernel bypass give InfiniBand its ~1-2 us;
# TCP over Ethernet pays the kernel stack, interrupts and switch hops on every message.
LINK_LATENCY = {
    "100 Gb/s InfiniBand": (1e-6, 2e-6),
    "10 GbE (TCP)": (20e-6, 50e-6),
    "1 GbE (TCP)": (50e-6, 100e-6),
}


def fit_alpha_beta(nbytes, seconds):
    """Least-squares fit of T(n) = alpha + beta * n to measured Allreduce times.

    alpha (s) is the size-independent cost (latency of every round plus software
    overhead), beta (s/byte) the per-byte cost (bandwidth of every round plus the
    reduction arithmetic).  The residuals are relative (weights 1/t), so the sizes,
    which span three decades, count alike and one noisy large message cannot
    swamp the small ones that determine alpha.  Returns (alpha, beta); alpha is
    clipped at 0.
    """
    n, t = np.asarray(nbytes, dtype=float), np.asarray(seconds, dtype=float)
    if len(n) < 2 or np.ptp(n) == 0:
        raise ValueError("the alpha-beta fit needs at least two different message sizes")
    beta, alpha = np.polyfit(n, t, 1, w=1.0 / t)
    return max(float(alpha), 0.0), float(beta)


def latency_rounds(size):
    """Messages on the critical path of one large Allreduce over ``size`` ranks: reduce-scatter
    by recursive halving then allgather by recursive doubling (Rabenseifner; MPICH's choice for
    large messages), 2 ceil(log2 p) rounds, each paying the link latency once."""
    return 2 * int(np.ceil(np.log2(size))) if size > 1 else 0


def _print_model(sizes, medians, t_step, size):
    alpha, beta = fit_alpha_beta([4 * n for n in sizes], medians)
    from .comm import GradientReducer

    grad = 4 * (LAYOUT.size + len(GradientReducer.SLOTS))
    t_fit = alpha + beta * grad
    rounds = latency_rounds(size)
    print(f"# alpha-beta fit over the sizes above: T(n) = alpha + beta n, alpha = {1e6 * alpha:.1f} us, "
          f"beta = {1e9 * beta:.3f} ns/byte ({1e-9 / beta if beta > 0 else float('inf'):.2f} GB/s effective)")
    print(f"# MODELLED, not measured: the fit plus {rounds} latency-bound rounds "
          f"(2 ceil(log2 {size})) x the link latency, for the {grad}-byte gradient buffer")
    print(f"{'link':>22} {'latency us':>11} {'Allreduce us':>13} {'% of step':>10}")
    print(f"{'fit (this network)':>22} {'-':>11} {1e6 * t_fit:13.1f} {100 * t_fit / (t_fit + t_step):9.1f}%")
    for name, (low, high) in LINK_LATENCY.items():
        lo, hi = t_fit + rounds * low, t_fit + rounds * high
        print(f"{name:>22} {f'{1e6 * low:.0f}-{1e6 * high:.0f}':>11} "
              f"{f'{1e6 * lo:.0f}-{1e6 * hi:.0f}':>13} "
              f"{f'{100 * lo / (lo + t_step):.1f}-{100 * hi / (hi + t_step):.1f}%':>10}")


def _ints(text):
    return [int(v) for v in text.split(",") if v]


def _add_launcher_option(parser):
    """``--mpiexec-args`` for the benches that start mpiexec themselves (:data:`LAUNCHERS`)."""
    parser.add_argument("--mpiexec-args", type=_launcher_args, default=(), metavar="ARGS",
                        help="launcher options put before -n, one quoted string, e.g. "
                             "--mpiexec-args='--bind-to core' (Open MPI binds 1-2 ranks to a core each "
                             "unless told otherwise; default: none)")


def add_parser(sub, parser_class):
    p = sub.add_parser("bench", help="benchmarks against a baseline in the same run",
                       description="Speed benchmarks. Never asserted in tests; see BENCHMARKS.md.")
    bsub = p.add_subparsers(dest="bench", required=True, parser_class=parser_class)
    t = bsub.add_parser("train", help="training-step images/s vs sgemm and PyTorch CPU",
                        description="Interleaves, in every repeat, one sgemm 1024^3, the training step, "
                                    "the forward-only evaluation and PyTorch's step (1 rank, a fixed random "
                                    "batch); prints images/s, the step's % of the same repeat's sgemm "
                                    "(median, min-max, best) and the eval/train and hpclars/PyTorch ratios.")
    t.add_argument("--batch-sizes", type=_ints, default=[64, 256, 1024], help="comma-separated (default 64,256,1024)")
    t.add_argument("--threads", type=int, default=C.Config.threads,
                   help=f"threads for hpclars and torch (default {C.Config.threads})")
    t.add_argument("--chunk-size", type=int, default=C.Config.chunk_size,
                   help=f"hpclars chunk size (default {C.Config.chunk_size})")
    t.add_argument("--repeats", type=int, default=7, help="timed repeats; the median is shown (default 7)")
    t.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    t.add_argument("--optimizer", choices=C.OPTIMIZERS, default="sgd",
                   help="hpclars's update, with its built-in hyperparameters (default sgd); "
                        "the PyTorch baseline is SGD with momentum, so it runs only with sgd")
    st = bsub.add_parser("step", help="where one training step's time goes, part by part",
                         description="Times every kernel call of one training step (1 rank), the input "
                                     "conversion and the optimizer, beside the same run's sgemm rate.")
    st.add_argument("--batch", type=int, default=256, help="images per step (default 256)")
    st.add_argument("--threads", type=int, default=C.Config.threads,
                    help=f"OpenMP threads (default {C.Config.threads})")
    st.add_argument("--chunk-size", type=int, default=C.Config.chunk_size,
                    help=f"images per kernel call (default {C.Config.chunk_size})")
    st.add_argument("--optimizer", choices=C.OPTIMIZERS, default="sgd", help="the update (default sgd)")
    st.add_argument("--repeats", type=int, default=21, help="timed steps; medians shown (default 21)")
    st.add_argument("--back-to-back", action="store_true",
                    help="time the steps one after another, as the trainer runs them, with the sgemm "
                         "measured before and after them instead of before each step (default: "
                         "an sgemm before each step)")
    k = bsub.add_parser("kernels", help="each kernel vs its NumPy reference")
    k.add_argument("--batch", type=int, default=256, help="images per call (default 256)")
    k.add_argument("--threads", type=int, default=C.Config.threads,
                   help=f"OpenMP threads (default {C.Config.threads})")
    k.add_argument("--repeats", type=int, default=11, help="timed repeats (default 11)")
    w = bsub.add_parser("scaling", help="weak scaling vs PyTorch DDP (gloo), 1 thread per rank")
    w.add_argument("--ranks", type=_ints, default=[1, 2, 4, 8], help="rank counts (default 1,2,4,8)")
    w.add_argument("--batch-per-rank", type=int, default=256, help="images per rank per step (default 256)")
    w.add_argument("--steps", type=int, default=50, help="timed steps per run (default 50)")
    w.add_argument("--warmup", type=int, default=5, help="untimed steps before them, on both sides (default 5)")
    w.add_argument("--data-dir", default="", help="MNIST directory for the hpclars runs (default: $HPCLARS_DATA, else the per-user cache)")
    w.add_argument("--no-torch", action="store_true", help="skip the PyTorch DDP baseline")
    w.add_argument("--repeats", type=int, default=1,
                   help="run the rank counts this many times, interleaved, and report medians; each "
                        "repeat's efficiency is against its own 1-rank run (default 1)")
    w.add_argument("--balance-every", type=int, default=0, metavar="K",
                   help="run hpclars with --balance-every K: shares of the global batch by each rank's "
                        "measured speed, re-measured every K steps (default 0: equal shares)")
    _add_launcher_option(w)
    w.add_argument("--keep-logs", default="", metavar="DIR",
                   help="keep the hpclars run logs (weak-n<ranks>.h5, weak-n<ranks>-r<repeat>.h5 with "
                        "--repeats) in DIR, e.g. for "
                        "analysis/time_to_target.py --step-times (default: discard them)")
    a = bsub.add_parser("allreduce", help="OSU-style Allreduce latency; run under mpiexec")
    a.add_argument("--sizes", type=_ints, default=[1024, 16384, 65536, 262144, 1048576],
                   help="buffer sizes in floats, comma-separated; the gradient buffer is always added "
                        "(default 1024,16384,65536,262144,1048576)")
    a.add_argument("--iters", type=int, default=200, help="timed iterations per size (default 200)")
    a.add_argument("--warmup", type=int, default=20, help="untimed iterations first (default 20)")
    a.add_argument("--batch-size", type=int, default=1024, help="global batch for the compute figure (default 1024)")
    a.add_argument("--threads", type=int, default=C.Config.threads,
                   help=f"threads per rank for the compute figure (default {C.Config.threads})")
    a.add_argument("--chunk-size", type=int, default=C.Config.chunk_size,
                   help=f"chunk size for the compute figure (default {C.Config.chunk_size})")
    h = bsub.add_parser("hybrid", help="ranks x threads on a fixed core count, same global batch",
                        description="Every split of --cores into ranks x threads (1x16, 2x8, ..., 16x1), the "
                                    "same global batch, timed steps only, with the compute / Allreduce / "
                                    "optimizer split per step.")
    h.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores to split (default: all)")
    h.add_argument("--batch-size", type=int, default=4096, help="global batch (default 4096)")
    h.add_argument("--steps", type=int, default=30, help="timed steps per split (default 30)")
    h.add_argument("--warmup", type=int, default=5, help="untimed steps before them (default 5)")
    h.add_argument("--chunk-size", type=int, default=C.Config.chunk_size,
                   help=f"images per kernel call (default {C.Config.chunk_size})")
    h.add_argument("--data-dir", default="", help="MNIST directory (default: $HPCLARS_DATA, else the per-user cache)")
    _add_launcher_option(h)
    m = bsub.add_parser("machine", help="the machine's own per-rank compute and memory rates; run under mpiexec",
                        description="In every rank at once: in-register FMA peak, cache-resident sgemm and "
                                    "STREAM triad (hpclars/machine.py). Run under mpiexec -n N to see what N "
                                    "concurrent processes each get.")
    m.add_argument("--seconds", type=float, default=0.5, help="seconds per repeat of each probe (default 0.5)")
    m.add_argument("--repeats", type=int, default=3, help="repeats per probe; the median is shown (default 3)")
    m.add_argument("--triad-mib", type=int, default=64, help="MiB per triad array, 3 arrays per rank (default 64)")
    m.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


LAUNCHERS = ("scaling", "hybrid")  # the benches that run mpiexec themselves


def main(args):
    for name in ("repeats", "iters", "threads", "batch", "chunk_size", "batch_size", "steps", "cores"):
        value = getattr(args, name, 1)
        if value < 1:
            raise SystemExit(f"hpclars bench: error: --{name.replace('_', '-')}: must be >= 1, got {value}")
    if getattr(args, "warmup", 0) < 0:
        raise SystemExit(f"hpclars bench: error: --warmup: must be >= 0, got {args.warmup}")
    if args.bench == "machine" and (args.seconds <= 0 or args.triad_mib < 1):
        raise SystemExit("hpclars bench: error: --seconds and --triad-mib must be positive, "
                         f"got {args.seconds} and {args.triad_mib}")
    if args.bench in LAUNCHERS:
        # These start mpiexec themselves, so this process must not be an MPI process: Open MPI's
        # mpiexec, started from a process that ran MPI_Init (a singleton), inherits its OMPI_ /
        # PMIX_ environment and fails with nothing on stderr.  So MPI is not initialised here
        # (before anything imports mpi4py.MPI); MPI_Get_library_version needs no MPI_Init
        # (MPI-3.1, section 8.1.1).
        import mpi4py

        mpi4py.rc.initialize = mpi4py.rc.finalize = False
        is_root = True
    else:
        from .comm import Comm

        is_root = Comm().is_root
    from .machine import bench_machine
    from .provenance import blas_override_note, describe, environment

    if is_root:  # the code and the machine, as every run log records them
        print(describe(environment()), flush=True)
        if note := blas_override_note():
            print(note, flush=True)
    {"train": bench_train, "step": bench_step, "kernels": bench_kernels, "allreduce": bench_allreduce,
     "scaling": bench_scaling, "machine": bench_machine, "hybrid": bench_hybrid}[args.bench](args)
    return 0


__all__ = ["add_parser", "main", "median_time", "sgemm_gflops", "fma_peak_gflops", "TRAIN_FLOPS", "executed_flops", "fit_alpha_beta",
           "latency_rounds", "LINK_LATENCY"]
