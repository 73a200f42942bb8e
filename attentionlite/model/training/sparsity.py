"""Weight masks and sparse momentum: unstructured, column and N:M pruning at a fixed density.

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

Units.  Each pruning mode is one strategy object (:data:`PRUNING_UNITS`) that
says what a unit is, what it costs and how a per-unit choice becomes a weight
mask.  In ``"unstructured"`` mode (:class:`UnstructuredUnits`) the unit is one
weight.  In ``"column"`` mode (:class:`ColumnUnits`) the unit is a column of
the layer's weight matrix viewed as ``(out, in * kh * kw)`` (the im2col GEMM),
i.e. one ``(in, kh, kw)`` position across all output channels; a column-pruned
layer can be compacted into a smaller dense GEMM
(:func:`~attentionlite.model.nets.gathered.compact_model`).  Grouped
convolutions (``groups > 1``) have no single weight matrix and stay dense in
column mode.  Densities are always counted in weights, so a column of a
layer with ``out`` outputs costs ``out`` weights of the budget.

N:M.  In ``"nm"`` mode (:class:`NMUnits`) the unit is one weight, and every
group of ``block`` (M) consecutive weights along a row of the ``(out, in * kh *
kw)`` matrix (the reduction axis an N:M array compresses) keeps exactly
``density * block`` (N) of them (a row's last, shorter group keeps at most N).
This is the structure of NVIDIA's 2:4 sparsity (Mishra et al., "Accelerating
Sparse Deep Neural Networks", 2021) trained from scratch as N:M networks are
(Zhou et al., "Learning N:M Fine-grained Structured Sparse Neural Networks From
Scratch", ICLR 2021), here with sparse momentum's own step: each layer prunes
its smallest-magnitude active weights as in unstructured mode, then each group
regrows to N from its inactive weights of largest momentum.  Every layer stays
at N/M, so nothing is redistributed between layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from attentionlite.errors import InputError


class UnstructuredUnits:
    """Prune single weights: every ``nn.Conv2d`` and ``nn.Linear`` weight, one unit per entry."""

    name: ClassVar[str] = "unstructured"

    def maskable(self, module: nn.Module) -> bool:
        return True

    def count(self, weight: torch.Tensor) -> int:
        return weight.numel()

    def cost(self, weight: torch.Tensor) -> int:
        """Weights one unit holds."""
        return 1

    def sums(self, tensor: torch.Tensor) -> torch.Tensor:
        """Per-unit sums of a weight-shaped tensor: (numel,)."""
        return tensor.flatten()

    def to_weight_mask(self, units: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """A bool per-unit vector as a mask of the weight's shape."""
        return units.view(weight.shape).to(weight.device)


