"""Fixed attention-map sparsity (ViTCoD): the kept entries by hand, the exact budget per head, the masked
attention against a reference, the mask through the checkpoint, the trace and fine-tuning, and bad input."""

import dataclasses
import math

import pytest
import torch
from click.testing import CliRunner

from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.model.nets.layers import LocalSelfAttention
from attentionlite.model.nets.vit import polarise
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.attention_sparsity import (
    attention_modules,
    keep_top_entries,
    keep_window_positions,
    kept_per_head,
    kept_positions,
    mean_attention_maps,
)
from attentionlite.model.training.checkpoint import load_checkpoint
from attentionlite.model.training.train import TrainConfig, train
from attentionlite.simulator.graph.ops import MASK_DENSE_KEYS, MASK_SPARSE_KEPT, OpKind
from attentionlite.simulator.graph.tracing import trace_model

TOKENS = 65  # 8 x 8 patches and the class token


def _small_vit(**overrides) -> torch.nn.Module:
    return create_model("vit_tiny", **({"embed_dim": 24, "depth": 2, "heads": 2} | overrides)).eval()


def test_each_query_keeps_its_largest_entry_before_the_head_keeps_its_largest():
    # 9 entries at sparsity 5/9 keep 4.  The three largest (.50, .45, .40) and .30 leave query 1 with
    # none; so each row's largest first, (0, 0), (1, 0) and (2, 0), then the largest left, .40 at (0, 1)
    mean_map = torch.tensor([[[0.50, 0.40, 0.10], [0.20, 0.15, 0.12], [0.45, 0.30, 0.25]]])
    mask = keep_top_entries(mean_map, 5 / 9)
    assert mask.tolist() == [[[True, True, False], [True, False, False], [True, False, False]]]


def test_ninety_percent_keeps_exactly_ten_percent_of_every_head():
    model = _small_vit(heads=3)
    maps = mean_attention_maps(model, [(torch.randn(4, 3, 32, 32), None)])
    for mean_map in maps.values():
        mask = keep_top_entries(mean_map, 0.9)
        # ceil(0.1 x 65^2) = ceil(422.5) = 423 of each head's 4,225 entries, and no query left empty
        assert mask.sum((1, 2)).tolist() == [423, 423, 423]
        assert bool((mask.sum(-1) >= 1).all())


def test_a_sparsity_that_leaves_a_query_nothing_is_refused():
    assert kept_per_head(TOKENS, 0.98) == 85  # ceil(0.02 x 4225) = ceil(84.5), at least 65
    assert kept_per_head(TOKENS, 1 - 2 / 65) == 130  # exactly 130 however 1 - s rounds in floats
    with pytest.raises(InputError, match="fewer than one per query"):
        kept_per_head(TOKENS, 0.99)  # 42 entries for 65 queries
    with pytest.raises(InputError, match=r"expected a fraction in \[0, 1\)"):
        kept_per_head(TOKENS, 1.0)


def test_with_equal_logits_the_mean_map_is_uniform_over_the_kept_keys():
    model = _small_vit(depth=1)
    attention = model.blocks[0].attn
    torch.nn.init.zeros_(attention.qkv.weight)  # q = k = 0: every logit 0
    torch.nn.init.zeros_(attention.qkv.bias)
    mask = torch.zeros(2, TOKENS, TOKENS, dtype=torch.bool)
    mask[:, :, :5] = True  # every query keeps keys 0-4
    attention.attn_mask = mask
    (mean_map,) = mean_attention_maps(model, [(torch.randn(3, 3, 32, 32), None)]).values()
    assert torch.allclose(mean_map[:, :, :5], torch.full((2, TOKENS, 5), 1 / 5))
    assert float(mean_map[:, :, 5:].abs().max()) == 0.0


def test_the_masked_block_computes_softmax_over_the_kept_keys_only():
    model = _small_vit(depth=1)
    attention = model.blocks[0].attn
    generator = torch.Generator().manual_seed(0)
    attention.attn_mask = torch.rand(2, TOKENS, TOKENS, generator=generator) < 0.2
    attention.attn_mask[:, :, 0] = True  # every query keeps one key at least
    x = torch.randn(2, TOKENS, 24, generator=generator)
    q, k, v = attention.queries_keys_values(x)
    # the reference: logits of pruned entries at -inf before an explicit softmax
    logits = (q @ k.transpose(-2, -1) / math.sqrt(12)).masked_fill(~attention.attn_mask, -math.inf)
    expected = attention.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, TOKENS, 24))
    with torch.no_grad():
        assert torch.allclose(attention(x), expected, atol=1e-6)


