"""``attentionlite compact``: a column-pruned or dimension-pruned checkpoint rewritten as its smaller dense model."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.training.checkpoint import compacted_model, load_checkpoint, save_derived
from attentionlite.model.training.evaluate import model_costs

COMPACTABLE = ("column", "dims")


def compact_checkpoint(source: str | Path, destination: str | Path) -> dict:
    """Write the compacted form of a column- or dimension-pruned checkpoint; returns sizes before and after.

    The compacted model is checked against the masked one on a random batch
    (outputs equal to 1e-5) before anything is written.
    """
    checkpoint = load_checkpoint(source)
    if checkpoint.prune_mode not in COMPACTABLE or checkpoint.compacted or not checkpoint.masks:
        state = " (already compacted)" if checkpoint.compacted else "" if checkpoint.masks else " (still searching)"
        raise InputError(f"{source}: prune mode {checkpoint.prune_mode!r}{state}; expected an uncompacted "
                         "checkpoint trained with column pruning (prune=column) or dimension pruning (prune=dims)")
    compacted = compacted_model(checkpoint.model, checkpoint.prune_mode, checkpoint.masks).eval()
    _check_same_outputs(checkpoint.model, compacted, checkpoint.arch["image_size"])
    save_derived(destination, checkpoint, compacted, compacted=True)
    before = model_costs(checkpoint.model, checkpoint.arch["image_size"])
    after = model_costs(compacted, checkpoint.arch["image_size"])
    return {"out": str(destination)} | {f"{key}_before": value for key, value in before.items()} | {
        f"{key}_after": value for key, value in after.items()}


@torch.no_grad()
def _check_same_outputs(masked: nn.Module, compacted: nn.Module, image_size: int) -> None:
    """Outputs agree to 1e-5 relative to their largest magnitude (float sums differ in order only)."""
    images = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    expected = masked(images)  # (2, classes)
    difference = (expected - compacted(images)).abs().max().item()
    if difference > 1e-5 * (1.0 + expected.abs().max().item()):
        raise RuntimeError(f"compaction changed the outputs by {difference:.2e}; this is a bug")
