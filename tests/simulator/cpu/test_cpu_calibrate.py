"""Calibration's fit recovers known factors; measurement groups ops by module; the CLI's cpu command."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner
from hand_ops import attention_ops, conv_op, elementwise_op  # pytest puts tests/ on sys.path (no __init__.py)
from test_cpu_model import toy_cpu

from attentionlite.cli import main
from attentionlite.simulator.cpu.calibrate import TimedUnit, fit_kind_factors
from attentionlite.simulator.cpu.config import FACTOR_KEYS
from attentionlite.simulator.cpu.measure import Repeats, _enclosing, measure, median_seconds
from attentionlite.simulator.cpu.roofline import CpuResult, factor_key, predict_op
from attentionlite.simulator.graph.formats import save_graph
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import OpKind


def test_fit_recovers_the_efficiency_and_overhead_that_made_the_times():
    truth = toy_cpu(
        efficiency={**toy_cpu().efficiency, "conv": 0.3, "conv_spatial": 0.4, "window_logits": 0.02},
        overhead_us={**toy_cpu().overhead_us, "conv": 5.0, "conv_spatial": 7.0, "window_logits": 3.0},
    )
    spatial = [conv_op(batch, 16, size, 32, 3) for batch in (1, 4) for size in (4, 8, 16, 32)]
    pointwise = [conv_op(batch, 64, size, 32, 1) for batch in (1, 4) for size in (4, 8, 16, 32)]
    logits = [attention_ops(batch, 16, size)[0] for batch in (1, 4) for size in (4, 8, 16)]
    groups = [(op,) for op in spatial + pointwise + logits] + [tuple(spatial[:3])]  # one unit timed three convolutions
    weights = 1e6  # bytes of weights in the network the units ran in
    units = [TimedUnit(ops, sum(predict_op(op, truth, weights).seconds for op in ops), weights) for ops in groups]
    fitted = fit_kind_factors(toy_cpu(), units)
    for key in ("conv", "conv_spatial", "window_logits"):
        assert fitted.efficiency[key] == pytest.approx(truth.efficiency[key], rel=0.02), key
        assert fitted.overhead_us[key] == pytest.approx(truth.overhead_us[key], rel=0.05), key
    assert fitted.efficiency["add"] == toy_cpu().efficiency["add"]  # not timed: kept


def test_fit_skips_units_that_mix_kinds_or_timed_nothing():
    conv, relu = conv_op(1, 16, 8, 16, 3), elementwise_op(OpKind.ACT, (1, 16, 8, 8))
    units = [TimedUnit((conv, relu), 1e-3, 0.0), TimedUnit((relu,), 0.0, 0.0)]
    assert fit_kind_factors(toy_cpu(), units) == toy_cpu()


def test_median_seconds_ignores_one_slow_outlier():
    delays = iter([0.0] * 2 + [0.0, 0.0, 0.05, 0.0, 0.0])
    seconds = median_seconds(lambda: _sleep(next(delays)), Repeats(warmup=2, timed=5))  # wall clock: sleeping uses no CPU time
    assert seconds < 0.01


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def test_ops_from_functions_count_toward_the_enclosing_module():
    modules = {"", "layer1", "layer1.0", "layer1.0.conv1"}
    assert _enclosing("layer1.0.conv1", modules) == "layer1.0.conv1"
    assert _enclosing("layer1.0.add", modules) == "layer1.0"
    assert _enclosing("", modules) == ""


def test_measure_times_each_source_module_and_the_whole_model():
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU())
    conv = replace(conv_op(1, 3, 8, 8, 3), source="0")
    relu = replace(elementwise_op(OpKind.ACT, (1, 8, 8, 8)), source="1")
    cpu = toy_cpu()
    result = CpuResult(cpu=cpu, batch=1, rows=(predict_op(conv, cpu), predict_op(relu, cpu)))
    measurement = measure(model, result, (1, 3, 8, 8), quick=True)
    assert [row.module for row in measurement.modules] == ["0", "1"]
    assert [row.kinds for row in measurement.modules] == ["conv", "act"]
    assert all(row.measured_s >= 0 for row in measurement.modules)
    assert measurement.measured_s > 0
    assert measurement.predicted_s == pytest.approx(result.latency_s)


def test_measure_times_the_attention_softmax_and_weighted_sum_apart_from_their_layer():
    from torch import nn

    from attentionlite.model.nets.layers import LocalSelfAttention
    from attentionlite.simulator.cpu.roofline import predict
    from attentionlite.simulator.graph.tracing import trace_model

    model = nn.Sequential(nn.Conv2d(3, 16, 1, bias=False), LocalSelfAttention(16, 16, kernel_size=3, heads=2))
    measurement = measure(model, predict(trace_model(model, image_size=8), toy_cpu()), (1, 3, 8, 8), quick=True)
    kinds = {row.module: row.kinds for row in measurement.modules}
    assert kinds == {"0": "conv", "1.query": "projection", "1.key": "projection", "1.value": "projection",
                     "1": "window_logits", "1.softmax": "softmax", "1.weighted_sum": "weighted_sum"}
    assert all(row.measured_s > 0 for row in measurement.modules)


def _saved_graph(tmp_path):
    graph = OpGraph({"batch": 2, "model": "hand-made"})
    graph.add_op(conv_op(2, 16, 8, 16, 3))
    graph.add_op(elementwise_op(OpKind.ACT, (2, 16, 8, 8)))
    return save_graph(graph, tmp_path / "graph.json")


def test_cpu_command_predicts_a_saved_graph_and_writes_results(tmp_path):
    path = _saved_graph(tmp_path)
    out = tmp_path / "cpu"
    run = CliRunner().invoke(main, ["cpu", str(path), "--cpu", "cpu-xeon-8380", "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "latency" in run.output and "conv3x3" in run.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["batch"] == 2 and summary["ops"] == 2
    assert len((out / "ops.csv").read_text().splitlines()) == 3


def test_cpu_command_bad_input_is_one_line_and_writes_nothing(tmp_path):
    path = _saved_graph(tmp_path)
    out = tmp_path / "cpu"
    run = CliRunner().invoke(main, ["cpu", str(path), "--cpu", "cpu-nonesuch", "--out", str(out)])
    assert run.exit_code == 2
    assert "unknown CPU preset 'cpu-nonesuch'" in run.output
    assert not out.exists()
    run = CliRunner().invoke(main, ["cpu", str(path), "--cpu", "cpu-xeon-8380", "--batch", "3"])
    assert run.exit_code == 2 and "batch 2" in run.output


def test_calibrate_refuses_a_thread_count_below_one_and_writes_nothing(tmp_path):
    out = tmp_path / "host.toml"
    for threads in ("0", "-2"):
        run = CliRunner().invoke(main, ["calibrate", "--threads", threads, "--out", str(out)])
        assert run.exit_code == 2 and "--threads" in run.output
    assert not out.exists()


def test_predicting_a_saved_graph_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    path = _saved_graph(tmp_path)
    script = (
        "import sys\n"
        "from attentionlite.cli import main\n"
        f"main(['cpu', {str(path)!r}, '--cpu', 'cpu-host-default'], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_calibration_attention_ops_are_counted_as_the_tracer_counts_them():
    from torch import nn

    from attentionlite.model.nets.layers import LocalSelfAttention
    from attentionlite.simulator.graph.tracing import trace_model

    model = nn.Sequential(nn.Conv2d(3, 16, 1, bias=False), LocalSelfAttention(16, 16, kernel_size=3, heads=2))
    traced = {op.kind: op for op in trace_model(model, image_size=8).ops_in_order()}
    for made in attention_ops(batch=1, channels=16, size=8, kernel=3, heads=2):
        twin = traced[made.kind]
        assert (made.macs, made.vector_ops, made.window) == (twin.macs, twin.vector_ops, twin.window)
        assert (made.input_shapes, made.output_shape) == (twin.input_shapes, twin.output_shape)


def test_calibration_networks_time_every_kind_each_unit_alone():
    """Each unit of the calibration networks timed ops priced by one factor entry, and together they time every entry."""
    import torch

    from attentionlite.simulator.cpu.calibrate import CALIBRATION_IMAGE_SIZE, calibration_networks, timed_units
    from attentionlite.simulator.cpu.measure import time_units
    from attentionlite.simulator.graph.tracing import trace_model

    units = []
    for network in calibration_networks(quick=True):
        if network.batch == 1:
            model = network.build().eval()
            ops = trace_model(model, image_size=CALIBRATION_IMAGE_SIZE).ops_in_order()
            with torch.inference_mode():
                times = time_units(model, torch.zeros(1, 3, 32, 32), [op.source for op in ops], Repeats(warmup=0, timed=1))
            units += timed_units(ops, times)
    assert all(len({factor_key(op) for op in unit.ops}) == 1 for unit in units)
    assert {factor_key(unit.ops[0]) for unit in units} == set(FACTOR_KEYS)  # every op kind, 1x1 and 3x3 convs


def test_os_cache_descriptions_parse():
    from attentionlite.simulator.cpu.calibrate import _cpu_list, _size_kib

    assert _size_kib("48K\n") == 48 and _size_kib("105M") == 105 * 1024
    assert _cpu_list("0-1,4\n") == [0, 1, 4]


def test_last_level_holds_what_reads_well_above_dram_speed():
    from attentionlite.simulator.cpu.calibrate import _level_from_sweep
    from attentionlite.simulator.cpu.config import CacheLevel

    l3 = CacheLevel("L3", 100 * 1024.0, 1.0, True)
    sweep = {4 * 2**20: 30e9, 8 * 2**20: 20e9, 32 * 2**20: 5e9}  # bytes read -> bytes/s
    measured = _level_from_sweep(toy_cpu(), l3, sweep, dram=4e9, measure_size=True)
    assert measured.size_kib == 8 * 1024  # 20 GB/s is above sqrt(30 * 4) ~ 11 GB/s; 5 GB/s is not
    assert measured.bandwidth_gb_s == 30.0
    assert _level_from_sweep(toy_cpu(), l3, sweep, dram=4e9, measure_size=False).size_kib == l3.size_kib


def test_cpu_without_a_config_uses_the_hosts_cached_calibration(tmp_path, monkeypatch):
    # The cache holds a known config under this host's name: `cpu` with no --cpu must predict with it,
    # exactly as when it is named, and calibrate nothing.
    from attentionlite.analysis.codesign import host_cpu_cache
    from attentionlite.simulator.cpu.config import load_cpu

    monkeypatch.setenv("ATTENTIONLITE_CACHE", str(tmp_path / "cache"))
    cached = host_cpu_cache()
    cached.parent.mkdir(parents=True)
    cached.write_text(load_cpu("cpu-xeon-8380").to_toml())
    path = _saved_graph(tmp_path)
    default = CliRunner().invoke(main, ["cpu", str(path)])
    named = CliRunner().invoke(main, ["cpu", str(path), "--cpu", "cpu-xeon-8380"])
    assert default.exit_code == named.exit_code == 0, default.output
    assert default.output == named.output
