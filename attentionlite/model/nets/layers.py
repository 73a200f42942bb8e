"""Local self-attention layers of Stand-Alone Self-Attention (Ramachandran et al. 2019, arXiv:1906.05909).

:class:`LocalSelfAttention` replaces a spatial convolution: for every pixel
(y, x) it attends over the k x k neighbourhood around it (Eq. 3 of the paper)::

    out_yx = sum_{a,b in N_k(y,x)} softmax_ab(q_yx . (k_ab + r_{a-y, b-x})) v_ab

with 1x1 query/key/value projections, ``heads`` heads of ``out_channels //
heads`` channels each, and relative position embeddings ``r`` split into a row
and a column part.

Conventions chosen here:

* **Window.** The window of (y, x) covers rows ``y - k//2 ... y + k - 1 - k//2``
  (centred for odd k; for even k, such as the stem's 4, one more row below than
  above), likewise columns.  Positions outside the image are *padding*: they are
  masked out of the softmax, so a corner pixel normalises over the valid part of
  its window only.  Every window contains its own centre, so no row is empty.
* **Relative embeddings.** Within each head of d channels, query channels
  ``[0, d/2)`` meet the row-offset embedding and ``[d/2, d)`` the column-offset
  embedding, so every head sees both offsets (Sec. 3.1: "each with dimension
  1/2 d_out").  ``rel_rows`` (C/2, k) holds the row halves of all heads, head
  after head; ``rel_cols`` (C/2, k) the column halves.  Hence head channels must
  be even.  Because a row embedding depends only on the row offset, the relative
  logits are two small products, q_rows . r_rows (k values) plus q_cols . r_cols
  (k values), broadcast over the k x k window.
* **Stride.** Attention always runs at full resolution; ``stride=2`` adds a 2x2
  average pool after it (``pool`` submodule, otherwise ``nn.Identity``).
* **Logits** are not scaled by 1/sqrt(d), as in the paper's Eq. 2.

MAC convention (what :func:`attentionlite.model.nets.complexity.count_macs` counts;
C = out_channels summed over heads, Q = queries = batch * H * W):

* projections: 1x1 convolutions;
* window logits q . k over the full k x k window, padding included: Q * k*k * C;
* relative logits through the row/column split: Q * k * C;
* softmax: no MACs (vector work);
* weighted sum of values: Q * k*k * C; the stem's value mixture multiplies this
  by ``mixtures``.  The stem has no relative term (Eq. 4: position enters
  through the values), and its mixture table depends on parameters only (a
  constant at inference), so it is not counted.

Speed and memory: :func:`window_dot` and :func:`window_sum` are autograd
functions that walk the k*k offsets, each a shifted view of the zero-padded
keys or values, so no k*k copies of keys or values (as ``F.unfold`` makes) are
ever held; backward saves only the inputs and the attention weights
(k*k, B, heads, H, W).  ``benchmarks/attention_speed.py`` compares the two.
For torch.fx they are leaf calls (as is the padding mask); softmax stays a
traced op.  The softmax and the weighted sum are submodules of each attention
layer (:class:`WindowSoftmax`, :class:`WindowWeightedSum`), so forward hooks
can time them apart from the layer (``attentionlite cpu --measure``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn


def window_padding(kernel_size: int) -> tuple[int, int]:
    """Padding (before, after) along each axis so that a window holds k positions around a pixel."""
    before = kernel_size // 2
    return before, kernel_size - 1 - before


def _pad(tensor: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad the last two (spatial) axes of ``tensor`` for a k x k window."""
    before, after = window_padding(kernel_size)
    return F.pad(tensor, (before, after, before, after))


def _crop(padded: torch.Tensor, kernel_size: int, height: int, width: int) -> torch.Tensor:
    """The image part of a map padded by :func:`_pad`."""
    before, _ = window_padding(kernel_size)
    return padded[..., before : before + height, before : before + width]


def _windows(kernel_size: int, height: int, width: int):
    """(offset index, slice of the padded map) for each window position, offset index = row * k + col."""
    for row in range(kernel_size):
        for col in range(kernel_size):
            yield row * kernel_size + col, (..., slice(row, row + height), slice(col, col + width))


