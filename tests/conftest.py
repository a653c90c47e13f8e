"""Shared fixtures: where the real MNIST lives, and the data loaded once per session.

The tests read MNIST from $HPCLARS_DATA, else from ../shared/data/mnist beside the
checkout (this project's CI), else from the per-user cache that `hpclars train` fills
on first use.  They never download.
"""

import os
from pathlib import Path

import pytest

import hpclars  # noqa: F401  (sets the BLAS thread variables before NumPy loads BLAS)
from hpclars.data import FILES, resolve_data_dir


def _has_mnist(d):
    return all((d / n).exists() or (d / f"{n}.gz").exists() for n in FILES)


def _find_data_dir():
    if os.environ.get("HPCLARS_DATA"):
        return Path(os.environ["HPCLARS_DATA"])
    candidates = [Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist",
                  resolve_data_dir(None)]
    return next((d for d in candidates if _has_mnist(d)), candidates[0])


DATA_DIR = _find_data_dir()


@pytest.fixture(scope="session")
def data_dir():
    if not _has_mnist(DATA_DIR):
        pytest.fail(f"MNIST not found at {DATA_DIR}: set HPCLARS_DATA to a directory with the four "
                    "IDX files, or run `hpclars train` once to fill the per-user cache")
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist(data_dir):
    from hpclars.data import load_mnist

    return load_mnist(data_dir, download=False)
