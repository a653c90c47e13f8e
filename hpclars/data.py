"""MNIST for hpclars: find, verify, read and (if asked) download the four IDX files.

This is the first stage of the pipeline (data -> model -> optim -> comm -> train -> log).
It turns a directory of MNIST files into four NumPy arrays and nothing else:

- :func:`resolve_data_dir` picks the directory: ``--data-dir``, else ``$HPCLARS_DATA``, else a
  per-user cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``hpclars/mnist``).
- :func:`load_mnist` reads each file as ``name`` (raw) or ``name.gz`` (whichever exists; raw
  wins if both do), checks the IDX structure, checks the *decompressed* content against the
  size and MD5 in :data:`FILES`, and returns a frozen :class:`MNIST`.  Content, not container,
  is checked because the same data exists in differently compressed ``.gz`` files (the shared
  copy was recompressed with ``gzip -9 -n``).
- :func:`download_mnist` fetches missing files from public mirrors.  A downloaded ``.gz`` must
  match the MD5 the mirrors publish for it (``gz_md5`` can name other expected MD5s, for a
  mirror that serves a recompressed copy, as the tests' local server does) *and* its
  decompressed content must match :data:`FILES`; the content check cannot be switched off.
- :func:`load_data` gives every MPI rank the same data: rank 0 loads it, then broadcasts it
  through the :class:`hpclars.comm.Comm` it is handed (this module never imports MPI).
- :func:`to_float` scales a uint8 batch into a caller-owned float32 buffer.

Every problem with a file is a :class:`DataError` with one line: the path, what is wrong, and
what to do about it.

Deliberately left out: augmentation, shuffling, batching and sharding across ranks (the
training loop owns those); MPI itself (:func:`load_data` uses the communicator it is given;
downloads are atomic, so concurrent ones would be safe but wasteful); other data sets; any
cache outside the chosen data directory.
"""

import gzip
import hashlib
import http.client
import math
import os
import pathlib
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass

import numpy as np

# name -> (decompressed byte size, MD5 of decompressed content, MD5 of the original mirror .gz)
FILES = {
    "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb",
                                "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624",
                                "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea",
                               "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637",
                               "ec29112dd5afa0611ce80d1b7f02629c"),
}

# Tried in order; each serves ``<mirror><name>.gz``.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

ENV_VAR = "HPCLARS_DATA"
NUM_CLASSES = 10
# The pixel scale: uint8 pixels times PIXEL_SCALE (rounded to the float dtype) lie in [0, 1]
# (to_float; the model's evaluation passes it to the first convolution with the raw pixels).
PIXEL_SCALE = 1.0 / 255.0
_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}
_MAGIC_LABELS = 0x00000801  # unsigned byte, 1 dimension
_MAGIC_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_GZIP_MAGIC = b"\x1f\x8b"
_TIMEOUT_S = 30.0
_CHUNK = 1 << 20

_HINT_BAD = "delete it to re-download, or point --data-dir or HPCLARS_DATA at a good copy"
_HINT_MISSING = ("point --data-dir or HPCLARS_DATA at a directory that has the four MNIST "
                 "files, or set neither to download them into the per-user cache")


class DataError(Exception):
    """A data file or directory is missing, unreadable, malformed or not the expected content."""


