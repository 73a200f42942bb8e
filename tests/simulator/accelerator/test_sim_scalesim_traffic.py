"""DRAM traffic per operand against SCALE-Sim 3.0.0 with small buffers (golden/scalesim_traffic.json).

Eighteen GEMMs (three shapes x os/ws/is x 16 or 64 KiB per buffer, a 32x32 array,
16 B/cycle, USER bandwidth mode), produced by ``benchmarks/scalesim_traffic.py``.
Both models run the folds in the same order, column fold outer, row fold inner,
so an operand that ignores the column-mapped dimension (os and ws inputs, is
weights) is swept once per column fold unless all of it fits half its buffer.
That closed form is what the simulator must move.  SCALE-Sim moves the same
sweeps plus what its buffer model adds (benchmarks/scalesim_notes.md): operand
blocks padded to whole folds, whole prefetch blocks, and extra laps of its ring
buffer; it writes ws/is partial sums every K fold instead of accumulating them.
So the simulator is never above SCALE-Sim, equal to it where none of that
applies, and SCALE-Sim is bounded by one lap per fold boundary.
"""

import json
import math
from pathlib import Path

import pytest

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

GOLDEN = Path(__file__).parent / "golden" / "scalesim_traffic.json"
CASES = json.loads(GOLDEN.read_text())["cases"]
ROWS = COLS = 32
BANDWIDTH = 16  # bytes (words) per cycle


def simulated_traffic(case: dict):
    layer, sram = case["layer"], case["sram_kib"]
    m, n, k = layer["M"], layer["N"], layer["K"]
    op = Op(layer["name"], OpKind.LINEAR, ((m, k),), (m, n), macs=m * n * k, gemm=Gemm(m=m, n=n, k=k),
            weight_params=k * n, weight_nonzero=k * n)
    config = load_hardware("paa-default", cores=1, array=(ROWS, COLS), dataflow=case["dataflow"], clock_mhz=1000.0,
                           bandwidth_gb_s=float(BANDWIDTH), latency_ns=0.0, input_kib=sram["ifmap"],
                           weight_kib=sram["filter"], output_kib=sram["ofmap"])
    return simulate([op], config).rows[0].traffic


def sweeps(case: dict, operand: str) -> int:
    """How many times the shared loop order reads an operand: once if it fits half its buffer, else
    once per column fold for the operand the column-mapped dimension does not index."""
    m, n, k = (case["layer"][d] for d in "MNK")
    flow = case["dataflow"]
    size = m * k if operand == "ifmap" else k * n
    half = case["sram_kib"][operand] * 1024 // 2
    if size <= half:
        return 1
    if flow == "os" and operand == "filter":  # each column fold's K x 32 slice serves every row fold
        return 1 if k * COLS <= half else math.ceil(m / ROWS)
    reswept = {("os", "ifmap"): math.ceil(n / COLS), ("ws", "ifmap"): math.ceil(n / COLS),
               ("is", "filter"): math.ceil(m / COLS)}
    return reswept.get((flow, operand), 1)  # ws weights and is inputs: each fold reads its own block


def padded_elements(case: dict, operand: str) -> int:
    """SCALE-Sim's fetch of an operand: blocks padded to whole folds of the array."""
    m, n, k = (case["layer"][d] for d in "MNK")
    padded = {("os", "ifmap"): math.ceil(m / ROWS) * ROWS * k, ("os", "filter"): math.ceil(n / COLS) * COLS * k,
              ("ws", "ifmap"): math.ceil(k / ROWS) * ROWS * m, ("ws", "filter"): math.ceil(n / COLS) * COLS * k,
              ("is", "ifmap"): math.ceil(m / COLS) * COLS * k, ("is", "filter"): math.ceil(k / ROWS) * ROWS * n}
    return padded[case["dataflow"], operand]


def folds(case: dict) -> int:
    m, n, k = (case["layer"][d] for d in "MNK")
    rows, cols = {"os": (m, n), "ws": (k, n), "is": (k, m)}[case["dataflow"]]
    return math.ceil(rows / ROWS) * math.ceil(cols / COLS)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["id"])
def test_inputs_and_weights_move_the_sweeps_of_the_shared_loop_order(case):
    traffic = simulated_traffic(case)
    m, n, k = (case["layer"][d] for d in "MNK")
    assert traffic.dram_read_input == sweeps(case, "ifmap") * m * k
    assert traffic.dram_read_weight == sweeps(case, "filter") * k * n
    assert traffic.dram_read_psum == 0 and traffic.dram_write_output == m * n  # accumulated on chip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["id"])
def test_scalesim_moves_at_least_as_much_and_at_most_one_lap_per_fold_more(case):
    traffic = simulated_traffic(case)
    block = case["sram_kib"]["ifmap"] * 1024 // 2  # one prefetch block: half a buffer
    for operand, ours in (("ifmap", traffic.dram_read_input), ("filter", traffic.dram_read_weight)):
        scalesim = case[f"dram_{operand}_reads"]
        assert ours <= scalesim
        assert scalesim <= (sweeps(case, operand) + folds(case)) * padded_elements(case, operand) + 2 * block
        if padded_elements(case, operand) <= block:  # it fits the active half: fetched once, padded
            assert scalesim == BANDWIDTH * math.ceil(padded_elements(case, operand) / BANDWIDTH)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["id"])
def test_scalesim_writes_every_k_folds_partial_sums_under_ws_and_is(case):
    m, n, k = (case["layer"][d] for d in "MNK")
    written = m * n * (1 if case["dataflow"] == "os" else math.ceil(k / ROWS))
    half = case["sram_kib"]["ofmap"] * 1024 // 2
    mid_run_drains = 0 if written <= half else math.ceil(written / half)
    # SCALE-Sim's write buffer also counts the padding of partial lines it flushes: up to bw - 1 per drain
    assert written <= case["dram_ofmap_writes"] <= written + (BANDWIDTH - 1) * mid_run_drains
    assert simulated_traffic(case).dram_write_output <= case["dram_ofmap_writes"]


def test_where_nothing_is_padded_refetched_or_spilled_both_move_the_same_bytes():
    # 256 x 128 x 64 with 64 KiB buffers: every operand fits, the shape is a multiple of the array
    equal = [case for case in CASES if case["id"].startswith("gemm256x128x64") and case["sram_kib"]["ifmap"] == 64]
    assert len(equal) == 3
    for case in equal:
        traffic = simulated_traffic(case)
        assert (traffic.dram_read_input, traffic.dram_read_weight) == (
            case["dram_ifmap_reads"], case["dram_filter_reads"]) == (256 * 64, 64 * 128)
    os_case = next(case for case in equal if case["dataflow"] == "os")
    assert simulated_traffic(os_case).dram_write_output == os_case["dram_ofmap_writes"] == 256 * 128