class ColumnUnits:
    """Prune whole columns of the (out, in * kh * kw) weight matrix; grouped convolutions stay dense."""

    name: ClassVar[str] = "column"

    def maskable(self, module: nn.Module) -> bool:
        return getattr(module, "groups", 1) == 1

    def count(self, weight: torch.Tensor) -> int:
        return weight[0].numel()

    def cost(self, weight: torch.Tensor) -> int:
        """Weights one unit holds: a column has one per output."""
        return weight.shape[0]

    def sums(self, tensor: torch.Tensor) -> torch.Tensor:
        """Per-column sums of a weight-shaped tensor: (out, in*kh*kw) -> (in*kh*kw,)."""
        return tensor.flatten(1).sum(0)

    def to_weight_mask(self, units: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        columns = units.to(weight.device).unsqueeze(0).expand(weight.shape[0], -1)  # (out, in*kh*kw)
        return columns.reshape(weight.shape).clone()


class NMUnits(UnstructuredUnits):
    """Prune single weights, keeping N of every M along each row of the (out, in * kh * kw) matrix."""

    name: ClassVar[str] = "nm"


PruningUnits = UnstructuredUnits | ColumnUnits
PRUNING_UNITS: dict[str, PruningUnits] = {units.name: units
                                          for units in (UnstructuredUnits(), ColumnUnits(), NMUnits())}
NM_BLOCK = 4  # the default group size M of N:M pruning
PRUNE_MODES = tuple(PRUNING_UNITS)


def pruning_units(mode: str) -> PruningUnits:
    """The strategy for a pruning mode's unit; an unknown mode is an :class:`InputError`."""
    if mode not in PRUNING_UNITS:
        raise InputError(f"prune mode {mode!r}: expected one of {', '.join(PRUNING_UNITS)}")
    return PRUNING_UNITS[mode]

# Pruning never takes a layer below this fraction of its initial units.  Redistribution feeds back on
# itself: layers with few active weights see the largest mean momentum, regrow, and starve the rest.
# Unbounded, it all but emptied layers of small students in short runs (a width-0.125 SASA-ResNet-26
# had layer4.0's conv3 and shortcut at 0.3% and 0.2% density after 8 of 15 epochs, a few dozen
# weights for 256 output channels, and fell to chance); bounded, a layer can still give away half
# its budget.
MIN_KEPT_FRACTION = 0.5


def masked_parameters(model: nn.Module, mode: str = "unstructured") -> dict[str, torch.Tensor]:
    """The parameters that pruning masks, by name, in ``model.named_parameters()`` order."""
    units = pruning_units(mode)
    found: dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and units.maskable(module):
            found[_join(module_name, "weight")] = module.weight
    return found


def initial_masks(
    model: nn.Module, density: float, mode: str = "unstructured", seed: int = 0, block: int = NM_BLOCK
) -> dict[str, torch.Tensor]:
    """Random masks at ``density`` with a uniform per-layer allocation (see the module docstring).

    Returns bool tensors shaped like each masked weight; the overall kept count
    is ``round(density * total)`` up to one column's worth of weights (in N:M
    mode, ``density * block`` of every group of ``block``).
    """
    _check_density(density)
    if mode == NMUnits.name:
        per_group = nm_kept(density, block)
        generator = torch.Generator().manual_seed(seed)
        return {name: _random_groups(weight, per_group, block, generator)
                for name, weight in masked_parameters(model, mode).items()}
    units = pruning_units(mode)
    weights = masked_parameters(model, mode)
    costs = [units.cost(w) for w in weights.values()]
    counts = [units.count(w) for w in weights.values()]
    budget = round(density * sum(w.numel() for w in weights.values()))
    kept = uniform_units(density, budget, counts, costs)
    generator = torch.Generator().manual_seed(seed)
    return {
        name: units.to_weight_mask(_random_units(n_units, n_kept, generator), weight)
        for (name, weight), n_units, n_kept in zip(weights.items(), counts, kept)
    }


def nm_kept(density: float, block: int) -> int:
    """N of N:M: the weights kept in every group of ``block``; ``density * block`` must be a whole number
    from 1 to ``block - 1``."""
    kept = round(density * block)
    if block < 2 or not 1 <= kept < block or abs(kept - density * block) > 1e-9:
        raise InputError(f"density {density} with N:M groups of {block}: expected a density of N/{block} for a "
                         f"whole N from 1 to {block - 1} (and groups of at least 2)")
    return kept


def most_kept_per_group(mask: torch.Tensor, block: int) -> int:
    """The most non-zeros any group of ``block`` consecutive entries along a row of the mask, as an
    (out, in * kh * kw) matrix, holds (a row's last group may be shorter)."""
    return int(_grouped(mask.bool().view(1, -1) if mask.dim() == 1 else mask.bool(), block, False).sum(-1).max())


def _grouped(tensor: torch.Tensor, block: int, fill: float | bool) -> torch.Tensor:
    """A weight-shaped tensor as (out, groups, block) along its rows, the last group padded with ``fill``."""
    rows = tensor.flatten(1)
    return torch.nn.functional.pad(rows, (0, -rows.shape[1] % block), value=fill).view(rows.shape[0], -1, block)


def _ungrouped(groups: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_grouped`: padding dropped, the weight's shape back."""
    columns = weight[0].numel()
    return groups.reshape(groups.shape[0], -1)[:, :columns].reshape(weight.shape).clone()


def _random_groups(weight: torch.Tensor, kept: int, block: int, generator: torch.Generator) -> torch.Tensor:
    """``kept`` random positions of every group of ``block`` (fewer in a shorter last group)."""
    real = _grouped(torch.ones(weight.shape, dtype=torch.bool), block, False)
    scores = torch.rand(real.shape, generator=generator).masked_fill(~real, -1.0)
    ranks = _ranks(scores)
    return _ungrouped((ranks < kept) & real, weight).to(weight.device)


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    """Each entry's place in its group, largest score first (stable: ties go to the lower index)."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices.argsort(-1)


def _refill_groups(mask: torch.Tensor, momentum: torch.Tensor, kept: int, block: int) -> torch.Tensor:
    """``mask`` with every group regrown to ``kept`` (or its size) by its inactive weights of largest
    |momentum| (stable: ties go to the lower index)."""
    active = _grouped(mask, block, False)
    real = _grouped(torch.ones_like(mask), block, False)
    deficit = torch.minimum(real.sum(-1), torch.tensor(kept)) - active.sum(-1)
    scores = _grouped(momentum.abs().float(), block, 0.0).masked_fill(active | ~real, -1.0)
    ranks = _ranks(scores)
    return _ungrouped(active | ((ranks < deficit.unsqueeze(-1)) & real & ~active), mask)


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


def uniform_units(density: float, budget: int, counts: list[int], costs: list[int]) -> list[int]:
    """Units each layer keeps so that every layer sits at ``density`` to within one unit.

    Each layer of ``counts[i]`` units (``costs[i]`` weights each) keeps the floor
    of ``density * counts[i]``; what that leaves of the ``budget`` of weights
    goes one unit at a time to the layers with the largest fractional remainder
    (ties to the lower index), skipping a unit that no longer fits.
    """
    targets = [density * count for count in counts]
    kept = [math.floor(target) for target in targets]
    remaining = budget - sum(k * cost for k, cost in zip(kept, costs))
    for i in sorted(range(len(counts)), key=lambda i: (kept[i] - targets[i], i)):
        if targets[i] > kept[i] and kept[i] < counts[i] and costs[i] <= remaining:
            kept[i] += 1
            remaining -= costs[i]
    return kept


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
    block: int = NM_BLOCK  # N:M mode's group size

    def __post_init__(self) -> None:
        self.units = pruning_units(self.mode)
        self.weights = masked_parameters(self.model, self.mode)
        if set(self.masks) != set(self.weights):
            raise InputError(f"masks name {sorted(set(self.masks) ^ set(self.weights))[:3]}..., "
                             f"expected exactly the {self.mode} maskable weights of the model")
        self.masks = {n: m.to(self.weights[n].device, torch.bool) for n, m in self.masks.items()}
        # The regrowth tops the count back up to this, so column rounding never accumulates.
        self.target_count = self.kept_count()
        self.floor_units = {n: math.ceil(MIN_KEPT_FRACTION * int(self._active(m).sum())) for n, m in self.masks.items()}
        if self.mode == NMUnits.name:  # N of N:M, as the initial masks keep it
            self.nm_kept = max(most_kept_per_group(m, self.block) for m in self.masks.values())

    def apply(self) -> None:
        """Re-zero the masked weights (after an optimiser step moved them)."""
        apply_masks(self.model, self.masks)

    # What the training loop asks of every pruning strategy (dims.py's has gates, a penalty and state);
    # sparse momentum has nothing beyond its masks.
    def parameters(self) -> list[nn.Parameter]:
        return []

    def penalty(self) -> float:
        return 0.0

    def summary(self) -> dict[str, int]:
        return {}

    def state(self) -> dict:
        return {}

    def restore(self, masks: dict[str, torch.Tensor], state: dict) -> None:
        self.masks = {n: m.to(self.weights[n].device) for n, m in masks.items()}

    @torch.no_grad()
    def prune_and_regrow(self, optimizer: torch.optim.Optimizer, epoch: int, epochs: int) -> None:
        """One sparse-momentum step after ``epoch`` (0-based) of ``epochs``; keeps the kept count."""
        rate = cosine_prune_rate(self.prune_rate, epoch, epochs)
        momenta = {n: _momentum(optimizer, w) for n, w in self.weights.items()}
        shares = [self._mean_active_momentum(n, momenta[n]) for n in self.weights]
        for name in self.weights:
            self._prune_layer(name, rate)
        self.apply()  # zeroes pruned weights, so any regrown in this step start at zero
        if self.mode == NMUnits.name:
            self.masks = {n: _refill_groups(m, momenta[n], self.nm_kept, self.block) for n, m in self.masks.items()}
        else:
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
        active = self._active(mask)  # (units,)
        n_active = int(active.sum())
        n_prune = min(round(rate * n_active), max(0, n_active - self.floor_units[name]))
        magnitude = self.units.sums(weight.abs().float()).masked_fill(~active, math.inf)
        pruned = _smallest(magnitude, n_prune)
        self.masks[name] = mask & ~self.units.to_weight_mask(pruned, weight)

    def _regrow(self, budget: int, shares: list[float], momenta: dict[str, torch.Tensor]) -> None:
        """Give each layer its share of ``budget`` and grow its largest-momentum inactive units."""
        inactive = {n: ~self._active(self.masks[n]) for n in self.weights}
        room = [int(inactive[n].sum()) for n in self.weights]
        costs = [self.units.cost(w) for w in self.weights.values()]
        grants = allocate_units(budget, shares, room, costs)
        for (name, weight), grant in zip(self.weights.items(), grants):
            score = self.units.sums(momenta[name].abs().float()).masked_fill(~inactive[name], -1.0)
            grown = _largest(score, grant)
            self.masks[name] = self.masks[name] | self.units.to_weight_mask(grown, weight)

    def _active(self, mask: torch.Tensor) -> torch.Tensor:
        """Bool per unit: whether any of its weights is kept."""
        return self.units.sums(mask.float()) > 0


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


def _momentum(optimizer: torch.optim.Optimizer, weight: torch.Tensor) -> torch.Tensor:
    """The optimiser's momentum buffer for ``weight`` (zeros before the first step)."""
    buffer = optimizer.state.get(weight, {}).get("momentum_buffer")
    return torch.zeros_like(weight) if buffer is None else buffer


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


def keep_largest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """A bool mask over (..., groups, n) ``scores`` keeping ``count`` entries for every leading index: each
    group's largest first, so that no group is left empty, then the largest of the rest."""
    flat = scores.reshape(-1, *scores.shape[-2:])
    leading, groups, _ = flat.shape
    if not groups <= count <= flat[0].numel():
        raise ValueError(f"keeping {count} of {flat[0].numel()} entries in {groups} groups")
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(-1, flat.argmax(-1, keepdim=True), True)
    rest = flat.masked_fill(mask, -math.inf).reshape(leading, -1)
    mask.view(leading, -1).scatter_(1, rest.topk(count - groups, dim=1).indices, True)
    return mask.reshape(scores.shape)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_density(value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise InputError(f"density {value}: expected a fraction in (0, 1]")
