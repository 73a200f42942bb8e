"""Op graph files: JSON and GraphML written and read back equal, and SCALE-Sim topology CSVs read.

The file suffix names the format (:data:`GRAPH_SUFFIXES`, compared without
case).  JSON is the lossless form; GraphML keeps the scalar op fields as typed
node attributes (readable in yEd and Gephi) and the composite ones as JSON
text.  A malformed file of either is one :class:`InputError` naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from attentionlite.errors import InputError
from attentionlite.files import atomic_write_text
from attentionlite.simulator.graph.graph import JSON_FORMAT_NAME, JSON_FORMAT_VERSION, OpGraph
from attentionlite.simulator.graph.ops import Op, op_from_dict
from attentionlite.simulator.graph.topology import read_scalesim_topology

# Op fields that are not scalars: GraphML stores them as JSON text.
_COMPOSITE_FIELDS = ("input_shapes", "output_shape", "gemm", "window", "attrs")


def save_graph(graph: OpGraph, path: str | Path, format: str | None = None) -> Path:
    """Write ``graph`` atomically as "json" or "graphml" (default: from the file suffix)."""
    path = Path(path)
    format = format or _format_from_suffix(path, _WRITERS)
    if format not in _WRITERS:
        raise InputError(f"unknown graph format {format!r}; expected one of {', '.join(_WRITERS)}")
    atomic_write_text(path, _WRITERS[format](graph))
    return path


def load_graph(path: str | Path) -> OpGraph:
    """Read a graph saved by :func:`save_graph`, or a SCALE-Sim topology CSV, by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: graph file not found")
    loader = _LOADERS[_format_from_suffix(path, _LOADERS)]
    return loader(path)


def _format_from_suffix(path: Path, known: dict) -> str:
    format = path.suffix.lstrip(".").lower()
    if format not in known:
        expected = ", ".join(f".{name}" for name in known)
        raise InputError(f"{path}: unknown graph file suffix {path.suffix!r}; expected one of {expected}")
    return format


def graph_to_json(graph: OpGraph) -> str:
    return json.dumps(graph.to_dict(), indent=1, sort_keys=True) + "\n"


def graph_to_graphml(graph: OpGraph) -> str:
    """GraphML with scalar op fields as typed node attributes (readable in yEd/Gephi); the
    composite fields, edge shapes and the metadata are JSON text."""
    flat = nx.DiGraph(
        metadata=json.dumps(graph.metadata, sort_keys=True), format=JSON_FORMAT_NAME, version=JSON_FORMAT_VERSION
    )
    for name in graph.digraph.nodes:
        flat.add_node(name, **_flatten_op(graph.op(name)))
    for producer, consumer, shape in graph.edges():
        flat.add_edge(producer, consumer, shape=json.dumps(list(shape)))
    return "\n".join(nx.generate_graphml(flat)) + "\n"


def _flatten_op(op: Op) -> dict:
    data = op.to_dict()
    for name in _COMPOSITE_FIELDS:
        data[name] = json.dumps(data[name], sort_keys=True)
    return data


def _read_json(path: Path) -> OpGraph:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a JSON op graph ({error})") from None
    is_dict = isinstance(data, dict)
    _check_format(path, data.get("format") if is_dict else None, data.get("version") if is_dict else None)
    return _parse(path, lambda: OpGraph.from_dict(data))


def _read_graphml(path: Path) -> OpGraph:
    try:
        flat = nx.read_graphml(path, node_type=str)
    except Exception as error:  # networkx raises several XML and type errors for a bad file
        raise InputError(f"{path}: not a GraphML op graph ({error})") from None
    _check_format(path, flat.graph.get("format"), flat.graph.get("version"))
    return _parse(path, lambda: _graph_from_flat(flat))


def _graph_from_flat(flat: nx.DiGraph) -> OpGraph:
    graph = OpGraph(json.loads(flat.graph["metadata"]))
    for _, data in flat.nodes(data=True):
        fields = {**data, **{name: json.loads(data[name]) for name in _COMPOSITE_FIELDS}}
        graph.add_op(op_from_dict(fields))
    for producer, consumer, data in flat.edges(data=True):
        graph.add_edge(producer, consumer, tuple(json.loads(data["shape"])))
    return graph


def _check_format(path: Path, format: object, version: object) -> None:
    if format != JSON_FORMAT_NAME:
        raise InputError(f"{path}: format is {format!r}; expected {JSON_FORMAT_NAME!r} (saved by attentionlite trace)")
    if version != JSON_FORMAT_VERSION:
        raise InputError(f"{path}: op graph version {version!r}; this attentionlite reads version {JSON_FORMAT_VERSION}")


def _parse(path: Path, build) -> OpGraph:
    """Run ``build`` and turn the errors of a malformed but well-formed-looking file into one line."""
    try:
        return build()
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: malformed op graph ({type(error).__name__}: {error})") from None


_WRITERS = {"json": graph_to_json, "graphml": graph_to_graphml}
_LOADERS = {"json": _read_json, "graphml": _read_graphml, "csv": read_scalesim_topology}
GRAPH_SUFFIXES = tuple(f".{name}" for name in _LOADERS)


def is_graph_file(path: str | Path) -> bool:
    """Whether ``path`` names a graph file by its suffix (any case): one :func:`load_graph` reads."""
    return Path(path).suffix.lower() in GRAPH_SUFFIXES
