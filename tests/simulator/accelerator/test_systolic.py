"""Systolic dataflows: hand-counted folds and cycles, SCALE-Sim golden compute cycles, fold-plan properties."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attentionlite.simulator.accelerator.systolic import DATAFLOWS, compute_cycles, fold_counts, fold_plan
from attentionlite.simulator.graph.ops import Gemm

GOLDEN = Path(__file__).parent / "golden" / "scalesim_cycles.json"


def _golden_cases(mode: str) -> list[dict]:
    doc = json.loads(GOLDEN.read_text())
    return doc["cases"] if mode == "CALC" else doc["user_bandwidth_cases"]


# ----------------------------------------------------------------------------- by hand


def test_output_stationary_one_fold_by_hand():
    # K = 8 values stream through; 3 cycles of skew fill, 3 to drain: 8 + 4 + 4 - 2
    assert compute_cycles(Gemm(m=4, n=4, k=8), 4, 4, "os") == 14
    assert fold_counts(Gemm(m=5, n=4, k=8), 4, 4, "os") == (2, 1)
    assert compute_cycles(Gemm(m=5, n=4, k=8), 4, 4, "os") == 28


def test_stationary_dataflows_pay_a_preload_by_hand():
    # ws: K=4 on rows, N=4 on columns, M=10 streams; + R cycles to load the weights
    assert compute_cycles(Gemm(m=10, n=4, k=4), 4, 4, "ws") == 10 + 2 * 4 + 4 - 2
    # is: K=4 on rows, M=4 on columns, N=10 streams
    assert compute_cycles(Gemm(m=4, n=10, k=4), 4, 4, "is") == 10 + 2 * 4 + 4 - 2
    # ws with K=9 on 4 rows: 3 row folds; N=6 on 4 columns: 2 column folds
    assert fold_counts(Gemm(m=10, n=6, k=9), 4, 4, "ws") == (3, 2)


def test_overlapped_folds_pay_the_fill_and_drain_once_per_run_by_hand():
    # os, 4x4, M=8 -> 2 row folds, K=8 streams: a whole fold is 8 + 4 + 4 - 2 = 14; the second adds its 8
    assert compute_cycles(Gemm(m=8, n=4, k=8), 4, 4, "os") == 2 * 14
    assert _overlapped(Gemm(m=8, n=4, k=8), "os") == 14 + 8
    # ws, 4x4, K=8 -> 2 row folds, M=2 streams: a whole fold is 2 + 2 * 4 + 4 - 2 = 12; the second fold's
    # 4-cycle weight preload is longer than the 2-cycle stream it hides behind, so it adds 4
    assert compute_cycles(Gemm(m=2, n=4, k=8), 4, 4, "ws") == 2 * 12
    assert _overlapped(Gemm(m=2, n=4, k=8), "ws") == 12 + 4
    # is, 4x4, K=4 on rows, M=12 -> 3 column folds, N=10 streams (longer than the preload): 20 + 10 + 10
    assert _overlapped(Gemm(m=12, n=10, k=4), "is") == (10 + 2 * 4 + 4 - 2) + 2 * 10


def _overlapped(gemm: Gemm, dataflow: str) -> int:
    """Cycles of the GEMM's folds on a 4x4 array, overlapped, as one run."""
    return int(fold_plan(gemm, 4, 4, dataflow, overlap=True).cycles.sum())


def test_every_run_of_overlapped_folds_pays_its_own_fill():
    plan = fold_plan(Gemm(m=8, n=8, k=8), 4, 4, "os", overlap=True)  # 4 folds of 14 whole, 8 overlapped
    assert plan.cycles.tolist() == [14, 8, 8, 8] and plan.run_fill == 6
    assert plan.subset(np.array([2, 3])).cycles.tolist() == [14, 8]  # a second core's run starts afresh
    assert plan.run_fold_cycles(np.array([0, 1])).tolist() == [14, 8]
    assert fold_plan(Gemm(m=8, n=8, k=8), 4, 4, "os").subset(np.array([2, 3])).cycles.tolist() == [14, 14]


def test_batch_repeats_the_folds():
    gemm = Gemm(m=5, n=7, k=3, batch=6)
    assert compute_cycles(gemm, 4, 4, "os") == 6 * compute_cycles(Gemm(m=5, n=7, k=3), 4, 4, "os")


def test_fold_plan_of_a_small_os_gemm_by_hand():
    plan = fold_plan(Gemm(m=5, n=6, k=3), 4, 4, "os")
    # folds in order (col 0: rows 0-3, 4), (col 1: rows 0-3, 4)
    assert plan.macs.tolist() == [4 * 4 * 3, 1 * 4 * 3, 4 * 2 * 3, 1 * 2 * 3]
    assert plan.operand_elements["input"].tolist() == [12, 3, 12, 3]  # rows x K
    assert plan.operand_elements["weight"].tolist() == [12, 12, 6, 6]  # K x columns
    assert plan.starts_column_fold().tolist() == [True, False, True, False]
    assert plan.ends_column_fold().tolist() == [False, True, False, True]
    assert plan.first_of_row_tile().tolist() == [True, True, False, False]


