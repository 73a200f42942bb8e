"""LocalSelfAttention and AttentionStem against per-pixel loop references written from the SASA equations."""

import math

import pytest
import torch
from torch import nn

from attentionlite.model.nets.complexity import count_macs
from attentionlite.model.nets.layers import AttentionStem, LocalSelfAttention, window_dot, window_sum


def _project(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution without bias, written as a channel contraction."""
    return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x)


def _window(y: int, x: int, kernel_size: int, height: int, width: int):
    """(window row, window column, image row, image column) of the in-image positions around (y, x)."""
    first = kernel_size // 2
    for i in range(kernel_size):
        for j in range(kernel_size):
            row, col = y + i - first, x + j - first
            if 0 <= row < height and 0 <= col < width:
                yield i, j, row, col


def _average_pool(out: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = out.shape
    return out.view(batch, channels, height // 2, 2, width // 2, 2).mean(dim=(3, 5))


def naive_local_attention(layer: LocalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Eq. 3 of Ramachandran et al. 2019, one pixel and one head at a time."""
    queries, keys, values = (_project(conv, x) for conv in (layer.query, layer.key, layer.value))
    batch, channels, height, width = queries.shape
    d, half = layer.head_channels, layer.head_channels // 2
    out = torch.zeros_like(queries)
    for b in range(batch):
        for y in range(height):
            for x0 in range(width):
                for head in range(layer.heads):
                    heads_channels = slice(head * d, (head + 1) * d)
                    halves = slice(head * half, (head + 1) * half)
                    logits, window_values = [], []
                    for i, j, row, col in _window(y, x0, layer.kernel_size, height, width):
                        offset = torch.cat([layer.rel_rows[halves, i], layer.rel_cols[halves, j]])
                        logits.append(queries[b, heads_channels, y, x0] @ (keys[b, heads_channels, row, col] + offset))
                        window_values.append(values[b, heads_channels, row, col])
                    weights = torch.softmax(torch.stack(logits), dim=0)
                    out[b, heads_channels, y, x0] = (weights[:, None] * torch.stack(window_values)).sum(dim=0)
    return _average_pool(out) if layer.stride == 2 else out


def naive_attention_stem(stem: AttentionStem, x: torch.Tensor) -> torch.Tensor:
    """Eqs. 4-5 of Ramachandran et al. 2019: softmax(q . k) over the window, values mixed by window position."""
    queries, keys = _project(stem.query, x), _project(stem.key, x)
    mixture_values = _project(stem.value, x).unflatten(1, (stem.mixtures, stem.out_channels))  # (B, m, C, H, W)
    k = stem.kernel_size
    position = stem.mixture_rows[:, None, None, :] + stem.mixture_cols[None, :, None, :]  # (k, k, 1, E)
    mixture = torch.softmax((position * stem.mixture_embeddings).sum(-1), dim=-1)  # (k, k, m)
    batch, channels, height, width = queries.shape
    d = stem.head_channels
    out = torch.zeros_like(queries)
    for b in range(batch):
        for y in range(height):
            for x0 in range(width):
                for head in range(stem.heads):
                    heads_channels = slice(head * d, (head + 1) * d)
                    logits, window_values = [], []
                    for i, j, row, col in _window(y, x0, k, height, width):
                        logits.append(queries[b, heads_channels, y, x0] @ keys[b, heads_channels, row, col])
                        per_mixture = mixture_values[b, :, heads_channels, row, col]  # (m, d)
                        window_values.append((mixture[i, j][:, None] * per_mixture).sum(dim=0))
                    weights = torch.softmax(torch.stack(logits), dim=0)
                    out[b, heads_channels, y, x0] = (weights[:, None] * torch.stack(window_values)).sum(dim=0)
    return _average_pool(out) if stem.stride == 2 else out


@pytest.mark.parametrize(
    "kernel_size, heads, stride, side",
    [(3, 2, 1, 5), (5, 4, 2, 6), (7, 2, 1, 4), (4, 2, 2, 6)],
    ids=["k3", "k5-stride2", "k7-window-larger-than-image", "k4-even"],
)
def test_local_attention_matches_per_pixel_reference(kernel_size, heads, stride, side):
    torch.manual_seed(0)
    layer = LocalSelfAttention(3, 8, kernel_size=kernel_size, heads=heads, stride=stride).double()
    x = torch.randn(1, 3, side, side + 2 * (stride == 1), dtype=torch.double)
    with torch.no_grad():
        expected = naive_local_attention(layer, x)
        actual = layer(x)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_local_attention_float32_matches_reference():
    torch.manual_seed(1)
    layer = LocalSelfAttention(4, 8, kernel_size=3, heads=2)
    x = torch.randn(1, 4, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), naive_local_attention(layer, x), atol=1e-5, rtol=0)


