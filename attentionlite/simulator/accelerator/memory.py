"""On-chip buffers and DRAM traffic: from an op's folds to the tiles the engine schedules.

Each core has a double-buffered SRAM per operand (input, weight, output).  A
*tile* is the unit of double buffering: while the array computes tile i out of
one half, the DMA fills the other half with tile i + 1.  This module decides,
with closed forms over numpy arrays, how many DRAM bytes each tile must load
before it can compute and store after it has computed:

* Reuse.  Folds run column fold outer, row fold inner (systolic.py).  An
  operand that ignores the row-mapped dimension (the os weights, the ws/is
  outputs) is the same for every inner fold, so it is loaded once per column
  fold when its tile fits half its buffer.  An operand that ignores the
  column-mapped dimension (the os inputs) comes back in every column fold; it
  is loaded once, in the first, when the whole operand fits half its buffer
  (*resident*), and reloaded otherwise.  Outputs accumulated over the inner
  folds are stored once; when their tile does not fit, partial sums spill to
  DRAM and are read back.
* Real tensor sizes.  DRAM moves tensors, not the GEMM's operand matrices:
  a convolution's im2col input repeats each pixel kh * kw times on chip but
  crosses DRAM once.  Each operand's DRAM bytes are therefore scaled by
  ``tensor elements / operand-matrix elements`` (see :class:`GemmMapping`).
* Capacity.  A fold whose loads do not fit half a buffer is split into equal
  pieces that do, compute spread evenly across them.
* Reuse across ops (:func:`on_chip_reuse`).  When an op consumes the output
  of the op just before it on the same core and that tensor fits half of the
  output and input buffers, it is read on chip instead of from DRAM; if that
  op is its only consumer, the producer does not store it either.

The DRAM channel itself (bandwidth, latency, contention between cores) lives
in engine.py, which places each tile's transfer at an exact cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.systolic import OPERAND_DIMS, FoldPlan, fold_plan
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op

OPERANDS = tuple(OPERAND_DIMS)


@dataclass(frozen=True)
class OnChip:
    """Which of an op's tensors stay on chip: input positions read from the previous op, and its output."""

    inputs: frozenset[int] = frozenset()
    output: bool = False


NOTHING_ON_CHIP = OnChip()  # every tensor crosses DRAM


def on_chip_reuse(ops: Sequence[Op], graph: OpGraph | Sequence[Op], same_core: Sequence[bool], config: HardwareConfig) -> list[OnChip]:
    """Per op, what never crosses DRAM because the neighbouring op on the same core keeps it.

    ``same_core[i]`` says op i runs right after op i - 1 on the same core with
    the whole tensor (false across pipeline stages and in tile-split).  Without
    a graph (a bare list of ops) nothing is assumed to connect.
    """
    if not isinstance(graph, OpGraph):
        return [OnChip() for _ in ops]
    capacity = min(config.half_buffer_bytes("output"), config.half_buffer_bytes("input"))
    inputs: list[set[int]] = [set() for _ in ops]
    outputs = [False] * len(ops)
    for i in range(1, len(ops)):
        producer, consumer = ops[i - 1], ops[i]
        if not same_core[i] or producer.output_bytes(config.word_bytes) > capacity:
            continue
        consumers = graph.consumers(producer.name)
        if consumer.name in consumers and producer.output_shape in consumer.input_shapes:
            inputs[i].add(consumer.input_shapes.index(producer.output_shape))
            outputs[i - 1] = consumers == [consumer.name]
    return [OnChip(frozenset(kept), output) for kept, output in zip(inputs, outputs)]


def dram_tensor_bytes(op: Op, word_bytes: int, on_chip: OnChip) -> tuple[int, int]:
    """(input bytes, output bytes) a vector-unit op moves over DRAM, given what stays on chip."""
    loaded = sum(math.prod(shape) for index, shape in enumerate(op.input_shapes) if index not in on_chip.inputs)
    return loaded * word_bytes, 0 if on_chip.output else op.output_bytes(word_bytes)


@dataclass(frozen=True)
class TileStream:
    """An op's tiles on one core, in order: compute cycles, DRAM bytes in before, out after."""

    compute: np.ndarray
    load_bytes: np.ndarray
    store_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.compute)

    def split(self, parts: int) -> list[TileStream]:
        """``parts`` contiguous runs of tiles, one per core (tile-split schedule).

        An op with fewer tiles than cores has its tiles cut into equal pieces first
        (for a single fold, that splits its reduction into partial sums).
        """
        pieces = np.full(len(self), math.ceil(parts / len(self)))
        stream = self if len(self) >= parts else _split_to_fit(self.compute, self.load_bytes, self.store_bytes, pieces)
        bounds = np.array_split(np.arange(len(stream)), parts)
        return [TileStream(stream.compute[i], stream.load_bytes[i], stream.store_bytes[i]) for i in bounds]


