"""The waterfall from MAC ratio to latency ratio, on the tiny 4x4 core of test_analysis_compare.py by hand.

Teacher: two GEMMs of M=8, N=8, K=16 in a row (2048 MACs); each is 4 full folds of K = 16 streamed cycles
plus R + C - 2 = 6 of skew and drain (88 compute cycles), with 1 + 2 cycles of stall (the first load, then the
first GEMM's store and the second's load) and 180 cycles in all.  Student: one GEMM of N=6 (768 MACs): still
4 folds of 22 cycles, but the second and fourth fill 2 of the 4 columns, a mapping efficiency of 0.75; one
cycle of stall for its load and one for its store: 90 cycles.
"""

import pytest
from hand_ops import elementwise_op
from test_analysis_compare import chain, gemm_op, tiny_hardware

from attentionlite.analysis.waterfall import LEVELS, cycle_levels, waterfall_rows
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import OpKind

TEACHER = chain(gemm_op("conv1", OpKind.CONV), gemm_op("conv2", OpKind.CONV))
STUDENT = chain(gemm_op("query", OpKind.PROJECTION, n=6))


def _levels(graph, config):
    return cycle_levels(graph, simulate(graph, config), config)


def test_each_level_by_hand(tmp_path):
    config = tiny_hardware(tmp_path)
    assert _levels(TEACHER, config) == pytest.approx((2048 / 16, 128, 2 * 4 * 16, 2 * 88, 176, 179, 180))
    # 768 MACs / 16 PEs = 48; streamed: 768 / (0.75 x 16) = 64 = 4 folds x 16
    assert _levels(STUDENT, config) == pytest.approx((48, 48, 64, 88, 88, 89, 90))


def test_the_steps_multiply_from_the_mac_ratio_to_the_latency_ratio(tmp_path):
    config = tiny_hardware(tmp_path)
    (row,) = waterfall_rows({"teacher": _levels(TEACHER, config), "student": _levels(STUDENT, config)})
    assert row["mac_ratio"] == pytest.approx(2048 / 768)
    # the student's empty columns cost it a quarter of its advantage; skew and drain cost both alike
    assert row["mapping"] == pytest.approx(0.75) and row["fill and drain"] == pytest.approx(1.0)
    assert row["sparsity"] == row["vector work"] == pytest.approx(1.0)
    assert row["memory stalls"] == pytest.approx((179 / 89) / 2)
    assert row["latency_ratio"] == pytest.approx(2.0)
    product = row["mac_ratio"]
    for step in LEVELS[1:]:
        product *= row[step]
    assert product == pytest.approx(row["latency_ratio"])


def test_vector_work_is_the_vector_units_cycles(tmp_path):
    config = tiny_hardware(tmp_path)  # 4 lanes: a ReLU of 48 elements is 12 cycles
    relu = elementwise_op(OpKind.ACT, (1, 6, 8, 1))
    levels = _levels(chain(gemm_op("query", OpKind.PROJECTION, n=6), relu), config)
    assert levels[LEVELS.index("vector work")] - levels[LEVELS.index("fill and drain")] == 12
