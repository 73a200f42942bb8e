"""Masks, sparse momentum's prune/redistribute/regrow, column pruning and compaction."""

import math

import pytest
import torch
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.nets.complexity import count_macs
from attentionlite.model.nets.gathered import GatheredConv2d, compact_model
from attentionlite.model.nets.layers import LocalSelfAttention
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.sparsity import (
    SparseMomentum,
    allocate_units,
    apply_masks,
    cosine_prune_rate,
    density,
    initial_masks,
    masked_parameters,
)


class TwoLinear(nn.Module):
    """Two bias-free linear layers: a toy model whose every mask is easy to write by hand."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 1, bias=False)
        self.b = nn.Linear(8, 1, bias=False)

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_masked_tensors_are_conv_projection_and_classifier_weights_only():
    layer = LocalSelfAttention(8, 8, kernel_size=3, heads=2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), layer)
    names = set(masked_parameters(model))
    assert names == {"0.weight", "2.query.weight", "2.key.weight", "2.value.weight"}


def test_initial_masks_hit_the_target_count_exactly_and_zero_masked_weights():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 7, 1), nn.Flatten(), nn.Linear(7, 10))
    total = 16 * 27 + 7 * 16 + 10 * 7  # = 614 maskable weights
    masks = initial_masks(model, 0.1, seed=3)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * total)  # 61
    apply_masks(model, masks)
    for name, parameter in model.named_parameters():
        if name in masks:
            assert torch.all(parameter[~masks[name]] == 0)
        else:
            assert torch.count_nonzero(parameter) == parameter.numel()  # biases stay dense


def test_initial_masks_are_uniform_per_layer():
    model = nn.Sequential(nn.Linear(100, 10), nn.Linear(10, 50))
    masks = initial_masks(model, 0.2, seed=0)
    assert [int(m.sum()) for m in masks.values()] == [200, 100]


def test_initial_masks_are_seeded():
    model = nn.Linear(30, 30)
    assert torch.equal(initial_masks(model, 0.3, seed=1)["weight"], initial_masks(model, 0.3, seed=1)["weight"])
    assert not torch.equal(initial_masks(model, 0.3, seed=1)["weight"], initial_masks(model, 0.3, seed=2)["weight"])


def test_column_masks_keep_whole_columns():
    conv = nn.Conv2d(4, 6, 3)
    mask = initial_masks(conv, 0.25, mode="column", seed=0)["weight"]  # 36 columns of 6 weights
    columns = mask.flatten(1)  # (6, 36)
    assert torch.equal(columns, columns[:1].expand_as(columns))
    assert int(columns[0].sum()) == 9


@pytest.mark.parametrize("name", ["sasa26_homogeneous", "sasa26_hybrid", "resnet50"])
def test_column_masks_start_every_layer_of_a_model_at_the_target_density(name):
    # Layers differ wildly in columns and in weights per column (fc: 2048 columns of 10 weights,
    # a 3x3 conv: 9 * C columns of C_out): each must start within one column of 10%.
    model = create_model(name, num_classes=10)
    masks = initial_masks(model, 0.1, mode="column", seed=0)
    for parameter_name, mask in masks.items():
        columns = mask.flatten(1).shape[1]
        kept = int(mask.flatten(1)[0].sum())
        assert abs(kept - 0.1 * columns) < 1, parameter_name
    total = sum(mask.numel() for mask in masks.values())
    assert abs(density(masks) * total - round(0.1 * total)) < max(m.shape[0] for m in masks.values())


def test_bad_density_and_mode_are_input_errors():
    with pytest.raises(InputError, match="density"):
        initial_masks(nn.Linear(2, 2), 0.0)
    with pytest.raises(InputError, match="prune mode"):
        initial_masks(nn.Linear(2, 2), 0.5, mode="rows")


def test_allocate_units_proportional_with_overflow_to_the_other_layer():
    assert allocate_units(10, shares=[1.0, 1.0], room=[3, 100], cost=[1, 1]) == [3, 7]
    assert allocate_units(12, shares=[3.0, 1.0], room=[100, 100], cost=[1, 1]) == [9, 3]


def test_allocate_units_with_costly_units_spends_the_budget_on_cheaper_ones():
    # Layer 0's units cost 4 weights: two fit (8), the remaining 2 weights go to layer 1.
    assert allocate_units(10, shares=[1.0, 0.0], room=[5, 5], cost=[4, 1]) == [2, 2]


def test_cosine_prune_rate():
    assert cosine_prune_rate(0.5, 0, 10) == pytest.approx(0.5)
    assert cosine_prune_rate(0.5, 5, 10) == pytest.approx(0.25)
    assert cosine_prune_rate(0.5, 10, 10) == pytest.approx(0.0, abs=1e-12)


def _toy_sparse_momentum():
    """Layer a: active weights 0.1, 0.5, 0.9, 2.0 at 0..3, momentum 3 there; b: 4 active, momentum 1."""
    model = TwoLinear()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[0.1, 0.5, 0.9, 2.0, 0, 0, 0, 0]]))
        model.b.weight.copy_(torch.tensor([[0, 0, 0, 0, -1.0, 0.2, 3.0, -0.3]]))
    masks = {"a.weight": model.a.weight != 0, "b.weight": model.b.weight != 0}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    momentum_a = torch.tensor([[3.0, 3.0, 3.0, 3.0, 0.5, 9.0, 0.1, 7.0]])
    momentum_b = torch.tensor([[8.0, 0.2, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
    optimizer.state[model.a.weight]["momentum_buffer"] = momentum_a
    optimizer.state[model.b.weight]["momentum_buffer"] = momentum_b
    return model, masks, optimizer


def test_prune_redistribute_regrow_on_a_toy_layer():
    model, masks, optimizer = _toy_sparse_momentum()
    sparse = SparseMomentum(model, masks, prune_rate=0.5)
    sparse.prune_and_regrow(optimizer, epoch=0, epochs=4)  # rate 0.5: each layer prunes 2 of its 4
    # Pruned: a's 0.1, 0.5 (positions 0, 1); b's 0.2, -0.3 (positions 5, 7).
    # Regrowth of 4 split by mean active momentum 3 : 1 -> a gets 3, b gets 1.
    # a regrows its 3 largest-momentum zeros: positions 5 (9.0), 7 (7.0), 0 (3.0 beats 1's tie by index).
    # b regrows its largest-momentum zero: position 0 (8.0).
    assert sparse.masks["a.weight"].flatten().tolist() == [1, 0, 1, 1, 0, 1, 0, 1]
    assert sparse.masks["b.weight"].flatten().tolist() == [1, 0, 0, 0, 1, 0, 1, 0]
    # Regrown weights start at zero; pruned ones are zeroed.
    assert model.a.weight.flatten().tolist() == pytest.approx([0, 0, 0.9, 2.0, 0, 0, 0, 0])
    assert model.b.weight.flatten().tolist() == pytest.approx([0, 0, 0, 0, -1.0, 0, 3.0, 0])


def test_redistribution_never_prunes_a_layer_below_half_its_initial_units():
    model, masks, optimizer = _toy_sparse_momentum()
    optimizer.state[model.b.weight]["momentum_buffer"] = torch.zeros(1, 8)  # b claims no regrowth at all
    sparse = SparseMomentum(model, masks, prune_rate=0.5)
    for epoch in range(4):
        sparse.prune_and_regrow(optimizer, epoch, epochs=8)
        # Unbounded, b would fall 4 -> 2 -> 1 -> 0; the floor keeps half of its initial 4.
        assert int(sparse.masks["b.weight"].sum()) == 2
        assert sparse.kept_count() == 8


def _shake(model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    """An epoch's worth of change, drawn at random: new momentum and a step on every weight."""
    for weight in model.parameters():
        optimizer.state[weight]["momentum_buffer"] = torch.randn(weight.shape, generator=generator)
        weight.data.add_(torch.randn(weight.shape, generator=generator))


