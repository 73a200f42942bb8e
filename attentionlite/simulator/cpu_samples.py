"""Micro-benchmarks for calibration: hand-made ops paired with the PyTorch code that runs them.

Each :class:`Sample` is an :class:`~attentionlite.simulator.ops.Op` counted
the way the tracer counts it (``attentionlite.simulator.lowering``'s
conventions, whose constants it shares) and a closure that runs the same
computation with the code the models use: their modules, and for local
attention the very window functions the layer calls.  Shapes are those of
32 px CIFAR networks at batch 1 and larger batches, so the fitted factors cover
both regimes the fidelity benchmark checks.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterator

from attentionlite.simulator.lowering import NORM_OPS_PER_ELEMENT, RELATIVE_ADDS_PER_ELEMENT, SOFTMAX_OPS_PER_ELEMENT
from attentionlite.simulator.ops import Gemm, Op, OpKind, Window

COLD_SET_BYTES = 32 * 2**20  # beyond any private L2, so a rotating input is not re-read hot


@dataclass(frozen=True)
class Sample:
    """An op as the model counts it, and the PyTorch call that runs it."""

    op: Op
    run: Callable[[], object]


def kind_samples(quick: bool) -> list[Sample]:
    """Samples of every op kind (about 10 s with ``quick``, a minute without, on an idle core)."""
    batches = (1, 8) if quick else (1, 8, 32)
    shapes = ((64, 32), (256, 16), (512, 8)) if quick else ((64, 32), (128, 16), (256, 16), (256, 8), (512, 8))
    samples = []
    for batch in batches:
        for channels, size in shapes:
            samples += _conv_like(batch, channels, size)
            samples += _attention(batch, channels, size)
            samples += _vector(batch, channels * 2, size)
        samples += _linear(batch)
    return samples


def _shape_op(name: str, kind: OpKind, inputs: tuple, output: tuple, **counts) -> Op:
    return Op(name=name, kind=kind, input_shapes=inputs, output_shape=output, **counts)


def conv_op(batch: int, cin: int, size: int, cout: int, kernel: int, kind: OpKind = OpKind.CONV) -> Op:
    """A stride-1, same-padded convolution as an im2col GEMM."""
    gemm = Gemm(m=batch * size * size, n=cout, k=cin * kernel * kernel)
    weights = cout * cin * kernel * kernel
    inputs, output = ((batch, cin, size, size),), (batch, cout, size, size)
    name = f"{kind.value}{kernel}x{kernel}_{batch}x{cin}x{size}x{size}_to{cout}"
    return _shape_op(name, kind, inputs, output, macs=gemm.macs, gemm=gemm, weight_params=weights, weight_nonzero=weights)


def _conv_like(batch: int, channels: int, size: int) -> list[Sample]:
    import torch
    from torch import nn

    x, wide = torch.randn(batch, channels, size, size), torch.randn(batch, channels * 4, size, size)
    conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    reduce = nn.Conv2d(channels * 4, channels, 1, bias=False).eval()  # a bottleneck's 1x1 in
    expand = nn.Conv2d(channels, channels * 4, 1, bias=False).eval()  # as an attention projection
    return [
        Sample(conv_op(batch, channels, size, channels, 3), lambda: conv3(x)),
        Sample(conv_op(batch, channels * 4, size, channels, 1), lambda: reduce(wide)),
        Sample(conv_op(batch, channels, size, channels * 4, 1, OpKind.PROJECTION), lambda: expand(x)),
    ]


def _linear(batch: int) -> list[Sample]:
    import torch
    from torch import nn

    x, fc = torch.randn(batch, 2048), nn.Linear(2048, 10).eval()
    gemm = Gemm(m=batch, n=10, k=2048)
    op = _shape_op(f"linear_{batch}x2048_to10", OpKind.LINEAR, ((batch, 2048),), (batch, 10),
                   macs=gemm.macs, gemm=gemm, weight_params=fc.weight.numel(), weight_nonzero=fc.weight.numel())
    return [Sample(op, lambda: fc(x))]


def attention_ops(batch: int, channels: int, size: int, kernel: int = 7, heads: int = 8) -> tuple[Op, Op, Op]:
    """Window logits (with the row/column relative logits), softmax and weighted sum of one SASA layer."""
    window = Window(images=batch, height=size, width=size, kernel=kernel, heads=heads, head_channels=channels // heads)
    feature = (batch, channels, size, size)
    logits_shape = (batch, heads, kernel * kernel, size, size)
    macs = window.queries * window.window_size * channels
    tag = f"{batch}x{channels}x{size}x{size}_k{kernel}"
    logits = _shape_op(f"window_logits_{tag}", OpKind.WINDOW_LOGITS, (feature, feature), logits_shape,
                       macs=macs + window.queries * kernel * channels, window=window,
                       vector_ops=RELATIVE_ADDS_PER_ELEMENT * math.prod(logits_shape))
    softmax = _shape_op(f"softmax_{tag}", OpKind.SOFTMAX, (logits_shape,), logits_shape,
                        vector_ops=SOFTMAX_OPS_PER_ELEMENT * math.prod(logits_shape), window=window)
    weighted = _shape_op(f"weighted_sum_{tag}", OpKind.WEIGHTED_SUM, (logits_shape, feature), feature,
                         macs=macs, window=window)
    return logits, softmax, weighted


def _attention(batch: int, channels: int, size: int) -> list[Sample]:
    """Time the window functions the layer itself calls, on the very arguments it passes them."""
    import torch

    from attentionlite.model.layers import LocalSelfAttention

    layer = LocalSelfAttention(channels, channels).eval()
    with torch.inference_mode():
        calls = _captured_calls(layer, torch.randn(batch, channels, size, size))
    logits, softmax, weighted = attention_ops(batch, channels, size)
    return [
        Sample(logits, calls["window_dot"]),
        Sample(softmax, calls["masked_window_softmax"]),
        Sample(weighted, calls["window_sum"]),
    ]


def _captured_calls(layer, x) -> dict[str, Callable[[], object]]:
    """Run ``layer(x)`` with spies on the window functions; return a closure replaying each call.

    The window logits' relative term (a k-fold smaller product) is not replayed.
    """
    from unittest import mock

    from attentionlite.model import layers

    names = ("window_dot", "masked_window_softmax", "window_sum")
    with contextlib.ExitStack() as stack:
        spies = {name: stack.enter_context(mock.patch.object(layers, name, wraps=getattr(layers, name))) for name in names}
        layer(x)
    return {name: functools.partial(getattr(layers, name), *spy.call_args.args) for name, spy in spies.items()}


def elementwise_op(kind: OpKind, shape: tuple[int, ...], operands: int = 1, ops_per_element: int = 1,
                   in_place: bool = False) -> Op:
    """An element-wise op (add, ReLU, norm) reading ``operands`` tensors of ``shape`` (``in_place``: overwriting the first)."""
    name = f"{kind.value}_{'x'.join(map(str, shape))}"
    return _shape_op(name, kind, (shape,) * operands, shape, vector_ops=ops_per_element * math.prod(shape),
                     attrs=(("in_place", 1),) if in_place else ())


def pool_op(shape: tuple[int, ...], factor: int) -> Op:
    """Average pooling by ``factor`` in each spatial axis (``factor`` = size: global): one operation per element read."""
    batch, channels, height, width = shape
    output = (batch, channels, height // factor, width // factor)
    return _shape_op(f"pool{factor}_{'x'.join(map(str, shape))}", OpKind.POOL, (shape,), output,
                     vector_ops=math.prod(shape))


def _vector(batch: int, channels: int, size: int) -> list[Sample]:
    """Element-wise kinds as the models call them (modules, in-place ReLU), plus both poolings.

    Each call reads a different input from a rotating set larger than a private
    cache: in a network these ops read what the op before them has just
    written, which measures two to four times slower than re-reading a hot tensor.
    """
    import torch
    from torch import nn

    shape = (batch, channels, size, size)
    inputs = _cold_inputs(shape)
    channels_last = _cold_inputs(shape, torch.channels_last)  # as attention layers hand it to their pool
    norm, relu = nn.BatchNorm2d(channels).eval(), nn.ReLU(inplace=True)
    local_pool, global_pool = nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)
    return [
        Sample(elementwise_op(OpKind.ADD, shape, operands=2), lambda: next(inputs) + next(inputs)),
        Sample(elementwise_op(OpKind.ACT, shape, in_place=True), lambda: relu(next(inputs))),
        Sample(elementwise_op(OpKind.NORM, shape, ops_per_element=NORM_OPS_PER_ELEMENT), lambda: norm(next(inputs))),
        Sample(pool_op(shape, 2), lambda: local_pool(next(channels_last))),
        Sample(pool_op(shape, size), lambda: global_pool(next(inputs))),
    ]


def _cold_inputs(shape: tuple[int, ...], memory_format=None) -> Iterator:
    """An endless cycle over enough random tensors of ``shape`` to fill ``COLD_SET_BYTES`` (at least two)."""
    import torch

    copies = max(2, COLD_SET_BYTES // (4 * math.prod(shape)))
    layout = memory_format or torch.contiguous_format
    return itertools.cycle([torch.randn(shape).contiguous(memory_format=layout) for _ in range(copies)])