@contextmanager
def _untraced():
    """Pause torch.jit tracing inside a window function.

    The tracer (used by fvcore to count MACs) records the autograd function as
    one ``prim::PythonOp``; without the pause it also records the k*k inner
    steps, which makes tracing a student take tens of seconds.
    """
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


class WindowDot(torch.autograd.Function):
    """Window logits q_yx . k_ab over every k x k neighbourhood, per head.

    queries, keys: (B, G, d, H, W) -> logits (k*k, B, G, H, W); padding positions
    get 0 (to be masked).  Offsets first, so each offset's logits are one
    contiguous block; the sum over d adds whole H x W planes.
    """

    @staticmethod
    def forward(ctx, queries: torch.Tensor, keys: torch.Tensor, kernel_size: int) -> torch.Tensor:
        batch, groups, _, height, width = queries.shape
        keys_padded = _pad(keys, kernel_size)  # (B, G, d, H+k-1, W+k-1)
        logits = queries.new_empty(kernel_size**2, batch, groups, height, width)
        with _untraced():
            for index, window in _windows(kernel_size, height, width):
                torch.sum(queries * keys_padded[window], dim=2, out=logits[index])
        ctx.save_for_backward(queries, keys)
        ctx.kernel_size = kernel_size
        return logits

    @staticmethod
    def backward(ctx, grad_logits: torch.Tensor):
        queries, keys = ctx.saved_tensors
        kernel_size = ctx.kernel_size
        height, width = queries.shape[-2:]
        keys_padded = _pad(keys, kernel_size)
        grad_queries = torch.zeros_like(queries)
        grad_keys_padded = torch.zeros_like(keys_padded)
        for index, window in _windows(kernel_size, height, width):
            grad = grad_logits[index].unsqueeze(2)  # (B, G, 1, H, W)
            grad_queries.addcmul_(grad, keys_padded[window])
            grad_keys_padded[window].addcmul_(grad, queries)
        return grad_queries, _crop(grad_keys_padded, kernel_size, height, width), None


class WindowSum(torch.autograd.Function):
    """Weighted sum of the values in every k x k neighbourhood, per head.

    weights (k*k, B, G, H, W), values (B, G, d, H, W) -> (B, G, d, H, W).
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, kernel_size: int) -> torch.Tensor:
        height, width = values.shape[-2:]
        values_padded = _pad(values, kernel_size)  # (B, G, d, H+k-1, W+k-1)
        out = torch.zeros_like(values)
        with _untraced():
            for index, window in _windows(kernel_size, height, width):
                out.addcmul_(weights[index].unsqueeze(2), values_padded[window])
        ctx.save_for_backward(weights, values)
        ctx.kernel_size = kernel_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weights, values = ctx.saved_tensors
        kernel_size = ctx.kernel_size
        height, width = values.shape[-2:]
        values_padded = _pad(values, kernel_size)
        grad_weights = torch.empty_like(weights)
        grad_values_padded = torch.zeros_like(values_padded)
        for index, window in _windows(kernel_size, height, width):
            torch.sum(grad_out * values_padded[window], dim=2, out=grad_weights[index])
            grad_values_padded[window].addcmul_(weights[index].unsqueeze(2), grad_out)
        return grad_weights, _crop(grad_values_padded, kernel_size, height, width), None


def window_dot(queries: torch.Tensor, keys: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, G, d, H, W) x2 -> window logits (k*k, B, G, H, W); see :class:`WindowDot`."""
    return WindowDot.apply(queries, keys, kernel_size)


