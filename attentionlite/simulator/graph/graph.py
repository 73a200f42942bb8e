"""The operator graph: typed ops (:mod:`attentionlite.simulator.graph.ops`) in a networkx DiGraph.

Nodes are op names with the :class:`~attentionlite.simulator.graph.ops.Op` under the
``op`` attribute; an edge ``a -> b`` means ``b`` reads ``a``'s output, and its
``shape`` attribute is the shape ``b`` reads it in (after any free reshape).
Flatten, reshape, view, dropout and identity modules cost nothing on the
accelerator, so they are not ops: they become edges.  Ops that read the
model's input have no predecessor; ``metadata["input_shape"]`` gives its shape.

This module does not import torch, so a saved graph (JSON or GraphML,
:mod:`~attentionlite.simulator.graph.formats`) or a SCALE-Sim topology file
loads fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TypeVar

import networkx as nx

from attentionlite.errors import InputError
from attentionlite.simulator.graph.ops import Op, OpKind, op_from_dict

Shape = tuple[int, ...]
T = TypeVar("T")

JSON_FORMAT_NAME = "attentionlite-opgraph"
JSON_FORMAT_VERSION = 1
_NUMERIC_FIELDS = tuple(
    f.name for f in dataclasses.fields(Op) if f.type in ("int", "float")
) + ("input_elements", "output_elements")


class OpGraph:
    """A model as a DAG of ops, with the metadata that says how it was made.

    Change it through its methods: they drop what it has derived from itself
    (its topological order, its batch-norm-folded form), which a design-space
    sweep would otherwise recompute at every point.
    """

    def __init__(self, metadata: dict | None = None) -> None:
        self.digraph = nx.DiGraph()
        self.metadata: dict = dict(metadata or {})
        self._derived: dict[str, object] = {}

    def add_op(self, op: Op, inputs: Iterable[tuple[str, Shape]] = ()) -> None:
        """Add ``op``, reading the outputs of the named ops ``inputs`` in the given shapes."""
        if op.name in self.digraph:
            raise ValueError(f"duplicate op name {op.name!r}")
        self._derived.clear()
        self.digraph.add_node(op.name, op=op)
        for producer, shape in inputs:
            self.add_edge(producer, op.name, shape)

    def add_edge(self, producer: str, consumer: str, shape: Shape) -> None:
        for name in (producer, consumer):
            if name not in self.digraph:
                raise ValueError(f"edge names unknown op {name!r}")
        self._derived.clear()
        self.digraph.add_edge(producer, consumer, shape=tuple(shape))

    def op(self, name: str) -> Op:
        return self.digraph.nodes[name]["op"]

    def replace_op(self, op: Op) -> None:
        """Swap in a changed op under the same name (ops are frozen)."""
        self._derived.clear()
        self.digraph.nodes[op.name]["op"] = op

    def remove_op(self, name: str) -> None:
        self._derived.clear()
        self.digraph.remove_node(name)

    def derived(self, name: str, compute: Callable[[], T]) -> T:
        """What ``compute`` derives from this graph, computed once until the graph changes."""
        if name not in self._derived:
            self._derived[name] = compute()
        return self._derived[name]  # type: ignore[return-value]

    def copy(self) -> OpGraph:
        """An independent copy (ops are frozen, so they are shared)."""
        graph = OpGraph(self.metadata)
        graph.digraph = self.digraph.copy()
        return graph

    def ops_in_order(self) -> list[Op]:
        """Ops in topological order; ties keep the order the ops were added (deterministic)."""
        return list(self.derived("ops_in_order", self._topological_order))

    def _topological_order(self) -> tuple[Op, ...]:
        position = {name: index for index, name in enumerate(self.digraph.nodes)}
        order = nx.lexicographical_topological_sort(self.digraph, key=position.__getitem__)
        return tuple(self.op(name) for name in order)

    def __len__(self) -> int:
        return self.digraph.number_of_nodes()

    def producers(self, name: str) -> list[str]:
        return list(self.digraph.predecessors(name))

    def consumers(self, name: str) -> list[str]:
        return list(self.digraph.successors(name))

    def edges(self) -> list[tuple[str, str, Shape]]:
        return [(a, b, shape) for a, b, shape in self.digraph.edges(data="shape")]

    def total(self, field: str) -> int | float:
        """Sum of a numeric :class:`Op` field (or numeric property) over all ops."""
        if field not in _NUMERIC_FIELDS:
            raise InputError(f"unknown numeric op field {field!r}; expected one of {', '.join(_NUMERIC_FIELDS)}")
        return sum(getattr(op, field) for op in nx.get_node_attributes(self.digraph, "op").values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OpGraph):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: ops in insertion order, edges, metadata."""
        return {
            "format": JSON_FORMAT_NAME,
            "version": JSON_FORMAT_VERSION,
            "metadata": self.metadata,
            "ops": [self.op(name).to_dict() for name in self.digraph.nodes],
            "edges": [{"source": a, "target": b, "shape": list(shape)} for a, b, shape in self.edges()],
        }

    @classmethod
    def from_dict(cls, data: dict) -> OpGraph:
        graph = cls(data["metadata"])
        for op_data in data["ops"]:
            graph.add_op(op_from_dict(op_data))
        for edge in data["edges"]:
            graph.add_edge(edge["source"], edge["target"], tuple(edge["shape"]))
        return graph


