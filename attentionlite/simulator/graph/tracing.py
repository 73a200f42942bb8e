"""Trace a torch model into an :class:`~attentionlite.simulator.graph.graph.OpGraph`.

torch.fx records the model's forward as a graph of module and function calls,
keeping the attention layers (and compacted layers) as single calls
(:data:`~attentionlite.simulator.graph.lowering.LEAF_MODULES`); a shape pass on meta
tensors gives every call its tensor shapes (no forward pass is computed); then each call
is lowered to typed ops by the handlers of :mod:`attentionlite.simulator.graph.lowering`.
A call no handler knows is an :class:`InputError` naming its module path and
type: nothing is silently dropped.

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
from attentionlite.provenance import provenance
from attentionlite.simulator.graph import lowering, shapes
from attentionlite.simulator.graph.graph import OpGraph, fold_batch_norms
from attentionlite.simulator.graph.lowering import Lowered, NodeContext, WeightCount

Shape = tuple[int, ...]
IN_CHANNELS = 3  # RGB images


def trace_model(
    model: nn.Module,
    image_size: int,
    batch: int = 1,
    masks: dict[str, torch.Tensor] | None = None,
    prune_mode: str = "dense",
    fold_bn: bool = False,
    metadata: dict | None = None,
) -> OpGraph:
    """Trace ``model`` on (batch, 3, image_size, image_size) images into an :class:`OpGraph`.

    ``masks`` (parameter path -> bool tensor) give each op's non-zero weights;
    with ``prune_mode="column"`` masked ops also record their kept columns.
    ``metadata`` (model name, arch, dataset, checkpoint) is stored with the
    graph beside the input shape, batch, prune mode and provenance.
    """
    module = _traced_module(model)
    _check_supported(module)
    input_shape = (batch, IN_CHANNELS, image_size, image_size)
    with torch.no_grad():
        _ShapePass(module).run(torch.zeros(input_shape, device="meta"))
    weights = MaskedWeights(dict(model.named_parameters()), masks or {}, column_pruned=prune_mode == "column")
    info = {**(metadata or {}), "image_size": image_size, "batch": batch, "input_shape": list(input_shape)}
    info.update(prune_mode=prune_mode, fold_bn=False, **provenance())
    graph = _GraphBuilder(module, weights, _json_ready(info)).build()
    return fold_batch_norms(graph) if fold_bn else graph


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
    :mod:`~attentionlite.simulator.graph.shapes` are not run (why: see there); the others are
    free reshapes.  Unknown calls must be reported before (:func:`_check_supported`): an
    exception inside an fx Interpreter makes torch import its compiler to annotate it."""

    def run_node(self, node: torch.fx.Node):
        result = super().run_node(node)
        if isinstance(result, torch.Tensor):
            node.meta["shape"] = tuple(int(size) for size in result.shape)
        return result

    def call_module(self, target, args, kwargs):
        module = self.fetch_attr(target)
        rule = shapes.MODULE_SHAPE_RULES.get(type(module))
        if rule is None:  # a free module (identity, flatten): cheap on meta tensors
            return super().call_module(target, args, kwargs)
        return args[0].new_empty(rule(module, tuple(args[0].shape)))

    def call_function(self, target, args, kwargs):
        return self._by_rule(target, args) if target in shapes.FUNCTION_SHAPE_RULES else super().call_function(target, args, kwargs)

    def call_method(self, target, args, kwargs):
        return self._by_rule(target, args) if target in shapes.FUNCTION_SHAPE_RULES else super().call_method(target, args, kwargs)

    def _by_rule(self, target, args):
        tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
        return tensors[0].new_empty(shapes.FUNCTION_SHAPE_RULES[target](*(tuple(t.shape) for t in tensors)))


def _json_ready(metadata: dict) -> dict:
    """Metadata as JSON gives it back (tuples become lists), so saved graphs load back equal."""
    return json.loads(json.dumps(metadata))


@dataclass(frozen=True)
class MaskedWeights:
    """Weight counts of a model's parameters under its masks (missing mask: dense)."""

    parameters: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    column_pruned: bool

    def __call__(self, path: str) -> WeightCount:
        weight = self.parameters.get(path)
        if weight is None:
            raise KeyError(f"lowering asked for unknown parameter {path!r}")
        mask = self.masks.get(path)
        if mask is None:
            return WeightCount(weight.numel(), weight.numel())
        if mask.shape != weight.shape:
            return _compacted_count(path, weight, mask)
        if not self.column_pruned:
            return WeightCount(weight.numel(), int(mask.sum()))
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
        self.producer_of: dict[torch.fx.Node, str | None] = {}  # None: the model input, or a size
        self.used_names: set[str] = set()  # op names and the prefixes of multi-op lowerings
        self.node_handlers = {
            "placeholder": self._add_input,
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
        self.producer_of[node] = None

    def _add_output(self, node: torch.fx.Node) -> None:
        self.graph.metadata["output_shape"] = list(_shape(node.all_input_nodes[0]))

    def _add_module_call(self, node: torch.fx.Node) -> None:
        path = _module_path(node)
        module = self.module.get_submodule(path)
        handler = lowering.find_module_lowering(module)  # known: see _check_supported
        self._lower(node, handler, self._unique(path), path, module)

    def _add_function_call(self, node: torch.fx.Node) -> None:
        source = _enclosing_module(node)
        if node.target in lowering.SHAPE_QUERIES and "shape" not in node.meta:
            self.producer_of[node] = None
            return
        handler = lowering.FUNCTION_LOWERINGS.get(node.target)
        if handler is None:  # e.g. indexing that returns a tensor, not a size
            raise unknown_function_error(node)
        name = self._unique(f"{source}.{_callable_name(node.target)}" if source else _callable_name(node.target))
        self._lower(node, handler, name, source, None)

    def _lower(self, node: torch.fx.Node, handler, name: str, source: str, module: nn.Module | None) -> None:
        inputs = [arg for arg in node.all_input_nodes if "shape" in arg.meta]
        context = NodeContext(name, source, module, tuple(_shape(arg) for arg in inputs), _shape(node), self.weights)
        lowered = handler(context)
        if lowered is None:  # free: the node passes its input's producer on
            self.producer_of[node] = self.producer_of[inputs[0]] if inputs else None
            return
        self._insert(lowered, inputs)
        self.producer_of[node] = lowered.exit

    def _insert(self, lowered: Lowered, inputs: list[torch.fx.Node]) -> None:
        for op in lowered.ops:
            self.graph.add_op(op)
        for producer, consumer, shape in lowered.edges:
            self.graph.add_edge(producer, consumer, shape)
        for arg in inputs:
            source_op = self.producer_of[arg]
            if source_op is not None:
                for entry in lowered.entry:
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
    """Raise for the first call no handler knows, naming its module path and type."""
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


def _check_function_call(module: torch.fx.GraphModule, node: torch.fx.Node) -> None:
    if node.target not in lowering.FUNCTION_LOWERINGS and node.target not in lowering.SHAPE_QUERIES:
        raise unknown_function_error(node)


def _unknown_node(module: torch.fx.GraphModule, node: torch.fx.Node) -> None:
    raise InputError(f"cannot lower fx node {node.name!r} ({node.op} {node.target!r}) in {_enclosing_module(node)!r}")


_NODE_CHECKS = {
    "placeholder": lambda module, node: None,
    "output": lambda module, node: None,
    "call_module": _check_module_call,
    "call_function": _check_function_call,
    "call_method": _check_function_call,
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
