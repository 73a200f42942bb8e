"""Fixtures of the training tests: a tiny image-folder dataset."""

import numpy as np
import pytest
from PIL import Image

CLASSES = 10


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
