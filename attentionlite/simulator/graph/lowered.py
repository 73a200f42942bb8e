"""What a lowering handler is given and returns, and the op constructors handlers share.

A handler (:mod:`attentionlite.simulator.graph.lowering`,
:mod:`attentionlite.simulator.graph.transformers`) receives a
:class:`NodeContext` for one fx node and returns a :class:`Lowered`: its typed
ops, how they connect, which of them read the node's inputs and which one
produces its output; or ``None`` for a call that does no work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attentionlite.simulator.graph.ops import IN_PLACE, Gemm, Op, OpKind
from attentionlite.simulator.graph.shapes import broadcast_shape, pair

Shape = tuple[int, ...]
WEIGHT = object()  # gemm_op's default weight: the parameter ``<source>.weight``


@dataclass(frozen=True)
class WeightCount:
    """How many weights one parameter has, how many survive its mask, and its columns."""

    params: int
    nonzero: int
    columns_total: int = 0
    columns_kept: int = 0
    nm_kept: int = 0
    nm_block: int = 0
    row_nonzero_max: int = 0  # the most non-zeros one output's weights keep

    def op_fields(self) -> dict:
        return {
            "weight_params": self.params,
            "weight_nonzero": self.nonzero,
            "columns_total": self.columns_total,
            "columns_kept": self.columns_kept,
            "nm_kept": self.nm_kept,
            "nm_block": self.nm_block,
            "weight_row_nonzero_max": self.row_nonzero_max,
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
    weights: Callable[..., WeightCount]  # parameter path (and rows) -> counts from the masks
    args: tuple = ()  # the call's arguments as torch.fx recorded them (tensors as fx nodes)
    kwargs: dict = dataclasses.field(default_factory=dict)
    parameters: tuple[str | None, ...] = ()  # per input: its parameter (or buffer) path, if it is one
    constant: Callable[[str], Any] = lambda path: None  # a buffer's value by path (None: not a buffer)
    input_nodes: tuple = ()  # per input: its fx node (to tell which argument is which)

    def part(self, suffix: str) -> str:
        return f"{self.name}.{suffix}"

    def argument(self, index: int, name: str, default: Any = None) -> Any:
        """The call's argument at ``index`` or by keyword ``name`` (``default`` when not given)."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[index] if index < len(self.args) else default

    def input_index(self, value: Any) -> int | None:
        """Which of the node's inputs ``value`` (an argument) is; None for a non-tensor argument."""
        return next((i for i, node in enumerate(self.input_nodes) if node is value), None)

    def shape_of(self, value: Any) -> Shape | None:
        index = self.input_index(value)
        return None if index is None else self.input_shapes[index]


@dataclass(frozen=True)
class Lowered:
    """The ops of one node: ``entry`` ops read the node's inputs, ``exit`` produces its output."""

    ops: tuple[Op, ...]
    edges: tuple[tuple[str, str, Shape], ...] = ()
    entry: tuple[str, ...] = ()
    exit: str = ""
    # Per input of the node, the ops that read it, where they are not every entry op (attention: the
    # queries and keys feed the logits, the values the weighted sum).
    input_readers: tuple[tuple[str, ...], ...] | None = None

    @classmethod
    def single(cls, op: Op) -> Lowered:
        return cls(ops=(op,), entry=(op.name,), exit=op.name)

    def readers(self, index: int) -> tuple[str, ...]:
        """The ops that read the node's input number ``index``."""
        if self.input_readers is None or index >= len(self.input_readers):
            return self.entry
        return self.input_readers[index]



Handler = Callable[[NodeContext], "Lowered | None"]


def free(ctx: NodeContext) -> None:
    """Layout and no-op calls (reshape, transpose, cat, getitem, dropout, identity): no work, the tracer
    wires the ops on either side to each other."""
    return None


def vector_op(ctx: NodeContext, kind: OpKind, vector_ops: int, name: str | None = None,
              input_shapes: tuple[Shape, ...] | None = None, output_shape: Shape | None = None,
              attrs: tuple = ()) -> Op:
    """An op for the vector unit, on the node's own tensors unless others are given."""
    return Op(
        name=name or ctx.name,
        kind=kind,
        input_shapes=ctx.input_shapes if input_shapes is None else input_shapes,
        output_shape=ctx.output_shape if output_shape is None else output_shape,
        vector_ops=vector_ops,
        source=ctx.source,
        attrs=attrs,
    )


def elementwise(ctx: NodeContext, kind: OpKind, ops_per_element: int, in_place: bool = False,
                attrs: tuple = ()) -> Lowered:
    """One vector op per output element (times ``ops_per_element``), on the node's own tensors."""
    attrs = (IN_PLACE if in_place else ()) + attrs
    return Lowered.single(vector_op(ctx, kind, ops_per_element * math.prod(ctx.output_shape), attrs=attrs))


def gemm_op(
    ctx: NodeContext,
    name: str,
    kind: OpKind,
    gemm: Gemm,
    input_shapes: tuple[Shape, ...],
    output_shape: Shape,
    attrs: tuple = (),
    weight: str | object | None = WEIGHT,
    weight_rows: slice = slice(None),
    vector_ops: int = 0,
) -> Op:
    """An op on the MAC array whose weight is the parameter ``weight`` (default ``<source>.weight``, or
    its ``weight_rows``); ``weight=None`` for a product of two activations."""
    path = f"{ctx.source}.weight" if weight is WEIGHT else weight
    counts = ctx.weights(path, weight_rows).op_fields() if isinstance(path, str) else {}
    return Op(
        name=name,
        kind=kind,
        input_shapes=input_shapes,
        output_shape=output_shape,
        macs=gemm.macs,
        vector_ops=vector_ops,
        gemm=gemm,
        source=ctx.source,
        attrs=attrs,
        **counts,
    )