def window_sum(weights: torch.Tensor, values: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(k*k, B, G, H, W), (B, G, d, H, W) -> (B, G, d, H, W); see :class:`WindowSum`."""
    return WindowSum.apply(weights, values, kernel_size)


def window_padding_mask(logits: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """True where a window position of ``logits`` (k*k, B, G, H, W) lies outside the image: (k*k, 1, 1, H, W)."""
    height, width = logits.shape[-2:]
    before, _ = window_padding(kernel_size)
    offsets = torch.arange(kernel_size, device=logits.device) - before  # (k,)
    rows_out = _outside(offsets, height)  # (k, H)
    cols_out = _outside(offsets, width)  # (k, W)
    mask = rows_out[:, None, :, None] | cols_out[None, :, None, :]  # (k, k, H, W)
    return mask.reshape(kernel_size**2, 1, 1, height, width)


def _outside(offsets: torch.Tensor, size: int) -> torch.Tensor:
    """(k, size) booleans: whether position + offset falls outside 0..size-1."""
    shifted = torch.arange(size, device=offsets.device)[None, :] + offsets[:, None]
    return (shifted < 0) | (shifted >= size)


def masked_window_softmax(logits: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Softmax over each window (axis 0 of (k*k, B, G, H, W)) with padding positions excluded."""
    mask = window_padding_mask(logits, kernel_size)
    return logits.masked_fill(mask, float("-inf")).softmax(dim=0)


class WindowSoftmax(nn.Module):
    """:func:`masked_window_softmax` as a submodule of its attention layer, so hooks can time it apart."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return masked_window_softmax(logits, self.kernel_size)  # (k*k, B, G, H, W)


class WindowWeightedSum(nn.Module):
    """:func:`window_sum` as a submodule of its attention layer, so hooks can time it apart."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return window_sum(weights, values, self.kernel_size)  # (B, G, d, H, W)


# torch.fx treats these as leaf calls: their loops and shape logic stay out of a traced graph.
torch.fx.wrap("window_dot")
torch.fx.wrap("window_sum")
torch.fx.wrap("window_padding_mask")


def _split_heads(features: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, G, C/G, H, W), a view."""
    return features.unflatten(1, (groups, -1))


def _head_channels(out_channels: int, heads: int, even: bool) -> int:
    """Channels per head; raises ValueError when they do not divide (evenly, if ``even``)."""
    if heads < 1 or out_channels % heads or (even and (out_channels // heads) % 2):
        parity = " and an even number per head" if even else ""
        raise ValueError(f"out_channels={out_channels} must split into heads={heads}{parity}")
    return out_channels // heads


def _projection(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)


def _downsample(stride: int) -> nn.Module:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return nn.AvgPool2d(2) if stride == 2 else nn.Identity()


class LocalSelfAttention(nn.Module):
    """SASA local self-attention (Ramachandran et al. 2019, Sec. 2.2 and 3.1); conventions in the module doc.

    ``window_mask`` is a fixed per-head pattern of window positions, a bool buffer of (heads, k*k) with True
    where a head attends (``attentionlite sparsify-attention``; it keeps the query's own position, offset
    (0, 0), so no query is left without a key); None, the default, attends to the whole window.
    """

    window_mask: torch.Tensor | None
    in_channels: int
    out_channels: int
    kernel_size: int
    heads: int
    head_channels: int
    stride: int

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, heads: int = 8, stride: int = 1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.heads, self.stride = kernel_size, heads, stride
        self.head_channels = _head_channels(out_channels, heads, even=True)
        self.query = _projection(in_channels, out_channels)
        self.key = _projection(in_channels, out_channels)
        self.value = _projection(in_channels, out_channels)
        # Unit-variance embeddings, as in the public SASA implementations.
        self.rel_rows = nn.Parameter(torch.randn(out_channels // 2, kernel_size))
        self.rel_cols = nn.Parameter(torch.randn(out_channels - out_channels // 2, kernel_size))
        self.softmax = WindowSoftmax(kernel_size)
        self.weighted_sum = WindowWeightedSum(kernel_size)
        self.pool = _downsample(stride)
        self.register_buffer("window_mask", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = _split_heads(self.query(x), self.heads)  # (B, G, d, H, W)
        keys = _split_heads(self.key(x), self.heads)
        values = _split_heads(self.value(x), self.heads)
        logits = window_dot(queries, keys, self.kernel_size) + self._relative_logits(queries)
        if self.window_mask is not None:  # (G, k*k) -> (k*k, 1, G, 1, 1) over the logits' axes
            logits = logits.masked_fill(~self.window_mask.t()[:, None, :, None, None], float("-inf"))
        attention = self.softmax(logits)  # (k*k, B, G, H, W)
        out = self.weighted_sum(attention, values)  # (B, G, d, H, W)
        return self.pool(out.flatten(1, 2))

    def _relative_logits(self, queries: torch.Tensor) -> torch.Tensor:
        """q . r for every window position: row part + column part, (B, G, d, H, W) -> (k*k, B, G, H, W)."""
        half, k = self.head_channels // 2, self.kernel_size
        rows = self.rel_rows.view(self.heads, half, k)
        cols = self.rel_cols.view(self.heads, half, k)
        row_logits = torch.einsum("bgcyx,gci->ibgyx", queries[:, :, :half], rows)  # (k, B, G, H, W)
        col_logits = torch.einsum("bgcyx,gcj->jbgyx", queries[:, :, half:], cols)  # (k, B, G, H, W)
        window = row_logits.unsqueeze(1) + col_logits.unsqueeze(0)  # (k, k, B, G, H, W)
        return window.flatten(0, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, heads={self.heads}, "
            f"stride={self.stride}"
        )


class AttentionStem(nn.Module):
    """The spatially-aware attention stem of SASA (Ramachandran et al. 2019, Sec. 3.2, Eqs. 4-5).

    Logits are q_yx . k_ab over the k x k window (no relative term: position
    enters through the values).  Each key position (a, b) offers a value mixed
    from ``mixtures`` value projections, weighted by its offset in the window::

        v_ab = sum_m p(a, b, m) W_V^m x_ab,   p(a, b, m) = softmax_m((emb_row(a) + emb_col(b)) . nu^m)

    ``value`` is one 1x1 conv to ``mixtures * out_channels`` channels, ordered
    (mixture, head, head channel); ``mixture_rows``/``mixture_cols`` (k, E) are
    emb_row/emb_col and ``mixture_embeddings`` (mixtures, E) the nu^m, E = out_channels.
    Since p depends on the offset only, out = sum_m window_sum(attention * p_m, V^m).
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    heads: int
    head_channels: int
    mixtures: int
    stride: int

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 4, heads: int = 1, mixtures: int = 4, stride: int = 1
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.heads, self.mixtures, self.stride = kernel_size, heads, mixtures, stride
        self.head_channels = _head_channels(out_channels, heads, even=False)
        self.query = _projection(in_channels, out_channels)
        self.key = _projection(in_channels, out_channels)
        self.value = _projection(in_channels, mixtures * out_channels)
        self.mixture_rows = nn.Parameter(torch.randn(kernel_size, out_channels))
        self.mixture_cols = nn.Parameter(torch.randn(kernel_size, out_channels))
        # Scaled so the mixture logits start at unit order, not saturating the softmax over mixtures.
        self.mixture_embeddings = nn.Parameter(torch.randn(mixtures, out_channels) / out_channels**0.5)
        self.softmax = WindowSoftmax(kernel_size)
        self.weighted_sum = WindowWeightedSum(kernel_size)
        self.pool = _downsample(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = _split_heads(self.query(x), self.heads)  # (B, G, d, H, W)
        keys = _split_heads(self.key(x), self.heads)
        values = _split_heads(self.value(x), self.mixtures * self.heads)  # (B, m*G, d, H, W)
        attention = self.softmax(window_dot(queries, keys, self.kernel_size))  # (k*k, B, G, H, W)
        mixture = self.mixture_weights().t()[:, None, :, None, None, None]  # (k*k, 1, m, 1, 1, 1)
        weights = (attention.unsqueeze(2) * mixture).flatten(2, 3)  # (k*k, B, m*G, H, W)
        out = self.weighted_sum(weights, values)  # (B, m*G, d, H, W)
        out = out.flatten(1, 2).unflatten(1, (self.mixtures, self.out_channels)).sum(dim=1)  # (B, C, H, W)
        return self.pool(out)

    def mixture_weights(self) -> torch.Tensor:
        """p(a, b, m) as (mixtures, k*k): softmax over mixtures of (emb_row(a) + emb_col(b)) . nu^m."""
        positions = (self.mixture_rows[:, None, :] + self.mixture_cols[None, :, :]).flatten(0, 1)  # (k*k, E)
        # Broadcast product, not a matmul: an input-independent table, left out of the MAC count.
        logits = (positions[None, :, :] * self.mixture_embeddings[:, None, :]).sum(dim=-1)  # (m, k*k)
        return logits.softmax(dim=0)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, heads={self.heads}, "
            f"mixtures={self.mixtures}, stride={self.stride}"
        )
