"""Build hpclars: the Cython sources in kernels/ become the hpclars.kernels.* modules.

Compiler directives and flags are set here, once.  OpenMP is used for the
``nthreads`` argument of the kernels; BLAS comes from scipy.linalg.cython_blas.
Set HPCLARS_NO_NATIVE=1 to build without -march=native (for a login node whose
CPU differs from the compute nodes': the portable im2col + sgemm path), or
HPCLARS_MARCH to a GCC -march value to build for that CPU instead of this one
(``znver3`` or ``haswell``: the AVX2 path; ``skylake-avx512``: the AVX-512 path).
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["conv", "pool", "dense", "elementwise", "probes", "update"]
# The optimizer update rounds every multiply and add on its own, as NumPy does (kernels/update.pyx).
NO_CONTRACT = {"update"}

# Cores this process may use (sched_getaffinity is Linux's; elsewhere every core).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

# -fno-wrapv undoes the -fwrapv of Python's own CFLAGS (CPython needs wrapping signed integers;
# the kernels do not): with it GCC must keep the kernels' int indices able to wrap, and a
# training step ran 1.065x slower (Xeon, jobs/ab_builds.py in alternation, 2026-11-30).
compile_args = ["-O3", "-fopenmp", "-ffp-contract=fast", "-fno-wrapv"]
if os.environ.get("HPCLARS_NO_NATIVE", "0") in ("", "0"):
    compile_args.append(f"-march={os.environ.get('HPCLARS_MARCH') or 'native'}")

extensions = [
    Extension(
        f"hpclars.kernels.{name}",
        [f"kernels/{name}.pyx"],
        depends=["kernels/_checks.pxi", "kernels/hpc_pool.h"],
        include_dirs=[np.get_include(), "kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + (["-ffp-contract=off"] if name in NO_CONTRACT else []),
        extra_link_args=["-fopenmp"],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
        },
    ),
    # The extensions compile in parallel (build_ext --parallel), one per available core.
    options={"build_ext": {"parallel": min(CORES, len(KERNELS))}},
)
