"""Lowering: each torch module or function a traced model calls becomes typed ops.

The tracer (:mod:`attentionlite.simulator.graph.tracing`) calls one handler per fx
node, picked from :data:`MODULE_LOWERINGS` (by module type) or
:data:`FUNCTION_LOWERINGS` (by function, or by method name for ``x.relu()``).
A handler returns a :class:`Lowered` (the ops and how they connect), or
``None`` for free ops (reshape, transpose, cat, split, getitem, dropout,
identity: the layout calls of :data:`_LAYOUT_CALLS`), which the tracer turns
into edges.  The accelerator's address generators read any strided layout, so
these move no data of their own (on a CPU, a ``contiguous()`` after a
transpose does copy: the CPU baseline leaves that copy out).  Global attention
(``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``, the encoder
layers) is lowered in :mod:`attentionlite.simulator.graph.transformers`.

Counting conventions (agreed with :mod:`attentionlite.model.nets.complexity`, see
:mod:`attentionlite.model.nets.layers`; Q = queries = batch * H * W, C = channels
over all heads, k = window side):

- conv: im2col GEMM, M = N*Ho*Wo, N = Cout/groups, K = Cin/groups*kh*kw,
  ``batch`` = groups; linear: M = rows, N = out, K = in.  Biases are neither
  MACs nor weight parameters (as in fvcore).
- local attention, one op per part: three projection GEMMs (query, key, value;
  one op each, so each keeps its own mask density and columns); window logits
  Q*k*k*C + Q*k*C (content + relative row/column term; padded positions
  counted, the hardware computes full windows); softmax 4 vector ops (max,
  exp, sum, divide) per window element per head; weighted sum Q*k*k*C (the
  stem: times ``mixtures``); the 2x2 average pool of a strided layer.
  The relative logits also cost two vector adds per window element per head
  (row + column broadcast, then onto the content logits); the stem scales the
  attention by its mixture table, one vector multiply per window element per
  head and mixture.  The relative embeddings are the logits op's weights; the
  stem's mixture table is a constant at inference and not counted.
  Logits and softmax tensors are (N, heads, k*k, H, W); the rest are NCHW.
- batch norm: 2 vector ops per element (scale, shift); layer and group norm
  4 (statistics, normalise) plus 2 for their affine map (never folded: see
  :mod:`~attentionlite.simulator.graph.lowered`); add, multiply, divide,
  subtract: 1 per output element; activations by
  :data:`~attentionlite.simulator.graph.lowered.ACTIVATIONS` (GELU 5, one an
  erf); softmax over any axis 4; pooling: kh*kw per output element; adaptive
  pools, ``mean`` and ``sum``: 1 per input element (kind ``global_pool`` when
  they reduce whole axes); interpolation by :data:`INTERPOLATION_OPS` per output.
- products: ``matmul``/``bmm``/``@`` of two activations is a ``matmul`` GEMM
  (batch axes broadcast, as the GEMM's batch); against a parameter
  (``F.linear``, ``x @ self.weight``) it is a ``linear`` op with that weight.
  Depthwise and grouped convolutions are ``groups`` GEMMs; a transposed
  convolution scatters each input pixel: M = N*H*W, N = Cout/g*kh*kw, K = Cin/g
  (as fvcore counts it).
"""

from __future__ import annotations

import dataclasses
import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.nets.gathered import GatheredConv2d, GatheredLinear
from attentionlite.model.nets.layers import AttentionStem, LocalSelfAttention
from attentionlite.simulator.graph import transformers
from attentionlite.simulator.graph.lowered import (
    Handler,
    Lowered,
    NodeContext,
    WeightCount,
    activation_op,
    at,
    conv_gemm,
    elementwise,
    free,
    gemm_op,
    matmul_gemm,
    statistics_norm_op,
    transposed_conv_gemm,
    vector_op,
    window_attrs,
    with_attrs,
)
from attentionlite.simulator.graph.ops import AXIS_LENGTH, SOFTMAX_OPS_PER_ELEMENT, Gemm, Op, OpKind, Window
from attentionlite.simulator.graph.shapes import pair

