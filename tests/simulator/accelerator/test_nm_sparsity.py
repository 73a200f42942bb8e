"""N:M structured sparsity: measured from masks, read from SCALE-Sim topologies, compressed by the array;
cycles, bytes and metadata by hand."""

import pytest
import torch

from attentionlite.errors import InputError
from attentionlite.model.training.sparsity import most_kept_per_group
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind
from attentionlite.simulator.graph.topology import read_scalesim_gemm

GEMM_TOPOLOGY = "Layer, M, N, K, Sparsity,\nfc1, 64, 32, 64, 2:4,\nfc2, 64, 32, 64, 1:1,\n"


def _linear(kept: int, block: int) -> Op:
    gemm = Gemm(m=64, n=32, k=64)
    return Op("fc", OpKind.LINEAR, ((64, 64),), (64, 32), macs=gemm.macs, gemm=gemm, weight_params=2048,
              weight_nonzero=2048 * kept // block, nm_kept=kept, nm_block=block)


def test_the_most_a_group_keeps():
    mask = torch.tensor([[1, 0, 1, 0, 1, 1],    # groups of 4: [1 0 1 0] -> 2, then [1 1] -> 2
                         [1, 1, 1, 0, 0, 1]])   # [1 1 1 0] -> 3, [0 1] -> 1
    assert most_kept_per_group(mask.bool(), 4) == 3
    assert most_kept_per_group(mask.bool(), 2) == 2


def test_a_two_of_four_layer_runs_half_its_reduction():
    # 64 x 32 x 64 on one 32x32 os core: 2 row folds x 1 column fold, each K + 32 + 32 - 2 cycles;
    # 2:4 compresses K = 64 to 32 steps
    config = load_hardware("paa-default", cores=1)
    dense = simulate([_linear(2, 4)], config).rows[0]
    sparse = simulate([_linear(2, 4)], load_hardware("paa-default", cores=1, sparsity="nm")).rows[0]
    assert dense.compute_cycles == 2 * (64 + 62)
    assert sparse.compute_cycles == 2 * (32 + 62)
    # 1,024 kept weights of a byte, each with ceil(log2 4) = 2 bits of index: 256 B
    assert sparse.traffic.dram_read_weight == 1024 and sparse.traffic.dram_read_index == 256


def test_an_unstructured_layer_runs_dense_on_an_n_of_m_array():
    config = load_hardware("paa-default", cores=1, sparsity="nm")
    assert simulate([_linear(4, 4)], config).rows[0].compute_cycles == 2 * (64 + 62)


def test_the_sparsity_column_of_a_topology_file(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text(GEMM_TOPOLOGY)
    fc1, fc2 = read_scalesim_gemm(path).ops_in_order()
    assert (fc1.nm_kept, fc1.nm_block, fc1.weight_nonzero) == (2, 4, 32 * 32)  # 2 of every 4 of K = 64, 32 filters
    assert (fc2.nm_kept, fc2.nm_block, fc2.weight_nonzero) == (0, 0, 64 * 32)
    rows = simulate(read_scalesim_gemm(path), load_hardware("paa-default", cores=1, sparsity="nm")).rows
    assert [row.compute_cycles for row in rows] == [2 * (32 + 62), 2 * (64 + 62)]


@pytest.mark.parametrize("cell", ["3:2", "0:4", "2", "a:b"])
def test_a_bad_sparsity_cell_is_one_error(tmp_path, cell):
    path = tmp_path / "net.csv"
    path.write_text(f"Layer, M, N, K, Sparsity,\nfc1, 64, 32, 64, {cell},\n")
    with pytest.raises(InputError, match=r"net.csv:2: column 'sparsity' is .*expected N:M with 1 <= N <= M"):
        read_scalesim_gemm(path)
