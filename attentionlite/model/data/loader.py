"""The :class:`BatchLoader` that feeds training and evaluation: shuffled, augmented batches, prepared ahead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from attentionlite.errors import InputError
from attentionlite.model.data.registry import DatasetInfo, ImageSet, dataset_info
from attentionlite.model.data.splits import load_split, subset
from attentionlite.model.data.transforms import (
    CROP_PADDING,
    epoch_generator,
    normalize,
    random_crop_and_flip,
    to_channels_first,
)

PREFETCH_BATCHES = 2

T = TypeVar("T")


class BatchLoader:
    """Batches ``(x, y)`` of an :class:`ImageSet`: x float32 (B, 3, H, W) normalised, y int64 (B,).

    The order (if ``shuffle``) and the crop and flip (if ``augment``) of an epoch follow
    from (``seed``, epoch) alone; call :meth:`set_epoch` before iterating.  A background
    thread prepares the next batches while the caller trains on the current one.
    ``shard = (rank, ranks)`` yields only that rank's contiguous share of each batch
    (shares differ by at most one image), cut after the whole batch is augmented, so
    the ranks together see exactly the batches of one process.
    """

    def __init__(self, images: ImageSet, info: DatasetInfo, batch_size: int, shuffle: bool,
                 augment: bool, seed: int, drop_last: bool = False, shard: tuple[int, int] = (0, 1)):
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        if batch_size < shard[1]:
            raise InputError(f"batch size {batch_size} is smaller than the {shard[1]} training processes; "
                             "expected at least one image per process")
        self.images = images
        self.info = info
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.drop_last = drop_last
        self.shard = shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch``'s order and augmentation."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.images), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = epoch_generator(self.seed, self.epoch)
        count = len(self.images)
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        batches = order[: len(self) * self.batch_size].split(self.batch_size)
        return _prefetch((self._batch(indices.numpy(), generator) for indices in batches), PREFETCH_BATCHES)

    def _batch(self, indices: np.ndarray, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = to_channels_first(self.images.images[indices])  # uint8 (B, 3, H, W)
        if self.augment:
            pixels = random_crop_and_flip(pixels, CROP_PADDING, generator)
        labels = torch.from_numpy(self.images.labels[indices])  # int64 (B,)
        rank, ranks = self.shard
        if ranks > 1:
            share = torch.tensor_split(torch.arange(len(indices)), ranks)[rank]
            pixels, labels = pixels[share], labels[share]
        return normalize(pixels, self.info.mean, self.info.std), labels


def evaluation_batches(dataset: str, data_dir: str | Path, batch_size: int, per_class: int | None, seed: int,
                       cache_dir: str | Path | None = None) -> tuple[BatchLoader, DatasetInfo]:
    """The test split as batches (no shuffle, no augmentation) and its :class:`DatasetInfo`."""
    info = dataset_info(dataset)
    images = load_split(dataset, data_dir, "test", cache_dir)
    if per_class is not None:
        images = subset(images, per_class, seed)
    return in_order(images, info, batch_size, seed), info


def in_order(images: ImageSet, info: DatasetInfo, batch_size: int, seed: int) -> BatchLoader:
    """``images`` as evaluation batches: every image once, in order, not augmented."""
    return BatchLoader(images, info, batch_size=batch_size, shuffle=False, augment=False, seed=seed)


_DONE = object()


def _prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield ``items`` while a background thread computes up to ``depth`` of them ahead.

    An error in the thread is raised here; stopping early (``break``) stops the thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put_unless_stopped(ready, (item, None), stop):
                    return
            _put_unless_stopped(ready, (_DONE, None), stop)
        except BaseException as error:  # handed to the consumer, which re-raises it
            _put_unless_stopped(ready, (_DONE, error), stop)

    worker = threading.Thread(target=produce, name="BatchLoader-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _put_unless_stopped(ready: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    """Put ``entry`` once there is room; give up (False) if the consumer has stopped."""
    while not stop.is_set():
        try:
            ready.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
