"""Precision per tensor: bytes moved, buffers, area and MAC energy follow each kind's width, by hand."""

import pytest
from test_fusion import LOGIT_BYTES, _attention_layer, _conv

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.area import pe_um2
from attentionlite.simulator.accelerator.energy import mac_pj
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind


def test_four_bit_weights_move_half_the_bytes():
    # 1x1 conv 64 -> 128 on 32x32: 8,192 weights at 4 bits = 4,096 B; input 65,536 and output 131,072 B at 8
    row = simulate([_conv("conv", 64, 128, 32)], load_hardware("paa-default", cores=1, weight_bits=4)).rows[0]
    assert row.traffic.dram_read_weight == 4096
    assert row.traffic.dram_read_input == 65536 and row.dram_write_bytes == 131072


def test_sixteen_bit_logits_and_probabilities():
    rows = simulate(_attention_layer(), load_hardware("paa-default", cores=1, array=(4, 4), block=2, sram_kib=1,
                                                      softmax_bits=16)).rows
    logits, softmax, weighted = (2 * LOGIT_BYTES,) * 3  # 1,152 elements at 2 bytes
    assert rows[0].dram_write_bytes == logits
    assert (rows[1].dram_read_bytes, rows[1].dram_write_bytes) == (softmax, softmax)
    # the weighted sum reads the probabilities at 16 bits and the values (16 x 64) at 8
    assert rows[2].traffic.dram_read_input == weighted and rows[2].traffic.dram_read_weight == 16 * 64


def _spilling_gemm() -> Op:
    # ws on a 4x4 array: K = 8 on rows (2 row folds), N = 4 on columns (1 column fold), M = 64 streams;
    # each fold's outputs are 64 x 4 = 256 partial sums
    gemm = Gemm(m=64, n=4, k=8)
    return Op("gemm", OpKind.LINEAR, ((64, 8),), (64, 4), macs=gemm.macs, gemm=gemm, weight_params=32,
              weight_nonzero=32)


def test_wide_partial_sums_spill_and_come_back():
    config = {"cores": 1, "array": (4, 4), "dataflow": "ws", "output_kib": 1}  # 512 B halves
    narrow = simulate([_spilling_gemm()], load_hardware("paa-default", **config)).rows[0]
    assert narrow.traffic.dram_read_psum == 0 and narrow.dram_write_bytes == 256  # 256 B fit the half
    wide = simulate([_spilling_gemm()], load_hardware("paa-default", accumulator_bits=32, **config)).rows[0]
    # 32-bit partial sums, 1,024 B, do not: the first row fold spills them, the second reads them back
    # and stores the 256 final sums requantised to 8 bits
    assert wide.traffic.dram_read_psum == 1024
    assert wide.dram_write_bytes == 1024 + 256


def test_a_buffer_must_hold_a_tile_of_its_widest_tensor():
    # 32x32 partial sums at 4 bytes are 4 KiB; a 4 KiB output buffer has 2 KiB halves
    with pytest.raises(InputError, match=r"'sram.output_kib' is 4.*expected at least 8 KiB"):
        load_hardware("paa-default", accumulator_bits=32, output_kib=4)


def test_a_pe_and_a_mac_at_four_by_eight_bits():
    config = load_hardware("paa-default", weight_bits=4)
    # a 4 x 8 multiplier: 6350 x 32 / 1024; a 16-bit accumulator adder (twice the wider input): 139;
    # registers for an 8-bit input, a 4-bit weight and the 16-bit accumulator: 28 x 5.98
    assert pe_um2(config) == pytest.approx(6350 * 32 / 1024 + 139 + 28 * 5.98)
    assert mac_pj(config) == pytest.approx(0.23 * 4 * 8 / 64)


def _add(elements: int) -> Op:
    return Op("add", OpKind.ADD, ((elements,), (elements,)), (elements,), vector_ops=elements)


def test_a_vector_op_costs_its_lanes_width():
    # Horowitz's 32-bit float add, 0.9 pJ, scaled to paa-default's 8-bit lanes: 0.225 pJ per element op
    row = simulate([_add(1024)], load_hardware("paa-default", cores=1)).rows[0]
    assert row.energy.vector == pytest.approx(1024 * 0.9 * 8 / 32)
    wide = simulate([_add(1024)], load_hardware("paa-default", cores=1, vector__bits=32)).rows[0]
    assert wide.energy.vector == pytest.approx(1024 * 0.9)


def test_logits_wider_than_a_lane_take_two_passes():
    from test_sim_attention import LOGITS, WINDOW, _softmax

    # 128 rows of 9 on 32 lanes, 3 side by side: 43 passes of 7 cycles, twice for 16-bit logits on 8-bit
    # lanes; then the trees (2 x 4 levels) and the reciprocal (4)
    config = load_hardware("paa-default", cores=1, softmax_bits=16, vector__bits=8)
    row = simulate([_softmax(LOGITS, window=WINDOW)], config).rows[0]
    assert row.compute_cycles == 43 * 7 * 2 + 2 * 4 + 4
