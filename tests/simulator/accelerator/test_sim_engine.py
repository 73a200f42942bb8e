"""The event loop: hand-placed tiles, schedules, analytic bounds as properties, byte-identical output."""

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from attentionlite import api
from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.hardware import list_presets, load_hardware, with_overrides
from attentionlite.simulator.accelerator.simulation import schedule_and_run, simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind
from attentionlite.simulator.graph.targets import resolve_target

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
    # a row is one batch: the mean of the first core's stall and the second's, whose data arrives at 16+16+10
    assert row.cores == "0-1" and row.stall_cycles == (26 + 42) / 2
    assert result.totals.images == 2 and result.totals.cycles == 42 + 14 + 4


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
    batches = totals.batches
    assert totals.cycles * config.pes * config.cores >= batches * totals.per_batch.useful_macs  # >= MACs / PEs
    assert 0 < totals.utilisation <= 1
    assert all(0 <= row.utilisation <= 1 for row in result.rows)


# Found by hypothesis: faster DRAM lets the second stage's loads reach the channel just before the first stage's,
# which then ends 14 cycles later over 8 batches; the pipeline ends 5,709 cycles after 5,708.
FCFS_ANOMALY = {"ops": [replace(linear("x", 1, 4, 7), name="op0"), replace(linear("x", 41, 1, 22), name="op1")],
                "design": {"array": (3, 1), "dataflow": "ws", "cores": 2, "bandwidth_gb_s": 21.0}, "factor": 3.0,
                "schedule": "pipeline"}


@PROPERTY
@given(ops=gemm_ops, design=designs, factor=st.floats(1.0, 8.0), schedule=schedules)
@example(**FCFS_ANOMALY)
def test_more_bandwidth_is_never_slower_on_one_core_and_hardly_on_several(ops, design, factor, schedule):
    """One core: never slower.  Several cores share one channel first come first served, which is not monotone:
    faster transfers can reorder two cores' requests so that one waits longer (a scheduling anomaly, as in
    Graham, "Bounds on multiprocessing timing anomalies", 1969).  Bounded here at 1%."""
    slow = load_hardware("paa-default", **design)
    fast = load_hardware("paa-default", **{**design, "bandwidth_gb_s": design["bandwidth_gb_s"] * factor})
    fast_cycles = simulate(ops, fast, schedule=schedule).totals.cycles
    slow_cycles = simulate(ops, slow, schedule=schedule).totals.cycles
    assert fast_cycles <= (slow_cycles if design["cores"] == 1 else 1.01 * slow_cycles)


