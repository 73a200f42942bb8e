"""Read an ONNX model into an :class:`~attentionlite.simulator.graph.graph.OpGraph`.

The ``onnx`` package loads and checks the file and infers every tensor's shape
(``onnx.shape_inference``); a symbolic batch dimension takes the batch asked
for.  Each node becomes typed ops by its ``op_type`` (:data:`NODE_LOWERINGS`),
counted by the conventions of :mod:`attentionlite.simulator.graph.lowering`,
so that a model traced from its module and from its ONNX export has the same
MACs per kind:

- ``Conv``, ``ConvTranspose``: their im2col GEMMs; ``Gemm`` and ``MatMul``
  against an initializer: ``linear``; ``MatMul`` of two activations:
  ``matmul``, or global attention's ``attention_logits`` / ``attention_values``
  where it feeds / is fed by a ``Softmax`` (:func:`~attentionlite.simulator.graph.graph.label_attention`).
- element-wise, normalisation, softmax, pooling, reductions and ``Resize`` on
  the vector unit; an exporter's decomposition (GELU into ``Div``, ``Erf``,
  ``Add``, ``Mul``) is counted op by op.
- layout nodes (``Reshape``, ``Transpose``, ``Concat``, ``Gather``, ``Shape``,
  ``Constant``...) lower to no op; the ops on either side are wired together.

A weight's density is that of its initializer: the zeros a pruned model was
exported with.  An op type no handler knows is one :class:`InputError` naming
it and its node.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attentionlite.errors import InputError
from attentionlite.provenance import provenance
from attentionlite.simulator.graph.graph import OpGraph, label_attention
from attentionlite.simulator.graph.lowered import (
    activation_work,
    conv_gemm,
    matmul_gemm,
    statistics_norm_ops_per_element,
    transposed_conv_gemm,
    window_attrs,
)
from attentionlite.simulator.graph.lowering import INTERPOLATION_OPS, NORM_OPS_PER_ELEMENT
from attentionlite.simulator.graph.ops import AXIS_LENGTH, SOFTMAX_OPS_PER_ELEMENT, Gemm, Op, OpKind

Shape = tuple[int, ...]


@dataclass(frozen=True)
class OnnxNode:
    """One node with what its handler needs: shapes of its inputs and outputs, its initializers."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shapes: tuple[Shape | None, ...]
    output_shape: Shape
    attributes: dict
    initializers: dict[str, np.ndarray]

    def attribute(self, key: str, default=None):
        return self.attributes.get(key, default)

    def weight(self, index: int) -> np.ndarray | None:
        """The initializer at input ``index``, if that input is one."""
        return self.initializers.get(self.inputs[index]) if index < len(self.inputs) else None

    def shape(self, index: int) -> Shape:
        shape = self.input_shapes[index] if index < len(self.input_shapes) else None
        if shape is None:
            raise InputError(f"ONNX node {self.name!r} ({self.op_type}): the shape of input {index} is unknown")
        return shape


def load_onnx_graph(path: str | Path, batch: int | None = None) -> OpGraph:
    """The op graph of the ONNX model at ``path``, its symbolic batch dimension set to ``batch`` (default 1)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    path = Path(path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)  # data_prop: computed reshapes
    except Exception as error:  # onnx raises DecodeError, ValidationError, InferenceError, OSError...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a readable ONNX model ({first_line}); expected a file torch.onnx.export "
                         "or another exporter wrote") from None
    graph = model.graph
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    images = 1 if batch is None else batch
    shapes = {value.name: _shape(value, images) for value in (*graph.input, *graph.value_info, *graph.output)}
    shapes.update({name: tuple(int(size) for size in array.shape) for name, array in initializers.items()})
    inputs = [value.name for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise InputError(f"{path}: the model has {len(inputs)} inputs ({', '.join(inputs)}); expected one image input")
    input_shape = shapes[inputs[0]]
    if input_shape is None:
        raise InputError(f"{path}: the shape of input {inputs[0]!r} is unknown; export with a fixed input shape")
    if batch is not None and input_shape[0] != batch:
        raise InputError(f"{path}: exported at a fixed batch of {input_shape[0]}, not {batch}; export with a dynamic "
                         "batch axis (torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}})) to choose it here")
    metadata = {"model": path.stem, "onnx": str(path), "opset": max(o.version for o in model.opset_import),
                "batch": input_shape[0], "input_shape": list(input_shape),
                "image_size": input_shape[-1] if len(input_shape) == 4 else None, "prune_mode": "dense",
                "fold_bn": False, **provenance()}
    builder = _Builder(OpGraph(metadata), inputs[0], initializers)
    for index, node in enumerate(graph.node):
        builder.add(_node(node, index, shapes, builder.constants, onnx.helper.get_attribute_value))
    output = graph.output[0].name
    builder.graph.metadata["output_shape"] = list(shapes.get(output) or ())
    return label_attention(builder.graph)


def _shape(value, batch: int) -> Shape | None:
    """A value's static shape; the first dimension, when symbolic, is the batch."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = []
    for position, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif position == 0:
            dims.append(batch)
        else:
            return None
    return tuple(dims)


