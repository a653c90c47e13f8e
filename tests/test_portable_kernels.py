"""Every kernel build is tested on every change: the ones this CPU does not get are built here.

The installed build is whatever ``pip install -e .`` compiled on this machine: on a CPU
with AVX-512 the direct AVX-512 kernels (``hpclars.kernels.KERNEL_PATH == "avx512"``), on
one with AVX2 + FMA only the 8-lane direct kernels (``"avx2"``), elsewhere the portable
im2col + sgemm path.  This module compiles the others, in scratch copies of the sources:
the portable one (``HPCLARS_NO_NATIVE=1``, no ``-march``, so no vector intrinsics) and the
AVX2 one (``HPCLARS_MARCH=haswell``; run where the CPU has AVX2 and FMA and the installed
build is not already it).  Against each it runs the kernel tests (every kernel against the
NumPy references, special values, argument checks; the optimizer update kernels) and the
model tests (whole-model finite differences, compiled model against the reference model) in
a subprocess.  The direct kernels' AVX-512 and AVX2 sections are also compiled (``gcc
-fsyntax-only``) on every machine, whether or not its CPU can run them.

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
RUN_THERE = ["tests/test_kernels.py", "tests/test_update_kernels.py", "tests/test_model.py", "tests/test_machine.py"]
# The scratch builds: (KERNEL_PATH they must report, the environment that selects them).
BUILDS = {"portable": {"HPCLARS_NO_NATIVE": "1"}, "avx2": {"HPCLARS_MARCH": "haswell"}}


def _cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _copy_sources(dst):
    shutil.copy2(ROOT / "setup.py", dst / "setup.py")
    ignore = shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*.egg-info")
    for d in ("hpclars", "kernels", "tests"):
        shutil.copytree(ROOT / d, dst / d, ignore=ignore)


@pytest.fixture(scope="module", params=sorted(BUILDS))
def build(request, tmp_path_factory):
    """(the scratch build's directory, the KERNEL_PATH it must report)."""
    path = request.param
    pytest.importorskip("Cython", reason="the test extra installs Cython: pip install -e '.[test]'")
    if path == "avx2":
        import hpclars.kernels as k

        if not {"avx2", "fma"} <= _cpu_flags():
            pytest.skip("this CPU has no AVX2 + FMA (or no /proc/cpuinfo to say so)")
        if k.KERNEL_PATH == "avx2":
            pytest.skip("the installed build is the AVX2 one: the whole suite tests it")
    dst = tmp_path_factory.mktemp(path)
    _copy_sources(dst)
    env = {k: v for k, v in os.environ.items() if k not in ("HPCLARS_NO_NATIVE", "HPCLARS_MARCH")}
    # setup.py compiles the extensions in parallel, one per core.
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dst,
                          env={**env, **BUILDS[path]}, capture_output=True, text=True)
    assert proc.returncode == 0, f"{path} build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return dst, path


def _in(build_dir, *args):
    """Run python with the scratch copy first on sys.path (ahead of the editable install)."""
    env = {**os.environ, "PYTHONPATH": str(build_dir)}
    return subprocess.run([sys.executable, *args], cwd=build_dir, env=env, capture_output=True, text=True)


def test_scratch_build_takes_its_path(build):
    build_dir, path = build
    proc = _in(build_dir, "-c", "import hpclars.kernels as k; print(k.__file__); print(k.KERNEL_PATH)")
    assert proc.returncode == 0, proc.stderr
    where, got = proc.stdout.split()
    assert Path(where).is_relative_to(build_dir), f"imported {where}, not the scratch build"
    assert got == path


def test_scratch_build_passes_the_kernel_and_model_tests(build):
    build_dir, path = build
    proc = _in(build_dir, "-m", "pytest", "-q", "-p", "no:cacheprovider", *RUN_THERE)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"the {path} kernels fail tests:\n{tail}"
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail


# Direct kernels this CPU may not run, compiled from the scratch build's generated C: a change
# that breaks one ISA's section (a call left with the other's arguments, say) fails here on
# every machine, not only on the CPU that has it.
OTHER_ISAS = {"AVX-512": "icelake-server", "AVX2": "haswell"}


# The generated C is the same for every build: checked once, with the portable one's.
@pytest.mark.parametrize("build", ["portable"], indirect=True)
@pytest.mark.parametrize("isa", sorted(OTHER_ISAS))
def test_every_direct_kernel_section_compiles(build, isa):
    build_dir, _ = build
    import sysconfig

    import numpy as np

    includes = ["-I", str(build_dir / "kernels"), "-I", np.get_include(), "-I", sysconfig.get_paths()["include"]]
    for name in ("conv", "pool", "probes"):
        proc = subprocess.run(["gcc", "-fsyntax-only", "-fopenmp", f"-march={OTHER_ISAS[isa]}", *includes,
                               str(build_dir / "kernels" / f"{name}.c")], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}.c does not compile for {isa}:\n{proc.stderr[-3000:]}"
