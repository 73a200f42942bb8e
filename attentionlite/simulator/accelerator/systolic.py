"""GEMM on an R x C systolic array: the output-, weight- and input-stationary dataflows.

A GEMM ``C[M, N] = A[M, K] @ B[K, N]`` (a convolution as its im2col GEMM: M
output pixels, N filters, K = Cin * kh * kw) is cut into *folds*: one dimension
is spread over the array's rows, one over its columns, and the third streams
through in time.  A dataflow is only the choice of those three dimensions
plus whether the stationary operand must be preloaded, so the three dataflows
are three entries of one registry (:data:`DATAFLOWS`), not three classes.

Cycle counts follow SCALE-Sim v3 (Samajdar et al., ISPASS 2020;
``scalesim/compute/systolic_compute_{os,ws,is}.py``).  SCALE-Sim builds one
demand matrix per fold and skews it; the closed forms of those matrices' row
counts are, with T the streamed dimension:

* ``os`` (A rows on array rows, B columns on array columns, K streams):
  ``T + R + C - 2`` per fold, i.e. T cycles of reduction, R - 1 cycles of skew
  (fill) and C - 1 cycles for the last outputs to drain.
* ``ws`` (K on rows, N on columns, M streams) and ``is`` (K on rows, M on
  columns, N streams): ``T + 2R + C - 2`` per fold, the extra R cycles being
  the preload of the stationary operand into the array.

Folds run back to back, ``ceil(Sr / R) * ceil(Sc / C)`` of them.  SCALE-Sim's
report prints the index of the last cycle (``max`` of the 0-based serviced
cycles), which is this module's duration minus one: the golden tests compare
``compute_cycles(...) - 1`` with SCALE-Sim's number, exactly.

With ``overlap`` (``array.overlap_folds``), folds are pipelined as in a
TPU-style array (Jouppi et al., ISCA 2017: weights double-buffered in the PEs,
the next tile's operands streamed in right behind the current one's): the
next fold's fill overlaps this fold's drain, and its stationary operand loads
while this fold streams.  A run of n folds then costs one whole fold (stream,
fill, drain and preload, as above) plus ``n - 1`` times the stream, or R
where the stream is shorter than what it must hide: the next weights'
preload (ws, is) or the last outputs' shift out of the accumulators (os),
R cycles either way.  This assumes double-buffered PE registers (weights for
ws/is, accumulators for os) and counts no second fill after a memory stall
between folds; SCALE-Sim has no such mode, so the golden tests stay on the
default, off.  The knob is the main cores' array's; a core group's array
(``[[groups]]``) sets its own.

Folds are visited column fold outer, row fold inner (SCALE-Sim's order), so an
operand that does not depend on the row-mapped dimension is the same for all
inner folds and can stay resident in its buffer; memory.py uses that, for the
whole GEMM or for the run of folds one core gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attentionlite.simulator.graph.ops import Gemm

# The GEMM dimensions each operand is indexed by.
OPERAND_DIMS = {"input": ("m", "k"), "weight": ("k", "n"), "output": ("m", "n")}


@dataclass(frozen=True)
class Dataflow:
    """Which GEMM dimension goes on the array rows, the columns, and through time."""

    name: str
    rows: str
    cols: str
    stream: str
    preload_stationary: bool

    def fold_cycles(self, stream_length: int, array_rows: int, array_cols: int) -> int:
        """Cycles of one fold: stream + fill (R - 1) + drain (C - 1) [+ R to preload]."""
        preload = array_rows if self.preload_stationary else 0
        return stream_length + preload + array_rows + array_cols - 2

    def overlapped_fold_cycles(self, stream_length: int, array_rows: int) -> int:
        """Cycles a pipelined fold adds after the first of its run: its stream, or, where that is shorter, the
        R cycles its stationary operand takes to load (ws, is) or its accumulators to shift out (os)."""
        return max(stream_length, array_rows)


DATAFLOWS: dict[str, Dataflow] = {
    flow.name: flow
    for flow in (
        Dataflow("os", rows="m", cols="n", stream="k", preload_stationary=False),
        Dataflow("ws", rows="k", cols="n", stream="m", preload_stationary=True),
        Dataflow("is", rows="k", cols="m", stream="n", preload_stationary=True),
    )
}


def _sizes(gemm: Gemm) -> dict[str, int]:
    return {"m": gemm.m, "n": gemm.n, "k": gemm.k}


def fold_counts(gemm: Gemm, array_rows: int, array_cols: int, dataflow: str) -> tuple[int, int]:
    """(row folds, column folds) of one of the GEMM's ``batch`` products."""
    flow, sizes = DATAFLOWS[dataflow], _sizes(gemm)
    return math.ceil(sizes[flow.rows] / array_rows), math.ceil(sizes[flow.cols] / array_cols)


def compute_cycles(gemm: Gemm, array_rows: int, array_cols: int, dataflow: str) -> int:
    """Stall-free cycles of the whole GEMM (all ``batch`` products) on one array, folds not overlapped (the
    SCALE-Sim closed form; :func:`fold_plan` prices overlapped folds)."""
    flow = DATAFLOWS[dataflow]
    row_folds, col_folds = fold_counts(gemm, array_rows, array_cols, dataflow)
    per_fold = flow.fold_cycles(_sizes(gemm)[flow.stream], array_rows, array_cols)
    return gemm.batch * row_folds * col_folds * per_fold


