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