def test_local_attention_gradients_match_reference():
    torch.manual_seed(2)
    layer = LocalSelfAttention(3, 4, kernel_size=3, heads=2, stride=2).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.double, requires_grad=True)
    weights = torch.randn(1, 4, 2, 2, dtype=torch.double)
    grads = [torch.autograd.grad((fn(layer, x) * weights).sum(), [x, *layer.parameters()]) for fn in
             (lambda module, inputs: module(inputs), naive_local_attention)]
    for actual, expected in zip(*grads):
        torch.testing.assert_close(actual, expected, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("kernel_size, heads, mixtures, stride", [(4, 1, 4, 1), (3, 2, 3, 2)])
def test_attention_stem_matches_per_pixel_reference(kernel_size, heads, mixtures, stride):
    torch.manual_seed(3)
    stem = AttentionStem(3, 4, kernel_size=kernel_size, heads=heads, mixtures=mixtures, stride=stride).double()
    x = torch.randn(2, 3, 4, 6, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(stem(x), naive_attention_stem(stem, x), atol=1e-5, rtol=0)


def test_window_functions_pass_gradcheck():
    torch.manual_seed(4)
    queries = torch.randn(1, 2, 2, 3, 4, dtype=torch.double, requires_grad=True)  # (B, G, d, H, W)
    keys = torch.randn(1, 2, 2, 3, 4, dtype=torch.double, requires_grad=True)
    weights = torch.randn(9, 1, 2, 3, 4, dtype=torch.double, requires_grad=True)  # (k*k, B, G, H, W)
    assert torch.autograd.gradcheck(lambda q, k: window_dot(q, k, 3), (queries, keys))
    assert torch.autograd.gradcheck(lambda w, v: window_sum(w, v, 3), (weights, keys))


def test_padding_is_excluded_not_averaged_as_zeros():
    """Equal logits everywhere: a corner pixel averages its 4 in-image neighbours (k=3), not 9 positions."""
    layer = LocalSelfAttention(1, 2, kernel_size=3, heads=1)
    with torch.no_grad():
        layer.query.weight.zero_()
        layer.key.weight.zero_()
        layer.value.weight.fill_(1.0)
        layer.rel_rows.zero_()
        layer.rel_cols.zero_()
        image = torch.arange(9.0).view(1, 1, 3, 3)
        out = layer(image)
    assert out[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 3 + 4) / 4)
    assert out[0, 0, 1, 1].item() == pytest.approx(sum(range(9)) / 9)


def test_local_attention_contract():
    layer = LocalSelfAttention(16, 32, kernel_size=5, heads=4, stride=2)
    assert (layer.in_channels, layer.out_channels, layer.kernel_size, layer.heads, layer.stride) == (16, 32, 5, 4, 2)
    for projection in (layer.query, layer.key, layer.value):
        assert isinstance(projection, nn.Conv2d) and projection.kernel_size == (1, 1) and projection.bias is None
        assert (projection.in_channels, projection.out_channels) == (16, 32)
    assert layer.rel_rows.shape == (16, 5) and layer.rel_cols.shape == (16, 5)
    assert isinstance(layer.pool, nn.AvgPool2d)
    assert isinstance(LocalSelfAttention(16, 32).pool, nn.Identity)
    stem = AttentionStem(3, 16)
    assert stem.value.out_channels == 4 * 16 and isinstance(stem.pool, nn.Identity)


@pytest.mark.parametrize("channels, heads", [(12, 8), (8, 8)])
def test_heads_must_split_channels_evenly(channels, heads):
    with pytest.raises(ValueError, match="heads"):
        LocalSelfAttention(4, channels, heads=heads)


def test_mac_count_follows_the_convention():
    """Hand count for a 3->16 layer, k=7, on 8x8: projections + q.k + relative + weighted sum."""
    queries, channels, k = 8 * 8, 16, 7
    projections = 3 * (3 * channels * queries)
    expected = projections + queries * k * k * channels + queries * k * channels + queries * k * k * channels
    assert count_macs(LocalSelfAttention(3, channels, kernel_size=k), image_size=8) == expected


def test_stem_mac_count_follows_the_convention():
    """Stem: q/k projections, m value projections, q.k over the window, weighted sum times mixtures."""
    queries, channels, k, mixtures = 8 * 8, 16, 4, 4
    projections = (2 + mixtures) * 3 * channels * queries
    expected = projections + queries * k * k * channels + queries * k * k * channels * mixtures
    assert count_macs(AttentionStem(3, channels, kernel_size=k, mixtures=mixtures), image_size=8) == expected
    assert math.isclose(expected, count_macs(AttentionStem(3, channels), image_size=8))
