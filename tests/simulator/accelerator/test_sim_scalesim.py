"""The whole engine against SCALE-Sim 3.0.0's own numbers (golden/scalesim_cycles.json beside this file).

With ideal bandwidth SCALE-Sim reports stall-free compute cycles; the engine's per-op
compute cycles must equal them (plus one: SCALE-Sim prints the last cycle's 0-based index).
With finite bandwidth (USER mode, 4 or 10 words/cycle, each case with its own buffer
sizes) SCALE-Sim prefetches what fits its buffers before computing, and stalls later when
the buffers are small; the engine overlaps every load with compute tile by tile, so its
total must lie between the compute cycles and SCALE-Sim's total including the prefetch.
"""

import json
from pathlib import Path

import pytest

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

GOLDEN = Path(__file__).parent / "golden" / "scalesim_cycles.json"


def _cases(kind: str) -> list[dict]:
    return json.loads(GOLDEN.read_text())[kind]


def _op(case: dict) -> Op:
    m, n, k = case["layer"]["gemm_mnk"]
    return Op(case["layer"]["name"], OpKind.LINEAR, ((m, k),), (m, n), macs=m * n * k, gemm=Gemm(m=m, n=n, k=k),
              weight_params=k * n, weight_nonzero=k * n)


def _sram_kib(case: dict) -> dict:
    """The case's own SRAM sizes (finite-bandwidth rows carry them), else the file's common config."""
    if "sram_kb" in case:
        return case["sram_kb"]
    config = json.loads(GOLDEN.read_text())["config"]
    return {"ifmap": config["ifmap_sram_kb"], "filter": config["filter_sram_kb"], "ofmap": config["ofmap_sram_kb"]}


def _config(case: dict, bandwidth_gb_s: float):
    # SCALE-Sim's words are bytes and its cycles ours at 1 GHz: 1 GB/s = 1 word/cycle; it has no DRAM latency
    sram = _sram_kib(case)
    return load_hardware(
        "paa-default", cores=1, array=(case["array"]["rows"], case["array"]["cols"]), dataflow=case["dataflow"],
        clock_mhz=1000.0, bandwidth_gb_s=bandwidth_gb_s, latency_ns=0.0, input_kib=sram["ifmap"],
        weight_kib=sram["filter"], output_kib=sram["ofmap"],
    )


@pytest.mark.parametrize("case", _cases("cases")[::3], ids=lambda case: case["id"])
def test_engine_compute_cycles_equal_scalesim(case):
    row = simulate([_op(case)], _config(case, bandwidth_gb_s=1e6)).rows[0]
    assert row.compute_cycles - 1 == case["compute_cycles"]


@pytest.mark.parametrize("case", _cases("user_bandwidth_cases"), ids=lambda case: case["id"])
def test_finite_bandwidth_lies_between_compute_and_scalesim_with_prefetch(case):
    totals = simulate([_op(case)], _config(case, bandwidth_gb_s=case["bandwidth_words_per_cycle"])).totals
    assert totals.per_batch.compute_cycles - 1 == case["compute_cycles"]
    assert case["compute_cycles"] < totals.cycles <= case["total_cycles_incl_prefetch"] + 1
    # SCALE-Sim moves padded operand rows and (ws, is) spills partial sums; we move the tensors once
    scalesim_bytes = case["dram_ifmap_reads"] + case["dram_filter_reads"] + case["dram_ofmap_writes"]
    assert totals.per_batch.dram_bytes <= scalesim_bytes
