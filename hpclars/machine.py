"""The machine's own ceiling: per-process compute and memory rates at N concurrent ranks.

:func:`measure` runs the probes in every rank; :func:`bench_machine` is ``hpclars bench
machine``; the probe kernels' Cython source is ``kernels/probes.pyx`` (built into
``hpclars.kernels.probes``).

``hpclars bench machine`` (run under ``mpiexec -n N``) measures, in every rank at the same
time, three probes that involve no hpclars code path:

- ``fma_gflops``: in-register fused multiply-adds (``hpclars.kernels.probes.fma_peak``),
  the core's arithmetic peak under this load: it falls when clocks drop as more cores work.
- ``sgemm_gflops``: a cache-resident single-threaded sgemm (n = 128, 192 KiB of operands,
  inside any L2) through the same BLAS the kernels call (``scipy.linalg.blas``): the rate a
  BLAS-bound kernel can reach on one core.
- ``triad_gbs``: the STREAM triad (McCalpin 1995) a = b + s * c on arrays far larger than
  the caches (3 x 64 MiB per rank by default), counting 12 bytes per element as STREAM
  does: the memory bandwidth one process gets while N share the socket.

Each probe runs for ``seconds`` after a barrier, repeated ``repeats`` times; the median per
rank is kept.  ``hpclars bench scaling`` runs this at every rank count beside the trainer,
so a weak-scaling loss can be set against what the machine itself loses: if the probes
hold flat while hpclars's per-rank compute time grows, the loss is hpclars's; if the
probes fall as much, it is the machine's.

Deliberately left out: pinning (the launcher's binding applies to both the probes and the
trainer, which is the point: same process counts, same bindings).
"""

import json
import statistics
import time

import numpy as np

PROBES = ("fma_gflops", "sgemm_gflops", "triad_gbs")
TRIAD_BYTES_PER_ELEMENT = 12  # STREAM's count for a = b + s * c in float32: read b, c; write a


def _rate(fn, work, seconds, repeats, comm):
    """Median over ``repeats`` of work / seconds-per-call; every repeat starts after a barrier."""
    fn()  # warm-up: page faults, lazy allocation, BLAS start-up
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds / 4:
        fn()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    n = max(1, int(seconds / per_call))
    rates = []
    for _ in range(repeats):
        comm.barrier()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(work * n / (time.perf_counter() - t0))
    return statistics.median(rates)


def measure(comm, seconds=0.5, repeats=3, triad_floats=1 << 24, sgemm_n=128):
    """Run the three probes in every rank at once.

    comm          an mpi4py communicator (all its ranks take part)
    seconds       wall seconds per repeat of each probe (> 0)
    repeats       repeats per probe (>= 1); the median is returned
    triad_floats  elements per triad array (each float32; 3 arrays per rank)
    sgemm_n       size of the square cache-resident sgemm
    Returns this rank's dict {probe name: rate}, GFLOP/s for the first two, GB/s (1e9 bytes/s)
    for the triad.  Raises ValueError for a non-positive size, time or repeat count.
    """
    from scipy.linalg.blas import sgemm
    from threadpoolctl import threadpool_limits

    from .kernels import probes

    if seconds <= 0 or repeats < 1 or triad_floats < 1 or sgemm_n < 1:
        raise ValueError(f"measure needs seconds > 0, repeats >= 1 and positive sizes, got seconds={seconds}, "
                         f"repeats={repeats}, triad_floats={triad_floats}, sgemm_n={sgemm_n}")
    rounds = 1 << 16
    out = {"fma_gflops": _rate(lambda: probes.fma_peak(rounds), rounds * probes.FMA_FLOPS_PER_ROUND / 1e9,
                               seconds, repeats, comm)}
    rng = np.random.default_rng(comm.Get_rank())
    a, b = (np.asfortranarray(rng.standard_normal((sgemm_n, sgemm_n), dtype=np.float32)) for _ in range(2))
    with threadpool_limits(limits=1):
        out["sgemm_gflops"] = _rate(lambda: sgemm(1.0, a, b), 2 * sgemm_n ** 3 / 1e9, seconds, repeats, comm)
    x, y, z = (np.full(triad_floats, v, np.float32) for v in (0.0, 1.0, 2.0))
    out["triad_gbs"] = _rate(lambda: probes.triad(x, y, z, 3.0), TRIAD_BYTES_PER_ELEMENT * triad_floats / 1e9,
                             seconds, repeats, comm)
    return out