def _check_text(node, index: int) -> None:
    """protobuf hands back bytes for a string field that is not UTF-8, which only a damaged file has."""
    fields = (node.name, node.op_type, *node.input, *node.output, *(attribute.name for attribute in node.attribute))
    if any(isinstance(value, bytes) for value in fields):
        raise InputError(f"ONNX node {index}: a name or type is not valid UTF-8; expected text (is the file "
                         "damaged?)")


def _node(node, index: int, shapes: dict, initializers: dict, attribute_value: Callable) -> OnnxNode:
    _check_text(node, index)
    name = node.name or f"{node.op_type.lower()}_{index}"
    output = shapes.get(node.output[0]) if node.output else None
    return OnnxNode(
        name=name,
        op_type=node.op_type,
        inputs=tuple(node.input),
        outputs=tuple(node.output),
        input_shapes=tuple(shapes.get(tensor) for tensor in node.input),
        output_shape=output or (),
        attributes={attribute.name: _plain(attribute_value(attribute)) for attribute in node.attribute},
        initializers={tensor: initializers[tensor] for tensor in node.input if tensor in initializers},
    )


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class _Builder:
    """Adds each node's ops to the graph and wires them by tensor name."""

    def __init__(self, graph: OpGraph, image: str, initializers: dict[str, np.ndarray]) -> None:
        self.graph = graph
        # Weights by tensor name: the initializers, and their layout views (a Transpose of a weight).
        self.constants = dict(initializers)
        self.producers_of: dict[str, tuple[str, ...]] = {}  # tensor name -> the ops its value comes from
        self.activations = {image}  # tensors computed from the input (the rest: weights, shapes, constants)

    def add(self, node: OnnxNode) -> None:
        if not self.activations.intersection(node.inputs):  # constant folding: no work per image
            weights = [self.constants[tensor] for tensor in node.inputs if tensor in self.constants]
            if node.op_type in LAYOUT_OP_TYPES and len(weights) == 1 and node.outputs:
                self.constants[node.outputs[0]] = weights[0]  # same weights, another layout
            return
        self.activations.update(node.outputs)
        handler = NODE_LOWERINGS.get(node.op_type)
        if handler is None:
            raise InputError(f"cannot lower ONNX node {node.name!r} of op type {node.op_type}; supported: "
                             f"{', '.join(sorted(NODE_LOWERINGS))}")
        op = handler(node)
        sources = tuple(dict.fromkeys(s for tensor in node.inputs for s in self.producers_of.get(tensor, ())))
        if op is None:  # layout: the outputs are made of the inputs
            for tensor in node.outputs:
                self.producers_of[tensor] = sources
            return
        if not node.output_shape:
            raise InputError(f"ONNX node {node.name!r} ({node.op_type}): its output shape could not be inferred")
        self.graph.add_op(op)
        for tensor, shape in zip(node.inputs, node.input_shapes):
            for source in self.producers_of.get(tensor, ()):
                self.graph.add_edge(source, op.name, shape or ())
        for tensor in node.outputs:
            self.producers_of[tensor] = (op.name,)


# --------------------------------------------------------------------------- handlers


