"""Area: the [area] table's components summed by hand for the presets."""

import pytest

from attentionlite import api
from attentionlite.simulator.accelerator.area import accelerator_area, core_area, pe_um2
from attentionlite.simulator.accelerator.hardware import describe, load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

# paa-default: 8-bit words; Aladdin's 40 nm figures are for 32 bits
MULTIPLIER_8 = 6350 * (8 / 32) ** 2  # 396.875 um^2: quadratic in the input width
ADDER_16 = 278 * 16 / 32  # 139: the accumulator adder, twice the word
REGISTERS = (8 + 8 + 16) * 5.98  # input, weight, accumulator: 191.36
PE = MULTIPLIER_8 + ADDER_16 + REGISTERS  # 727.235
LANE = MULTIPLIER_8 + ADDER_16 + 71 * 8 / 32  # 553.625, with an 8-bit comparator
SRAM = (128 + 128 + 128) * 1024 * 8 * 0.94  # 2,956,984.32 um^2: the buffers' 384 KiB


def test_one_pe_of_paa_default():
    assert pe_um2(load_hardware("paa-default")) == pytest.approx(727.235)
    assert PE == pytest.approx(727.235)


def test_one_core_of_paa_default_by_component():
    area = core_area(load_hardware("paa-default"))
    assert area.array_um2 == pytest.approx(32 * 32 * PE)  # 744,688.64
    assert area.vector_um2 == pytest.approx(32 * LANE)  # 17,716
    assert area.sram_um2 == pytest.approx(SRAM)


def test_paa_default_is_four_cores_and_paa_hetero_the_same_silicon_cut_differently():
    default = accelerator_area(load_hardware("paa-default"))
    assert default.total_mm2 == pytest.approx(4 * (1024 * PE + 32 * LANE + SRAM) * 1e-6)  # 14.878 mm^2
    # paa-hetero: 4 engines of 16x32 PEs, 24 lanes and 192 KiB, plus one of 32x64, 32 lanes and 768 KiB:
    # 4096 PEs, 128 lanes and 1536 KiB in all, as paa-default
    hetero = accelerator_area(load_hardware("paa-hetero"))
    assert hetero.total_um2 == pytest.approx(default.total_um2)
    assert hetero.array_um2 == pytest.approx((4 * 512 + 2048) * PE)


def test_overlapped_folds_add_a_weight_register_and_wider_words_grow_the_multiplier_quadratically():
    config = load_hardware("paa-default")
    assert pe_um2(load_hardware("paa-default", overlap_folds=True)) - pe_um2(config) == pytest.approx(8 * 5.98)
    wide = load_hardware("paa-default", word_bytes=2, sram_kib=256)  # a 32x32 tile of 2-byte words needs 4 KiB
    assert pe_um2(wide) == pytest.approx(6350 / 4 + 278 + 64 * 5.98)  # 16x16 multiplier, 32-bit adder


def test_a_users_area_table_is_read_from_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(describe(load_hardware("paa-default")).replace("sram_um2_per_bit = 0.94", "sram_um2_per_bit = 0.5"))
    assert core_area(load_hardware(path)).sram_um2 == pytest.approx(384 * 1024 * 8 * 0.5)


def test_a_simulation_and_a_sweep_row_carry_the_design_points_area(tmp_path):
    fc = Op("fc", OpKind.LINEAR, ((4, 8),), (4, 4), macs=128, gemm=Gemm(m=4, n=4, k=8), weight_params=32,
            weight_nonzero=32)
    two_cores = simulate([fc], load_hardware("paa-default", cores=2))
    assert two_cores.totals.area_mm2 == pytest.approx(2 * (1024 * PE + 32 * LANE + SRAM) * 1e-6)  # 7.439 mm^2
    rows = api.sweep(["resnet26"], {"sram_kib": [64, 128]}, progress=False, workers=1)
    # the buffers 3 x 64 KiB smaller on each of the 4 cores
    assert rows[1]["area_mm2"] - rows[0]["area_mm2"] == pytest.approx(4 * 3 * 64 * 1024 * 8 * 0.94 * 1e-6)
