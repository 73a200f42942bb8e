"""The one resolver of workloads: a registered model name, a checkpoint, an ONNX file, a saved graph or a
topology file.

:func:`resolve_target` is the door: it says once what the user's text names
(or why it names nothing) and returns a :class:`Target`; everything above
takes that object and never re-checks it.  :func:`target_graph` turns a target
into an :class:`~attentionlite.simulator.graph.graph.OpGraph` (tracing a model
or a checkpoint, reading a saved graph or a SCALE-Sim topology), and
:func:`target_model` gives the torch model behind it, for timing on a CPU.

A registered model is traced untrained at its dataset's size (cifar10 unless
told); with ``density`` below 1 it carries the pruning method's *initial*
masks (sparse momentum's uniform allocation, positions drawn with
``mask_seed``): a trained student's density without its layer-by-layer shape.
A checkpoint is traced with its own weights and masks.

Only a model name, a checkpoint or tracing needs torch, so it is imported where
those are handled: resolving and loading a saved graph or a topology file stay
fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attentionlite.errors import InputError
from attentionlite.model.data.registry import dataset_info
from attentionlite.provenance import file_sha256
from attentionlite.simulator.graph.formats import GRAPH_SUFFIXES, is_graph_file, load_graph
from attentionlite.simulator.graph.graph import OpGraph

if TYPE_CHECKING:
    from torch import nn

    from attentionlite.model.training.checkpoint import Checkpoint

DEFAULT_DATASET = "cifar10"
ONNX_SUFFIX = ".onnx"
INITIAL_MASK_MODE = "unstructured"  # the pruning mode whose initial masks a registered student gets


class TargetKind(str, Enum):
    """What a target names."""

    MODEL = "model"  # a registered model name
    CHECKPOINT = "checkpoint"  # a file written by `attentionlite train` (or compact)
    GRAPH = "graph"  # an op graph saved by `attentionlite trace` (.json, .graphml)
    TOPOLOGY = "topology"  # a SCALE-Sim topology CSV
    ONNX = "onnx"  # an ONNX model file


@dataclass(frozen=True)
class Target:
    """A workload the user named, already checked to exist."""

    text: str
    kind: TargetKind

    @property
    def path(self) -> Path:
        return Path(self.text)


@dataclass(frozen=True)
class TraceOptions:
    """How a model or checkpoint is traced; ignored for saved graphs and topology files.

    ``dataset`` sets classes and image size (default: cifar10 for a model name,
    the checkpoint's own for a checkpoint); ``image_size`` overrides the
    dataset's; ``density`` and ``mask_seed`` give a registered model initial masks.
    """

    dataset: str | None = None
    batch: int | None = None  # None: 1 when tracing; a saved graph keeps its own
    image_size: int | None = None
    fold_bn: bool = False
    density: float = 1.0
    mask_seed: int = 0

    def __post_init__(self) -> None:
        if self.batch is not None:
            _check_positive("batch", self.batch)
        if self.image_size is not None:
            _check_positive("image size", self.image_size)
        check_density(self.density)
        if self.dataset is not None:
            dataset_info(self.dataset)


def resolve_target(text: str, topology: bool = False) -> Target:
    """What ``text`` names: a registered model, or a file by its suffix (``topology`` forces a topology)."""
    path = Path(text)
    if topology or path.suffix.lower() == ".csv":
        return Target(text, TargetKind.TOPOLOGY) if path.is_file() else _missing(text, "topology")
    if is_graph_file(path):
        return Target(text, TargetKind.GRAPH) if path.is_file() else _missing(text, "graph")
    if path.suffix.lower() == ONNX_SUFFIX:
        return Target(text, TargetKind.ONNX) if path.is_file() else _missing(text, "ONNX")
    from attentionlite.model.nets.zoo import list_models

    if text in list_models():
        return Target(text, TargetKind.MODEL)
    if path.is_file():
        return Target(text, TargetKind.CHECKPOINT)
    raise InputError(f"{text!r} is neither a registered model ({', '.join(list_models())}) nor a file; expected a "
                     f"model name, a checkpoint, an ONNX file or a graph file ({', '.join(GRAPH_SUFFIXES)})")


def target_graph(target: Target, options: TraceOptions | None = None) -> OpGraph:
    """The op graph of ``target``: traced for a model or checkpoint, read for a graph or topology file."""
    options = options or TraceOptions()
    if target.kind is TargetKind.MODEL:
        return _registered_graph(target.text, options)
    if target.kind is TargetKind.CHECKPOINT:
        from attentionlite.model.training.checkpoint import load_checkpoint

        return checkpoint_graph(load_checkpoint(target.path), target.path, options)
    if target.kind is TargetKind.ONNX:
        from attentionlite.simulator.graph.onnx import load_onnx_graph  # imports onnx and torch

        return load_onnx_graph(target.path, options.batch)
    graph = load_graph(target.path)
    saved_batch = graph.metadata.get("batch")
    if options.batch is not None and saved_batch is not None and options.batch != saved_batch:
        raise InputError(f"{target.text}: graph was traced at batch {saved_batch}; batch {options.batch} does not "
                         "match (trace the model again at that batch)")
    return graph


def checkpoint_graph(checkpoint: Checkpoint, path: Path, options: TraceOptions) -> OpGraph:
    """A loaded checkpoint traced with its masks (for callers that also read the checkpoint's metrics), N:M
    structure measured in the groups it was pruned in (the default's for other modes); a dimension-pruned
    ViT as its compacted model."""
    from attentionlite.model.training.sparsity import NM_BLOCK
    from attentionlite.simulator.graph.tracing import trace_model

    if options.dataset is not None and options.dataset != checkpoint.dataset:
        raise InputError(f"{path}: checkpoint was trained on {checkpoint.dataset!r}; "
                         f"expected that dataset, not {options.dataset!r}")
    size = options.image_size or dataset_info(checkpoint.dataset).image_size
    metadata = {
        "model": checkpoint.arch["name"],
        "arch": checkpoint.arch,
        "dataset": checkpoint.dataset,
        "checkpoint": str(path),
        "checkpoint_sha256": file_sha256(path),
        "compacted": checkpoint.compacted,
    }
    model, masks = checkpoint.model, checkpoint.masks
    if checkpoint.prune_mode == "dims":  # a dimension-pruned ViT runs as its smaller dense form
        from attentionlite.model.training.checkpoint import compacted_model

        model = model if checkpoint.compacted or not masks else compacted_model(model, "dims", masks)
        masks = {}
    return trace_model(
        model, size, batch=options.batch or 1, masks=masks, prune_mode=checkpoint.prune_mode,
        fold_bn=options.fold_bn, metadata=metadata, nm_block=int(checkpoint.train_config.get("nm_block", NM_BLOCK)),
    )


def _registered_graph(name: str, options: TraceOptions) -> OpGraph:
    from attentionlite.model.nets.zoo import create_model
    from attentionlite.model.training.sparsity import initial_masks
    from attentionlite.simulator.graph.tracing import trace_model

    dataset = options.dataset or DEFAULT_DATASET
    info = dataset_info(dataset)
    size = options.image_size or info.image_size
    model = create_model(name, num_classes=info.num_classes, image_size=size)
    metadata: dict[str, Any] = {"model": name, "arch": model.arch, "dataset": dataset, "checkpoint": None,
                                "checkpoint_sha256": None}
    batch = options.batch or 1
    if options.density >= 1.0:
        return trace_model(model, size, batch=batch, fold_bn=options.fold_bn, metadata=metadata)
    masks = initial_masks(model, options.density, INITIAL_MASK_MODE, options.mask_seed)
    metadata["mask_seed"] = options.mask_seed
    return trace_model(model, size, batch=batch, masks=masks, prune_mode=INITIAL_MASK_MODE,
                       fold_bn=options.fold_bn, metadata=metadata)


def target_model(graph: OpGraph) -> nn.Module:
    """The torch model a graph was traced from: its checkpoint's if it has one, else the registered model's."""
    from attentionlite.model.nets.zoo import create_model
    from attentionlite.model.training.checkpoint import load_checkpoint

    metadata = graph.metadata
    if metadata.get("onnx"):
        raise InputError(f"{metadata['onnx']}: an ONNX model is not a torch module, so it cannot be timed in PyTorch "
                         "here; expected a model name or a checkpoint")
    if metadata.get("checkpoint"):
        return load_checkpoint(str(metadata["checkpoint"])).model
    if "model" not in metadata or "image_size" not in metadata:
        raise InputError("the graph names no registered model or checkpoint to run; expected a graph traced by "
                         "attentionlite from a model name or a checkpoint")
    classes = dataset_info(str(metadata["dataset"])).num_classes
    return create_model(str(metadata["model"]), num_classes=classes, image_size=int(metadata["image_size"]))


def check_density(density: float) -> None:
    """A weight density must be a fraction of weights kept: above 0, at most 1."""
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 < density <= 1.0:
        raise InputError(f"density {density!r}: expected a fraction of weights kept, above 0 and at most 1")


def _missing(text: str, what: str) -> Target:
    raise InputError(f"{text}: {what} file not found")


def _check_positive(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} is {value!r}; expected a positive integer")