def _op(node: OnnxNode, kind: OpKind, **fields) -> Op:
    shapes = tuple(shape for shape, tensor in zip(node.input_shapes, node.inputs)
                   if shape is not None and tensor not in node.initializers)
    return Op(name=node.name, kind=kind, input_shapes=shapes, output_shape=node.output_shape, source=node.name,
              **fields)


def _weight_fields(weight: np.ndarray) -> dict:
    return {"weight_params": int(weight.size), "weight_nonzero": int(np.count_nonzero(weight))}


def _conv(node: OnnxNode) -> Op:
    weight = _required_weight(node, 1)
    groups = int(node.attribute("group", 1))
    gemm = conv_gemm(node.output_shape, tuple(weight.shape), groups)
    attrs = (*_window_attrs(node, weight), ("groups", groups))
    return _op(node, OpKind.CONV, macs=gemm.macs, gemm=gemm, attrs=attrs, **_weight_fields(weight))


def _conv_transpose(node: OnnxNode) -> Op:
    weight = _required_weight(node, 1)  # (Cin, Cout / groups, kh, kw)
    groups = int(node.attribute("group", 1))
    gemm = transposed_conv_gemm(node.shape(0), tuple(weight.shape), groups)
    attrs = (*_window_attrs(node, weight), ("groups", groups), ("transposed", 1))
    return _op(node, OpKind.CONV, macs=gemm.macs, gemm=gemm, attrs=attrs, **_weight_fields(weight))


def _window_attrs(node: OnnxNode, weight: np.ndarray) -> tuple:
    return window_attrs(tuple(weight.shape[2:]), node.attribute("strides", [1, 1]))


def _gemm(node: OnnxNode) -> Op:
    """``Gemm(A, B, C)``: Y = A' B' + C, A' = A^T if transA, B' = B^T if transB."""
    a = node.shape(0)
    rows, inner = (a[1], a[0]) if node.attribute("transA", 0) else (a[0], a[1])
    b = node.shape(1)
    columns = b[0] if node.attribute("transB", 0) else b[1]
    return _product(node, Gemm(m=rows, n=columns, k=inner))


def _matmul(node: OnnxNode) -> Op:
    return _product(node, matmul_gemm(node.shape(0), node.shape(1)))


def _product(node: OnnxNode, gemm: Gemm) -> Op:
    """A linear op against a constant second operand, a matmul of two activations otherwise."""
    weight = node.weight(1)
    if weight is None:
        return _op(node, OpKind.MATMUL, macs=gemm.macs, gemm=gemm)
    return _op(node, OpKind.LINEAR, macs=gemm.macs, gemm=gemm, **_weight_fields(weight))


def _required_weight(node: OnnxNode, index: int) -> np.ndarray:
    weight = node.weight(index)
    if weight is None:
        raise InputError(f"ONNX node {node.name!r} ({node.op_type}): its weight is computed, not an initializer; "
                         "expected a constant weight")
    return weight


def _elements(node: OnnxNode) -> int:
    return math.prod(node.output_shape)


def _vector(kind: OpKind, per_element: int, transcendentals: int = 0, **attrs) -> Callable[[OnnxNode], Op]:
    def lower(node: OnnxNode) -> Op:
        extra = tuple(attrs.items())
        if transcendentals:
            extra += (("transcendentals", transcendentals * _elements(node)),)
        return _op(node, kind, vector_ops=per_element * _elements(node), attrs=extra)

    return lower


def _softmax(node: OnnxNode) -> Op:
    """Max, exp, sum and divide per element over ``axis`` (by default the last, as from opset 13).  Before
    opset 13 a softmax normalised the axis and all after it as one row (default axis 1); such a model's
    rows are priced at the one axis it names, or at the last."""
    length = node.output_shape[node.attribute("axis", -1)]
    return _op(node, OpKind.SOFTMAX, vector_ops=SOFTMAX_OPS_PER_ELEMENT * _elements(node),
               attrs=((AXIS_LENGTH, length),))


def _activation(function: str) -> Callable[[OnnxNode], Op]:
    def lower(node: OnnxNode) -> Op:
        vector_ops, attrs = activation_work(function, _elements(node))
        return _op(node, OpKind.ACT, vector_ops=vector_ops, attrs=attrs)

    return lower


