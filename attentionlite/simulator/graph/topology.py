"""SCALE-Sim topology files read into an :class:`OpGraph` of conv and GEMM ops.

SCALE-Sim (Samajdar et al., "SCALE-Sim: Systolic CNN Accelerator Simulator",
2018; v2/v3 topology CSVs) describes a workload as one layer per row, each row
ending in a comma.  Two layouts:

- conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides,``.  The IFMAP size already includes padding;
  SCALE-Sim adds none, so the output is ``(H - R) // stride + 1`` rows (its
  ``ceil((H - R + stride) / stride)``).  The im2col GEMM is M = Ho*Wo,
  N = Num Filter, K = R*S*Channels.
- GEMM: ``Layer, M, N, K,``, read as a fully connected layer (M rows of K
  inputs, N outputs).

A header with an ``M`` column is a GEMM file.  Columns are matched by header name, case-insensitively, so ``Stride height`` /
``Stride width`` and ``Batch size`` (images, multiplying M) are read too, and SCALE-Sim v3's
``Sparsity`` column: ``N:M``, N non-zeros in every group of M weights along the reduction axis
(``1:1`` or none: dense), SCALE-Sim's layer-wise sparsity, where every filter keeps the first N of
each group.  The
layers run one after the other in SCALE-Sim, so each op gets an edge from the
row before it, carrying that op's output shape.
"""

from __future__ import annotations

import csv
from pathlib import Path

from attentionlite.errors import InputError
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

