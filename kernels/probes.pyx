"""Machine probes: what one core delivers, to compare hpclars's kernels against.

Not part of the model.  ``hpclars bench machine`` runs them in every rank at once, so
that per-process rates at 1..N concurrent processes show what the machine itself loses
when its cores work together (clock drops under load, shared memory bandwidth,
neighbours), independently of hpclars:

- ``fma_peak``: an in-register loop of independent fused multiply-adds on 16-float
  vectors (GCC vector extensions; the compiler maps them to AVX-512, AVX2 or SSE as the
  build targets): the core's arithmetic ceiling, no memory traffic at all.
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
    typedef float hpc_v16 __attribute__((vector_size(64)));

    /* 8 independent chains of acc = acc * m + a over 16 lanes: 2 * 16 * 8 flops per round. */
    static float hpc_fma_rounds(long rounds, float m, float a) {
        hpc_v16 acc[8], mv, av;
        for (int j = 0; j < 16; j++) { mv[j] = m; av[j] = a; }
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 16; j++) acc[i][j] = (float)(i + j);
        /* m and a are run-time values and floating point is not reassociated (no
           -ffast-math), so the compiler must run every round. */
        for (long r = 0; r < rounds; r++)
            for (int i = 0; i < 8; i++) acc[i] = acc[i] * mv + av;
        float s = 0.0f;
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 16; j++) s += acc[i][j];
        return s;
    }
    """
    float hpc_fma_rounds(long rounds, float m, float a) nogil


FMA_FLOPS_PER_ROUND = 2 * 16 * 8


def fma_peak(long rounds):
    """Run ``rounds`` rounds of 8 x 16 independent FMAs (``FMA_FLOPS_PER_ROUND`` flops each).

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
