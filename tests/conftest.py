"""Shared test fixtures."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = 10  # of the tiny_cifar fixture
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


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory):
    """An image-folder CIFAR-10 look-alike: 2 train and 1 test 32x32 PNGs per class, one colour per class."""
    root = tmp_path_factory.mktemp("tiny_cifar")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 1)):
        for label in range(CLASSES):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 64, (32, 32, 3)) + 19 * label
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")
    return root
