"""The datasets AttentionLite knows: class counts, image sizes, channel statistics; one split in memory.

Only numpy is imported here, so the decode workers and the CLI start without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attentionlite.errors import InputError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: classes, image size and channel statistics."""

    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# Channel statistics over all training pixels (std over pixels, not the mean of per-image stds).
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": DatasetInfo("tinyimagenet", 200, 64, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
}


@dataclass(frozen=True)
class ImageSet:
    """One split in memory: ``images`` uint8 (N, H, W, 3), ``labels`` int64 (N,), class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def dataset_info(dataset: str) -> DatasetInfo:
    """The :class:`DatasetInfo` registered as ``dataset``; an unknown name is an InputError."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[dataset]
