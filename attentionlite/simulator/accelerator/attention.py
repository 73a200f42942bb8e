"""Local-window attention on the MAC array and the vector unit.

Stand-alone self-attention (Ramachandran et al. 2019) gives each query its own
k x k window of keys and values, so the logits ``q . k`` and the weighted sum
``sum softmax * v`` are not one shared GEMM: neighbouring queries share most of
their keys, but no two share all of them.  How windows are put on a systolic
array is a design choice with a real trade-off, so it is an option
(``[attention] window_mapping``), registered in :data:`WINDOW_MAPPINGS`:

* ``blocked``: queries are grouped into b x b blocks.  A block's windows
  together cover a (b + k - 1)^2 halo of keys, so each block is one dense GEMM
  of its b^2 queries against the whole halo, and positions outside a query's
  own window are masked.  Keys are shared along array columns (cheap SRAM
  reads) but ``(b + k - 1)^2 / k^2`` of the MACs are spent on masked
  positions.
* ``gathered``: each query's own k^2 keys are gathered, so the array does only
  useful MACs (all queries of a head as one GEMM: M = queries, N = k^2,
  K = head channels), but keys are no longer shared down a column: every PE
  row fetches its own, multiplying the key (and value) SRAM reads by the rows
  in use.

Either way each tensor crosses DRAM once (the on-chip halo or gather is
SRAM's business).  SASA's relative logits ``q . r`` use embeddings shared by
every query, so they are a plain GEMM (M = queries, N = k, K = head channels);
adding them to the content logits, like the stem's value mixing, is vector
work.

Every softmax (over each window here, over the keys in global attention) runs
on the vector unit of L lanes, one row (the axis it normalises) at a time:

* a row of n elements takes ``p = ceil(n / L)`` lane-wide passes; rows shorter
  than half the lanes share a pass, ``floor(L / n)`` side by side (segmented
  trees), so a row of 49 on 32 lanes uses 49 of 64 lane slots and one of 9
  uses 27 of 32;
* per pass: a max, an exp (``exp_cycles``: a table lookup and interpolation,
  or a polynomial's steps), an add into the row's sum and a multiply by the
  sum's reciprocal: ``p x (3 + exp_cycles)`` cycles per group of rows;
* logits wider than a lane (``precision.softmax_bits`` over ``vector.bits``)
  take as many passes each;
* the max and the sum each end in a reduction tree over the lanes a row
  occupies, ``ceil(log2(min(n, L)))`` levels, and the sum's reciprocal (a
  seed table and Newton-Raphson steps) takes ``reciprocal_cycles``.  The trees
  and the reciprocal are pipelined and rows interleave (one row's exp while
  the next row's max drains its tree), so their latency shows once per op,
  not once per row.

A fixed attention mask (a model's boolean ``attn_mask`` buffer; transformers.py
splits it into global-token columns and sparse kept logits) runs as ViTCoD runs
it when ``[attention] split_sparse``: the array's rows (PE lines) are shared by
a denser engine, which computes every query's logit of the global columns, and
a sparser one, which computes the other kept logits (SDDMM) and their weighted
values (SpMM), in proportion to their logits; both run at once, so an op takes
the longer (:func:`split_engine_cycles`), and the sparse logits' coordinates
cross DRAM beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import (
    GemmMapping,
    OnChip,
    OpWork,
    Traffic,
    combine,
    gemm_work,
    on_chip_vector_work,
    split_evenly,
    vector_tiles,
    vector_work,
)
from attentionlite.simulator.accelerator.precision import gemm_element_bytes
from attentionlite.simulator.graph.ops import (
    AXIS_LENGTH,
    MASK_DENSE_KEYS,
    MASK_SPARSE_KEPT,
    SOFTMAX_OPS_PER_ELEMENT,
    Gemm,
    Op,
    OpKind,
    Window,
)


def _blocks(window: Window, block: int) -> int:
    return window.images * math.ceil(window.height / block) * math.ceil(window.width / block)


def _halo(window: Window, block: int) -> int:
    return (block + window.kernel - 1) ** 2


def _blocked_logits(window: Window, config: HardwareConfig) -> tuple[Gemm, float]:
    block = config.attention.block
    batch = _blocks(window, block) * window.heads
    return Gemm(m=block * block, n=_halo(window, block), k=window.head_channels, batch=batch), 1.0


def _blocked_weighted_sum(window: Window, config: HardwareConfig) -> tuple[Gemm, float]:
    block = config.attention.block
    batch = _blocks(window, block) * window.heads
    reduction = _halo(window, block) * window.mixtures
    return Gemm(m=block * block, n=window.head_channels, k=reduction, batch=batch), 1.0


def _gathered_logits(window: Window, config: HardwareConfig) -> tuple[Gemm, float]:
    gemm = Gemm(m=window.queries, n=window.kept_positions, k=window.head_channels, batch=window.heads)
    return gemm, float(min(gemm.m, config.array.rows))


def _gathered_weighted_sum(window: Window, config: HardwareConfig) -> tuple[Gemm, float]:
    reduction = window.kept_positions * window.mixtures
    gemm = Gemm(m=window.queries, n=window.head_channels, k=reduction, batch=window.heads)
    return gemm, float(min(gemm.m, config.array.rows))


# mapping name -> (logits GEMM, weighted-sum GEMM); each also returns the SRAM re-read factor of the keys/values
WINDOW_MAPPINGS: dict[str, tuple[Callable, Callable]] = {
    "blocked": (_blocked_logits, _blocked_weighted_sum),
    "gathered": (_gathered_logits, _gathered_weighted_sum),
}


def _feature_elements(window: Window) -> int:
    return window.queries * window.heads * window.head_channels


def computed_positions(window: Window, config: HardwareConfig) -> int:
    """Window positions the array computes for each query and head: under the gathered mapping only those a
    fixed window mask keeps (each query gathers its own window); the blocked mapping's block computes its
    whole halo, so every position, and counts the masked ones' MACs as useful, as it counts padding's."""
    return window.kept_positions if config.attention.window_mapping == "gathered" else window.window_size


def _computed_share(window: Window, config: HardwareConfig) -> float:
    return computed_positions(window, config) / window.window_size


def _logit_elements(window: Window, config: HardwareConfig) -> int:
    return window.queries * window.heads * computed_positions(window, config) * window.mixtures


def map_window_logits(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    """Content logits on the array, relative logits as a shared-embedding GEMM, their sum on the vector unit."""
    window = require_window(op)
    gemm, key_rereads = WINDOW_MAPPINGS[config.attention.window_mapping][0](window, config)
    relative_macs = int(dict(op.attrs).get("relative_macs", 0))
    content_macs = op.macs - relative_macs
    computed = round(content_macs * _computed_share(window, config))
    content = GemmMapping(
        gemm=gemm,
        tensor_elements={"input": _feature_elements(window), "weight": _feature_elements(window),
                         "output": _logit_elements(window, config)},
        element_bytes=gemm_element_bytes(op, config, "activation"),  # the keys
        partial_sum_bytes=config.element_bytes("accumulator"),
        useful_macs=computed,
        skipped_macs=content_macs - computed,
        sram_reads_per_element={"weight": key_rereads},
    )
    works = [gemm_work(content.kept_on_chip(on_chip), config, parts, may_split_k=False)]
    if relative_macs:
        works.append(gemm_work(_relative_logits(op, window, config), config, parts, may_split_k=False))
    return combine(works + [_vector_on_chip(op, config, parts)])


def _relative_logits(op: Op, window: Window, config: HardwareConfig) -> GemmMapping:
    """q . r: row and column embeddings (weights) are shared by every query; results stay on chip."""
    relative_macs = int(dict(op.attrs)["relative_macs"])
    per_query = relative_macs // (window.queries * window.heads * window.head_channels)
    gemm = Gemm(m=window.queries, n=max(1, per_query), k=window.head_channels, batch=window.heads)
    weights = op.weight_params or gemm.batch * gemm.k * gemm.n
    return GemmMapping(gemm=gemm, tensor_elements={"input": 0, "weight": weights, "output": 0},
                       element_bytes=gemm_element_bytes(op, config, "weight"),
                       partial_sum_bytes=config.element_bytes("accumulator"), useful_macs=gemm.macs)


def map_weighted_sum(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    """Softmax-weighted sum of each window's values on the array (stem mixing on the vector unit)."""
    window = require_window(op)
    gemm, value_rereads = WINDOW_MAPPINGS[config.attention.window_mapping][1](window, config)
    computed = round(op.macs * _computed_share(window, config))
    mapping = GemmMapping(
        gemm=gemm,
        tensor_elements={"input": _logit_elements(window, config), "weight": _feature_elements(window) * window.mixtures,
                         "output": _feature_elements(window)},
        element_bytes=gemm_element_bytes(op, config, "activation"),  # the values
        partial_sum_bytes=config.element_bytes("accumulator"),
        useful_macs=computed,
        skipped_macs=op.macs - computed,
        sram_reads_per_element={"weight": value_rereads},
    )
    return combine([gemm_work(mapping.kept_on_chip(on_chip), config, parts, may_split_k=False),
                    _vector_on_chip(op, config, parts)])


