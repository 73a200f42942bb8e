"""Vision transformers (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") at CIFAR sizes.

The image is cut into patches of ``image_size / 8`` pixels (4 at 32 px, 8 at
64 px: 8 x 8 = 64 patch tokens), each embedded by a strided convolution; a
class token is prepended and learned positions added; ``depth`` pre-norm
blocks of multi-head self-attention and a GELU MLP follow (timm's
``VisionTransformer`` layout: fused qkv projection,
``F.scaled_dot_product_attention``); the class token's final norm feeds the
classifier.  Widths follow the ViT/DeiT family: tiny 192 wide with 3 heads,
small 384 with 6, both 12 blocks deep with an MLP 4x as wide.

A ViT has no spatial stages, so ``stage_modules`` is empty and distillation
from the CNN teacher uses CE and KD only (no attention transfer).

:class:`DistilledVisionTransformer` is DeiT's form (Touvron et al. 2021,
"Training data-efficient image transformers & distillation through
attention"): a distillation token beside the class token, with a head of its
own.  Distillation trains the class head on the labels and the distillation
head on the teacher (:meth:`~DistilledVisionTransformer.forward_heads`); the
model predicts with the mean of the two heads, as DeiT does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PATCH_GRID = 8  # patches per image side: the patch is image_size / 8
MLP_RATIO = 4
INIT_STD = 0.02  # truncated-normal initialisation of weights, positions and the class token (as timm's)


class Attention(nn.Module):
    """Multi-head self-attention over tokens: one fused q, k, v projection, scaled dot products, output projection.

    ``attn_mask`` is a fixed attention pattern, a bool buffer of (heads, tokens, tokens) with True where a
    query attends to a key (ViTCoD's attention-map sparsity; set by ``attentionlite sparsify-attention``);
    None, the default, is dense attention.
    """

    attn_mask: torch.Tensor | None

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.heads = heads
        self.head_dim = width // heads  # a dimension-pruned and compacted model keeps it with fewer heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.register_buffer("attn_mask", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.queries_keys_values(x)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=self.attn_mask)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, self.heads * self.head_dim))

    def queries_keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k and v of (B, tokens, width) tokens, each (B, heads, tokens, head_dim)."""
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    ``embed_kept`` (None, or a bool buffer over the token width) marks the embedding channels a
    dimension-pruned model keeps: its norms then normalise over those channels only (:func:`layer_norm`).
    """

    embed_kept: torch.Tensor | None

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, MLP_RATIO * width), nn.GELU(), nn.Linear(MLP_RATIO * width, width))
        self.register_buffer("embed_kept", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(layer_norm(self.norm1, x, self.embed_kept))
        return x + self.mlp(layer_norm(self.norm2, x, self.embed_kept))


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
    """``norm(x)``; with ``kept`` channels of a dimension-pruned model, the norm over those channels alone
    and zeros elsewhere, which is what the compacted model's smaller norm computes."""
    if kept is None:
        return norm(x)
    count = kept.sum()
    centred = (x - (x * kept).sum(-1, keepdim=True) / count) * kept
    variance = centred.pow(2).sum(-1, keepdim=True) / count
    return (centred * torch.rsqrt(variance + norm.eps) * norm.weight + norm.bias) * kept


class VisionTransformer(nn.Module):
    """Patch embedding, class token, learned positions, ``depth`` blocks, final norm, linear head."""

    stage_modules: tuple[str, ...] = ()  # no spatial stages: no attention transfer
    arch: dict[str, Any]
    embed_kept: torch.Tensor | None  # as each Block's, for the final norm

    def __init__(self, num_classes: int, image_size: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        if image_size % PATCH_GRID:
            raise ValueError(f"image size {image_size} is not a multiple of {PATCH_GRID}")
        patch = image_size // PATCH_GRID
        self.patch_embed = nn.Conv2d(3, width, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, PATCH_GRID * PATCH_GRID + 1, width))
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)
        self.register_buffer("embed_kept", None)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x)[:, 0])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm's tokens: the class token first, then (DeiT) the distillation token, then patches."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, 64, width)
        x = torch.cat([*self._extra_tokens(tokens.shape[0]), tokens], dim=1) + self.pos_embed  # (B, 65, width)
        return layer_norm(self.norm, self.blocks(x), self.embed_kept)

    def _extra_tokens(self, batch: int) -> list[torch.Tensor]:
        return [self.cls_token.expand(batch, -1, -1)]


class DistilledVisionTransformer(VisionTransformer):
    """DeiT: a ViT with a distillation token and its head; predicts with the mean of both heads."""

    def __init__(self, num_classes: int, image_size: int, width: int, depth: int, heads: int) -> None:
        super().__init__(num_classes, image_size, width, depth, heads)
        self.dist_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, PATCH_GRID * PATCH_GRID + 2, width))
        self.head_dist = nn.Linear(width, num_classes)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label_logits, distilled_logits = self.forward_heads(x)
        return (label_logits + distilled_logits) / 2

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The class head's logits (trained on the labels) and the distillation head's (on the teacher)."""
        tokens = self.encode(x)
        return self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])

    def _extra_tokens(self, batch: int) -> list[torch.Tensor]:
        return [self.cls_token.expand(batch, -1, -1), self.dist_token.expand(batch, -1, -1)]


# ViTCoD's polarisation (Hardware/Simulator/reorder.py): a key is a global token, its column run dense,
# when more than 50 of DeiT's 197 queries keep it.
GLOBAL_TOKEN_SHARE = 50 / 197


def polarise(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A (..., queries, keys) mask (True: kept) split as ViTCoD splits it, per head (the leading axes
    flattened): the (heads, keys) columns of global tokens, which more than :data:`GLOBAL_TOKEN_SHARE`
    of the queries keep and which run dense, and the (heads, queries, keys) kept entries outside them."""
    heads = mask.reshape(-1, *mask.shape[-2:])
    global_keys = heads.sum(1) > GLOBAL_TOKEN_SHARE * heads.shape[1]
    return global_keys, heads & ~global_keys.unsqueeze(1)


def _initialise(model: VisionTransformer) -> None:
    """timm's initialisation; DeiT runs it again once its own token and head exist."""
    for token in (model.pos_embed, model.cls_token, getattr(model, "dist_token", None)):
        if token is not None:
            nn.init.trunc_normal_(token, std=INIT_STD)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=INIT_STD)
            nn.init.zeros_(module.bias)

