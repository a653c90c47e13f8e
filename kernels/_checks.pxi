# Argument checks shared by every kernel module (textually included): cheap, once per
# call, before any hot loop; each error names the argument. Needs `numpy as np` imported.

cdef object _checked(object a, str name, object dtype, tuple shape, bint out=False):
    """Return `a` after checking it is a C-contiguous ndarray of `dtype` and `shape`."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if out and not a.flags.writeable:
        raise ValueError(f"{name} is an output and must be writeable")
    return a


cdef _check_threads(int nthreads):
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")
