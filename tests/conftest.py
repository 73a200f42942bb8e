"""Shared test fixtures."""

from pathlib import Path

import pytest

SHARED_CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"


@pytest.fixture
def cifar10_dir() -> Path:
    """The shared CIFAR-10 image folder; tests that need it skip when it is absent."""
    if not (SHARED_CIFAR10 / "train").is_dir():
        pytest.skip(f"CIFAR-10 image folder not found at {SHARED_CIFAR10}")
    return SHARED_CIFAR10


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run small tensors: one intra-op thread keeps them from oversubscribing a small machine's cores."""
    import torch

    torch.set_num_threads(1)
    yield