Shape = tuple[int, ...]
AttentionLayer = LocalSelfAttention | AttentionStem
NORM_OPS_PER_ELEMENT = 2  # scale, shift
RELATIVE_ADDS_PER_ELEMENT = 2  # row + column, then + content logit


def lower_add(ctx: NodeContext) -> Lowered:
    return elementwise(ctx, OpKind.ADD, 1)


def lower_add_in_place(ctx: NodeContext) -> Lowered:
    return elementwise(ctx, OpKind.ADD, 1, in_place=True)


def _activation(function: str, in_place: bool = False) -> Handler:
    """The handler of one activation: a module (in place if built so), a function (``inplace=True``) or
    a tensor method (``x.relu_()`` when ``in_place``)."""
    def lower(ctx: NodeContext) -> Lowered:
        overwrites = in_place or bool(getattr(ctx.module, "inplace", False)) or bool(ctx.kwargs.get("inplace"))
        return Lowered.single(activation_op(ctx, function, overwrites))

    return lower


def _arithmetic(function: str, in_place: bool = False) -> Handler:
    """Multiply, divide, subtract: one vector op per output element."""
    def lower(ctx: NodeContext) -> Lowered:
        return elementwise(ctx, OpKind.ELEMENTWISE, 1, in_place=in_place, attrs=(("function", function),))

    return lower


def lower_batch_norm(ctx: NodeContext) -> Lowered:
    return elementwise(ctx, OpKind.NORM, NORM_OPS_PER_ELEMENT)


def lower_layer_norm(ctx: NodeContext) -> Lowered:
    affine = ctx.module.elementwise_affine if ctx.module is not None else ctx.argument(2, "weight") is not None
    return Lowered.single(statistics_norm_op(ctx, "layer", bool(affine)))


def lower_group_norm(ctx: NodeContext) -> Lowered:
    affine = ctx.module.affine if ctx.module is not None else ctx.argument(2, "weight") is not None
    return Lowered.single(statistics_norm_op(ctx, "group", bool(affine)))


def lower_softmax(ctx: NodeContext) -> Lowered:
    """A softmax over any axis: max, exp, sum and divide per element; the axis's length (how long each
    row the vector unit reduces is) in the ``axis_length`` attr.  Without a ``dim``: the last axis."""
    dim = ctx.module.dim if ctx.module is not None else ctx.argument(1, "dim")
    length = ctx.input_shapes[0][-1 if dim is None else dim]
    return elementwise(ctx, OpKind.SOFTMAX, SOFTMAX_OPS_PER_ELEMENT, attrs=((AXIS_LENGTH, length),))


def lower_reduction(mode: str) -> Handler:
    """``mean`` or ``sum`` over some axes: one add per input element (a mean's divide is per output)."""
    def lower(ctx: NodeContext) -> Lowered:
        op = vector_op(ctx, OpKind.GLOBAL_POOL, math.prod(ctx.input_shapes[0]), attrs=(("mode", mode),))
        return Lowered.single(op)

    return lower


def lower_pool(ctx: NodeContext) -> Lowered:
    """``nn.AvgPool2d`` or ``nn.MaxPool2d``: each output element reads its kh x kw window."""
    mode = "max" if isinstance(ctx.module, nn.MaxPool2d) else "avg"
    return _window_pool(ctx, mode, ctx.module.kernel_size, ctx.module.stride)


def _functional_pool(mode: str) -> Handler:
    """``F.avg_pool2d`` / ``F.max_pool2d(input, kernel_size, stride=kernel_size, ...)``."""
    def lower(ctx: NodeContext) -> Lowered:
        kernel = ctx.argument(1, "kernel_size")
        return _window_pool(ctx, mode, kernel, ctx.argument(2, "stride") or kernel)

    return lower


