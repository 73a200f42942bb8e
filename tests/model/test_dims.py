"""Dimension pruning of a ViT (SiDT): the budget by hand, gates folded without changing the function, the
masked model against its compacted form, parameters by hand, and the run from train to compact and resume."""

import dataclasses

import pytest
import torch
from click.testing import CliRunner
from interrupted import assert_same_state, whole_and_resumed  # pytest puts tests/ on sys.path

from attentionlite import api
from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.model.nets.vit_dims import Dimensions, compact_dims, keep_embedding_channels, weight_masks
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.checkpoint import load_checkpoint
from attentionlite.model.training.dims import DimensionSearch
from attentionlite.model.training.sparsity import apply_masks
from attentionlite.model.training.train import TrainConfig, train
from attentionlite.simulator.graph.tracing import trace_model

WIDTH, DEPTH, HEADS = 24, 2, 3  # head_dim 8, MLP 96 units a block
TOKENS = 66  # DeiT: 64 patches, the class and the distillation token


def _deit() -> torch.nn.Module:
    model = create_model("deit_tiny", embed_dim=WIDTH, depth=DEPTH, heads=HEADS).eval()
    with torch.no_grad():  # weights and biases far from their zero-bias initialisation
        for parameter in model.parameters():
            parameter.normal_(0, 0.3, generator=torch.Generator().manual_seed(parameter.numel()))
    return model


