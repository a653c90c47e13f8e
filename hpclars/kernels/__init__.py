"""Compiled float32 kernels of the LeNet model (Cython sources in ../../kernels/).

The signatures and buffer conventions are those of :mod:`hpclars.reference`,
which is the NumPy oracle for every function exported here.
"""

try:
    from .conv import KERNEL_PATH, conv2d_backward, conv2d_forward, conv2d_work_size
    from .dense import dense_backward, dense_forward
    from .elementwise import relu_backward, relu_forward, softmax_xent
    from .pool import maxpool2_backward, maxpool2_forward
except ImportError as exc:  # pragma: no cover - depends on how hpclars was installed
    import os

    raise ImportError(
        f"hpclars.kernels is not compiled ({exc}). hpclars is being imported from "
        f"{os.path.dirname(os.path.dirname(__file__))}; install it with "
        "`pip install -e .` from the repository root, or run from another directory "
        "after `pip install .`"
    ) from exc

__all__ = [
    "KERNEL_PATH",
    "conv2d_forward", "conv2d_backward", "conv2d_work_size",
    "maxpool2_forward", "maxpool2_backward",
    "relu_forward", "relu_backward",
    "dense_forward", "dense_backward",
    "softmax_xent",
]
