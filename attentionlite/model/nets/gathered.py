"""Compacted layers: a column-pruned layer as the smaller dense GEMM of its kept im2col columns.

:func:`compact_model` replaces every column-masked ``nn.Conv2d`` / ``nn.Linear``
of a model by a :class:`GatheredConv2d` / :class:`GatheredLinear` that gathers
the kept columns and multiplies by the smaller weight matrix: the same outputs,
fewer parameters and MACs (see :mod:`attentionlite.model.training.sparsity` for
what a column is).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from attentionlite.errors import InputError


def compact_model(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` where each column-masked layer computes only its kept columns.

    Each masked ``nn.Conv2d`` / ``nn.Linear`` with removed columns becomes a
    :class:`GatheredConv2d` / :class:`GatheredLinear`: a gather of the kept im2col
    columns and a smaller dense GEMM.  Outputs equal the masked model's; the
    parameter count and the MACs of those layers shrink by the layer's density.
    """
    compacted = copy.deepcopy(model)
    for name, mask in masks.items():
        module_path = name.removesuffix(".weight")
        layer = compacted.get_submodule(module_path)
        kept = _kept_columns(name, mask)
        if len(kept) < mask[0].numel():
            _replace_submodule(compacted, module_path, _gathered(layer, kept))
    return compacted


class GatheredConv2d(nn.Module):
    """A convolution restricted to kept im2col columns: ``y = W[:, kept] @ unfold(x)[kept]``.

    ``weight`` is (out, kept); ``kept_columns`` index the flattened (in, kh, kw)
    positions of the original (groups = 1) convolution.
    """

    kept_columns: torch.Tensor

    def __init__(self, conv: nn.Conv2d, kept_columns: torch.Tensor):
        super().__init__()
        if isinstance(conv.padding, str):
            raise ValueError(f"padding={conv.padding!r}: a gathered convolution needs numeric padding")
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding: tuple[int, ...] = conv.padding
        self.dilation = conv.dilation
        self.out_channels = conv.out_channels
        self.register_buffer("kept_columns", kept_columns)
        self.weight = nn.Parameter(conv.weight.detach().flatten(1)[:, kept_columns].clone())  # (out, kept)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        columns = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (B, in*kh*kw, L)
        y = self.weight @ columns.index_select(1, self.kept_columns)  # (B, out, L), L = Ho*Wo
        if self.bias is not None:
            y = y + self.bias.unsqueeze(-1)
        return y.view(batch, self.out_channels, *self.output_size(height, width))

    def output_size(self, height: int, width: int) -> tuple[int, ...]:
        """(Ho, Wo) by the usual convolution arithmetic."""
        return tuple(
            (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
            for size, pad, dilation, kernel, stride in zip(
                (height, width), self.padding, self.dilation, self.kernel_size, self.stride)
        )


class GatheredLinear(nn.Module):
    """A linear layer restricted to kept input features: ``y = x[..., kept] @ W[:, kept]^T + b``."""

    kept_columns: torch.Tensor

    def __init__(self, linear: nn.Linear, kept_columns: torch.Tensor):
        super().__init__()
        self.register_buffer("kept_columns", kept_columns)
        self.weight = nn.Parameter(linear.weight.detach()[:, kept_columns].clone())  # (out, kept)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.index_select(-1, self.kept_columns), self.weight, self.bias)


def _gathered(layer: nn.Module, kept: torch.Tensor) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return GatheredLinear(layer, kept)
    if isinstance(layer, nn.Conv2d):
        return GatheredConv2d(layer, kept)
    raise TypeError(f"a {type(layer).__name__} has no weight columns to gather")


def _kept_columns(name: str, mask: torch.Tensor) -> torch.Tensor:
    """Indices of the kept columns of a column mask; any other mask is an :class:`InputError`."""
    columns = mask.flatten(1)  # (out, in*kh*kw)
    if not torch.equal(columns, columns[:1].expand_as(columns)):
        raise InputError(f"mask {name}: not column-structured; expected a checkpoint trained with column pruning (prune=column)")
    return torch.nonzero(columns[0]).flatten()


def _replace_submodule(model: nn.Module, path: str, replacement: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent_path), child, replacement)
