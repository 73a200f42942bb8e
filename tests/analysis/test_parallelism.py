"""The parallelism study: ceilings and limits derived by hand, exact pipeline cuts, a verdict that follows
its rows, and the classification of networks."""

import math

import pytest

import attentionlite as al
from attentionlite.analysis.parallelism import (
    ceilings,
    check_study,
    claim_sentences,
    network_kind,
    scaling_limits,
    scaling_point,
    scaling_rows,
    stage_plan,
    verdict_rows,
    with_speedups,
)
from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import schedule_and_run
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind, Window

SHAPE = (1, 16, 8, 8)


def _conv(name: str, channels: int = 16, kernel: int = 1) -> Op:
    gemm = Gemm(m=64, n=channels, k=channels * kernel * kernel)
    return Op(name, OpKind.CONV, (SHAPE,), SHAPE, macs=gemm.macs, gemm=gemm, weight_params=gemm.n * gemm.k,
              weight_nonzero=gemm.n * gemm.k, attrs=(("kernel_h", kernel), ("kernel_w", kernel)))


def _chain(ops: list[Op]) -> OpGraph:
    graph = OpGraph({"batch": 1})
    for index, op in enumerate(ops):
        graph.add_op(op, [(ops[index - 1].name, SHAPE)] if index else [])
    return graph


def _logits(name: str) -> Op:
    window = Window(images=1, height=8, width=8, kernel=3, heads=2, head_channels=8)
    return Op(name, OpKind.WINDOW_LOGITS, (SHAPE,), (1, 2, 9, 64), macs=64 * 9 * 16, window=window)


# ----------------------------------------------------------------------------- by hand


def test_ceilings_of_one_gemm_by_hand():
    # One 1x1 conv: M = 64 pixels, N = K = 16 channels, int8, on one 32x32 os core at 1 GHz, 25.6 GB/s.
    # Array: ceil(64/32) * ceil(16/32) = 2 folds of T + R + C - 2 = 16 + 32 + 32 - 2 = 78 cycles = 156.
    # DRAM: input 64*16 + weights 16*16 + output 64*16 = 2304 bytes at 25.6 bytes/cycle = 90 cycles.
    config = load_hardware("paa-default", cores=1)
    bounds = ceilings(schedule_and_run(_chain([_conv("c")]), config, "data"), config)
    assert (bounds.array, bounds.dram, bounds.spread) == (156, 2304 / 25.6, 156)
    # Two cores, one image each: two images in 156 cycles of compute, 78 per image; the channel moves
    # both images' bytes, 2 x 2304, at 25.6 bytes/cycle: still 90 cycles per image.
    two = load_hardware("paa-default", cores=2)
    bounds = ceilings(schedule_and_run(_chain([_conv("c")]), two, "data"), two)
    assert (bounds.array, bounds.dram, bounds.spread) == (78, 90, 78)


def test_the_lower_ceiling_names_the_limit():
    gemm = _chain([_conv("c")])
    starved = load_hardware("paa-default", cores=1, bandwidth_gb_s=1.0)  # 1 byte/cycle: 2304 cycles of DRAM
    assert scaling_point("m", "convolutional", gemm, starved, "data")["limit"] == "DRAM bandwidth"
    fast = load_hardware("paa-default", cores=1, bandwidth_gb_s=1e4)
    point = scaling_point("m", "convolutional", gemm, fast, "data")
    assert point["limit"] == "compute"
    assert point["array_ceiling"] == pytest.approx(1e9 / 156)


def test_a_pipeline_with_one_heavy_op_is_limited_by_its_stage():
    # 3 ops of 156 cycles and one of 16x the channels' K (K = 144 for a 3x3 conv: 2 folds of 144 + 62 = 412):
    # on 4 cores the heavy op is a stage of its own and bounds the pipeline above the perfect spread.
    graph = _chain([_conv("a"), _conv("b"), _conv("heavy", kernel=3), _conv("d")])
    config = load_hardware("paa-default", cores=4, bandwidth_gb_s=1e4)
    plan = stage_plan("m", graph, config)
    assert plan.stage_cycles == [156, 156, 412, 156]
    assert plan.imbalance == pytest.approx(412 * 4 / (3 * 156 + 412))
    assert scaling_point("m", "hybrid", graph, config, "pipeline")["limit"] == "stage imbalance"


def test_stage_plan_counts_the_activations_handed_between_stages():
    # 4 identical ops on 2 stages: the cut is after op b, which hands its 16x8x8 int8 map (1024 bytes) on.
    graph = _chain([_conv(name) for name in "abcd"])
    plan = stage_plan("m", graph, load_hardware("paa-default", cores=2))
    assert plan.first_op == ("a", "c")
    assert plan.handed_on_bytes == (1024, 0)
    assert plan.cycles[0]["convolution"] == 2 * 156 and plan.bubble_share == 0


