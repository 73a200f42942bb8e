"""Overrides that make any registered model small enough for a quick test."""

from __future__ import annotations


def small_overrides(name: str, width: float = 0.25) -> dict:
    """A ResNet or SASA student at ``width``; a ViT 48 wide (3 heads of 16) and 2 blocks deep."""
    return {"embed_dim": 48, "depth": 2} if name.startswith("vit") else {"width": width}