@dataclass(frozen=True)
class FoldPlan:
    """Per-fold arrays of one GEMM (or a contiguous run of its folds), in execution order
    (batch, column fold, row fold).

    ``operand_elements[name]`` is each fold's tile of that operand in elements;
    ``used_rows`` / ``used_cols`` the array rows and columns the fold occupies;
    ``batch_index``, ``row_index``, ``col_index`` say which tile of the GEMM it is,
    so that reuse can be decided for any run of folds (one core's share).
    ``cycles[i]`` is what fold i adds to a run that starts with fold 0; a run of
    overlapped folds pays ``run_fill`` more on its first fold (0 without overlap).
    """

    dataflow: Dataflow
    cycles: np.ndarray
    run_fill: int
    macs: np.ndarray
    operand_elements: dict[str, np.ndarray]
    used_rows: np.ndarray
    used_cols: np.ndarray
    batch_index: np.ndarray
    row_index: np.ndarray
    col_index: np.ndarray

    @property
    def folds(self) -> int:
        return len(self.cycles)

    def subset(self, folds: np.ndarray) -> FoldPlan:
        """The folds at the given positions, in order (a core's share of the GEMM), as one run."""
        return FoldPlan(
            dataflow=self.dataflow,
            cycles=self.run_fold_cycles(folds),
            run_fill=self.run_fill,
            macs=self.macs[folds],
            operand_elements={name: tile[folds] for name, tile in self.operand_elements.items()},
            used_rows=self.used_rows[folds],
            used_cols=self.used_cols[folds],
            batch_index=self.batch_index[folds],
            row_index=self.row_index[folds],
            col_index=self.col_index[folds],
        )

    def run_fold_cycles(self, folds: np.ndarray) -> np.ndarray:
        """Each fold's cycles when the folds at the given positions run back to back: the first pays the fill."""
        cycles = self.cycles[folds] - np.where(folds == 0, self.run_fill, 0)
        if len(cycles):
            cycles[0] += self.run_fill
        return cycles

    def starts_column_fold(self) -> np.ndarray:
        """Folds where the run moves to another (batch, column fold): a column-indexed operand changes."""
        key = self.batch_index * (int(self.col_index.max(initial=0)) + 1) + self.col_index
        return np.concatenate([[True], key[1:] != key[:-1]])

    def ends_column_fold(self) -> np.ndarray:
        """Folds after which the run leaves its (batch, column fold): accumulated outputs are complete."""
        starts = self.starts_column_fold()
        return np.concatenate([starts[1:], [True]])

    def first_of_row_tile(self) -> np.ndarray:
        """Folds that are the run's first to use their (batch, row fold) tile: where a resident operand loads."""
        key = self.batch_index * (int(self.row_index.max(initial=0)) + 1) + self.row_index
        first = np.zeros(len(key), dtype=bool)
        first[np.unique(key, return_index=True)[1]] = True
        return first


def _extents(size: int, tile: int) -> np.ndarray:
    """How much of a dimension each fold covers: full tiles, then the remainder."""
    count = math.ceil(size / tile)
    extents = np.full(count, tile, dtype=np.int64)
    extents[-1] = size - tile * (count - 1)
    return extents


def fold_plan(gemm: Gemm, array_rows: int, array_cols: int, dataflow: str, overlap: bool = False) -> FoldPlan:
    """Every fold of ``gemm`` with its cycles, MACs and operand tiles (vectorised); ``overlap`` pipelines them."""
    flow, sizes = DATAFLOWS[dataflow], _sizes(gemm)
    row_extent = _extents(sizes[flow.rows], array_rows)
    col_extent = _extents(sizes[flow.cols], array_cols)
    rows = np.tile(row_extent, len(col_extent) * gemm.batch)  # row fold varies fastest
    cols = np.tile(np.repeat(col_extent, len(row_extent)), gemm.batch)
    extent = {flow.rows: rows, flow.cols: cols, flow.stream: np.full_like(rows, sizes[flow.stream])}
    row_index = np.tile(np.arange(len(row_extent)), len(col_extent) * gemm.batch)
    col_index = np.tile(np.repeat(np.arange(len(col_extent)), len(row_extent)), gemm.batch)
    batch_index = np.repeat(np.arange(gemm.batch), len(row_extent) * len(col_extent))
    whole = flow.fold_cycles(sizes[flow.stream], array_rows, array_cols)
    each = flow.overlapped_fold_cycles(sizes[flow.stream], array_rows) if overlap else whole
    cycles = np.full_like(rows, each)
    cycles[0] = whole
    return FoldPlan(
        dataflow=flow,
        cycles=cycles,
        run_fill=whole - each,
        macs=rows * cols * sizes[flow.stream],
        operand_elements={name: extent[a] * extent[b] for name, (a, b) in OPERAND_DIMS.items()},
        used_rows=rows,
        used_cols=cols,
        batch_index=batch_index,
        row_index=row_index,
        col_index=col_index,
    )