def test_sparse_momentum_keeps_the_exact_count_over_many_steps():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(16, 10))
    masks = initial_masks(model, 0.1, seed=0)
    target = sum(int(m.sum()) for m in masks.values())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sparse = SparseMomentum(model, masks)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(5):
        _shake(model, optimizer, generator)
        sparse.prune_and_regrow(optimizer, epoch, epochs=6)
        assert sum(int(m.sum()) for m in sparse.masks.values()) == target
        assert sum(int(torch.count_nonzero(w)) for w in sparse.weights.values()) <= target


def test_column_sparse_momentum_stays_column_structured_and_within_a_column_of_target():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(16, 10))
    masks = initial_masks(model, 0.2, mode="column", seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sparse = SparseMomentum(model, masks, mode="column")
    # the initial masks: 5.4, 14.4 and 3.2 columns at 20% -> 6 x 8 + 14 x 16 + 3 x 10 = 302 of 306 weights
    assert sparse.target_count == 302
    for epoch in range(3):
        for weight in model.parameters():
            optimizer.state[weight]["momentum_buffer"] = torch.randn(weight.shape)
        sparse.prune_and_regrow(optimizer, epoch, epochs=4)
        kept = sum(int(m.sum()) for m in sparse.masks.values())
        assert 302 - 8 < kept <= 302  # short by less than the cheapest column (the first conv's 8 weights)
        for mask in sparse.masks.values():
            columns = mask.flatten(1)
            assert torch.equal(columns, columns[:1].expand_as(columns))


def test_density_counts_weights():
    assert density({"a": torch.tensor([True, False, False, False]), "b": torch.ones(4, dtype=torch.bool)}) == 5 / 8


def _column_pruned(model, target_density):
    masks = initial_masks(model, target_density, mode="column", seed=0)
    apply_masks(model, masks)
    return model.eval(), masks


@pytest.mark.parametrize("name", ["resnet26", "sasa26_homogeneous"])  # conv layers; attention stem + SASA layers
def test_compaction_gives_the_same_outputs_with_fewer_parameters(name):
    overrides = {"heads": 2, "kernel_size": 3} if name.startswith("sasa") else {}
    model, masks = _column_pruned(create_model(name, width=0.125, **overrides), 0.3)
    compacted = compact_model(model, masks).eval()
    images = torch.randn(2, 3, 16, 16)  # the models are resolution-agnostic; 16 px keeps the test fast
    with torch.no_grad():
        assert torch.allclose(compacted(images), model(images), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in compacted.parameters()) < sum(p.numel() for p in model.parameters())


def test_compaction_cuts_macs_by_the_removed_columns():
    model, masks = _column_pruned(create_model("resnet26", width=0.125), 0.3)
    compacted = compact_model(model, masks)
    removed = sum(int((~mask).sum()) * positions for mask, positions in _positions(model, masks))
    assert count_macs(compacted, 16) == count_macs(model, 16) - removed


def _positions(model, masks):
    """(mask, output positions at 16 px) of each masked layer, read off a forward pass."""
    sizes = {}
    hooks = [model.get_submodule(n.removesuffix(".weight")).register_forward_hook(
        lambda m, i, o, n=n: sizes.__setitem__(n, o[0, 0].numel() if o.dim() == 4 else 1)) for n in masks]
    model(torch.zeros(1, 3, 16, 16))
    for hook in hooks:
        hook.remove()
    return [(mask, sizes[name]) for name, mask in masks.items()]


def test_gathered_conv_matches_a_strided_padded_conv():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True)
    kept = torch.tensor([0, 4, 8, 13, 26])  # 5 of the 27 (in, kh, kw) columns
    mask = torch.zeros(27, dtype=torch.bool)
    mask[kept] = True
    with torch.no_grad():
        conv.weight.mul_(mask.view(1, 3, 3, 3))
    gathered = GatheredConv2d(conv, kept)
    images = torch.randn(2, 3, 9, 9)
    assert gathered.weight.shape == (5, 5)
    assert torch.allclose(gathered(images), conv(images), atol=1e-6)


