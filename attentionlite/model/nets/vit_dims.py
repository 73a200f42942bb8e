"""A ViT's dimensions, as dimension pruning keeps them: the weight masks they imply and the compacted ViT.

SiDT (Xue et al. 2022, "Searching Intrinsic Dimensions of Vision
Transformers") prunes a ViT by searching its dimensions.  Three kinds are
searched here:

- the embedding channels of the residual stream, one set for the whole model
  (every block adds its output into the same stream, so a channel is kept or
  removed everywhere at once);
- the heads of each block's attention, whole heads (a head's q, k and v rows
  and its columns of the output projection);
- the hidden units of each block's MLP.

A removed dimension's weights and biases are masked to zero wherever they
touch it (:func:`weight_masks`), so the stream is exactly zero on removed
channels and a removed head or unit contributes nothing.  What masking cannot
express, the norms' statistics over the kept channels only, the blocks' and the
final norm's ``embed_kept`` buffer carries (:func:`~attentionlite.model.nets.vit.layer_norm`).
So the masked model computes what :func:`compact_dims`'s smaller dense ViT
computes, which each block sized by its own kept heads and units.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from attentionlite.model.nets.vit import Attention, Block, VisionTransformer

# Tensors of a ViT that live in the stream's channels (their last axis), beside the layers'.
STREAM_TOKENS = ("cls_token", "dist_token", "pos_embed")
CLASSIFIERS = ("head", "head_dist")


@dataclass(frozen=True)
class Dimensions:
    """Kept dimensions of a ViT: the stream's channels, and per block its heads and its MLP units."""

    embed: torch.Tensor  # (width,) bool
    heads: tuple[torch.Tensor, ...]  # per block, (heads,) bool
    mlp: tuple[torch.Tensor, ...]  # per block, (hidden,) bool

    def counts(self) -> dict[str, int]:
        """Kept dimensions of each kind, over the whole model."""
        return {"embed": int(self.embed.sum()), "heads": sum(int(h.sum()) for h in self.heads),
                "mlp": sum(int(m.sum()) for m in self.mlp)}


def all_dimensions(model: VisionTransformer) -> Dimensions:
    """Every dimension of ``model`` kept."""
    blocks = _blocks(model)
    return Dimensions(torch.ones(model.norm.normalized_shape[0], dtype=torch.bool),
                      tuple(torch.ones(b.attn.heads, dtype=torch.bool) for b in blocks),
                      tuple(torch.ones(_mlp_layers(b)[0].out_features, dtype=torch.bool) for b in blocks))


def weight_masks(model: VisionTransformer, dims: Dimensions) -> dict[str, torch.Tensor]:
    """A bool mask for every parameter of ``model``: False where a weight touches a removed dimension."""
    embed = dims.embed
    masks: dict[str, torch.Tensor] = {}
    for name, parameter in model.named_parameters():
        masks[name] = torch.ones_like(parameter, dtype=torch.bool)
    masks["patch_embed.weight"] = embed[:, None, None, None].expand_as(model.patch_embed.weight).clone()
    masks["patch_embed.bias"] = embed.clone()
    for name in STREAM_TOKENS:
        if name in masks:
            masks[name] = embed.expand_as(getattr(model, name)).clone()
    for index, (block, heads, units) in enumerate(zip(_blocks(model), dims.heads, dims.mlp)):
        rows = _head_rows(block.attn, heads)
        for prefix, layer_rows, layer_columns in (("attn.qkv", rows.repeat(3), embed), ("attn.proj", embed, rows),
                                                  ("mlp.0", units, embed), ("mlp.2", embed, units)):
            masks[f"blocks.{index}.{prefix}.weight"] = layer_rows[:, None] & layer_columns[None, :]
            masks[f"blocks.{index}.{prefix}.bias"] = layer_rows.clone()
        for norm in ("norm1", "norm2"):
            masks[f"blocks.{index}.{norm}.weight"] = embed.clone()
            masks[f"blocks.{index}.{norm}.bias"] = embed.clone()
    masks["norm.weight"], masks["norm.bias"] = embed.clone(), embed.clone()
    for name in CLASSIFIERS:
        if f"{name}.weight" in masks:
            masks[f"{name}.weight"] = embed.expand_as(getattr(model, name).weight).clone()
    return masks


def dimensions_of(model: VisionTransformer, masks: dict[str, torch.Tensor]) -> Dimensions:
    """The dimensions :func:`weight_masks` made ``masks`` from."""
    blocks = _blocks(model)
    heads = tuple(masks[f"blocks.{i}.attn.qkv.bias"].reshape(3, b.attn.heads, b.attn.head_dim)[0].any(-1)
                  for i, b in enumerate(blocks))
    mlp = tuple(masks[f"blocks.{i}.mlp.0.bias"].clone() for i in range(len(blocks)))
    return Dimensions(masks["patch_embed.bias"].clone(), heads, mlp)