def test_identical_layers_pipeline_with_full_efficiency():
    graph = _chain([_conv(f"c{i}") for i in range(8)])
    config = load_hardware("paa-default", bandwidth_gb_s=1e4, latency_ns=0.0)
    rows = scaling_rows({"m": graph}, config, core_counts=(1, 2, 4, 8), schedules=("pipeline",))
    assert [round(r["efficiency"], 6) for r in rows] == [1.0, 1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- rows to conclusions


def _row(model: str, network: str, schedule: str, cores: int, throughput: float, limit: str = "compute",
         energy: float = 1.0) -> dict:
    return {"model": model, "network": network, "accelerator": "hw", "schedule": schedule, "cores": cores,
            "throughput": throughput, "latency_s": cores / throughput, "energy_per_image_j": energy, "limit": limit}


def test_speedup_and_efficiency_are_over_the_fewest_cores():
    rows = with_speedups([_row("m", "hybrid", "data", 2, 100.0), _row("m", "hybrid", "data", 8, 300.0)])
    assert rows[1]["speedup"] == 3.0 and rows[1]["efficiency"] == 0.75  # 3x for 4x the cores


def test_scaling_stops_at_the_first_step_that_buys_under_ten_percent():
    rows = with_speedups([_row("m", "hybrid", "data", 1, 100.0), _row("m", "hybrid", "data", 2, 190.0),
                          _row("m", "hybrid", "data", 4, 205.0, "DRAM bandwidth"),  # +7.9%: stops here
                          _row("m", "hybrid", "data", 8, 400.0)])
    (limit,) = scaling_limits(rows)
    assert (limit["scales_to"], limit["stopped_by"], limit["best_throughput"]) == (2, "DRAM bandwidth", 400.0)


def _three(cores: int, homogeneous: float, efficiency_gap: float = 0.0) -> list[dict]:
    rows = [_row("teacher", "convolutional", "data", cores, 100.0, energy=3.0),
            _row("hyb", "hybrid", "data", cores, 200.0, energy=1.0),
            _row("hom", "homogeneous", "data", cores, homogeneous, energy=1.5)]
    for row, efficiency in zip(rows, (0.5, 0.6, 0.6 + efficiency_gap)):
        row["efficiency"] = efficiency
    return rows


def test_the_verdict_follows_the_rows():
    (before,) = verdict_rows(_three(4, 180.0))
    assert before["throughput_winner"] == "hyb" and before["throughput_margin"] == pytest.approx(200 / 180)
    assert before["energy_per_image_j_winner"] == "hyb" and before["energy_per_image_j_margin"] == 1.5
    assert before["throughput_homogeneous_vs_hybrid"] == pytest.approx(0.9)
    (after,) = verdict_rows(_three(4, 250.0, efficiency_gap=0.1))  # the homogeneous row changed
    assert after["throughput_winner"] == "hom" and after["throughput_margin"] == pytest.approx(1.25)
    assert after["latency_s_winner"] == "hom"
    assert after["efficiency_homogeneous_minus_hybrid"] == pytest.approx(0.1)
    assert before["throughput_best_student_vs_teacher"] == 2.0 and after["throughput_best_student_vs_teacher"] == 2.5
    assert before["energy_per_image_j_best_student_vs_teacher"] == 3.0  # the hybrid's 1.0 against the teacher's 3.0
    claims = claim_sentences([before, after], [])
    assert claims[1] == "The best student's throughput over the teacher's: 2.00-2.50x over all 2 points."
    claim = claims[0]
    assert claim.startswith("Of 2 multi-core points,")
    assert "higher than the hybrid's by more than 0.01 at 1 of them, within 0.01 at 1 of them and lower at none" in claim
    assert "more than 1% higher at 1 of them, within 1% at none and lower at 1 of them" in claim


def test_network_kinds():
    assert network_kind(_chain([_conv("a", kernel=3), _conv("b")])) == "convolutional"
    assert network_kind(_chain([_conv("stem", kernel=3), _logits("attn")])) == "hybrid"
    assert network_kind(_chain([_conv("a"), _logits("attn")])) == "homogeneous"  # 1x1 convs are GEMMs
    # a ViT's patch embedding is a spatial convolution, yet it is no hybrid SASA net: its own kind
    assert network_kind(al.trace("vit_tiny")) == "transformer"


@pytest.mark.parametrize("counts, schedules", [((), ("data",)), ((0, 2), ("data",)), ((1,), ("bogus",)),
                                               ((1,), ())])
def test_bad_study_settings_are_refused(counts, schedules):
    with pytest.raises(InputError, match="expected"):
        check_study(counts, schedules)


def test_energy_margin_is_a_ratio_not_a_difference():
    rows = _three(2, 180.0)
    (verdict,) = verdict_rows(rows)
    assert verdict["energy_per_image_j_homogeneous_vs_hybrid"] == pytest.approx(1 / 1.5)
    assert not math.isinf(verdict["latency_s_margin"])