@dataclass(frozen=True)
class MNIST:
    """The four MNIST arrays, read-only (they may be shared by every consumer of the data set)."""

    train_images: np.ndarray  # uint8 (60000, 28, 28), C-contiguous
    train_labels: np.ndarray  # int32 (60000,)
    test_images: np.ndarray   # uint8 (10000, 28, 28), C-contiguous
    test_labels: np.ndarray   # int32 (10000,)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The MNIST directory: ``data_dir``, else ``$HPCLARS_DATA``, else the per-user cache.

    The cache is ``$XDG_CACHE_HOME/hpclars/mnist`` (``~/.cache`` when the variable is unset,
    empty or relative, as the XDG spec asks).  Nothing is created here.
    """
    if data_dir is not None and str(data_dir) != "":
        return pathlib.Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = pathlib.Path(xdg) if xdg and os.path.isabs(xdg) else pathlib.Path.home() / ".cache"
    return cache / "hpclars" / "mnist"


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = True,
               verify: bool = True) -> MNIST:
    """Load MNIST from :func:`resolve_data_dir` ``(data_dir)``.

    Missing files are downloaded into that directory when ``download`` is true (creating it if
    needed), otherwise they are an error.  The IDX structure, the shapes and the label range
    are always checked; ``verify`` adds the size and MD5 of the decompressed content (about
    0.1 s), which is what catches a flipped byte.
    """
    root = resolve_data_dir(data_dir)
    missing = [name for name in FILES if _find(root, name) is None]
    if missing:
        if not download:
            what = "directory does not exist" if not root.exists() else (
                f"missing (neither {missing[0]} nor {missing[0]}.gz"
                + (f"; {len(missing) - 1} more MNIST files missing" if len(missing) > 1 else "")
                + ")")
            where = root if not root.exists() else root / missing[0]
            raise DataError(f"{where}: {what}; {_HINT_MISSING}")
        download_mnist(root)

    arrays = {}
    for name in FILES:
        path = _find(root, name)
        if path is None:  # removed between the download and now
            raise DataError(f"{root / name}: missing after download; {_HINT_MISSING}")
        buf = _read_bytes(path)
        arr = _parse_idx(buf, path)
        if arr.shape != _SHAPES[name]:
            raise DataError(f"{path}: IDX shape {arr.shape}, expected {_SHAPES[name]} for "
                            f"{name}; {_HINT_BAD}")
        if verify:
            problem = _content_problem(name, buf)
            if problem:
                raise DataError(f"{path}: {problem}; {_HINT_BAD}")
        if arr.ndim == 1:
            if arr.size and int(arr.max()) >= NUM_CLASSES:
                raise DataError(f"{path}: label {int(arr.max())} out of range 0..{NUM_CLASSES - 1}"
                                f"; {_HINT_BAD}")
            arr = arr.astype(np.int32)
        arr.flags.writeable = False
        arrays[name] = arr

    return MNIST(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"],
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"],
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an unsigned-byte IDX file (labels 0x801 or images 0x803), gzip-compressed or raw.

    Compression is detected from the first two bytes (1f 8b), not from the file name.  Returns
    a read-only uint8 array shaped as the header says.  Raises :class:`DataError` for a missing
    or unreadable file, bad gzip data, a bad magic number, or a length that does not match the
    header.
    """
    path = pathlib.Path(path)
    return _parse_idx(_read_bytes(path), path)


