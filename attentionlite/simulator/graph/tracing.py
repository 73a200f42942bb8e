"""Trace a torch model into an :class:`~attentionlite.simulator.graph.graph.OpGraph`.

torch.fx records the model's forward as a graph of module and function calls,
keeping the attention layers (and compacted layers) as single calls
(:data:`~attentionlite.simulator.graph.lowering.LEAF_MODULES`); a shape pass on meta
tensors gives every call its tensor shapes (no forward pass is computed); then each call
is lowered to typed ops by the handlers of :mod:`attentionlite.simulator.graph.lowering`.
A call no handler knows is an :class:`InputError` naming its module path and
type: nothing is silently dropped.  Layout calls (reshape, transpose, cat,
getitem...) lower to no op: the ops on either side are wired to each other.
Parameters read directly (``self.pos_embed``, ``F.linear(x, self.weight)``)
are inputs with no producer; a handler knows them by their parameter path.

Weight densities come from the checkpoint's masks: parameter path -> bool tensor
shaped like the weight (see :mod:`attentionlite.model.training.sparsity`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.training.sparsity import NM_BLOCK, most_kept_per_group
from attentionlite.provenance import provenance
from attentionlite.simulator.graph import lowering, shapes
from attentionlite.simulator.graph.graph import OpGraph, fold_batch_norms, label_attention
from attentionlite.simulator.graph.lowered import Lowered, NodeContext, WeightCount

Shape = tuple[int, ...]
IN_CHANNELS = 3  # RGB images


def trace_model(
    model: nn.Module,
    image_size: int | None = None,
    batch: int = 1,
    masks: dict[str, torch.Tensor] | None = None,
    prune_mode: str = "dense",
    fold_bn: bool = False,
    metadata: dict | None = None,
    input_shape: Shape | None = None,
    nm_block: int = NM_BLOCK,
) -> OpGraph:
    """Trace ``model`` on (batch, 3, image_size, image_size) images, or on one input of ``input_shape``
    (batch first), into an :class:`OpGraph`.

    ``masks`` (parameter path -> bool tensor) give each op's non-zero weights
    and the most any group of ``nm_block`` of them along the reduction axis
    keeps (N:M structure); with ``prune_mode="column"`` masked ops record
    their kept columns instead.
    ``metadata`` (model name, arch, dataset, checkpoint) is stored with the
    graph beside the input shape, batch, prune mode and provenance.
    """
    input_shape = _input_shape(image_size, batch, input_shape)
    module = _traced_module(model)
    _check_supported(module)
    _ShapePass(module).propagate(torch.zeros(input_shape, device="meta"))
    weights = MaskedWeights(dict(model.named_parameters()), masks or {}, column_pruned=prune_mode == "column",
                            nm_block=nm_block)
    image_side = input_shape[-1] if len(input_shape) == 4 else None
    info = {**(metadata or {}), "image_size": image_side, "batch": input_shape[0], "input_shape": list(input_shape)}
    info.update(prune_mode=prune_mode, fold_bn=False, **provenance())
    graph = label_attention(_GraphBuilder(module, weights, _json_ready(info)).build())
    return fold_batch_norms(graph) if fold_bn else graph


def _input_shape(image_size: int | None, batch: int, input_shape: Shape | None) -> Shape:
    if input_shape is None:
        if image_size is None:
            raise InputError("tracing needs image_size (square RGB images) or input_shape")
        return (batch, IN_CHANNELS, image_size, image_size)
    shape = tuple(input_shape)
    if not shape or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape):
        raise InputError(f"input_shape {input_shape!r}: expected positive integer sizes, batch first")
    return shape


class _LeafTracer(torch.fx.Tracer):
    """The fx tracer that keeps attention and compacted layers as single calls."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, lowering.LEAF_MODULES) or super().is_leaf_module(module, qualified_name)


def _traced_module(model: nn.Module) -> torch.fx.GraphModule:
    try:
        fx_graph = _LeafTracer().trace(model)
    except (torch.fx.proxy.TraceError, TypeError) as error:
        raise InputError(f"model {type(model).__name__} cannot be traced by torch.fx: {error}") from None
    return torch.fx.GraphModule(model, fx_graph)


