"""What a trained model scores and costs: test accuracy, non-zero parameters, MACs.

``dense_macs`` is the model's full multiply-accumulate count for one image
(:func:`attentionlite.model.nets.complexity.count_macs`: convolutions, projections,
classifier, relative logits and attention windows).  ``macs`` removes from it
the work of zero weights: each zero in a convolution, projection or
classifier weight saves one MAC per output position.  That is what a
zero-skipping (or, for column pruning, a compacted) accelerator executes; the
attention-window work does not depend on the weights and is not changed by
pruning.  A dimension-pruned ViT is costed as its compacted model, which also
drops the attention products of its removed heads (:func:`pruned_model_costs`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.data.loader import evaluation_batches
from attentionlite.model.nets.complexity import count_macs
from attentionlite.model.nets.gathered import GatheredConv2d, GatheredLinear
from attentionlite.model.training.checkpoint import compacted_model, load_checkpoint
from attentionlite.model.training.sparsity import count_nonzero_parameters

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear, GatheredConv2d, GatheredLinear)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, loader, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` (in eval mode) over every batch of ``loader``."""
    model.eval()
    correct = total = 0
    for images, labels in loader:
        logits = model(images.to(device))  # (B, classes)
        correct += int((logits.argmax(dim=1).cpu() == labels).sum())
        total += len(labels)
    return correct / max(1, total)


@torch.no_grad()
def zero_weight_macs(model: nn.Module, image_size: int) -> int:
    """MACs of one image that the zero entries of the weight layers account for."""
    counts: list[int] = []

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        assert isinstance(module, WEIGHT_LAYERS), "hooked on weight layers only"
        positions = output[0, 0].numel() if output.dim() == 4 else output[0].numel() // output.shape[-1]
        zeros = module.weight.numel() - int(torch.count_nonzero(module.weight))
        counts.append(zeros * positions)  # each weight does one MAC per output position

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    try:
        device = next(model.parameters()).device
        model.eval()(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return sum(counts)


def model_costs(model: nn.Module, image_size: int, dense_macs: int | None = None) -> dict[str, int]:
    """Parameters, non-zero parameters, dense MACs and MACs without the zero weights' work.

    ``dense_macs`` may be passed in when known: counting it traces the model on a CPU copy.
    """
    if dense_macs is None:
        dense_macs = count_macs(copy.deepcopy(model).cpu(), image_size)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "nonzero_parameters": count_nonzero_parameters(model),
        "dense_macs": dense_macs,
        "macs": dense_macs - zero_weight_macs(model, image_size),
    }


def pruned_model_costs(model: nn.Module, prune_mode: str, masks: dict[str, torch.Tensor], image_size: int,
                       dense_macs: int | None = None) -> dict[str, int]:
    """:func:`model_costs` of a (pruned) model as hardware runs it: a dimension-pruned ViT's costs are its
    compacted model's (a removed head does no Q K^T or A V either, which its zero weights alone do not say),
    beside the dense MACs of the whole architecture."""
    if prune_mode != "dims" or not masks:
        return model_costs(model, image_size, dense_macs)
    if dense_macs is None:
        dense_macs = count_macs(copy.deepcopy(model).cpu(), image_size)
    return model_costs(compacted_model(model, prune_mode, masks), image_size) | {"dense_macs": dense_macs}


def evaluate_checkpoint(
    path: str | Path,
    data_dir: str | Path,
    dataset: str | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    test_subset: int | None = None,
) -> dict:
    """Accuracy on ``dataset``'s test split (the checkpoint's own dataset by default) and the model's costs."""
    checkpoint = load_checkpoint(path)
    dataset = checkpoint.dataset if dataset is None else dataset
    if dataset != checkpoint.dataset:
        raise InputError(f"{path}: trained on {checkpoint.dataset!r}, asked to evaluate on {dataset!r}; "
                         "expected the dataset it was trained on")
    loader, info = evaluation_batches(dataset, data_dir, batch_size, test_subset, seed=checkpoint.seed)
    model = checkpoint.model.to(device)
    return {
        "checkpoint": str(path),
        "dataset": dataset,
        "test_accuracy": evaluate_accuracy(model, loader, device),
        "density": checkpoint.density,
        **(model_costs(model, info.image_size) if checkpoint.compacted else
           pruned_model_costs(model, checkpoint.prune_mode, checkpoint.masks, info.image_size)),
    }