def _window_pool(ctx: NodeContext, mode: str, kernel, stride) -> Lowered:
    op = _pool_op(ctx, ctx.name, ctx.input_shapes, ctx.output_shape, math.prod(pair(kernel)) * math.prod(ctx.output_shape))
    return Lowered.single(with_attrs(op, (("mode", mode), *window_attrs(kernel, stride))))


def _adaptive_pool(mode: str) -> Handler:
    """Adaptive average or max pooling: one add (or compare) per input element (a mean's divide is per
    output, folded).  To 1x1 it is a global pool, a reduction over each plane (PyTorch runs the average
    as ``mean``), its own kind."""
    def lower(ctx: NodeContext) -> Lowered:
        op = _pool_op(ctx, ctx.name, ctx.input_shapes, ctx.output_shape, math.prod(ctx.input_shapes[0]))
        if ctx.output_shape[2:] == (1, 1):
            op = dataclasses.replace(op, kind=OpKind.GLOBAL_POOL)
        return Lowered.single(with_attrs(op, (("mode", mode),)))

    return lower


# Vector ops per output element of each interpolation: a copy; or per neighbour one multiply, and the adds.
INTERPOLATION_OPS = {"nearest": 1, "nearest-exact": 1, "linear": 3, "bilinear": 7, "bicubic": 31, "trilinear": 15}


def lower_resample(ctx: NodeContext) -> Lowered:
    """``nn.Upsample`` or ``F.interpolate``: each output element from its neighbours in the input."""
    mode = ctx.module.mode if ctx.module is not None else ctx.argument(3, "mode", "nearest")
    if mode not in INTERPOLATION_OPS:
        raise InputError(f"{ctx.name}: interpolation mode {mode!r} is not one the lowering knows; "
                         f"expected one of {', '.join(INTERPOLATION_OPS)}")
    return elementwise(ctx, OpKind.RESAMPLE, INTERPOLATION_OPS[mode], attrs=(("mode", mode),))


def lower_conv(ctx: NodeContext) -> Lowered:
    """Convolution as its im2col GEMM (shapes NCHW); a compacted one has only its kept columns in K."""
    conv: nn.Conv2d | GatheredConv2d = ctx.module
    groups = getattr(conv, "groups", 1)  # a compacted (gathered) convolution is never grouped
    gemm = conv_gemm(ctx.output_shape, tuple(conv.weight.shape), groups)
    attrs = (*window_attrs(conv.kernel_size, conv.stride), ("groups", groups))
    return Lowered.single(gemm_op(ctx, ctx.name, OpKind.CONV, gemm, ctx.input_shapes, ctx.output_shape, attrs))


def lower_conv_transpose(ctx: NodeContext) -> Lowered:
    """Transposed convolution as the GEMM that scatters each input pixel to its kh x kw outputs:
    M = N*H*W (input pixels), N = Cout/groups*kh*kw, K = Cin/groups; the overlapping outputs are summed
    in the output buffer (col2im), as the array's accumulators do."""
    conv: nn.ConvTranspose2d = ctx.module
    gemm = transposed_conv_gemm(ctx.input_shapes[0], tuple(conv.weight.shape), conv.groups)
    attrs = (*window_attrs(conv.kernel_size, conv.stride), ("groups", conv.groups), ("transposed", 1))
    return Lowered.single(gemm_op(ctx, ctx.name, OpKind.CONV, gemm, ctx.input_shapes, ctx.output_shape, attrs))


def lower_linear(ctx: NodeContext) -> Lowered:
    """Fully connected layer over the last axis, (.., in) -> (.., out); also its compacted form."""
    rows = math.prod(ctx.output_shape[:-1])
    gemm = Gemm(m=rows, n=ctx.module.weight.shape[0], k=ctx.module.weight.shape[1])
    return Lowered.single(gemm_op(ctx, ctx.name, OpKind.LINEAR, gemm, ctx.input_shapes, ctx.output_shape))


