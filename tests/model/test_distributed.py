"""Data-parallel training on CPU (gloo, 2 processes): a step on 2 x 8 images is the step on 16 in one process."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from torch import nn

import attentionlite.model.training.train as train_module
from attentionlite.model.data.loader import BatchLoader
from attentionlite.model.data.registry import ImageSet, dataset_info
from attentionlite.model.training.checkpoint import load_checkpoint
from attentionlite.model.training.distributed import World, data_parallel
from attentionlite.model.training.train import TrainConfig, train

IMAGES, RANKS = 16, 2


def toy(batch_norm: bool) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm2d(4)] if batch_norm else []
    return nn.Sequential(nn.Conv2d(3, 4, 3), *norm, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 5))


def one_step(model: nn.Module, step: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    model.train()
    nn.functional.cross_entropy(step(images), labels).backward()
    optimizer.step()
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(IMAGES, 3, 8, 8, generator=generator), torch.randint(0, 5, (IMAGES,), generator=generator)


def _rank(rank: int, port: int, batch_norm: bool, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=RANKS)
    images, labels = batch()
    share = slice(rank * IMAGES // RANKS, (rank + 1) * IMAGES // RANKS)
    model = toy(batch_norm)
    state = one_step(model, data_parallel(model, World(rank, RANKS)), images[share], labels[share])
    if rank == 0:
        torch.save(state, out)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("batch_norm", [False, True], ids=["no batch statistics", "synchronised batch norm"])
def test_a_step_on_two_shares_equals_the_step_on_the_whole_batch(batch_norm, tmp_path):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_rank, args=(free_port(), batch_norm, out), nprocs=RANKS, join=True)
    distributed = torch.load(out)
    model = toy(batch_norm)
    alone = one_step(model, model, *batch())
    assert distributed.keys() == alone.keys()
    for name, value in alone.items():
        torch.testing.assert_close(distributed[name], value, atol=1e-6, rtol=0, msg=name)
    if batch_norm:  # the running statistics are those of all 16 images, not of one share
        assert not torch.allclose(toy(True)[1].running_mean, alone["1.running_mean"])


def test_the_shares_of_a_batch_are_the_batch_cut_in_order():
    images = ImageSet(np.random.default_rng(0).integers(0, 255, (11, 32, 32, 3), dtype=np.uint8),
                      np.arange(11) % 10, tuple(f"c{i}" for i in range(10)))
    info = dataset_info("cifar10")

    def batches(shard):
        loader = BatchLoader(images, info, batch_size=5, shuffle=True, augment=True, seed=3, shard=shard)
        loader.set_epoch(2)
        return list(loader)

    whole = batches((0, 1))
    shares = [batches((rank, 3)) for rank in range(3)]
    for index, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([share[index][0] for share in shares]), x)
        assert torch.equal(torch.cat([share[index][1] for share in shares]), y)


# ----------------------------------------------------------------------------- the train command under torchrun


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    """An image-folder CIFAR-10 look-alike of uniform noise (no near-constant channels): 2 train PNGs per
    class (20: one batch of 16), 1 test."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 1)):
        for label in range(10):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3))
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")
    return root


def train_command(data: str, out, processes: int, epochs: int, *extra: str) -> list[str]:
    arguments = ["train", "--model", "resnet26", "--width", "0.25", "--dataset", "cifar10", "--data-dir", data,
                 "--batch-size", "16", "--epochs", str(epochs), "--density", "0.5", "--quiet",
                 "--cache-dir", str(out) + "-cache", "--out", str(out), *extra]
    if processes == 1:
        return [sys.executable, "-m", "attentionlite", *arguments]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "--master-port", str(free_port()), "-m", "attentionlite", *arguments]


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


# Float32 alone makes two equivalent runs of this small ResNet differ: at initialisation its gradient in
# float32 is 1.8e-3 (of 0.78) from the float64 one, whichever batch norm computes it.  Measured between one
# process and two: weights 1.3e-5 apart after one step, 5.5e-4 after a prune-and-regrow step and a second
# one, running statistics recomputed from them up to 8e-3.  A real fault is far larger: with the batch
# norms left unsynchronised the weights part by 0.15 after one step.  (The step itself is checked to 1e-6
# on the toys above.)
WEIGHTS_ATOL, STATISTICS_ATOL, STATISTICS_RTOL = 1e-3, 2e-2, 5e-2


def assert_same_run(first, second) -> None:
    a, b = (load_checkpoint(path) for path in (first, second))
    for (name, value), other in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        if "running_" in name:
            torch.testing.assert_close(value, other, atol=STATISTICS_ATOL, rtol=STATISTICS_RTOL, msg=name)
        else:
            torch.testing.assert_close(value, other, atol=WEIGHTS_ATOL, rtol=0, msg=name)
    assert all(torch.equal(a.masks[name], b.masks[name]) for name in a.masks)
    for row, other in zip(a.history, b.history):  # losses and accuracy of the whole batch, not of rank 0's share
        assert row["loss"] == pytest.approx(other["loss"], rel=1e-6)
        assert row["train_accuracy"] == other["train_accuracy"]


def in_process_config(data: str, out, epochs: int) -> TrainConfig:
    """What :func:`train_command` asks the CLI for, as a config (``progress`` may differ on resume)."""
    return TrainConfig(model="resnet26", width=0.25, dataset="cifar10", data_dir=data, batch_size=16, epochs=epochs,
                       density=0.5, cache_dir=str(out) + "-cache", out=str(out), progress=False)


def test_torchrun_training_equals_one_process(tiny_images, tmp_path):
    # one step of 16 images at density 0.5 (masks applied after the step), synchronised batch norms and
    # their recomputed statistics.  (Over a prune-and-regrow step the runs would part: magnitude pruning
    # turns float32's 1e-5 differences into different choices among near-equal weights.)
    data = str(tiny_images)
    train(in_process_config(data, tmp_path / "alone", 1))
    run(train_command(data, tmp_path / "two", 2, 1))
    assert_same_run(tmp_path / "alone" / "checkpoint.pt", tmp_path / "two" / "checkpoint.pt")


def test_a_one_process_run_resumes_with_two(tiny_images, tmp_path, monkeypatch):
    # interrupted after epoch 1 (and its prune-and-regrow step), the second epoch run by two processes
    data = str(tiny_images)
    train(in_process_config(data, tmp_path / "alone", 2))
    finish_epoch = train_module._train_and_record_epoch

    def interrupted(run, epoch, path):
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C in the second epoch: the first is on disk
        finish_epoch(run, epoch, path)

    monkeypatch.setattr(train_module, "_train_and_record_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(in_process_config(data, tmp_path / "resumed", 2))
    run(train_command(data, tmp_path / "resumed", 2, 2, "--resume"))
    assert_same_run(tmp_path / "alone" / "checkpoint.pt", tmp_path / "resumed" / "checkpoint.pt")