@dataclass(frozen=True)
class OpWork:
    """Everything an op costs apart from time: its tiles and its access counts."""

    tiles: TileStream
    macs: int = 0  # MACs the array performs (masked halo work included)
    useful_macs: int = 0  # MACs that contribute to the result
    skipped_macs: int = 0  # dense MACs the sparse hardware did not perform
    vector_ops: int = 0
    sram_read_bytes: int = 0
    sram_write_bytes: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0


_COUNT_FIELDS = tuple(name for name in OpWork.__dataclass_fields__ if name != "tiles")


@dataclass(frozen=True)
class GemmMapping:
    """A GEMM as the array runs it, with the real tensors behind its operands.

    ``tensor_elements[operand]`` is how many elements of that tensor exist
    (the DRAM footprint); ``sram_reads_per_element`` multiplies on-chip reads
    where a mapping re-reads an operand per PE (gathered attention windows);
    ``dram_bytes_per_element`` overrides the word size for compressed weights.
    """

    gemm: Gemm
    tensor_elements: dict[str, int]
    useful_macs: int
    skipped_macs: int = 0
    sram_reads_per_element: dict[str, float] = field(default_factory=dict)
    dram_bytes_per_element: dict[str, float] = field(default_factory=dict)

    def kept_on_chip(self, on_chip: OnChip) -> GemmMapping:
        """The same GEMM with the tensors ``on_chip`` keeps given no DRAM footprint (input 0 -> A, 1 -> B)."""
        kept = {name for index, name in enumerate(("input", "weight")) if index in on_chip.inputs}
        kept |= {"output"} if on_chip.output else set()
        return replace(self, tensor_elements={name: 0 if name in kept else count for name, count in self.tensor_elements.items()})

    def operand_matrix_elements(self, operand: str) -> int:
        sizes = {"m": self.gemm.m, "n": self.gemm.n, "k": self.gemm.k}
        first, second = OPERAND_DIMS[operand]
        return self.gemm.batch * sizes[first] * sizes[second]

    def dram_scale(self, operand: str, word_bytes: int) -> float:
        """DRAM bytes per operand-matrix element: word size x tensor / matrix elements."""
        per_element = self.dram_bytes_per_element.get(operand, word_bytes)
        return per_element * self.tensor_elements[operand] / self.operand_matrix_elements(operand)


def gemm_work(mapping: GemmMapping, config: HardwareConfig) -> OpWork:
    """Tiles and access counts of a GEMM on one core's array and buffers."""
    plan = fold_plan(mapping.gemm, config.array.rows, config.array.cols, config.array.dataflow)
    loads, stores = _fold_traffic(plan, mapping, config)
    fill = np.maximum.reduce([loads[name] / config.half_buffer_bytes(name) for name in OPERANDS] + [stores / config.half_buffer_bytes("output")])
    tiles = _split_to_fit(plan.cycles, sum(loads.values()), stores, fill)
    sram_reads = sum(plan.operand_elements[name].sum() * mapping.sram_reads_per_element.get(name, 1.0) for name in ("input", "weight"))
    return OpWork(
        tiles=tiles,
        macs=int(plan.macs.sum()),
        useful_macs=mapping.useful_macs,
        skipped_macs=mapping.skipped_macs,
        sram_read_bytes=_rounded(sram_reads * config.word_bytes),
        sram_write_bytes=_rounded(plan.operand_elements["output"].sum() * config.word_bytes),
        dram_read_bytes=_rounded(sum(loads.values()).sum()),
        dram_write_bytes=_rounded(stores.sum()),
    )


def _fold_traffic(plan: FoldPlan, mapping: GemmMapping, config: HardwareConfig) -> tuple[dict, np.ndarray]:
    """DRAM bytes each fold loads (per operand) and stores, after reuse."""
    tiles = {name: plan.operand_elements[name] * mapping.dram_scale(name, config.word_bytes) for name in OPERANDS}
    per_batch = {name: mapping.tensor_elements[name] * mapping.dram_scale(name, config.word_bytes) / mapping.gemm.batch for name in OPERANDS}
    loads = {name: _operand_loads(plan, name, tiles[name], per_batch[name], config.half_buffer_bytes(name)) for name in ("input", "weight")}
    loads["output"], stores = _output_traffic(plan, tiles["output"], config.half_buffer_bytes("output"))
    return loads, stores


