"""Datasets: CIFAR-10/100 (python pickle release), image folders and the Tiny-ImageNet layout.

``load_split(dataset, root, split)`` detects the format of ``root`` and returns an
:class:`ImageSet` of uint8 pixels (N, H, W, 3) and int64 labels.  Image files are
decoded once by a pool of worker processes and cached as one uint8 ``.npy`` per split
(under ``cache_dir``, ``$ATTENTIONLITE_CACHE/data`` or ``~/.cache/attentionlite/data``);
the cache key is the sorted file list with sizes and modification times, so any
change to the source decodes again.  The CIFAR pickles hold decoded pixels
already and are read directly.

Batching, normalisation and augmentation are torch code in
:mod:`attentionlite.model.transforms`; ``BatchLoader`` is importable from here too.
Only numpy and Pillow are imported at module level so the decode workers and the
CLI start without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tarfile
import urllib.request
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from attentionlite.errors import InputError
from attentionlite.files import atomic_output_dir, default_cache_dir

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CACHE_FORMAT_VERSION = "1"
DECODE_WORKERS = 2
DECODE_CHUNK = 1000
# Below this many files a process pool costs more to start than it saves.
PARALLEL_DECODE_MIN_FILES = 4000


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


@dataclass(frozen=True)
class FileListing:
    """The image files of one split and their labels, in label order, before decoding."""

    paths: tuple[str, ...]
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    side_files: tuple[Path, ...] = ()  # files besides the images that define the labels


@dataclass(frozen=True)
class CifarRelease:
    """One official CIFAR python-release archive and the folder it unpacks to."""

    url: str
    md5: str
    folder: str


CIFAR_RELEASES = {
    "cifar10": CifarRelease(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
    ),
    "cifar100": CifarRelease(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
    ),
}


def dataset_info(dataset: str) -> DatasetInfo:
    """The :class:`DatasetInfo` registered as ``dataset``; an unknown name is an InputError."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[dataset]


def load_split(dataset: str, root: str | Path, split: str, cache_dir: str | Path | None = None) -> ImageSet:
    """Load the ``split`` ("train" or "test") of ``dataset`` from ``root``, in whatever format it is."""
    info = dataset_info(dataset)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected 'train' or 'test'")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    pickle_folder = _cifar_pickle_folder(dataset, root)
    if pickle_folder is not None:
        return _read_cifar_pickles(dataset, pickle_folder, split)
    listing = list_image_files(root, split)
    if len(listing.classes) > info.num_classes:
        raise InputError(f"{root}: {len(listing.classes)} classes found, but {info.name} has {info.num_classes}")
    return _decode_cached(listing, info, _cache_folder(cache_dir, dataset, split, root))


# --- CIFAR python release --------------------------------------------------------------


def _cifar_pickle_folder(dataset: str, root: Path) -> Path | None:
    """``root`` itself or its release subfolder, if either holds the CIFAR pickles' meta file."""
    if dataset not in CIFAR_RELEASES:
        return None
    meta_name = "batches.meta" if dataset == "cifar10" else "meta"
    for folder in (root, root / CIFAR_RELEASES[dataset].folder):
        if (folder / meta_name).is_file():
            return folder
    return None


