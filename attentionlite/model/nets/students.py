"""SASA-ResNet students (Ramachandran et al. 2019, "Stand-Alone Self-Attention in Vision Models").

The same bottleneck ResNet as the teacher with every 3x3 convolution replaced
by :class:`LocalSelfAttention` (spatial extent 7, 8 heads; stride 2 becomes a
2x2 average pool after the attention).  The *hybrid* student keeps the 3x3
convolutional stem; the *homogeneous* one uses the spatially-aware
:class:`AttentionStem` (4x4 window, 4 value mixtures, 1 head), so the whole
network is one kind of operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from attentionlite.model.nets.layers import AttentionStem, LocalSelfAttention
from attentionlite.model.nets.resnet import ResNet, StemLayer, conv3x3

STEM_KERNEL_SIZE = 4
STEM_HEADS = 1
STEM_MIXTURES = 4


def attention_stem() -> StemLayer:
    """The homogeneous students' stem: SASA's 4x4 spatially-aware stem at stride 1 (no pooling at CIFAR size)."""
    return partial(AttentionStem, kernel_size=STEM_KERNEL_SIZE, heads=STEM_HEADS, mixtures=STEM_MIXTURES)


def sasa_resnet(
    block_counts: Sequence[int],
    num_classes: int,
    homogeneous: bool,
    width: float = 1.0,
    kernel_size: int = 7,
    heads: int = 8,
) -> ResNet:
    """A SASA student; ``homogeneous`` picks the attention stem over the convolutional one."""
    spatial_layer = partial(_attention_layer, kernel_size=kernel_size, heads=heads)
    stem_layer = attention_stem() if homogeneous else conv3x3
    return ResNet(block_counts, num_classes, stem_layer=stem_layer, spatial_layer=spatial_layer, width=width)


def _attention_layer(in_channels: int, out_channels: int, stride: int, kernel_size: int, heads: int) -> LocalSelfAttention:
    return LocalSelfAttention(in_channels, out_channels, kernel_size=kernel_size, heads=heads, stride=stride)
