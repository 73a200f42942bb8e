"""The models an analysis compares, traced with their masks; and the zoo's table of sizes.

A target is a checkpoint (its trained masks and recorded accuracy) or a
registered model name, resolved once at the door
(:func:`~attentionlite.simulator.graph.targets.resolve_target`).  The first
target is the *teacher*, the reference every ratio is taken against, and
stays dense; a registered student is given the pruning method's *initial*
masks at ``density`` (see :mod:`attentionlite.simulator.graph.targets`).
Those masks have the density a trained student would have but not its
layer-by-layer shape, and the model is untrained, so its accuracy is unknown;
:class:`ModelEntry` records this in words for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from attentionlite.defaults import DEFAULT_DENSITY, DEFAULT_MASK_SEED
from attentionlite.model.data.registry import dataset_info
from attentionlite.model.nets.complexity import count_parameters
from attentionlite.model.nets.zoo import create_model, list_models, model_options
from attentionlite.model.training.checkpoint import load_checkpoint
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.targets import (
    DEFAULT_DATASET,
    Target,
    TargetKind,
    TraceOptions,
    checkpoint_graph,
    target_graph,
)
from attentionlite.simulator.graph.tracing import trace_model

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
    dataset: str = DEFAULT_DATASET
    checkpoint_sha256: str | None = None
    weights: int = 0
    nonzero_weights: int = 0
    dense_macs: int = 0

    @property
    def trained(self) -> bool:
        return self.checkpoint_sha256 is not None


def trace_models(
    targets: Sequence[Target], density: float = DEFAULT_DENSITY, seed: int = DEFAULT_MASK_SEED,
    on_model: Callable[[str], None] | None = None,
) -> tuple[list[ModelEntry], dict[str, OpGraph]]:
    """Entries, and graphs by label, in the given order; ``on_model(target)`` before each trace."""
    entries, graphs = [], {}
    for index, target in enumerate(targets):
        if on_model is not None:
            on_model(target.text)
        entry, graph = _entry_and_graph(target, density=1.0 if index == 0 else density, seed=seed)
        entry = replace(entry, role="teacher" if index == 0 else "student")
        if entry.label in graphs:
            entry = replace(entry, label=f"{entry.label} ({target.text})")
        entries.append(entry)
        graphs[entry.label] = graph
    return entries, graphs


def checkpoint_accuracy(metrics: dict) -> float | None:
    """The final top-1 test accuracy (a fraction) that training recorded, or None when it recorded none."""
    return float(metrics["test_accuracy"]) if "test_accuracy" in metrics else None


def _entry_and_graph(target: Target, density: float, seed: int) -> tuple[ModelEntry, OpGraph]:
    """A checkpoint with its own masks, a registered name at initial masks of ``density``, or a graph file."""
    if target.kind is TargetKind.CHECKPOINT:
        checkpoint = load_checkpoint(target.path)
        graph = checkpoint_graph(checkpoint, target.path, TraceOptions())
        masks = "dense" if checkpoint.prune_mode == "dense" else (
            f"trained {checkpoint.prune_mode} masks, {100 * checkpoint.density:.1f}% density")
        entry = ModelEntry(label=checkpoint.arch["name"], target=target.text, role="student", masks=masks,
                           accuracy=checkpoint_accuracy(checkpoint.metrics), dataset=checkpoint.dataset,
                           checkpoint_sha256=graph.metadata["checkpoint_sha256"])
    elif target.kind is TargetKind.MODEL:
        graph = target_graph(target, TraceOptions(density=density, mask_seed=seed))
        words = "dense" if density >= 1.0 else f"initial masks, {100 * density:g}% density"
        entry = ModelEntry(label=target.text, target=target.text, role="student", masks=words)
    else:  # a saved graph or a topology keeps the weights it was saved with
        graph = target_graph(target)
        entry = ModelEntry(label=target.text, target=target.text, role="student", masks="as in the file")
    return _with_counts(entry, graph), graph


def _with_counts(entry: ModelEntry, graph: OpGraph) -> ModelEntry:
    return replace(entry, weights=int(graph.total("weight_params")),
                   nonzero_weights=int(graph.total("weight_nonzero")), dense_macs=int(graph.total("macs")))


# ----------------------------------------------------------------------------- the zoo


def model_table(num_classes: int, image_size: int, width: float = 1.0) -> list[dict]:
    """One row per registered model: name, parameters and dense MACs at this class count, size and width
    (a width multiplier, which the ResNets and SASA students take; at a width other than 1 the models
    without one, the ViTs, are left out).

    MACs are the operator graph's total: the same count as
    :func:`~attentionlite.model.nets.complexity.count_macs` (the tests hold the
    two equal on every model) without fvcore's slow jit trace, so the whole
    table takes seconds.
    """
    rows = []
    for name in list_models():
        if "width" not in model_options(name):
            if width != 1.0:
                continue
            model = create_model(name, num_classes=num_classes, image_size=image_size)
        else:
            model = create_model(name, num_classes=num_classes, image_size=image_size, width=width)
        macs = trace_model(model, image_size).total("macs")
        rows.append({"model": name, "parameters": count_parameters(model), "macs": macs})
    return rows


def models_report(dataset: str, width: float = 1.0) -> dict:
    """:func:`model_table` at a dataset's class count and image size, with those inputs recorded."""
    info = dataset_info(dataset)
    rows = model_table(info.num_classes, info.image_size, width)
    sizes = {"num_classes": info.num_classes, "image_size": info.image_size}
    return {"dataset": dataset, **sizes, "width": width, "models": rows}


def format_models_report(report: dict) -> str:
    """A fixed-width text table of :func:`models_report`, parameters in millions and MACs in G."""
    lines = [
        f"{report['dataset']}: {report['num_classes']} classes, {report['image_size']} px, width {report['width']:g}",
        f"{'model':<20} {'params (M)':>11} {'MACs (G)':>10}",
    ]
    for row in report["models"]:
        lines.append(f"{row['model']:<20} {row['parameters'] / 1e6:>11.2f} {row['macs'] / 1e9:>10.3f}")
    return "\n".join(lines)
