"""Both kernel builds are tested on every change: the portable one is built here.

The installed build is whatever ``pip install -e .`` compiled on this machine: on a CPU
with AVX-512 the direct AVX-512 kernels (``hpclars.kernels.KERNEL_PATH == "avx512"``),
elsewhere the portable im2col + sgemm path.  This module compiles the other build, the
portable one (``HPCLARS_NO_NATIVE=1``, no ``-march=native``, so no AVX-512 intrinsics), in
a scratch copy of the sources, and runs the kernel tests (every kernel against the NumPy
references, special values, argument checks; the optimizer update kernels) and the model
tests (whole-model finite differences, compiled model against the reference model) against it
in a subprocess.

Needs a C compiler and Cython (both already needed by ``pip install -e .``; Cython comes
with the ``test`` extra).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_THERE = ["tests/test_kernels.py", "tests/test_update_kernels.py", "tests/test_model.py"]


def _copy_sources(dst):
    shutil.copy2(ROOT / "setup.py", dst / "setup.py")
    ignore = shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*.egg-info")
    for d in ("hpclars", "kernels", "tests"):
        shutil.copytree(ROOT / d, dst / d, ignore=ignore)


@pytest.fixture(scope="module")
def portable_build(tmp_path_factory):
    pytest.importorskip("Cython", reason="the test extra installs Cython: pip install -e '.[test]'")
    dst = tmp_path_factory.mktemp("portable")
    _copy_sources(dst)
    env = {**os.environ, "HPCLARS_NO_NATIVE": "1"}
    # setup.py compiles the extensions in parallel, one per core.
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dst, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"portable build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return dst


def _in(build, *args):
    """Run python with the scratch copy first on sys.path (ahead of the editable install)."""
    env = {**os.environ, "PYTHONPATH": str(build)}
    return subprocess.run([sys.executable, *args], cwd=build, env=env, capture_output=True, text=True)


def test_portable_build_takes_the_portable_path(portable_build):
    proc = _in(portable_build, "-c", "import hpclars.kernels as k; print(k.__file__); print(k.KERNEL_PATH)")
    assert proc.returncode == 0, proc.stderr
    where, path = proc.stdout.split()
    assert Path(where).is_relative_to(portable_build), f"imported {where}, not the scratch build"
    assert path == "portable"


def test_portable_kernels_pass_the_kernel_and_model_tests(portable_build):
    proc = _in(portable_build, "-m", "pytest", "-q", "-p", "no:cacheprovider", *RUN_THERE)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"the portable kernels fail tests:\n{tail}"
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
