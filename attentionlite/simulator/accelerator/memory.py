"""On-chip buffers and DRAM traffic: from an op's folds to the tiles the engine schedules.

Each core has a double-buffered SRAM per operand (input, weight, output).  A
*tile* is the unit of double buffering: while the array computes tile i out of
one half, the DMA fills the other half with tile i + 1.  This module decides,
with closed forms over numpy arrays, how many DRAM bytes each tile must load
before it can compute and store after it has computed, and counts every byte
by operand (:class:`Traffic`):

* Reuse.  Folds run column fold outer, row fold inner (systolic.py).  An
  operand that ignores the row-mapped dimension (the os weights, the ws/is
  outputs) is the same for every inner fold, so it is loaded once per column
  fold when its tile fits half its buffer.  An operand that ignores the
  column-mapped dimension (os and ws inputs, is weights) comes back in every
  column fold; it is loaded once, the first time its row tile is used, when
  the whole operand (per batch) fits half its buffer (*resident*), and
  reloaded otherwise.  Outputs accumulated over the inner folds are stored
  once; when their tile does not fit, partial sums spill to DRAM and are read
  back.
* Real tensor sizes.  DRAM moves tensors, not the GEMM's operand matrices: a
  convolution's im2col input repeats each pixel kh * kw times on chip but
  crosses DRAM once.  Each operand's DRAM bytes are therefore scaled by
  ``tensor elements / operand-matrix elements`` (see :class:`GemmMapping`).
* Capacity.  A fold whose loads do not fit half a buffer (weights and their
  index metadata share the weight buffer) is split into equal pieces that do,
  compute spread evenly across them.
* Cores.  Under the ``split`` schedule each core runs a contiguous share of the
  folds and decides reuse from its own buffers: every core loads what its folds
  read.  Shares end on output-complete boundaries (an os fold, a ws/is column
  fold), so no core holds half an accumulation; with fewer such units than
  cores some cores idle, unless cutting the reduction dimension K into slices
  shortens the busiest core: then every core computes partial sums over its
  slice (each fold paying its own fill and drain), and a reduction on the
  vector unit of core 0 reads the partial sums back, adds them and stores the
  result.
* Reuse across ops (:class:`OnChip`, decided in fusion.py).  When an op
  consumes the output of the op just before it on the same core and that
  tensor stays on chip (it fits half of the output and input buffers, or a
  fused attention block does, or it streams through the array's output
  path), it is read on chip instead of from DRAM; if that op is its only
  consumer, the producer does not store it either.
* SRAM accesses.  The array reads its operand tiles (gathered attention windows
  re-read keys and values per PE row), writes its outputs and, under ws/is,
  reads back the partial sums it accumulates; every byte from DRAM is also
  written into its buffer (a fill) and every byte to DRAM read out of the
  output buffer (a drain).

The DRAM channel itself (bandwidth, latency, contention between cores) lives
in engine.py, which places each tile's transfer at an exact cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.precision import input_bytes, output_bytes
from attentionlite.simulator.accelerator.systolic import OPERAND_DIMS, FoldPlan, fold_plan
from attentionlite.simulator.graph.ops import Gemm, Op

OPERANDS = tuple(OPERAND_DIMS)


@dataclass(frozen=True)
class OnChip:
    """Which of an op's tensors stay on chip: input positions read from the previous op, and its output;
    ``output_path``: the op itself is applied in its producer's output path, as the outputs drain (fusion.py)."""

    inputs: frozenset[int] = frozenset()
    output: bool = False
    output_path: bool = False


NOTHING_ON_CHIP = OnChip()  # every tensor crosses DRAM


# ----------------------------------------------------------------------------- what an op moves