def test_polarise_splits_global_columns_from_the_sparse_rest():
    # 2 heads of 8 queries: a key is global when more than 50/197 x 8 = 2.03 queries keep it, so 3
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, :3, 4] = True  # 3 queries: global in head 0
    mask[0, :2, 5] = True  # 2: sparse
    mask[1, :, 0] = True  # all 8: global in head 1
    mask[1, 6, 7] = True
    global_keys, sparse = polarise(mask)
    assert global_keys.nonzero().tolist() == [[0, 4], [1, 0]]
    assert sparse.nonzero().tolist() == [[0, 0, 5], [0, 1, 5], [1, 6, 7]]


# --------------------------------------------------------------------------- the command, end to end


@pytest.fixture(scope="module")
def vit_checkpoint(tiny_cifar, tmp_path_factory):
    out = tmp_path_factory.mktemp("vit")
    train(_config(tiny_cifar, out))
    return out / "checkpoint.pt"


def _config(tiny_cifar, out, **changes) -> TrainConfig:
    base = TrainConfig(model="vit_tiny", dataset="cifar10", data_dir=str(tiny_cifar), out=str(out), epochs=1,
                       batch_size=5, embed_dim=24, depth=2, heads=2, seed=0, cache_dir=str(tiny_cifar / "cache"),
                       progress=False)
    return dataclasses.replace(base, **changes)


def _sparsify(vit_checkpoint, tiny_cifar, out, *options):
    return CliRunner().invoke(main, ["sparsify-attention", str(vit_checkpoint), "--data-dir", str(tiny_cifar),
                                     "--out", str(out), "--cache-dir", str(tiny_cifar / "cache"), "--quiet",
                                     *options])


def test_the_masks_reach_the_checkpoint_and_the_trace(vit_checkpoint, tiny_cifar, tmp_path):
    result = _sparsify(vit_checkpoint, tiny_cifar, tmp_path / "sparse.pt", "--sparsity", "0.9")
    assert result.exit_code == 0, result.output
    assert "test accuracy:" in result.output and "blocks.1.attn" in result.output
    checkpoint = load_checkpoint(tmp_path / "sparse.pt")
    masks = {name: module.attn_mask for name, module in attention_modules(checkpoint.model).items()}
    assert all(mask.sum((1, 2)).tolist() == [423, 423] for mask in masks.values())
    assert checkpoint.metrics["attention_sparsity"] == 0.9
    assert checkpoint.metrics["attention_calibration_images"] == 20  # 2 training images of each class
    logits = [op for op in trace_model(checkpoint.model, input_shape=(1, 3, 32, 32)).ops_in_order()
              if op.kind is OpKind.ATTENTION_LOGITS]
    for op, mask in zip(logits, masks.values()):
        attrs = dict(op.attrs)
        in_global_columns = sum(int(head[:, keys].sum()) for head, keys in zip(mask, polarise(mask)[0]))
        # every kept logit is in a global column or among the sparse ones, and none is in both
        assert attrs[MASK_SPARSE_KEPT] + in_global_columns == 2 * 423
        assert attrs[MASK_DENSE_KEYS] == int(polarise(mask)[0].sum())


def test_fine_tuning_from_the_sparsified_checkpoint_keeps_its_masks(vit_checkpoint, tiny_cifar, tmp_path):
    assert _sparsify(vit_checkpoint, tiny_cifar, tmp_path / "sparse.pt", "--sparsity", "0.8").exit_code == 0
    train(_config(tiny_cifar, tmp_path / "tuned", init=str(tmp_path / "sparse.pt"), embed_dim=None, depth=None,
                  heads=None))
    before = load_checkpoint(tmp_path / "sparse.pt").model
    after = load_checkpoint(tmp_path / "tuned" / "checkpoint.pt").model
    assert all(torch.equal(a.attn_mask, b.attn_mask)
               for a, b in zip(attention_modules(before).values(), attention_modules(after).values()))
    assert not torch.equal(before.blocks[0].attn.qkv.weight, after.blocks[0].attn.qkv.weight)


def test_sparsity_zero_removes_the_masks(vit_checkpoint, tiny_cifar, tmp_path):
    assert _sparsify(vit_checkpoint, tiny_cifar, tmp_path / "sparse.pt", "--sparsity", "0.5").exit_code == 0
    assert _sparsify(tmp_path / "sparse.pt", tiny_cifar, tmp_path / "dense.pt", "--sparsity", "0").exit_code == 0
    model = load_checkpoint(tmp_path / "dense.pt").model
    assert all(module.attn_mask is None for module in attention_modules(model).values())


