"""Weight masks and sparse momentum: unstructured and column pruning at a fixed density.

Sparse momentum (Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch:
Faster Training without Losing Performance", Algorithm 1):

1. Masks are at the target density from the first step.  The initial per-layer
   allocation is *uniform*: every masked tensor starts at the target density
   (as in the paper), with the rounding spread so that the overall count of
   kept weights is exactly ``round(density * total)``.  Kept positions are
   drawn at random from a seeded generator.
2. After every epoch but the last, each layer prunes ``rate * active`` of its
   active units with the smallest magnitude (a column's magnitude: the sum of
   its entries' magnitudes).  The prune rate decays with a
   cosine from ``prune_rate`` at epoch 0 towards 0 at the last epoch.  A
   layer is never pruned below half its initial units
   (:data:`MIN_KEPT_FRACTION`; not in the paper, see there why).
3. The pruned budget is regrown: each layer receives a share proportional to
   the mean momentum magnitude over its active (non-zero) weights, capped by
   the room the layer has (overflow goes to the other layers), and within a
   layer the inactive units with the largest momentum magnitude (summed over
   a column) are regrown.  Regrown weights start at zero.  The regrowth tops
   the kept count back up to the initial one, so the density never drifts.
4. Masks are re-applied after every optimiser step, so masked weights are
   exactly zero; gradients and momentum stay dense, which is what lets
   momentum point at weights worth regrowing.

What is masked: the ``weight`` of every ``nn.Conv2d`` and ``nn.Linear``: the
convolutions, the 1x1 query/key/value projections of local self-attention and
the classifier.  What stays dense: every other parameter: normalisation
scales and shifts, biases, the relative position embeddings of attention
layers and the mixture embeddings of the attention stem (few parameters, and
they carry the geometry of the window).

Units.  In ``"unstructured"`` mode the unit is one weight.  In ``"column"``
mode the unit is a column of the layer's weight matrix viewed as
``(out, in * kh * kw)`` (the im2col GEMM), i.e. one ``(in, kh, kw)`` position
across all output channels; a column-pruned layer can be compacted into a
smaller dense GEMM (:func:`compact_model`).  Grouped
convolutions (``groups > 1``) have no single weight matrix and stay dense in
column mode.  Densities are always counted in weights, so a column of a
layer with ``out`` outputs costs ``out`` weights of the budget.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attentionlite.errors import InputError

PRUNE_MODES = ("unstructured", "column")
# Pruning never takes a layer below this fraction of its initial units.  Redistribution feeds back on
# itself: layers with few active weights see the largest mean momentum, regrow, and starve the rest.
# Unbounded, it all but emptied layers of small students in short runs (a width-0.125 SASA-ResNet-26
# had layer4.0's conv3 and shortcut at 0.3% and 0.2% density after 8 of 15 epochs, a few dozen
# weights for 256 output channels, and fell to chance); bounded, a layer can still give away half
# its budget.
MIN_KEPT_FRACTION = 0.5


def masked_parameters(model: nn.Module, mode: str = "unstructured") -> dict[str, nn.Parameter]:
    """The parameters that pruning masks, by name, in ``model.named_parameters()`` order."""
    _check_mode(mode)
    found = {}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and _maskable(module, mode):
            found[_join(module_name, "weight")] = module.weight
    return found


def initial_masks(
    model: nn.Module, density: float, mode: str = "unstructured", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random masks at ``density`` with a uniform per-layer allocation (see the module docstring).

    Returns bool tensors shaped like each masked weight; the overall kept count
    is ``round(density * total)`` up to one column's worth of weights.
    """
    _check_density(density)
    weights = masked_parameters(model, mode)
    costs = [_unit_cost(w, mode) for w in weights.values()]
    units = [_unit_count(w, mode) for w in weights.values()]
    budget = round(density * sum(w.numel() for w in weights.values()))
    kept = allocate_units(budget, shares=[float(n) for n in units], room=units, cost=costs)
    generator = torch.Generator().manual_seed(seed)
    return {
        name: _unit_mask_to_weight(_random_units(n_units, n_kept, generator), weight, mode)
        for (name, weight), n_units, n_kept in zip(weights.items(), units, kept)
    }


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every weight under a False mask entry, in place."""
    parameters = dict(model.named_parameters())
    for name, mask in masks.items():
        parameters[name].mul_(mask.to(parameters[name].device, parameters[name].dtype))


def density(masks: dict[str, torch.Tensor]) -> float:
    """Kept weights over maskable weights, over all masked tensors."""
    kept = sum(int(mask.sum()) for mask in masks.values())
    return kept / max(1, sum(mask.numel() for mask in masks.values()))


def layer_densities(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Kept fraction of each masked tensor, by parameter name."""
    return {name: float(mask.float().mean()) for name, mask in masks.items()}