@dataclass(frozen=True)
class Traffic:
    """Bytes one op moves, by operand.

    DRAM: the input, the weights, the sparse weights' index metadata, partial
    sums read back, the output (spilled partial sums included).  SRAM: reads and
    writes of the input, weight and output buffers, the DRAM fills and drains
    included.
    """

    dram_read_input: float = 0.0
    dram_read_weight: float = 0.0
    dram_read_index: float = 0.0
    dram_read_psum: float = 0.0
    dram_write_output: float = 0.0
    sram_read_input: float = 0.0
    sram_read_weight: float = 0.0
    sram_read_output: float = 0.0
    sram_write_input: float = 0.0
    sram_write_weight: float = 0.0
    sram_write_output: float = 0.0

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(**{name: getattr(self, name) + getattr(other, name) for name in TRAFFIC_FIELDS})

    @property
    def dram_read(self) -> float:
        return self.dram_read_input + self.dram_read_weight + self.dram_read_index + self.dram_read_psum

    @property
    def dram_write(self) -> float:
        return self.dram_write_output

    @property
    def sram_read(self) -> float:
        return self.sram_read_input + self.sram_read_weight + self.sram_read_output

    @property
    def sram_write(self) -> float:
        return self.sram_write_input + self.sram_write_weight + self.sram_write_output

    def sram_bytes(self, buffer: str) -> float:
        """Reads and writes of one buffer (``input``, ``weight`` or ``output``)."""
        return getattr(self, f"sram_read_{buffer}") + getattr(self, f"sram_write_{buffer}")

    def rounded(self) -> dict[str, int]:
        """Every field as whole bytes, by name (what a result row shows)."""
        return {name: round(getattr(self, name)) for name in TRAFFIC_FIELDS}


TRAFFIC_FIELDS = tuple(item.name for item in fields(Traffic))
DRAM_FIELDS = tuple(name for name in TRAFFIC_FIELDS if name.startswith("dram_"))


def _peak_rates(byte_counts: dict[str, np.ndarray], cycles: np.ndarray) -> dict[str, float]:
    """Per DRAM field, the largest bytes per compute cycle of any fold or tile: the bandwidth that hides
    that operand's transfers behind compute."""
    busy = cycles > 0
    return {name: float((byte_counts[name][busy] / cycles[busy]).max(initial=0.0)) for name in byte_counts}


def _max_rates(rates: Sequence[dict[str, float]]) -> dict[str, float]:
    return {name: max((rate.get(name, 0.0) for rate in rates), default=0.0) for name in DRAM_FIELDS}


@dataclass(frozen=True)
class TileStream:
    """One core's share of an op, as tiles in order: compute cycles, DRAM bytes in before, out after."""

    compute: np.ndarray
    load_bytes: np.ndarray
    store_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.compute)

    @classmethod
    def empty(cls) -> TileStream:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))

    @classmethod
    def concatenate(cls, streams: Sequence[TileStream]) -> TileStream:
        if not streams:
            return cls.empty()
        return cls(*(np.concatenate([getattr(s, name) for s in streams]) for name in ("compute", "load_bytes",
                                                                                      "store_bytes")))


@dataclass(frozen=True)
class OpWork:
    """Everything an op costs apart from time: its tiles on each core and its access counts.

    ``parts`` holds one stream per core share (one for the data and pipeline
    schedules); ``reduction`` is the vector work that combines split-K partial
    sums on core 0 after all parts, when there is any; ``peak_bandwidth`` is,
    per DRAM field of :class:`Traffic`, the most bytes per compute cycle any
    fold needs (what a channel must sustain for that operand never to stall).
    """

    parts: tuple[TileStream, ...]
    macs: int = 0  # MACs the array performs (masked halo work included)
    useful_macs: int = 0  # MACs that contribute to the result
    skipped_macs: int = 0  # dense MACs the sparse hardware did not perform
    vector_ops: int = 0
    traffic: Traffic = field(default_factory=Traffic)
    reduction: TileStream | None = None
    mapping_efficiency: float = 0.0  # mean over folds of the PEs a fold occupies, over the array (0 off the array)
    folds: int = 0
    peak_bandwidth: dict[str, float] = field(default_factory=dict)

    @property
    def tiles(self) -> TileStream:
        """All the op's tiles on one core (the single part of the data and pipeline schedules)."""
        return self.parts[0] if len(self.parts) == 1 else TileStream.concatenate(self.parts)


