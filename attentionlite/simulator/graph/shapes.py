"""Output-shape rules for the tracer's shape pass, by module type, and the broadcast that gives the
shape of every element-wise call (``lowering.BROADCAST_CALLS``).

The shape pass (``tracing._ShapePass``) takes these shapes instead of running
the calls on meta tensors, because there attention would loop over its window
offsets, convolutions would import sympy and linear, adaptive pooling, ReLU and
add would import torch._dynamo (seconds each, once a process).  Calls without
a rule run on meta tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from attentionlite.model.nets.gathered import GatheredConv2d, GatheredLinear
from attentionlite.model.nets.layers import AttentionStem, LocalSelfAttention

Shape = tuple[int, ...]


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """A kernel size, stride or padding as (height, width)."""
    if isinstance(value, int):
        return value, value
    height, width = value
    return height, width


def conv_output_shape(conv: nn.Conv2d | GatheredConv2d, input_shape: Shape) -> Shape:
    """(B, Cin, H, W) -> (B, Cout, Ho, Wo), Ho = floor((H + 2p - d(k-1) - 1) / s) + 1."""
    sides = _sliding_output(input_shape[2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation, False)
    return (input_shape[0], conv.out_channels, *sides)


def pool_output_shape(pool: nn.AvgPool2d | nn.MaxPool2d, input_shape: Shape) -> Shape:
    dilation = getattr(pool, "dilation", 1)  # average pooling has none
    sides = _sliding_output(input_shape[2:], pool.kernel_size, pool.stride, pool.padding, dilation, pool.ceil_mode)
    return (*input_shape[:2], *sides)


def _sliding_output(sides, kernel, stride, padding, dilation, ceil_mode: bool) -> tuple[int, ...]:
    if padding == "same":  # torch allows it at stride 1 only
        return tuple(sides)
    padding = 0 if padding == "valid" else padding
    round_to = math.ceil if ceil_mode else math.floor
    return tuple(
        round_to((side + 2 * p - d * (k - 1) - 1) / s) + 1
        for side, k, s, p, d in zip(sides, pair(kernel), pair(stride), pair(padding), pair(dilation))
    )


def attention_output_shape(layer: LocalSelfAttention | AttentionStem, input_shape: Shape) -> Shape:
    """(B, Cin, H, W) -> (B, Cout, H/stride, W/stride): attention keeps the grid, the pool halves it."""
    batch, _, height, width = input_shape
    return (batch, layer.out_channels, height // layer.stride, width // layer.stride)


def linear_output_shape(layer: nn.Linear | GatheredLinear, input_shape: Shape) -> Shape:
    return (*input_shape[:-1], layer.weight.shape[0])


def adaptive_pool_output_shape(pool: nn.AdaptiveAvgPool2d, input_shape: Shape) -> Shape:
    """An output side of None keeps the input's."""
    size = pool.output_size
    out_h, out_w = (size, size) if isinstance(size, int) or size is None else size
    return (*input_shape[:2], out_h or input_shape[2], out_w or input_shape[3])


def same_shape(module: nn.Module, input_shape: Shape) -> Shape:
    return input_shape


def broadcast_shape(*input_shapes: Shape) -> Shape:
    return tuple(int(size) for size in np.broadcast_shapes(*input_shapes))  # torch's imports sympy


# Each rule takes the module of its own type (hence Any) and the input shape.
MODULE_SHAPE_RULES: dict[type, Callable[[Any, Shape], Shape]] = {
    nn.Conv2d: conv_output_shape,
    GatheredConv2d: conv_output_shape,
    nn.AvgPool2d: pool_output_shape,
    nn.MaxPool2d: pool_output_shape,
    nn.Dropout: same_shape,
    LocalSelfAttention: attention_output_shape,
    AttentionStem: attention_output_shape,
    nn.Linear: linear_output_shape,
    GatheredLinear: linear_output_shape,
    nn.AdaptiveAvgPool2d: adaptive_pool_output_shape,
    nn.BatchNorm2d: same_shape,
    nn.BatchNorm1d: same_shape,
    **{module: same_shape for module in (
        nn.LayerNorm, nn.GroupNorm, nn.Softmax, nn.Dropout2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU,
        nn.Sigmoid, nn.Tanh, nn.SiLU, nn.GELU, nn.Hardsigmoid, nn.Hardswish,
    )},
}
