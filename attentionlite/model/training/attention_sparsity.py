"""``attentionlite sparsify-attention``: fixed attention-map sparsity, as ViTCoD prunes it.

ViTCoD (You et al., HPCA 2023) observes that a trained ViT's attention maps
change little from image to image, so each head can keep one fixed sparse
pattern.  Its procedure (GATECH-EIC/ViTCoD, ``Algorithm/deit/gen_mask.py``,
the "ratio" method) is followed here: every block's attention probabilities
are averaged over calibration images of the training split, and each head
keeps the entries of largest mean probability.  Two choices differ from it,
so that the sparsity asked for is the sparsity delivered:

- ViTCoD's ratio method keeps the same share of every query row and then
  keeps the class token's row and column whole on top, so its masks are
  denser than their name.  Here each head keeps exactly ``ceil((1 - s) T^2)``
  of its ``T x T`` entries, the largest of the head, which lets a query with
  a peaked map keep fewer than one with a flat one.
- Each query's largest entry is kept first: a query that keeps no key has no
  softmax (scaled dot-product attention returns NaN), and the rest of the
  budget then goes to the largest remaining entries.

The mask is stored as the :class:`~attentionlite.model.nets.vit.Attention`
buffer ``attn_mask``, so it is in the checkpoint's weights, applies in every
forward pass (``train --init`` fine-tunes under it) and is measured by the
tracer.  :func:`~attentionlite.model.nets.vit.polarise` is ViTCoD's split of a mask into the columns of
global tokens, run on its denser engine, and the sparse rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn
from tqdm import tqdm

from attentionlite.errors import InputError
from attentionlite.model.data.loader import BatchLoader, in_order
from attentionlite.model.data.registry import dataset_info
from attentionlite.model.data.splits import hold_out, load_split, subset
from attentionlite.model.nets.vit import Attention, polarise
from attentionlite.model.training.checkpoint import Checkpoint, load_checkpoint, save_derived
from attentionlite.model.training.evaluate import evaluate_accuracy
from attentionlite.model.training.sparsity import keep_largest
from attentionlite.model.training.train import VALIDATION_SEED

CALIBRATION_BATCH = 128  # images per forward pass while averaging the maps: memory only


def kept_per_head(tokens: int, sparsity: float) -> int:
    """Entries each head of ``tokens`` x ``tokens`` keeps at ``sparsity``: ``ceil((1 - s) T^2)``, the fewest
    that are at least the share asked for (a tolerance absorbs the float error of ``1 - s``); at least one
    per query."""
    if not 0 <= sparsity < 1:
        raise InputError(f"attention sparsity {sparsity!r}: expected a fraction in [0, 1)")
    kept = math.ceil((1 - sparsity) * tokens * tokens - 1e-6)
    if kept < tokens:
        raise InputError(f"attention sparsity {sparsity} keeps {kept} of {tokens} x {tokens} entries per head, "
                         f"fewer than one per query; expected at most {1 - tokens / tokens ** 2:.4f}")
    return kept


def keep_top_entries(mean_map: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The fixed mask of a (heads, T, T) mean attention map: per head, each query's largest entry, then
    the largest of the rest, ``kept_per_head`` in all."""
    return keep_largest(mean_map, kept_per_head(mean_map.shape[-2], sparsity))


def attention_modules(model: nn.Module) -> dict[str, Attention]:
    return {name: module for name, module in model.named_modules() if isinstance(module, Attention)}


@torch.no_grad()
def mean_attention_maps(model: nn.Module, batches, device: torch.device | str = "cpu",
                        progress: bool = False) -> dict[str, torch.Tensor]:
    """Each attention module's (heads, T, T) attention probabilities averaged over every image of
    ``batches``, under the module's mask if it has one."""
    sums: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def record(module: Attention, inputs: tuple[torch.Tensor, ...]) -> None:
            q, k, _ = module.queries_keys_values(inputs[0])
            logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # (B, heads, T, T)
            if module.attn_mask is not None:
                logits = logits.masked_fill(~module.attn_mask, -math.inf)
            total = logits.softmax(-1).sum(0).double().cpu()
            sums[name] = total if name not in sums else sums[name] + total
        return record

    handles = [module.register_forward_pre_hook(recorder(name)) for name, module in attention_modules(model).items()]
    images_seen = 0
    try:
        model.eval()
        for images, _ in tqdm(batches, desc="attention maps", unit="batch", disable=not progress, leave=False):
            model(images.to(device))
            images_seen += len(images)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / max(1, images_seen)).float() for name, total in sums.items()}