def keep_embedding_channels(model: VisionTransformer, embed: torch.Tensor | None) -> None:
    """Make every norm of ``model`` normalise over the ``embed`` channels only (None: over all)."""
    kept = None if embed is None or bool(embed.all()) else embed.to(model.norm.weight.device)
    model.embed_kept = kept
    for block in _blocks(model):
        block.embed_kept = kept


@torch.no_grad()
def compact_dims(model: VisionTransformer, masks: dict[str, torch.Tensor]) -> VisionTransformer:
    """A copy of ``model`` holding only the kept dimensions of ``masks``: narrower layers, fewer heads and
    units per block, plain norms; the same outputs as the masked model."""
    dims = dimensions_of(model, masks)
    if not all(h.any() for h in dims.heads) or not all(m.any() for m in dims.mlp) or not dims.embed.any():
        raise ValueError("dimension masks remove a whole block's heads or units, or every channel")
    compacted = copy.deepcopy(model)
    embed = dims.embed.nonzero().squeeze(1)
    compacted.patch_embed = _conv_rows(model.patch_embed, embed)
    for name in STREAM_TOKENS:
        if hasattr(model, name):
            setattr(compacted, name, nn.Parameter(getattr(model, name)[..., embed].clone()))
    for block, source, heads, units in zip(_blocks(compacted), _blocks(model), dims.heads, dims.mlp):
        _compact_block(block, source, embed, heads, units.nonzero().squeeze(1))
    compacted.norm = _norm(model.norm, embed)
    for name in CLASSIFIERS:
        if hasattr(model, name):
            setattr(compacted, name, _linear(getattr(model, name), None, embed))
    keep_embedding_channels(compacted, None)
    return compacted


def _compact_block(block: Block, source: Block, embed: torch.Tensor, heads: torch.Tensor,
                   units: torch.Tensor) -> None:
    rows = _head_rows(source.attn, heads).nonzero().squeeze(1)
    qkv_rows = torch.cat([rows + part * source.attn.qkv.out_features // 3 for part in range(3)])
    block.norm1, block.norm2 = _norm(source.norm1, embed), _norm(source.norm2, embed)
    block.attn.qkv = _linear(source.attn.qkv, qkv_rows, embed)
    block.attn.proj = _linear(source.attn.proj, embed, rows)
    block.attn.heads = int(heads.sum())
    if source.attn.attn_mask is not None:
        block.attn.attn_mask = source.attn.attn_mask[heads].clone()
    hidden, output = _mlp_layers(source)
    block.mlp[0] = _linear(hidden, units, embed)
    block.mlp[2] = _linear(output, embed, units)


def _head_rows(attention: Attention, heads: torch.Tensor) -> torch.Tensor:
    """Bool over the heads x head_dim rows of one of q, k, v: the rows of the kept heads."""
    return heads.repeat_interleave(attention.head_dim)


def _linear(layer: nn.Linear, rows: torch.Tensor | None, columns: torch.Tensor) -> nn.Linear:
    weight = layer.weight if rows is None else layer.weight[rows]
    smaller = nn.Linear(len(columns), weight.shape[0], bias=layer.bias is not None)
    smaller.weight = nn.Parameter(weight[:, columns].clone())
    if layer.bias is not None:
        smaller.bias = nn.Parameter((layer.bias if rows is None else layer.bias[rows]).clone())
    return smaller


def _conv_rows(conv: nn.Conv2d, rows: torch.Tensor) -> nn.Conv2d:
    smaller = copy.deepcopy(conv)  # its kernel, stride and padding
    smaller.out_channels = len(rows)
    smaller.weight = nn.Parameter(conv.weight[rows].clone())
    smaller.bias = nn.Parameter(conv.bias[rows].clone()) if conv.bias is not None else None
    return smaller


def _norm(norm: nn.LayerNorm, channels: torch.Tensor) -> nn.LayerNorm:
    smaller = nn.LayerNorm(len(channels), eps=norm.eps)
    smaller.weight = nn.Parameter(norm.weight[channels].clone())
    smaller.bias = nn.Parameter(norm.bias[channels].clone())
    return smaller


def _mlp_layers(block: Block) -> tuple[nn.Linear, nn.Linear]:
    """The MLP's hidden and output projections."""
    return cast(nn.Linear, block.mlp[0]), cast(nn.Linear, block.mlp[2])


def _blocks(model: VisionTransformer) -> list[Block]:
    return [block for block in model.blocks if isinstance(block, Block)]