@dataclass(frozen=True)
class GemmMapping:
    """A GEMM as the array runs it, with the real tensors behind its operands.

    ``tensor_elements[operand]`` is how many elements of that tensor exist
    (the DRAM footprint) and ``element_bytes[operand]`` how wide each is
    (precision.py); ``partial_sum_bytes`` is the width of a partial sum
    outside the PEs; ``sram_reads_per_element`` multiplies on-chip reads
    where a mapping re-reads an operand per PE (gathered attention windows);
    ``index_bytes_per_weight`` is the metadata each stored weight carries
    (zero-skipping formats).
    """

    gemm: Gemm
    tensor_elements: dict[str, int]
    element_bytes: dict[str, float]
    partial_sum_bytes: float
    useful_macs: int
    skipped_macs: int = 0
    sram_reads_per_element: dict[str, float] = field(default_factory=dict)
    index_bytes_per_weight: float = 0.0

    def kept_on_chip(self, on_chip: OnChip) -> GemmMapping:
        """The same GEMM with the tensors ``on_chip`` keeps given no DRAM footprint (input 0 -> A, 1 -> B)."""
        kept = {name for index, name in enumerate(("input", "weight")) if index in on_chip.inputs}
        kept |= {"output"} if on_chip.output else set()
        return replace(self, tensor_elements={name: 0 if name in kept else count
                                              for name, count in self.tensor_elements.items()})

    def operand_matrix_elements(self, operand: str) -> int:
        sizes = {"m": self.gemm.m, "n": self.gemm.n, "k": self.gemm.k}
        first, second = OPERAND_DIMS[operand]
        return self.gemm.batch * sizes[first] * sizes[second]

    def tensor_share(self, operand: str) -> float:
        """Tensor elements per operand-matrix element: how much of each tile crosses DRAM."""
        return self.tensor_elements[operand] / self.operand_matrix_elements(operand)


# ----------------------------------------------------------------------------- GEMMs


