"""Bottleneck ResNets (He et al. 2016, "Deep Residual Learning", arXiv:1512.03385) with injected layers.

One class serves the CNN teachers and the self-attention students: the stem
layer and the bottleneck's spatial layer (3x3 convolution, or local
self-attention) are factories passed in, so the blocks have no branches.  The
CIFAR stem is a 3x3 convolution with stride 1 and no max-pool, used at 32 and
64 px alike; stride 2 sits on the spatial layer of each stage's first block
(as in torchvision's ResNet v1.5) and in the 1x1 projection shortcut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

# (in_channels, out_channels, stride) -> module
SpatialLayer = Callable[[int, int, int], nn.Module]
# (in_channels, out_channels) -> module
StemLayer = Callable[[int, int], nn.Module]

EXPANSION = 4
STAGE_WIDTHS = (64, 128, 256, 512)
STEM_WIDTH = 64
# Channel counts are rounded to multiples of 16 so that 8 attention heads always get an even
# number of channels (half for row, half for column offsets) at any width multiplier.
CHANNEL_DIVISOR = 16


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of :data:`CHANNEL_DIVISOR` (at least one multiple)."""
    return max(CHANNEL_DIVISOR, round(channels * width / CHANNEL_DIVISOR) * CHANNEL_DIVISOR)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """The CNN's spatial layer and stem: 3x3, padding 1, no bias (a batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    """1x1 reduce -> spatial layer (k x k conv or attention) -> 1x1 expand (x4), plus the shortcut."""

    def __init__(self, in_channels: int, width: int, stride: int, spatial_layer: SpatialLayer):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.spatial = spatial_layer(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.spatial(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Projection (1x1 conv + BN) where shape changes, identity elsewhere."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class ResNet(nn.Module):
    """Stem, four stages of bottlenecks, global average pool, linear classifier.

    ``arch`` is set by :func:`~attentionlite.model.nets.zoo.create_model`: the
    arguments that rebuild the model.
    """

    stage_modules: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")
    arch: dict[str, Any]
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self,
        block_counts: Sequence[int],
        num_classes: int,
        stem_layer: StemLayer,
        spatial_layer: SpatialLayer,
        width: float = 1.0,
    ):
        super().__init__()
        stem_width = scaled_channels(STEM_WIDTH, width)
        self.stem = nn.Sequential(stem_layer(3, stem_width), nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
        in_channels = stem_width
        for stage, (blocks, stage_width) in enumerate(zip(block_counts, STAGE_WIDTHS)):
            stride = 1 if stage == 0 else 2
            layer = _stage(in_channels, scaled_channels(stage_width, width), blocks, stride, spatial_layer)
            self.add_module(self.stage_modules[stage], layer)
            in_channels = scaled_channels(stage_width, width) * EXPANSION
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 64w, H, W)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048w, H/8, W/8)
        return self.fc(torch.flatten(self.pool(x), 1))  # (B, classes)


def _stage(in_channels: int, width: int, blocks: int, stride: int, spatial_layer: SpatialLayer) -> nn.Sequential:
    first = Bottleneck(in_channels, width, stride, spatial_layer)
    rest = [Bottleneck(width * EXPANSION, width, 1, spatial_layer) for _ in range(blocks - 1)]
    return nn.Sequential(first, *rest)


def _initialise(model: nn.Module) -> None:
    """He-normal convolutions (fan-out, for ReLU), unit batch norms: torchvision's ResNet defaults."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def resnet(block_counts: Sequence[int], num_classes: int, width: float = 1.0) -> ResNet:
    """The CNN: 3x3 convolutions as stem and spatial layers."""
    return ResNet(block_counts, num_classes, stem_layer=conv3x3, spatial_layer=conv3x3, width=width)
