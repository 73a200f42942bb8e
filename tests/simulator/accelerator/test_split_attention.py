"""Fixed attention masks (ViTCoD): measured from a model's boolean mask buffer, split into global-token
columns on a denser engine and kept logits on a sparser one, run at once; cycles and bytes by hand."""

import torch
import torch.nn.functional as F
from torch import nn

from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import MASK_DENSE_KEYS, MASK_SPARSE_KEPT, Gemm, Op, OpKind
from attentionlite.simulator.graph.tracing import trace_model


def _fixed_mask() -> torch.Tensor:
    """8 queries x 8 keys: keys 0 and 1 kept by every query (global tokens), three more logits kept."""
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:, :2] = True
    mask[0, 5] = mask[3, 6] = mask[7, 7] = True
    return mask


class FixedMaskAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pattern", _fixed_mask())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(x, x, x, attn_mask=self.pattern)


def test_a_mask_buffer_splits_into_global_columns_and_sparse_logits():
    # a column is global when more than 50/197 of the 8 queries (2.03) keep it: keys 0 and 1
    ops = trace_model(FixedMaskAttention(), input_shape=(1, 1, 8, 4)).ops_in_order()
    assert [(dict(op.attrs)[MASK_DENSE_KEYS], dict(op.attrs)[MASK_SPARSE_KEPT]) for op in ops] == [(2, 3)] * 3


def _masked(kind: OpKind) -> Op:
    gemm = Gemm(m=8, n=8, k=4) if kind is OpKind.ATTENTION_LOGITS else Gemm(m=8, n=4, k=8)
    inputs = ((1, 8, 4), (1, 8, 4)) if kind is OpKind.ATTENTION_LOGITS else ((1, 8, 8), (1, 8, 4))
    output = (1, 8, 8) if kind is OpKind.ATTENTION_LOGITS else (1, 8, 4)
    return Op(kind.value, kind, inputs, output, macs=gemm.macs, gemm=gemm,
              attrs=((MASK_DENSE_KEYS, 2), (MASK_SPARSE_KEPT, 3)))


CONFIG = {"cores": 1, "array": (8, 2), "split_sparse": True}


def test_q_k_on_both_engines_at_once():
    # dense: 8 queries x 2 global keys = 16 logits; sparse: 3.  Of 8 PE lines the denser engine gets
    # int(8 x 16/19) = 6, the sparser 2.  The head width 4 takes 2 passes of the 2 columns:
    # dense ceil(16/6) x 2 = 6 cycles, sparse ceil(3/2) x 2 = 4; the op takes the longer, 6
    row = simulate([_masked(OpKind.ATTENTION_LOGITS)], load_hardware("paa-default", **CONFIG)).rows[0]
    assert row.compute_cycles == 6 and row.macs == 19 * 4
    # queries and keys (32 B each) and the sparse logits' coordinates (3 x 2 B) in; the 19 kept logits out
    assert (row.dram_read_bytes, row.dram_write_bytes) == (32 + 32 + 6, 19)


def test_a_v_on_both_engines_at_once():
    # dense: 16 logits x 4 value channels over 6 lines x 2 columns = ceil(64/12) = 6; sparse ceil(12/4) = 3
    row = simulate([_masked(OpKind.ATTENTION_VALUES)], load_hardware("paa-default", **CONFIG)).rows[0]
    assert row.compute_cycles == 6 and row.macs == 19 * 4
    assert (row.dram_read_bytes, row.dram_write_bytes) == (19 + 32 + 6, 32)


def test_without_split_engines_the_mask_is_computed_dense():
    row = simulate([_masked(OpKind.ATTENTION_LOGITS)], load_hardware("paa-default", cores=1, array=(8, 2))).rows[0]
    assert row.macs == 8 * 8 * 4


def test_a_masked_softmax_normalises_only_the_kept_logits():
    # 8 rows keep 19 logits, ceil(19 / 8) = 3 a row: 10 rows fit 32 lanes side by side, so one pass of
    # 7 cycles; trees of ceil(log2 3) = 2 levels each and the reciprocal's 4
    op = Op("softmax", OpKind.SOFTMAX, ((1, 8, 8),), (1, 8, 8), vector_ops=4 * 64,
            attrs=((MASK_DENSE_KEYS, 2), (MASK_SPARSE_KEPT, 3)))
    row = simulate([op], load_hardware("paa-default", cores=1, split_sparse=True)).rows[0]
    assert row.compute_cycles == 7 + 2 * 2 + 4
    # only the 19 kept logits (1 B each) come in and go out, and only they cost vector work: 4 ops each
    assert (row.dram_read_bytes, row.dram_write_bytes, row.vector_ops) == (19, 19, 4 * 19)


def test_dense_columns_summed_over_heads_count_once_per_query():
    # 2 heads of 8 queries: head 0 has 2 global keys, head 1 one (3 over both), and 3 sparse logits: 8 x 3 + 3
    # = 27 kept over 16 rows, ceil(27/16) = 2 a row; 16 rows of 2 fit 32 lanes in one pass of 7 cycles, then
    # trees of 1 level each and the reciprocal's 4
    op = Op("softmax", OpKind.SOFTMAX, ((1, 2, 8, 8),), (1, 2, 8, 8), vector_ops=4 * 128,
            attrs=((MASK_DENSE_KEYS, 3), (MASK_SPARSE_KEPT, 3)))
    row = simulate([op], load_hardware("paa-default", cores=1, split_sparse=True)).rows[0]
    assert row.compute_cycles == 7 + 2 * 1 + 4
