"""Global (token-to-token) attention: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``
and PyTorch's transformer encoder layers, lowered to typed ops.

Attention over L queries and S keys of width E in h heads of d = E / h
channels, for N sequences (Vaswani et al. 2017), is, per head:

- logits ``Q K^T``: a batched GEMM (``attention_logits``) of batch N*h,
  M = L, N = S, K = d; scaling by 1/sqrt(d) is one vector multiply per logit
  (in the array's output path), a mask one add per logit;
- softmax over each row of S logits on the vector unit (``softmax``: max,
  exp, sum, divide per logit);
- weighted values ``A V``: a batched GEMM (``attention_values``) of batch
  N*h, M = L, N = d, K = S.

``nn.MultiheadAttention`` adds its projections (one fused q, k, v GEMM of
N = 3E for self-attention, as PyTorch runs it; three GEMMs otherwise, each
with its own rows of the fused weight) and its output projection; with
``need_weights`` (its default) it also averages the attention over the heads,
one vector add per logit.  Both are ``linear`` ops.  The encoder layers are
lowered part by part as their ``forward`` runs them (post-norm or
``norm_first``); dropout is free at inference.  Batches are counted as the
GEMMs' ``batch`` dimension: the heads of all sequences are independent.  The
three parts of the core carry the ``fused_attention`` attr: PyTorch runs them
as one kernel (the CPU baseline prices them so).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.nets.vit import polarise
from attentionlite.simulator.graph.lowered import (
    ACTIVATIONS,
    Lowered,
    NodeContext,
    activation_op,
    gemm_op,
    statistics_norm_op,
    vector_op,
)
from attentionlite.simulator.graph.ops import (
    MASK_DENSE_KEYS,
    MASK_SPARSE_KEPT,
    SOFTMAX_OPS_PER_ELEMENT,
    Gemm,
    Op,
    OpKind,
)

Shape = tuple[int, ...]
NODE_INPUT = ""  # in a _Parts chain: the node's own input
# Marks the three parts of an attention PyTorch runs as one kernel (the CPU baseline prices them so).
FUSED = (("fused_attention", 1),)


class _Parts:
    """Ops of one composite node as they are added, each reading earlier ops or the node's input."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.edges: list[tuple[str, str, Shape]] = []
        self.entry: list[str] = []
        self.shape_of: dict[str, Shape] = {}

    def add(self, lowered: Lowered, *inputs: str) -> str:
        """Add ``lowered``, whose entry ops read ``inputs`` (op names, or :data:`NODE_INPUT`); its exit."""
        self.ops += lowered.ops
        self.edges += lowered.edges
        for op in lowered.ops:
            self.shape_of[op.name] = op.output_shape
        for source in inputs:
            if source == NODE_INPUT:
                self.entry += [name for name in lowered.entry if name not in self.entry]
            else:
                self.edges += [(source, name, self.shape_of[source]) for name in lowered.entry]
        return lowered.exit

    def connect(self, source: str, target: str) -> None:
        self.edges.append((source, target, self.shape_of[source]))

    def lowered(self, exit: str) -> Lowered:
        return Lowered(ops=tuple(self.ops), edges=tuple(self.edges), entry=tuple(self.entry), exit=exit)


def _sub(ctx: NodeContext, part: str, module: object, input_shape: Shape, output_shape: Shape) -> NodeContext:
    """The context of one part of a composite node: its own name, module path and tensors."""
    return dataclasses.replace(ctx, name=ctx.part(part), source=f"{ctx.source}.{part}" if ctx.source else part,
                               module=module, input_shapes=(input_shape,), output_shape=output_shape,
                               args=(), kwargs={}, parameters=(None,), input_nodes=())


# --------------------------------------------------------------------------- the attention core