def download_mnist(data_dir: str | os.PathLike, mirrors=MIRRORS, gz_md5: dict | None = None,
                   timeout: float = _TIMEOUT_S) -> None:
    """Download each MNIST file not already in ``data_dir`` (as ``name`` or ``name.gz``).

    Mirrors are tried in order, each as ``<mirror><name>.gz``.  A download goes to a temporary
    file in ``data_dir`` and is renamed to ``name.gz`` only when both checks pass: the MD5 of
    the ``.gz`` equals ``gz_md5[name]`` (default: the MD5 the public mirrors publish, the third
    field of :data:`FILES`), and the decompressed content has the size and MD5 in
    :data:`FILES`.  ``gz_md5`` exists for mirrors that serve a recompressed copy of the same
    content (the tests serve the shared ``gzip -9 -n`` files); the content check always applies,
    so no ``gz_md5`` can make wrong data pass.  A mirror that fails (network error, HTTP error,
    wrong MD5) is skipped; if all fail, :class:`DataError` names the file, the mirrors tried and
    the last error.  Nothing is written outside ``data_dir``; files already present are not
    checked here (:func:`load_mnist` does that).
    """
    root = pathlib.Path(data_dir)
    mirrors = tuple(mirrors)
    if not mirrors:
        raise DataError(f"{root}: no mirrors given to download MNIST from")
    todo = [name for name in FILES if _find(root, name) is None]
    if not todo:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{root}: cannot create the MNIST directory ({exc.strerror or exc}); "
                        f"point --data-dir or HPCLARS_DATA at a writable directory") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise DataError(f"{root}: directory is not writable, cannot download MNIST into it; "
                        f"point --data-dir or HPCLARS_DATA at a writable directory or at a "
                        f"complete copy")

    for name in todo:
        expected_gz = (gz_md5 or {}).get(name, FILES[name][2])
        target = root / f"{name}.gz"
        last_error = None
        for mirror in mirrors:
            url = mirror if mirror.endswith("/") else mirror + "/"
            url += f"{name}.gz"
            try:
                _fetch(url, target, name, expected_gz, timeout)
                break
            except (OSError, http.client.HTTPException, _BadDownload) as exc:
                # URLError, HTTPError, timeouts and socket errors are all OSError.
                last_error = f"{url}: {_one_line(exc)}"
        else:
            raise DataError(f"{target}: download failed from all {len(mirrors)} mirrors "
                            f"({', '.join(mirrors)}); last error: {last_error}; check the "
                            f"network, or point --data-dir or HPCLARS_DATA at a copy")


def _bcast_mnist(comm, data):
    """Rank 0 read the data; give every rank its own copy with buffer broadcasts."""
    shapes = comm.bcast_obj(None if data is None else
                            [(a.shape, a.dtype.str) for a in
                             (data.train_images, data.train_labels, data.test_images, data.test_labels)])
    # The loader hands out read-only arrays; MPI wants writable buffers (at any rank count).
    arrays = ([a if a.flags.writeable else a.copy() for a in
               (data.train_images, data.train_labels, data.test_images, data.test_labels)]
              if comm.is_root else [np.empty(s, dtype=np.dtype(d)) for s, d in shapes])
    for a in arrays:
        comm.bcast_(a)
        a.flags.writeable = False  # as the loader hands them out
    return MNIST(*arrays)


def load_data(data_dir, comm):
    """MNIST on every rank: rank 0 reads it (:func:`load_mnist`), then broadcasts it.

    ``comm`` is an :class:`hpclars.comm.Comm` (this module never imports MPI).  Returns an
    :class:`MNIST` with read-only arrays on every rank.  Raises :class:`DataError` on every
    rank if rank 0 cannot read the data.

    Only the per-user cache is filled from the mirrors: a directory the user
    named (--data-dir or $HPCLARS_DATA) that lacks the files is an error, so a
    typo does not silently start a download into the wrong place.
    """
    named = bool(data_dir) or bool(os.environ.get(ENV_VAR))
    loaded = comm.on_root(lambda: load_mnist(data_dir or None, download=not named), share_result=False)
    return _bcast_mnist(comm, loaded)


def to_float(images_uint8: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Scale a uint8 batch (n, h, w) into the caller-owned buffer ``out`` (n, 1, h, w) to [0, 1].

    The one definition of pixel scaling (the model's input, :meth:`hpclars.model.LeNet`):
    ``out = images * r`` with r = 1/255 rounded to ``out``'s dtype (float32 for training,
    float64 for the reference model), one rounded multiplication per pixel.  In float32
    this is within one ulp of the correctly rounded ``images / 255`` (it differs on 126 of
    the 256 byte values); it is what every committed run was trained with.  Returns ``out``.
    Raises ValueError (one line) if ``images`` is not uint8 (n, h, w) or ``out`` is not a
    float32 or float64 array of shape (n, 1, h, w).
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"to_float: images must be uint8 (n, h, w), got {images.dtype} "
                         f"{images.shape}")
    expected = (images.shape[0], 1) + images.shape[1:]
    if (not isinstance(out, np.ndarray) or out.dtype not in (np.float32, np.float64)
            or out.shape != expected):
        got = (out.dtype, out.shape) if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"to_float: out must be float32 or float64 {expected}, got {got}")
    if out.dtype == np.float32 and images.flags.c_contiguous:
        from . import kernels  # compiled; imported here so that data loading works without it

        kernels.scale_u8(images, out, np.float32(PIXEL_SCALE))  # the same values, bit for bit
    else:
        np.multiply(images[:, None, :, :], out.dtype.type(PIXEL_SCALE), out=out, casting="unsafe")
    return out


