"""Data-parallel training over processes started by ``torchrun``: the world, synchronised batch norms.

``torchrun --nproc-per-node N -m attentionlite train ...`` starts N processes
(ranks) with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment;
:func:`join_world` turns them into a process group (gloo on CPU, NCCL on CUDA,
one GPU per local rank).  Every rank builds the same model from the same seed
and walks the same global batches (the loader gives each rank its contiguous
share of each batch, after the whole batch's augmentation is drawn), and
DistributedDataParallel averages the gradients, so a step on N shares of a
batch is the step on the whole batch in one process.  That makes the
checkpoint independent of the world size: a run resumes with another one.

Batch norms see only their rank's share, so in a world of more than one their
statistics are synchronised (:func:`synchronise_batch_norms`): sums and
sums of squares are all-reduced, through autograd, so the backward pass is
that of the whole batch too.  torch's own ``nn.SyncBatchNorm`` refuses modules
on CPU (DDP checks it: "SyncBatchNorm layers only work with GPU modules"), so
this one, written for gloo, serves both devices; it replaces the modules'
``forward`` and keeps their type, so tracing, fvcore and checkpoints still see
plain batch norms.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.nn.functional import all_reduce


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The rank that writes checkpoints, logs and progress."""
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over the ranks (unchanged in a world of one)."""
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()


def join_world(device: str) -> World:
    """The world torchrun describes in the environment, its process group started (once)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device == "cuda":
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return world


def leave_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def data_parallel(model: nn.Module, world: World) -> nn.Module:
    """What the training step calls: ``model`` wrapped in DistributedDataParallel when there are several ranks."""
    if world.size == 1:
        return model
    synchronise_batch_norms(model)
    return nn.parallel.DistributedDataParallel(model)


def synchronise_batch_norms(model: nn.Module) -> None:
    """Make every 2-D batch norm of ``model`` compute training statistics over all ranks' shares."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.forward = functools.partial(_synchronised_batch_norm, module)  # type: ignore[method-assign]


def _synchronised_batch_norm(norm: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``nn.BatchNorm2d.forward`` with the batch statistics of every rank's share (sums in float64)."""
    running = (norm.running_mean, norm.running_var, norm.num_batches_tracked)
    if not norm.training and running[0] is not None:  # evaluation: the running statistics, no communication
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
    channels = x.shape[1]
    wide = x.double()
    count = torch.full((1,), x.numel() / channels, dtype=torch.float64, device=x.device)
    with warnings.catch_warnings():  # deprecated for a private successor (_functional_collectives); still exact
        warnings.simplefilter("ignore", FutureWarning)
        totals = all_reduce(torch.cat([wide.sum((0, 2, 3)), (wide * wide).sum((0, 2, 3)), count]))
    n = totals[-1]
    mean = totals[:channels] / n
    variance = totals[channels:2 * channels] / n - mean * mean  # biased, as the normalisation uses
    running_mean, running_var, tracked = running
    if norm.training and running_mean is not None and running_var is not None and tracked is not None:
        tracked.add_(1)
        factor = 1.0 / float(tracked) if norm.momentum is None else norm.momentum
        with torch.no_grad():  # the running variance is the unbiased one, as nn.BatchNorm2d keeps it
            running_mean.mul_(1 - factor).add_(factor * mean.to(x.dtype))
            running_var.mul_(1 - factor).add_(factor * (variance * n / (n - 1)).to(x.dtype))
    shape = (1, channels, 1, 1)
    scale = torch.rsqrt(variance + norm.eps).to(x.dtype).view(shape)
    normalised = (x - mean.to(x.dtype).view(shape)) * scale
    if norm.weight is None or norm.bias is None:
        return normalised
    return normalised * norm.weight.view(shape) + norm.bias.view(shape)
