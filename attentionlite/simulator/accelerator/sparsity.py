"""Weight sparsity as the hardware exploits it: the GEMM the array runs and what its weights cost to move.

One strategy per ``[sparsity] mode`` (:data:`SPARSITY`):

* ``none``: dense hardware; masks are ignored.
* ``skip``: zero-skipping in blocks of ``granularity`` weights along the
  reduction.  With unstructured sparsity of density d a block holds a
  non-zero with probability ``1 - (1 - d) ** g``, so the reduction shrinks to
  ``ceil(K * (1 - (1 - d) ** g))`` and the weights are stored as those blocks
  plus ``index_bits`` of metadata each (EIE-style relative indices).  The
  input is still read whole: every input element meets some non-zero weight.
  The format is chosen per layer, as sparse accelerators do (simulation.py): a
  layer whose indexed form would move more bytes or take longer than its dense
  form (a dense layer, or one barely pruned) is stored and run dense, so it
  costs exactly what it costs on dense hardware.
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
    granularity = config.sparsity.granularity
    block_density = 1.0 - (1.0 - op.weight_density) ** granularity
    reduced = max(1, math.ceil(gemm.k * block_density - 1e-9))
    if reduced == gemm.k:
        return dense(op, gemm, config)  # no block to skip: stored dense, no metadata
    index_bytes = config.sparsity.index_bits / 8 / granularity  # metadata per stored weight
    stored = math.ceil(_weight_elements(op, gemm) * reduced / gemm.k)
    return SparseGemm(replace(gemm, k=reduced), stored, index_bytes, gemm.k)


def _compacted_columns(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    if not op.columns_total or gemm.k == op.columns_kept:
        return dense(op, gemm, config)  # not column-pruned, or compacted already
    reduced = max(1, op.columns_kept * gemm.k // op.columns_total)
    stored = math.ceil(_weight_elements(op, gemm) * reduced / gemm.k)
    return SparseGemm(replace(gemm, k=reduced), stored, 0.0, reduced)


SPARSITY: dict[str, Callable[[Op, Gemm, HardwareConfig], SparseGemm]] = {
    "none": dense,
    "skip": _zero_skipping,
    "columns": _compacted_columns,
}


def _weight_elements(op: Op, gemm: Gemm) -> int:
    """The weight tensor's size; a GEMM from a topology file without weight counts uses K x N."""
    return op.weight_params or gemm.batch * gemm.k * gemm.n
