"""``train --prune dims``: SiDT's dimension search of a ViT in one training run, the budget met exactly.

SiDT (Xue et al. 2022) searches each block's dimensions of a ViT with
learnable importance scores; its search follows ViT-Slim's (Chavan et al.,
CVPR 2022, "Vision Transformer Slimming"): a real-valued gate on every
dimension, initialised to 1, multiplies the features of that dimension, and
an L1 penalty on the gates joins the loss (ViT-Slim's
``SearchingDistillationLoss`` weighs it by 1e-4, the default here).  The
dimensions are those of :mod:`~attentionlite.model.nets.vit_dims`: the
stream's embedding channels, each block's heads and each block's MLP units.

One run does both phases.  For the first ``search_epochs`` the gates train
with the weights (forward hooks multiply the features; the penalty is
:meth:`DimensionSearch.penalty`).  After them the budget is applied exactly:
of each kind, ``round(density x count)`` dimensions are kept, those of
largest |gate| over the whole model (every block keeps one head and one unit
at least), so blocks end with different widths.  The gates of the kept
dimensions are folded into the weights (the function does not jump for
them), the hooks come off, and the rest of the run trains the masked model.
Distillation from the CNN teacher applies as for any student.  The result
compacts (``attentionlite compact``) into a smaller dense ViT.

One process only: the gates live outside the model, where DistributedDataParallel
would not average their gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, cast

import torch
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.nets.vit import Block, VisionTransformer
from attentionlite.model.nets.vit_dims import (
    STREAM_TOKENS,
    Dimensions,
    all_dimensions,
    dimensions_of,
    keep_embedding_channels,
    weight_masks,
)
from attentionlite.model.training.sparsity import apply_masks, keep_largest

DIMS_PENALTY = 1e-4  # ViT-Slim's weight of the gates' L1 norm in the loss


@dataclass
class DimensionSearch:
    """The gates, the penalty and the exact budget of one ViT's dimension search."""

    model: VisionTransformer
    density: float
    search_epochs: int
    penalty_weight: float = DIMS_PENALTY
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # empty while searching
    name: ClassVar[str] = "dims"

    @classmethod
    def of(cls, model: nn.Module, density: float, search_epochs: int, penalty_weight: float = DIMS_PENALTY,
           masks: dict[str, torch.Tensor] | None = None) -> DimensionSearch:
        """The search of ``model``'s dimensions, or with ``masks`` (an --init checkpoint's) its budget already
        applied; a model that is not a ViT is an :class:`InputError`."""
        if not isinstance(model, VisionTransformer):
            raise InputError(f"prune dims: model {type(model).__name__} is not a vision transformer; "
                             "expected a ViT or DeiT (vit_tiny, vit_small, deit_tiny)")
        return cls(model, density, search_epochs, penalty_weight, dict(masks or {}))

    def __post_init__(self) -> None:
        full = all_dimensions(self.model)
        device = self.model.norm.weight.device
        self.gates = {"embed": nn.Parameter(torch.ones(len(full.embed), device=device))}
        for index, (heads, units) in enumerate(zip(full.heads, full.mlp)):
            self.gates[f"blocks.{index}.heads"] = nn.Parameter(torch.ones(len(heads), device=device))
            self.gates[f"blocks.{index}.mlp"] = nn.Parameter(torch.ones(len(units), device=device))
        self.masks = {name: mask.to(device) for name, mask in self.masks.items()}
        self._handles = self._hook_gates() if not self.masks else []

    def parameters(self) -> list[nn.Parameter]:
        """What the optimiser trains beside the model: the gates."""
        return list(self.gates.values())

    def penalty(self) -> torch.Tensor | float:
        """The gates' L1 norm times the penalty weight while searching; nothing after."""
        if self.masks:
            return 0.0
        return self.penalty_weight * sum(gate.abs().sum() for gate in self.gates.values())

    def apply(self) -> None:
        """Re-zero the removed dimensions' weights (after an optimiser step moved them)."""
        if self.masks:
            apply_masks(self.model, self.masks)

    def prune_and_regrow(self, optimizer: torch.optim.Optimizer, epoch: int, epochs: int) -> None:
        """After the last search epoch, keep the budget's dimensions."""
        if not self.masks and epoch + 1 >= self.search_epochs:
            self.harden()

    @torch.no_grad()
    def harden(self) -> None:
        """Keep exactly the budget of each kind by |gate|, fold the kept gates into the weights, drop the hooks."""
        dims = self.kept_dimensions()
        self._fold_gates()
        self._remove_hooks()
        device = self.model.norm.weight.device
        self.masks = {name: mask.to(device) for name, mask in weight_masks(self.model, dims).items()}
        keep_embedding_channels(self.model, dims.embed)
        self.apply()

    def kept_dimensions(self) -> Dimensions:
        """Of each kind, the ``round(density x count)`` dimensions of largest |gate| (one head and one unit
        per block at least)."""
        embed = self.gates["embed"].detach().abs().cpu()
        heads = torch.stack([self.gates[f"blocks.{i}.heads"].detach().abs().cpu() for i in range(self._depth)])
        units = torch.stack([self.gates[f"blocks.{i}.mlp"].detach().abs().cpu() for i in range(self._depth)])
        return Dimensions(keep_largest(embed[None], self._budget(embed.numel(), 1))[0],
                          tuple(keep_largest(heads, self._budget(heads.numel(), self._depth))),
                          tuple(keep_largest(units, self._budget(units.numel(), self._depth))))

    def summary(self) -> dict[str, int]:
        """Kept dimensions of each kind once the budget is applied (empty while searching)."""
        if not self.masks:
            return {}
        return {f"kept_{kind}": count for kind, count in dimensions_of(self.model, self.masks).counts().items()}

    def state(self) -> dict:
        """What resuming needs beside the masks: the gates."""
        return {"gates": {name: gate.detach().cpu() for name, gate in self.gates.items()}}

    def restore(self, masks: dict[str, torch.Tensor], state: dict) -> None:
        """Continue from a checkpoint: its masks (the budget applied) or its gates (still searching)."""
        if masks:
            self._remove_hooks()
            self.masks = {n: m.to(self.model.norm.weight.device) for n, m in masks.items()}
            return
        with torch.no_grad():
            for name, gate in state.get("gates", {}).items():
                self.gates[name].copy_(gate)

    def _budget(self, count: int, groups: int) -> int:
        return max(groups, round(self.density * count))

    @property
    def _blocks(self) -> list[Block]:
        return [cast(Block, block) for block in self.model.blocks]

    @property
    def _depth(self) -> int:
        return len(self._blocks)

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook_gates(self) -> list:
        """Forward hooks multiplying each dimension's features by its gate: the stream entering the blocks
        and each branch's output by the embedding gates, each head's output by its gate, each MLP unit's
        activation by its gate."""
        embed = self.gates["embed"]
        handles = [self.model.blocks.register_forward_pre_hook(lambda _, inputs: (inputs[0] * embed,))]
        for index, block in enumerate(self._blocks):
            heads, units = self.gates[f"blocks.{index}.heads"], self.gates[f"blocks.{index}.mlp"]
            head_dim = block.attn.head_dim
            handles += [
                block.attn.proj.register_forward_pre_hook(
                    lambda _, inputs, heads=heads, head_dim=head_dim: (
                        inputs[0] * heads.repeat_interleave(head_dim),)),
                block.attn.proj.register_forward_hook(lambda _, __, output: output * embed),
                block.mlp[1].register_forward_hook(lambda _, __, output, units=units: output * units),
                block.mlp[2].register_forward_hook(lambda _, __, output: output * embed),
            ]
        return handles

    @torch.no_grad()
    def _fold_gates(self) -> None:
        """Multiply every gate into the weights it scales, so that the model without hooks computes what the
        gated one did."""
        embed = self.gates["embed"].detach()
        model = self.model
        model.patch_embed.weight.mul_(embed[:, None, None, None])
        for name in ("patch_embed.bias", *STREAM_TOKENS):
            if name in dict(model.named_parameters()):
                model.get_parameter(name).mul_(embed)
        for index, block in enumerate(self._blocks):
            heads = self.gates[f"blocks.{index}.heads"].detach().repeat_interleave(block.attn.head_dim)
            block.attn.proj.weight.mul_(embed[:, None] * heads[None, :])
            block.attn.proj.bias.mul_(embed)
            output = cast(nn.Linear, block.mlp[2])
            output.weight.mul_(embed[:, None] * self.gates[f"blocks.{index}.mlp"].detach()[None, :])
            output.bias.mul_(embed)