def test_bad_input_is_one_line_and_writes_nothing(vit_checkpoint, tiny_cifar, tmp_path):
    result = _sparsify(vit_checkpoint, tiny_cifar, tmp_path / "out.pt", "--sparsity", "0.99")
    assert result.exit_code == 2 and "fewer than one per query" in result.output
    assert not (tmp_path / "out.pt").exists()
    train(TrainConfig(model="resnet26", dataset="cifar10", data_dir=str(tiny_cifar), out=str(tmp_path / "cnn"),
                      epochs=1, batch_size=5, width=0.25, cache_dir=str(tiny_cifar / "cache"), progress=False))
    result = _sparsify(tmp_path / "cnn" / "checkpoint.pt", tiny_cifar, tmp_path / "out.pt", "--sparsity", "0.9")  # no attention
    assert result.exit_code == 2 and "expected a ViT, DeiT or SASA checkpoint" in result.output
    with pytest.raises(InputError, match="expected a checkpoint of the same model"):
        train(_config(tiny_cifar, tmp_path / "wrong", init=str(tmp_path / "cnn" / "checkpoint.pt"), embed_dim=None,
                      depth=None, heads=None))


# --------------------------------------------------------------------------- SASA windows: positions per head


def test_a_window_keeps_its_centre_then_its_largest_positions():
    # 9 positions at sparsity 5/9 keep ceil(4) = 4: the centre (4) though it is the smallest, then .5, .4, .3
    mean_map = torch.tensor([[0.5, 0.1, 0.4, 0.05, 0.01, 0.3, 0.2, 0.02, 0.03]])
    assert keep_window_positions(mean_map, 5 / 9).nonzero()[:, 1].tolist() == [0, 2, 4, 5]
    assert kept_positions(49, 0.5) == 25 and kept_positions(49, 0.99) == 1  # ceil(24.5); the centre at least


def test_pruned_window_positions_get_no_attention():
    layer = LocalSelfAttention(8, 8, kernel_size=3, heads=2).eval()
    layer.window_mask = torch.zeros(2, 9, dtype=torch.bool)
    layer.window_mask[:, 4] = True  # the centre
    layer.window_mask[0, 0] = layer.window_mask[1, 8] = True
    seen = []
    layer.softmax.register_forward_hook(lambda _, __, probabilities: seen.append(probabilities))
    with torch.no_grad():
        layer(torch.randn(1, 8, 5, 5))
    probabilities = seen[0]  # (9, B, G, H, W)
    assert float(probabilities[~layer.window_mask.t()[:, None, :, None, None].expand_as(probabilities)].abs().max()) == 0
    assert torch.allclose(probabilities.sum(0), torch.ones(1, 2, 5, 5))


def test_a_sasa_checkpoint_keeps_window_positions_per_head(tiny_cifar, tmp_path):
    train(TrainConfig(model="sasa26_hybrid", dataset="cifar10", data_dir=str(tiny_cifar), out=str(tmp_path / "sasa"),
                      epochs=1, batch_size=5, width=0.25, heads=2, kernel_size=3, cache_dir=str(tiny_cifar / "cache"),
                      progress=False))
    result = _sparsify(tmp_path / "sasa" / "checkpoint.pt", tiny_cifar, tmp_path / "sparse.pt", "--sparsity", "0.5")
    assert result.exit_code == 0, result.output
    model = load_checkpoint(tmp_path / "sparse.pt").model
    layers = [m for m in model.modules() if isinstance(m, LocalSelfAttention)]
    # ceil(0.5 x 9) = 5 positions of each head, the centre among them
    assert layers and all(layer.window_mask.sum(-1).tolist() == [5, 5] and bool(layer.window_mask[:, 4].all())
                          for layer in layers)
    windows = [op.window for op in trace_model(model, 32).ops_in_order() if op.kind is OpKind.WINDOW_LOGITS]
    assert len(windows) == len(layers) and all(window.kept == 5 for window in windows)


def test_an_even_window_keeps_the_querys_own_position():
    # k = 4 pads 2 before and 1 after, so offset (0, 0) is position 2 x 4 + 2 = 10, not 16 // 2 = 8
    mask = keep_window_positions(torch.zeros(1, 16), 0.95)
    assert mask.nonzero()[:, 1].tolist() == [10]
    layer = LocalSelfAttention(8, 8, kernel_size=4, heads=1).eval()
    layer.window_mask = mask
    with torch.no_grad():
        assert not torch.isnan(layer(torch.randn(1, 8, 4, 4))).any()  # every query, corners too, has its own key