def attention_core(ctx: NodeContext, query: Shape, key: Shape, value: Shape, masked: bool,
                   mask_attrs: tuple = ()) -> list[Op]:
    """Logits, softmax and weighted values of attention on (..., L, d) queries, (..., S, d) keys and
    (..., S, d_v) values; the leading axes (sequences, heads) broadcast.  ``mask_attrs`` (a fixed mask's,
    :func:`fixed_mask_attrs`) go on all three."""
    batch_axes = _broadcast(query[:-2], key[:-2], value[:-2])
    batch = math.prod(batch_axes)
    queries, width, keys, value_width = query[-2], query[-1], key[-2], value[-1]
    logits_shape = (*batch_axes, queries, keys)
    logit_elements = batch * queries * keys
    logits = gemm_op(
        ctx, ctx.part("logits"), OpKind.ATTENTION_LOGITS, Gemm(m=queries, n=keys, k=width, batch=batch),
        (query, key), logits_shape, weight=None, vector_ops=logit_elements * (2 if masked else 1),
        attrs=FUSED + mask_attrs,
    )
    softmax = vector_op(ctx, OpKind.SOFTMAX, SOFTMAX_OPS_PER_ELEMENT * logit_elements, ctx.part("softmax"),
                        (logits_shape,), logits_shape, attrs=FUSED + mask_attrs)
    values = gemm_op(
        ctx, ctx.part("values"), OpKind.ATTENTION_VALUES, Gemm(m=queries, n=value_width, k=keys, batch=batch),
        (logits_shape, value), (*batch_axes, queries, value_width), weight=None, attrs=FUSED + mask_attrs,
    )
    return [logits, softmax, values]


def _broadcast(*shapes: Shape) -> Shape:
    length = max(len(shape) for shape in shapes)
    padded = [(1,) * (length - len(shape)) + tuple(shape) for shape in shapes]
    return tuple(max(sizes) for sizes in zip(*padded))


def _core_lowered(ops: list[Op]) -> Lowered:
    logits, softmax, values = ops
    edges = ((logits.name, softmax.name, logits.output_shape), (softmax.name, values.name, softmax.output_shape))
    return Lowered(ops=tuple(ops), edges=edges, entry=(logits.name, values.name), exit=values.name)


def lower_scaled_dot_product_attention(ctx: NodeContext) -> Lowered:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)``."""
    arguments = [ctx.argument(index, name) for index, name in enumerate(("query", "key", "value"))]
    query, key, value = (ctx.shape_of(argument) for argument in arguments)
    if query is None or key is None or value is None:
        raise InputError(f"{ctx.name}: scaled_dot_product_attention needs query, key and value tensors")
    mask = ctx.argument(3, "attn_mask")
    masked = mask is not None or bool(ctx.argument(5, "is_causal"))
    lowered = _core_lowered(attention_core(ctx, query, key, value, masked, _fixed_mask(ctx, mask, query, key)))
    logits, _, values = lowered.ops
    readers = (logits.name, logits.name, values.name, logits.name)  # query, key, value, mask
    return dataclasses.replace(lowered, input_readers=_readers(ctx, [*arguments, mask], readers))


def _fixed_mask(ctx: NodeContext, mask, query: Shape, key: Shape) -> tuple:
    """The attrs of a boolean ``attn_mask`` that is a buffer of the model (a fixed pattern); () otherwise."""
    index = ctx.input_index(mask)
    path = None if index is None else ctx.parameters[index]
    tensor = None if path is None else ctx.constant(path)
    if tensor is None or tensor.dtype != torch.bool:
        return ()
    batch_axes = _broadcast(query[:-2], key[:-2], tuple(tensor.shape[:-2]))
    return fixed_mask_attrs(tensor.expand(*batch_axes, query[-2], key[-2]))


def fixed_mask_attrs(mask: torch.Tensor) -> tuple:
    """A fixed (..., queries, keys) boolean mask (True: kept) split by :func:`polarise`: the global
    tokens' columns are dense (every query's logit computed), the other kept logits sparse."""
    global_keys, sparse = polarise(mask)
    return ((MASK_DENSE_KEYS, int(global_keys.sum())), (MASK_SPARSE_KEPT, int(sparse.sum())))


def _readers(ctx: NodeContext, arguments: list, readers: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Per input node of the call, the ops that read it: those of the arguments it is."""
    return tuple(tuple(dict.fromkeys(reader for argument, reader in zip(arguments, readers) if argument is node))
                 for node in ctx.input_nodes)


# --------------------------------------------------------------------------- nn.MultiheadAttention


@dataclasses.dataclass(frozen=True)
class _Sequences:
    """How a (N, L, E), (L, N, E) or unbatched (L, E) tensor holds its sequences."""

    count: int
    length: int
    width: int

    @classmethod
    def of(cls, shape: Shape, batch_first: bool) -> _Sequences:
        if len(shape) == 2:
            return cls(1, shape[0], shape[1])
        count, length = (shape[0], shape[1]) if batch_first else (shape[1], shape[0])
        return cls(count, length, shape[2])