def count_nonzero_parameters(model: nn.Module) -> int:
    """Non-zero entries over all parameters, masked or dense."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def allocate_units(budget: int, shares: list[float], room: list[int], cost: list[int]) -> list[int]:
    """Split a budget of weights into whole units per layer, in proportion to ``shares``.

    Layer ``i`` gets at most ``room[i]`` units of ``cost[i]`` weights each; what a
    full layer cannot take goes to the others.  The total cost never exceeds
    ``budget`` and falls short of it by less than the cheapest unit that still
    fits (zero when every cost is 1).  Deterministic: ties go to the lower index.
    """
    given = [0] * len(room)
    remaining = budget
    while True:
        open_layers = [i for i in range(len(room)) if given[i] < room[i] and cost[i] <= remaining]
        if not open_layers:
            return given
        step = _proportional_step(remaining, open_layers, shares, room, cost, given)
        for i, units in step.items():
            given[i] += units
            remaining -= units * cost[i]


def cosine_prune_rate(initial_rate: float, epoch: int, epochs: int) -> float:
    """The prune rate after ``epoch`` (0-based): ``initial_rate * (1 + cos(pi * epoch / epochs)) / 2``."""
    return initial_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@dataclass
class SparseMomentum:
    """The masks of one model and the end-of-epoch prune/redistribute/regrow step.

    ``masks`` map parameter names to bool tensors shaped like the weights; they
    live on the weights' device.  Call :meth:`apply` after every optimiser step
    and :meth:`prune_and_regrow` after every epoch but the last.
    """

    model: nn.Module
    masks: dict[str, torch.Tensor]
    mode: str = "unstructured"
    prune_rate: float = 0.5

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        self.weights = masked_parameters(self.model, self.mode)
        if set(self.masks) != set(self.weights):
            raise InputError(f"masks name {sorted(set(self.masks) ^ set(self.weights))[:3]}..., "
                             f"expected exactly the {self.mode} maskable weights of the model")
        self.masks = {n: m.to(self.weights[n].device, torch.bool) for n, m in self.masks.items()}
        # The regrowth tops the count back up to this, so column rounding never accumulates.
        self.target_count = self.kept_count()
        self.floor_units = {n: math.ceil(MIN_KEPT_FRACTION * int(_active(m, self.mode).sum())) for n, m in self.masks.items()}

    def apply(self) -> None:
        """Re-zero the masked weights (after an optimiser step moved them)."""
        apply_masks(self.model, self.masks)

    @torch.no_grad()
    def prune_and_regrow(self, optimizer: torch.optim.Optimizer, epoch: int, epochs: int) -> None:
        """One sparse-momentum step after ``epoch`` (0-based) of ``epochs``; keeps the kept count."""
        rate = cosine_prune_rate(self.prune_rate, epoch, epochs)
        momenta = {n: _momentum(optimizer, w) for n, w in self.weights.items()}
        shares = [self._mean_active_momentum(n, momenta[n]) for n in self.weights]
        for name in self.weights:
            self._prune_layer(name, rate)
        self.apply()  # zeroes pruned weights, so any regrown in this step start at zero
        self._regrow(self.target_count - self.kept_count(), shares, momenta)

    def kept_count(self) -> int:
        """Weights under a True mask entry, over all masked tensors."""
        return sum(int(mask.sum()) for mask in self.masks.values())

    def _mean_active_momentum(self, name: str, momentum: torch.Tensor) -> float:
        """Mean |momentum| over the layer's active weights: its claim on the regrowth."""
        mask = self.masks[name]
        return float(momentum.abs()[mask].mean()) if mask.any() else 0.0

    def _prune_layer(self, name: str, rate: float) -> None:
        """Remove the ``rate`` fraction of active units with the smallest magnitude."""
        weight, mask = self.weights[name], self.masks[name]
        active = _active(mask, self.mode)  # (units,)
        n_active = int(active.sum())
        n_prune = min(round(rate * n_active), max(0, n_active - self.floor_units[name]))
        magnitude = _units_of(weight.abs().float(), self.mode).masked_fill(~active, math.inf)
        pruned = _smallest(magnitude, n_prune)
        self.masks[name] = mask & ~_unit_mask_to_weight(pruned, weight, self.mode)

    def _regrow(self, budget: int, shares: list[float], momenta: dict[str, torch.Tensor]) -> None:
        """Give each layer its share of ``budget`` and grow its largest-momentum inactive units."""
        inactive = {n: ~_active(self.masks[n], self.mode) for n in self.weights}
        room = [int(inactive[n].sum()) for n in self.weights]
        costs = [_unit_cost(w, self.mode) for w in self.weights.values()]
        grants = allocate_units(budget, shares, room, costs)
        for (name, weight), grant in zip(self.weights.items(), grants):
            score = _units_of(momenta[name].abs().float(), self.mode).masked_fill(~inactive[name], -1.0)
            grown = _largest(score, grant)
            self.masks[name] = self.masks[name] | _unit_mask_to_weight(grown, weight, self.mode)


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

    def __init__(self, conv: nn.Conv2d, kept_columns: torch.Tensor):
        super().__init__()
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
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

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(Ho, Wo) by the usual convolution arithmetic."""
        return tuple(
            (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
            for size, pad, dilation, kernel, stride in zip(
                (height, width), self.padding, self.dilation, self.kernel_size, self.stride)
        )


class GatheredLinear(nn.Module):
    """A linear layer restricted to kept input features: ``y = x[..., kept] @ W[:, kept]^T + b``."""

    def __init__(self, linear: nn.Linear, kept_columns: torch.Tensor):
        super().__init__()
        self.register_buffer("kept_columns", kept_columns)
        self.weight = nn.Parameter(linear.weight.detach()[:, kept_columns].clone())  # (out, kept)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.index_select(-1, self.kept_columns), self.weight, self.bias)


def _gathered(layer: nn.Module, kept: torch.Tensor) -> nn.Module:
    return GatheredLinear(layer, kept) if isinstance(layer, nn.Linear) else GatheredConv2d(layer, kept)


def _kept_columns(name: str, mask: torch.Tensor) -> torch.Tensor:
    """Indices of the kept columns of a column mask; any other mask is an :class:`InputError`."""
    columns = mask.flatten(1)  # (out, in*kh*kw)
    if not torch.equal(columns, columns[:1].expand_as(columns)):
        raise InputError(f"mask {name}: not column-structured; expected a checkpoint trained with --prune column")
    return torch.nonzero(columns[0]).flatten()


def _replace_submodule(model: nn.Module, path: str, replacement: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent_path), child, replacement)


def _proportional_step(remaining, open_layers, shares, room, cost, given) -> dict[int, int]:
    """One round of allocation: the floor of each open layer's proportional part.

    When every floor is zero, one unit goes to the open layer with the largest share.
    """
    open_shares = {i: shares[i] for i in open_layers}
    if sum(open_shares.values()) <= 0:
        open_shares = {i: 1.0 for i in open_layers}
    total_share = sum(open_shares.values())
    step = {
        i: min(room[i] - given[i], int(remaining * share / total_share // cost[i]))
        for i, share in open_shares.items()
    }
    if sum(step.values()) == 0:
        return {max(open_layers, key=lambda i: (open_shares[i], -i)): 1}
    return step


def _momentum(optimizer: torch.optim.Optimizer, weight: nn.Parameter) -> torch.Tensor:
    """The optimiser's momentum buffer for ``weight`` (zeros before the first step)."""
    buffer = optimizer.state.get(weight, {}).get("momentum_buffer")
    return torch.zeros_like(weight) if buffer is None else buffer


