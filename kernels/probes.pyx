"""Machine probes: what one core delivers, to compare hpclars's kernels against.

Not part of the model.  ``hpclars bench machine`` runs them in every rank at once, so
that per-process rates at 1..N concurrent processes show what the machine itself loses
when its cores work together (clock drops under load, shared memory bandwidth,
neighbours), independently of hpclars:

- ``fma_peak``: an in-register loop of independent fused multiply-adds on vectors one
  register wide (GCC vector extensions: 16, 8 or 4 floats as the build targets AVX-512, AVX2
  or SSE): the core's arithmetic ceiling, no memory traffic at all.
- ``triad``: the STREAM triad a = b + s * c (McCalpin, "Memory Bandwidth and Machine
  Balance in Current High Performance Computers", IEEE TCCA Newsletter, 1995), on arrays
  far larger than the caches: the memory-bandwidth ceiling.  STREAM counts 3 arrays of
  bytes moved per element (2 reads, 1 write); so does ``hpclars bench machine``.
"""

import numpy as np

from cython.parallel cimport prange


include "_checks.pxi"


cdef extern from *:
    """
    /* One register's width for the build's ISA: a wider GCC vector type than the registers is
       split by the compiler into shuffles and stack traffic (16-float vectors on an AVX2 build
       ran this loop at 7 GFLOP/s instead of ~100, AMD EPYC, 2026-12-01). */
    #if defined(__AVX512F__)
    #define HPC_PROBE_LANES 16
    #elif defined(__AVX__)
    #define HPC_PROBE_LANES 8
    #else
    #define HPC_PROBE_LANES 4
    #endif
    /* Independent chains: at least FMA units x FMA latency (2 x 4 on current x86 cores) in flight,
       and with m and a within 16 registers (SSE and AVX2 have 16). */
    #define HPC_PROBE_CHAINS 12
    typedef float hpc_vprobe __attribute__((vector_size(4 * HPC_PROBE_LANES)));

    /* HPC_PROBE_CHAINS independent chains of acc = acc * m + a over HPC_PROBE_LANES lanes:
       2 * HPC_PROBE_LANES * HPC_PROBE_CHAINS flops per round. */
    static float hpc_fma_rounds(long rounds, float m, float a) {
        hpc_vprobe acc[HPC_PROBE_CHAINS], mv, av;
        for (int j = 0; j < HPC_PROBE_LANES; j++) { mv[j] = m; av[j] = a; }
        for (int i = 0; i < HPC_PROBE_CHAINS; i++)
            for (int j = 0; j < HPC_PROBE_LANES; j++) acc[i][j] = (float)(i + j);
        /* m and a are run-time values and floating point is not reassociated (no
           -ffast-math), so the compiler must run every round. */
        for (long r = 0; r < rounds; r++)
            for (int i = 0; i < HPC_PROBE_CHAINS; i++) acc[i] = acc[i] * mv + av;
        float s = 0.0f;
        for (int i = 0; i < HPC_PROBE_CHAINS; i++)
            for (int j = 0; j < HPC_PROBE_LANES; j++) s += acc[i][j];
        return s;
    }
    """
    enum: HPC_PROBE_LANES, HPC_PROBE_CHAINS
    float hpc_fma_rounds(long rounds, float m, float a) nogil


# fma_peak's float32 lanes per vector (one register of the build's ISA) and independent chains.
FMA_LANES = HPC_PROBE_LANES
FMA_CHAINS = HPC_PROBE_CHAINS
FMA_FLOPS_PER_ROUND = 2 * FMA_LANES * FMA_CHAINS


def fma_peak(long rounds):
    """Run ``rounds`` rounds of independent FMAs, one register wide (16, 8 or 4 float32 lanes for
    an AVX-512, AVX or SSE build) in 12 chains: ``FMA_FLOPS_PER_ROUND`` flops each.

    rounds   number of rounds, >= 0
    Returns the sum of the accumulators (a float; returned so the loop cannot be removed).
    Raises ValueError for negative ``rounds``.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    cdef float s
    with nogil:
        s = hpc_fma_rounds(rounds, 0.999999, 1e-6)
    return s


def triad(a, b, c, float s, int nthreads=1):
    """STREAM triad: a = b + s * c, elementwise.

    a    (n,)   OUT  float32
    b, c (n,)   IN   float32
    s           scalar
    Raises ValueError naming the argument for a wrong dtype, shape or layout.
    """
    _check_threads(nthreads)
    _checked(a, "a", np.float32, None, out=True)
    if a.ndim != 1:
        raise ValueError(f"a must be 1-D, got shape {a.shape}")
    _checked(b, "b", np.float32, a.shape)
    _checked(c, "c", np.float32, a.shape)
    cdef float[::1] av = a
    cdef const float[::1] bv = b
    cdef const float[::1] cv = c
    cdef Py_ssize_t i
    for i in prange(av.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        av[i] = bv[i] + s * cv[i]