def conv_gemm(output_shape: Shape, weight_shape: Shape, groups: int) -> Gemm:
    """A convolution's im2col GEMM: M = N*Ho*Wo, N = Cout/groups, K = the rest of the weight's axes
    (Cin/groups*kh*kw, or a compacted layer's kept columns), ``groups`` of them."""
    batch, _, out_h, out_w = output_shape
    return Gemm(m=batch * out_h * out_w, n=weight_shape[0] // groups, k=math.prod(weight_shape[1:]), batch=groups)


def transposed_conv_gemm(input_shape: Shape, weight_shape: Shape, groups: int) -> Gemm:
    """A transposed convolution (weight (Cin, Cout/groups, kh, kw)) as the GEMM that scatters each input
    pixel to its kh x kw outputs: M = N*H*W, N = Cout/groups*kh*kw, K = Cin/groups."""
    batch, _, height, width = input_shape
    return Gemm(m=batch * height * width, n=math.prod(weight_shape[1:]), k=weight_shape[0] // groups, batch=groups)


def matmul_gemm(a_shape: Shape, b_shape: Shape) -> Gemm:
    """``a @ b`` as numpy's matmul reads it: 1-D operands promoted; against a 2-D ``b`` every row of ``a``
    is one row of M; otherwise a batch of (M x K) @ (K x N) over the broadcast leading axes."""
    left = (1, *a_shape) if len(a_shape) == 1 else a_shape
    right = (*b_shape, 1) if len(b_shape) == 1 else b_shape
    if len(right) == 2:
        return Gemm(m=math.prod(left[:-1]), n=right[-1], k=left[-1])
    return Gemm(m=left[-2], n=right[-1], k=left[-1], batch=math.prod(broadcast_shape(left[:-2], right[:-2])))


def window_attrs(kernel, stride) -> tuple:
    """The ``kernel_h``, ``kernel_w``, ``stride_h``, ``stride_w`` attrs of a convolution or pool."""
    (kernel_h, kernel_w), (stride_h, stride_w) = pair(kernel), pair(stride)
    return (("kernel_h", kernel_h), ("kernel_w", kernel_w), ("stride_h", stride_h), ("stride_w", stride_w))


def at(ctx: NodeContext, source: str) -> NodeContext:
    """The same node seen from one of its submodules (for their weights' names)."""
    return dataclasses.replace(ctx, source=source)


def with_attrs(op: Op, attrs: tuple) -> Op:
    return dataclasses.replace(op, attrs=op.attrs + attrs)


# Vector ops per element of each activation, and how many of them are transcendental (exp, erf, tanh:
# the vector unit prices those at its exp cost).  relu: max; relu6 and hardtanh: max, min; leaky relu:
# multiply, max; sigmoid: exp, add, divide; tanh: one tanh; silu: a sigmoid and a multiply; gelu
# (erf form): scale, erf, add, halve, multiply; hardsigmoid: add, max, min, scale; hardswish: that
# and a multiply.
ACTIVATIONS: dict[str, tuple[int, int]] = {
    "relu": (1, 0),
    "relu6": (2, 0),
    "hardtanh": (2, 0),
    "leaky_relu": (2, 0),
    "sigmoid": (3, 1),
    "tanh": (1, 1),
    "silu": (4, 1),
    "gelu": (5, 1),
    "hardsigmoid": (4, 0),
    "hardswish": (5, 0),
}
# Layer and group norm at inference: the statistics (sum and sum of squares), then subtract the mean,
# times the inverse deviation, and with an affine map also times the scale, plus the shift.
NORM_STATISTICS_OPS_PER_ELEMENT = 2
NORMALISE_OPS_PER_ELEMENT = 2
AFFINE_OPS_PER_ELEMENT = 2


def activation_work(function: str, elements: int) -> tuple[int, tuple]:
    """Vector ops of an activation (a name of :data:`ACTIVATIONS`) over ``elements``, and its attrs."""
    ops, transcendentals = ACTIVATIONS[function]
    attrs: tuple = (("function", function),)
    if transcendentals:
        attrs += (("transcendentals", transcendentals * elements),)
    return ops * elements, attrs


def activation_op(ctx: NodeContext, function: str, in_place: bool = False) -> Op:
    """An element-wise activation on the node's tensors."""
    vector_ops, attrs = activation_work(function, math.prod(ctx.output_shape))
    return vector_op(ctx, OpKind.ACT, vector_ops, attrs=(IN_PLACE if in_place else ()) + attrs)


def statistics_norm_ops_per_element(affine: bool) -> int:
    """A norm whose statistics are computed at inference: statistics, normalise, and the affine map."""
    return NORM_STATISTICS_OPS_PER_ELEMENT + NORMALISE_OPS_PER_ELEMENT + (AFFINE_OPS_PER_ELEMENT if affine else 0)


def statistics_norm_op(ctx: NodeContext, norm: str, affine: bool) -> Op:
    """A layer or group norm, whose statistics are computed at inference (so it never folds)."""
    vector_ops = statistics_norm_ops_per_element(affine) * math.prod(ctx.output_shape)
    return vector_op(ctx, OpKind.NORM, vector_ops, attrs=(("norm", norm),))
