"""Weight sparsity modes on one small GEMM, counted by hand."""

import pytest

from attentionlite.simulator.accelerator.hardware import load_hardware, with_overrides
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind


def pruned_linear(nonzero: int = 32, kept_columns: int = 8) -> Op:
    """4x8 @ 8x4 with ``nonzero`` of its 32 weights left, or ``kept_columns`` of 8 weight columns."""
    return Op("fc", OpKind.LINEAR, ((4, 8),), (4, 4), macs=128, gemm=Gemm(m=4, n=4, k=8),
              weight_params=32, weight_nonzero=nonzero, columns_total=8, columns_kept=kept_columns)


@pytest.fixture
def config():
    return load_hardware("paa-default", cores=1, array=(4, 4), dataflow="os")


def test_dense_hardware_ignores_masks(config):
    row = simulate([pruned_linear(nonzero=8)], with_overrides(config, sparsity="none")).rows[0]
    assert (row.compute_cycles, row.macs, row.skipped_macs) == (8 + 4 + 4 - 2, 128, 0)


def test_compacted_columns_shrink_the_reduction(config):
    row = simulate([pruned_linear(kept_columns=4)], with_overrides(config, sparsity="columns")).rows[0]
    assert (row.compute_cycles, row.macs, row.skipped_macs) == (4 + 4 + 4 - 2, 64, 64)
    assert row.dram_read_bytes == 4 * 8 + 4 * 4  # the whole input, half the weights


def test_zero_skipping_pays_index_metadata(config):
    # density 1/4, blocks of one weight: K shrinks to ceil(8 / 4) = 2; 8 weights stored at 1 B + 4 index bits
    config = load_hardware("paa-default", cores=1, array=(4, 4), dataflow="os", granularity=1, index_bits=4)
    row = simulate([pruned_linear(nonzero=8)], with_overrides(config, sparsity="skip")).rows[0]
    assert (row.compute_cycles, row.macs, row.skipped_macs) == (2 + 4 + 4 - 2, 32, 96)
    assert row.dram_read_bytes == 4 * 8 + 12


def test_coarser_skip_blocks_skip_less(config):
    fine = simulate([pruned_linear(nonzero=8)], load_hardware("paa-default", cores=1, array=(4, 4), granularity=1, sparsity="skip"))
    coarse = simulate([pruned_linear(nonzero=8)], load_hardware("paa-default", cores=1, array=(4, 4), granularity=4, sparsity="skip"))
    # a block of 4 holds a non-zero with probability 1 - (3/4)^4 = 0.68: K = ceil(8 * 0.68) = 6
    assert coarse.rows[0].macs == 4 * 4 * 6 > fine.rows[0].macs