def softmax_cycles(rows: int, length: int, config: HardwareConfig) -> int:
    """``rows`` softmaxes of ``length`` elements each on the vector unit (the module doc derives it)."""
    lanes = config.vector.lanes
    passes = math.ceil(length / lanes)
    rows_per_pass = max(1, lanes // length)
    tree_levels = math.ceil(math.log2(min(length, lanes)))
    streamed = math.ceil(rows / rows_per_pass) * passes * (3 + config.vector.exp_cycles) * config.vector_passes("softmax")
    return streamed + 2 * tree_levels + config.vector.reciprocal_cycles


def softmax_rows(op: Op, config: HardwareConfig) -> tuple[int, int]:
    """(rows, elements per row) of a softmax: a window's positions, else its ``axis_length`` attr, else
    the last axis; on split engines a fixed mask's rows hold only their kept logits (on average)."""
    elements = op.vector_ops // SOFTMAX_OPS_PER_ELEMENT
    split = mask_split(op) if config.attention.split_sparse else None
    if split is not None:
        rows = elements // op.output_shape[-1]
        return rows, max(1, math.ceil(kept_logits(op, split) / rows))
    if op.window is not None:
        return max(1, elements // op.window.window_size), computed_positions(op.window, config)
    length = int(dict(op.attrs).get(AXIS_LENGTH, op.output_shape[-1]))
    return max(1, elements // length), length


def map_softmax(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    """Softmax row by row on the vector unit, streaming logits in and probabilities out; on split engines,
    only a fixed mask's kept logits, in and out."""
    cycles = softmax_cycles(*softmax_rows(op, config), config)
    split = mask_split(op) if config.attention.split_sparse else None
    if split is not None:
        share = kept_logits(op, split) / math.prod(op.output_shape)
    else:
        share = _computed_share(op.window, config) if op.window is not None else 1.0
    return vector_work(cycles, math.ceil(op.vector_ops * share), op, config, on_chip, parts, share)


def own_vector_cycles(op: Op, config: HardwareConfig) -> int:
    """Cycles of a logits or weighted-sum op's own vector work (relative-logit adds on logits, stem value
    mixing of probabilities), on the window positions the array computes."""
    return math.ceil(_own_vector_ops(op, config) * config.vector_passes("softmax") / config.vector.lanes)


def _own_vector_ops(op: Op, config: HardwareConfig) -> int:
    share = _computed_share(op.window, config) if op.window is not None else 1.0
    return math.ceil(op.vector_ops * share)


def _vector_on_chip(op: Op, config: HardwareConfig, parts: int) -> OpWork:
    """The op's own vector work on data already on chip."""
    return on_chip_vector_work(own_vector_cycles(op, config), _own_vector_ops(op, config), parts)


def fused_blocks(window: Window, config: HardwareConfig) -> tuple[int, int]:
    """How fused attention cuts a layer: (blocks, run one after another; words of one block's probabilities).

    A block is one head's b x b query block (blocked: its whole halo, masked
    positions included, as the weighted sum's GEMM reads it) or one row fold
    of a head's queries (gathered: their own windows).  A block's logits are
    at most as many words as its probabilities, so these words bound both.
    """
    gemm, _ = WINDOW_MAPPINGS[config.attention.window_mapping][1](window, config)
    rows = gemm.m if config.attention.window_mapping == "blocked" else min(gemm.m, config.array.rows)
    return gemm.batch * math.ceil(gemm.m / rows), rows * gemm.k


# ----------------------------------------------------------------------------- fixed attention masks


def mask_split(op: Op) -> tuple[int, int] | None:
    """(dense key columns over all heads, sparse kept logits) of an op with a fixed mask, else None."""
    attrs = dict(op.attrs)
    if MASK_DENSE_KEYS not in attrs:
        return None
    return int(attrs[MASK_DENSE_KEYS]), int(attrs[MASK_SPARSE_KEPT])


def kept_logits(op: Op, split: tuple[int, int]) -> int:
    """The logits a fixed mask keeps: every query's logit of each dense column (the columns are summed
    over heads and sequences), and the sparse ones.  Logits, softmax and values all have the queries as
    their output's second-last axis."""
    dense_keys, sparse = split
    return op.output_shape[-2] * dense_keys + sparse


def engine_rows(dense_logits: int, sparse_logits: int, rows: int) -> tuple[int, int]:
    """The array's rows (ViTCoD's PE lines) each engine gets, in proportion to its logits
    (``Hardware/Simulator/ViTCoD.py``: ``int(width * dense_ratio)`` to the denser engine), each at least
    one where it has work."""
    if not sparse_logits:
        return rows, 0
    if not dense_logits:
        return 0, rows
    dense = min(rows - 1, max(1, int(rows * dense_logits / (dense_logits + sparse_logits))))
    return dense, rows - dense


def split_engine_cycles(op: Op, config: HardwareConfig) -> tuple[int, int]:
    """(denser engine, sparser engine) cycles of a masked Q K^T (SDDMM) or A V (SpMM), as ViTCoD's
    simulator counts them, over all heads at once: Q K^T takes a query row per PE line and the head width
    in passes of the array's columns; A V spreads each logit's d_v products over a line's columns."""
    split = mask_split(op) or (0, 0)
    gemm = require_gemm(op)
    sparse = split[1]
    dense_logits = kept_logits(op, split) - sparse
    dense_rows, sparse_rows = engine_rows(dense_logits, sparse, config.array.rows)
    cols = config.array.cols
    if op.kind is OpKind.ATTENTION_LOGITS:
        passes = math.ceil(gemm.k / cols)
        return (math.ceil(dense_logits / dense_rows) * passes if dense_rows else 0,
                math.ceil(sparse / sparse_rows) * passes if sparse_rows else 0)
    return (math.ceil(dense_logits * gemm.n / (dense_rows * cols)) if dense_rows else 0,
            math.ceil(sparse * gemm.n / (sparse_rows * cols)) if sparse_rows else 0)


INDEX_BYTES_PER_LOGIT = 2  # a sparse logit's row and column, a byte each (ViTCoD's index preload)


def map_split_attention(op: Op, config: HardwareConfig, on_chip: OnChip, parts: int) -> OpWork:
    """A masked Q K^T or A V on the denser and sparser engines at once: the op takes the longer of the two;
    the queries and keys (or values) cross DRAM once, the logits only where kept, with the sparse logits'
    coordinates."""
    split = mask_split(op) or (0, 0)
    gemm = require_gemm(op)
    sparse, kept = split[1], kept_logits(op, split)
    reduction = gemm.k if op.kind is OpKind.ATTENTION_LOGITS else gemm.n
    activation, logit = config.element_bytes("activation"), config.element_bytes("softmax")
    features = {index: math.prod(shape) * activation for index, shape in enumerate(op.input_shapes)}
    if op.kind is OpKind.ATTENTION_VALUES:
        features[0] = kept * logit  # the kept probabilities
    loads = sum(size for index, size in features.items() if index not in on_chip.inputs)
    loads += sparse * INDEX_BYTES_PER_LOGIT
    out = kept * logit if op.kind is OpKind.ATTENTION_LOGITS else math.prod(op.output_shape) * activation
    stores = 0.0 if on_chip.output else out
    cycles = max(split_engine_cycles(op, config))
    macs = kept * reduction
    traffic = Traffic(dram_read_input=loads, dram_write_output=stores, sram_read_input=sum(features.values()),
                      sram_write_input=loads, sram_read_output=stores, sram_write_output=out)
    return OpWork(parts=split_evenly(vector_tiles(cycles, loads, stores, config), parts), macs=macs,
                  useful_macs=macs, skipped_macs=max(0, gemm.macs - macs), traffic=traffic)


def require_gemm(op: Op) -> Gemm:
    if op.gemm is None:
        raise InputError(f"op {op.name!r} ({op.kind.value}) has no GEMM shape; expected one for the MAC array")
    return op.gemm


def require_window(op: Op) -> Window:
    if op.window is None:
        raise InputError(f"op {op.name!r} ({op.kind.value}) has no window geometry; expected one for local attention")
    return op.window
