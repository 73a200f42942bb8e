"""Lowering: each torch module or function a traced model calls becomes typed ops.

The tracer (:mod:`attentionlite.simulator.graph.tracing`) calls one handler per fx
node, picked from :data:`MODULE_LOWERINGS` (by module type) or
:data:`FUNCTION_LOWERINGS` (by function, or by method name for ``x.relu()``).
A handler returns a :class:`Lowered` (the ops and how they connect), or
``None`` for free ops (flatten, reshape, view, dropout, identity), which the
tracer turns into edges.

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
- batch norm: 2 vector ops per element (scale, shift); ReLU and add: 1;
  pooling: kh*kw per output element; adaptive average pool: 1 per input element
  (kind ``global_pool`` when it pools to 1x1).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attentionlite.model.nets.gathered import GatheredConv2d, GatheredLinear
from attentionlite.model.nets.layers import AttentionStem, LocalSelfAttention
from attentionlite.simulator.graph.ops import IN_PLACE, Gemm, Op, OpKind, Window
from attentionlite.simulator.graph.shapes import pair

Shape = tuple[int, ...]
AttentionLayer = LocalSelfAttention | AttentionStem
SOFTMAX_OPS_PER_ELEMENT = 4  # max, exp, sum, divide
NORM_OPS_PER_ELEMENT = 2  # scale, shift
RELATIVE_ADDS_PER_ELEMENT = 2  # row + column, then + content logit


@dataclass(frozen=True)
class WeightCount:
    """How many weights one parameter has, how many survive its mask, and its columns."""

    params: int
    nonzero: int
    columns_total: int = 0
    columns_kept: int = 0

    def op_fields(self) -> dict:
        return {
            "weight_params": self.params,
            "weight_nonzero": self.nonzero,
            "columns_total": self.columns_total,
            "columns_kept": self.columns_kept,
        }


@dataclass(frozen=True)
class NodeContext:
    """What a handler knows about one fx node: where it is, its tensors, its weights."""

    name: str  # unique op name (the module path for a module)
    source: str  # module path the op comes from
    # The called module, of the type the handler is registered for (None for a function); Any, because each
    # handler reads its own type's attributes.
    module: Any
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    weights: Callable[[str], WeightCount]  # parameter path -> counts from the masks

    def part(self, suffix: str) -> str:
        return f"{self.name}.{suffix}"


@dataclass(frozen=True)
class Lowered:
    """The ops of one node: ``entry`` ops read the node's inputs, ``exit`` produces its output."""

    ops: tuple[Op, ...]
    edges: tuple[tuple[str, str, Shape], ...] = ()
    entry: tuple[str, ...] = ()
    exit: str = ""

    @classmethod
    def single(cls, op: Op) -> Lowered:
        return cls(ops=(op,), entry=(op.name,), exit=op.name)


def _elementwise(ctx: NodeContext, kind: OpKind, ops_per_element: int, in_place: bool = False) -> Lowered:
    """One vector op per output element (times ``ops_per_element``), on the node's own tensors."""
    return Lowered.single(
        Op(
            name=ctx.name,
            kind=kind,
            input_shapes=ctx.input_shapes,
            output_shape=ctx.output_shape,
            vector_ops=ops_per_element * math.prod(ctx.output_shape),
            source=ctx.source,
            attrs=IN_PLACE if in_place else (),
        )
    )


def lower_add(ctx: NodeContext) -> Lowered:
    return _elementwise(ctx, OpKind.ADD, 1)


def lower_add_in_place(ctx: NodeContext) -> Lowered:
    return _elementwise(ctx, OpKind.ADD, 1, in_place=True)


def lower_activation(ctx: NodeContext) -> Lowered:
    """ReLU; an ``nn.ReLU(inplace=True)`` overwrites its input."""
    return _elementwise(ctx, OpKind.ACT, 1, in_place=getattr(ctx.module, "inplace", False))


def lower_activation_in_place(ctx: NodeContext) -> Lowered:
    return _elementwise(ctx, OpKind.ACT, 1, in_place=True)


def lower_batch_norm(ctx: NodeContext) -> Lowered:
    return _elementwise(ctx, OpKind.NORM, NORM_OPS_PER_ELEMENT)


def lower_pool(ctx: NodeContext) -> Lowered:
    """Average or max pooling: each output element reads its kh x kw window."""
    kernel_h, kernel_w = pair(ctx.module.kernel_size)
    stride_h, stride_w = pair(ctx.module.stride)
    mode = "max" if isinstance(ctx.module, nn.MaxPool2d) else "avg"
    op = _pool_op(ctx, ctx.name, ctx.input_shapes, ctx.output_shape, kernel_h * kernel_w * math.prod(ctx.output_shape))
    attrs = (("mode", mode), ("kernel_h", kernel_h), ("kernel_w", kernel_w), ("stride_h", stride_h), ("stride_w", stride_w))
    return Lowered.single(_with_attrs(op, attrs))


def lower_adaptive_pool(ctx: NodeContext) -> Lowered:
    """Adaptive average pooling: one add per input element (the divide is per output, folded).

    To 1x1 it is a global pool, a mean over each plane (PyTorch runs it as ``mean``), its own kind.
    """
    op = _pool_op(ctx, ctx.name, ctx.input_shapes, ctx.output_shape, math.prod(ctx.input_shapes[0]))
    if ctx.output_shape[2:] == (1, 1):
        op = dataclasses.replace(op, kind=OpKind.GLOBAL_POOL)
    return Lowered.single(_with_attrs(op, (("mode", "adaptive_avg"),)))