class _BadDownload(Exception):
    """A mirror answered, but with the wrong bytes."""


def _find(root, name):
    """The file holding ``name`` in ``root``: raw first (no decompression), then ``.gz``."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _one_line(exc):
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _read_bytes(path):
    """The decompressed content of ``path`` (gzip detected by its magic bytes)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing; {_HINT_MISSING}") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or _one_line(exc)}); "
                        f"{_HINT_BAD}") from exc
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except EOFError as exc:
        raise DataError(f"{path}: truncated gzip stream ({_one_line(exc)}); {_HINT_BAD}") from exc
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({_one_line(exc)}); {_HINT_BAD}") from exc


def _parse_idx(buf, path):
    """A read-only uint8 view of the IDX content ``buf`` (read from ``path``, for messages)."""
    if len(buf) < 4:
        raise DataError(f"{path}: truncated, {len(buf)} bytes is shorter than an IDX header; "
                        f"{_HINT_BAD}")
    magic = int.from_bytes(buf[:4], "big")
    if magic not in (_MAGIC_LABELS, _MAGIC_IMAGES):
        raise DataError(f"{path}: bad magic 0x{magic:08x}, expected 0x{_MAGIC_LABELS:08x} "
                        f"(labels) or 0x{_MAGIC_IMAGES:08x} (images), unsigned-byte IDX; "
                        f"{_HINT_BAD}")
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{path}: truncated, {len(buf)} bytes is shorter than its "
                        f"{header}-byte IDX header; {_HINT_BAD}")
    shape = tuple(int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    want = header + math.prod(shape)
    if len(buf) < want:
        raise DataError(f"{path}: truncated, header says shape {shape} ({want} bytes) but the "
                        f"content has {len(buf)} bytes; {_HINT_BAD}")
    if len(buf) > want:
        raise DataError(f"{path}: corrupt, {len(buf) - want} bytes after the shape {shape} "
                        f"given in the header; {_HINT_BAD}")
    arr = np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)
    arr.flags.writeable = False
    return arr


def _content_problem(name, content):
    """Why ``content`` is not the expected ``name`` (size or MD5), or None if it is."""
    size, md5, _ = FILES[name]
    if len(content) != size:
        return f"decompressed content is {len(content)} bytes, expected {size}"
    got = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if got != md5:
        return f"content MD5 mismatch (got {got}, expected {md5})"
    return None


def _fetch(url, target, name, expected_gz, timeout):
    """Download ``url`` into ``target`` atomically, or raise and leave nothing behind."""
    # A wrong URL could stream anything; no .gz of this content is bigger than the content.
    limit = FILES[name][0] + (1 << 20)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise DataError(f"{target.parent}: cannot create a file to download into "
                        f"({exc.strerror or _one_line(exc)}); point --data-dir or HPCLARS_DATA "
                        f"at a writable directory") from exc
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = 0
            while chunk := resp.read(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise _BadDownload(f"response exceeds {limit} bytes")
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        got = digest.hexdigest()
        if got != expected_gz:
            raise _BadDownload(f".gz MD5 mismatch (got {got}, expected {expected_gz})")
        try:
            content = gzip.decompress(pathlib.Path(tmp).read_bytes())
        except (EOFError, OSError, zlib.error) as exc:
            raise _BadDownload(f"not a valid gzip file ({_one_line(exc)})") from exc
        problem = _content_problem(name, content)
        if problem:
            raise _BadDownload(problem)
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            os.unlink(tmp)