def _operand_loads(plan: FoldPlan, name: str, tile: np.ndarray, operand_bytes: float, half_buffer: int) -> np.ndarray:
    """Bytes of one input operand each fold loads, given which folds can reuse the last tile."""
    dims, flow = OPERAND_DIMS[name], plan.dataflow
    if flow.rows in dims and flow.cols in dims:
        return tile
    if flow.cols in dims:  # same tile for every row fold of a column fold
        return np.where(plan.first_row_fold | (tile > half_buffer), tile, 0.0)
    resident = operand_bytes <= half_buffer  # same tiles again in every column fold
    return np.where(plan.first_col_fold, tile, 0.0) if resident else tile


def _output_traffic(plan: FoldPlan, tile: np.ndarray, half_buffer: int) -> tuple[np.ndarray, np.ndarray]:
    """(partial sums read back, outputs stored) per fold."""
    if plan.dataflow.rows in OPERAND_DIMS["output"]:
        return np.zeros_like(tile), tile  # every fold completes its outputs
    spills = tile > half_buffer
    stores = np.where(plan.last_row_fold | spills, tile, 0.0)
    return np.where(spills & ~plan.first_row_fold, tile, 0.0), stores


def _split_to_fit(compute: np.ndarray, loads: np.ndarray, stores: np.ndarray, fill: np.ndarray) -> TileStream:
    """Cut each fold into ceil(fill) equal tiles so every tile fits half of each buffer."""
    pieces = np.maximum(1, np.ceil(fill - 1e-9)).astype(np.int64)
    if int(pieces.max(initial=1)) == 1:
        return TileStream(compute.astype(np.int64), loads.astype(float), stores.astype(float))
    fold_of_tile = np.repeat(np.arange(len(compute)), pieces)
    first_tile = np.cumsum(pieces) - pieces
    position = np.arange(len(fold_of_tile)) - first_tile[fold_of_tile]
    share, extra = np.divmod(compute, pieces)
    tile_compute = share[fold_of_tile] + (position < extra[fold_of_tile])
    return TileStream(tile_compute, (loads / pieces)[fold_of_tile], (stores / pieces)[fold_of_tile])


def vector_work(cycles: int, vector_ops: int, op: Op, config: HardwareConfig, on_chip: OnChip) -> OpWork:
    """``op`` on the vector unit, cut into tiles that fit the input and output half buffers."""
    load_bytes, store_bytes = dram_tensor_bytes(op, config.word_bytes, on_chip)
    pieces = max(1, math.ceil(load_bytes / config.half_buffer_bytes("input")), math.ceil(store_bytes / config.half_buffer_bytes("output")))
    share, extra = divmod(cycles, pieces)
    compute = np.full(pieces, share, dtype=np.int64) + (np.arange(pieces) < extra)
    tiles = TileStream(compute, np.full(pieces, load_bytes / pieces), np.full(pieces, store_bytes / pieces))
    return OpWork(
        tiles=tiles,
        vector_ops=vector_ops,
        sram_read_bytes=op.input_bytes(config.word_bytes),
        sram_write_bytes=op.output_bytes(config.word_bytes),
        dram_read_bytes=load_bytes,
        dram_write_bytes=store_bytes,
    )


def on_chip_vector_work(cycles: int, vector_ops: int) -> OpWork:
    """Vector work on data already in the buffers (e.g. adding relative to content logits)."""
    tiles = TileStream(np.array([cycles], dtype=np.int64), np.zeros(1), np.zeros(1))
    return OpWork(tiles=tiles, vector_ops=vector_ops)


def combine(works: list[OpWork]) -> OpWork:
    """One op's parts run back to back on one core: tiles concatenated, counts summed.

    Parts with nothing to do (no cycles, no bytes) are dropped.
    """
    tiles = [work.tiles for work in works]
    keep = [np.concatenate([getattr(t, name) for t in tiles]) for name in ("compute", "load_bytes", "store_bytes")]
    busy = (keep[0] > 0) | (keep[1] > 0) | (keep[2] > 0)
    counts = {name: sum(getattr(work, name) for work in works) for name in _COUNT_FIELDS}
    return OpWork(tiles=TileStream(*(column[busy] for column in keep)), **counts)


def transfer_cycles(byte_counts: np.ndarray, config: HardwareConfig) -> np.ndarray:
    """Cycles the shared DRAM channel is busy moving each byte count (whole cycles)."""
    return np.ceil(byte_counts / config.dram_bytes_per_cycle - 1e-9).astype(np.int64)


def _rounded(value: float) -> int:
    return int(round(float(value)))