# Per image, in float32 elements: the activations of hpclars.model.LeNet (index maps are uint8).
_X, _P1, _P2, _H1, _H2, _Z = 784, 6 * 14 * 14, 16 * 7 * 7, 120, 84, 10


def traffic_per_image():
    """The training step's memory traffic and arithmetic per image, kernel by kernel.

    Returns a list of (kernel, bytes read, bytes written, FLOPs) in the order the trainer
    calls them (hpclars.model.LeNet: forward, loss, backward; conv1 computes no input
    gradient; conv, pool and ReLU fused as hpclars.kernels.conv2d_pool_relu_*, whose pre-pool
    activations stay in cache, image by image).  Bytes count every activation a kernel reads
    and writes once, at 4 bytes per float32 and 1 per max-pool index: the traffic when a
    chunk's activations do not stay in cache between kernels (chunk 256: pool1's output
    alone is 1.2 MB), an upper bound otherwise.  Weights are left out (read once per chunk: under 2 KB per image at
    chunk 256).  FLOPs count a multiply-add as 2, as :data:`hpclars.bench.TRAIN_FLOPS`.
    Divide the FLOPs by the bytes for the arithmetic intensity of a roofline (Williams,
    Waterman and Patterson, "Roofline", CACM 52(4), 2009).
    """
    f = 4  # bytes per float32
    conv1, conv2 = 2 * 6 * (1 * 25) * (28 * 28), 2 * 16 * (6 * 25) * (14 * 14)  # Cout x CKK x HW
    fc1, fc2, fc3 = 2 * 784 * 120, 2 * 120 * 84, 2 * 84 * 10
    return [
        ("load (uint8 -> float)", _X, f * _X, 0),
        ("conv1 + pool1 + relu1 forward", f * _X, f * _P1 + _P1, conv1),
        ("conv2 + pool2 + relu2 forward", f * _P1, f * _P2 + _P2, conv2),
        ("fc1-3 + relu forward", f * (_P2 + 2 * _H1 + 2 * _H2), f * (2 * _H1 + 2 * _H2 + _Z), fc1 + fc2 + fc3),
        ("softmax xent", f * _Z, f * _Z, 0),
        ("fc3-1 + relu backward", f * (_Z + 3 * _H2 + 3 * _H1 + _P2 + _H2 + _H1),
         f * (2 * _H2 + 2 * _H1 + _P2), 2 * (fc1 + fc2 + fc3)),
        ("conv2 backward (relu, pool, dw, db, dx)", f * (_P1 + 2 * _P2) + _P2, f * _P1, 2 * conv2),
        ("conv1 backward (relu, pool, dw, db)", f * (_X + 2 * _P1) + _P1, 0, conv1),
    ]


def summary(per_rank):
    """{probe: (median over ranks, min over ranks)} from a list of :func:`measure` dicts."""
    return {p: (statistics.median(r[p] for r in per_rank), min(r[p] for r in per_rank)) for p in PROBES}


def bench_machine(args):
    """``hpclars bench machine``: the probes in every rank; rank 0 prints a table or JSON."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    mine = measure(comm, seconds=args.seconds, repeats=args.repeats, triad_floats=args.triad_mib << 18)
    per_rank = comm.gather(mine, root=0)
    if comm.Get_rank():
        return
    s = summary(per_rank)
    if args.json:
        print(json.dumps({"ranks": comm.Get_size(), "per_rank": per_rank,
                          "median": {p: v[0] for p, v in s.items()}, "min": {p: v[1] for p, v in s.items()}}))
        return
    print(f"# hpclars bench machine: {comm.Get_size()} concurrent rank(s), each probe {args.repeats} x "
          f"{args.seconds} s; per rank: median [min] over ranks")
    for p in PROBES:
        unit = "GB/s" if p.endswith("gbs") else "GFLOP/s"
        print(f"{p:>14} {s[p][0]:>10.2f} [{s[p][1]:.2f}] {unit}")


__all__ = ["PROBES", "measure", "summary", "bench_machine", "TRIAD_BYTES_PER_ELEMENT", "traffic_per_image"]
