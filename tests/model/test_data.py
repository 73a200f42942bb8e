"""Datasets: readers for each format, the decode cache, download, subsets, transforms, BatchLoader."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attentionlite.errors import InputError
from attentionlite.model.data import folders
from attentionlite.model.data.cifar import download_cifar
from attentionlite.model.data.folders import list_image_files
from attentionlite.model.data.loader import BatchLoader
from attentionlite.model.data.registry import DATASETS, ImageSet
from attentionlite.model.data.splits import hold_out, load_split, subset
from attentionlite.model.data.transforms import crop_and_flip, normalize, random_crop_and_flip

# CIFAR-10's label order 0..9, as published with the dataset.
CIFAR10_LABEL_ORDER = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --- fixtures written by the tests ------------------------------------------------------------


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """The python release's row layout, per its documentation: 1024 red, 1024 green, 1024 blue values."""
    return np.stack([np.concatenate([image[:, :, c].ravel() for c in range(3)]) for image in images])


def _dump(path, content: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def _write_cifar10(folder, per_batch=3, seed=0) -> dict[str, ImageSet]:
    """A CIFAR-10 python release with ``per_batch`` images in each of its six batches."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    _dump(folder / "batches.meta", {b"label_names": [name.encode() for name in CIFAR10_LABEL_ORDER]})
    splits = {"train": [], "test": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        _dump(folder / name, {b"data": _cifar_rows(images), b"labels": labels, b"batch_label": name.encode()})
        splits["test" if name == "test_batch" else "train"].append((images, labels))
    return {split: ImageSet(np.concatenate([i for i, _ in parts]), np.concatenate([labels for _, labels in parts]),
                            CIFAR10_LABEL_ORDER) for split, parts in splits.items()}


def _write_png_folder(root, classes=("cat", "ant", "bee"), per_class=2, size=32, seed=0) -> dict:
    """root/{train,test}/{class}/NN.png with random pixels; returns the pixels by path."""
    rng = np.random.default_rng(seed)
    written = {}
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                path = root / split / name / f"{index:02d}.png"
                Image.fromarray(pixels).save(path)
                written[path] = pixels
    return written


def _write_tiny_imagenet(root) -> None:
    """Two classes (listed unsorted in wnids.txt), flat-colour 64 px JPEGs, one of them grey."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("n02\nn01\n")
    colours = {"n01": (200, 30, 30), "n02": (30, 30, 200)}
    for wnid, colour in colours.items():
        (root / "train" / wnid / "images").mkdir(parents=True)
        Image.new("RGB", (64, 64), colour).save(root / "train" / wnid / "images" / f"{wnid}_0.JPEG")
    Image.new("L", (64, 64), 90).save(root / "train" / "n02" / "images" / "n02_1.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    for index, wnid in enumerate(["n02", "n01", "n02"]):
        Image.new("RGB", (64, 64), colours[wnid]).save(root / "val" / "images" / f"val_{index}.JPEG")
    (root / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn02\t0\t0\t63\t63\nval_1.JPEG\tn01\t1\t2\t40\t40\nval_2.JPEG\tn02\t5\t5\t9\t9\n"
    )


def _assert_same(actual: ImageSet, expected: ImageSet) -> None:
    assert actual.images.dtype == np.uint8 and actual.labels.dtype == np.int64
    np.testing.assert_array_equal(actual.images, expected.images)
    np.testing.assert_array_equal(actual.labels, expected.labels)
    assert actual.classes == expected.classes


# --- registry ---------------------------------------------------------------------------------


def test_datasets_registry():
    assert {name: (info.num_classes, info.image_size) for name, info in DATASETS.items()} == {
        "cifar10": (10, 32), "cifar100": (100, 32), "tinyimagenet": (200, 64)}
    assert DATASETS["cifar10"].mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=1e-3)
    assert all(len(info.mean) == len(info.std) == 3 for info in DATASETS.values())


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(InputError, match="unknown dataset 'mnist'"):
        load_split("mnist", tmp_path, "train")
    with pytest.raises(InputError, match="unknown split 'val'"):
        load_split("cifar10", tmp_path, "val")


# --- CIFAR python release ----------------------------------------------------------------------


@pytest.mark.parametrize("given", ["release folder", "its parent"])
def test_cifar10_pickles_round_trip(tmp_path, given):
    expected = _write_cifar10(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if given == "release folder" else tmp_path
    for split in ("train", "test"):
        _assert_same(load_split("cifar10", root, split), expected[split])
    assert len(load_split("cifar10", root, "train")) == 15


def test_cifar100_pickles_round_trip(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"class{i:03d}" for i in range(100)]
    _dump(folder / "meta", {b"fine_label_names": [n.encode() for n in names], b"coarse_label_names": [b"x"] * 20})
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        fine = [0, 99, 42, 42]
        _dump(folder / split, {b"data": _cifar_rows(images), b"fine_labels": fine, b"coarse_labels": [0, 19, 1, 1]})
        _assert_same(load_split("cifar100", tmp_path, split), ImageSet(images, np.array(fine), tuple(names)))


def test_cifar_pickle_of_wrong_shape_names_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    _dump(folder / "data_batch_3", {b"data": np.zeros((3, 1024), np.uint8), b"labels": [0, 1, 2]})
    with pytest.raises(InputError, match="data_batch_3.*shape"):
        load_split("cifar10", tmp_path, "train")


def test_cifar_pickle_errors_name_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    _dump(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(InputError, match="test_batch.*labels in 0..9"):
        load_split("cifar10", tmp_path, "test")
    (folder / "data_batch_5").unlink()
    with pytest.raises(InputError, match="data_batch_5: file not found"):
        load_split("cifar10", tmp_path, "train")
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="data_batch_1: not a CIFAR"):
        load_split("cifar10", tmp_path, "train")


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    (folder / "data_batch_1").write_bytes(pickle.dumps(ExecutesOnLoad(), protocol=2))
    with pytest.raises(InputError, match="data_batch_1.*not allowed"):
        load_split("cifar10", tmp_path, "train")
    assert not (tmp_path / "pwned").exists()


class ExecutesOnLoad:
    def __reduce__(self):
        return (os.mkdir, ("pwned",))


# --- image folders and Tiny-ImageNet ---------------------------------------------------------


def test_png_folder_round_trips_pixels_and_labels(tmp_path):
    written = _write_png_folder(tmp_path)
    for split in ("train", "test"):
        loaded = load_split("cifar10", tmp_path, split, cache_dir=tmp_path / "cache")
        assert loaded.classes == ("ant", "bee", "cat")
        paths = [tmp_path / split / name / f"{i:02d}.png" for name in ("ant", "bee", "cat") for i in range(2)]
        _assert_same(loaded, ImageSet(np.stack([written[p] for p in paths]), np.array([0, 0, 1, 1, 2, 2]),
                                      ("ant", "bee", "cat")))


def test_jpeg_folder_and_odd_modes_decode_to_rgb(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "red").mkdir(parents=True)
        Image.new("RGB", (32, 32), (250, 10, 10)).save(tmp_path / split / "red" / "a.jpg", quality=95)
        Image.new("RGBA", (32, 32), (0, 0, 255, 7)).save(tmp_path / split / "red" / "b.PNG")
        (tmp_path / split / "red" / ".DS_Store").write_bytes(b"ignored")
    loaded = load_split("cifar10", tmp_path, "train", cache_dir=tmp_path / "cache")
    assert loaded.images.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(loaded.images[0].reshape(-1, 3).mean(0), (250, 10, 10), atol=3)
    assert (loaded.images[1] == (0, 0, 255)).all()


def test_tiny_imagenet_layout(tmp_path):
    _write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    train = load_split("tinyimagenet", tmp_path, "train", cache_dir=tmp_path / "cache")
    assert train.classes == ("n01", "n02") and train.labels.tolist() == [0, 1, 1]
    assert train.images.shape == (3, 64, 64, 3)
    np.testing.assert_allclose(train.images[:, 10, 10], [(200, 30, 30), (30, 30, 200), (90, 90, 90)], atol=4)
    test = load_split("tinyimagenet", tmp_path / "tiny-imagenet-200", "test", cache_dir=tmp_path / "cache")
    assert test.labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(test.images[:, 0, 0], [(30, 30, 200), (200, 30, 30), (30, 30, 200)], atol=4)


def test_tiny_imagenet_errors_name_the_file(tmp_path):
    _write_tiny_imagenet(tmp_path)
    annotations = tmp_path / "val" / "val_annotations.txt"
    annotations.write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(InputError, match="val_annotations.txt: line 1"):
        load_split("tinyimagenet", tmp_path, "test", cache_dir=tmp_path / "cache")
    annotations.write_text("val_7.JPEG\tn01\t0\t0\t1\t1\n")
    with pytest.raises(InputError, match="val_7.JPEG: image file not found"):
        load_split("tinyimagenet", tmp_path, "test", cache_dir=tmp_path / "cache")


def _remove_class_images(root):
    for image_file in (root / "train" / "bee").iterdir():
        image_file.unlink()


@pytest.mark.parametrize("damage, split, expected", [
    (_remove_class_images, "train", r"train/bee: no \.jpg, \.jpeg or \.png images"),
    (lambda root: (root / "train" / "ant" / "01.png").write_bytes(b"\x89PNG truncated"), "train",
     "train/ant/01.png: unreadable image"),
    (lambda root: Image.new("RGB", (31, 32)).save(root / "train" / "cat" / "00.png"), "train",
     "train/cat/00.png: image is 31x32, expected 32x32"),
    (lambda root: (root / "test" / "cow").mkdir(), "test", "test: expected the same class folders"),
])
def test_image_folder_errors_name_the_file(tmp_path, damage, split, expected):
    _write_png_folder(tmp_path / "data")
    damage(tmp_path / "data")
    with pytest.raises(InputError, match=expected):
        load_split("cifar10", tmp_path / "data", split, cache_dir=tmp_path / "cache")


def test_missing_folders_and_too_many_classes(tmp_path):
    with pytest.raises(InputError, match="nowhere: dataset folder not found"):
        load_split("cifar10", tmp_path / "nowhere", "train")
    _write_png_folder(tmp_path, classes=("a", "b", "c"))
    with pytest.raises(InputError, match=r"train/train: folder not found"):
        load_split("cifar10", tmp_path / "train", "train", cache_dir=tmp_path / "cache")
    many = tmp_path / "many"
    _write_png_folder(many, classes=tuple(f"c{i:02d}" for i in range(11)), per_class=1)
    with pytest.raises(InputError, match="11 classes found, but cifar10 has 10"):
        load_split("cifar10", many, "train", cache_dir=tmp_path / "cache")


# --- the decode cache --------------------------------------------------------------------------


def _forbid_decoding(monkeypatch):
    def fail(paths, image_size):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(folders, "_decode_files", fail)


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    _write_png_folder(tmp_path / "src")
    first = load_split("cifar10", tmp_path / "src", "train", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    _forbid_decoding(monkeypatch)
    _assert_same(load_split("cifar10", tmp_path / "src", "train", cache_dir=tmp_path / "cache"), first)


def test_cache_is_invalidated_when_the_source_changes(tmp_path):
    written = _write_png_folder(tmp_path / "src")
    changed = tmp_path / "src" / "train" / "bee" / "01.png"
    load_split("cifar10", tmp_path / "src", "train", cache_dir=tmp_path / "cache")
    Image.fromarray(255 - written[changed]).save(changed)
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    reloaded = load_split("cifar10", tmp_path / "src", "train", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(reloaded.images[3], 255 - written[changed])
    Image.fromarray(written[changed]).save(tmp_path / "src" / "train" / "bee" / "02.png")
    assert len(load_split("cifar10", tmp_path / "src", "train", cache_dir=tmp_path / "cache")) == 7
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_unreadable_cache_is_rebuilt(tmp_path):
    _write_png_folder(tmp_path / "src")
    first = load_split("cifar10", tmp_path / "src", "test", cache_dir=tmp_path / "cache")
    [cache_folder] = (tmp_path / "cache").iterdir()
    (cache_folder / "images.npy").write_bytes(b"garbage")
    _assert_same(load_split("cifar10", tmp_path / "src", "test", cache_dir=tmp_path / "cache"), first)


def test_unwritable_cache_warns_and_still_loads(tmp_path):
    written = _write_png_folder(tmp_path / "src", per_class=1)
    (tmp_path / "a-file").write_text("")
    with pytest.warns(UserWarning, match="decode cache not written"):
        loaded = load_split("cifar10", tmp_path / "src", "test", cache_dir=tmp_path / "a-file" / "cache")
    np.testing.assert_array_equal(loaded.images[0], written[tmp_path / "src" / "test" / "ant" / "00.png"])


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    _write_png_folder(tmp_path / "src")
    monkeypatch.setenv("ATTENTIONLITE_CACHE", str(tmp_path / "env-cache"))
    load_split("cifar10", tmp_path / "src", "train")
    assert [p.name.startswith("cifar10-train-") for p in (tmp_path / "env-cache" / "data").iterdir()] == [True]


def test_parallel_decode_matches_serial_and_reports_bad_files(tmp_path, monkeypatch):
    written = _write_png_folder(tmp_path / "src", per_class=3)
    monkeypatch.setattr(folders, "PARALLEL_DECODE_MIN_FILES", 1)
    monkeypatch.setattr(folders, "DECODE_CHUNK", 2)
    loaded = load_split("cifar10", tmp_path / "src", "train", cache_dir=tmp_path / "cache")
    paths = sorted(p for p in written if p.parts[-3] == "train")  # classes and files are both sorted
    np.testing.assert_array_equal(loaded.images, np.stack([written[p] for p in paths]))
    (tmp_path / "src" / "test" / "bee" / "02.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bee/02.png: unreadable image"):
        load_split("cifar10", tmp_path / "src", "test", cache_dir=tmp_path / "cache")


# --- download -----------------------------------------------------------------------------------


def _tarball(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_cifar_verifies_and_unpacks(tmp_path):
    expected = _write_cifar10(tmp_path / "made" / "cifar-10-batches-py")
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes()
               for p in (tmp_path / "made" / "cifar-10-batches-py").iterdir()}
    md5 = _tarball(tmp_path / "release.tar.gz", members)
    folder = download_cifar("cifar10", tmp_path / "root", url=(tmp_path / "release.tar.gz").as_uri(), md5=md5)
    assert folder == tmp_path / "root" / "cifar-10-batches-py"
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["cifar-10-batches-py"]
    _assert_same(load_split("cifar10", tmp_path / "root", "test"), expected["test"])
    assert download_cifar("cifar10", tmp_path / "root", url="file:///nonexistent", md5=md5) == folder


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    _tarball(tmp_path / "release.tar.gz", {"cifar-10-batches-py/batches.meta": b"x"})
    with pytest.raises(InputError, match="MD5 .* does not match the published c58f3010"):
        download_cifar("cifar10", tmp_path / "root", url=(tmp_path / "release.tar.gz").as_uri())
    assert list((tmp_path / "root").iterdir()) == []


def test_download_refuses_members_outside_the_release(tmp_path):
    md5 = _tarball(tmp_path / "evil.tar.gz", {"cifar-100-python/../../escaped": b"x"})
    with pytest.raises(InputError, match="unexpected archive member"):
        download_cifar("cifar100", tmp_path / "root", url=(tmp_path / "evil.tar.gz").as_uri(), md5=md5)
    assert not (tmp_path / "escaped").exists() and list((tmp_path / "root").iterdir()) == []


def test_download_errors(tmp_path):
    with pytest.raises(InputError, match="no download for dataset 'tinyimagenet'"):
        download_cifar("tinyimagenet", tmp_path)
    with pytest.raises(InputError, match="missing.tar.gz: download failed"):
        download_cifar("cifar10", tmp_path, url=(tmp_path / "missing.tar.gz").as_uri())


# --- subsets --------------------------------------------------------------------------------------


def _indexed_set(count: int, num_classes: int) -> ImageSet:
    """Image i is filled with the value i, so a batch tells which images it holds."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 32, 32, 3)).copy()
    return ImageSet(images, np.arange(count, dtype=np.int64) % num_classes, tuple("abcdefghij"[:num_classes]))


def test_subset_is_stratified_and_deterministic():
    full = _indexed_set(60, 3)
    picked = subset(full, per_class=5, seed=7)
    assert np.bincount(picked.labels).tolist() == [5, 5, 5]
    ids = picked.images[:, 0, 0, 0].astype(int)
    assert (full.labels[ids] == picked.labels).all() and (np.diff(ids) > 0).all()
    np.testing.assert_array_equal(subset(full, 5, seed=7).images, picked.images)
    assert not np.array_equal(subset(full, 5, seed=8).images, picked.images)
    assert len(subset(full, per_class=100, seed=0)) == 60
    with pytest.raises(InputError, match="per_class must be at least 1"):
        subset(full, 0, seed=0)


def test_hold_out_cuts_a_split_into_two_disjoint_parts_that_cover_it():
    full = _indexed_set(60, 3)
    rest, held = hold_out(full, per_class=4, seed=3)
    assert np.bincount(held.labels).tolist() == [4, 4, 4] and np.bincount(rest.labels).tolist() == [16, 16, 16]
    held_ids, rest_ids = (part.images[:, 0, 0, 0].astype(int) for part in (held, rest))
    assert sorted(held_ids.tolist() + rest_ids.tolist()) == list(range(60))
    assert (full.labels[rest_ids] == rest.labels).all() and (np.diff(rest_ids) > 0).all()


# --- transforms -----------------------------------------------------------------------------------


def _crop(image, padding, top, left, flip=False):
    return crop_and_flip(image, padding, torch.tensor([top]), torch.tensor([left]), torch.tensor([flip]))


def test_crop_and_flip_against_hand_computation():
    image = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    assert _crop(image, 1, 0, 0)[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 2, 3], [0, 5, 6, 7], [0, 9, 10, 11]]
    assert _crop(image, 1, 2, 1)[0, 0].tolist() == [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [0, 0, 0, 0]]
    assert torch.equal(_crop(image, 1, 1, 1), image)
    assert _crop(image, 0, 0, 0, flip=True)[0, 0].tolist() == [[4, 3, 2, 1], [8, 7, 6, 5], [12, 11, 10, 9],
                                                                [16, 15, 14, 13]]
    # Crop first, then mirror the cropped window (as RandomCrop then RandomHorizontalFlip do).
    assert _crop(image, 1, 0, 2, flip=True)[0, 0].tolist() == [[0, 0, 0, 0], [0, 4, 3, 2], [0, 8, 7, 6],
                                                                [0, 12, 11, 10]]


def test_crop_and_flip_keep_channels_and_samples_apart():
    pair = torch.stack([torch.full((2, 3, 3), 1), torch.full((2, 3, 3), 2)]).to(torch.uint8)  # (2, 2, 3, 3)
    pair[:, 1] += 10
    out = crop_and_flip(pair, 1, torch.tensor([1, 0]), torch.tensor([1, 0]), torch.tensor([False, True]))
    assert torch.equal(out[0], pair[0])
    assert out[1, 1].tolist() == [[0, 0, 0], [12, 12, 0], [12, 12, 0]]


def test_random_crop_and_flip_draw_per_sample():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    augmented = random_crop_and_flip(images, 2, torch.Generator().manual_seed(1))
    assert torch.equal(random_crop_and_flip(images, 2, torch.Generator().manual_seed(1)), augmented)
    draws = [next((t, left, f) for t in range(5) for left in range(5) for f in (False, True)
                  if torch.equal(_crop(images[i:i + 1], 2, t, left, f)[0], augmented[i]))
             for i in range(len(images))]
    assert len({(t, left) for t, left, _ in draws}) > 10
    assert 16 < sum(f for _, _, f in draws) < 48


def test_normalize_uses_channel_statistics():
    info = DATASETS["cifar100"]
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(1, 3, 2, 1)
    out = normalize(pixels, info.mean, info.std)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 2, 1)
    for channel in range(3):
        assert out[0, channel, 0, 0].item() == pytest.approx(-info.mean[channel] / info.std[channel], rel=1e-6)
        assert out[0, channel, 1, 0].item() == pytest.approx((1 - info.mean[channel]) / info.std[channel], rel=1e-6)


# --- BatchLoader ----------------------------------------------------------------------------------


def _ids(x: torch.Tensor) -> list[int]:
    """Recover image indices of an un-augmented batch (image i holds value i everywhere)."""
    info = DATASETS["cifar10"]
    return [round((x[b, 0, 0, 0].item() * info.std[0] + info.mean[0]) * 255) for b in range(len(x))]


def test_batch_loader_in_order_without_augmentation():
    images = _indexed_set(10, 3)
    loader = BatchLoader(images, DATASETS["cifar10"], batch_size=4, shuffle=False, augment=False, seed=0)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert _ids(torch.cat([x for x, _ in batches])) == list(range(10))
    assert torch.cat([y for _, y in batches]).tolist() == [i % 3 for i in range(10)]
    assert len(BatchLoader(images, DATASETS["cifar10"], 4, False, False, 0, drop_last=True)) == 2


def test_batch_loader_epochs_are_reproducible():
    images = _indexed_set(10, 3)
    loader = BatchLoader(images, DATASETS["cifar10"], batch_size=4, shuffle=True, augment=False, seed=3,
                         drop_last=True)
    order0 = [i for x, _ in loader for i in _ids(x)]
    assert len(order0) == 8 and len(set(order0)) == 8
    assert [i for x, _ in loader for i in _ids(x)] == order0
    loader.set_epoch(1)
    assert [i for x, _ in loader for i in _ids(x)] != order0
    augmenting = [BatchLoader(images, DATASETS["cifar10"], 4, True, True, seed=3) for _ in range(2)]
    for loader in augmenting:
        loader.set_epoch(5)
    for (x1, y1), (x2, y2) in zip(*augmenting):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_batch_loader_stops_its_thread_and_passes_errors_on():
    threads_before = threading.active_count()
    loader = BatchLoader(_indexed_set(40, 2), DATASETS["cifar10"], 2, True, True, seed=0)
    for _ in loader:
        break
    assert threading.active_count() == threads_before
    four_channels = ImageSet(np.zeros((4, 32, 32, 4), np.uint8), np.zeros(4, np.int64), ("a",))
    with pytest.raises(RuntimeError):
        list(BatchLoader(four_channels, DATASETS["cifar10"], 2, False, False, 0))


def test_reading_and_decoding_images_does_not_import_torch():
    """The decode workers and the CLI load these modules; torch would cost them seconds each."""
    code = ("import sys; import attentionlite.model.data.splits; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the shared CIFAR-10 folder ---------------------------------------------------------------------


@pytest.mark.parametrize("split, per_class", [("train", 5000), ("test", 1000)])
def test_shared_cifar10_counts_and_label_order(cifar10_dir, split, per_class):
    """All 60,000 files are listed; decoding them all takes 6 s on two idle cores, so it is not done here."""
    listing = list_image_files(cifar10_dir, split)
    assert listing.classes == CIFAR10_LABEL_ORDER
    assert np.bincount(listing.labels).tolist() == [per_class] * 10
    assert [Path(path).parent.name for path in listing.paths[::per_class]] == list(CIFAR10_LABEL_ORDER)


def test_shared_cifar10_jpegs_decode_exactly(cifar10_dir, tmp_path):
    """Two real JPEGs per class and split, linked into a small folder, decode as Pillow decodes them."""
    linked = []
    for class_folder in sorted(cifar10_dir.glob("*/*")):
        copy = tmp_path / "src" / class_folder.parent.name / class_folder.name
        copy.mkdir(parents=True)
        for image_file in sorted(class_folder.iterdir())[:2]:
            (copy / image_file.name).symlink_to(image_file)
            linked.append(image_file)
    loaded = load_split("cifar10", tmp_path / "src", "test", cache_dir=tmp_path / "cache")
    assert loaded.classes == CIFAR10_LABEL_ORDER and loaded.labels.tolist() == [i // 2 for i in range(20)]
    test_files = [path for path in linked if path.parts[-3] == "test"]
    for pixels, image_file in zip(loaded.images, test_files, strict=True):
        np.testing.assert_array_equal(pixels, np.asarray(Image.open(image_file).convert("RGB")))