def lower_functional_linear(ctx: NodeContext) -> Lowered:
    """``F.linear(x, weight, bias)``: a linear op on the weight parameter (a product if it is computed)."""
    x, weight = ctx.argument(0, "input"), ctx.argument(1, "weight")
    x_shape, weight_shape = ctx.shape_of(x), ctx.shape_of(weight)
    if x_shape is None or weight_shape is None:
        raise InputError(f"{ctx.name}: linear needs input and weight tensors")
    gemm = Gemm(m=math.prod(x_shape[:-1]), n=weight_shape[0], k=weight_shape[-1])
    return Lowered.single(_product_op(ctx, gemm, (x_shape, weight_shape), _parameter(ctx, weight)))


def lower_matmul(ctx: NodeContext) -> Lowered:
    """``a @ b``, ``matmul``, ``bmm``: (..., M, K) @ (..., K, N), batch axes broadcast.

    Against a 2-D parameter (``x @ self.weight``) it is a linear op of M = every row of ``a``; a product
    of two activations (attention written by hand) is a ``matmul``.  A parameter on the left
    (``W @ x``) runs as the transposed product, x^T W^T, so that the weight is the array's weight operand.
    """
    a, b = ctx.argument(0, "input"), ctx.argument(1, "other", ctx.kwargs.get("mat2"))
    a_shape, b_shape = ctx.shape_of(a), ctx.shape_of(b)
    if a_shape is None or b_shape is None:
        raise InputError(f"{ctx.name}: matmul needs two tensors")
    a_parameter, b_parameter = _parameter(ctx, a), _parameter(ctx, b)
    if a_parameter is not None and b_parameter is None:
        left = (1, *a_shape) if len(a_shape) == 1 else a_shape
        right = (*b_shape, 1) if len(b_shape) == 1 else b_shape
        gemm = Gemm(m=math.prod(right[:-2]) * right[-1], n=left[-2], k=left[-1])  # x^T W^T
        return Lowered.single(_product_op(ctx, gemm, (b_shape, a_shape), a_parameter))
    return Lowered.single(_product_op(ctx, matmul_gemm(a_shape, b_shape), (a_shape, b_shape), b_parameter))


def _parameter(ctx: NodeContext, argument) -> str | None:
    index = ctx.input_index(argument)
    return None if index is None else ctx.parameters[index]


def _product_op(ctx: NodeContext, gemm: Gemm, input_shapes: tuple[Shape, ...], weight: str | None) -> Op:
    """A linear op whose weight is the parameter ``weight``, or (None) a matmul of two activations."""
    kind = OpKind.LINEAR if weight is not None else OpKind.MATMUL
    return gemm_op(ctx, ctx.name, kind, gemm, input_shapes, ctx.output_shape, weight=weight)


def lower_local_attention(ctx: NodeContext) -> Lowered:
    """SASA local self-attention: projections, window logits (+ relative), softmax, weighted sum, pool."""
    layer: LocalSelfAttention = ctx.module
    window = _window(ctx, layer, mixtures=1)
    logits = _window_logits_op(ctx, window, relative=True)
    return _assemble_attention(ctx, layer, window, logits)


def lower_attention_stem(ctx: NodeContext) -> Lowered:
    """SASA attention stem: as local attention without the relative term, values mixed ``mixtures`` ways."""
    layer: AttentionStem = ctx.module
    window = _window(ctx, layer, mixtures=layer.mixtures)
    logits = _window_logits_op(ctx, window, relative=False)
    return _assemble_attention(ctx, layer, window, logits)


