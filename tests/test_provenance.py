"""The code and machine a log or a benchmark records (hpclars.provenance): real git, real MPI."""

import shutil
import subprocess
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info
from mpi4py import MPI

from _util import assert_ok, run
from hpclars import provenance

ROOT = Path(__file__).resolve().parents[1]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(where, *args):
    return subprocess.run(["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_environment_names_the_machine():
    blas_loaded = threadpool_info()  # before: a BLAS loaded later would be missing from it
    env = provenance.environment()
    assert set(env) == {"git_commit", "cpu_model", "mpi_library", "blas", "kernel_path"}
    assert env["kernel_path"] in ("avx512", "avx2", "portable")
    assert env["mpi_library"] and env["mpi_library"].split()[0] in MPI.Get_library_version()
    assert env["cpu_model"] and env["cpu_model"] != "unknown"
    assert env["blas"] != "none loaded"  # NumPy and SciPy load one
    # The kernel set OpenBLAS picked for this CPU: the sgemm that "% of sgemm" is measured against.
    for info in blas_loaded:
        if info.get("user_api") == "blas" and info.get("architecture"):
            assert f"{info['version']} {info['architecture']} (" in env["blas"]


def test_blas_line_names_the_overrides_of_openblass_own_choice():
    from hpclars.provenance import blas

    plain = blas({})
    assert "[" not in plain
    assert blas({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512", "PATH": "/bin"}) == \
        plain + " [OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=512]"
    assert blas({"OPENBLAS_CORETYPE": ""}) == plain  # set but empty: OpenBLAS ignores it


def test_a_blas_override_gets_a_note_under_the_benchs_environment():
    from hpclars.provenance import blas_override_note

    assert blas_override_note({"PATH": "/bin", "OPENBLAS_CORETYPE": ""}) is None
    note = blas_override_note({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"})
    assert note.startswith("# note: OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=512 set:")
    assert "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE hpclars bench ...`" in note
    proc = run(["bench", "kernels", "--batch", "2", "--repeats", "1"], env={"OPENBLAS_CORETYPE": "Haswell"})
    assert_ok(proc)
    lines = proc.stdout.splitlines()
    assert lines[3].startswith("# blas: ") and "OPENBLAS_CORETYPE=Haswell" in lines[3]
    assert lines[5].startswith("# note: OPENBLAS_CORETYPE=Haswell")


@needs_git
def test_git_commit_is_the_checkout_hpclars_runs_from():
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    commit = provenance.git_commit()
    assert commit.split("-")[0] == git(ROOT, "rev-parse", "HEAD")
    assert commit.endswith("-dirty") == bool(git(ROOT, "status", "--porcelain", "--untracked-files=no"))


@needs_git
def test_git_commit_is_none_outside_a_checkout_of_hpclars(tmp_path):
    assert provenance.git_commit(str(tmp_path)) is None  # no repository at all
    git(tmp_path, "init", "-q")
    (tmp_path / "venv" / "hpclars").mkdir(parents=True)  # an installed copy inside another repository
    (tmp_path / "hpclars").mkdir()
    (tmp_path / "hpclars" / "__init__.py").write_text("")
    git(tmp_path, "add", "hpclars")
    git(tmp_path, "commit", "-q", "-m", "x")
    assert provenance.git_commit(str(tmp_path / "venv" / "hpclars")) is None
    assert provenance.git_commit(str(tmp_path / "hpclars")) == git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "hpclars" / "__init__.py").write_text("changed = 1\n")
    assert provenance.git_commit(str(tmp_path / "hpclars")).endswith("-dirty")


def test_bench_output_starts_with_the_environment():
    proc = run(["bench", "kernels", "--batch", "2", "--repeats", "1"])
    assert_ok(proc)
    head = proc.stdout.splitlines()[:5]
    env = provenance.environment()
    assert [line.split(":")[0] for line in head] == [f"# {k}" for k in env]
    assert head[4] == f"# kernel_path: {env['kernel_path']}"


# Open MPI 4.1.6's MPI_Get_library_version, as it came back on the lent 16-core node
# (Debian's package): one line ending in the C string's terminator.
OPEN_MPI_416 = "Open MPI v4.1.6, package: Debian OpenMPI, ident: 4.1.6, repo rev: v4.1.6, Sep 30, 2023\x00"


@pytest.mark.parametrize("text, line", [
    (OPEN_MPI_416, "Open MPI v4.1.6, package: Debian OpenMPI, ident: 4.1.6, repo rev: v4.1.6, Sep 30, 2023"),
    ("MPICH Version:      5.0.2\nMPICH Release date: unreleased\n", "MPICH Version: 5.0.2"),
    ("", ""),
])
def test_the_mpi_library_line_drops_nul_and_can_be_logged(tmp_path, text, line):
    import h5py

    got = provenance.first_line(text)
    assert got == line
    with h5py.File(tmp_path / "a.h5", "w") as f:   # HDF5 strings refuse a NUL; the cleaned line is one
        f.attrs["mpi_library"] = got
        assert f.attrs["mpi_library"] == line
