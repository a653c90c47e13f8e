"""hpclars: an HPC benchmark suite for large-batch training.

LeNet-5 on MNIST with SGD, LARS and LAMB, data-parallel over MPI, with Cython
kernels and HDF5 logs.  See README.md for the tour.
"""

import os as _os

# The kernels call BLAS from inside their own (OpenMP) threads and choose their
# thread count explicitly, so BLAS must not start threads of its own.  These
# variables only take effect when hpclars is imported before NumPy/SciPy load
# their BLAS; the trainer caps the pools again at run time with threadpoolctl.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
