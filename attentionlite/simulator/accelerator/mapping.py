"""Map each operator onto one core: which unit runs it, as which GEMM, with which sparsity.

Dispatch is a dict from :class:`OpKind` to a handler (:data:`MAPPERS`); an op
kind without a handler is reported by name.  A GEMM with weights first goes
through the hardware's sparsity mode (:mod:`~attentionlite.simulator.accelerator.sparsity`),
which gives the GEMM the array actually runs and what its weights cost to move;
the sparse form is used only where it moves no more bytes and takes no longer
than the dense one (:func:`_no_worse`), so a layer stored dense costs exactly
what it costs on dense hardware.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator import attention
from attentionlite.simulator.accelerator.engine import run
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import (
    NOTHING_ON_CHIP,
    GemmMapping,
    OnChip,
    OpWork,
    gemm_work,
    vector_work,
)
from attentionlite.simulator.accelerator.schedules import tile_split
from attentionlite.simulator.accelerator.sparsity import SPARSITY, SparseGemm, dense
from attentionlite.simulator.graph.ops import Op, OpKind


def _map_gemm(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    if op.gemm is None:
        raise InputError(f"op {op.name!r} ({op.kind.value}) has no GEMM shape; expected one for the MAC array")
    stored_dense = dense(op, op.gemm, config)
    dense_work = _gemm_work(op, stored_dense, config, on_chip, parts)
    sparse = SPARSITY[config.sparsity.mode](op, op.gemm, config) if op.weight_params else stored_dense
    if sparse == stored_dense:
        return dense_work
    sparse_work = _gemm_work(op, sparse, config, on_chip, parts)
    return sparse_work if _no_worse(sparse_work, dense_work, config) else dense_work


def _gemm_work(op: Op, sparse: SparseGemm, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    gemm = sparse.gemm
    input_matrix = gemm.batch * gemm.m * sparse.input_k  # im2col: each pixel repeats, but crosses DRAM once
    raw_input = math.prod(op.input_shapes[0]) if op.input_shapes else input_matrix
    mapping = GemmMapping(
        gemm=gemm,
        tensor_elements={"input": min(raw_input, input_matrix), "weight": sparse.weight_elements,
                         "output": gemm.batch * gemm.m * gemm.n},
        useful_macs=gemm.macs,
        skipped_macs=op.gemm.macs - gemm.macs if op.gemm else 0,
        index_bytes_per_weight=sparse.index_bytes_per_weight,
    )
    return gemm_work(mapping.kept_on_chip(on_chip), config, parts)


def _no_worse(sparse: OpWork, dense: OpWork, config: HardwareConfig) -> bool:
    """Whether a layer's sparse form moves no more DRAM bytes and, run on its own, takes no longer than
    its dense form: the per-layer choice a compiler for sparse hardware makes (metadata can outweigh
    the weights it saves, and whole-byte transfers of small tiles can cost more cycles)."""
    moved = [work.traffic.dram_read + work.traffic.dram_write for work in (sparse, dense)]
    return moved[0] <= moved[1] and _alone_cycles(sparse, config) <= _alone_cycles(dense, config)


def _alone_cycles(work: OpWork, config: HardwareConfig) -> int:
    """Cycles the op takes on an otherwise idle accelerator (its parts on their cores, then any reduction)."""
    return run(tile_split([work], config, [()]), config).makespan


def _map_vector(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    return vector_work(math.ceil(op.vector_ops / config.vector.lanes), op.vector_ops, op, config, on_chip, parts)


Mapper = Callable[[Op, HardwareConfig, OnChip, int], OpWork]

MAPPERS: dict[OpKind, Mapper] = {
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


def map_op(op: Op, config: HardwareConfig, on_chip: OnChip = NOTHING_ON_CHIP, parts: int = 1) -> OpWork:
    """The work ``op`` puts on ``parts`` cores of ``config`` (one unless tile-split), with ``on_chip``
    tensors kept off DRAM."""
    mapper = MAPPERS.get(op.kind)
    if mapper is None:
        raise InputError(f"op {op.name!r} has kind {op.kind!r}, which the accelerator cannot run; "
                         f"expected one of {', '.join(k.value for k in MAPPERS)}")
    return mapper(op, config, on_chip, parts)
