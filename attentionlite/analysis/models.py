"""The models an analysis compares, traced with their masks.

A target is a checkpoint path (its trained masks and recorded accuracy) or a
registered model name.  The first target is the *teacher*, the reference
every ratio is taken against, and stays dense; a registered student is given
the pruning method's *initial* masks at ``density``: sparse momentum's
uniform per-layer allocation with randomly drawn positions (seeded).  Those
masks have the density a trained student would have but not its
layer-by-layer shape, and the model is untrained, so its accuracy is unknown;
:class:`ModelEntry` records this in words for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from attentionlite.errors import InputError

DATASET = "cifar10"  # registered models are traced at its input size and classes
DEFAULT_DENSITY = 0.10
DEFAULT_PRUNE_MODE = "unstructured"
DEFAULT_MASK_SEED = 0
INITIAL_MASKS_NOTE = (
    "Initial masks are what the pruning method (sparse momentum) starts training from at that density: "
    "{mode}, the same density in every layer, positions drawn at random (seed {seed}). They have a trained "
    "student's density but not its layer-by-layer shape, and the model's weights are untrained."
)


@dataclass(frozen=True)
class ModelEntry:
    """One model: where it came from, its masks and what is known of its accuracy."""

    label: str
    target: str  # registered model name or checkpoint path
    role: str  # "teacher" (the reference, listed first) or "student"
    masks: str  # where the weight masks come from, in words
    accuracy: float | None = None  # top-1 on the checkpoint's test split; None when untrained
    dataset: str = DATASET
    checkpoint_sha256: str | None = None
    weights: int = 0
    nonzero_weights: int = 0
    dense_macs: int = 0

    @property
    def trained(self) -> bool:
        return self.checkpoint_sha256 is not None


def trace_models(
    targets: Sequence[str], density: float = DEFAULT_DENSITY, seed: int = DEFAULT_MASK_SEED,
    on_model: Callable[[str], None] | None = None,
) -> tuple[list[ModelEntry], dict]:
    """Entries, and graphs by label, in the given order; ``on_model(target)`` before each trace."""
    check_targets(targets, density)
    entries, graphs = [], {}
    for index, target in enumerate(targets):
        if on_model is not None:
            on_model(target)
        entry, graph = trace_target(target, density=1.0 if index == 0 else density, seed=seed)
        entry = replace(entry, role="teacher" if index == 0 else "student")
        if entry.label in graphs:
            entry = replace(entry, label=f"{entry.label} ({target})")
        entries.append(entry)
        graphs[entry.label] = graph
    return entries, graphs


def check_targets(targets: Sequence[str], density: float = DEFAULT_DENSITY) -> None:
    """Each target a checkpoint file or a registered name, the density a fraction: before any slow step."""
    from attentionlite.model.zoo import list_models

    if not targets:
        raise InputError("no models given; expected registered model names or checkpoint paths")
    if not 0.0 < density <= 1.0:
        raise InputError(f"density {density!r}: expected a fraction of weights kept, above 0 and at most 1")
    for target in targets:
        if not Path(target).is_file() and target not in list_models():
            raise InputError(f"model {target!r} is neither a checkpoint file nor registered; "
                             f"expected a checkpoint path or one of {', '.join(list_models())}")


def trace_target(target: str, density: float, seed: int) -> tuple[ModelEntry, object]:
    """A checkpoint path with its own masks, or a registered name at initial masks of ``density``."""
    if Path(target).is_file():
        return _trace_checkpoint(target)
    return _trace_registered(target, density, seed)


def _trace_checkpoint(path: str) -> tuple[ModelEntry, object]:
    from attentionlite.model.checkpoint import load_checkpoint
    from attentionlite.provenance import file_sha256
    from attentionlite.simulator.graph import trace

    checkpoint = load_checkpoint(path)
    graph = trace(path)
    masks = "dense" if checkpoint.prune_mode == "dense" else (
        f"trained {checkpoint.prune_mode} masks, {100 * checkpoint.density:.1f}% density")
    entry = ModelEntry(label=checkpoint.arch["name"], target=str(path), role="student", masks=masks,
                       accuracy=checkpoint_accuracy(checkpoint.metrics), dataset=checkpoint.dataset,
                       checkpoint_sha256=file_sha256(path))
    return _with_counts(entry, graph), graph


def checkpoint_accuracy(metrics: dict) -> float | None:
    """The final top-1 test accuracy (a fraction) that training recorded, or None when it recorded none."""
    return float(metrics["test_accuracy"]) if "test_accuracy" in metrics else None


def _trace_registered(name: str, density: float, seed: int) -> tuple[ModelEntry, object]:
    from attentionlite.model.data import dataset_info
    from attentionlite.model.sparsity import initial_masks
    from attentionlite.model.zoo import create_model
    from attentionlite.simulator.tracing import trace_model

    info = dataset_info(DATASET)
    model = create_model(name, num_classes=info.num_classes, image_size=info.image_size)
    masks = None if density >= 1.0 else initial_masks(model, density, DEFAULT_PRUNE_MODE, seed)
    metadata = {"model": name, "arch": model.arch, "dataset": DATASET, "checkpoint": None,
                "checkpoint_sha256": None, "mask_seed": seed}
    graph = trace_model(model, info.image_size, masks=masks, prune_mode="dense" if masks is None else
                        DEFAULT_PRUNE_MODE, metadata=metadata)
    words = "dense" if masks is None else f"initial masks, {100 * density:g}% density"
    return _with_counts(ModelEntry(label=name, target=name, role="student", masks=words), graph), graph


def _with_counts(entry: ModelEntry, graph) -> ModelEntry:
    return replace(entry, weights=int(graph.total("weight_params")),
                   nonzero_weights=int(graph.total("weight_nonzero")), dense_macs=int(graph.total("macs")))
