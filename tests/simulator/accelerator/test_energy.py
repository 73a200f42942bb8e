"""Energy = accesses x energy per access + leakage x time, checked by hand on one tile and against its sources."""

import math

import pytest
from test_sim_engine import TINY

from attentionlite.simulator.accelerator.hardware import EnergyTable, load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind


def fc_op() -> Op:
    return Op("fc", OpKind.LINEAR, ((4, 8),), (4, 4), macs=128, gemm=Gemm(m=4, n=4, k=8), weight_params=32,
              weight_nonzero=32)


def test_one_tile_energy_by_hand(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    result = simulate([fc_op()], load_hardware(path))
    row, batch = result.rows[0], result.totals.per_batch
    assert row.energy.mac == pytest.approx(128 * 0.23)
    # Every buffer is 4 KiB, so a bank (half of it) is 2 KiB: 1.25 pJ/B x sqrt(2 / 8) = 0.625 pJ/B.
    # Input: the array reads 32 B, the DRAM fill wrote them (32 B); weights the same; output: the
    # array writes 16 B and the drain to DRAM reads them out (16 B).
    assert row.energy.sram == pytest.approx((32 + 32 + 32 + 32 + 16 + 16) * 0.625)
    assert row.energy.dram == pytest.approx((64 + 16) * 8 * 20.0)  # 20 pJ/bit
    assert row.energy.leakage == pytest.approx(10.0 * 40e-9 * 1e9)  # 10 mW over 40 busy cycles at 1 GHz
    assert batch.energy_leakage_pj == pytest.approx(10.0 * 44e-9 * 1e9)  # the one core, the whole makespan
    dynamic = row.energy.mac + row.energy.sram + row.energy.dram
    assert batch.energy_pj == pytest.approx(dynamic + batch.energy_leakage_pj)
    assert batch.edp == pytest.approx(batch.energy_pj * 1e-12 * 44e-9)


def test_sram_energy_follows_horowitz_capacity_points():
    # Horowitz, ISSCC 2014: a 64-bit read costs 10 pJ from 8 KB, 20 pJ from 32 KB, 100 pJ from 1 MB.
    table = EnergyTable()
    assert 8 * table.sram_pj_per_byte(8) == pytest.approx(10.0)
    assert 8 * table.sram_pj_per_byte(32) == pytest.approx(20.0)
    assert 8 * table.sram_pj_per_byte(1024) == pytest.approx(100.0, rel=0.15)  # sqrt fit: 113 pJ
    assert table.sram_pj_per_byte(12 * 1024) == table.sram_pj_per_byte(1024)  # larger buffers are banked


def test_presets_name_their_dram_technology():
    # DDR3-class DIMM 1.3 nJ per 64 bits (Horowitz) = 20.3 pJ/bit; HBM2 3.9 pJ/bit (O'Connor, MICRO 2017);
    # Eyeriss's DRAM at 200x its 0.5 pJ 16-bit MAC = 100 pJ per 2 bytes.
    assert load_hardware("paa-default").energy.dram_pj_per_byte == pytest.approx(1300 / 64 * 8, rel=0.02)
    assert load_hardware("vitcod-like").energy.dram_pj_per_byte == pytest.approx(3.9 * 8)
    eyeriss = load_hardware("eyeriss-like")
    assert 2 * eyeriss.energy.dram_pj_per_byte == pytest.approx(200 * eyeriss.energy.mac_pj)
    glb_word = 2 * eyeriss.energy.sram_pj_per_byte(108)  # its 108 KB global buffer: 6x a MAC
    assert glb_word == pytest.approx(6 * eyeriss.energy.mac_pj)
    assert math.isclose(eyeriss.energy.sram_pj_per_byte(27), eyeriss.energy.sram_pj_per_byte(108) / 2)


def test_energy_table_is_overridable():
    cheap = simulate([fc_op()], load_hardware("paa-default", dram_pj_per_bit=0.0)).totals.per_batch
    dear = simulate([fc_op()], load_hardware("paa-default")).totals.per_batch
    assert cheap.energy_dram_pj == 0.0 < dear.energy_dram_pj
