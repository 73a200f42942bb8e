"""The comparison on a tiny graph and a tiny array, where every number can be worked out by hand.

Hardware: one 4x4 output-stationary core, ample DRAM bandwidth (a transfer of
these few bytes takes one cycle), no DRAM latency, no leakage.  A GEMM of
M=8, N=8, K=16 is 2 x 2 = 4 folds of K + R + C - 2 = 16 + 4 + 4 - 2 = 22
cycles: 88 compute cycles.  It moves A (8x16) + B (16x8) = 256 bytes in and
C (8x8) = 64 bytes out.  SRAM: the array reads A once per column fold (256 B)
and B once per row fold (256 B) and writes C (64 B); the DRAM fills write A
and B into their buffers (256 B) and the drain reads C out (64 B): 896 bytes,
each buffer a 32 KiB bank (half of 64 KiB) at 1.25 * sqrt(32 / 8) = 2.5 pJ/B.
Energy: 1024 MACs x 0.23 pJ + 896 x 2.5 pJ + 320 DRAM bytes x 160 pJ
= 53675.52 pJ.

The teacher runs that GEMM as two convolutions in a row; the second reads the
first's output back from DRAM (the shapes differ, so nothing is handed over on
chip), so its loads wait for the first's last store: one cycle to load, 88 of
compute, one to store, one to load again, 88, one to store: 180 cycles.  The
student runs it once as a projection: 1 + 88 + 1 = 90 cycles.
"""

import pytest

from attentionlite.analysis.compare import GROUPS, compare
from attentionlite.analysis.tables import comparison_text
from attentionlite.simulator.accelerator.hardware import HardwareConfig, load_hardware
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

GEMM_PJ = 1024 * 0.23 + 896 * 2.5 + 320 * 160.0
TINY_TOML = """
name = "tiny"
description = "cores of 4x4 PEs, ample DRAM bandwidth, no latency, no leakage"
cores = {cores}
clock_mhz = 1000.0
word_bytes = 1
[array]
rows = 4
cols = 4
dataflow = "os"
[vector]
lanes = 4
[sram]
input_kib = 64
weight_kib = 64
output_kib = 64
[dram]
bandwidth_gb_s = 1000000.0
latency_ns = 0.0
[energy]
leakage_mw_per_core = 0.0
"""


def tiny_hardware(tmp_path, cores: int = 1) -> HardwareConfig:
    path = tmp_path / f"tiny{cores}.toml"
    path.write_text(TINY_TOML.format(cores=cores))
    return load_hardware(path)


def gemm_op(name: str, kind: OpKind, m: int = 8, n: int = 8, k: int = 16) -> Op:
    return Op(name=name, kind=kind, input_shapes=((1, k, m, 1),), output_shape=(1, n, m, 1), macs=m * n * k,
              gemm=Gemm(m, n, k), weight_params=n * k, weight_nonzero=n * k)


def chain(*ops: Op) -> OpGraph:
    """Ops in a row, each reading the previous one's output."""
    graph = OpGraph({"model": "hand", "batch": 1})
    for previous, op in zip((None,) + ops[:-1], ops):
        graph.add_op(op, [(previous.name, op.input_shapes[0])] if previous else [])
    return graph


def hand_graphs() -> dict[str, OpGraph]:
    return {
        "teacher": chain(gemm_op("conv1", OpKind.CONV), gemm_op("conv2", OpKind.CONV)),
        "student": chain(gemm_op("query", OpKind.PROJECTION)),
    }


@pytest.fixture
def compared(tmp_path):
    return compare(hand_graphs(), tiny_hardware(tmp_path), cpu_latencies={"teacher": 1.8e-6, "student": 9e-6})


def test_totals_by_hand(compared):
    teacher, student = compared[0]
    assert (teacher["cycles"], student["cycles"]) == (180, 90)
    assert student["latency_s"] == pytest.approx(90e-9)
    assert student["energy_per_image_j"] == pytest.approx(GEMM_PJ * 1e-12)
    assert teacher["dram_bytes_per_image"] == 640 and student["dram_bytes_per_image"] == 320
    assert student["utilisation"] == pytest.approx(1024 / (16 * 90))
    assert student["pes"] == 16


def test_ratios_by_hand(compared):
    teacher, student = compared[0]
    assert teacher["speedup_vs_teacher"] == teacher["energy_saving_vs_teacher"] == 1.0
    assert student["speedup_vs_teacher"] == pytest.approx(180 / 90)
    assert student["energy_saving_vs_teacher"] == pytest.approx(2.0)
    assert student["edp_gain_vs_teacher"] == pytest.approx(2.0 * 180 / 90)
    assert teacher["speedup_vs_cpu"] == pytest.approx(10.0)
    assert student["speedup_vs_cpu"] == pytest.approx(100.0)


def test_kind_breakdown_by_hand(compared):
    breakdown = {(r["model"], r["group"]): r for r in compared[1]}
    assert [r["group"] for r in compared[1][:len(GROUPS)]] == list(GROUPS)
    conv = breakdown["teacher", "convolution"]
    # busy cycles: 88 + 1 stall waiting for the first tile, then 88 + 2 waiting for the store and the load
    assert (conv["busy_cycles"], conv["share"], conv["macs"]) == (179, 1.0, 2048)
    assert conv["utilisation"] == pytest.approx(2048 / (16 * 179))
    assert breakdown["student", "projections"]["share"] == 1.0
    assert breakdown["student", "convolution"]["busy_cycles"] == 0
    assert sum(r["share"] for r in compared[1] if r["model"] == "student") == pytest.approx(1.0)


def test_energy_and_traffic_are_per_image_when_cores_run_images_in_parallel(tmp_path):
    rows, _ = compare({"student": chain(gemm_op("query", OpKind.PROJECTION))}, tiny_hardware(tmp_path, cores=2))
    assert rows[0]["energy_per_image_j"] == pytest.approx(GEMM_PJ * 1e-12)
    assert rows[0]["dram_bytes_per_image"] == 320
    assert rows[0]["pes"] == 32


def test_comparison_text_shows_every_model_and_group(compared):
    text = comparison_text(*compared)
    assert "teacher" in text and "student" in text and "2.00x" in text
    assert all(group in text for group in GROUPS)