def _window(ctx: NodeContext, layer: AttentionLayer, mixtures: int) -> Window:
    """The layer's geometry; with a fixed window mask (a SASA layer's buffer), the most positions a head keeps."""
    batch, _, height, width = ctx.input_shapes[0]
    mask = getattr(layer, "window_mask", None)
    return Window(
        images=batch,
        height=height,
        width=width,
        kernel=layer.kernel_size,
        heads=layer.heads,
        head_channels=layer.head_channels,
        mixtures=mixtures,
        kept=None if mask is None else int(mask.sum(-1).max()),
    )


def _assemble_attention(ctx: NodeContext, layer: AttentionLayer, window: Window, logits: Op) -> Lowered:
    """Wire the parts: x -> q, k, v; (q, k) -> logits -> softmax; (softmax, v) -> weighted sum [-> pool]."""
    query, key, value = (_projection_op(ctx, layer, part) for part in ("query", "key", "value"))
    softmax = _softmax_op(ctx, window, logits.output_shape)
    weighted = _weighted_sum_op(ctx, window, (softmax.output_shape, value.output_shape))
    ops = [query, key, value, logits, softmax, weighted]
    edges = [
        (query.name, logits.name, query.output_shape),
        (key.name, logits.name, key.output_shape),
        (logits.name, softmax.name, logits.output_shape),
        (softmax.name, weighted.name, softmax.output_shape),
        (value.name, weighted.name, value.output_shape),
    ]
    if layer.stride > 1:
        pool = _attention_pool_op(ctx, layer, weighted.output_shape)
        ops.append(pool)
        edges.append((weighted.name, pool.name, weighted.output_shape))
    entry = (query.name, key.name, value.name)
    return Lowered(ops=tuple(ops), edges=tuple(edges), entry=entry, exit=ops[-1].name)


def _projection_op(ctx: NodeContext, layer: AttentionLayer, part: str) -> Op:
    """A 1x1 projection (plain or compacted): GEMM M = N*H*W, N = its out channels, K = its columns."""
    projection = getattr(layer, part)
    batch, _, height, width = ctx.input_shapes[0]
    out_channels = projection.weight.shape[0]
    gemm = Gemm(m=batch * height * width, n=out_channels, k=projection.weight[0].numel())
    output_shape = (batch, out_channels, height, width)
    source = f"{ctx.source}.{part}"
    return gemm_op(at(ctx, source), ctx.part(part), OpKind.PROJECTION, gemm, ctx.input_shapes, output_shape)


def _window_logits_op(ctx: NodeContext, window: Window, relative: bool) -> Op:
    """q . k over every window position, plus (SASA layers) q . r through the row/column split."""
    channels = window.heads * window.head_channels
    content = window.queries * window.window_size * channels
    relative_macs = window.queries * window.kernel * channels if relative else 0
    elements = window.queries * window.heads * window.window_size
    q_shape = (window.images, channels, window.height, window.width)
    output_shape = (window.images, window.heads, window.window_size, window.height, window.width)
    embeddings = _relative_embedding_count(ctx) if relative else WeightCount(0, 0)
    return Op(
        name=ctx.part("logits"),
        kind=OpKind.WINDOW_LOGITS,
        input_shapes=(q_shape, q_shape),
        output_shape=output_shape,
        macs=content + relative_macs,
        vector_ops=RELATIVE_ADDS_PER_ELEMENT * elements if relative else 0,
        window=window,
        source=ctx.source,
        attrs=(("relative_macs", relative_macs),),
        **embeddings.op_fields(),
    )


def _relative_embedding_count(ctx: NodeContext) -> WeightCount:
    """The row and column embeddings, read by the relative logits (dense unless masked)."""
    parts = [ctx.weights(f"{ctx.source}.{name}") for name in ("rel_rows", "rel_cols")]
    return WeightCount(sum(p.params for p in parts), sum(p.nonzero for p in parts))


def _softmax_op(ctx: NodeContext, window: Window, logits_shape: Shape) -> Op:
    return Op(
        name=ctx.part("softmax"),
        kind=OpKind.SOFTMAX,
        input_shapes=(logits_shape,),
        output_shape=logits_shape,
        vector_ops=SOFTMAX_OPS_PER_ELEMENT * math.prod(logits_shape),
        window=window,
        source=ctx.source,
    )


