"""Local attention on the array: the two window mappings and the softmax, counted by hand."""

import math

import pytest

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import AXIS_LENGTH, Op, OpKind, Window

WINDOW = Window(images=1, height=8, width=8, kernel=3, heads=2, head_channels=4)
FEATURE = (1, 8, 8, 8)
LOGITS = (1, 2, 9, 8, 8)


def logits_op() -> Op:
    macs = WINDOW.queries * WINDOW.window_size * WINDOW.heads * WINDOW.head_channels  # 64 * 9 * 8 = 4608
    return Op("logits", OpKind.WINDOW_LOGITS, (FEATURE, FEATURE), LOGITS, macs=macs, window=WINDOW)


def config(mapping: str):
    return load_hardware("paa-default", array=(4, 4), cores=1, window_mapping=mapping, block=4)


def test_blocked_windows_spend_macs_on_the_halo():
    # 4 blocks of 4x4 queries x 2 heads; each block against a (4+3-1)^2 = 36-key halo, 4 channels
    row = simulate([logits_op()], config("blocked")).rows[0]
    assert row.macs == 8 * 16 * 36 * 4 == 4 * logits_op().macs
    assert row.utilisation * config("blocked").pes * (row.compute_cycles + row.stall_cycles) == pytest.approx(4608)


def test_gathered_windows_do_only_useful_macs_but_reread_keys_per_row():
    row = simulate([logits_op()], config("gathered")).rows[0]
    assert row.macs == logits_op().macs
    # queries: M x K per column fold = 64 * 4 * 3 folds * 2 heads; keys: one read per MAC (4608);
    # and the logits (2 x 9 x 64) read out of the output buffer as they drain to DRAM
    assert row.sram_read_bytes == 64 * 4 * 3 * 2 + 4608 + 2 * 9 * 64


def test_blocked_reads_each_halo_from_sram():
    # per block and head: queries 16 x 4 in each of 9 column folds, halo keys 4 x 36 in each of 4 row
    # folds; and the logits drained to DRAM
    row = simulate([logits_op()], config("blocked")).rows[0]
    assert row.sram_read_bytes == 8 * (16 * 4 * 9 + 4 * 36 * 4) + 2 * 9 * 64


def test_each_tensor_crosses_dram_once_whatever_the_mapping():
    for mapping in ("blocked", "gathered"):
        row = simulate([logits_op()], config(mapping)).rows[0]
        assert row.dram_read_bytes == 2 * 64 * 8  # queries and keys
        assert row.dram_write_bytes == 2 * 9 * 64  # one logit per query, head and window position


def _softmax(shape: tuple, **fields) -> Op:
    return Op("softmax", OpKind.SOFTMAX, (shape,), shape, vector_ops=4 * math.prod(shape), **fields)


def test_softmax_on_the_vector_unit_by_hand():
    # 128 rows (2 heads x 64 queries) of 9 window positions on 4 lanes: 3 passes each of max, sum, multiply
    # and a 4-cycle exp: 128 x 3 x 7; then the max and sum trees, ceil(log2 4) = 2 levels each; the reciprocal, 4
    op = _softmax(LOGITS, window=WINDOW)
    row = simulate([op], load_hardware("paa-default", cores=1, vector_lanes=4, exp_cycles=4)).rows[0]
    assert row.compute_cycles == 128 * 3 * 7 + 2 * 2 + 4
    assert row.utilisation == 0.0 and row.vector_ops == 4 * 2 * 9 * 64


def test_short_softmax_rows_share_the_lanes():
    # rows of 9 on 32 lanes: 3 side by side, so ceil(128 / 3) = 43 passes of 7; trees of ceil(log2 9) = 4 levels
    row = simulate([_softmax(LOGITS, window=WINDOW)], load_hardware("paa-default", cores=1)).rows[0]
    assert row.compute_cycles == 43 * 7 + 2 * 4 + 4


def test_a_global_softmax_normalises_its_named_axis():
    # 4 heads x 65 query rows of 65 keys (the last axis) on 32 lanes: 3 passes per row, trees of 5 levels
    shape = (1, 4, 65, 65)
    config = load_hardware("paa-default", cores=1)
    rows = [simulate([op], config).rows[0].compute_cycles
            for op in (_softmax(shape), _softmax(shape, attrs=((AXIS_LENGTH, 65),)))]
    assert rows == [260 * 3 * 7 + 2 * 5 + 4] * 2
    # over the heads axis instead: 1 x 65 x 65 rows of 4, 8 side by side on 32 lanes, trees of 2 levels
    heads = simulate([_softmax(shape, attrs=((AXIS_LENGTH, 4),))], config).rows[0]
    assert heads.compute_cycles == math.ceil(4225 / 8) * 7 + 2 * 2 + 4


def test_relative_logits_add_a_shared_embedding_gemm():
    relative = WINDOW.queries * WINDOW.kernel * WINDOW.heads * WINDOW.head_channels
    op = Op("logits", OpKind.WINDOW_LOGITS, (FEATURE, FEATURE), LOGITS, macs=logits_op().macs + relative,
            window=WINDOW, weight_params=2 * 3 * 4, weight_nonzero=24, attrs=(("relative_macs", relative),))
    row = simulate([op], config("gathered")).rows[0]
    assert row.macs == logits_op().macs + relative
