"""Local attention with a fixed window mask (window positions pruned per head), counted by hand: the
gathered mapping computes, moves and normalises only the kept positions; the blocked one computes its halo."""

import dataclasses
import math

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Op, OpKind, Window

# 8x8 queries, a 3x3 window, 2 heads of 4 channels; each head keeps 4 of the 9 positions
WINDOW = Window(images=1, height=8, width=8, kernel=3, heads=2, head_channels=4, kept=4)
FEATURE, LOGITS = (1, 8, 8, 8), (1, 2, 9, 8, 8)
DENSE_MACS = 64 * 9 * 2 * 4  # the op's MACs count the whole window: 4,608


def _config(mapping: str):
    return load_hardware("paa-default", array=(4, 4), cores=1, window_mapping=mapping, block=4)


def _run(op: Op, mapping: str = "gathered"):
    return simulate([op], _config(mapping)).rows[0]


def _logits(window: Window = WINDOW) -> Op:
    return Op("logits", OpKind.WINDOW_LOGITS, (FEATURE, FEATURE), LOGITS, macs=DENSE_MACS, window=window)


def test_gathered_logits_compute_and_store_only_the_kept_positions():
    row = _run(_logits())
    assert (row.macs, row.skipped_macs) == (64 * 4 * 8, DENSE_MACS - 64 * 4 * 8)  # 2,048 done, 2,560 skipped
    # queries and keys in (64 x 8 B each); one logit per query, head and kept position out: 2 x 4 x 64
    assert (row.dram_read_bytes, row.dram_write_bytes) == (2 * 64 * 8, 2 * 4 * 64)
    # queries M x K in the one column fold (4 kept positions on 4 columns) per head, keys once per MAC, and
    # the logits read out of the output buffer as they drain
    assert row.sram_read_bytes == 64 * 4 * 1 * 2 + 2048 + 2 * 4 * 64


def test_the_blocked_mapping_computes_its_whole_halo_anyway():
    dense = _run(_logits(dataclasses.replace(WINDOW, kept=None)), "blocked")
    row = _run(_logits(), "blocked")
    assert row.macs == dense.macs == 8 * 16 * 36 * 4 and row.compute_cycles == dense.compute_cycles


def test_the_weighted_sum_reduces_over_the_kept_positions():
    op = Op("weighted_sum", OpKind.WEIGHTED_SUM, (LOGITS, FEATURE), FEATURE, macs=DENSE_MACS, window=WINDOW)
    row = _run(op)
    assert row.macs == 64 * 4 * 4 * 2  # per head: 64 queries x 4 channels x 4 kept positions
    assert row.dram_read_bytes == 2 * 4 * 64 + 64 * 8  # the kept probabilities and the values


def test_the_softmax_normalises_rows_of_the_kept_positions():
    op = Op("softmax", OpKind.SOFTMAX, (LOGITS,), LOGITS, vector_ops=4 * math.prod(LOGITS), window=WINDOW)
    row = _run(op)
    lanes = _config("gathered").vector.lanes
    rows_per_pass = max(1, lanes // 4)
    # 128 rows (2 heads x 64 queries) of 4: ceil(128 / rows a pass) passes of max, exp (4), sum and multiply;
    # the two trees of ceil(log2 4) = 2 levels and the reciprocal's 4
    assert row.compute_cycles == math.ceil(128 / rows_per_pass) * 7 + 2 * 2 + 4
    assert (row.dram_read_bytes, row.dram_write_bytes, row.vector_ops) == (512, 512, 4 * 512)
