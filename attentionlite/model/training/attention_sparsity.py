"""``attentionlite sparsify-attention``: fixed attention-map sparsity, as ViTCoD prunes it, and SASA windows.

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

SASA's local attention, which ViTCoD does not prune, gets the same treatment
per head over its k x k window: the window probabilities are averaged over
every query of the calibration images and each head keeps ``ceil((1 - s)
k^2)`` positions (the same offsets for every query), the query's own position
first (offset 0, 0: never padding, so no query is left without a key; the
centre of an odd window).

The mask is stored as the :class:`~attentionlite.model.nets.vit.Attention`
buffer ``attn_mask`` (or the
:class:`~attentionlite.model.nets.layers.LocalSelfAttention` buffer
``window_mask``), so it is in the checkpoint's weights, applies in every
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
from attentionlite.model.nets.layers import LocalSelfAttention, window_padding
from attentionlite.model.nets.vit import Attention, polarise
from attentionlite.model.training.checkpoint import Checkpoint, load_checkpoint, save_derived
from attentionlite.model.training.evaluate import evaluate_accuracy
from attentionlite.model.training.sparsity import keep_largest
from attentionlite.model.training.train import VALIDATION_SEED

CALIBRATION_BATCH = 128  # images per forward pass while averaging the maps: memory only


def kept_per_head(tokens: int, sparsity: float) -> int:
    """Entries each head of ``tokens`` x ``tokens`` keeps at ``sparsity``: ``ceil((1 - s) T^2)``, at least one
    per query."""
    kept = _kept_share(tokens * tokens, sparsity)
    if kept < tokens:
        raise InputError(f"attention sparsity {sparsity} keeps {kept} of {tokens} x {tokens} entries per head, "
                         f"fewer than one per query; expected at most {1 - tokens / tokens ** 2:.4f}")
    return kept


def keep_top_entries(mean_map: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The fixed mask of a (heads, T, T) mean attention map: per head, each query's largest entry, then
    the largest of the rest, ``kept_per_head`` in all."""
    return keep_largest(mean_map, kept_per_head(mean_map.shape[-2], sparsity))


def kept_positions(positions: int, sparsity: float) -> int:
    """Window positions each head of a local attention keeps at ``sparsity``: ``ceil((1 - s) k^2)``, at
    least the window's centre."""
    return max(1, _kept_share(positions, sparsity))


def _kept_share(entries: int, sparsity: float) -> int:
    """``ceil((1 - s) entries)``: the fewest that are at least the share asked for (a tolerance absorbs the
    float error of ``1 - s``)."""
    if not 0 <= sparsity < 1:
        raise InputError(f"attention sparsity {sparsity!r}: expected a fraction in [0, 1)")
    return math.ceil((1 - sparsity) * entries - 1e-6)


