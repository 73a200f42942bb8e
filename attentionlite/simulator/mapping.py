"""Map each operator onto one core: which unit runs it, as which GEMM, with which sparsity.

Dispatch is a dict from :class:`OpKind` to a handler (:data:`MAPPERS`); an op
kind without a handler is reported by name.  Weight sparsity is a second
registry (:data:`SPARSITY`) that turns a dense GEMM into the one the hardware
actually runs:

* ``none``: dense hardware; masks are ignored.
* ``skip``: zero-skipping in blocks of ``granularity`` weights along the
  reduction.  With unstructured sparsity of density d a block holds a
  non-zero with probability ``1 - (1 - d) ** g``, so the reduction shrinks to
  ``ceil(K * (1 - (1 - d) ** g))`` and the weights are stored as those blocks
  plus ``index_bits`` of metadata each (EIE-style relative indices).
* ``columns``: a column-pruned layer runs as the dense layer it compacts to,
  ``K * columns_kept / columns_total``; other layers stay dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from attentionlite.errors import InputError
from attentionlite.simulator import attention
from attentionlite.simulator.hardware import HardwareConfig
from attentionlite.simulator.memory import GemmMapping, OnChip, OpWork, gemm_work, vector_work
from attentionlite.simulator.ops import Gemm, Op, OpKind


@dataclass(frozen=True)
class SparseGemm:
    """The GEMM the sparse hardware runs, and what its weights cost to store."""

    gemm: Gemm
    weight_elements: int
    weight_bytes_per_element: float


def _dense(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    return SparseGemm(gemm, _weight_elements(op, gemm), config.word_bytes)


def _zero_skipping(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    granularity = config.sparsity.granularity
    block_density = 1.0 - (1.0 - op.weight_density) ** granularity
    reduced = max(1, math.ceil(gemm.k * block_density - 1e-9))
    index_bytes = config.sparsity.index_bits / 8 / granularity  # metadata per stored weight
    stored = math.ceil(_weight_elements(op, gemm) * reduced / gemm.k)
    return SparseGemm(replace(gemm, k=reduced), stored, config.word_bytes + index_bytes)


def _compacted_columns(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    if not op.columns_total:
        return _dense(op, gemm, config)
    reduced = max(1, math.ceil(gemm.k * op.columns_kept / op.columns_total - 1e-9))
    stored = math.ceil(_weight_elements(op, gemm) * reduced / gemm.k)
    return SparseGemm(replace(gemm, k=reduced), stored, config.word_bytes)


SPARSITY: dict[str, Callable[[Op, Gemm, HardwareConfig], SparseGemm]] = {
    "none": _dense,
    "skip": _zero_skipping,
    "columns": _compacted_columns,
}


def _weight_elements(op: Op, gemm: Gemm) -> int:
    """The weight tensor's size; a GEMM from a topology file without weight counts uses K x N."""
    return op.weight_params or gemm.batch * gemm.k * gemm.n


def _map_gemm(op: Op, config: HardwareConfig, on_chip: OnChip) -> OpWork:
    if op.gemm is None:
        raise InputError(f"op {op.name!r} ({op.kind.value}) has no GEMM shape; expected one for the MAC array")
    sparse = SPARSITY[config.sparsity.mode](op, op.gemm, config) if op.weight_params else _dense(op, op.gemm, config)
    matrix_input = op.gemm.batch * op.gemm.m * op.gemm.k  # dense im2col: the input crosses DRAM whole, once
    raw_input = math.prod(op.input_shapes[0]) if op.input_shapes else matrix_input
    performed = sparse.gemm.macs
    mapping = GemmMapping(
        gemm=sparse.gemm,
        tensor_elements={"input": min(raw_input, matrix_input), "weight": sparse.weight_elements, "output": sparse.gemm.batch * sparse.gemm.m * sparse.gemm.n},
        useful_macs=performed,
        skipped_macs=op.gemm.macs - performed,
        dram_bytes_per_element={"weight": sparse.weight_bytes_per_element},
    )
    return gemm_work(mapping.kept_on_chip(on_chip), config)


def _map_vector(op: Op, config: HardwareConfig, on_chip: OnChip) -> OpWork:
    return vector_work(math.ceil(op.vector_ops / config.vector.lanes), op.vector_ops, op, config, on_chip)


MAPPERS: dict[OpKind, Callable[[Op, HardwareConfig, OnChip], OpWork]] = {
    OpKind.CONV: _map_gemm,
    OpKind.LINEAR: _map_gemm,
    OpKind.PROJECTION: _map_gemm,
    OpKind.WINDOW_LOGITS: attention.map_window_logits,
    OpKind.SOFTMAX: attention.map_softmax,
    OpKind.WEIGHTED_SUM: attention.map_weighted_sum,
    OpKind.POOL: _map_vector,
    OpKind.GLOBAL_POOL: _map_vector,
    OpKind.NORM: _map_vector,
    OpKind.ADD: _map_vector,
    OpKind.ACT: _map_vector,
}


def map_op(op: Op, config: HardwareConfig, on_chip: OnChip = OnChip()) -> OpWork:
    """The work ``op`` puts on one core of ``config``, with ``on_chip`` tensors kept off DRAM."""
    mapper = MAPPERS.get(op.kind)
    if mapper is None:
        raise InputError(f"op {op.name!r} has kind {op.kind!r}, which the accelerator cannot run; expected one of {', '.join(k.value for k in MAPPERS)}")
    return mapper(op, config, on_chip)