def _set_gates(search: DimensionSearch, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in search.gates.values():
            gate.copy_(torch.rand(gate.shape, generator=generator) * 2 - 0.5)  # some negative, some above 1


def test_the_budget_keeps_the_largest_gates_of_each_kind_exactly():
    search = DimensionSearch.of(_deit(), 0.6, search_epochs=1)
    with torch.no_grad():
        search.gates["embed"].copy_(torch.arange(WIDTH, dtype=torch.float) - 12.25)  # |g| largest at 0 and 23
        search.gates["blocks.0.heads"].copy_(torch.tensor([0.9, 0.8, 0.7]))
        search.gates["blocks.1.heads"].copy_(torch.tensor([0.1, -0.3, 0.2]))
    dims = search.kept_dimensions()
    # round(0.6 x 24) = 14 channels: |g| = 12.25 (0), 11.25 (1), 10.75 (23), 10.25 (2), ... 5.75 (18), 5.25 (7)
    assert dims.embed.nonzero().squeeze(1).tolist() == [*range(8), *range(18, 24)]
    # round(0.6 x 6) = 4 heads: block 1's largest |g| (-0.3) first, then the three largest left, all block 0's
    assert [h.tolist() for h in dims.heads] == [[True, True, True], [False, True, False]]
    assert sum(int(m.sum()) for m in dims.mlp) == 115  # round(0.6 x 192)


def test_folding_the_gates_into_the_weights_keeps_the_function():
    model = _deit()
    search = DimensionSearch.of(model, 1.0, search_epochs=1)
    _set_gates(search, 0)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        gated = model(images)
        search.harden()  # density 1: every dimension kept, so only the folding changes the weights
        assert torch.allclose(model(images), gated, atol=1e-6)


def _pruned(dims_seed: int = 0) -> tuple[torch.nn.Module, dict, Dimensions]:
    model = _deit()
    generator = torch.Generator().manual_seed(dims_seed)
    dims = Dimensions(torch.rand(WIDTH, generator=generator) < 0.6,
                      (torch.tensor([True, False, True]), torch.tensor([False, True, False])),
                      tuple(torch.rand(4 * WIDTH, generator=generator) < 0.5 for _ in range(DEPTH)))
    model.blocks[1].attn.attn_mask = torch.rand(HEADS, TOKENS, TOKENS, generator=generator) < 0.3
    model.blocks[1].attn.attn_mask[..., 0] = True
    masks = weight_masks(model, dims)
    with torch.no_grad():
        apply_masks(model, masks)
    keep_embedding_channels(model, dims.embed)
    return model, masks, dims


def test_the_compacted_vit_computes_what_the_masked_one_does():
    model, masks, _ = _pruned()
    compacted = compact_dims(model, masks)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        assert torch.allclose(compacted(images), expected, atol=1e-5 * (1 + float(expected.abs().max())))
    # block 1 keeps one head, and that head's fixed attention mask
    assert compacted.blocks[1].attn.heads == 1 and compacted.blocks[1].attn.attn_mask.shape == (1, TOKENS, TOKENS)
    assert torch.equal(compacted.blocks[1].attn.attn_mask[0], model.blocks[1].attn.attn_mask[1])


def test_the_compacted_vit_has_the_parameters_counted_by_hand():
    model, masks, dims = _pruned()
    e = int(dims.embed.sum())
    heads = [int(h.sum()) for h in dims.heads]
    units = [int(m.sum()) for m in dims.mlp]
    expected = (e * 3 * 4 * 4 + e  # 4 x 4 patches of 3 channels
                + 2 * e + TOKENS * e  # class and distillation tokens, positions
                + 2 * e + 10 * e + 10 + 10 * e + 10)  # final norm, both heads
    for h, u in zip(heads, units):
        width = 8 * h  # head_dim 8
        expected += 4 * e  # two norms
        expected += 3 * width * e + 3 * width + e * width + e  # qkv and proj
        expected += u * e + u + e * u + e  # the MLP
    assert sum(p.numel() for p in compact_dims(model, masks).parameters()) == expected
    assert sum(int(m.sum()) for m in masks.values()) == expected  # the masked model keeps as many


# --------------------------------------------------------------------------- the run, end to end


def _config(tiny_cifar, out, **changes) -> TrainConfig:
    base = TrainConfig(model="vit_tiny", dataset="cifar10", data_dir=str(tiny_cifar), out=str(out), epochs=2,
                       batch_size=5, embed_dim=WIDTH, depth=DEPTH, heads=HEADS, prune="dims", density=0.6,
                       seed=0, cache_dir=str(tiny_cifar / "cache"), progress=False)
    return dataclasses.replace(base, **changes)


def test_a_dims_run_meets_its_budget_and_compacts(tiny_cifar, tmp_path):
    metrics = train(_config(tiny_cifar, tmp_path / "run"))
    assert (metrics["kept_embed"], metrics["kept_heads"], metrics["kept_mlp"]) == (14, 4, 115)
    result = CliRunner().invoke(main, ["compact", str(tmp_path / "run" / "checkpoint.pt"),
                                       "--out", str(tmp_path / "small.pt")])
    assert result.exit_code == 0, result.output
    masked = load_checkpoint(tmp_path / "run" / "checkpoint.pt").model
    small = load_checkpoint(tmp_path / "small.pt")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(small.model(images), masked(images), atol=1e-5)
    assert small.compacted and small.model.norm.normalized_shape == (14,)
    # the compacted ViT traces at its own widths: a 14-wide classifier; and the masked checkpoint traces as
    # its compacted form, which is what hardware runs
    head = [op for op in trace_model(small.model, input_shape=(1, 3, 32, 32)).ops_in_order() if op.name == "head"]
    assert head[0].macs == 14 * 10
    masked_ops, small_ops = (api.trace(str(path)).ops_in_order() for path in (tmp_path / "run" / "checkpoint.pt",
                                                                             tmp_path / "small.pt"))
    assert [(op.name, op.macs) for op in masked_ops] == [(op.name, op.macs) for op in small_ops]


def test_a_dims_run_resumed_mid_search_gives_the_same_weights(tiny_cifar, tmp_path, monkeypatch):
    options = dict(epochs=3, search_epochs=2)
    # interrupted during the search: the gates after epoch 1 are all that resumes it
    whole, split = whole_and_resumed(_config(tiny_cifar, tmp_path / "whole", **options),
                                     _config(tiny_cifar, tmp_path / "split", **options), 1, monkeypatch)
    assert_same_state(whole, split)


def test_dims_needs_a_vit_and_an_epoch_after_the_search(tiny_cifar, tmp_path):
    with pytest.raises(InputError, match="expected a ViT or DeiT"):
        train(_config(tiny_cifar, tmp_path / "cnn", model="resnet26", embed_dim=None, depth=None, heads=None,
                      width=0.25))
    with pytest.raises(InputError, match="expected at least 2 epochs"):
        train(_config(tiny_cifar, tmp_path / "short", epochs=1))


def test_a_dims_run_resumed_after_its_budget_gives_the_same_weights(tiny_cifar, tmp_path, monkeypatch):
    options = dict(epochs=3, search_epochs=1)
    # interrupted in the last epoch: the masks, and the norms' kept channels, are what resumes it
    whole, split = whole_and_resumed(_config(tiny_cifar, tmp_path / "whole", **options),
                                     _config(tiny_cifar, tmp_path / "split", **options), 2, monkeypatch)
    assert_same_state(whole, split)
    assert split.model.blocks[0].embed_kept is not None


def test_a_masked_dims_checkpoint_costs_what_its_compacted_model_does(tiny_cifar, tmp_path):
    metrics = train(_config(tiny_cifar, tmp_path / "run"))
    compacted = compact_dims(load_checkpoint(tmp_path / "run" / "checkpoint.pt").model,
                             load_checkpoint(tmp_path / "run" / "checkpoint.pt").masks)
    # a removed head does no Q K^T or A V: the masked model's MACs are the compacted model's, by the tracer
    traced = sum(op.macs for op in trace_model(compacted, 32).ops_in_order())
    assert metrics["macs"] == traced and metrics["parameters"] == sum(p.numel() for p in compacted.parameters())
    assert metrics["dense_macs"] == sum(op.macs for op in trace_model(create_model(
        "vit_tiny", embed_dim=WIDTH, depth=DEPTH, heads=HEADS), 32).ops_in_order())