def keep_window_positions(mean_map: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The fixed window mask of a (heads, k*k) mean map of window probabilities: per head the query's own
    position (offset 0, 0: never padding, so no query is left without a key), then the largest of the
    rest, ``kept_positions`` in all."""
    positions = mean_map.shape[-1]
    kernel = math.isqrt(positions)
    before, _ = window_padding(kernel)  # offset 0 sits ``before`` positions into each axis, odd k or even
    scores = mean_map.clone()
    scores[:, before * kernel + before] = math.inf
    return keep_largest(scores[:, None, :], kept_positions(positions, sparsity))[:, 0, :]


AttentionModule = Attention | LocalSelfAttention


def attention_modules(model: nn.Module) -> dict[str, AttentionModule]:
    """The modules a fixed mask applies to: a ViT's global attention, a SASA network's local attention."""
    return {name: module for name, module in model.named_modules() if isinstance(module, (Attention,
                                                                                           LocalSelfAttention))}


def _mask_buffer(module: AttentionModule) -> str:
    """The name of the module's fixed-mask buffer."""
    return "attn_mask" if isinstance(module, Attention) else "window_mask"


def fixed_mask(module: AttentionModule) -> torch.Tensor | None:
    return getattr(module, _mask_buffer(module))


def set_fixed_mask(module: AttentionModule, mean_map: torch.Tensor, sparsity: float) -> None:
    """The module's mask at ``sparsity`` from its mean map (0: none)."""
    if not sparsity:
        clear_fixed_mask(module)
        return
    keep = keep_top_entries if isinstance(module, Attention) else keep_window_positions
    device = next(module.parameters()).device
    setattr(module, _mask_buffer(module), keep(mean_map, sparsity).to(device))


def clear_fixed_mask(module: AttentionModule) -> None:
    setattr(module, _mask_buffer(module), None)


@torch.no_grad()
def mean_attention_maps(model: nn.Module, batches, device: torch.device | str = "cpu",
                        progress: bool = False) -> dict[str, torch.Tensor]:
    """Each attention module's probabilities averaged over every query of every image of ``batches``,
    under the module's mask if it has one: a ViT's (heads, T, T) map, a local attention's (heads, k*k)."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def add(name: str, total: torch.Tensor, count: int) -> None:
        sums[name] = total if name not in sums else sums[name] + total
        counts[name] = counts.get(name, 0) + count

    def global_recorder(name: str):
        def record(module: Attention, inputs: tuple[torch.Tensor, ...]) -> None:
            q, k, _ = module.queries_keys_values(inputs[0])
            logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # (B, heads, T, T)
            if module.attn_mask is not None:
                logits = logits.masked_fill(~module.attn_mask, -math.inf)
            add(name, logits.softmax(-1).sum(0).double().cpu(), len(q))  # per image: each query its row
        return record

    def window_recorder(name: str):
        def record(softmax: nn.Module, inputs: tuple, probabilities: torch.Tensor) -> None:  # (k*k, B, G, H, W)
            batch, height, width = probabilities.shape[1], probabilities.shape[3], probabilities.shape[4]
            add(name, probabilities.sum((1, 3, 4)).t().double().cpu(), batch * height * width)  # per query
        return record

    handles = [module.register_forward_pre_hook(global_recorder(name)) if isinstance(module, Attention)
               else module.softmax.register_forward_hook(window_recorder(name))
               for name, module in attention_modules(model).items()]
    try:
        model.eval()
        for images, _ in tqdm(batches, desc="attention maps", unit="batch", disable=not progress, leave=False):
            model(images.to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / max(1, counts[name])).float() for name, total in sums.items()}


@dataclass
class Calibration:
    """A ViT or SASA checkpoint's model with its mean attention maps (of dense attention), and the images it
    is scored on: what fixed masks at any sparsity are chosen and judged from."""

    checkpoint: Checkpoint
    modules: dict[str, AttentionModule]
    maps: dict[str, torch.Tensor]
    scored: BatchLoader
    split: str  # the images scored: "val" (the checkpoint's held-out images) or "test"
    calibration_images: int
    accuracy_as_given: float  # the checkpoint's, with whatever masks it came with
    device: str = "cpu"

    @property
    def model(self) -> nn.Module:
        return self.checkpoint.model

    @property
    def attention_kind(self) -> str:
        """``"global"`` for a ViT's attention, ``"local"`` for a SASA network's windows."""
        return "global" if any(isinstance(m, Attention) for m in self.modules.values()) else "local"

    def apply(self, sparsity: float) -> None:
        """Every attention module's fixed mask at ``sparsity`` (0: no mask, dense attention)."""
        for name, mean_map in self.maps.items():
            set_fixed_mask(self.modules[name], mean_map, sparsity)

    def accuracy(self) -> float:
        """Top-1 accuracy on the scored images, with the masks as they are now."""
        return evaluate_accuracy(self.model, self.scored, self.device)

    def block_rows(self) -> list[dict]:
        """Per masked module: entries kept per head and the entries of a head; for global attention also
        the global tokens of each head and the share of the kept entries in their columns (the denser
        engine's share)."""
        rows = []
        for name, module in self.modules.items():
            mask = fixed_mask(module)
            if mask is None:
                continue
            mask = mask.cpu()
            row = {"block": name, "kept_per_head": [int(head.sum()) for head in mask],
                   "entries_per_head": mask[0].numel(), "global_tokens": None, "dense_share": None}
            if isinstance(module, Attention):
                global_keys, sparse = polarise(mask)
                kept = int(mask.sum())
                row |= {"global_tokens": [int(g.sum()) for g in global_keys],
                        "dense_share": (kept - int(sparse.sum())) / kept}
            rows.append(row)
        return rows


def load_attention_model(path: str | Path, sparsities: tuple[float, ...] = ()
                         ) -> tuple[Checkpoint, dict[str, AttentionModule]]:
    """A checkpoint with global or local attention and those modules, after checking that ``sparsities``
    suit them (fast: no image is read)."""
    checkpoint = load_checkpoint(path)
    modules = attention_modules(checkpoint.model)
    if not modules:
        raise InputError(f"{path}: model {checkpoint.arch.get('name')!r} has no self-attention blocks; "
                         "expected a ViT, DeiT or SASA checkpoint")
    for sparsity in sparsities:
        for module in modules.values():
            if isinstance(module, Attention):
                kept_per_head(_tokens(checkpoint), sparsity)
            else:
                kept_positions(module.kernel_size ** 2, sparsity)
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
    """Score a ViT or SASA checkpoint as it is, remove its masks and average its attention maps over
    ``calibration_images`` training images per class; ``sparsities`` are range-checked before any image
    is read."""
    checkpoint, modules = load_attention_model(path, sparsities)
    model = checkpoint.model.to(device)
    calibration, scored, split = _batches(checkpoint, data_dir, calibration_images, test_subset, cache_dir)
    as_given = evaluate_accuracy(model, scored, device)
    for module in modules.values():
        clear_fixed_mask(module)  # the maps of dense attention, whatever masks it came with
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
    """Give every attention module of a ViT or SASA checkpoint a fixed mask at ``sparsity`` (0 removes them),
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