def lower_multihead_attention(ctx: NodeContext) -> Lowered:
    """``nn.MultiheadAttention(query, key, value, key_padding_mask, need_weights=True, attn_mask,
    average_attn_weights=True, is_causal)``."""
    arguments = [ctx.argument(index, name) for index, name in enumerate(("query", "key", "value"))]
    query, key, value = (ctx.shape_of(argument) for argument in arguments)
    if query is None or key is None or value is None:
        raise InputError(f"{ctx.name}: MultiheadAttention needs query, key and value tensors")
    self_attention = arguments[0] is arguments[1] is arguments[2]
    masked = ctx.argument(3, "key_padding_mask") is not None or ctx.argument(5, "attn_mask") is not None
    averaged = bool(ctx.argument(4, "need_weights", True)) and bool(ctx.argument(6, "average_attn_weights", True))
    lowered = multihead_attention(ctx, ctx.module, (query, key, value), self_attention, masked, averaged)
    if self_attention:
        return lowered  # the fused projection reads the one input
    projections = tuple(ctx.part(part) for part in ("q_proj", "k_proj", "v_proj"))
    return dataclasses.replace(lowered, input_readers=_readers(ctx, arguments, projections))


def multihead_attention(ctx: NodeContext, layer: nn.MultiheadAttention, shapes: tuple[Shape, Shape, Shape],
                        self_attention: bool, masked: bool, averaged: bool) -> Lowered:
    """Projections, the attention core per head, the output projection (and the head-averaged weights)."""
    embed, heads = layer.embed_dim, layer.num_heads
    queries, keys, values = (_Sequences.of(shape, layer.batch_first) for shape in shapes)
    parts = _Parts()
    projected = _projections(ctx, layer, shapes, self_attention, parts)
    head_width = embed // heads
    core = attention_core(
        ctx,
        (queries.count, heads, queries.length, head_width),
        (keys.count, heads, keys.length, head_width),
        (values.count, heads, values.length, head_width),
        masked,
    )
    logits, softmax, weighted = core
    core_exit = parts.add(_core_lowered(core))
    for source, reader in zip(projected, (logits, logits, weighted)):
        parts.connect(source, reader.name)
    output_gemm = Gemm(m=queries.count * queries.length, n=embed, k=embed)
    output = gemm_op(_sub(ctx, "out_proj", layer.out_proj, shapes[0], shapes[0]), ctx.part("out_proj"),
                     OpKind.LINEAR, output_gemm, (weighted.output_shape,), shapes[0])
    exit = parts.add(Lowered.single(output), core_exit)
    if averaged:
        average_shape = (queries.count, queries.length, keys.length)
        mean = vector_op(ctx, OpKind.GLOBAL_POOL, math.prod(softmax.output_shape), ctx.part("weights_mean"),
                         (softmax.output_shape,), average_shape, attrs=(("mode", "mean"),))
        parts.add(Lowered.single(mean), softmax.name)
    return parts.lowered(exit)


def _projections(ctx: NodeContext, layer: nn.MultiheadAttention, shapes: tuple[Shape, Shape, Shape],
                 self_attention: bool, parts: _Parts) -> tuple[str, str, str]:
    """The q, k, v projections' ops (one fused GEMM for self-attention); the ops that give q, k and v."""
    embed = layer.embed_dim
    sequences = [_Sequences.of(shape, layer.batch_first) for shape in shapes]
    if self_attention and layer._qkv_same_embed_dim:
        rows = sequences[0].count * sequences[0].length
        fused = gemm_op(ctx, ctx.part("in_proj"), OpKind.LINEAR, Gemm(m=rows, n=3 * embed, k=embed), (shapes[0],),
                        (*shapes[0][:-1], 3 * embed), weight=f"{ctx.source}.in_proj_weight")
        name = parts.add(Lowered.single(fused), NODE_INPUT)
        return name, name, name
    names = []
    for index, (part, shape, seq) in enumerate(zip(("q_proj", "k_proj", "v_proj"), shapes, sequences)):
        if layer._qkv_same_embed_dim:
            weight, part_rows = f"{ctx.source}.in_proj_weight", slice(index * embed, (index + 1) * embed)
        else:
            weight, part_rows = f"{ctx.source}.{part}_weight", slice(None)
        gemm = Gemm(m=seq.count * seq.length, n=embed, k=seq.width)
        op = gemm_op(ctx, ctx.part(part), OpKind.LINEAR, gemm, (shape,), (*shape[:-1], embed),
                     weight=weight, weight_rows=part_rows)
        names.append(parts.add(Lowered.single(op), NODE_INPUT))
    return names[0], names[1], names[2]


