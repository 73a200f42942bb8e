"""Fused local attention, the vector unit beside the array, and post-ops in the array's output path,
each counted by hand on one small layer."""

import pytest

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.area import accelerator_area
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind, Window

# 8x8 queries, 3x3 windows, 2 heads of 8 channels; 2x2 query blocks, so a block's halo is (2 + 3 - 1)^2 = 16
WINDOW = Window(images=1, height=8, width=8, kernel=3, heads=2, head_channels=8)
FEATURE = (1, 16, 8, 8)
LOGITS = (1, 2, 9, 8, 8)
LOGIT_BYTES = 2 * 9 * 64  # one byte per head, window position and query: 1,152


def _chain(ops: list[Op]) -> OpGraph:
    """Each op reads the one before it (its other inputs come from outside the graph)."""
    graph = OpGraph({"batch": 1})
    for index, op in enumerate(ops):
        graph.add_op(op, [(ops[index - 1].name, ops[index - 1].output_shape)] if index else [])
    return graph


def _attention_layer() -> OpGraph:
    queries = WINDOW.queries
    logits = Op("logits", OpKind.WINDOW_LOGITS, (FEATURE, FEATURE), LOGITS, macs=queries * 9 * 16, window=WINDOW)
    softmax = Op("softmax", OpKind.SOFTMAX, (LOGITS,), LOGITS, vector_ops=4 * LOGIT_BYTES, window=WINDOW)
    weighted = Op("weighted_sum", OpKind.WEIGHTED_SUM, (LOGITS, FEATURE), FEATURE, macs=queries * 9 * 16,
                  window=WINDOW)
    return _chain([logits, softmax, weighted])


def _hardware(**overrides):
    return load_hardware("paa-default", cores=1, array=(4, 4), block=2, **overrides)


def _dram_bytes(result) -> int:
    return sum(row.dram_read_bytes + row.dram_write_bytes for row in result.rows)


def test_fused_attention_keeps_logits_and_probabilities_off_dram():
    # 1 KiB buffers: the whole logit tensor (1,152 B) does not fit a 512 B half, one block's 4 x 16 words do
    small = {"sram_kib": 1}
    unfused = simulate(_attention_layer(), _hardware(**small))
    fused = simulate(_attention_layer(), _hardware(**small, fused=True))
    # logits stored, read by the softmax, probabilities stored, read by the weighted sum: four crossings
    assert _dram_bytes(unfused) - _dram_bytes(fused) == 4 * LOGIT_BYTES
    assert [row.dram_write_bytes for row in fused.rows] == [0, 0, 16 * 64]  # only the weighted sum stores


def test_fused_attention_falls_back_to_dram_when_a_block_does_not_fit():
    # 4x4 blocks: 16 queries x a (4 + 2)^2 = 36-key halo = 576 words, over a 512 B half buffer
    small = {"sram_kib": 1, "block": 4}
    unfused = simulate(_attention_layer(), load_hardware("paa-default", cores=1, array=(4, 4), **small))
    fused = simulate(_attention_layer(), load_hardware("paa-default", cores=1, array=(4, 4), fused=True, **small))
    assert _dram_bytes(fused) == _dram_bytes(unfused)


def test_softmax_beside_the_array_hides_under_the_gemms():
    # 4x4 os array; 32 blocks (16 of 2x2 queries, 2 heads).  Per block:
    #   logits GEMM M=4, N=16, K=8: 4 folds of 8 + 4 + 4 - 2 = 14 cycles -> 56; the layer 32 x 56 = 1,792
    #   weighted sum M=4, N=8, K=16: 2 folds of 16 + 4 + 4 - 2 = 22 cycles -> 44; the layer 1,408
    # array A = 3,200.  Softmax on 4 lanes: 128 rows of 9, each 3 passes of (3 + 4) cycles, + 2 trees of
    # 2 levels + a 4-cycle reciprocal: V = 2,688 + 4 + 4 = 2,696.
    # Pipelined: max(A, V) + ceil(min(A, V) / 32) = 3,200 + 85; the softmax shows 85 of its 2,696.
    rows = simulate(_attention_layer(), _hardware(fused=True, overlaps_array=True, vector_lanes=4)).rows
    assert [row.compute_cycles for row in rows] == [1792, 85, 1408]
    serial = simulate(_attention_layer(), _hardware(fused=True, vector_lanes=4)).rows
    assert serial[1].compute_cycles == 2696


