"""Map each operator onto one core: which unit runs it, as which GEMM, with which sparsity.

Dispatch is a dict from :class:`OpKind` to a handler (:data:`MAPPERS`); an op
kind without a handler is reported by name.  A GEMM with weights first goes
through the hardware's sparsity mode (:mod:`~attentionlite.simulator.accelerator.sparsity`),
which gives the GEMM the array actually runs and what its weights cost to move.
(Whether a layer is stored sparse at all is decided per layer in simulation.py.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator import attention
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import (
    NOTHING_ON_CHIP,
    GemmMapping,
    OnChip,
    OpWork,
    gemm_work,
    vector_work,
)
from attentionlite.simulator.accelerator.sparsity import SPARSITY, dense
from attentionlite.simulator.graph.ops import Op, OpKind


def _map_gemm(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    if op.gemm is None:
        raise InputError(f"op {op.name!r} ({op.kind.value}) has no GEMM shape; expected one for the MAC array")
    sparse = SPARSITY[config.sparsity.mode](op, op.gemm, config) if op.weight_params else dense(op, op.gemm, config)
    gemm = sparse.gemm
    input_matrix = gemm.batch * gemm.m * sparse.input_k  # im2col: each pixel repeats, but crosses DRAM once
    raw_input = math.prod(op.input_shapes[0]) if op.input_shapes else input_matrix
    mapping = GemmMapping(
        gemm=gemm,
        tensor_elements={"input": min(raw_input, input_matrix), "weight": sparse.weight_elements,
                         "output": gemm.batch * gemm.m * gemm.n},
        useful_macs=gemm.macs,
        skipped_macs=op.gemm.macs - gemm.macs,
        index_bytes_per_weight=sparse.index_bytes_per_weight,
    )
    return gemm_work(mapping.kept_on_chip(on_chip), config, parts)


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


def has_sparse_form(op: Op, config: HardwareConfig) -> bool:
    """Whether the hardware's sparsity mode would run ``op`` other than dense (a choice to make)."""
    if op.gemm is None or not op.weight_params or MAPPERS.get(op.kind) is not _map_gemm:
        return False
    return SPARSITY[config.sparsity.mode](op, op.gemm, config) != dense(op, op.gemm, config)
