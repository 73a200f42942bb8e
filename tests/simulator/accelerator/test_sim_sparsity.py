"""Weight sparsity modes on one small GEMM, counted by hand."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_sim_engine import PROPERTY, designs, linear

from attentionlite.simulator.accelerator.hardware import load_hardware, with_overrides
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind


def pruned_linear(nonzero: int = 32, kept_columns: int = 8) -> Op:
    """4x8 @ 8x4 with ``nonzero`` of its 32 weights left, or ``kept_columns`` of 8 weight columns."""
    return Op("fc", OpKind.LINEAR, ((4, 8),), (4, 4), macs=128, gemm=Gemm(m=4, n=4, k=8),
              weight_params=32, weight_nonzero=nonzero, columns_total=8, columns_kept=kept_columns)


@pytest.fixture
def config():
    return load_hardware("paa-default", cores=1, array=(4, 4), dataflow="os")


def test_dense_hardware_ignores_masks(config):
    row = simulate([pruned_linear(nonzero=8)], with_overrides(config, sparsity="none")).rows[0]
    assert (row.compute_cycles, row.macs, row.skipped_macs) == (8 + 4 + 4 - 2, 128, 0)


def test_compacted_columns_shrink_the_reduction(config):
    row = simulate([pruned_linear(kept_columns=4)], with_overrides(config, sparsity="columns")).rows[0]
    assert (row.compute_cycles, row.macs, row.skipped_macs) == (4 + 4 + 4 - 2, 64, 64)
    assert row.dram_read_bytes == 4 * 4 + 4 * 4  # the kept columns' inputs, half the weights


def test_zero_skipping_pays_index_metadata(config):
    # an idealised array (every PE skips its own zeros), density 1/4, blocks of one weight: K shrinks to
    # ceil(8 / 4) = 2; 8 weights stored at 1 B + 4 index bits
    config = load_hardware("paa-default", cores=1, array=(4, 4), dataflow="os", granularity=1, index_bits=4,
                           lockstep=False)
    row = simulate([pruned_linear(nonzero=8)], with_overrides(config, sparsity="skip")).rows[0]
    assert (row.compute_cycles, row.macs, row.skipped_macs) == (2 + 4 + 4 - 2, 32, 96)
    assert row.dram_read_bytes == 4 * 8 + 12


def test_coarser_skip_blocks_skip_less(config):
    ideal = {"cores": 1, "array": (4, 4), "sparsity": "skip", "lockstep": False}
    fine = simulate([pruned_linear(nonzero=8)], load_hardware("paa-default", granularity=1, **ideal))
    coarse = simulate([pruned_linear(nonzero=8)], load_hardware("paa-default", granularity=4, **ideal))
    # a block of 4 holds a non-zero with probability 1 - (3/4)^4 = 0.68: K = ceil(8 * 0.68) = 6
    assert coarse.rows[0].macs == 4 * 4 * 6 > fine.rows[0].macs


def test_lockstep_skipping_follows_the_union_density_over_the_columns(config):
    # os 4x4: a reduction step reaches the 4 columns at once; at density 1/4 it holds a non-zero in one of
    # them with probability 1 - (3/4)^4 = 0.684, so K = ceil(8 x 0.684) = 6 steps of the 8 stay: 6 + 4 + 4 - 2
    config = with_overrides(config, sparsity="skip", granularity=1, index_bits=4)
    row = simulate([pruned_linear(nonzero=8)], config).rows[0]
    assert (row.compute_cycles, row.macs) == (6 + 4 + 4 - 2, 4 * 4 * 6)
    # the input whole (4 x 8 B); the 6 kept steps' 24 weights at 1 B + one 4-bit index per step of 4 weights
    assert row.dram_read_bytes == 4 * 8 + 24 * (1 + 4 / 8 / 4)
    # the example: density 0.1 over 32 columns keeps 1 - 0.9^32 = 96.6% of K = 100: 97 steps
    fc = Op("fc", OpKind.LINEAR, ((4, 100),), (4, 32), macs=4 * 32 * 100, gemm=Gemm(m=4, n=32, k=100),
            weight_params=3200, weight_nonzero=320)
    wide = with_overrides(config, array=(32, 32))
    assert simulate([fc], wide).rows[0].compute_cycles == 97 + 32 + 32 - 2
    # weight-stationary: the weights sit in the PEs while the inputs stream, so a zero skips nothing
    dense_ws = simulate([fc], with_overrides(wide, dataflow="ws", sparsity="none")).rows[0]
    assert simulate([fc], with_overrides(wide, dataflow="ws")).rows[0].compute_cycles == dense_ws.compute_cycles


def test_a_layer_stored_dense_costs_what_it_costs_on_dense_hardware(config):
    # Dense (32 of 32) and barely pruned (28 of 32: K = ceil(8 * 0.875) = 7 blocks, 28 weights
    # x 1.5 B = 42 B > 32 B dense) layers are stored and run dense on zero-skipping hardware.
    for nonzero in (32, 28):
        dense = simulate([pruned_linear(nonzero=nonzero)], with_overrides(config, sparsity="none")).rows[0]
        skipped = simulate([pruned_linear(nonzero=nonzero)], with_overrides(config, sparsity="skip")).rows[0]
        assert (skipped.compute_cycles, skipped.stall_cycles, skipped.macs) == (
            dense.compute_cycles, dense.stall_cycles, dense.macs)
        assert skipped.dram_read_bytes == dense.dram_read_bytes
        assert skipped.traffic == dense.traffic and skipped.traffic.dram_read_index == 0


@pytest.fixture(scope="module")
def resnet50():
    from attentionlite.api import trace

    return trace("resnet50")


def test_a_dense_resnet50_is_not_taxed_by_zero_skipping_hardware(resnet50):
    dense = simulate(resnet50, load_hardware("paa-default", sparsity="none"))
    skipped = simulate(resnet50, load_hardware("paa-default", sparsity="skip"))
    assert skipped.totals.cycles == dense.totals.cycles
    assert [row.dram_read_bytes for row in skipped.rows] == [row.dram_read_bytes for row in dense.rows]


sparse_ops = st.lists(
    st.builds(linear, name=st.just("x"), m=st.integers(1, 128),
              n=st.integers(1, 128), k=st.integers(1, 512), density=st.floats(0.01, 1.0)),
    min_size=1, max_size=4,
).map(lambda ops: [replace(op, name=f"op{i}") for i, op in enumerate(ops)])


@PROPERTY
@given(ops=sparse_ops, design=designs, granularity=st.integers(1, 8), index_bits=st.sampled_from([2, 4, 8]))
def test_skip_is_never_slower_and_never_moves_more_than_dense_hardware_on_any_layer(ops, design, granularity,
                                                                                   index_bits):
    config = load_hardware("paa-default", **{**design, "cores": 1}, granularity=granularity, index_bits=index_bits)
    for op in ops:
        dense = simulate([op], with_overrides(config, sparsity="none")).rows[0]
        skipped = simulate([op], with_overrides(config, sparsity="skip")).rows[0]
        assert skipped.compute_cycles + skipped.stall_cycles <= dense.compute_cycles + dense.stall_cycles
        assert skipped.dram_read_bytes <= dense.dram_read_bytes


def column_pruned_student():
    from attentionlite.model.nets.zoo import create_model
    from attentionlite.model.training.sparsity import apply_masks, initial_masks

    model = create_model("sasa26_hybrid", width=0.125, num_classes=10)
    masks = initial_masks(model, 0.3, mode="column", seed=0)
    apply_masks(model, masks)
    return model.eval(), masks


def test_masked_and_compacted_forms_of_a_checkpoint_simulate_the_same():
    from attentionlite.model.nets.gathered import compact_model
    from attentionlite.simulator.graph.tracing import trace_model

    model, masks = column_pruned_student()
    masked = trace_model(model, 32, masks=masks, prune_mode="column")
    compacted = trace_model(compact_model(model, masks), 32, masks=masks, prune_mode="column")
    config = load_hardware("paa-default", sparsity="columns")
    by_name = {row.name: row for row in simulate(compacted, config).rows}
    masked_rows = simulate(masked, config).rows
    assert len(masked_rows) == len(by_name)
    for row in masked_rows:
        assert (row.compute_cycles, row.macs, row.dram_read_bytes) == (
            by_name[row.name].compute_cycles, by_name[row.name].macs, by_name[row.name].dram_read_bytes), row.name
    conv3 = masked.op("layer2.0.conv3")
    assert by_name["layer2.0.conv3"].macs == conv3.gemm.m * conv3.gemm.n * conv3.columns_kept


def test_without_lockstep_a_fold_waits_for_its_busiest_column(config):
    # 8 of 32 weights: 2 per output on average, but one output keeps 4; an array whose PEs skip their own
    # zeros runs K = 4 steps (that column's) where the mean gives 2; the stored weights stay the 8 of them
    busy = replace(pruned_linear(nonzero=8), weight_row_nonzero_max=4)
    ideal = with_overrides(config, sparsity="skip", granularity=1, index_bits=4, lockstep=False)
    row = simulate([busy], ideal).rows[0]
    assert (row.compute_cycles, row.macs) == (4 + 4 + 4 - 2, 4 * 4 * 4)
    assert row.traffic.dram_read_weight == 8 and row.traffic.dram_read_index == 4
    # in lockstep the union over the columns already waits for every column: the imbalance adds nothing
    lockstep = simulate([busy], with_overrides(ideal, lockstep=True)).rows[0]
    assert lockstep.compute_cycles == simulate([pruned_linear(nonzero=8)], with_overrides(ideal, lockstep=True)).rows[0].compute_cycles


def test_a_mask_gives_its_densest_output():
    import torch
    from torch import nn

    from attentionlite.simulator.graph.tracing import trace_model

    model = nn.Sequential(nn.Linear(8, 3, bias=False))
    mask = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 1], [1, 1, 1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]]).bool()
    graph = trace_model(model, input_shape=(1, 8), masks={"0.weight": mask}, prune_mode="unstructured")
    (op,) = graph.ops_in_order()
    assert (op.weight_nonzero, op.weight_row_nonzero_max) == (7, 4)
