"""COMPUTE_REPORT.csv and BANDWIDTH_REPORT.csv, worked out by hand for one GEMM."""

import csv
import io

import pytest
from test_sim_engine import linear

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate


@pytest.fixture(scope="module")
def result():
    # M=100, N=72, K=200 on one 32x32 os core with 128 KiB buffers: every operand fits half its buffer
    return simulate([linear("fc", 100, 72, 200)], load_hardware("paa-default", cores=1))


def only_row(text: str) -> dict:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    return rows[0]


def test_compute_report_by_hand(result):
    report = only_row(result.compute_report_csv())
    # 4 row folds (32, 32, 32, 4 rows) x 3 column folds (32, 32, 8 columns), each K + 32 + 32 - 2 = 262 cycles
    assert (int(report["Folds"]), int(report["Compute Cycles"])) == (12, 12 * 262)
    assert int(report["Total Cycles"]) == 12 * 262 + int(report["Stall Cycles"])
    # the folds occupy 100 x 72 PE positions in all, over 12 folds of 1024 PEs
    assert float(report["Mapping Efficiency %"]) == pytest.approx(100 * 7200 / (12 * 1024))
    assert float(report["Compute Util %"]) == pytest.approx(100 * 100 * 72 * 200 / (1024 * 12 * 262))


def test_bandwidth_report_by_hand(result):
    report = only_row(result.bandwidth_report_csv())
    # the busiest fold loads a 32 x 200 input tile and a 200 x 32 weight slice, and stores 32 x 32
    # outputs, within one fold's 262 cycles
    assert float(report["Peak IFMAP DRAM BW (B/cycle)"]) == pytest.approx(6400 / 262)
    assert float(report["Peak FILTER DRAM BW (B/cycle)"]) == pytest.approx(6400 / 262)
    assert float(report["Peak OFMAP DRAM BW (B/cycle)"]) == pytest.approx(1024 / 262)
    # averages: each tensor once (20,000 B in, 14,400 B of weights, 7,200 B out) over the op's active span
    span = float(report["Active Cycles"])
    assert float(report["Avg IFMAP DRAM BW (B/cycle)"]) == pytest.approx(20_000 / span)
    assert float(report["Avg FILTER DRAM BW (B/cycle)"]) == pytest.approx(14_400 / span)
    assert float(report["Avg OFMAP DRAM BW (B/cycle)"]) == pytest.approx(7_200 / span)
    assert span >= 12 * 262
