"""Shared fixtures: where the real MNIST lives, and the data loaded once per session."""

import os
from pathlib import Path

import pytest

import hpclars  # noqa: F401  (sets the BLAS thread variables before NumPy loads BLAS)

DATA_DIR = Path(os.environ.get("HPCLARS_DATA") or
                Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")


@pytest.fixture(scope="session")
def data_dir():
    if not DATA_DIR.is_dir():
        pytest.fail(f"MNIST not found at {DATA_DIR}; set HPCLARS_DATA to a directory with the IDX files")
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist(data_dir):
    from hpclars.data import load_mnist

    return load_mnist(data_dir, download=False)
