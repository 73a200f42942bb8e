"""Parameter and dense MAC counts of a model.

:func:`count_macs` is the independent reference: fvcore's FlopCountAnalysis (one multiply-add = one MAC) with
handles for the local-attention autograd functions, so a model is counted by
the convention in :mod:`attentionlite.model.nets.layers`: convolutions, linear
layers, relative logits (einsum), the window products and (ViTs) scaled dot-product attention.  Batch norm and
pooling are left out (vector work; batch norm folds into the convolution at
inference), so the count is multiply-accumulates only.
"""

from __future__ import annotations

import math

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import (
    addmm_flop_jit,
    bmm_flop_jit,
    conv_flop_jit,
    get_shape,
    linear_flop_jit,
    matmul_flop_jit,
)
from torch import nn


def _window_dot_macs(inputs, outputs) -> int:
    """q . k over every window position: numel(logits (k*k, B, G, H, W)) * d, d from queries (B, G, d, H, W)."""
    head_channels = inputs[0].type().sizes()[2]
    return math.prod(outputs[0].type().sizes()) * head_channels


def _window_sum_macs(inputs, outputs) -> int:
    """Weighted sum: numel(weights (k*k, B, G, H, W)) * d, d from values (B, G, d, H, W)."""
    head_channels = inputs[1].type().sizes()[2]
    return math.prod(inputs[0].type().sizes()) * head_channels


def _scaled_dot_product_macs(inputs, outputs) -> int:
    """Q K^T and A V of ``scaled_dot_product_attention(q (.., L, E), k (.., S, E), v (.., S, Ev))``:
    batch * L * S * (E + Ev).  fvcore has no handle for it and counts it as zero."""
    query, key, value = (get_shape(value) for value in inputs[:3])
    batch = math.prod(query[:-2])
    return batch * query[-2] * key[-2] * (query[-1] + value[-1])


def _einsum_macs(inputs, outputs) -> int:
    """Exact MACs of a two-operand einsum: the product of every index's size.

    fvcore's own handle reads numpy's printed path estimate, rounded to four digits.
    """
    equation = inputs[0].toIValue().replace(" ", "")
    operands, _ = equation.split("->")
    shapes = [get_shape(value) for value in inputs[1].node().inputs()]
    sizes: dict[str, int] = {}
    for letters, shape in zip(operands.split(","), shapes):
        sizes.update(zip(letters, shape))
    return math.prod(sizes.values())


# Only multiply-accumulate ops: fvcore's defaults also count batch norm and pooling elements.
MAC_HANDLES = {
    "aten::_convolution": conv_flop_jit,
    "aten::addmm": addmm_flop_jit,
    "aten::linear": linear_flop_jit,
    "aten::bmm": bmm_flop_jit,
    "aten::matmul": matmul_flop_jit,
    "aten::mm": matmul_flop_jit,
    "aten::einsum": _einsum_macs,
    "aten::scaled_dot_product_attention": _scaled_dot_product_macs,
    "prim::PythonOp.WindowDot": _window_dot_macs,
    "prim::PythonOp.WindowSum": _window_sum_macs,
}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameter elements."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def count_macs(model: nn.Module, image_size: int, batch: int = 1) -> int:
    """Dense multiply-accumulates of one forward pass on ``batch`` RGB images of side ``image_size``."""
    device = next(model.parameters()).device
    analysis = FlopCountAnalysis(model, torch.zeros(batch, 3, image_size, image_size, device=device))
    analysis.clear_op_handles().set_op_handle(**MAC_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    was_training = model.training
    model.eval()  # tracing in train mode would update batch-norm running statistics
    try:
        with torch.no_grad():
            return int(analysis.total())
    finally:
        model.train(was_training)
