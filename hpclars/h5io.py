"""HDF5 file plumbing shared by the run log and the checkpoint: atomic writes, guarded reads.

:func:`write_atomically` writes a whole file under a temporary name, flushes, fsyncs and renames
it over the old one (then fsyncs the directory), so a process killed at any moment leaves
either the previous or the new complete file.  :func:`read_hdf5` opens a file read-only and
turns anything that goes wrong into one line naming the file.

Deliberately left out: what is in the files (:mod:`hpclars.log`, :mod:`hpclars.checkpoint`).
"""

import os

import h5py


def write_atomically(path, fill):
    """Create ``path`` as a new HDF5 file filled by ``fill(h5file)``, atomically.

    Raises OSError (from h5py or the file system) if the directory is not writable; the
    temporary file is removed whatever happens.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with h5py.File(tmp, "w", locking=False) as f:
            fill(f)
            f.flush()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_hdf5(path, read, error, kind):
    """``read(h5file, path)`` on ``path`` opened read-only without HDF5 file locking.

    Anything that goes wrong becomes one ``error`` (a ValueError subclass) naming the
    file: missing, not HDF5 or truncated, or content ``read`` could not find; errors
    ``read`` raises itself pass unchanged.  ``kind`` names the file type in messages.
    """
    path = os.fspath(path)
    try:
        with h5py.File(path, "r", locking=False) as f:
            return read(f, path)
    except error:
        raise
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise error(f"{path}: not a readable hpclars {kind} ({one_line(exc)})") from None


def one_line(exc):
    """An exception's message on one line (its type name if it has none)."""
    return " ".join((str(exc) or type(exc).__name__).split())
