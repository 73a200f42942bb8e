"""CIFAR-10/100 in the python pickle release: reading its batches and downloading it (MD5-checked).

The pickles hold decoded pixels already, so they are read directly (no decode cache).
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from attentionlite.errors import InputError
from attentionlite.files import atomic_output_dir
from attentionlite.model.data.registry import ImageSet


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


def cifar_pickle_folder(dataset: str, root: Path) -> Path | None:
    """``root`` itself or its release subfolder, if either holds the CIFAR pickles' meta file."""
    if dataset not in CIFAR_RELEASES:
        return None
    meta_name = "batches.meta" if dataset == "cifar10" else "meta"
    for folder in (root, root / CIFAR_RELEASES[dataset].folder):
        if (folder / meta_name).is_file():
            return folder
    return None


def read_cifar_pickles(dataset: str, folder: Path, split: str) -> ImageSet:
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
    if cifar_pickle_folder(dataset, target) == target:
        return target
    with atomic_output_dir(target) as staging:
        archive = staging / "download.tar.gz"
        digest = _download(url, archive)
        if digest != md5:
            raise InputError(f"{url}: MD5 {digest} does not match the published {md5}; download again")
        _extract_release(archive, release.folder, staging, url)
        archive.unlink()
        if cifar_pickle_folder(dataset, staging) != staging:
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
                source = tar.extractfile(member) if member.isfile() and relative.parts else None
                if source is not None:  # a regular file inside the release folder
                    (destination / relative).parent.mkdir(parents=True, exist_ok=True)
                    with source, open(destination / relative, "wb") as out:
                        shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise InputError(f"{url}: not a readable .tar.gz archive ({error})") from None


def _member_path(member: tarfile.TarInfo, folder: str, url: str) -> PurePosixPath:
    """The member's path inside ``folder/``; anything else in the archive is refused."""
    parts = PurePosixPath(member.name).parts
    if not (member.isfile() or member.isdir()) or not parts or parts[0] != folder or ".." in parts:
        raise InputError(f"{url}: unexpected archive member {member.name!r}; expected files under {folder}/")
    return PurePosixPath(*parts[1:])