def test_a_slower_vector_unit_sets_the_pace():
    # one lane: V = 128 rows x 9 passes x 7 + no tree + 4 = 8,068 > A = 3,200; pipelined
    # 8,068 + ceil(3,200 / 32) = 8,168, so the softmax shows 8,168 - 3,200 = 4,968 cycles
    rows = simulate(_attention_layer(), _hardware(fused=True, overlaps_array=True, vector_lanes=1)).rows
    assert rows[1].compute_cycles == 4968
    assert sum(row.compute_cycles for row in rows) == 8168


def test_overlap_without_fused_attention_is_refused():
    with pytest.raises(InputError, match="'vector.overlaps_array' is true while 'attention.fused' is false"):
        load_hardware("paa-default", overlaps_array=True)


def _conv(name: str, cin: int, cout: int, size: int) -> Op:
    gemm = Gemm(m=size * size, n=cout, k=cin)
    return Op(name, OpKind.CONV, ((1, cin, size, size),), (1, cout, size, size), macs=gemm.macs, gemm=gemm,
              weight_params=cin * cout, weight_nonzero=cin * cout, attrs=(("kernel_h", 1), ("kernel_w", 1)))


def _residual_block() -> OpGraph:
    """1x1 conv 64 -> 128 channels on 32x32, + a residual from outside, ReLU: 128 KiB tensors, over a 64 KiB half."""
    shape = (1, 128, 32, 32)
    ops = [_conv("conv", 64, 128, 32),
           Op("add", OpKind.ADD, (shape, shape), shape, vector_ops=128 * 1024),
           Op("relu", OpKind.ACT, (shape,), shape, vector_ops=128 * 1024, attrs=(("function", "relu"),))]
    return _chain(ops)


def test_post_ops_in_the_output_path_cost_no_cycles_and_no_round_trips():
    fused = simulate(_residual_block(), load_hardware("paa-default", cores=1, fuse_post_ops=True)).rows
    # conv input 64 KiB + weights 8 KiB in; the add loads the residual, 128 KiB; only the ReLU stores, 128 KiB
    assert sum(row.dram_read_bytes for row in fused) == 65536 + 8192 + 131072
    assert [row.dram_write_bytes for row in fused] == [0, 0, 131072]
    assert [row.compute_cycles for row in fused[1:]] == [0, 0]
    unfused = simulate(_residual_block(), load_hardware("paa-default", cores=1)).rows
    assert [row.compute_cycles for row in unfused[1:]] == [4096, 4096]  # 131,072 elements on 32 lanes each
    assert sum(row.dram_read_bytes + row.dram_write_bytes for row in unfused) == 65536 + 8192 + 6 * 131072


def test_a_layer_norm_is_not_a_post_op():
    shape = (1, 128, 32, 32)
    ops = [_conv("conv", 64, 128, 32),
           Op("norm", OpKind.NORM, (shape,), shape, vector_ops=2 * 128 * 1024, attrs=(("norm", "layer"),))]
    rows = simulate(_chain(ops), load_hardware("paa-default", cores=1, fuse_post_ops=True)).rows
    assert rows[1].compute_cycles == 2 * 4096 and rows[0].dram_write_bytes == 131072


def test_the_output_path_adds_one_lane_per_array_column():
    # per lane at 8 bits: multiplier 6350 (8/32)^2 = 396.875, 16-bit adder 139, 8-bit comparator 17.75;
    # 32 columns x 553.625 = 17,716 um^2 per core, 4 cores
    base, fused = (accelerator_area(load_hardware("paa-default", fuse_post_ops=flag)) for flag in (False, True))
    assert fused.array_um2 - base.array_um2 == pytest.approx(4 * 32 * 553.625)
    assert fused.vector_um2 == base.vector_um2 and fused.sram_um2 == base.sram_um2
