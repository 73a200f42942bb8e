"""The event loop: hand-placed tiles, schedules, analytic bounds as properties, byte-identical output."""

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.hardware import list_presets, load_hardware, with_overrides
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

TINY = """
name = "tiny"
description = "4x4 array, 4 bytes per cycle, 10-cycle DRAM latency"
cores = 1
clock_mhz = 1000
word_bytes = 1
[array]
rows = 4
cols = 4
dataflow = "os"
[vector]
lanes = 4
[sram]
input_kib = 4
weight_kib = 4
output_kib = 4
[dram]
bandwidth_gb_s = 4.0
latency_ns = 10
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def linear(name: str, m: int, n: int, k: int, density: float = 1.0) -> Op:
    return Op(
        name, OpKind.LINEAR, ((m, k),), (m, n), macs=m * n * k, gemm=Gemm(m=m, n=n, k=k),
        weight_params=k * n, weight_nonzero=max(1, round(k * n * density)),
    )


def test_one_tile_by_hand(tiny):
    # load 32 B input + 32 B weights at 4 B/cycle: cycles 0-16, data arrives at 26 (latency 10);
    # compute 8 + 4 + 4 - 2 = 14 cycles: 26-40; the 16 B output is stored at 40-44.
    result = simulate([linear("fc", 4, 4, 8)], load_hardware(tiny))
    row = result.rows[0]
    assert (row.start_cycle, row.end_cycle, row.compute_cycles, row.stall_cycles) == (26, 40, 14, 26)
    assert result.totals.cycles == 44
    assert (row.dram_read_bytes, row.dram_write_bytes) == (64, 16)


def test_next_tile_loads_while_this_one_computes(tiny):
    # two row folds; weights (32 B) stay resident. Tile 0 loads 64 B (0-16, arrives 26), tile 1
    # loads its 32 B input right after (16-24, arrives 34) while tile 0 computes 26-40;
    # tile 1 computes 40-54 without a stall; stores at 40-44 and 54-58.
    result = simulate([linear("fc", 8, 4, 8)], load_hardware(tiny))
    row = result.rows[0]
    assert (row.start_cycle, row.end_cycle, row.compute_cycles, row.stall_cycles) == (26, 54, 28, 26)
    assert result.totals.cycles == 58
    assert row.dram_read_bytes == 64 + 32


def test_cores_contend_for_the_channel(tiny):
    # data-parallel on two cores: both want 64 B at cycle 0; the second waits for the first
    result = simulate([linear("fc", 4, 4, 8)], load_hardware(tiny, cores=2))
    row = result.rows[0]
    assert row.cores == "0-1" and row.stall_cycles == 26 + 42  # second core's data arrives at 16+16+10
    assert result.totals.images == 2


def test_schedules_split_pipeline_and_data():
    ops = [linear(f"fc{i}", 256, 128, 256) for i in range(4)]
    config = load_hardware("paa-default", cores=4)
    split = simulate(ops, config, schedule="split")
    data = simulate(ops, config, schedule="data")
    pipeline = simulate(ops, config, schedule="pipeline")
    assert all(row.cores == "0-3" for row in split.rows)
    assert [row.cores for row in pipeline.rows] == ["0", "1", "2", "3"]
    assert split.totals.latency_s < data.totals.latency_s  # one image spread over four cores
    assert data.totals.images == 4 and split.totals.images == 1
    assert pipeline.totals.latency_s > 0 and pipeline.totals.throughput > 0


def test_unknown_schedule_and_sparsity_are_input_errors():
    config = load_hardware("paa-default")
    with pytest.raises(InputError, match="schedule 'rings'"):
        simulate([linear("fc", 4, 4, 4)], config, schedule="rings")
    with pytest.raises(InputError, match="'sparsity.mode' is 'some'"):
        simulate([linear("fc", 4, 4, 4)], with_overrides(config, sparsity="some"))


def test_array_op_without_gemm_is_reported_by_name():
    op = Op("mystery", OpKind.CONV, ((1, 3, 8, 8),), (1, 3, 8, 8))
    with pytest.raises(InputError, match="'mystery'"):
        simulate([op], load_hardware("paa-default"))


def test_same_inputs_same_bytes(tmp_path):
    ops = [linear("a", 100, 72, 200), Op("relu", OpKind.ACT, ((100, 72),), (100, 72), vector_ops=7200), linear("b", 100, 10, 72)]
    config = load_hardware("paa-default")
    first = simulate(ops, config, schedule="split").write(tmp_path / "one")
    second = simulate(ops, config, schedule="split").write(tmp_path / "two")
    for name in ("ops.csv", "summary.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


# ----------------------------------------------------------------------------- properties

gemm_ops = st.lists(
    st.builds(linear, name=st.just("x"), m=st.integers(1, 200), n=st.integers(1, 128), k=st.integers(1, 200)),
    min_size=1, max_size=4,
).map(lambda ops: [replace(op, name=f"op{i}") for i, op in enumerate(ops)])
designs = st.fixed_dictionaries({
    "array": st.tuples(st.integers(1, 32), st.integers(1, 32)),
    "dataflow": st.sampled_from(["os", "ws", "is"]),
    "cores": st.integers(1, 4),
    "bandwidth_gb_s": st.floats(0.5, 200.0),
})
schedules = st.sampled_from(["data", "split", "pipeline"])
PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(ops=gemm_ops, design=designs, schedule=schedules)
def test_bounds_hold(ops, design, schedule):
    config = load_hardware("paa-default", **design)
    result = simulate(ops, config, schedule=schedule)
    totals = result.totals
    assert totals.cycles * config.pes * config.cores >= totals.useful_macs  # cycles >= MACs / (PEs x cores)
    assert 0 < totals.utilisation <= 1
    assert all(0 <= row.utilisation <= 1 for row in result.rows)
    images = totals.images
    compulsory_reads = images * sum(op.input_bytes(1) + op.weight_bytes(1) for op in ops)
    assert totals.dram_read_bytes >= compulsory_reads
    assert totals.dram_write_bytes >= images * sum(op.output_bytes(1) for op in ops)


@PROPERTY
@given(ops=gemm_ops, design=designs, factor=st.floats(1.0, 8.0), schedule=schedules)
def test_more_bandwidth_is_never_slower(ops, design, factor, schedule):
    slow = load_hardware("paa-default", **design)
    fast = load_hardware("paa-default", **{**design, "bandwidth_gb_s": design["bandwidth_gb_s"] * factor})
    assert simulate(ops, fast, schedule=schedule).totals.cycles <= simulate(ops, slow, schedule=schedule).totals.cycles


@PROPERTY
@given(ops=gemm_ops, design=designs, granularity=st.integers(1, 16))
def test_ten_percent_dense_with_skip_never_computes_longer(ops, design, granularity):
    sparse_ops = [replace(op, weight_nonzero=max(1, op.weight_params // 10)) for op in ops]
    config = load_hardware("paa-default", **design, granularity=granularity)
    dense = simulate(ops, with_overrides(config, sparsity="none")).totals
    skipped = simulate(sparse_ops, with_overrides(config, sparsity="skip")).totals
    assert skipped.compute_cycles <= dense.compute_cycles
    assert skipped.skipped_macs >= 0 and skipped.macs <= dense.macs


# ----------------------------------------------------------------------------- reuse across ops


def chain(channels: int):
    """conv -> relu -> conv on an 8x8 map, connected as a graph (each tensor has one consumer)."""
    from attentionlite.simulator.graph.graph import OpGraph

    shape = (1, channels, 8, 8)
    def conv(name):
        return Op(name, OpKind.CONV, (shape,), shape, macs=64 * channels * channels,
                  gemm=Gemm(m=64, n=channels, k=channels), weight_params=channels * channels, weight_nonzero=channels * channels)
    graph = OpGraph({"batch": 1})
    graph.add_op(conv("conv1"))
    graph.add_op(Op("relu", OpKind.ACT, (shape,), shape, vector_ops=64 * channels), [("conv1", shape)])
    graph.add_op(conv("conv2"), [("relu", shape)])
    return graph


def test_a_tensor_that_fits_is_handed_to_the_next_op_on_chip():
    config = load_hardware("paa-default", cores=1)  # 64 KiB half buffers; the 8x8x16 map is 1 KiB
    rows = {row.name: row for row in simulate(chain(16), config).rows}
    assert rows["conv1"].dram_write_bytes == 0 and rows["relu"].dram_read_bytes == 0
    assert rows["relu"].dram_write_bytes == 0 and rows["conv2"].dram_read_bytes == 16 * 16  # weights only
    assert rows["conv2"].dram_write_bytes == 64 * 16  # the network's output leaves the chip


def test_no_on_chip_hand_over_when_it_does_not_fit_or_cores_split_tensors():
    small_buffers = load_hardware("paa-default", cores=1, input_kib=2, output_kib=2)  # 1 KiB halves
    rows = {row.name: row for row in simulate(chain(32), small_buffers).rows}  # a 2 KiB map
    assert rows["relu"].dram_read_bytes == 64 * 32
    split = {row.name: row for row in simulate(chain(16), load_hardware("paa-default"), schedule="split").rows}
    assert split["relu"].dram_read_bytes == 64 * 16


def test_pipeline_stages_balance_cost():
    from attentionlite.simulator.accelerator.schedules import balanced_stages

    assert balanced_stages([1, 1, 1, 1], 2) == [0, 0, 1, 1]
    assert balanced_stages([3, 1, 1, 1], 2) == [0, 1, 1, 1]  # 3 | 3
    assert balanced_stages([1, 1, 1, 1, 1, 1], 3) == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("preset", list_presets())
@pytest.mark.parametrize("schedule", ["data", "pipeline", "split"])
def test_every_preset_and_schedule_runs_an_attention_block(preset, schedule):
    from test_sim_attention import FEATURE, LOGITS, WINDOW, logits_op

    ops = [
        linear("proj", 64, 8, 8),
        logits_op(),
        Op("softmax", OpKind.SOFTMAX, (LOGITS,), LOGITS, vector_ops=4 * 2 * 9 * 64, window=WINDOW),
        Op("weighted_sum", OpKind.WEIGHTED_SUM, (LOGITS, FEATURE), FEATURE, macs=logits_op().macs, window=WINDOW),
    ]
    config = load_hardware(preset)
    totals = simulate(ops, config, schedule=schedule).totals
    assert totals.cycles * config.pes * config.cores >= totals.useful_macs and 0 < totals.utilisation <= 1
    assert totals.energy_pj > 0 and totals.throughput > 0