def lower_conv(ctx: NodeContext) -> Lowered:
    """Convolution as its im2col GEMM (shapes NCHW); a compacted one has only its kept columns in K."""
    conv: nn.Conv2d | GatheredConv2d = ctx.module
    batch, _, out_h, out_w = ctx.output_shape
    groups = getattr(conv, "groups", 1)  # a compacted (gathered) convolution is never grouped
    gemm = Gemm(m=batch * out_h * out_w, n=conv.out_channels // groups, k=conv.weight[0].numel(), batch=groups)
    kernel_h, kernel_w = pair(conv.kernel_size)
    stride_h, stride_w = pair(conv.stride)
    attrs = (("kernel_h", kernel_h), ("kernel_w", kernel_w), ("stride_h", stride_h), ("stride_w", stride_w), ("groups", groups))
    return Lowered.single(_gemm_op(ctx, ctx.name, OpKind.CONV, gemm, ctx.input_shapes, ctx.output_shape, attrs))


def lower_linear(ctx: NodeContext) -> Lowered:
    """Fully connected layer over the last axis, (.., in) -> (.., out); also its compacted form."""
    rows = math.prod(ctx.output_shape[:-1])
    gemm = Gemm(m=rows, n=ctx.module.weight.shape[0], k=ctx.module.weight.shape[1])
    return Lowered.single(_gemm_op(ctx, ctx.name, OpKind.LINEAR, gemm, ctx.input_shapes, ctx.output_shape))


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
    batch, _, height, width = ctx.input_shapes[0]
    return Window(
        images=batch,
        height=height,
        width=width,
        kernel=layer.kernel_size,
        heads=layer.heads,
        head_channels=layer.head_channels,
        mixtures=mixtures,
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
    return _gemm_op(_at(ctx, source), ctx.part(part), OpKind.PROJECTION, gemm, ctx.input_shapes, output_shape)


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
    op = _pool_op(_at(ctx, f"{ctx.source}.pool"), ctx.part("pool"), (input_shape,), ctx.output_shape, vector_ops)
    return _with_attrs(op, (("mode", "avg"), ("kernel_h", kernel_h), ("kernel_w", kernel_w)))


def _pool_op(ctx: NodeContext, name: str, input_shapes: tuple[Shape, ...], output_shape: Shape, vector_ops: int) -> Op:
    return Op(
        name=name,
        kind=OpKind.POOL,
        input_shapes=input_shapes,
        output_shape=output_shape,
        vector_ops=vector_ops,
        source=ctx.source,
    )


def _gemm_op(
    ctx: NodeContext,
    name: str,
    kind: OpKind,
    gemm: Gemm,
    input_shapes: tuple[Shape, ...],
    output_shape: Shape,
    attrs: tuple = (),
) -> Op:
    """An op on the MAC array whose weight is ``<source>.weight``."""
    return Op(
        name=name,
        kind=kind,
        input_shapes=input_shapes,
        output_shape=output_shape,
        macs=gemm.macs,
        gemm=gemm,
        source=ctx.source,
        attrs=attrs,
        **ctx.weights(f"{ctx.source}.weight").op_fields(),
    )


def _at(ctx: NodeContext, source: str) -> NodeContext:
    """The same node seen from one of its submodules (for their weights' names)."""
    return NodeContext(ctx.name, source, ctx.module, ctx.input_shapes, ctx.output_shape, ctx.weights)


def _with_attrs(op: Op, attrs: tuple) -> Op:
    return dataclasses.replace(op, attrs=op.attrs + attrs)


Handler = Callable[[NodeContext], "Lowered | None"]


def free(ctx: NodeContext) -> None:
    """Flatten, reshape, view, dropout, identity: no work, the tracer makes them edges."""
    return None


# Module handlers by type; a subclass uses its nearest registered base (see ``find_module_lowering``).
MODULE_LOWERINGS: dict[type, Handler] = {
    nn.Conv2d: lower_conv,
    GatheredConv2d: lower_conv,
    nn.Linear: lower_linear,
    GatheredLinear: lower_linear,
    nn.BatchNorm2d: lower_batch_norm,
    nn.BatchNorm1d: lower_batch_norm,
    nn.ReLU: lower_activation,
    nn.AvgPool2d: lower_pool,
    nn.MaxPool2d: lower_pool,
    nn.AdaptiveAvgPool2d: lower_adaptive_pool,
    LocalSelfAttention: lower_local_attention,
    AttentionStem: lower_attention_stem,
    nn.Identity: free,
    nn.Flatten: free,
    nn.Dropout: free,
}

# Function handlers by function object, and by method name for tensor methods (``x.relu()``).
FUNCTION_LOWERINGS: dict[object, Handler] = {
    operator.add: lower_add,
    operator.iadd: lower_add_in_place,
    torch.add: lower_add,
    "add": lower_add,
    "add_": lower_add_in_place,
    torch.relu: lower_activation,
    F.relu: lower_activation,
    "relu": lower_activation,
    "relu_": lower_activation_in_place,
    torch.flatten: free,
    "flatten": free,
    "view": free,
    "reshape": free,
    "contiguous": free,
}

# Functions that return sizes, not tensors: they do no work and feed only free reshapes.
SHAPE_QUERIES = frozenset({"size", "dim", getattr, operator.getitem})

# Modules the tracer keeps as single fx nodes (the rest of torch.nn is a leaf already).
LEAF_MODULES = (LocalSelfAttention, AttentionStem, GatheredConv2d, GatheredLinear)


def find_module_lowering(module: nn.Module) -> Handler | None:
    for cls in type(module).__mro__:
        if cls in MODULE_LOWERINGS:
            return MODULE_LOWERINGS[cls]
    return None
