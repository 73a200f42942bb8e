"""Overrides that make any registered model small enough for a quick test."""

from __future__ import annotations

from attentionlite.model.nets.zoo import list_models, model_options


def is_transformer(name: str) -> bool:
    """A ViT or DeiT (sized by embed_dim and depth, not by a width multiplier)."""
    return "embed_dim" in model_options(name)


def small_overrides(name: str, width: float = 0.25) -> dict:
    """A ResNet or SASA student at ``width``; a ViT 48 wide (3 heads of 16) and 2 blocks deep."""
    return {"embed_dim": 48, "depth": 2} if is_transformer(name) else {"width": width}


RESNETS = [name for name in list_models() if not is_transformer(name)]