@dataclass
class Calibration:
    """A ViT checkpoint's model with its mean attention maps (of dense attention), and the images it is
    scored on: what fixed masks at any sparsity are chosen and judged from."""

    checkpoint: Checkpoint
    modules: dict[str, Attention]
    maps: dict[str, torch.Tensor]
    scored: BatchLoader
    split: str  # the images scored: "val" (the checkpoint's held-out images) or "test"
    calibration_images: int
    accuracy_as_given: float  # the checkpoint's, with whatever masks it came with
    device: str = "cpu"

    @property
    def model(self) -> nn.Module:
        return self.checkpoint.model

    def apply(self, sparsity: float) -> None:
        """Every attention module's fixed mask at ``sparsity`` (0: no mask, dense attention)."""
        for name, mean_map in self.maps.items():
            self.modules[name].attn_mask = keep_top_entries(mean_map, sparsity).to(self.device) if sparsity else None

    def accuracy(self) -> float:
        """Top-1 accuracy on the scored images, with the masks as they are now."""
        return evaluate_accuracy(self.model, self.scored, self.device)

    def block_rows(self) -> list[dict]:
        """Per attention module: entries kept per head, the global tokens of each head, and the share of
        the kept entries in their columns (the denser engine's share)."""
        rows = []
        for name, module in self.modules.items():
            if module.attn_mask is None:
                continue
            mask = module.attn_mask.cpu()
            global_keys, sparse = polarise(mask)
            kept = int(mask.sum())
            rows.append({"block": name, "kept_per_head": [int(head.sum()) for head in mask],
                         "entries_per_head": mask[0].numel(), "global_tokens": [int(g.sum()) for g in global_keys],
                         "dense_share": (kept - int(sparse.sum())) / kept})
        return rows


def load_vit(path: str | Path, sparsities: tuple[float, ...] = ()) -> tuple[Checkpoint, dict[str, Attention]]:
    """A ViT checkpoint and its attention modules, after checking that ``sparsities`` suit its tokens (fast:
    no image is read)."""
    checkpoint = load_checkpoint(path)
    modules = attention_modules(checkpoint.model)
    if not modules:
        raise InputError(f"{path}: model {checkpoint.arch.get('name')!r} has no global self-attention blocks; "
                         "expected a ViT or DeiT checkpoint")
    for sparsity in sparsities:
        kept_per_head(_tokens(checkpoint), sparsity)
    return checkpoint, modules


def calibrate(
    path: str | Path,
    data_dir: str | Path,
    sparsities: tuple[float, ...] = (),
    calibration_images: int = 50,
    test_subset: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Calibration:
    """Score a ViT checkpoint as it is, remove its masks and average its attention maps over
    ``calibration_images`` training images per class; ``sparsities`` are range-checked before any image
    is read."""
    checkpoint, modules = load_vit(path, sparsities)
    model = checkpoint.model.to(device)
    calibration, scored, split = _batches(checkpoint, data_dir, calibration_images, test_subset, cache_dir)
    as_given = evaluate_accuracy(model, scored, device)
    for module in modules.values():
        module.attn_mask = None
    maps = mean_attention_maps(model, calibration, device, progress)
    return Calibration(checkpoint, modules, maps, scored, split, len(calibration.images.labels), as_given, device)


@dataclass(frozen=True)
class Sparsified:
    """What ``sparsify-attention`` did: the accuracies on the same images before and after, and per block
    the kept entries and ViTCoD's dense/sparse split of them."""

    out: str
    sparsity: float
    split: str
    accuracy_before: float
    accuracy_after: float
    blocks: list[dict]


def sparsify_attention(
    path: str | Path,
    sparsity: float,
    data_dir: str | Path,
    out: str | Path,
    calibration_images: int = 50,
    test_subset: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Sparsified:
    """Give every attention module of a ViT checkpoint a fixed mask at ``sparsity`` (0 removes the masks),
    chosen on ``calibration_images`` training images per class; score it before and after; write it to ``out``."""
    calibration = calibrate(path, data_dir, (sparsity,), calibration_images, test_subset, device, cache_dir, progress)
    calibration.apply(sparsity)
    after = calibration.accuracy()
    checkpoint = calibration.checkpoint
    metrics = checkpoint.metrics | {f"{calibration.split}_accuracy": after, "attention_sparsity": sparsity,
                                    "attention_calibration_images": calibration.calibration_images}
    save_derived(out, checkpoint, checkpoint.model.cpu(), metrics=metrics)
    return Sparsified(str(out), sparsity, calibration.split, calibration.accuracy_as_given, after,
                      calibration.block_rows())


def _tokens(checkpoint: Checkpoint) -> int:
    positions = cast(torch.Tensor, checkpoint.model.pos_embed)  # (1, tokens, width)
    return positions.shape[1]


def _batches(checkpoint: Checkpoint, data_dir: str | Path, per_class: int, test_subset: int | None,
             cache_dir: str | Path | None) -> tuple[BatchLoader, BatchLoader, str]:
    """Calibration images of the training split (never the held-out validation images the checkpoint
    was chosen on), and the images scored: those validation images, or the test split."""
    if per_class < 1:
        raise InputError(f"calibration images {per_class}: expected at least 1 per class")
    info = dataset_info(checkpoint.dataset)
    train_images = load_split(checkpoint.dataset, data_dir, "train", cache_dir)
    held_out = checkpoint.train_config.get("validation")
    if held_out is not None:
        train_images, validation = hold_out(train_images, held_out, VALIDATION_SEED)
    calibration = in_order(subset(train_images, per_class, checkpoint.seed), info, CALIBRATION_BATCH,
                           checkpoint.seed)
    if held_out is not None:
        return calibration, in_order(validation, info, CALIBRATION_BATCH, checkpoint.seed), "val"
    test_images = load_split(checkpoint.dataset, data_dir, "test", cache_dir)
    if test_subset is not None:
        test_images = subset(test_images, test_subset, checkpoint.seed)
    return calibration, in_order(test_images, info, CALIBRATION_BATCH, checkpoint.seed), "test"