def _weighted_sum_op(ctx: NodeContext, window: Window, input_shapes: tuple[Shape, Shape]) -> Op:
    """Softmax-weighted sum of the window's values; the stem first scales by its mixture table."""
    channels = window.heads * window.head_channels
    macs = window.queries * window.window_size * channels * window.mixtures
    mixing = window.queries * window.heads * window.window_size * window.mixtures if window.mixtures > 1 else 0
    return Op(
        name=ctx.part("weighted_sum"),
        kind=OpKind.WEIGHTED_SUM,
        input_shapes=input_shapes,
        output_shape=(window.images, channels, window.height, window.width),
        macs=macs,
        vector_ops=mixing,
        window=window,
        source=ctx.source,
    )


def _attention_pool_op(ctx: NodeContext, layer: AttentionLayer, input_shape: Shape) -> Op:
    assert isinstance(layer.pool, nn.AvgPool2d), "a strided attention layer pools its output"
    kernel_h, kernel_w = pair(layer.pool.kernel_size)
    vector_ops = kernel_h * kernel_w * math.prod(ctx.output_shape)
    op = _pool_op(at(ctx, f"{ctx.source}.pool"), ctx.part("pool"), (input_shape,), ctx.output_shape, vector_ops)
    return with_attrs(op, (("mode", "avg"), ("kernel_h", kernel_h), ("kernel_w", kernel_w)))


def _pool_op(ctx: NodeContext, name: str, input_shapes: tuple[Shape, ...], output_shape: Shape, vector_ops: int) -> Op:
    return vector_op(ctx, OpKind.POOL, vector_ops, name, input_shapes, output_shape)


# Module handlers by type; a subclass uses its nearest registered base (see ``find_module_lowering``).
MODULE_LOWERINGS: dict[type, Handler] = {
    nn.Conv2d: lower_conv,
    GatheredConv2d: lower_conv,
    nn.ConvTranspose2d: lower_conv_transpose,
    nn.Linear: lower_linear,
    GatheredLinear: lower_linear,
    nn.BatchNorm2d: lower_batch_norm,
    nn.BatchNorm1d: lower_batch_norm,
    nn.LayerNorm: lower_layer_norm,
    nn.GroupNorm: lower_group_norm,
    nn.ReLU: _activation("relu"),
    nn.ReLU6: _activation("relu6"),
    nn.Hardtanh: _activation("hardtanh"),
    nn.LeakyReLU: _activation("leaky_relu"),
    nn.Sigmoid: _activation("sigmoid"),
    nn.Tanh: _activation("tanh"),
    nn.SiLU: _activation("silu"),
    nn.GELU: _activation("gelu"),
    nn.Hardsigmoid: _activation("hardsigmoid"),
    nn.Hardswish: _activation("hardswish"),
    nn.Softmax: lower_softmax,
    nn.AvgPool2d: lower_pool,
    nn.MaxPool2d: lower_pool,
    nn.AdaptiveAvgPool2d: _adaptive_pool("adaptive_avg"),
    nn.AdaptiveMaxPool2d: _adaptive_pool("adaptive_max"),
    nn.Upsample: lower_resample,
    nn.MultiheadAttention: transformers.lower_multihead_attention,
    nn.TransformerEncoderLayer: transformers.lower_transformer_encoder_layer,
    nn.TransformerEncoder: transformers.lower_transformer_encoder,
    LocalSelfAttention: lower_local_attention,
    AttentionStem: lower_attention_stem,
    nn.Identity: free,
    nn.Flatten: free,
    nn.Unflatten: free,
    nn.Dropout: free,
    nn.Dropout2d: free,
}

