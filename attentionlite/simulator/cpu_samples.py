"""Micro-benchmarks for calibration: hand-made ops paired with the PyTorch code that runs them.

Each :class:`Sample` is an :class:`~attentionlite.simulator.ops.Op` counted
the way the tracer counts it (``attentionlite.simulator.lowering``'s
conventions, whose constants it shares) and a closure that runs the same
computation with the code the models use: their modules, and for local
attention the very window functions the layer calls.  The samples come as a
network runs them, a bottleneck block's ops then an attention layer's, each
reading what the one before it wrote.  Shapes are those of 32 px CIFAR
networks at batch 1 and larger batches, so the fitted factors cover both
regimes the fidelity benchmark checks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

from attentionlite.simulator.lowering import NORM_OPS_PER_ELEMENT, RELATIVE_ADDS_PER_ELEMENT, SOFTMAX_OPS_PER_ELEMENT
from attentionlite.simulator.ops import IN_PLACE, Gemm, Op, OpKind, Window

@dataclass(frozen=True)
class Sample:
    """An op as the model counts it, and the PyTorch call that runs it."""

    op: Op
    run: Callable[[], object]


def kind_samples(quick: bool) -> list[Sample]:
    """Samples of every op kind, in the order a network runs them (about 10 s with ``quick``, a minute without)."""
    batches = (1, 8) if quick else (1, 8, 32)
    shapes = ((64, 32), (256, 16), (512, 8)) if quick else ((64, 32), (128, 16), (256, 16), (256, 8), (512, 8))
    samples = []
    for batch in batches:
        for channels, size in shapes:
            samples += _bottleneck(batch, channels, size)
            samples += _attention(batch, channels, size)
        samples += _linear(batch)
    return samples


def _step(flow: dict, out: str, function: Callable, *names: str) -> Callable[[], None]:
    """A call of ``function`` on the tensors named ``names`` in ``flow``, storing its result as ``out``."""

    def run() -> None:
        flow[out] = function(*(flow[name] for name in names))

    return run


def _shape_op(name: str, kind: OpKind, inputs: tuple, output: tuple, **counts) -> Op:
    return Op(name=name, kind=kind, input_shapes=inputs, output_shape=output, **counts)


def conv_op(batch: int, cin: int, size: int, cout: int, kernel: int, kind: OpKind = OpKind.CONV) -> Op:
    """A stride-1, same-padded convolution as an im2col GEMM."""
    gemm = Gemm(m=batch * size * size, n=cout, k=cin * kernel * kernel)
    weights = cout * cin * kernel * kernel
    inputs, output = ((batch, cin, size, size),), (batch, cout, size, size)
    name = f"{kind.value}{kernel}x{kernel}_{batch}x{cin}x{size}x{size}_to{cout}"
    return _shape_op(name, kind, inputs, output, macs=gemm.macs, gemm=gemm, weight_params=weights, weight_nonzero=weights)


def _bottleneck(batch: int, channels: int, size: int) -> list[Sample]:
    """A ResNet bottleneck's ops, each reading what the one before it wrote, as in a network.

    Timed in turn (:func:`~attentionlite.simulator.cpu_calibrate.median_seconds_in_turn`),
    every element-wise op finds its input just written, hot in cache, as it
    does in a network; timed on a cold input of its own, ReLU and batch norm at
    batch 1 came out two to three times slower than inside the benchmark models.
    """
    import torch
    from torch import nn

    wide, narrow = (batch, channels * 4, size, size), (batch, channels, size, size)
    reduce = nn.Conv2d(channels * 4, channels, 1, bias=False).eval()
    spatial = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    expand = nn.Conv2d(channels, channels * 4, 1, bias=False).eval()
    norms = [nn.BatchNorm2d(width).eval() for width in (channels, channels, channels * 4)]
    relu, pool = nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
    flow = {"block_in": torch.randn(wide)}
    norm_op = functools.partial(elementwise_op, OpKind.NORM, ops_per_element=NORM_OPS_PER_ELEMENT)
    relu_op = functools.partial(elementwise_op, OpKind.ACT, in_place=True)
    return [
        Sample(conv_op(batch, channels * 4, size, channels, 1), _step(flow, "a", reduce, "block_in")),
        Sample(norm_op(narrow), _step(flow, "a", norms[0], "a")),
        Sample(relu_op(narrow), _step(flow, "a", relu, "a")),
        Sample(conv_op(batch, channels, size, channels, 3), _step(flow, "b", spatial, "a")),
        Sample(norm_op(narrow), _step(flow, "b", norms[1], "b")),
        Sample(relu_op(narrow), _step(flow, "b", relu, "b")),
        Sample(conv_op(batch, channels, size, channels * 4, 1), _step(flow, "c", expand, "b")),
        Sample(norm_op(wide), _step(flow, "c", norms[2], "c")),
        Sample(elementwise_op(OpKind.ADD, wide, operands=2), _step(flow, "c", torch.add, "c", "block_in")),
        Sample(relu_op(wide), _step(flow, "c", relu, "c")),
        Sample(pool_op(wide, size), _step(flow, "pooled", pool, "c")),
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
    """A SASA layer's ops in the order it runs them: a projection, the window functions it calls
    (on the very queries, keys and values it passes them), and the 2x2 pool of their result."""
    import torch
    from torch import nn

    from attentionlite.model.layers import LocalSelfAttention, masked_window_softmax, window_dot, window_sum

    layer = LocalSelfAttention(channels, channels).eval()
    x = torch.randn(batch, channels, size, size)
    queries, keys, values = _window_arguments(layer, x)
    flow, kernel, pool = {"x": x, "queries": queries, "keys": keys, "values": values}, layer.kernel_size, nn.AvgPool2d(2)
    logits, softmax, weighted = attention_ops(batch, channels, size, kernel)
    return [
        Sample(conv_op(batch, channels, size, channels, 1, OpKind.PROJECTION), _step(flow, "query", layer.query, "x")),
        Sample(logits, _step(flow, "logits", lambda q, k: window_dot(q, k, kernel), "queries", "keys")),
        Sample(softmax, _step(flow, "attention", lambda w: masked_window_softmax(w, kernel), "logits")),
        Sample(weighted, _step(flow, "out", lambda a, v: window_sum(a, v, kernel), "attention", "values")),
        Sample(pool_op(tuple(x.shape), 2), _step(flow, "pooled", lambda out: pool(out.flatten(1, 2)), "out")),
    ]


def _window_arguments(layer, x) -> tuple:
    """The queries, keys and values ``layer(x)`` hands its window functions, caught by spies.

    The window logits' relative term (a k-fold smaller product) is left out of the samples.
    """
    import torch
    from unittest import mock

    from attentionlite.model import layers

    with mock.patch.object(layers, "window_dot", wraps=layers.window_dot) as dot, \
            mock.patch.object(layers, "window_sum", wraps=layers.window_sum) as weighted, torch.inference_mode():
        layer(x)
    (queries, keys, _), (_, values, _) = dot.call_args.args, weighted.call_args.args
    return queries, keys, values


def elementwise_op(kind: OpKind, shape: tuple[int, ...], operands: int = 1, ops_per_element: int = 1,
                   in_place: bool = False) -> Op:
    """An element-wise op (add, ReLU, norm) reading ``operands`` tensors of ``shape`` (``in_place``: overwriting the first)."""
    name = f"{kind.value}_{'x'.join(map(str, shape))}"
    return _shape_op(name, kind, (shape,) * operands, shape, vector_ops=ops_per_element * math.prod(shape),
                     attrs=IN_PLACE if in_place else ())


def pool_op(shape: tuple[int, ...], factor: int) -> Op:
    """Average pooling by ``factor`` in each spatial axis (``factor`` = size: global): one operation per element read."""
    batch, channels, height, width = shape
    output = (batch, channels, height // factor, width // factor)
    kind = OpKind.GLOBAL_POOL if factor == height == width else OpKind.POOL
    return _shape_op(f"{kind.value}{factor}_{'x'.join(map(str, shape))}", kind, (shape,), output,
                     vector_ops=math.prod(shape))
