"""DRAM traffic by operand, worked out by hand: buffer residency, tile-split cores, split-K reductions,
batch-norm folding, and the compulsory traffic every op must move."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_sim_engine import PROPERTY, designs, linear, schedules

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind


def conv3x3(channels: int = 128, size: int = 32) -> Op:
    """A 3x3 stride-1 convolution, ``channels`` -> ``channels`` on a ``size`` x ``size`` map (padded)."""
    k = 9 * channels
    return Op("conv", OpKind.CONV, ((1, channels, size, size),), (1, channels, size, size),
              macs=size * size * channels * k, gemm=Gemm(m=size * size, n=channels, k=k),
              weight_params=k * channels, weight_nonzero=k * channels)


@pytest.mark.parametrize("input_kib", [512, 256, 128, 64, 32])
def test_an_input_is_resident_only_when_the_whole_tensor_fits_half_its_buffer(input_kib):
    # The input is 128 x 32 x 32 = 131,072 B; half of a 256 KiB buffer holds it, so it is read once.
    # Below that, output stationary re-reads it in each of its 128 / 32 = 4 column folds.  The
    # weights (147,456 B) come once: each column fold's 1152 x 32 slice fits half of 128 KiB.
    config = load_hardware("paa-default", cores=1, input_kib=input_kib)
    row = simulate([conv3x3()], config).rows[0]
    reads = 131_072 if input_kib >= 256 else 4 * 131_072
    assert row.dram_read_bytes == reads + 147_456
    assert row.traffic.dram_read_input == reads
    assert row.traffic.dram_read_weight == 9 * 128 * 128


def test_split_cores_each_load_what_their_folds_read():
    # M=32, N=128, K=1024 on four 32x32 os cores: one column fold each.  Every core needs the whole
    # 32 KiB input and its own 1024 x 32 quarter of the weights: 4 x (32,768 + 32,768) bytes.
    row = simulate([linear("fc", 32, 128, 1024)], load_hardware("paa-default", cores=4), schedule="split").rows[0]
    assert row.cores == "0-3"
    assert row.dram_read_bytes == 262_144
    assert row.traffic.dram_read_input == 4 * 32_768
    assert row.dram_write_bytes == 32 * 128


def test_split_along_k_reduces_partial_sums_on_the_vector_unit():
    # M=N=32 is one fold: four cores split K=1024 into four slices of 256.  Each reads its 32 x 256
    # input slice and 256 x 32 weight slice (8,192 B each) and stores 32 x 32 partial sums; core 0
    # then reads the four partial-sum tensors back, adds them (3 x 1024 adds) and stores the output.
    row = simulate([linear("fc", 32, 32, 1024)], load_hardware("paa-default", cores=4), schedule="split").rows[0]
    assert row.dram_read_bytes == 69_632
    assert row.dram_write_bytes == 4 * 1_024 + 1_024
    assert row.vector_ops == 3 * 1_024
    assert row.traffic.dram_read_input == row.traffic.dram_read_weight == 4 * 8_192
    assert row.traffic.dram_read_psum == 4 * 1_024
    # each slice is one fold of 256 + 32 + 32 - 2 cycles; the reduction takes 3072 / 32 lanes
    assert row.compute_cycles == 4 * 318 + 96


def test_a_one_fold_op_is_not_split_when_fill_and_drain_would_outweigh_the_gain():
    # K=64 cut four ways would cost each core a full fold, 16 + 32 + 32 - 2 = 78 cycles, and core 0 the
    # reduction, 3 x 1024 / 32 = 96 more: 174 > 64 + 62 = 126 on one core, so one core runs it whole
    row = simulate([linear("fc", 32, 32, 64)], load_hardware("paa-default", cores=4), schedule="split").rows[0]
    assert row.cores == "0"
    assert row.compute_cycles == 64 + 62
    assert row.dram_read_bytes == 32 * 64 + 64 * 32 and row.vector_ops == 0


def test_an_op_with_fewer_output_units_than_cores_leaves_cores_idle_rather_than_splitting_k_unevenly():
    # ws, M=100, N=72, K=200: three column folds.  Cutting K would need 4 // 3 = 1 slice, so the three
    # units go to three cores and the fourth idles; each core's folds are 7 K folds of 100 + 94 cycles
    config = load_hardware("paa-default", cores=4, dataflow="ws")
    row = simulate([linear("fc", 100, 72, 200)], config, schedule="split").rows[0]
    assert row.cores == "0-2"
    assert row.compute_cycles == 3 * 7 * (100 + 64 + 32 - 2)
    assert row.dram_read_bytes == 3 * 20_000 + 14_400  # every core reads the whole input


def conv_bn_relu() -> OpGraph:
    shape = (1, 64, 16, 16)
    graph = OpGraph({"batch": 1})
    graph.add_op(Op("conv", OpKind.CONV, (shape,), shape, macs=256 * 64 * 576, gemm=Gemm(m=256, n=64, k=576),
                    weight_params=576 * 64, weight_nonzero=576 * 64))
    graph.add_op(Op("bn", OpKind.NORM, (shape,), shape, vector_ops=2 * 16_384), [("conv", shape)])
    graph.add_op(Op("relu", OpKind.ACT, (shape,), shape, vector_ops=16_384), [("bn", shape)])
    return graph


def test_batch_norm_is_folded_into_the_conv_by_default_with_a_switch():
    # Tensors of 16 KiB stay on chip between neighbours, so the only difference a folded norm makes
    # is one op fewer: its vector work (2 ops per element) is gone and its 16 KiB never cross a buffer.
    config = load_hardware("paa-default", cores=1)
    folded = simulate(conv_bn_relu(), config)
    unfolded = simulate(conv_bn_relu(), load_hardware("paa-default", cores=1, fold_batch_norm=False))
    assert [row.name for row in folded.rows] == ["conv", "relu"]
    assert [row.name for row in unfolded.rows] == ["conv", "bn", "relu"]
    assert unfolded.totals.per_batch.vector_ops - folded.totals.per_batch.vector_ops == 2 * 16_384
    assert folded.run["fold_batch_norm"] and not unfolded.run["fold_batch_norm"]


def test_a_norm_that_cannot_stay_on_chip_costs_a_dram_round_trip_unless_folded():
    small = {"cores": 1, "input_kib": 16, "output_kib": 16}  # 8 KiB halves: the 16 KiB maps spill
    folded = simulate(conv_bn_relu(), load_hardware("paa-default", **small))
    unfolded = simulate(conv_bn_relu(), load_hardware("paa-default", **small, fold_batch_norm=False))
    # the norm reads the conv's 16,384 B output and writes its own
    assert unfolded.totals.per_batch.dram_bytes - folded.totals.per_batch.dram_bytes == 2 * 16_384


vector_ops = st.builds(
    lambda m, n: Op("relu", OpKind.ACT, ((m, n),), (m, n), vector_ops=m * n), st.integers(1, 300), st.integers(1, 300))
mixed_ops = st.lists(
    st.one_of(st.builds(linear, name=st.just("x"), m=st.integers(1, 200), n=st.integers(1, 128),
                        k=st.integers(1, 400)), vector_ops),
    min_size=1, max_size=5,
)


@PROPERTY
@given(ops=mixed_ops, design=designs, schedule=schedules, kib=st.sampled_from([4, 16, 128]))
def test_every_op_moves_at_least_its_compulsory_traffic(ops, design, schedule, kib):
    # with no graph nothing is handed over on chip: each op reads its inputs and weights and writes
    # its output at least once, whatever the schedule, array and buffers
    ops = [replace(op, name=f"op{i}") for i, op in enumerate(ops)]
    config = load_hardware("paa-default", **design, input_kib=kib, weight_kib=kib, output_kib=kib)
    for op, row in zip(ops, simulate(ops, config, schedule=schedule).rows, strict=True):
        assert row.traffic.dram_read_input >= op.input_bytes(1)
        assert row.traffic.dram_read_weight >= op.weight_bytes(1)
        assert row.dram_write_bytes >= op.output_bytes(1)


def test_weights_and_their_index_metadata_share_the_weight_buffer():
    # one fold: 120 x 32 weights (3,840 B) and 4 index bits each (1,920 B) must fit 2 KiB halves
    # together: ceil(5,760 / 2,048) = 3 tiles (the weights alone would need 2)
    from attentionlite.simulator.accelerator.memory import GemmMapping, gemm_work

    gemm = Gemm(m=32, n=32, k=120)
    mapping = GemmMapping(gemm, {"input": 32 * 120, "weight": 120 * 32, "output": 32 * 32},
                          dict.fromkeys(("input", "weight", "output"), 1.0), 1.0, gemm.macs,
                          index_bytes_per_weight=0.5)
    work = gemm_work(mapping, load_hardware("paa-default", cores=1, weight_kib=4))
    assert len(work.tiles) == 3
    assert work.traffic.dram_read_weight + work.traffic.dram_read_index == 5_760
