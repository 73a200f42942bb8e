"""Weight sparsity as the hardware exploits it: the GEMM the array runs and what its weights cost to move.

One strategy per ``[sparsity] mode`` (:data:`SPARSITY`):

* ``none``: dense hardware; masks are ignored.
* ``skip``: zero-skipping in blocks of ``granularity`` weights along the
  reduction.  With unstructured sparsity of density d a block of g weights
  holds a non-zero with probability ``1 - (1 - d) ** g``.  A systolic array
  runs in lockstep (``lockstep = true``, the default): in the output-
  stationary dataflow a reduction step broadcasts one weight to each of the
  fold's ``min(C, N)`` columns, so the step is skipped only when the block is
  zero in all of them, and the reduction shrinks to
  ``ceil(K * (1 - (1 - d) ** (g * min(C, N))))``, the union density over the
  shared columns (10% density over 32 columns: 1 - 0.9^32 = 96.6% of the
  steps stay).  That K serves every fold: the last column fold, narrower
  when C does not divide N, could skip slightly more.  In the weight- and
  input-stationary dataflows the weights sit in the PEs (ws) or a step
  reaches a whole weight column of the fold (is), so a zero weight skips no
  step and the layer is priced dense (for is this misses the rare all-zero
  column: under 4% of the steps at 10% density on 32 rows).  ``lockstep = false`` prices an idealised array whose every PE skips
  its own zeros: ``ceil(K * (1 - (1 - d) ** g))`` on average, but a fold
  ends with its busiest column, so the reduction is scaled by the layer's
  load imbalance, its densest output's non-zeros over the mean (measured
  from the masks; with ``g = 1`` the reduction is exactly that output's
  non-zeros: exact for the fold that holds it, an upper bound for the rest).  The stored weights are
  the skipped GEMM's share of them plus ``index_bits`` of metadata per block
  (EIE-style relative indices).  The input is still read whole: every input
  element meets some non-zero weight.
  The format is chosen per layer, as sparse accelerators do (simulation.py): a
  layer whose indexed form would move more bytes or take longer than its dense
  form (a dense layer, or one barely pruned) is stored and run dense, so it
  costs exactly what it costs on dense hardware.
* ``nm``: N:M structured sparsity (SCALE-Sim v3's layer-wise sparsity;
  NVIDIA's 2:4 sparse tensor cores; on systolic arrays S2TA, Liu et al.,
  HPCA 2022, and VEGETA, Jeong et al., HPCA 2023).  A layer whose weights
  hold at most N non-zeros in every group of M along the reduction axis
  (``Op.nm_kept`` of ``Op.nm_block``: from the checkpoint's masks or a
  topology file's ``Sparsity`` column) is stored condensed, N weights per
  group (padded with zeros where a group holds fewer), and reduces over
  ``ceil(K / M) x N`` steps in every dataflow: each PE picks the activation
  its weight needs from the M of its group by the weight's index, so every
  column of the array does the same number of steps and lockstep costs
  nothing.  Each stored weight carries ``ceil(log2 M)`` bits of index
  (SCALE-Sim's blocked-ELLPACK metadata).  The input is still read whole,
  and the M-wide activation window each PE selects from is assumed fed at
  the rate the array consumes it (its muxes are not in the area).  Layers
  without N:M structure run dense.
* ``columns``: a column-pruned layer runs as the dense layer it compacts to,
  K = ``columns_kept`` (in proportion, should K not be the column count);
  only the kept columns' inputs are read (the im2col input of those columns,
  at most the whole tensor: exact for linear layers and 1x1 convolutions, an
  upper bound where kept columns of a k x k convolution share an input
  channel).  A layer that is compacted already (its GEMM's K is the kept
  count) runs as it is, so a checkpoint and its compacted form cost the same.
  Other layers stay dense.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.graph.ops import Gemm, Op


@dataclass(frozen=True)
class SparseGemm:
    """The GEMM the sparse hardware runs, what its weights cost to store, and the K its input is read at.

    ``weight_elements`` are the stored weights (non-zero blocks under skip);
    ``index_bytes_per_weight`` their metadata; ``input_k`` the reduction width
    whose input columns cross DRAM (the dense K unless columns were removed).
    """

    gemm: Gemm
    weight_elements: int
    index_bytes_per_weight: float
    input_k: int


def dense(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    """The GEMM as it is, its weights stored whole."""
    return SparseGemm(gemm, _weight_elements(op, gemm), 0.0, gemm.k)


def _zero_skipping(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    block = _skip_block(gemm, config)
    if block is None:
        return dense(op, gemm, config)  # no step can be skipped
    kept_share = 1.0 - (1.0 - op.weight_density) ** block  # blocks holding a non-zero
    kept_steps = max(1, math.ceil(gemm.k * kept_share - 1e-9))  # on average over the columns
    if kept_steps == gemm.k:
        return dense(op, gemm, config)  # no block to skip: stored dense, no metadata
    reduced = min(gemm.k, math.ceil(kept_steps * _imbalance(op, gemm, config) - 1e-9))  # the busiest column's
    index_bytes = config.sparsity.index_bits / 8 / block  # one index per stored block
    stored = _stored_weights(op, gemm, kept_steps)
    return SparseGemm(replace(gemm, k=reduced), stored, index_bytes, gemm.k)


def _imbalance(op: Op, gemm: Gemm, config: HardwareConfig) -> float:
    """Without lockstep, a fold lasts as long as its busiest column: the layer's densest output over its
    mean (1 in lockstep, whose union already waits for every column, or where no mask was measured)."""
    if config.sparsity.lockstep or not op.weight_row_nonzero_max or not op.weight_nonzero:
        return 1.0
    mean_row = op.weight_nonzero * gemm.k / _weight_elements(op, gemm)  # non-zeros per K-long row
    return max(1.0, op.weight_row_nonzero_max / mean_row)


def _skip_block(gemm: Gemm, config: HardwareConfig) -> int | None:
    """The weights that must all be zero for the array to skip a step: ``granularity`` along K, times the
    columns a step is broadcast to in lockstep; None where a zero weight skips no step."""
    if not config.sparsity.lockstep:
        return config.sparsity.granularity
    if config.array.dataflow != "os":
        return None  # weights held in the PEs (ws), or a step that meets a whole weight column (is)
    return config.sparsity.granularity * min(config.array.cols, gemm.n)


def _compacted_columns(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    if not op.columns_total or gemm.k == op.columns_kept:
        return dense(op, gemm, config)  # not column-pruned, or compacted already
    reduced = max(1, op.columns_kept * gemm.k // op.columns_total)
    stored = _stored_weights(op, gemm, reduced)
    return SparseGemm(replace(gemm, k=reduced), stored, 0.0, reduced)


def _structured_n_of_m(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    if not op.nm_block or op.nm_kept >= op.nm_block:
        return dense(op, gemm, config)  # no N:M structure to compress
    reduced = min(gemm.k, math.ceil(gemm.k / op.nm_block) * op.nm_kept)
    if reduced == gemm.k:
        return dense(op, gemm, config)
    index_bytes = math.ceil(math.log2(op.nm_block)) / 8  # per stored weight
    stored = _stored_weights(op, gemm, reduced)
    return SparseGemm(replace(gemm, k=reduced), stored, index_bytes, gemm.k)


SPARSITY: dict[str, Callable[[Op, Gemm, HardwareConfig], SparseGemm]] = {
    "none": dense,
    "skip": _zero_skipping,
    "columns": _compacted_columns,
    "nm": _structured_n_of_m,
}


def _stored_weights(op: Op, gemm: Gemm, kept_k: int) -> int:
    """The weights a format stores when it keeps ``kept_k`` of the reduction's K steps (rows)."""
    return math.ceil(_weight_elements(op, gemm) * kept_k / gemm.k)


def _weight_elements(op: Op, gemm: Gemm) -> int:
    """The weight tensor's size; a GEMM from a topology file without weight counts uses K x N."""
    return op.weight_params or gemm.batch * gemm.k * gemm.n