def test_a_run_of_folds_reuses_only_what_it_loaded_itself():
    plan = fold_plan(Gemm(m=5, n=6, k=3), 4, 4, "os")
    second_core = plan.subset(np.array([1, 2, 3]))  # starts inside column fold 0
    assert second_core.starts_column_fold().tolist() == [True, True, False]  # loads column 0's weights again
    assert second_core.first_of_row_tile().tolist() == [True, True, False]  # row tile 0 first seen in fold 2


# ----------------------------------------------------------------------------- SCALE-Sim


@pytest.mark.parametrize("case", _golden_cases("CALC"), ids=lambda case: case["id"])
def test_compute_cycles_equal_scalesim(case):
    """SCALE-Sim reports the 0-based index of the last cycle: our duration minus one, exactly."""
    m, n, k = case["layer"]["gemm_mnk"]
    cycles = compute_cycles(Gemm(m=m, n=n, k=k), case["array"]["rows"], case["array"]["cols"], case["dataflow"])
    assert cycles - 1 == case["compute_cycles"] == case["total_cycles"]


# ----------------------------------------------------------------------------- properties

dims = st.integers(min_value=1, max_value=300)
arrays = st.integers(min_value=1, max_value=64)


@settings(max_examples=40, deadline=None)
@given(m=dims, n=dims, k=dims, batch=st.integers(1, 3), rows=arrays, cols=arrays, dataflow=st.sampled_from(sorted(DATAFLOWS)))
def test_fold_plan_is_consistent_with_the_gemm(m, n, k, batch, rows, cols, dataflow):
    gemm = Gemm(m=m, n=n, k=k, batch=batch)
    plan = fold_plan(gemm, rows, cols, dataflow)
    row_folds, col_folds = fold_counts(gemm, rows, cols, dataflow)
    assert plan.folds == batch * row_folds * col_folds
    assert int(plan.macs.sum()) == gemm.macs  # every MAC once
    assert int(plan.cycles.sum()) == compute_cycles(gemm, rows, cols, dataflow)
    assert compute_cycles(gemm, rows, cols, dataflow) >= math.ceil(gemm.macs / (rows * cols))  # PE bound
    assert np.all(plan.macs <= rows * cols * plan.cycles)  # utilisation <= 1 per fold
    # an output tile is rewritten once per fold of a dimension it does not depend on (K for ws/is)
    repeats = row_folds if DATAFLOWS[dataflow].rows == "k" else 1
    assert int(plan.operand_elements["output"].sum()) == batch * m * n * repeats


@settings(max_examples=40, deadline=None)
@given(m=dims, n=dims, k=dims, batch=st.integers(1, 3), rows=arrays, cols=arrays,
       dataflow=st.sampled_from(sorted(DATAFLOWS)), cuts=st.lists(st.integers(1, 1000), max_size=4))
def test_every_run_of_overlapped_folds_costs_one_whole_fold_then_the_longer_of_stream_and_r(
        m, n, k, batch, rows, cols, dataflow, cuts):
    gemm = Gemm(m=m, n=n, k=k, batch=batch)
    plan = fold_plan(gemm, rows, cols, dataflow, overlap=True)
    stream = {"m": m, "n": n, "k": k}[DATAFLOWS[dataflow].stream]
    whole = stream + rows + cols - 2 + (rows if dataflow != "os" else 0)  # the module doc's per-fold count
    each = max(stream, rows)
    assert int(plan.cycles.sum()) == whole + (plan.folds - 1) * each
    bounds = sorted({0, plan.folds, *(cut % plan.folds for cut in cuts)})  # contiguous runs, as cores get
    for start, stop in zip(bounds, bounds[1:]):
        run = plan.subset(np.arange(start, stop))
        assert int(run.cycles.sum()) == whole + (stop - start - 1) * each


RESNET50 = Path(__file__).parent / "golden" / "scalesim_resnet50_32x32_os.json"


def test_whole_resnet50_compute_cycles_equal_scalesim_through_the_engine():
    from attentionlite.simulator.accelerator.hardware import load_hardware
    from attentionlite.simulator.accelerator.simulation import simulate
    from attentionlite.simulator.graph.ops import Op, OpKind

    doc = json.loads(RESNET50.read_text())
    ops = [
        Op(layer["layer"]["name"], OpKind.CONV, ((m, k),), (m, n), macs=m * n * k, gemm=Gemm(m=m, n=n, k=k))
        for layer in doc["layers"]
        for m, n, k in [layer["layer"]["gemm_mnk"]]
    ]
    config = load_hardware("paa-default", cores=1, array=(32, 32), dataflow="os")
    rows = simulate(ops, config).rows
    assert [row.compute_cycles - 1 for row in rows] == [layer["compute_cycles"] for layer in doc["layers"]]