# --------------------------------------------------------------------------- encoder layers


def lower_transformer_encoder_layer(ctx: NodeContext) -> Lowered:
    parts = _Parts()
    exit = _encoder_layer(ctx, ctx.module, ctx.input_shapes[0], parts, NODE_INPUT)
    return parts.lowered(exit)


def lower_transformer_encoder(ctx: NodeContext) -> Lowered:
    """``nn.TransformerEncoder``: its layers in turn, then its final norm if it has one."""
    encoder: nn.TransformerEncoder = ctx.module
    shape, parts, previous = ctx.input_shapes[0], _Parts(), NODE_INPUT
    for index, layer in enumerate(encoder.layers):
        previous = _encoder_layer(_sub(ctx, f"layers.{index}", layer, shape, shape), layer, shape, parts, previous)
    if encoder.norm is not None:
        previous = parts.add(_norm(ctx, "norm", encoder.norm, shape), previous)
    return parts.lowered(previous)


def _encoder_layer(ctx: NodeContext, layer: nn.TransformerEncoderLayer, shape: Shape, parts: _Parts,
                   source: str) -> str:
    """One encoder layer as its forward runs it: x + sa(norm1(x)) ... with norm_first, else norm1(x + sa(x))."""
    def attention(previous: str) -> str:
        lowered = multihead_attention(_sub(ctx, "self_attn", layer.self_attn, shape, shape), layer.self_attn,
                                      (shape, shape, shape), self_attention=True, masked=False, averaged=False)
        return parts.add(lowered, previous)

    def feed_forward(previous: str) -> str:
        hidden = (*shape[:-1], layer.linear1.out_features)
        first = parts.add(_linear(ctx, "linear1", layer.linear1, shape, hidden), previous)
        activated = parts.add(Lowered.single(activation_op(_sub(ctx, "activation", None, hidden, hidden),
                                                           _activation_name(layer.activation))), first)
        return parts.add(_linear(ctx, "linear2", layer.linear2, hidden, shape), activated)

    def residual(name: str, block: str, skip: str) -> str:
        add = vector_op(_sub(ctx, name, None, shape, shape), OpKind.ADD, math.prod(shape), input_shapes=(shape, shape))
        return parts.add(Lowered.single(add), block, skip)

    if layer.norm_first:
        after_attention = residual("add1", attention(parts.add(_norm(ctx, "norm1", layer.norm1, shape), source)), source)
        block = feed_forward(parts.add(_norm(ctx, "norm2", layer.norm2, shape), after_attention))
        return residual("add2", block, after_attention)
    first = parts.add(_norm(ctx, "norm1", layer.norm1, shape), residual("add1", attention(source), source))
    return parts.add(_norm(ctx, "norm2", layer.norm2, shape), residual("add2", feed_forward(first), first))


def _linear(ctx: NodeContext, part: str, layer: nn.Linear, input_shape: Shape, output_shape: Shape) -> Lowered:
    gemm = Gemm(m=math.prod(input_shape[:-1]), n=layer.out_features, k=layer.in_features)
    sub = _sub(ctx, part, layer, input_shape, output_shape)
    return Lowered.single(gemm_op(sub, sub.name, OpKind.LINEAR, gemm, (input_shape,), output_shape))


def _norm(ctx: NodeContext, part: str, norm: nn.Module, shape: Shape) -> Lowered:
    affine = bool(getattr(norm, "elementwise_affine", True))
    return Lowered.single(statistics_norm_op(_sub(ctx, part, norm, shape, shape), "layer", affine))


def _activation_name(activation: object) -> str:
    """The encoder layer's activation (F.relu, F.gelu, or a module such as nn.GELU) as an ACTIVATIONS name."""
    names = {F.relu: "relu", F.gelu: "gelu", nn.ReLU: "relu", nn.GELU: "gelu", nn.SiLU: "silu"}
    name = names.get(activation) or names.get(type(activation))  # type: ignore[call-overload]
    if name is None or name not in ACTIVATIONS:
        raise InputError(f"encoder layer activation {activation!r} is not one the lowering knows; "
                         "expected relu, gelu or silu")
    return name