def _clip(node: OnnxNode) -> Op:
    """Clip(0, 6) is ReLU6; any other clip is the same two compares."""
    return _activation("relu6")(node)


def _statistics_norm(norm: str) -> Callable[[OnnxNode], Op]:
    """Layer, group and instance norms (how exporters write a group norm: normalise per (image, group),
    then its affine map as Mul, Add); affine when the node takes a scale."""
    def lower(node: OnnxNode) -> Op:
        per_element = statistics_norm_ops_per_element(affine=len(node.inputs) > 1)
        return _op(node, OpKind.NORM, vector_ops=per_element * _elements(node), attrs=(("norm", norm),))

    return lower


def _pool(mode: str) -> Callable[[OnnxNode], Op]:
    def lower(node: OnnxNode) -> Op:
        kernel = node.attribute("kernel_shape")
        attrs = (("mode", mode), *window_attrs(kernel, node.attribute("strides", [1, 1])))
        return _op(node, OpKind.POOL, vector_ops=math.prod(kernel) * _elements(node), attrs=attrs)

    return lower


def _reduction(mode: str) -> Callable[[OnnxNode], Op]:
    """Global pools and reductions: one add (or compare) per input element."""
    def lower(node: OnnxNode) -> Op:
        return _op(node, OpKind.GLOBAL_POOL, vector_ops=math.prod(node.shape(0)), attrs=(("mode", mode),))

    return lower


def _resize(node: OnnxNode) -> Op:
    mode = str(node.attribute("mode", "nearest"))
    name = {"nearest": "nearest", "linear": "bilinear", "cubic": "bicubic"}.get(mode, mode)
    if len(node.output_shape) == 3 and name == "bilinear":
        name = "linear"
    if name not in INTERPOLATION_OPS:
        raise InputError(f"ONNX node {node.name!r} (Resize): mode {mode!r} is not one the lowering knows")
    return _op(node, OpKind.RESAMPLE, vector_ops=INTERPOLATION_OPS[name] * _elements(node), attrs=(("mode", name),))


def _layout(node: OnnxNode) -> None:
    return None


LAYOUT_OP_TYPES = (
    "Reshape", "Transpose", "Flatten", "Concat", "Split", "Slice", "Gather", "Squeeze", "Unsqueeze", "Identity",
    "Dropout", "Shape", "Constant", "ConstantOfShape", "Cast", "Expand", "Range", "Tile",
)
NODE_LOWERINGS: dict[str, Callable[[OnnxNode], Op | None]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _vector(OpKind.NORM, NORM_OPS_PER_ELEMENT),
    "LayerNormalization": _statistics_norm("layer"),
    "GroupNormalization": _statistics_norm("group"),
    "InstanceNormalization": _statistics_norm("instance"),
    "Relu": _activation("relu"),
    "Clip": _clip,
    "LeakyRelu": _activation("leaky_relu"),
    "Sigmoid": _activation("sigmoid"),
    "Tanh": _activation("tanh"),
    "Gelu": _activation("gelu"),
    "HardSigmoid": _activation("hardsigmoid"),
    "HardSwish": _activation("hardswish"),
    "Erf": _vector(OpKind.ACT, 1, 1, function="erf"),
    "Exp": _vector(OpKind.ACT, 1, 1, function="exp"),
    "Sqrt": _vector(OpKind.ELEMENTWISE, 1, function="sqrt"),
    "Pow": _vector(OpKind.ELEMENTWISE, 1, function="pow"),
    "Add": _vector(OpKind.ADD, 1),
    "Sub": _vector(OpKind.ELEMENTWISE, 1, function="sub"),
    "Mul": _vector(OpKind.ELEMENTWISE, 1, function="mul"),
    "Div": _vector(OpKind.ELEMENTWISE, 1, function="div"),
    "Softmax": _softmax,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _reduction("mean"),
    "GlobalMaxPool": _reduction("adaptive_max"),
    "ReduceMean": _reduction("mean"),
    "ReduceSum": _reduction("sum"),
    "Resize": _resize,
    **{op_type: _layout for op_type in LAYOUT_OP_TYPES},
}
