"""Shared test settings."""

import os
from pathlib import Path

import pytest
import torch

# The tests use tiny models, for which one thread is fastest and least sensitive to load.
torch.set_num_threads(1)

MNIST = Path(
    os.environ.get(
        "DEEPBELIEF_MNIST", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
    )
)


@pytest.fixture
def mnist_dir():
    """The real MNIST IDX files; tests that need them skip when they are absent."""
    if not (MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found in {MNIST} (set DEEPBELIEF_MNIST)")
    return MNIST
