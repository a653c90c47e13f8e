"""What ran a run or a benchmark: the code and the machine, recorded beside the numbers.

:func:`environment` returns the facts a reader comparing two logs or two benchmark tables
needs (AlgoPerf records the commit and the hardware too):

- ``git_commit``: ``git rev-parse HEAD`` of the checkout hpclars is imported from, with
  ``-dirty`` when tracked files differ from it; None when hpclars is not imported from a git
  checkout (an installed copy) or git is missing.  Never raises.
- ``cpu_model``: the "model name" of /proc/cpuinfo (Linux), else :func:`platform.processor`.
- ``mpi_library``: the first line of ``MPI.Get_library_version()``, then ", netmod X" when
  MPICH's CH4_NETMOD setting chose its network module (set by the user, or by
  :mod:`hpclars.comm` under ``srun --mpi=pmi2``).
- ``blas``: each BLAS loaded in this process as threadpoolctl reports it, "internal_api
  version architecture (library file)", joined with "; " (NumPy's and SciPy's may differ).
  The architecture is the kernel set OpenBLAS chose for this CPU at load time (e.g.
  "SkylakeX", "Haswell"): the sgemm rate every "% of sgemm" figure is measured against
  depends on it, so two machines' ratios compare only where it is the same.  Then, where
  set, the environment variables that override OpenBLAS's own choice (:data:`BLAS_OVERRIDES`,
  e.g. "[OPENBLAS_CORETYPE=Haswell]"): a shell that sets ``OPENBLAS_CORETYPE=Haswell`` on an
  AVX-512 CPU halves sgemm (an AMD EPYC Zen 5, 2026-12-02: 108 against 180-206 GFLOP/s,
  BENCHMARKS.md session 21).
- ``kernel_path``: which convolution the compiled kernels take: "avx512" (direct, with
  intrinsics; the default ``-march=native`` build on an AVX-512 CPU), "avx2" (the same with
  8-lane AVX2 + FMA intrinsics, on a CPU without AVX-512) or "portable" (im2col + sgemm;
  ``HPCLARS_NO_NATIVE=1`` or a CPU with neither), :data:`hpclars.kernels.KERNEL_PATH`.

The trainer stores it as the log's ``environment`` attribute (JSON), ``hpclars bench`` prints
it as its first lines.  Deliberately left out: anything that identifies a user, and timing.
"""

import os
import platform
import subprocess

from threadpoolctl import threadpool_info

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def git_commit(package_dir=PACKAGE_DIR):
    """The commit of the checkout whose ``hpclars/`` is ``package_dir`` ("-dirty" if changed), or None."""
    def git(*args):
        return subprocess.run(["git", "-C", package_dir, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        # An installed copy inside some other repository (a venv in a checkout) is not that checkout.
        if os.path.realpath(os.path.join(top, "hpclars")) != os.path.realpath(package_dir):
            return None
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def cpu_model():
    """The CPU's model name ("unknown" if the system does not say)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def mpi_library():
    """The MPI library and its version, one line (e.g. "MPICH Version: 4.2.0", or "MPICH
    Version: 5.0.2, netmod ofi" where MPICH's CH4_NETMOD setting chose its netmod)."""
    from mpi4py import MPI

    from .comm import mpich_setting

    line = first_line(MPI.Get_library_version())
    netmod = mpich_setting(os.environ, "CH4_NETMOD")
    return f"{line}, netmod {netmod}" if netmod and line.startswith("MPICH") else line


def first_line(text):
    """The first line of a library's version text, whitespace runs made one space and NUL
    characters dropped: Open MPI 4.1's ``MPI_Get_library_version`` string ends in its C
    terminator, which went into every benchmark header (grep then takes the output file for
    binary) and, JSON-escaped, into the run log's environment; HDF5's variable-length strings
    would refuse it raw."""
    lines = text.replace("\x00", "").splitlines()
    return " ".join(lines[0].split()) if lines else ""


#: Environment variables that change which kernels or blocking OpenBLAS uses (its README).
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE")


def blas_overrides(environ=None):
    """{name: value} of the :data:`BLAS_OVERRIDES` set (non-empty) in ``environ`` (default
    os.environ), in that order."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in BLAS_OVERRIDES if environ.get(name)}


def _assignments(overrides):
    """"NAME=value, ..." of :func:`blas_overrides`'s dict."""
    return ", ".join(f"{n}={v}" for n, v in overrides.items())


def blas(environ=None):
    """Every BLAS loaded in this process, as threadpoolctl sees it ("none loaded" if none), then
    "[NAME=value, ...]" for the :func:`blas_overrides` set in ``environ``."""
    found = [" ".join(str(i[k]) for k in ("internal_api", "version", "architecture") if i.get(k))
             + f" ({os.path.basename(i.get('filepath', '?'))})"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    overrides = _assignments(blas_overrides(environ))
    return ("; ".join(dict.fromkeys(found)) or "none loaded") + (f" [{overrides}]" if overrides else "")


def kernel_path():
    """"avx512", "avx2" or "portable": the convolution the compiled kernels were built to take."""
    from .kernels import KERNEL_PATH

    return KERNEL_PATH


def environment():
    """{git_commit, cpu_model, mpi_library, blas, kernel_path}; see the module docstring."""
    return {"git_commit": git_commit(), "cpu_model": cpu_model(), "mpi_library": mpi_library(),
            "blas": blas(), "kernel_path": kernel_path()}


def blas_override_note(environ=None):
    """A '# note: ...' line for a benchmark's header where ``environ`` (default os.environ) sets
    one of :data:`BLAS_OVERRIDES`, else None: such a setting changes the sgemm that "% of sgemm"
    is measured against, and hpclars's dense layers, from what OpenBLAS would pick for this CPU
    (BENCHMARKS.md session 21: a shell's ``OPENBLAS_CORETYPE=Haswell`` on an AVX-512 CPU)."""
    overrides = blas_overrides(environ)
    if not overrides:
        return None
    unset = " -u ".join(overrides)
    return (f"# note: {_assignments(overrides)} set: OpenBLAS's kernels or blocking "
            "are not the ones it picks for this CPU, in the sgemm that '% of sgemm' is measured against "
            f"and in hpclars's dense layers; `env -u {unset} hpclars bench ...` measures this "
            "machine as it is")


def describe(env):
    """The environment as '# name: value' lines, for the top of a benchmark's output."""
    return "\n".join(f"# {k}: {'none (not a git checkout)' if v is None else v}" for k, v in env.items())