class _ShapePass(torch.fx.Interpreter):
    """Propagates shapes through the traced model on meta tensors (no data, no arithmetic) and
    stores each tensor node's shape in ``node.meta["shape"]``.  Calls with a shape rule in
    :mod:`~attentionlite.simulator.graph.shapes` are not run (why: see there); the others run
    on meta tensors (a module on meta copies of its state).  Unknown modules are reported before (:func:`_check_supported`): an
    exception inside an fx Interpreter makes torch import its compiler to annotate it.  Unknown
    functions run here (size arithmetic such as ``x.shape[-1] ** -0.5`` is fine) and are reported by
    the graph builder if they return a tensor."""

    def propagate(self, example: torch.Tensor) -> None:
        self.node: torch.fx.Node | None = None
        try:
            with torch.no_grad():
                self.run(example)
        except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as error:
            where = f"fx node {self.node.name!r} ({_callable_name(self.node.target)})" if self.node else "the model"
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"cannot compute the shapes of {where} on input {tuple(example.shape)}: {message}") from None

    def run_node(self, node: torch.fx.Node):
        self.node = node
        result = super().run_node(node)
        tensor = _first_tensor(result)
        if tensor is not None:  # a tensor, or a tuple of them (split, attention's output and weights)
            node.meta["shape"] = tuple(int(size) for size in tensor.shape)
        return result

    def get_attr(self, target, args, kwargs):
        value = super().get_attr(target, args, kwargs)
        return value.to("meta") if isinstance(value, torch.Tensor) else value

    def call_module(self, target, args, kwargs):
        module = self.fetch_attr(target)
        rule = shapes.MODULE_SHAPE_RULES.get(type(module))
        if rule is not None:
            return args[0].new_empty(rule(module, tuple(args[0].shape)))
        # Without a rule (layer norm, multi-head attention...), run it on meta copies of its state.
        state = {name: value.to("meta") for name, value in module.state_dict(keep_vars=True).items()}
        return torch.func.functional_call(module, state, args, kwargs)

    def call_function(self, target, args, kwargs):
        result = self._by_rule(target, args)
        return super().call_function(target, args, kwargs) if result is None else result

    def call_method(self, target, args, kwargs):
        result = self._by_rule(target, args)
        return super().call_method(target, args, kwargs) if result is None else result

    def _by_rule(self, target, args) -> torch.Tensor | None:
        """An element-wise call's result, by broadcasting; None for other calls, or arithmetic on sizes."""
        tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
        if target not in lowering.BROADCAST_CALLS or not tensors:
            return None
        return tensors[0].new_empty(shapes.broadcast_shape(*(tuple(t.shape) for t in tensors)))


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((item for item in value if isinstance(item, torch.Tensor)), None)
    return None


def _json_ready(metadata: dict) -> dict:
    """Metadata as JSON gives it back (tuples become lists), so saved graphs load back equal."""
    return json.loads(json.dumps(metadata))


@dataclass(frozen=True)
class MaskedWeights:
    """Weight counts of a model's parameters under its masks (missing mask: dense)."""

    parameters: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    column_pruned: bool
    nm_block: int = NM_BLOCK

    def __call__(self, path: str, rows: slice = slice(None)) -> WeightCount:
        """The counts of parameter ``path``, or of its ``rows`` (a fused q, k, v projection's part)."""
        weight = self.parameters.get(path)
        if weight is None:
            raise KeyError(f"lowering asked for unknown parameter {path!r}")
        weight = weight[rows]
        mask = self.masks.get(path)
        if mask is None:
            return WeightCount(weight.numel(), weight.numel())
        mask = mask[rows] if mask.shape == self.parameters[path].shape else mask
        if mask.shape != weight.shape:
            return _compacted_count(path, weight, mask)
        if not self.column_pruned:
            most = most_kept_per_group(mask, self.nm_block)
            return WeightCount(weight.numel(), int(mask.sum()), nm_kept=most, nm_block=self.nm_block,
                               row_nonzero_max=int(mask.flatten(1).sum(1).max()))
        kept = mask.flatten(1).any(dim=0)  # (in*kh*kw,): a column survives if any output keeps it
        return WeightCount(weight.numel(), int(mask.sum()), kept.numel(), int(kept.sum()))


def _compacted_count(path: str, weight: torch.Tensor, mask: torch.Tensor) -> WeightCount:
    """A compacted layer's weight (out, kept) is dense; its mask (out, in, kh, kw) says what was cut."""
    kept = int(mask.flatten(1)[0].sum())
    if weight.dim() != 2 or weight.shape != (mask.shape[0], kept):
        raise InputError(f"mask {path}: shape {tuple(mask.shape)} does not fit weight {tuple(weight.shape)}")
    return WeightCount(weight.numel(), weight.numel(), mask[0].numel(), kept)