def test_compacting_an_unstructured_mask_is_an_input_error():
    model = nn.Sequential(nn.Linear(6, 6))
    masks = initial_masks(model, 0.5, seed=0)
    with pytest.raises(InputError, match="not column-structured"):
        compact_model(model, masks)


def test_sparse_momentum_rejects_masks_for_other_tensors():
    model = TwoLinear()
    with pytest.raises(InputError, match="masks"):
        SparseMomentum(model, {"a.weight": torch.ones(1, 8, dtype=torch.bool)})


def test_cosine_rate_is_half_cosine():
    assert cosine_prune_rate(1.0, 1, 3) == pytest.approx((1 + math.cos(math.pi / 3)) / 2)


def _groups_of(mask: torch.Tensor, block: int) -> torch.Tensor:
    """Kept weights in each group of ``block`` along each row of the (out, in*kh*kw) matrix, by hand."""
    rows = mask.flatten(1).int()
    return torch.stack([rows[:, start:start + block].sum(1) for start in range(0, rows.shape[1], block)], 1)


def _small_convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.Flatten(), nn.Linear(8 * 4, 10))  # K = 36 and 32


def test_n_of_m_masks_keep_n_of_every_group():
    masks = initial_masks(_small_convnet(), 0.5, mode="nm", seed=0)  # 2:4
    conv, linear = masks.values()
    assert torch.all(_groups_of(conv, 4) == 2) and torch.all(_groups_of(linear, 4) == 2)
    assert int(conv.sum()) == 8 * 18 and int(linear.sum()) == 10 * 16  # 9 and 8 groups of 4 per row


def test_a_short_last_group_keeps_at_most_n():
    conv = initial_masks(_small_convnet(), 0.25, mode="nm", seed=0, block=8)["0.weight"]  # 2:8
    # K = 36: four groups of 8 keep 2 each, the last group of 4 keeps 2
    assert _groups_of(conv, 8).tolist() == [[2, 2, 2, 2, 2]] * 8


@pytest.mark.parametrize("fraction, block", [(0.1, 4), (0.5, 1), (1 / 3, 4)])
def test_a_density_that_is_not_n_of_m_is_refused(fraction, block):
    with pytest.raises(InputError, match=f"expected a density of N/{block}"):
        initial_masks(_small_convnet(), fraction, mode="nm", block=block)


def test_n_of_m_sparse_momentum_stays_n_of_m():
    model = _small_convnet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sparse = SparseMomentum(model, initial_masks(model, 0.5, mode="nm", seed=0), mode="nm")
    before = {name: mask.clone() for name, mask in sparse.masks.items()}
    generator = torch.Generator().manual_seed(0)
    for epoch in range(3):
        _shake(model, optimizer, generator)
        sparse.prune_and_regrow(optimizer, epoch, epochs=4)
        assert all(torch.all(_groups_of(mask, 4) == 2) for mask in sparse.masks.values())
    assert any(not torch.equal(before[name], mask) for name, mask in sparse.masks.items())  # it did move