def gemm_work(mapping: GemmMapping, config: HardwareConfig, parts: int = 1, may_split_k: bool = True) -> OpWork:
    """Tiles and access counts of a GEMM on ``parts`` cores' arrays and buffers (see the module doc).

    The GEMM's output-complete units (an os fold, a ws/is column fold) are
    dealt across the cores in contiguous runs, leaving cores idle when there
    are fewer units than cores.  Then, when ``may_split_k`` and K can be cut
    into ``parts // units`` slices, it is cut, if that shortens the busiest
    core's compute (the partial-sum reduction on core 0 included).
    """
    array = config.array
    whole = [_Slice(mapping, fold_plan(mapping.gemm, array.rows, array.cols, array.dataflow, array.overlap_folds))]
    slices = min(mapping.gemm.k, parts // len(_output_units(whole[0].plan)))
    # partial sums must leave the cores that made them, so an output kept on chip is never split
    if may_split_k and slices >= 2 and mapping.tensor_elements["output"]:
        split = _k_slices(mapping, slices, config)
        if _busiest_core_cycles(split, parts, config) < _busiest_core_cycles(whole, parts, config):
            return _assemble(mapping, config, split, parts)
    return _assemble(mapping, config, whole, parts)


@dataclass(frozen=True)
class _Slice:
    """A GEMM over part of its K (or all of it) and the plan of its folds."""

    mapping: GemmMapping
    plan: FoldPlan


def _output_units(plan: FoldPlan) -> list[np.ndarray]:
    """The folds that together complete a set of outputs, in order: each os fold, each ws/is column fold."""
    if plan.dataflow.rows in OPERAND_DIMS["output"]:
        return [np.array([fold]) for fold in range(plan.folds)]
    return np.split(np.arange(plan.folds), np.flatnonzero(plan.ends_column_fold())[:-1] + 1)


def _k_slices(mapping: GemmMapping, slices: int, config: HardwareConfig) -> list[_Slice]:
    """The GEMM cut along K into ``slices`` near-equal slices; each slice's outputs are partial sums."""
    array = config.array
    pieces = [_k_slice(mapping, int(ks[0]), int(ks[-1]) + 1) for ks in np.array_split(np.arange(mapping.gemm.k), slices)]
    return [_Slice(piece, fold_plan(piece.gemm, array.rows, array.cols, array.dataflow, array.overlap_folds))
            for piece in pieces]


def _k_slice(mapping: GemmMapping, start: int, stop: int) -> GemmMapping:
    """The GEMM over K columns ``start:stop``: that share of the input and weight tensors (the slices'
    shares sum to the whole), and the whole output, as partial sums."""
    k = mapping.gemm.k

    def share(count: int) -> int:
        return count * stop // k - count * start // k

    tensors = {name: count if name == "output" else share(count) for name, count in mapping.tensor_elements.items()}
    partial_sums = mapping.element_bytes | {"output": mapping.partial_sum_bytes}
    return replace(mapping, gemm=replace(mapping.gemm, k=stop - start), tensor_elements=tensors,
                   element_bytes=partial_sums)


def _core_runs(slices: list[_Slice], parts: int) -> list[list[tuple[_Slice, np.ndarray]]]:
    """Each core's contiguous run of the slices' output-complete units: per core, (slice, its folds)."""
    if parts == 1 and len(slices) == 1:
        return [[(slices[0], np.arange(slices[0].plan.folds))]]
    units = [(index, folds) for index, piece in enumerate(slices) for folds in _output_units(piece.plan)]
    runs = []
    for share in np.array_split(np.arange(len(units)), parts):
        by_slice: dict[int, list[np.ndarray]] = {}
        for position in share:
            index, folds = units[position]
            by_slice.setdefault(index, []).append(folds)
        runs.append([(slices[index], np.concatenate(folds)) for index, folds in by_slice.items()])
    return runs


def _busiest_core_cycles(slices: list[_Slice], parts: int, config: HardwareConfig) -> int:
    """Compute cycles of the busiest core, the split-K reduction on core 0 included."""
    cycles = [sum(int(piece.plan.run_fold_cycles(folds).sum()) for piece, folds in run)
              for run in _core_runs(slices, parts)]
    if len(slices) > 1:
        cycles[0] += _reduction_cycles(slices[0].mapping, len(slices), config)
    return max(cycles)


def _assemble(mapping: GemmMapping, config: HardwareConfig, slices: list[_Slice], parts: int) -> OpWork:
    """Each core's run of folds as one stream; counts summed over cores; the split-K reduction if any."""
    streams, traffic, macs, peaks = [], Traffic(), 0, []
    for run in _core_runs(slices, parts):
        pieces = [_run_stream(piece.plan.subset(folds), piece.mapping, config) for piece, folds in run]
        streams.append(TileStream.concatenate([stream for stream, _, _ in pieces]))
        traffic = sum((t for _, t, _ in pieces), traffic)
        peaks += [peak for _, _, peak in pieces]
        macs += sum(int(piece.plan.macs[folds].sum()) for piece, folds in run)
    reduction = _partial_sum_reduction(mapping, len(slices), config) if len(slices) > 1 else None
    if reduction is not None:
        traffic = traffic + reduction.traffic
        peaks.append(_stream_peaks(reduction.tiles, "dram_read_psum"))
    used = np.concatenate([piece.plan.used_rows * piece.plan.used_cols for piece in slices])
    return OpWork(
        parts=tuple(streams), macs=macs, useful_macs=mapping.useful_macs, skipped_macs=mapping.skipped_macs,
        vector_ops=0 if reduction is None else reduction.adds, traffic=traffic,
        reduction=None if reduction is None else reduction.tiles,
        mapping_efficiency=float(used.mean() / config.pes) if len(used) else 0.0, folds=len(used),
        peak_bandwidth=_max_rates(peaks),
    )


def _run_stream(plan: FoldPlan, mapping: GemmMapping,
                config: HardwareConfig) -> tuple[TileStream, Traffic, dict[str, float]]:
    """One core's run of folds: its tiles (split to fit the buffers), what it moves, its peak rates."""
    width, psum = mapping.element_bytes, mapping.partial_sum_bytes
    loads, stores = _fold_traffic(plan, mapping, config)
    # weights and their index share the weight buffer; partial sums read back and stored are one tile
    fill = np.maximum.reduce([loads["input"] / config.half_buffer_bytes("input"),
                              (loads["weight"] + loads["index"]) / config.half_buffer_bytes("weight"),
                              np.maximum(loads["psum"], stores) / config.half_buffer_bytes("output")])
    load_total = sum(loads.values())
    tiles = _split_to_fit(plan.cycles, load_total, stores, fill)
    rereads = mapping.sram_reads_per_element
    weight_word = width["weight"] + mapping.index_bytes_per_weight
    array_reads = {
        "input": plan.operand_elements["input"].sum() * rereads.get("input", 1.0) * width["input"],
        "weight": plan.operand_elements["weight"].sum() * rereads.get("weight", 1.0) * weight_word,
    }
    # os finishes its sums in the PEs; ws/is accumulate partial sums in the output buffer
    array_output_bytes = width["output"] if plan.dataflow.rows in OPERAND_DIMS["output"] else psum
    traffic = Traffic(
        dram_read_input=float(loads["input"].sum()),
        dram_read_weight=float(loads["weight"].sum()),
        dram_read_index=float(loads["index"].sum()),
        dram_read_psum=float(loads["psum"].sum()),
        dram_write_output=float(stores.sum()),
        sram_read_input=float(array_reads["input"]),
        sram_read_weight=float(array_reads["weight"]),
        sram_read_output=float(_accumulated_reads(plan).sum() * psum + stores.sum()),
        sram_write_input=float(loads["input"].sum()),
        sram_write_weight=float(loads["weight"].sum() + loads["index"].sum()),
        sram_write_output=float(plan.operand_elements["output"].sum() * array_output_bytes + loads["psum"].sum()),
    )
    peaks = _peak_rates({f"dram_read_{name}": loads[name] for name in loads} | {"dram_write_output": stores},
                        plan.cycles)
    return tiles, traffic, peaks


def _fold_traffic(plan: FoldPlan, mapping: GemmMapping, config: HardwareConfig) -> tuple[dict, np.ndarray]:
    """DRAM bytes each fold of one core's run loads (input, weight, index, psum) and stores, after reuse."""
    width = mapping.element_bytes
    share = {name: mapping.tensor_share(name) for name in OPERANDS}
    per_batch = {name: mapping.tensor_elements[name] / mapping.gemm.batch for name in OPERANDS}
    weight_bytes = width["weight"] + mapping.index_bytes_per_weight
    loads = {
        "input": _operand_loads(plan, "input", plan.operand_elements["input"] * share["input"] * width["input"],
                                per_batch["input"] * width["input"], config.half_buffer_bytes("input")),
        "weight": _operand_loads(plan, "weight", plan.operand_elements["weight"] * share["weight"] * weight_bytes,
                                 per_batch["weight"] * weight_bytes, config.half_buffer_bytes("weight")),
    }
    loads["index"] = loads["weight"] * (mapping.index_bytes_per_weight / weight_bytes)
    loads["weight"] = loads["weight"] - loads["index"]
    loads["psum"], stores = _output_traffic(plan, plan.operand_elements["output"] * share["output"],
                                            width["output"], mapping.partial_sum_bytes,
                                            config.half_buffer_bytes("output"))
    return loads, stores


def _operand_loads(plan: FoldPlan, name: str, tile: np.ndarray, operand_bytes: float, half_buffer: int) -> np.ndarray:
    """Bytes of one input operand each fold loads, given which folds can reuse what is already in the buffer.

    ``operand_bytes`` is the operand's DRAM footprint per batch: it is resident
    when it fits half its buffer.
    """
    dims, flow = OPERAND_DIMS[name], plan.dataflow
    if flow.rows in dims and flow.cols in dims:
        return tile
    if flow.cols in dims:  # same tile for every row fold of a column fold
        return np.where(plan.starts_column_fold() | (tile > half_buffer), tile, 0.0)
    if operand_bytes <= half_buffer:  # resident: each row tile loaded the first time the run uses it
        return np.where(plan.first_of_row_tile(), tile, 0.0)
    return tile


def _output_traffic(plan: FoldPlan, elements: np.ndarray, output_bytes: float, psum_bytes: float,
                    half_buffer: int) -> tuple[np.ndarray, np.ndarray]:
    """(partial sums read back, outputs stored) per fold, from the output elements each fold's tile moves."""
    if plan.dataflow.rows in OPERAND_DIMS["output"]:
        return np.zeros_like(elements), elements * output_bytes  # every fold completes its outputs
    # A spilled tile is larger than half the output buffer, so its fold is cut into p >= 2 pieces
    # (_split_to_fit); a piece reads back what the same piece of the previous fold stored, p >= 2
    # tiles earlier, whose store the channel serves before this piece's load is even requested
    # (at the end of the tile two before it): the spill needs no read-after-write gate.
    partial = elements * psum_bytes
    spills = partial > half_buffer
    stores = np.where(plan.ends_column_fold(), elements * output_bytes, np.where(spills, partial, 0.0))
    return np.where(spills & ~plan.starts_column_fold(), partial, 0.0), stores


def _accumulated_reads(plan: FoldPlan) -> np.ndarray:
    """Output elements each fold reads back from the output buffer to accumulate onto (ws/is row folds after
    the first of a column fold); os accumulates inside the PEs."""
    if plan.dataflow.rows in OPERAND_DIMS["output"]:
        return np.zeros(plan.folds)
    return np.where(plan.starts_column_fold(), 0, plan.operand_elements["output"])


@dataclass(frozen=True)
class _Reduction:
    """The vector work that adds split-K partial sums: its tiles, its adds and what it moves."""

    tiles: TileStream
    adds: int
    traffic: Traffic


def _reduction_cycles(mapping: GemmMapping, slices: int, config: HardwareConfig) -> int:
    adds = (slices - 1) * mapping.tensor_elements["output"] * config.vector_passes("accumulator")
    return math.ceil(adds / config.vector.lanes)


def _partial_sum_reduction(mapping: GemmMapping, slices: int, config: HardwareConfig) -> _Reduction:
    """Core 0's vector unit adds the ``slices`` partial-sum tensors the cores stored.

    They stream from DRAM into the output buffer and are read out once each;
    the sum is written there and drained to DRAM: the slices' partial sums
    and the outputs written to and read from the output buffer.
    """
    partials = mapping.tensor_elements["output"] * mapping.partial_sum_bytes
    outputs = mapping.tensor_elements["output"] * mapping.element_bytes["output"]
    tiles = vector_tiles(_reduction_cycles(mapping, slices, config), slices * partials, outputs, config,
                         load_buffer="output")
    sram = slices * partials + outputs
    traffic = Traffic(dram_read_psum=slices * partials, dram_write_output=outputs,
                      sram_read_output=sram, sram_write_output=sram)
    return _Reduction(tiles, (slices - 1) * mapping.tensor_elements["output"], traffic)


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


# ----------------------------------------------------------------------------- the vector unit


def dram_tensor_bytes(op: Op, config: HardwareConfig, on_chip: OnChip) -> tuple[float, float]:
    """(input bytes, output bytes) a vector-unit op moves over DRAM, given what stays on chip."""
    return input_bytes(op, config, on_chip.inputs), 0.0 if on_chip.output else output_bytes(op, config)


def _stream_peaks(stream: TileStream, load_field: str) -> dict[str, float]:
    """Peak rates of vector-unit tiles whose loads are all ``load_field`` and whose stores are outputs."""
    return _peak_rates({load_field: stream.load_bytes, "dram_write_output": stream.store_bytes}, stream.compute)


def vector_tiles(cycles: int, load_bytes: float, store_bytes: float, config: HardwareConfig,
                 load_buffer: str = "input") -> TileStream:
    """Work on the vector unit cut into tiles whose loads fit half of ``load_buffer`` and whose stores
    fit half the output buffer (sharing it when the loads go there too)."""
    if load_buffer == "output":
        pieces = max(1, math.ceil((load_bytes + store_bytes) / config.half_buffer_bytes("output")))
    else:
        pieces = max(1, math.ceil(load_bytes / config.half_buffer_bytes(load_buffer)),
                     math.ceil(store_bytes / config.half_buffer_bytes("output")))
    return _even_tiles(cycles, load_bytes, store_bytes, pieces)


def _even_tiles(cycles: int, load_bytes: float, store_bytes: float, pieces: int) -> TileStream:
    share, extra = divmod(cycles, pieces)
    compute = np.full(pieces, share, dtype=np.int64) + (np.arange(pieces) < extra)
    return TileStream(compute, np.full(pieces, load_bytes / pieces), np.full(pieces, store_bytes / pieces))


def split_evenly(stream: TileStream, parts: int) -> tuple[TileStream, ...]:
    """A stream dealt across ``parts`` cores in contiguous runs of tiles; with fewer tiles than cores,
    each tile is first cut into equal pieces (element-wise work divides freely)."""
    if parts == 1:
        return (stream,)
    if len(stream) < parts:
        pieces = math.ceil(parts / max(1, len(stream)))
        stream = TileStream.concatenate([_even_tiles(int(c), float(load), float(store), pieces)
                                         for c, load, store in zip(stream.compute, stream.load_bytes,
                                                                   stream.store_bytes)])
    return tuple(TileStream(stream.compute[i], stream.load_bytes[i], stream.store_bytes[i])
                 for i in np.array_split(np.arange(len(stream)), parts))


def vector_work(cycles: int, vector_ops: int, op: Op, config: HardwareConfig, on_chip: OnChip,
                parts: int = 1, share: float = 1.0) -> OpWork:
    """``op`` on the vector unit: it reads its inputs from the input buffer and writes its output; of each
    tensor only ``share`` (a masked softmax's kept logits, stored compressed)."""
    load_bytes, store_bytes = (share * size for size in dram_tensor_bytes(op, config, on_chip))
    traffic = Traffic(dram_read_input=load_bytes, dram_write_output=store_bytes,
                      sram_read_input=share * input_bytes(op, config), sram_read_output=store_bytes,
                      sram_write_input=load_bytes, sram_write_output=share * output_bytes(op, config))
    tiles = vector_tiles(cycles, load_bytes, store_bytes, config)
    return OpWork(parts=split_evenly(tiles, parts), vector_ops=vector_ops, traffic=traffic,
                  peak_bandwidth=_max_rates([_stream_peaks(tiles, "dram_read_input")]))


def on_chip_vector_work(cycles: int, vector_ops: int, parts: int = 1) -> OpWork:
    """Vector work on data already in the buffers (e.g. adding relative to content logits)."""
    return OpWork(parts=split_evenly(_even_tiles(cycles, 0.0, 0.0, 1), parts), vector_ops=vector_ops)


def combine(works: Sequence[OpWork]) -> OpWork:
    """One op's parts run back to back on each core: streams concatenated per core, counts summed.

    Tiles with nothing to do (no cycles, no bytes) are dropped.  The parts are
    attention's GEMMs and vector work, which never split K (a reduction would
    have to run before the vector work that reads its result).
    """
    if any(work.reduction is not None for work in works):
        raise ValueError("combine() takes works without a split-K reduction")
    parts = tuple(_busy(TileStream.concatenate([work.parts[core] for work in works]))
                  for core in range(len(works[0].parts)))
    folds = sum(work.folds for work in works)
    efficiency = sum(work.mapping_efficiency * work.folds for work in works) / folds if folds else 0.0
    return OpWork(
        parts=parts, macs=sum(w.macs for w in works), useful_macs=sum(w.useful_macs for w in works),
        skipped_macs=sum(w.skipped_macs for w in works), vector_ops=sum(w.vector_ops for w in works),
        traffic=sum((w.traffic for w in works), Traffic()),
        mapping_efficiency=efficiency, folds=folds, peak_bandwidth=_max_rates([w.peak_bandwidth for w in works]),
    )


def _busy(stream: TileStream) -> TileStream:
    keep = (stream.compute > 0) | (stream.load_bytes > 0) | (stream.store_bytes > 0)
    return TileStream(stream.compute[keep], stream.load_bytes[keep], stream.store_bytes[keep])


def transfer_cycles(byte_counts: np.ndarray, config: HardwareConfig) -> np.ndarray:
    """Cycles the shared DRAM channel is busy moving each byte count (whole cycles)."""
    return np.ceil(byte_counts / config.dram_bytes_per_cycle - 1e-9).astype(np.int64)
