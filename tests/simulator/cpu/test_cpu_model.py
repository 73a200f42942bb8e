"""The CPU roofline on hand-made ops whose answer is known by hand."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hand_ops import attention_ops, conv_op, elementwise_op  # pytest puts tests/ on sys.path

from attentionlite.simulator.cpu.config import FACTOR_KEYS, CacheLevel, ComputeConfig, CpuConfig, DramConfig
from attentionlite.simulator.cpu.roofline import compute_seconds, factor_key, predict, predict_op
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

GB = 1e9


def toy_cpu(**changes) -> CpuConfig:
    """1 core at 1 GHz, 4 lanes, 1 FMA pipe: 8 GFLOP/s peak, 4 G element-ops/s; round bandwidths (L1 100, L2 20, DRAM 10 GB/s).

    ``changes`` name fields of the config or of its ``[compute]`` table.
    """
    compute = ComputeConfig(cores=1, frequency_ghz=1.0, simd_lanes=4, fma_units=1, register_kib=1.0, word_bytes=4)
    compute_changes = {key: changes.pop(key) for key in list(changes) if hasattr(compute, key)}
    cpu = CpuConfig(
        name="toy",
        description="hand-checkable",
        sources=(),
        compute=replace(compute, **compute_changes),
        cache=(CacheLevel("L1", 32.0, 100.0, False), CacheLevel("L2", 1024.0, 20.0, False)),
        dram=DramConfig(bandwidth_gb_s=10.0),
        efficiency={key: 1.0 for key in FACTOR_KEYS},
        overhead_us={key: 0.0 for key in FACTOR_KEYS},
    )
    return replace(cpu, **changes)


def square_gemm(size: int) -> Op:
    """A LINEAR op (size x size) @ (size x size) with size x size weights."""
    gemm = Gemm(m=size, n=size, k=size)
    shape = (size, size)
    return Op("gemm", OpKind.LINEAR, (shape,), shape, macs=gemm.macs, gemm=gemm,
              weight_params=size * size, weight_nonzero=size * size)


def test_peaks_follow_the_core_arithmetic():
    cpu = toy_cpu(cores=2, simd_lanes=16, fma_units=2, frequency_ghz=2.0)
    assert cpu.peak_flops == pytest.approx(2 * 2e9 * 16 * 2 * 2)
    assert cpu.peak_vector_ops == pytest.approx(2 * 2e9 * 16 * 2)


def test_compute_bound_gemm_takes_flops_over_peak():
    op = square_gemm(64)  # 48 KiB of tensors: fits L2, so its DRAM share is zero
    row = predict_op(op, toy_cpu(efficiency={key: 0.5 for key in FACTOR_KEYS}))
    assert row.bound == "compute"
    assert row.seconds == pytest.approx(2 * 64**3 / (8e9 * 0.5))
    assert row.bytes_per_level["DRAM"] == 0


def test_streaming_add_too_big_for_caches_is_dram_bound():
    shape = (1, 1024, 32, 32)  # 4 MiB per tensor: beyond the 1 MiB L2
    op = elementwise_op(OpKind.ADD, shape, operands=2)
    row = predict_op(op, toy_cpu())
    tensor_bytes = 4 * 4 * 1024 * 32 * 32  # two inputs read; the output read for ownership and written
    assert row.bound == "dram"
    assert row.bytes_per_level["DRAM"] == tensor_bytes
    assert row.seconds == pytest.approx(tensor_bytes / (10 * GB))


def test_in_place_relu_writes_back_without_reading_for_ownership():
    shape = (1, 1024, 32, 32)  # 4 MiB: beyond the 1 MiB L2
    out_of_place, in_place = elementwise_op(OpKind.ACT, shape), elementwise_op(OpKind.ACT, shape, in_place=True)
    tensor = 4 * 1024 * 32 * 32
    assert predict_op(out_of_place, toy_cpu()).bytes_per_level["DRAM"] == 3 * tensor  # read, own, write
    assert predict_op(in_place, toy_cpu()).bytes_per_level["DRAM"] == 2 * tensor  # read, write back


def test_in_place_relu_whose_input_alone_fits_l2_stays_in_l2():
    shape = (1, 192, 32, 32)  # 768 KiB: input alone fits the 1 MiB L2, input plus a separate output does not
    out_of_place, in_place = elementwise_op(OpKind.ACT, shape), elementwise_op(OpKind.ACT, shape, in_place=True)
    tensor = 4 * 192 * 32 * 32
    assert predict_op(out_of_place, toy_cpu()).bytes_per_level["DRAM"] == 3 * tensor
    row = predict_op(in_place, toy_cpu())
    assert row.bytes_per_level["DRAM"] == 0
    assert row.seconds == pytest.approx(2 * tensor / (20 * GB))  # read and written back at L2 speed


def test_add_that_fits_l2_is_served_by_l2_not_dram():
    shape = (1, 16, 32, 32)  # 64 KiB per tensor: beyond L1, inside L2
    row = predict_op(elementwise_op(OpKind.ADD, shape, operands=2), toy_cpu())
    assert row.bytes_per_level["DRAM"] == 0
    assert row.limiting_level == "L2"
    assert row.bound == "cache"
    assert row.seconds == pytest.approx(4 * 64 * 1024 / (20 * GB))  # 2 inputs + output twice


def test_gemm_that_overflows_the_cache_reads_operands_once_per_tile():
    size = 1024  # 4 MiB per operand; L2 holds 1 MiB, so DRAM supplies tiles of sqrt(1 MiB / 12 B) ~ 295
    row = predict_op(square_gemm(size), toy_cpu())
    passes = -(-size // int((1024 * 1024 / 12) ** 0.5))
    operand = 4 * size * size
    assert row.bytes_per_level["DRAM"] == pytest.approx(2 * operand * passes + 2 * operand, rel=0.01)
    assert row.bytes_per_level["DRAM"] > 4 * operand  # more than moving every tensor once


def test_window_ops_restream_inputs_per_position_only_when_they_do_not_fit():
    fits, _, _ = attention_ops(batch=1, channels=8, size=16)  # 16 KiB of inputs: fit the 32 KiB L1
    spills, _, _ = attention_ops(batch=1, channels=64, size=32)  # 512 KiB of inputs: beyond L1
    cpu = toy_cpu()
    assert predict_op(fits, cpu).bytes_per_level["L2"] == fits.input_bytes(4) + 2 * fits.output_bytes(4)
    expected = 49 * spills.input_bytes(4) + 2 * spills.output_bytes(4)  # logits: written once, slice by slice
    assert predict_op(spills, cpu).bytes_per_level["L2"] == expected


def test_window_op_overhead_counts_one_launch_per_window_position():
    logits, softmax, _ = attention_ops(batch=1, channels=8, size=4)
    cpu = toy_cpu(overhead_us={key: 2.0 for key in FACTOR_KEYS})
    assert predict_op(logits, cpu).overhead_s == pytest.approx(49 * 2e-6)
    assert predict_op(softmax, cpu).overhead_s == pytest.approx(2e-6)


def test_convolutions_wider_than_1x1_are_priced_by_their_own_factors():
    cpu = toy_cpu(efficiency={**toy_cpu().efficiency, "conv": 0.5, "conv_spatial": 0.25})
    pointwise, spatial = conv_op(1, 8, 4, 8, 1), conv_op(1, 8, 4, 8, 3)
    assert (factor_key(pointwise), factor_key(spatial)) == ("conv", "conv_spatial")
    assert compute_seconds(pointwise, cpu) == pytest.approx(2 * pointwise.macs / (8e9 * 0.5))
    assert compute_seconds(spatial, cpu) == pytest.approx(2 * spatial.macs / (8e9 * 0.25))
    assert factor_key(conv_op(1, 8, 4, 8, 1, kind=OpKind.PROJECTION)) == "projection"


def test_window_ops_on_maps_narrower_than_a_vector_leave_lanes_idle():
    cpu = toy_cpu()  # 4 lanes, 8 GFLOP/s peak
    for size, filled in ((2, 0.5), (4, 1.0), (6, 0.75)):  # 6 floats a row fill 2 vectors of 4 lanes: 6/8
        _, _, weighted = attention_ops(batch=1, channels=8, size=size, kernel=3, heads=2)
        assert compute_seconds(weighted, cpu) == pytest.approx(2 * weighted.macs / (8e9 * filled))
    conv = conv_op(1, 8, 2, 8, 3)  # contiguous: no lane penalty whatever the map width
    assert compute_seconds(conv, cpu) == pytest.approx(2 * conv.macs / 8e9)


@pytest.mark.parametrize(
    "faster",
    [
        {"dram": DramConfig(bandwidth_gb_s=20.0)},
        {"cores": 2},
        {"frequency_ghz": 2.0},
        {"cache": (CacheLevel("L1", 32.0, 200.0, False), CacheLevel("L2", 1024.0, 20.0, False))},
        {"cache": (CacheLevel("L1", 32.0, 100.0, False), CacheLevel("L2", 4096.0, 20.0, False))},
    ],
)
def test_more_bandwidth_cores_or_cache_is_never_slower(faster):
    ops = [square_gemm(n) for n in (16, 256, 1024)] + list(attention_ops(2, 64, 32))
    ops += [conv_op(1, 64, 32, 64, 3), elementwise_op(OpKind.ACT, (8, 256, 32, 32))]
    for op in ops:
        assert predict_op(op, toy_cpu(**faster)).seconds <= predict_op(op, toy_cpu()).seconds


def test_bytes_moved_at_least_the_tensors_once():
    for op in [square_gemm(512), conv_op(4, 64, 32, 64, 3), *attention_ops(1, 64, 16)]:
        row = predict_op(op, toy_cpu())
        tensors = op.input_bytes(4) + op.output_bytes(4) + op.weight_bytes(4)
        assert row.bytes_per_level["L1"] >= tensors


def test_predict_sums_ops_and_writes_csv_and_summary(tmp_path):
    ops = [square_gemm(64), elementwise_op(OpKind.ACT, (1, 16, 32, 32))]
    result = predict(ops, toy_cpu(), batch=4)
    assert result.latency_s == pytest.approx(sum(predict_op(op, toy_cpu(), 64 * 64 * 4).seconds for op in ops))
    assert result.throughput == pytest.approx(4 / result.latency_s)
    result.write(tmp_path / "out")
    header = (tmp_path / "out" / "ops.csv").read_text().splitlines()[0].split(",")
    assert {"name", "kind", "seconds", "bound", "arithmetic_intensity", "bytes_DRAM", "bytes_L1"} <= set(header)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["latency_s"] == pytest.approx(result.latency_s)
    assert summary["cpu"]["compute"]["cores"] == 1
    assert "git_revision" in summary["provenance"]


def test_a_fresh_output_of_32_mib_or_more_pays_its_first_touch():
    # ReLU on 8M float32 words = 32 MiB: at 2 GB/s of page faults its first write adds 2**25 / 2e9 s.
    cpu = toy_cpu(dram=DramConfig(bandwidth_gb_s=10.0, first_touch_gb_s=2.0, fresh_output_mib=32.0))
    untouched = toy_cpu()  # the default rate, 1e6 GB/s: 34 ns for these 32 MiB
    big = elementwise_op(OpKind.ACT, (8, 1024, 1024))
    extra = predict_op(big, cpu).seconds - predict_op(big, untouched).seconds
    assert extra == pytest.approx(2**25 / 2e9 - 2**25 / 1e15, rel=1e-9)
    assert predict_op(big, cpu).overhead_s == pytest.approx(2**25 / 2e9)
    # One word less than the threshold stays on the allocator's heap; an in-place op writes mapped memory.
    small = elementwise_op(OpKind.ACT, (8 * 1024 * 1024 - 1,))
    in_place = elementwise_op(OpKind.ACT, (8, 1024, 1024), in_place=True)
    for op in (small, in_place):
        assert predict_op(op, cpu).seconds == predict_op(op, untouched).seconds
