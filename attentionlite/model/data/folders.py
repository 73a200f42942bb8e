"""Image folders and the Tiny-ImageNet layout, decoded once into a cached uint8 array.

Image files are decoded by a pool of worker processes and cached as one uint8
``.npy`` per split (under ``cache_dir``, ``$ATTENTIONLITE_CACHE/data`` or
``~/.cache/attentionlite/data``); the cache key is the sorted file list with
sizes and modification times, so any change to the source decodes again.
Only numpy and Pillow are imported here, so the decode workers start without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from attentionlite.errors import InputError
from attentionlite.files import atomic_output_dir, default_cache_dir
from attentionlite.model.data.registry import DatasetInfo, ImageSet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CACHE_FORMAT_VERSION = "1"
DECODE_WORKERS = 2
DECODE_CHUNK = 1000
# Below this many files a process pool costs more to start than it saves.
PARALLEL_DECODE_MIN_FILES = 4000


@dataclass(frozen=True)
class FileListing:
    """The image files of one split and their labels, in label order, before decoding."""

    paths: tuple[str, ...]
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    side_files: tuple[Path, ...] = ()  # files besides the images that define the labels


def list_image_files(root: str | Path, split: str) -> FileListing:
    """The files and labels of ``split`` in an image folder or Tiny-ImageNet ``root``; nothing is decoded."""
    root = Path(root)
    for folder in (root, root / "tiny-imagenet-200"):
        if (folder / "wnids.txt").is_file():
            return _list_tiny_imagenet(folder, split)
    return _list_image_folder(root, split)


def _list_image_folder(root: Path, split: str) -> FileListing:
    """``root/{split}/{class}/*``; the class list (sorted by name) always comes from ``train/``.

    Sorted names give CIFAR-10's label order for its folder (airplane .. truck are alphabetical).
    """
    classes = _class_folders(root / "train")
    split_folder = root / split
    if _class_folders(split_folder) != classes:
        raise InputError(f"{split_folder}: expected the same class folders as {root / 'train'}")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = _image_files(split_folder / name)
        paths += files
        labels += [label] * len(files)
    return FileListing(tuple(paths), np.array(labels, dtype=np.int64), classes)


def _class_folders(folder: Path) -> tuple[str, ...]:
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found; expected class folders <class>/*.jpg|*.png in it")
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise InputError(f"{folder}: no class folders in it")
    return tuple(names)


def _image_files(folder: Path) -> list[str]:
    """The image files in ``folder``, sorted by name; other files (e.g. ``.DS_Store``) are ignored."""
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    files = sorted(
        entry.path for entry in os.scandir(folder)
        if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise InputError(f"{folder}: no .jpg, .jpeg or .png images in it")
    return files


def _list_tiny_imagenet(folder: Path, split: str) -> FileListing:
    """``train/<wnid>/images/*.JPEG``; the "test" split is ``val/`` (Tiny-ImageNet's test has no labels)."""
    wnids_file = folder / "wnids.txt"
    classes = tuple(sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()}))
    if not classes:
        raise InputError(f"{wnids_file}: no class ids in it")
    if split == "test":
        return _list_tiny_imagenet_val(folder, classes)
    paths: list[str] = []
    labels: list[int] = []
    for label, wnid in enumerate(classes):
        files = _image_files(folder / "train" / wnid / "images")
        paths += files
        labels += [label] * len(files)
    return FileListing(tuple(paths), np.array(labels, dtype=np.int64), classes, (wnids_file,))


def _list_tiny_imagenet_val(folder: Path, classes: tuple[str, ...]) -> FileListing:
    """Images of ``val/images`` labelled by ``val/val_annotations.txt`` (file <tab> wnid <tab> box)."""
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise InputError(f"{annotations}: file not found; expected Tiny-ImageNet's validation labels")
    label_of = {wnid: label for label, wnid in enumerate(classes)}
    rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
    for number, row in enumerate(rows, start=1):
        if len(row) < 2 or row[1] not in label_of:
            raise InputError(f"{annotations}: line {number}: expected <file> <tab> <wnid listed in wnids.txt>")
    if not rows:
        raise InputError(f"{annotations}: no annotations in it")
    paths = tuple(str(folder / "val" / "images" / row[0]) for row in rows)
    labels = np.array([label_of[row[1]] for row in rows], dtype=np.int64)
    return FileListing(paths, labels, classes, (folder / "wnids.txt", annotations))


# --- decoding and the cache ---------------------------------------------------------------


def cache_folder(cache_dir: str | Path | None, dataset: str, split: str, root: Path) -> Path:
    """One folder per (dataset, split, source folder): a changed source replaces it, never piles up."""
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "data"
    root_id = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return parent / f"{dataset}-{split}-{root_id}"


def _cache_key(listing: FileListing, image_size: int) -> str:
    """A digest of every file's path, size and modification time, and the labels and classes."""
    digest = hashlib.sha256(f"{CACHE_FORMAT_VERSION}\n{image_size}\n{listing.classes}\n".encode())
    digest.update(listing.labels.tobytes())
    for path in [*listing.paths, *map(str, listing.side_files)]:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"{path}: image file not found") from None
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def decode_cached(listing: FileListing, info: DatasetInfo, folder: Path) -> ImageSet:
    """The split decoded, from the cache in ``folder`` when it was made from the same files."""
    key = _cache_key(listing, info.image_size)
    cached = _read_cache(folder, key)
    if cached is not None:
        return cached
    images = ImageSet(_decode_all(listing.paths, info.image_size), listing.labels, listing.classes)
    _write_cache(folder, key, images)
    return images


def _read_cache(cache_folder: Path, key: str) -> ImageSet | None:
    """The cached split if ``cache_folder`` reads and was made from the same source; else None."""
    try:
        source = json.loads((cache_folder / "source.json").read_text())
        if source["key"] != key:
            return None
        images = np.load(cache_folder / "images.npy", allow_pickle=False)
        labels = np.load(cache_folder / "labels.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ImageSet(images, labels, tuple(source["classes"]))


def _write_cache(cache_folder: Path, key: str, images: ImageSet) -> None:
    """images.npy uint8 (N, H, W, 3), labels.npy int64 (N,) and source.json, written as one folder."""
    try:
        with atomic_output_dir(cache_folder, owned=True) as staging:
            np.save(staging / "images.npy", images.images)
            np.save(staging / "labels.npy", images.labels)
            (staging / "source.json").write_text(json.dumps({"key": key, "classes": list(images.classes)}))
    except (OSError, InputError) as error:  # InputError: the cache folder cannot be created at all
        # The decoded split is still good; only the next load will be slow.
        warnings.warn(f"{cache_folder}: decode cache not written ({error})", stacklevel=4)


def _decode_all(paths: tuple[str, ...], image_size: int) -> np.ndarray:
    """uint8 (N, image_size, image_size, 3), decoded in chunks by a process pool for large splits."""
    chunks = [paths[start:start + DECODE_CHUNK] for start in range(0, len(paths), DECODE_CHUNK)]
    if len(paths) < PARALLEL_DECODE_MIN_FILES:
        return np.concatenate([_decode_files(chunk, image_size) for chunk in chunks])
    pool = ProcessPoolExecutor(DECODE_WORKERS)
    try:
        return np.concatenate(list(pool.map(_decode_files, chunks, [image_size] * len(chunks))))
    finally:
        pool.shutdown(cancel_futures=True)  # after a bad image, do not decode the rest


def _decode_files(paths: tuple[str, ...], image_size: int) -> np.ndarray:
    pixels = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        pixels[index] = _decode_image(path, image_size)
    return pixels


def _decode_image(path: str, image_size: int) -> np.ndarray:
    """One image as uint8 (image_size, image_size, 3); grey or palette images become RGB."""
    try:
        with Image.open(path, formats=("JPEG", "PNG")) as image:
            pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, ValueError) as error:  # UnidentifiedImageError and truncated files are OSErrors
        raise InputError(f"{path}: unreadable image ({error})") from None
    if pixels.shape != (image_size, image_size, 3):
        raise InputError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected {image_size}x{image_size}")
    return pixels
