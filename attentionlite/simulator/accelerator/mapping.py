"""Map each operator onto one core: which unit runs it, as which GEMM, with which sparsity.

Dispatch is a dict from :class:`OpKind` to a handler (:data:`MAPPERS`); an op
kind without a handler is reported by name.  A GEMM with weights first goes
through the hardware's sparsity mode (:mod:`~attentionlite.simulator.accelerator.sparsity`),
which gives the GEMM the array actually runs and what its weights cost to move.
(Whether a layer is stored sparse at all is decided per layer in simulation.py.)

Mapping is memoised per process (:class:`Memo`): it reads one core's design
(array, vector unit, buffers, word size, sparsity, attention mapping) and
nothing of :data:`NOT_READ_BY_MAPPING`, so design points that differ only in
core count, DRAM, clock, energy or area share each op's mapping, and a sweep maps
each op once per core design.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import fields
from typing import Any, Generic, TypeVar

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator import attention
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import (
    NOTHING_ON_CHIP,
    GemmMapping,
    OnChip,
    OpWork,
    combine,
    gemm_work,
    on_chip_vector_work,
    vector_work,
)
from attentionlite.simulator.accelerator.precision import gemm_element_bytes, output_kind
from attentionlite.simulator.accelerator.sparsity import SPARSITY, dense
from attentionlite.simulator.graph.ops import Op, OpKind


def _map_gemm(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int, may_split_k: bool = True) -> OpWork:
    full = attention.require_gemm(op)
    sparse = SPARSITY[config.sparsity.mode](op, full, config) if op.weight_params else dense(op, full, config)
    gemm = sparse.gemm
    input_matrix = gemm.batch * gemm.m * sparse.input_k  # im2col: each pixel repeats, but crosses DRAM once
    raw_input = math.prod(op.input_shapes[0]) if op.input_shapes else input_matrix
    mapping = GemmMapping(
        gemm=gemm,
        tensor_elements={"input": min(raw_input, input_matrix), "weight": sparse.weight_elements,
                         "output": gemm.batch * gemm.m * gemm.n},
        element_bytes=gemm_element_bytes(op, config, "weight" if op.weight_params else "activation"),
        partial_sum_bytes=config.element_bytes("accumulator"),
        useful_macs=gemm.macs,
        skipped_macs=full.macs - gemm.macs,
        index_bytes_per_weight=sparse.index_bytes_per_weight,
    )
    return gemm_work(mapping.kept_on_chip(on_chip), config, parts, may_split_k=may_split_k)


def _map_product(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    """A product of two activations (global attention's Q K^T and A V, a matmul) on the array; the second
    operand streams through the weight buffer.  Its vector work (the logits' scale and mask) runs in the
    output path, on data already on chip.  With a fixed mask on split engines (attention.py) only the
    kept logits are computed, scaled and masked."""
    split = attention.mask_split(op) if config.attention.split_sparse else None
    if split is not None:
        work = attention.map_split_attention(op, config, on_chip, parts)
        vector_ops = math.ceil(op.vector_ops * attention.kept_logits(op, split) / math.prod(op.output_shape))
    elif not op.vector_ops:
        return _map_gemm(op, config, on_chip, parts)
    else:
        work = _map_gemm(op, config, on_chip, parts, may_split_k=False)  # the vector work reads whole sums
        vector_ops = op.vector_ops
    if not vector_ops:
        return work
    cycles = math.ceil(vector_cycles(op, config) * vector_ops / op.vector_ops)
    return combine([work, on_chip_vector_work(cycles, vector_ops, parts)])


def vector_cycles(op: Op, config: HardwareConfig) -> int:
    """Lane-cycles of an op's vector work over the lanes; a transcendental (``transcendentals`` attr:
    the exp of a sigmoid, GELU's erf) costs ``exp_cycles`` instead of one, and an output wider than a lane
    takes as many passes."""
    transcendentals = int(dict(op.attrs).get("transcendentals", 0))
    lane_cycles = (op.vector_ops + transcendentals * (config.vector.exp_cycles - 1)) * config.vector_passes(output_kind(op))
    return math.ceil(lane_cycles / config.vector.lanes)


def _map_vector(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    """On the vector unit, or free of cycles in the array's output path as its producer's outputs drain."""
    cycles = 0 if on_chip.output_path else vector_cycles(op, config)
    return vector_work(cycles, op.vector_ops, op, config, on_chip, parts)


Mapper = Callable[[Op, HardwareConfig, OnChip, int], OpWork]

MAPPERS: dict[OpKind, Mapper] = {
    OpKind.CONV: _map_gemm,
    OpKind.LINEAR: _map_gemm,
    OpKind.PROJECTION: _map_gemm,
    OpKind.WINDOW_LOGITS: attention.map_window_logits,
    OpKind.SOFTMAX: attention.map_softmax,
    OpKind.WEIGHTED_SUM: attention.map_weighted_sum,
    OpKind.ATTENTION_LOGITS: _map_product,
    OpKind.ATTENTION_VALUES: _map_product,
    OpKind.MATMUL: _map_product,
    OpKind.POOL: _map_vector,
    OpKind.GLOBAL_POOL: _map_vector,
    OpKind.NORM: _map_vector,
    OpKind.ADD: _map_vector,
    OpKind.ELEMENTWISE: _map_vector,
    OpKind.ACT: _map_vector,
    OpKind.RESAMPLE: _map_vector,
}


# HardwareConfig fields no mapper reads (tests/simulator/accelerator/test_mapping_memo.py checks it on every
# zoo model's ops): the rest of the config is one core's design, the key of a memoised mapping.
NOT_READ_BY_MAPPING = frozenset({"name", "description", "cores", "clock_mhz", "dram", "energy", "area",
                                 "fold_batch_norm"})

Value = TypeVar("Value")


class Memo(Generic[Value]):
    """A bounded least-recently-used memo of a pure function's results, by key.

    A plain dict keeps insertion order, so popping a hit and putting it back
    makes it the most recent and leaves the least recent first: two hashes of
    the key per hit (a sweep makes hundreds of hits per design point)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: dict[Hashable, Value] = {}

    def get(self, key: Hashable, compute: Callable[[], Value]) -> Value:
        value = self.values.pop(key, _MISSING)
        if value is _MISSING:
            value = compute()
            if len(self.values) >= self.size:
                del self.values[next(iter(self.values))]
        self.values[key] = value
        return value


_MISSING: Any = object()


class CoreDesign:
    """What mapping an op depends on, as a memo key: the config's fields but :data:`NOT_READ_BY_MAPPING`,
    hashed once (they nest several dataclasses, and every op of every design point looks one up)."""

    __slots__ = ("fields", "_hash")

    def __init__(self, values: tuple) -> None:
        self.fields = values
        self._hash = hash(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CoreDesign) and (self is other or self.fields == other.fields)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple:  # a hash holds for one process only (strings hash with a per-process seed)
        return CoreDesign, (self.fields,)


# The designs of the configs seen last, by id: each entry keeps its config alive, so while it is here no
# other object has that id.  A simulation maps every op on the same few config objects.
_RECENT_DESIGNS: Memo[tuple[HardwareConfig, CoreDesign]] = Memo(8)
_DESIGNS: Memo[CoreDesign] = Memo(4096)  # one object per design: memo keys then compare by identity


def core_design(config: HardwareConfig) -> CoreDesign:
    """What mapping an op on ``config`` depends on: every config field but :data:`NOT_READ_BY_MAPPING`."""
    return _RECENT_DESIGNS.get(id(config), lambda: (config, _interned_design(config)))[1]


def _interned_design(config: HardwareConfig) -> CoreDesign:
    design = CoreDesign(tuple(getattr(config, item.name) for item in fields(config)
                              if item.name not in NOT_READ_BY_MAPPING))
    return _DESIGNS.get(design, lambda: design)


_MAPPED: Memo[OpWork] = Memo(4096)  # a few models' ops on a few core designs


def map_op(op: Op, config: HardwareConfig, on_chip: OnChip = NOTHING_ON_CHIP, parts: int = 1) -> OpWork:
    """The work ``op`` puts on ``parts`` cores of ``config`` (one unless tile-split), with ``on_chip``
    tensors kept off DRAM (memoised: the result is shared, never modify it)."""
    mapper = MAPPERS.get(op.kind)
    if mapper is None:
        raise InputError(f"op {op.name!r} has kind {op.kind!r}, which the accelerator cannot run; "
                         f"expected one of {', '.join(k.value for k in MAPPERS)}")
    return _MAPPED.get((op, core_design(config), on_chip, parts), lambda: mapper(op, config, on_chip, parts))


def has_sparse_form(op: Op, config: HardwareConfig) -> bool:
    """Whether the hardware's sparsity mode would run ``op`` other than dense (a choice to make)."""
    if op.gemm is None or not op.weight_params or MAPPERS.get(op.kind) is not _map_gemm:
        return False
    return SPARSITY[config.sparsity.mode](op, op.gemm, config) != dense(op, op.gemm, config)