@PROPERTY
@given(ops=gemm_ops, design=designs, granularity=st.integers(1, 16))
def test_ten_percent_dense_with_skip_never_computes_longer(ops, design, granularity):
    sparse_ops = [replace(op, weight_nonzero=max(1, op.weight_params // 10)) for op in ops]
    config = load_hardware("paa-default", **design, granularity=granularity)
    dense = simulate(ops, with_overrides(config, sparsity="none")).totals.per_batch
    skipped = simulate(sparse_ops, with_overrides(config, sparsity="skip")).totals.per_batch
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
    assert totals.cycles * config.pes * config.cores >= totals.batches * totals.per_batch.useful_macs
    assert 0 < totals.utilisation <= 1 and totals.per_image.energy_pj > 0 and totals.throughput > 0


# ----------------------------------------------------------------------------- read after write


def residual_chain(m: int, width: int):
    """linear -> relu -> linear -> add(relu, linear) -> linear: every tensor (m, width), one of them read twice."""
    from attentionlite.simulator.graph.graph import OpGraph

    shape = (m, width)
    graph = OpGraph({"batch": 1})
    graph.add_op(linear("fc0", m, width, width))
    graph.add_op(Op("relu", OpKind.ACT, (shape,), shape, vector_ops=m * width), [("fc0", shape)])
    graph.add_op(linear("fc1", m, width, width), [("relu", shape)])
    graph.add_op(Op("add", OpKind.ADD, (shape, shape), shape, vector_ops=m * width), [("relu", shape), ("fc1", shape)])
    graph.add_op(linear("fc2", m, width, width), [("add", shape)])
    return graph


@PROPERTY
@given(m=st.integers(1, 96), width=st.integers(1, 96), design=designs, schedule=schedules,
       kib=st.sampled_from([4, 64]))
def test_no_load_of_produced_data_before_its_producer_stored_it(m, width, design, schedule, kib):
    # The producers come from the graph's edges, not from the schedule's wiring: for every op that
    # reads a producer's output from DRAM, none of its transfers may begin before every task of that
    # producer for the same batch (all of them under split) has finished storing.
    graph = residual_chain(m, width)
    config = load_hardware("paa-default", **design, input_kib=kib, weight_kib=kib, output_kib=kib)
    done = schedule_and_run(graph, config, schedule)
    ops, kept, tasks, timeline = done.ops, done.kept, done.tasks, done.timeline
    index = {op.name: i for i, op in enumerate(ops)}
    for task, timing in zip(tasks, timeline.tasks):
        op = ops[task.op_index]
        for producer in graph.producers(op.name):
            if index[producer] == task.op_index - 1 and kept[task.op_index].inputs:
                continue  # handed over on chip
            stores = [t.stored for other, t in zip(tasks, timeline.tasks)
                      if other.op_index == index[producer] and (other.batch == task.batch or schedule == "split")]
            if timing.first_transfer >= 0:
                assert timing.first_transfer >= max(stores), (op.name, producer)


def test_a_consumer_waits_for_its_producers_store_by_hand(tiny):
    # Two GEMMs in a row on the tiny core, split schedule (which never hands a tensor over on chip), the
    # second reading the first's output from DRAM.  fc0: load its 32 B input and 32 B of weights at
    # 4 B/cycle (0-16, arrives 26), compute 8 + 4 + 4 - 2 = 14 cycles (26-40), store 16 B (40-44).
    # fc1 may load its 16 B input and 16 B of weights only then (44-52, arrives 62): compute 62-72.
    # (Without the hazard its load would follow fc0's at 16-24 and it would compute at 40-50.)
    from attentionlite.simulator.graph.graph import OpGraph

    graph = OpGraph({"batch": 1})
    graph.add_op(linear("fc0", 4, 4, 8))
    graph.add_op(linear("fc1", 4, 4, 4), [("fc0", (4, 4))])
    rows = {row.name: row for row in simulate(graph, load_hardware(tiny), schedule="split").rows}
    assert (rows["fc0"].start_cycle, rows["fc0"].end_cycle) == (26, 40)
    assert (rows["fc1"].start_cycle, rows["fc1"].end_cycle) == (62, 72)


# ----------------------------------------------------------------------------- what the totals say


def test_a_pipeline_runs_four_batches_per_stage_and_measures_the_full_pipeline(tmp_path):
    # two stages on two cores, ample bandwidth, no latency: stage 1 (K=40: 40 + 4 + 4 - 2 = 46 cycles
    # per batch) is the bottleneck, so once full the pipeline completes one batch every 46 cycles
    path = tmp_path / "fast.toml"
    path.write_text(TINY.replace("cores = 1", "cores = 2").replace("bandwidth_gb_s = 4.0", "bandwidth_gb_s = 1e6")
                    .replace("latency_ns = 10", "latency_ns = 0"))
    result = simulate([linear("fast", 4, 4, 8), linear("slow", 4, 4, 40)], load_hardware(path), schedule="pipeline")
    totals = result.totals
    assert (totals.batches, totals.images) == (8, 8)
    assert totals.throughput == pytest.approx(1e9 / 46)
    # the first batch through the empty pipeline: a one-cycle load, 14 + 46 cycles of compute (the slow
    # stage's one-cycle load overlaps the fast stage) and a one-cycle store
    assert totals.latency_s == pytest.approx((1 + 14 + 46 + 1) * 1e-9)


def test_the_summary_names_the_schedule_and_the_batches_it_simulated(tiny):
    text = simulate([linear("fc", 4, 4, 8)], load_hardware(tiny, cores=2), schedule="data").table()
    assert "schedule data: 2 batches of 1 image simulated; rows above are per batch" in text
    assert "per batch: DRAM 80 B" in text


def test_overlapped_folds_on_a_topology_by_hand(tmp_path):
    """SCALE-Sim's two-layer topology on one 8x8 core: each layer's compute cycles with the folds pipelined."""
    topology = tmp_path / "net.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                        "Strides,\nconv1, 10, 10, 3, 3, 3, 16, 1,\nconv2, 8, 8, 1, 1, 16, 32, 1,\n")
    def compute(dataflow: str, overlap: bool) -> list[int]:
        result = api.simulate(resolve_target(str(topology), topology=True), "paa-default", array="8x8",
                              dataflow=dataflow, cores=1, overlap_folds=overlap)
        return [row.compute_cycles for row in result.rows]

    # os: conv1 is M=64 output pixels, N=16 filters, K=27 (3x3x3): 8 x 2 = 16 folds, a whole one
    # 27 + 8 + 8 - 2 = 41; conv2 is M=64, N=32, K=16: 8 x 4 = 32 folds of 16 + 14 = 30
    assert compute("os", overlap=False) == [16 * 41, 32 * 30]
    assert compute("os", overlap=True) == [41 + 15 * 27, 30 + 31 * 16]
    # ws: K on rows, N on columns, M=64 streams; conv1: 4 x 2 = 8 folds of 64 + 2 * 8 + 8 - 2 = 86
    assert compute("ws", overlap=True) == [86 + 7 * 64, 86 + 7 * 64]  # conv2: 2 x 4 = 8 folds of the same