_CONV_COLUMNS = {
    "name": ("layer name", "layer"),
    "ifmap_h": ("ifmap height",),
    "ifmap_w": ("ifmap width",),
    "filter_h": ("filter height",),
    "filter_w": ("filter width",),
    "channels": ("channels",),
    "filters": ("num filter", "num filters"),
    "stride": ("strides", "stride"),
    "stride_h": ("stride height", "stride h"),
    "stride_w": ("stride width", "stride w"),
    "batch": ("batch", "batch size"),
    "sparsity": ("sparsity", "sparsity ratio"),
}
_GEMM_COLUMNS = {
    "name": ("layer name", "layer"),
    "m": ("m",),
    "n": ("n",),
    "k": ("k",),
    "batch": ("batch", "batch size"),
    "sparsity": ("sparsity", "sparsity ratio"),
}
_CONV_REQUIRED = ("name", "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "filters")
_GEMM_REQUIRED = ("name", "m", "n", "k")


def read_scalesim_topology(path: str | Path) -> OpGraph:
    """Read a SCALE-Sim conv or GEMM topology CSV; the header says which."""
    path = Path(path)
    header, rows = _read_rows(path)
    is_gemm = "m" in header
    columns, required, to_op = (_GEMM_COLUMNS, _GEMM_REQUIRED, _gemm_op) if is_gemm else (_CONV_COLUMNS, _CONV_REQUIRED, _conv_op)
    index = _column_index(path, header, columns)
    _require_columns(path, index, required, columns)
    graph = OpGraph({"source": str(path), "scalesim_layout": "gemm" if is_gemm else "conv", "batch": 1})
    previous: Op | None = None
    for line_number, cells in rows:
        row = _RowReader(path, line_number, {key: cells[i] for key, i in index.items() if i < len(cells)})
        op = to_op(row, f"{path.name}:{line_number}")
        if op.name in graph.digraph:
            raise InputError(f"{path}:{line_number}: layer name {op.name!r} appears twice; names must be unique")
        graph.add_op(op, [(previous.name, previous.output_shape)] if previous else [])
        previous = op
    if previous is None:
        raise InputError(f"{path}: no layers after the header")
    return graph


def read_scalesim_conv(path: str | Path) -> OpGraph:
    """Read a SCALE-Sim conv topology (an alias that checks the layout)."""
    return _read_layout(path, "conv")


def read_scalesim_gemm(path: str | Path) -> OpGraph:
    """Read a SCALE-Sim GEMM (M, N, K) topology (an alias that checks the layout)."""
    return _read_layout(path, "gemm")


def _read_layout(path: str | Path, layout: str) -> OpGraph:
    graph = read_scalesim_topology(path)
    if graph.metadata["scalesim_layout"] != layout:
        raise InputError(f"{path}: header is a SCALE-Sim {graph.metadata['scalesim_layout']} topology; expected {layout}")
    return graph


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header names (lower case) and the non-empty rows with their 1-based line numbers."""
    if not path.is_file():
        raise InputError(f"{path}: topology file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file") from None
    parsed = [(number, [cell.strip() for cell in cells]) for number, cells in enumerate(csv.reader(lines), start=1)]
    parsed = [(number, _drop_trailing_empty(cells)) for number, cells in parsed if any(cells)]
    if not parsed:
        raise InputError(f"{path}: empty topology file")
    header = [" ".join(cell.lower().split()) for cell in parsed[0][1]]
    return header, parsed[1:]


def _drop_trailing_empty(cells: list[str]) -> list[str]:
    """SCALE-Sim rows end in a comma, which csv reads as one empty last cell."""
    while cells and cells[-1] == "":
        cells = cells[:-1]
    return cells


def _column_index(path: Path, header: list[str], columns: dict[str, tuple[str, ...]]) -> dict[str, int]:
    alias_to_key = {alias: key for key, aliases in columns.items() for alias in aliases}
    unknown = [name for name in header if name not in alias_to_key]
    if unknown:
        expected = ", ".join(aliases[0] for aliases in columns.values())
        raise InputError(f"{path}: unknown column {unknown[0]!r} in the header; expected columns from: {expected}")
    return {alias_to_key[name]: position for position, name in enumerate(header)}


def _require_columns(path: Path, index: dict[str, int], required: tuple[str, ...], columns: dict) -> None:
    missing = [key for key in required if key not in index]
    if missing:
        raise InputError(f"{path}: header lacks the {columns[missing[0]][0]!r} column")


class _RowReader:
    """One row's cells by column key, with errors that name the file, line and column."""

    def __init__(self, path: Path, line_number: int, cells: dict[str, str]) -> None:
        self.where = f"{path}:{line_number}"
        self.cells = cells

    def name(self) -> str:
        if not self.cells.get("name"):
            raise InputError(f"{self.where}: missing layer name")
        return self.cells["name"]

    def positive(self, key: str, default: int | None = None) -> int:
        text = self.cells.get(key, "")
        if text == "" and default is not None:
            return default
        if not text.isdigit() or int(text) < 1:
            raise InputError(f"{self.where}: column {key!r} is {text!r}; expected a positive integer")
        return int(text)

    def n_of_m(self) -> tuple[int, int]:
        """The ``Sparsity`` cell as (N, M); (1, 1) when absent."""
        text = self.cells.get("sparsity", "") or "1:1"
        parts = text.split(":")
        if len(parts) != 2 or not all(part.strip().isdigit() for part in parts) \
                or not 1 <= int(parts[0]) <= int(parts[1]):
            raise InputError(f"{self.where}: column 'sparsity' is {text!r}; expected N:M with 1 <= N <= M")
        return int(parts[0]), int(parts[1])


def _weight_fields(row: _RowReader, gemm: Gemm) -> dict:
    """Weight counts of a K x N weight matrix under the row's N:M sparsity (each filter keeps the first
    N of every M along K, as SCALE-Sim's layer-wise sparsity does)."""
    kept, block = row.n_of_m()
    per_filter = gemm.k // block * kept + min(kept, gemm.k % block)
    structured = {"nm_kept": kept, "nm_block": block, "weight_row_nonzero_max": per_filter} if kept < block else {}
    return {"weight_params": gemm.k * gemm.n, "weight_nonzero": per_filter * gemm.n, **structured}


def _conv_op(row: _RowReader, source: str) -> Op:
    images = row.positive("batch", default=1)
    channels, filters = row.positive("channels"), row.positive("filters")
    ifmap = (row.positive("ifmap_h"), row.positive("ifmap_w"))
    kernel = (row.positive("filter_h"), row.positive("filter_w"))
    stride = row.positive("stride", default=1)
    strides = (row.positive("stride_h", default=stride), row.positive("stride_w", default=stride))
    if kernel[0] > ifmap[0] or kernel[1] > ifmap[1]:
        raise InputError(f"{row.where}: filter {kernel} is larger than the IFMAP {ifmap}")
    out_h, out_w = ((size - k) // s + 1 for size, k, s in zip(ifmap, kernel, strides))
    gemm = Gemm(m=images * out_h * out_w, n=filters, k=channels * kernel[0] * kernel[1])
    return Op(
        name=row.name(),
        kind=OpKind.CONV,
        input_shapes=((images, channels, *ifmap),),
        output_shape=(images, filters, out_h, out_w),
        macs=gemm.macs,
        gemm=gemm,
        source=source,
        **_weight_fields(row, gemm),
        attrs=(("kernel_h", kernel[0]), ("kernel_w", kernel[1]), ("stride_h", strides[0]), ("stride_w", strides[1])),
    )


def _gemm_op(row: _RowReader, source: str) -> Op:
    images = row.positive("batch", default=1)
    gemm = Gemm(m=images * row.positive("m"), n=row.positive("n"), k=row.positive("k"))
    return Op(
        name=row.name(),
        kind=OpKind.LINEAR,
        input_shapes=((gemm.m, gemm.k),),
        output_shape=(gemm.m, gemm.n),
        macs=gemm.macs,
        gemm=gemm,
        source=source,
        **_weight_fields(row, gemm),
    )