class _GraphBuilder:
    """Walks the fx nodes in order, lowers each and wires the ops into an :class:`OpGraph`."""

    def __init__(self, module: torch.fx.GraphModule, weights: MaskedWeights, metadata: dict) -> None:
        self.module = module
        self.weights = weights
        self.graph = OpGraph(metadata)
        # The ops whose outputs a node's value is made of: none for the model input, a parameter or a
        # size; several for a concatenation, which lowers to no op of its own.
        self.producers_of: dict[torch.fx.Node, tuple[str, ...]] = {}
        self.parameter_of: dict[torch.fx.Node, str] = {}  # parameters, also through free reshapes
        self.used_names: set[str] = set()  # op names and the prefixes of multi-op lowerings
        self.node_handlers = {
            "placeholder": self._add_input,
            "get_attr": self._add_parameter,
            "call_module": self._add_module_call,
            "call_function": self._add_function_call,
            "call_method": self._add_function_call,
            "output": self._add_output,
        }

    def build(self) -> OpGraph:
        for node in self.module.graph.nodes:
            self.node_handlers[node.op](node)  # every kind is known: see _check_supported
        return self.graph

    def _add_input(self, node: torch.fx.Node) -> None:
        self.producers_of[node] = ()

    def _add_parameter(self, node: torch.fx.Node) -> None:
        self.producers_of[node] = ()
        self.parameter_of[node] = str(node.target)

    def _buffer(self, path: str) -> torch.Tensor | None:
        """The model's buffer at ``path`` (a fixed attention mask), or None where it is not one."""
        try:
            return self.module.get_buffer(path)
        except AttributeError:
            return None

    def _add_output(self, node: torch.fx.Node) -> None:
        self.graph.metadata["output_shape"] = list(_shape(node.all_input_nodes[0]))

    def _add_module_call(self, node: torch.fx.Node) -> None:
        path = _module_path(node)
        module = self.module.get_submodule(path)
        handler = lowering.find_module_lowering(module)  # known: see _check_supported
        self._lower(node, handler, self._unique(path), path, module)

    def _add_function_call(self, node: torch.fx.Node) -> None:
        source = _enclosing_module(node)
        if "shape" not in node.meta:  # a size, or arithmetic on sizes: no work, feeds only reshapes
            self.producers_of[node] = ()
            return
        handler = lowering.FUNCTION_LOWERINGS.get(node.target)
        if handler is None:
            raise unknown_function_error(node)
        name = self._unique(f"{source}.{_callable_name(node.target)}" if source else _callable_name(node.target))
        self._lower(node, handler, name, source, None)

    def _lower(self, node: torch.fx.Node, handler, name: str, source: str, module: nn.Module | None) -> None:
        inputs = [arg for arg in node.all_input_nodes if "shape" in arg.meta]
        context = NodeContext(
            name, source, module, tuple(_shape(arg) for arg in inputs), _shape(node), self.weights,
            args=node.args, kwargs=dict(node.kwargs), parameters=tuple(self.parameter_of.get(arg) for arg in inputs),
            input_nodes=tuple(inputs), constant=self._buffer,
        )
        lowered = handler(context)
        if lowered is None:  # free: the node's value is made of its inputs' producers' outputs
            self.producers_of[node] = tuple(dict.fromkeys(
                op for arg in node.all_input_nodes for op in self.producers_of[arg]))
            if len(inputs) == 1 and inputs[0] in self.parameter_of:  # e.g. self.weight.t()
                self.parameter_of[node] = self.parameter_of[inputs[0]]
            return
        self._insert(lowered, inputs)
        self.producers_of[node] = (lowered.exit,)

    def _insert(self, lowered: Lowered, inputs: list[torch.fx.Node]) -> None:
        for op in lowered.ops:
            self.graph.add_op(op)
        for producer, consumer, shape in lowered.edges:
            self.graph.add_edge(producer, consumer, shape)
        for index, arg in enumerate(inputs):
            for source_op in self.producers_of[arg]:
                for entry in lowered.readers(index):
                    self.graph.add_edge(source_op, entry, _shape(arg))

    def _unique(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2``... when a module or function is called again."""
        candidate, count = name, 0
        while candidate in self.used_names:
            count += 1
            candidate = f"{name}_{count}"
        self.used_names.add(candidate)
        return candidate


def _check_supported(module: torch.fx.GraphModule) -> None:
    """Raise for the first module call no handler knows, naming its module path and type."""
    for node in module.graph.nodes:
        _NODE_CHECKS.get(node.op, _unknown_node)(module, node)


def _check_module_call(module: torch.fx.GraphModule, node: torch.fx.Node) -> None:
    submodule = module.get_submodule(_module_path(node))
    if lowering.find_module_lowering(submodule) is None:
        raise unknown_module_error(_module_path(node), submodule)


def _module_path(node: torch.fx.Node) -> str:
    """The called module's path: a ``call_module`` node's target is always one."""
    assert isinstance(node.target, str), "call_module targets are module paths"
    return node.target


def _unknown_node(module: torch.fx.GraphModule, node: torch.fx.Node) -> None:
    raise InputError(f"cannot lower fx node {node.name!r} ({node.op} {node.target!r}) in {_enclosing_module(node)!r}")


_NODE_CHECKS = {
    "placeholder": lambda module, node: None,
    "get_attr": lambda module, node: None,
    "output": lambda module, node: None,
    "call_module": _check_module_call,
    "call_function": lambda module, node: None,  # checked by the graph builder, which knows their shapes
    "call_method": lambda module, node: None,
}


def unknown_module_error(path: str, module: nn.Module) -> InputError:
    supported = ", ".join(cls.__name__ for cls in lowering.MODULE_LOWERINGS)
    return InputError(f"cannot lower module {path!r} of type {type(module).__name__}; supported: {supported}")


def unknown_function_error(node: torch.fx.Node) -> InputError:
    return InputError(f"cannot lower {node.op} {_callable_name(node.target)!r} in module {_enclosing_module(node) or '(top)'!r}; "
                      "add a handler to attentionlite.simulator.graph.lowering.FUNCTION_LOWERINGS")


def _shape(node: torch.fx.Node) -> Shape:
    return node.meta["shape"]


def _enclosing_module(node: torch.fx.Node) -> str:
    """Path of the module whose forward made this call ("" for the top-level forward)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _callable_name(target: object) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))
