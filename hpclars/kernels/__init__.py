"""Compiled float32 kernels of the LeNet model (Cython sources in ../../kernels/).

The signatures and buffer conventions are those of :mod:`hpclars.reference`,
which is the NumPy oracle for every function exported here.

``KERNEL_PATH`` names the code path this build compiled: ``"avx512"`` (direct
convolution and pooling with AVX-512 intrinsics, the ``-march=native`` build on a
CPU with AVX-512F/BW/VL), ``"avx2"`` (the same direct convolution and pooling with
8-lane AVX2 + FMA intrinsics, on a CPU with those and without AVX-512: AMD Zen 1-3,
Intel Haswell to Comet Lake and AVX-512-less later ones; conv1's fused passes take 8 images
at a time there, 16 on AVX-512) or
``"portable"`` (im2col + BLAS sgemm convolution and plain Cython pooling:
``HPCLARS_NO_NATIVE=1``, or a CPU with neither).  A build whose convolution and pooling
took different paths reports ``"mixed"``.  ``CONV_POOL_FUSED`` says whether
``conv2d_pool_relu_*`` keep each image's pre-pool activations in cache (direct
convolution and vector pooling) or run the separate kernels over the batch.
``CONV_POOLED_DW`` says whether ``conv2d_pool_relu_backward`` sums the weight gradient of an
input with more than one channel (LeNet's conv2; any count on the AVX2 build, 2 to 6 on
AVX-512) over the pooling windows with a nonzero gradient only: fewer FLOPs than the dense
computation that :mod:`hpclars.bench` counts.  ``CONV_POOLED_DW1``: the same for one input channel (LeNet's
conv1; the AVX2 build).  ``CONV_POOLED_DX``: its dx too (14-row inputs such as LeNet's conv2 on
the AVX2 build, 2 to 6 input channels on AVX-512).  ``CONV_WINOGRAD``: whether
``conv2d_pool_relu_forward`` without pooling positions (``idx`` None, the evaluation's forward
pass) takes LeNet's conv2 by Winograd F(2x2, 5x5), equal to rounding (the AVX-512 and AVX2 builds;
an inf in a pooling window's input may make that window NaN there).
"""

import importlib.machinery
import importlib.util
import os
import sys

_BLAS = "scipy.linalg.cython_blas"


def _borrow_cython_blas():
    """Put SciPy's ``scipy.linalg.cython_blas`` (the BLAS whose sgemm the kernels cimport) in
    ``sys.modules``, loaded from its file, without running ``scipy.linalg``'s ``__init__``:
    that package import costs 0.2-0.4 s in every process (every rank of every run, every
    test's subprocess) and the kernels use none of it.  Returns True if it did (the caller
    removes the entry once the kernels hold their function pointers, so that a later ``import
    scipy.linalg`` loads the package and its submodule as usual); False, leaving the normal
    import to run, if SciPy's linalg is already imported or the file is not where SciPy keeps
    it."""
    if _BLAS in sys.modules or "scipy.linalg" in sys.modules:
        return False
    try:
        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        paths = [os.path.join(folder, "cython_blas" + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        path = next((p for p in paths if os.path.exists(p)), None)
        if path is None:
            return False
        spec = importlib.util.spec_from_file_location(_BLAS, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # any surprise: the normal import below
        return False
    sys.modules[_BLAS] = module
    return True


_borrowed = _borrow_cython_blas()
try:
    from .conv import ISA as _CONV_ISA
    from .conv import FUSED as CONV_POOL_FUSED
    from .conv import POOLED_DW as CONV_POOLED_DW
    from .conv import POOLED_DW1 as CONV_POOLED_DW1
    from .conv import POOLED_DX as CONV_POOLED_DX
    from .conv import WINOGRAD as CONV_WINOGRAD
    from .conv import conv2d_backward, conv2d_forward, conv2d_work_size
    from .conv import conv2d_pool_relu_backward, conv2d_pool_relu_forward, conv2d_pool_relu_work_size
    from .dense import dense_backward, dense_forward
    from .elementwise import relu_backward, relu_forward, scale_u8, softmax_xent
    from .pool import ISA as _POOL_ISA
    from .pool import maxpool2_backward, maxpool2_forward
    from .update import momentum_update, momentum_update_segments, sumsq, sumsq_segments
except ImportError as exc:  # pragma: no cover - depends on how hpclars was installed
    raise ImportError(
        f"hpclars.kernels is not compiled ({exc}). hpclars is being imported from "
        f"{os.path.dirname(os.path.dirname(__file__))}; install it with "
        "`pip install -e .` from the repository root, or run from another directory "
        "after `pip install .`"
    ) from exc
finally:
    if _borrowed:
        del sys.modules[_BLAS]

KERNEL_PATH = _CONV_ISA if _CONV_ISA == _POOL_ISA else "mixed"

__all__ = [
    "KERNEL_PATH",
    "conv2d_forward", "conv2d_backward", "conv2d_work_size",
    "conv2d_pool_relu_forward", "conv2d_pool_relu_backward", "conv2d_pool_relu_work_size",
    "CONV_POOL_FUSED", "CONV_POOLED_DW", "CONV_POOLED_DW1", "CONV_POOLED_DX", "CONV_WINOGRAD",
    "maxpool2_forward", "maxpool2_backward",
    "relu_forward", "relu_backward",
    "dense_forward", "dense_backward",
    "softmax_xent", "scale_u8",
    "sumsq", "momentum_update", "sumsq_segments", "momentum_update_segments",
]
