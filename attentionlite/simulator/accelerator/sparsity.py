"""Weight sparsity as the hardware exploits it: the GEMM the array runs and what its weights cost.

One strategy per ``[sparsity] mode`` (:data:`SPARSITY`):

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
from collections.abc import Callable
from dataclasses import dataclass, replace

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.graph.ops import Gemm, Op


@dataclass(frozen=True)
class SparseGemm:
    """The GEMM the sparse hardware runs, and what its weights cost to store."""

    gemm: Gemm
    weight_elements: int
    weight_bytes_per_element: float


def dense(op: Op, gemm: Gemm, config: HardwareConfig) -> SparseGemm:
    """The GEMM as it is, its weights stored whole."""
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
        return dense(op, gemm, config)
    reduced = max(1, math.ceil(gemm.k * op.columns_kept / op.columns_total - 1e-9))
    stored = math.ceil(_weight_elements(op, gemm) * reduced / gemm.k)
    return SparseGemm(replace(gemm, k=reduced), stored, config.word_bytes)


SPARSITY: dict[str, Callable[[Op, Gemm, HardwareConfig], SparseGemm]] = {
    "none": dense,
    "skip": _zero_skipping,
    "columns": _compacted_columns,
}


def _weight_elements(op: Op, gemm: Gemm) -> int:
    """The weight tensor's size; a GEMM from a topology file without weight counts uses K x N."""
    return op.weight_params or gemm.batch * gemm.k * gemm.n
