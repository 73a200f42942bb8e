"""One split of a dataset from a folder in whatever format it is, and seeded per-class subsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attentionlite.errors import InputError
from attentionlite.model.data.cifar import cifar_pickle_folder, read_cifar_pickles
from attentionlite.model.data.folders import cache_folder, decode_cached, list_image_files
from attentionlite.model.data.registry import SPLITS, ImageSet, dataset_info


def load_split(dataset: str, root: str | Path, split: str, cache_dir: str | Path | None = None) -> ImageSet:
    """Load the ``split`` ("train" or "test") of ``dataset`` from ``root``, in whatever format it is."""
    info = dataset_info(dataset)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected 'train' or 'test'")
    if str(root) == "":
        raise InputError("dataset folder '': an empty path; expected the folder holding the dataset")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    pickle_folder = cifar_pickle_folder(dataset, root)
    if pickle_folder is not None:
        return read_cifar_pickles(dataset, pickle_folder, split)
    listing = list_image_files(root, split)
    if len(listing.classes) > info.num_classes:
        raise InputError(f"{root}: {len(listing.classes)} classes found, but {info.name} has {info.num_classes}")
    return decode_cached(listing, info, cache_folder(cache_dir, dataset, split, root))


def subset(images: ImageSet, per_class: int, seed: int) -> ImageSet:
    """At most ``per_class`` images of each class, drawn with ``seed``, kept in their original order."""
    return hold_out(images, per_class, seed)[1]


def hold_out(images: ImageSet, per_class: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """``images`` cut in two: the rest, and :func:`subset`'s draw of ``per_class`` images of each class."""
    if per_class < 1:
        raise InputError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(images.labels == label))[:per_class]
              for label in range(len(images.classes))]
    drawn = np.zeros(len(images.labels), dtype=bool)
    drawn[np.concatenate(chosen)] = True
    return _select(images, ~drawn), _select(images, drawn)


def _select(images: ImageSet, keep: np.ndarray) -> ImageSet:
    return ImageSet(images.images[keep], images.labels[keep], images.classes)