def _units_of(tensor: torch.Tensor, mode: str) -> torch.Tensor:
    """Per-unit sums of a weight-shaped tensor: (numel,) unstructured, (in*kh*kw,) column."""
    if mode == "unstructured":
        return tensor.flatten()
    return tensor.flatten(1).sum(0)  # (out, in*kh*kw) -> (in*kh*kw,)


def _unit_mask_to_weight(units: torch.Tensor, weight: torch.Tensor, mode: str) -> torch.Tensor:
    """A bool per-unit vector broadcast back to the weight's shape."""
    if mode == "unstructured":
        return units.view(weight.shape).to(weight.device)
    columns = units.to(weight.device).unsqueeze(0).expand(weight.shape[0], -1)  # (out, in*kh*kw)
    return columns.reshape(weight.shape).clone()


def _active(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Bool per unit: whether any of its weights is kept."""
    return _units_of(mask.float(), mode) > 0


def _unit_count(weight: torch.Tensor, mode: str) -> int:
    return weight.numel() if mode == "unstructured" else weight[0].numel()


def _unit_cost(weight: torch.Tensor, mode: str) -> int:
    return 1 if mode == "unstructured" else weight.shape[0]


def _random_units(n_units: int, n_kept: int, generator: torch.Generator) -> torch.Tensor:
    kept = torch.zeros(n_units, dtype=torch.bool)
    kept[torch.randperm(n_units, generator=generator)[:n_kept]] = True
    return kept


def _smallest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Bool vector marking the ``count`` smallest scores (stable: ties go to the lower index)."""
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen[torch.sort(scores, stable=True).indices[:count]] = True
    return chosen


def _largest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Bool vector marking the ``count`` largest scores (stable: ties go to the lower index)."""
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen[torch.sort(scores, descending=True, stable=True).indices[:count]] = True
    return chosen


def _maskable(module: nn.Module, mode: str) -> bool:
    return mode == "unstructured" or getattr(module, "groups", 1) == 1


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_mode(mode: str) -> None:
    if mode not in PRUNE_MODES:
        raise InputError(f"prune mode {mode!r}: expected one of {', '.join(PRUNE_MODES)}")


def _check_density(value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise InputError(f"density {value}: expected a fraction in (0, 1]")
