"""Hand-made ops for the CPU model's tests, counted as the tracer counts them
(``attentionlite.simulator.graph.lowering``'s conventions, whose constants they share)."""

from __future__ import annotations

import math

from attentionlite.simulator.graph.lowering import RELATIVE_ADDS_PER_ELEMENT
from attentionlite.simulator.graph.ops import IN_PLACE, SOFTMAX_OPS_PER_ELEMENT, Gemm, Op, OpKind, Window


def _shape_op(name: str, kind: OpKind, inputs: tuple, output: tuple, **counts) -> Op:
    return Op(name=name, kind=kind, input_shapes=inputs, output_shape=output, **counts)


def conv_op(batch: int, cin: int, size: int, cout: int, kernel: int, kind: OpKind = OpKind.CONV) -> Op:
    """A stride-1, same-padded convolution as an im2col GEMM."""
    gemm = Gemm(m=batch * size * size, n=cout, k=cin * kernel * kernel)
    weights = cout * cin * kernel * kernel
    inputs, output = ((batch, cin, size, size),), (batch, cout, size, size)
    name = f"{kind.value}{kernel}x{kernel}_{batch}x{cin}x{size}x{size}_to{cout}"
    attrs = (("kernel_h", kernel), ("kernel_w", kernel), ("stride_h", 1), ("stride_w", 1), ("groups", 1))
    return _shape_op(name, kind, inputs, output, macs=gemm.macs, gemm=gemm, weight_params=weights, weight_nonzero=weights,
                     attrs=attrs)


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


def elementwise_op(kind: OpKind, shape: tuple[int, ...], operands: int = 1, ops_per_element: int = 1,
                   in_place: bool = False) -> Op:
    """An element-wise op (add, ReLU, norm) reading ``operands`` tensors of ``shape`` (``in_place``: overwriting the first)."""
    name = f"{kind.value}_{'x'.join(map(str, shape))}"
    return _shape_op(name, kind, (shape,) * operands, shape, vector_ops=ops_per_element * math.prod(shape),
                     attrs=IN_PLACE if in_place else ())