def _read_cifar_pickles(dataset: str, folder: Path, split: str) -> ImageSet:
    if dataset == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_file, names_key, labels_key = folder / "batches.meta", b"label_names", b"labels"
    else:
        names = [split]
        meta_file, names_key, labels_key = folder / "meta", b"fine_label_names", b"fine_labels"
    classes = tuple(name.decode() for name in _pickle_entry(meta_file, names_key))
    batches = [_read_cifar_batch(folder / name, labels_key, len(classes)) for name in names]
    images = np.concatenate([pixels for pixels, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return ImageSet(images, labels, classes)


def _read_cifar_batch(path: Path, labels_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 32, 32, 3) and labels (N,) of one pickled batch, its shapes checked."""
    data = np.asarray(_pickle_entry(path, b"data"))
    labels = np.asarray(_pickle_entry(path, labels_key), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(f"{path}: expected uint8 'data' of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
        raise InputError(f"{path}: expected {len(data)} labels in 0..{num_classes - 1}")
    # Rows are channel-major: 1024 red, 1024 green, 1024 blue values.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a pickle cannot run arbitrary code."""

    ALLOWED = {
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _pickle_entry(path: Path, key: bytes):
    """``key`` of the dict pickled in ``path`` (the CIFAR release pickles byte-string keys)."""
    try:
        with open(path, "rb") as handle:
            content = _CifarUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected a CIFAR python-release batch") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise InputError(f"{path}: not a CIFAR python-release pickle ({error})") from None
    if not isinstance(content, dict) or key not in content:
        raise InputError(f"{path}: expected a pickled dict with key {key.decode()!r}")
    return content[key]


# --- image folders and Tiny-ImageNet -----------------------------------------------------


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


def _cache_folder(cache_dir: str | Path | None, dataset: str, split: str, root: Path) -> Path:
    """One folder per (dataset, split, source folder): a changed source replaces it, never piles up."""
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "data"
    root_id = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return parent / f"{dataset}-{split}-{root_id}"


def _cache_key(listing: FileListing, image_size: int) -> str:
    """A digest of every file's path, size and modification time, and the labels and classes."""
    digest = hashlib.sha256(f"{CACHE_FORMAT_VERSION}\n{image_size}\n{listing.classes}\n".encode())
    digest.update(listing.labels.tobytes())
    for path in (*listing.paths, *listing.side_files):
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"{path}: image file not found") from None
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _decode_cached(listing: FileListing, info: DatasetInfo, cache_folder: Path) -> ImageSet:
    key = _cache_key(listing, info.image_size)
    cached = _read_cache(cache_folder, key)
    if cached is not None:
        return cached
    images = ImageSet(_decode_all(listing.paths, info.image_size), listing.labels, listing.classes)
    _write_cache(cache_folder, key, images)
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
        with atomic_output_dir(cache_folder) as staging:
            np.save(staging / "images.npy", images.images)
            np.save(staging / "labels.npy", images.labels)
            (staging / "source.json").write_text(json.dumps({"key": key, "classes": list(images.classes)}))
    except OSError as error:
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


# --- download -------------------------------------------------------------------------------


def download_cifar(dataset: str, root: str | Path, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch and unpack the CIFAR python release into ``root``; return its folder (kept if present).

    The archive's MD5 must match the published one (``url``/``md5`` override the official
    release, for mirrors and tests).  The folder appears complete or not at all.
    """
    if dataset not in CIFAR_RELEASES:
        raise InputError(f"no download for dataset {dataset!r}; expected one of {', '.join(CIFAR_RELEASES)}")
    release = CIFAR_RELEASES[dataset]
    url, md5 = url or release.url, (md5 or release.md5).lower()
    target = Path(root).expanduser() / release.folder
    if _cifar_pickle_folder(dataset, target) == target:
        return target
    with atomic_output_dir(target) as staging:
        archive = staging / "download.tar.gz"
        digest = _download(url, archive)
        if digest != md5:
            raise InputError(f"{url}: MD5 {digest} does not match the published {md5}; download again")
        _extract_release(archive, release.folder, staging, url)
        archive.unlink()
        if _cifar_pickle_folder(dataset, staging) != staging:
            raise InputError(f"{url}: the archive holds no {release.folder}/ CIFAR python release")
    return target


def _download(url: str, destination: Path) -> str:
    """Stream ``url`` into ``destination``; return the MD5 hex digest of the bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:  # urllib.error.URLError is an OSError
        raise InputError(f"{url}: download failed ({error})") from None
    return digest.hexdigest()


def _extract_release(archive: Path, folder: str, destination: Path, url: str) -> None:
    """Unpack the regular files under ``folder/`` into ``destination``; links or paths leaving it are refused."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                relative = _member_path(member, folder, url)
                if member.isfile() and relative.parts:
                    (destination / relative).parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as source, open(destination / relative, "wb") as out:
                        shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise InputError(f"{url}: not a readable .tar.gz archive ({error})") from None


def _member_path(member: tarfile.TarInfo, folder: str, url: str) -> PurePosixPath:
    """The member's path inside ``folder/``; anything else in the archive is refused."""
    parts = PurePosixPath(member.name).parts
    if not (member.isfile() or member.isdir()) or not parts or parts[0] != folder or ".." in parts:
        raise InputError(f"{url}: unexpected archive member {member.name!r}; expected files under {folder}/")
    return PurePosixPath(*parts[1:])


# --- subsets --------------------------------------------------------------------------------


def subset(images: ImageSet, per_class: int, seed: int) -> ImageSet:
    """At most ``per_class`` images of each class, drawn with ``seed``, kept in their original order."""
    if per_class < 1:
        raise InputError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(images.labels == label))[:per_class]
              for label in range(len(images.classes))]
    keep = np.sort(np.concatenate(chosen))
    return ImageSet(images.images[keep], images.labels[keep], images.classes)


def __getattr__(name: str):
    # BatchLoader needs torch; importing it on first use keeps this module, and so the
    # decode workers and the CLI, free of torch.
    if name == "BatchLoader":
        from attentionlite.model.transforms import BatchLoader

        return BatchLoader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