def fold_batch_norms(graph: OpGraph) -> OpGraph:
    """A copy of ``graph`` with every batch norm that is the only reader of a conv or linear op folded into it.

    Inference hardware scales the weights and adds a bias instead of running the
    norm (the conv's MACs are unchanged).  A norm after anything else (an
    attention layer's pooled output, an add) stays on the vector unit.  The
    folded op records the norm's module path under ``attrs`` ``folded_norm``.
    The copy is made once per graph until it changes, then shared: change a copy
    of it, not it.
    """
    return graph.derived("fold_batch_norms", lambda: _folded_copy(graph))


def _folded_copy(graph: OpGraph) -> OpGraph:
    graph = graph.copy()
    for norm in [op for op in graph.ops_in_order() if _is_batch_norm(op)]:
        producers = graph.producers(norm.name)
        if len(producers) == 1 and _can_absorb_norm(graph, producers[0]):
            _absorb_norm(graph, producers[0], norm)
    graph.metadata["fold_bn"] = True
    return graph


def label_attention(graph: OpGraph) -> OpGraph:
    """``graph`` with the products of two activations that are global attention given its kinds: a
    matmul whose output reaches a softmax through element-wise ops only (scale, mask, bias) computes
    attention logits; one that reads a softmax's output weights the values.  (Hand-written attention,
    and every exporter's decomposition of it, is matmul, softmax, matmul.)  Changes ``graph``."""
    for op in graph.ops_in_order():
        if op.kind is not OpKind.MATMUL:
            continue
        if any(graph.op(producer).kind is OpKind.SOFTMAX for producer in graph.producers(op.name)):
            graph.replace_op(dataclasses.replace(op, kind=OpKind.ATTENTION_VALUES))
        elif _reaches_softmax(graph, op.name):
            graph.replace_op(dataclasses.replace(op, kind=OpKind.ATTENTION_LOGITS))
    return graph


def _reaches_softmax(graph: OpGraph, name: str) -> bool:
    frontier, seen = list(graph.consumers(name)), set()
    while frontier:
        consumer = frontier.pop()
        kind = graph.op(consumer).kind
        if kind is OpKind.SOFTMAX:
            return True
        if kind in (OpKind.ELEMENTWISE, OpKind.ADD) and consumer not in seen:
            seen.add(consumer)
            frontier += graph.consumers(consumer)
    return False


def _is_batch_norm(op: Op) -> bool:
    """A norm without a ``norm`` attr is a batch norm: fixed statistics, a per-channel scale and shift.
    Layer and group norms compute their statistics from the input, so no weights can absorb them."""
    return op.kind is OpKind.NORM and "norm" not in dict(op.attrs)


def _can_absorb_norm(graph: OpGraph, producer: str) -> bool:
    return graph.op(producer).kind in (OpKind.CONV, OpKind.LINEAR) and len(graph.consumers(producer)) == 1


def _absorb_norm(graph: OpGraph, producer: str, norm: Op) -> None:
    for consumer in graph.consumers(norm.name):
        graph.add_edge(producer, consumer, graph.digraph.edges[norm.name, consumer]["shape"])
    graph.remove_op(norm.name)
    folded = graph.op(producer)
    graph.replace_op(dataclasses.replace(folded, attrs=folded.attrs + (("folded_norm", norm.source),)))


# ----------------------------------------------------------------------------- the table


TABLE_COLUMNS = ("op", "kind", "output shape", "MACs", "weights", "non-zero", "bytes in", "bytes out")


def op_table(graph: OpGraph, word_bytes: int = 1) -> str:
    """A fixed-width table of every op in topological order, with a totals row."""
    rows = [_table_row(op, word_bytes) for op in graph.ops_in_order()]
    rows.append(_totals_row(graph, word_bytes))
    widths = [max(len(row[i]) for row in rows + [TABLE_COLUMNS]) for i in range(len(TABLE_COLUMNS))]
    lines = [_format_row(TABLE_COLUMNS, widths)]
    lines.append("  ".join("-" * width for width in widths))
    lines += [_format_row(row, widths) for row in rows[:-1]]
    lines.append(lines[1])
    lines.append(_format_row(rows[-1], widths))
    return "\n".join(lines)


def _table_row(op: Op, word_bytes: int) -> tuple[str, ...]:
    shape = "x".join(str(size) for size in op.output_shape)
    numbers = (op.macs, op.weight_params, op.weight_nonzero, op.input_bytes(word_bytes), op.output_bytes(word_bytes))
    return (op.name, op.kind.value, shape, *(f"{number:,}" for number in numbers))


def _totals_row(graph: OpGraph, word_bytes: int) -> tuple[str, ...]:
    numbers = (
        graph.total("macs"),
        graph.total("weight_params"),
        graph.total("weight_nonzero"),
        graph.total("input_elements") * word_bytes,
        graph.total("output_elements") * word_bytes,
    )
    return (f"total ({len(graph)} ops)", "", "", *(f"{number:,}" for number in numbers))


def _format_row(cells: tuple[str, ...], widths: list[int]) -> str:
    """Text columns left-aligned, number columns right-aligned."""
    text_columns = 3
    parts = [cell.ljust(width) if i < text_columns else cell.rjust(width) for i, (cell, width) in enumerate(zip(cells, widths))]
    return "  ".join(parts).rstrip()
