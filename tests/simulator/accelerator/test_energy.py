"""Energy = accesses x energy per access + leakage x time, checked by hand on one tile."""

import pytest
from test_sim_engine import TINY

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind


def test_one_tile_energy_by_hand(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    op = Op("fc", OpKind.LINEAR, ((4, 8),), (4, 4), macs=128, gemm=Gemm(m=4, n=4, k=8), weight_params=32, weight_nonzero=32)
    result = simulate([op], load_hardware(path))
    row, totals = result.rows[0], result.totals
    assert row.energy_mac_pj == pytest.approx(128 * 0.23)
    assert row.energy_sram_pj == pytest.approx((32 + 32 + 16) * 1.25)  # read input and weights, write outputs
    assert row.energy_dram_pj == pytest.approx((64 + 16) * 160.0)
    assert row.energy_leakage_pj == pytest.approx(10.0 * 40e-9 * 1e9)  # 10 mW over 40 busy cycles at 1 GHz
    assert totals.energy_leakage_pj == pytest.approx(10.0 * 44e-9 * 1e9)  # every core, whole makespan
    dynamic = row.energy_mac_pj + row.energy_sram_pj + row.energy_dram_pj
    assert totals.energy_pj == pytest.approx(dynamic + totals.energy_leakage_pj)
    assert totals.edp == pytest.approx(totals.energy_pj * 1e-12 * 44e-9)


def test_energy_table_is_overridable():
    op = Op("fc", OpKind.LINEAR, ((4, 8),), (4, 4), macs=128, gemm=Gemm(m=4, n=4, k=8), weight_params=32, weight_nonzero=32)
    cheap = simulate([op], load_hardware("paa-default", dram_pj_per_byte=0.0)).totals
    dear = simulate([op], load_hardware("paa-default")).totals
    assert cheap.energy_dram_pj == 0.0 < dear.energy_dram_pj