_ACTIVATION_FUNCTIONS = {
    "relu": (torch.relu, F.relu, "relu"),
    "relu6": (F.relu6,),
    "hardtanh": (F.hardtanh,),
    "leaky_relu": (F.leaky_relu,),
    "sigmoid": (torch.sigmoid, F.sigmoid, "sigmoid"),
    "tanh": (torch.tanh, F.tanh, "tanh"),
    "silu": (F.silu,),
    "gelu": (F.gelu,),
    "hardsigmoid": (F.hardsigmoid,),
    "hardswish": (F.hardswish,),
}
_ARITHMETIC = {
    "mul": (operator.mul, torch.mul, "mul"),
    "div": (operator.truediv, torch.div, "div"),
    "sub": (operator.sub, torch.sub, "sub"),
}
# Calls that move or view data and compute nothing: reshapes, axis swaps, joins, splits, indexing.
_LAYOUT_CALLS = (
    torch.flatten, "flatten", "view", "view_as", "reshape", torch.reshape, "contiguous",
    torch.transpose, "transpose", torch.permute, "permute", "t", "expand", "expand_as",
    torch.unsqueeze, "unsqueeze", torch.squeeze, "squeeze", "unflatten",
    torch.cat, torch.concat, torch.stack, torch.split, "split", torch.chunk, "chunk", torch.unbind, "unbind",
    operator.getitem, F.dropout, "float", "to", "type_as",
)

_ADDS: dict[object, Handler] = {
    operator.add: lower_add,
    operator.iadd: lower_add_in_place,
    torch.add: lower_add,
    "add": lower_add,
    "add_": lower_add_in_place,
}
_ELEMENTWISE_LOWERINGS: dict[object, Handler] = {
    **_ADDS,
    **{function: _activation(name) for name, functions in _ACTIVATION_FUNCTIONS.items() for function in functions},
    "relu_": _activation("relu", in_place=True),
    **{function: _arithmetic(name) for name, functions in _ARITHMETIC.items() for function in functions},
    operator.imul: _arithmetic("mul", in_place=True),
    "mul_": _arithmetic("mul", in_place=True),
    F.layer_norm: lower_layer_norm,
    **{softmax: lower_softmax for softmax in (F.softmax, torch.softmax, "softmax")},
}
# Calls whose output has their tensor inputs' broadcast shape: the tracer's shape pass computes it
# without running them (see :mod:`~attentionlite.simulator.graph.shapes` for why).
BROADCAST_CALLS = frozenset({*_ELEMENTWISE_LOWERINGS, F.dropout})

# Function handlers by function object, and by method name for tensor methods (``x.relu()``).
FUNCTION_LOWERINGS: dict[object, Handler] = {
    **_ELEMENTWISE_LOWERINGS,
    F.group_norm: lower_group_norm,
    **{mean: lower_reduction("mean") for mean in (torch.mean, "mean")},
    **{total: lower_reduction("sum") for total in (torch.sum, "sum")},
    F.avg_pool2d: _functional_pool("avg"),
    F.max_pool2d: _functional_pool("max"),
    F.adaptive_avg_pool2d: _adaptive_pool("adaptive_avg"),
    F.adaptive_max_pool2d: _adaptive_pool("adaptive_max"),
    F.interpolate: lower_resample,
    F.linear: lower_functional_linear,
    **{matmul: lower_matmul for matmul in (operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm")},
    F.scaled_dot_product_attention: transformers.lower_scaled_dot_product_attention,
    **{call: free for call in _LAYOUT_CALLS},
}

# Modules the tracer keeps as single fx nodes (the rest of torch.nn is a leaf already).
LEAF_MODULES = (LocalSelfAttention, AttentionStem, GatheredConv2d, GatheredLinear)


def find_module_lowering(module: nn.Module) -> Handler | None:
    for cls in type(module).__mro__:
        if cls in MODULE_LOWERINGS:
            return MODULE_LOWERINGS[cls]
    return None
