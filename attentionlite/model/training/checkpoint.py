"""One self-describing checkpoint file: model, weights, masks, how it was trained, what it scored.

A checkpoint is a ``torch.save`` of a plain dict (loaded with
``weights_only=True``, so loading never runs pickled code) with
``"format": "attentionlite-checkpoint"``.  It holds the model's ``arch`` (the
arguments of :func:`~attentionlite.model.nets.zoo.create_model`), its weights, its
masks and pruning mode, the dataset, the resolved training config, the
per-epoch metrics, the seed, the package version and git revision, and, while
training is resumable, the optimiser and random-generator state.  A compacted
checkpoint (``compacted=True``) stores the weights of the smaller dense model
that :func:`~attentionlite.model.nets.gathered.compact_model` builds from the arch
and the column masks.  Writes are atomic.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from attentionlite.errors import InputError
from attentionlite.files import atomic_write_bytes
from attentionlite.model.nets.gathered import compact_model
from attentionlite.model.nets.vit import VisionTransformer
from attentionlite.model.nets.vit_dims import compact_dims
from attentionlite.model.nets.zoo import create_model, list_models
from attentionlite.model.training.sparsity import apply_masks
from attentionlite.provenance import provenance

FORMAT = "attentionlite-checkpoint"
FORMAT_VERSION = 1
PRUNE_MODES = ("dense", "unstructured", "column", "nm", "dims")


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``model`` has its masks applied and is in eval mode on the CPU.

    ``masks`` map parameter names of the uncompacted model to bool tensors of
    its weights' shapes (empty when dense).  When ``compacted``, ``model`` is
    the smaller model of gathered layers and ``masks`` still describe the
    original layers, which is where the kept columns come from.
    ``training_state`` (optimiser, scaler, random generators) is for ``--resume``.
    """

    model: nn.Module
    masks: dict[str, torch.Tensor]
    prune_mode: str
    density: float
    arch: dict
    dataset: str
    train_config: dict
    metrics: dict
    seed: int
    package_version: str
    git_revision: str = "unknown"
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    compacted: bool = False
    training_state: dict | None = None


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    masks: dict[str, torch.Tensor],
    prune_mode: str,
    density: float,
    arch: dict,
    dataset: str,
    train_config: dict,
    metrics: dict,
    seed: int,
    epoch: int = 0,
    history: list[dict] | None = None,
    compacted: bool = False,
    training_state: dict | None = None,
) -> None:
    """Write one checkpoint file atomically (a kill leaves the old file or the new one, never half)."""
    if prune_mode not in PRUNE_MODES:
        raise InputError(f"prune mode {prune_mode!r}: expected one of {', '.join(PRUNE_MODES)}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **provenance(arch=dict(arch), dataset=dataset, seed=seed),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "masks": {k: v.detach().cpu().bool() for k, v in masks.items()},
        "prune_mode": prune_mode,
        "density": float(density),
        "train_config": train_config,
        "metrics": metrics,
        "epoch": epoch,
        "history": history or [],
        "compacted": compacted,
        "training_state": training_state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


# What a checkpoint derived from another (compacted, attention-sparsified) takes from it unchanged.
DERIVED_FIELDS = ("masks", "prune_mode", "density", "arch", "dataset", "train_config", "metrics", "seed",
                  "epoch", "history", "compacted")


def save_derived(path: str | Path, source: Checkpoint, model: nn.Module, **changes) -> None:
    """Write ``model`` as a checkpoint derived from ``source``: its fields, but for ``changes``, and no
    training state (a derived checkpoint does not resume its source's run)."""
    fields = {name: getattr(source, name) for name in DERIVED_FIELDS} | changes
    save_checkpoint(path, model=model, training_state=None, **fields)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint and rebuild its model; any unreadable or foreign file is one :class:`InputError`."""
    payload = _read_payload(Path(path))
    model = _build_model(Path(path), payload)
    return Checkpoint(
        model=model,
        masks=payload["masks"],
        prune_mode=payload["prune_mode"],
        density=payload["density"],
        arch=payload["arch"],
        dataset=payload["dataset"],
        train_config=payload["train_config"],
        metrics=payload["metrics"],
        seed=payload["seed"],
        package_version=payload["package_version"],
        git_revision=payload["git_revision"],
        epoch=payload["epoch"],
        history=payload["history"],
        compacted=payload["compacted"],
        training_state=payload["training_state"],
    )


def _read_payload(path: Path) -> dict:
    """The checkpoint dict, after checking that the file is one."""
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file fails inside torch's zip and pickle readers in
        # too many ways to list (BadZipFile, UnpicklingError, EOFError, OSError, KeyError, ...): all are bad input
        raise InputError(f"{path}: not a readable checkpoint ({type(error).__name__}); expected a file "
                         "written by `attentionlite train`") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an attentionlite checkpoint (no format {FORMAT!r}); "
                         "expected a file written by `attentionlite train`")
    if payload.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: checkpoint format_version {payload.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION}")
    missing = [key for key in PAYLOAD_KEYS if key not in payload]
    if missing:
        raise InputError(f"{path}: checkpoint has no {', '.join(missing)}; expected a file written by "
                         "`attentionlite train`")
    return payload


# Every entry save_checkpoint writes beside format and format_version.
PAYLOAD_KEYS = ("state_dict", "masks", "prune_mode", "density", "arch", "dataset", "train_config", "metrics", "seed",
                "package_version", "git_revision", "epoch", "history", "compacted", "training_state")


def compacted_model(model: nn.Module, prune_mode: str, masks: dict[str, torch.Tensor]) -> nn.Module:
    """The smaller dense form of a column-pruned model (gathered layers) or a dimension-pruned ViT."""
    if prune_mode == "dims":
        return compact_dims(cast(VisionTransformer, model), masks)
    return compact_model(model, masks)


def install_optional_buffers(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Give every optional buffer of ``model`` that is None (a fixed attention mask, the kept embedding
    channels) and that ``state_dict`` holds a tensor of that shape, so that the state loads (a None
    buffer takes no state)."""
    for prefix, module in model.named_modules():
        # named_buffers() skips None buffers: only the module's own table lists them
        device = next(itertools.chain(module.parameters(), module.buffers()), torch.empty(0)).device
        for name in [name for name, value in module._buffers.items() if value is None]:
            key = f"{prefix}.{name}" if prefix else name
            if key in state_dict:  # on the module's device: load_state_dict copies into it where it is
                setattr(module, name, torch.zeros_like(state_dict[key], device=device))


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state_dict)``, the optional buffers it holds given first."""
    install_optional_buffers(model, state_dict)
    model.load_state_dict(state_dict)


def _build_model(path: Path, payload: dict) -> nn.Module:
    """``create_model(**arch)``, compacted if the checkpoint is, with its weights and masks."""
    arch = payload["arch"]
    if arch.get("name") not in list_models():
        raise InputError(f"{path}: model {arch.get('name')!r} is not registered; "
                         f"expected one of {', '.join(list_models())}")
    try:
        model: nn.Module = create_model(**arch)
        if payload["compacted"]:
            model = compacted_model(model, payload["prune_mode"], payload["masks"])
        load_model_state(model, payload["state_dict"])
        if not payload["compacted"]:
            apply_masks(model, payload["masks"])
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as error:  # a damaged arch or weights
        raise InputError(f"{path}: its model cannot be rebuilt from its architecture and weights "
                         f"({type(error).__name__}); expected a file written by `attentionlite train`") from None
    return model.eval()
