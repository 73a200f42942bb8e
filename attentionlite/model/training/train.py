"""The single-pass sparse-distillation loop: a student learns from a frozen teacher while it is pruned.

One epoch: for every batch, the named losses of :class:`~attentionlite.model.training.distill.Distiller`
(plain cross-entropy without a teacher), an SGD step (Nesterov momentum 0.9,
weight decay 5e-4, learning rate 0.1 with a per-step cosine decay to 0;
mixed precision on CUDA), then the masks are re-applied.  After every epoch
but the last, sparse momentum prunes and regrows
(:class:`~attentionlite.model.training.sparsity.SparseMomentum`).  After every
epoch the batch-norm statistics are recomputed for the weights as they now
are (:func:`recompute_norm_statistics`); then the student is evaluated, a row
is added to ``log.csv`` and ``checkpoint.pt`` is rewritten atomically with
everything needed to resume.

Under ``torchrun`` every process trains its share of each batch with
DistributedDataParallel (distributed.py) and rank 0 writes the checkpoint
and the log; the checkpoint does not depend on the number of processes.

Resuming: the learning rate is a function of the step, the batch order and
augmentation of epoch ``e`` depend only on ``(seed, e)``, and the checkpoint
holds the weights, masks, optimiser state, random-generator state and the log
rows; so an interrupted run resumed from its last checkpoint reaches the same
weights as an uninterrupted one.  The epoch in progress at an interruption is
recomputed from its start.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from fvcore.nn import update_bn_stats
from torch import nn
from tqdm import tqdm

from attentionlite.errors import InputError
from attentionlite.files import atomic_write_text, rows_to_csv
from attentionlite.model.data.loader import BatchLoader, evaluation_batches, in_order
from attentionlite.model.data.registry import DatasetInfo, ImageSet, dataset_info
from attentionlite.model.data.splits import hold_out, load_split, subset
from attentionlite.model.nets.complexity import count_macs
from attentionlite.model.nets.zoo import create_model, list_models
from attentionlite.model.training.checkpoint import Checkpoint, load_checkpoint, load_model_state, save_checkpoint
from attentionlite.model.training.dims import DIMS_PENALTY, DimensionSearch
from attentionlite.model.training.distill import LOSS_NAMES, DistillationWeights, Distiller
from attentionlite.model.training.distributed import World, data_parallel, join_world, leave_world
from attentionlite.model.training.evaluate import evaluate_accuracy, pruned_model_costs
from attentionlite.model.training.sparsity import (
    NM_BLOCK,
    PRUNE_MODES,
    NMUnits,
    SparseMomentum,
    density,
    initial_masks,
    layer_densities,
    nm_kept,
)
from attentionlite.provenance import file_sha256

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.csv"
# Training batches over which the batch-norm statistics are recomputed after every epoch.
PRECISE_NORM_BATCHES = 50
# The validation images are one draw whatever the run's seed, so that every run choosing settings on them, the
# teacher's included, holds out (and never trains on) the same images.
VALIDATION_SEED = 7919
EVALUATION_BATCH = 256  # images per forward pass when scoring: memory only, no effect on the result

# Weight masks by sparse momentum, or the dimension search of a ViT.
TRAINING_PRUNE_MODES = (*PRUNE_MODES, DimensionSearch.name)
# Options that may differ on --resume: where things are and how they are shown, not what is computed.
RESUMABLE_WITH_CHANGES = ("out", "teacher", "device", "data_dir", "cache_dir", "progress")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored in its checkpoint (defaults follow the papers)."""

    model: str
    dataset: str
    data_dir: str
    out: str
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    teacher: str | None = None
    init: str | None = None  # a checkpoint to start from: its weights, masks and attention masks
    density: float = 1.0
    prune: str = "unstructured"
    prune_rate: float = 0.5
    nm_block: int = NM_BLOCK  # prune "nm": N = density x nm_block weights kept in every group of nm_block
    search_epochs: int | None = None  # prune "dims": epochs of gate search before the budget (None: half)
    dims_penalty: float = DIMS_PENALTY  # prune "dims": weight of the gates' L1 norm in the loss
    alpha: float = 0.9
    temperature: float = 4.0
    beta: float = 1000.0
    width: float | None = None
    heads: int | None = None
    kernel_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    validation: int | None = None  # images per class held out of the training split and evaluated instead of test
    augment: bool = True
    seed: int = 0
    device: str = "cpu"
    cache_dir: str | None = None
    progress: bool = True

    @property
    def prune_mode(self) -> str:
        """``"dense"`` at density 1, else the pruning mode."""
        return "dense" if self.density >= 1.0 else self.prune

    @property
    def dims_search_epochs(self) -> int:
        """prune "dims": epochs the gates are searched, ``search_epochs`` or half the run (at least 1)."""
        return self.search_epochs if self.search_epochs is not None else max(1, self.epochs // 2)

    @property
    def evaluated_split(self) -> str:
        """``"val"`` when the run holds out a validation part of the training split, else ``"test"``."""
        return "test" if self.validation is None else "val"


@dataclass
class Run:
    """The live objects of one training run."""

    config: TrainConfig
    device: torch.device
    distiller: Distiller
    optimizer: torch.optim.Optimizer
    sparsity: SparseMomentum | DimensionSearch | None
    scaler: torch.amp.GradScaler
    train_batches: BatchLoader
    eval_batches: BatchLoader  # the validation images held out, or the test split
    image_size: int
    dense_macs: int
    arch: dict  # the student's create_model arguments
    world: World  # this process among the training processes (distributed.py)
    step: nn.Module  # what a training step calls: the distiller, data-parallel over the world
    history: list[dict] = dataclasses.field(default_factory=list)

    @property
    def student(self) -> nn.Module:
        return self.distiller.student


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Train (and distil, and prune) as ``config`` says; returns the final metrics.

    Writes ``<out>/checkpoint.pt`` and ``<out>/log.csv`` after every epoch.  With
    ``resume``, continues from ``<out>/checkpoint.pt``.
    """
    _validate(config)
    checkpoint_path = Path(config.out) / CHECKPOINT_NAME
    _check_out(checkpoint_path, resume)
    world = join_world(config.device)
    try:
        run = _build_run(config, world)
        if resume:
            _restore(run, checkpoint_path)
        for epoch in range(len(run.history), config.epochs):
            _train_and_record_epoch(run, epoch, checkpoint_path)
        return _final_metrics(run)
    finally:
        leave_world(world)


def _train_and_record_epoch(run: Run, epoch: int, checkpoint_path: Path) -> None:
    """One epoch, the sparse-momentum step, evaluation, the log row and the checkpoint."""
    started = time.perf_counter()
    losses = _train_epoch(run, epoch)
    if run.sparsity is not None and epoch < run.config.epochs - 1:
        run.sparsity.prune_and_regrow(run.optimizer, epoch, run.config.epochs)
    recompute_norm_statistics(run.student, run.train_batches, run.device)  # the epoch's own batches
    accuracy = evaluate_accuracy(run.student, run.eval_batches, run.device)
    run.history.append(_log_row(run, epoch, losses, accuracy, time.perf_counter() - started))
    if run.world.is_main:  # every rank holds the same state; one writes it
        _save(run, checkpoint_path)
        atomic_write_text(checkpoint_path.parent / LOG_NAME, rows_to_csv(run.history))
        if run.config.progress:
            tqdm.write(_summary(run.history[-1], run.config))


def recompute_norm_statistics(model: nn.Module, batches, device: torch.device | str = "cpu",
                              max_batches: int = PRECISE_NORM_BATCHES) -> None:
    """Replace every batch norm's running statistics by those of ``model`` as it is now (PreciseBN).

    The running averages kept during training mix statistics of weights that
    have since changed, and pruning and regrowth change the weights at once.
    Small sparse students grow channels of nearly constant input, where
    evaluation divides a small error in the running mean by a tiny running
    standard deviation: one distilled student scored 24.6% on its training
    batches and 10.0% in evaluation, 22.1% after recomputing.  The statistics
    are recomputed over up to ``max_batches`` of ``batches`` with the weights
    fixed (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; fvcore's
    ``update_bn_stats``, which averages the population variance exactly).
    """
    model.train()
    images = (images.to(device) for images, _ in batches)
    update_bn_stats(model, images, num_iters=min(max_batches, len(batches)))


def _summary(row: dict, config: TrainConfig) -> str:
    split = config.evaluated_split
    return (f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.3f} (ce {row['ce']:.3f} kd {row['kd']:.3f} "
            f"at {row['at']:.4f}), train {row['train_accuracy']:.3f}, {split} {row[f'{split}_accuracy']:.3f}, "
            f"density {row['density']:.4f}, {row['seconds']:.0f} s")


def _train_epoch(run: Run, epoch: int) -> dict[str, float]:
    """SGD over one epoch; returns the mean of each named loss, the train accuracy and the last lr."""
    run.distiller.train()
    run.train_batches.set_epoch(epoch)
    sums = dict.fromkeys(LOSS_NAMES, 0.0) | {"correct": 0.0, "seen": 0.0}
    bar = tqdm(run.train_batches, desc=f"epoch {epoch + 1}/{run.config.epochs}",
               disable=not (run.config.progress and run.world.is_main), leave=False, unit="batch")
    for step, (images, labels) in enumerate(bar):
        lr = _set_learning_rate(run, epoch * len(run.train_batches) + step)
        logits, losses = _optimizer_step(run, images.to(run.device), labels.to(run.device))
        _accumulate(sums, losses, logits, labels.to(run.device))
        bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}", acc=f"{sums['correct'] / sums['seen']:.3f}")
    # each rank's losses are means over its share: their mean over the ranks is the whole batch's
    sums = dict(zip(sums, run.world.sum(list(sums.values()))))
    batches = max(1, len(run.train_batches)) * run.world.size
    means = {name: sums[name] / batches for name in LOSS_NAMES}
    return means | {"train_accuracy": sums["correct"] / max(1.0, sums["seen"]), "lr": lr}


def _optimizer_step(run: Run, images: torch.Tensor, labels: torch.Tensor):
    """Forward (autocast on CUDA), scaled backward, SGD step, masks re-applied; returns logits and losses."""
    with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.device.type == "cuda"):
        logits, losses = run.step(images, labels)
    penalty = run.sparsity.penalty() if run.sparsity is not None else 0.0
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(losses["loss"] + penalty).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.sparsity is not None:
        run.sparsity.apply()
    return logits.detach(), {name: value.detach() for name, value in losses.items()}


def _accumulate(sums: dict[str, float], losses: dict[str, torch.Tensor], logits, labels) -> None:
    for name in LOSS_NAMES:
        sums[name] += float(losses[name])
    sums["correct"] += float((logits.argmax(dim=1) == labels).sum())
    sums["seen"] += len(labels)


def _set_learning_rate(run: Run, step: int) -> float:
    """Cosine decay per step from ``lr`` to 0 over the whole run (Loshchilov & Hutter 2017, no restarts)."""
    total_steps = run.config.epochs * len(run.train_batches)
    lr = run.config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _log_row(run: Run, epoch: int, losses: dict[str, float], accuracy: float, seconds: float) -> dict:
    """One CSV row: epoch, lr, named losses, train and val or test accuracy, overall and per-layer density,
    seconds."""
    masks = run.sparsity.masks if run.sparsity is not None else {}
    row = {"epoch": epoch + 1, "lr": losses["lr"]}
    row |= {name: losses[name] for name in LOSS_NAMES}
    row |= {"train_accuracy": losses["train_accuracy"], f"{run.config.evaluated_split}_accuracy": accuracy}
    row |= {"density": density(masks) if masks else 1.0, "seconds": seconds}
    return row | {f"density:{name}": value for name, value in layer_densities(masks).items()}


def _final_metrics(run: Run) -> dict:
    """The last row's accuracies and density, the model's costs and the total training time."""
    last = run.history[-1]
    accuracy = f"{run.config.evaluated_split}_accuracy"
    return {
        "epochs": len(run.history),
        "train_accuracy": last["train_accuracy"],
        accuracy: last[accuracy],
        "density": last["density"],
        "wall_time_s": sum(row["seconds"] for row in run.history),
        **pruned_model_costs(run.student, run.config.prune_mode, run.sparsity.masks if run.sparsity else {},
                             run.image_size, run.dense_macs),
        **(run.sparsity.summary() if run.sparsity is not None else {}),
    }


def _save(run: Run, path: Path) -> None:
    """The checkpoint of the epoch just finished, with the state needed to resume."""
    masks = run.sparsity.masks if run.sparsity is not None else {}
    save_checkpoint(
        path,
        model=run.student,
        masks=masks,
        prune_mode=run.config.prune_mode,
        density=density(masks) if masks else 1.0,
        arch=run.arch,
        dataset=run.config.dataset,
        train_config=_stored_config(run.config),
        metrics=_final_metrics(run),
        seed=run.config.seed,
        epoch=len(run.history),
        history=run.history,
        training_state=_training_state(run),
    )


def _training_state(run: Run) -> dict:
    state = {"optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict(),
             "cpu_rng": torch.get_rng_state()}
    if run.sparsity is not None:
        state["pruning"] = run.sparsity.state()
    if run.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(run.device)
    return state


def _restore(run: Run, path: Path) -> None:
    """Load weights, masks, optimiser, scaler, generator state and log rows of the last finished epoch."""
    checkpoint = load_checkpoint(path)
    _check_same_config(path, checkpoint.train_config, _stored_config(run.config))
    state = checkpoint.training_state
    if state is None:
        raise InputError(f"{path}: holds no training state (a compacted checkpoint?); expected the "
                         "checkpoint of an interrupted run")
    load_model_state(run.student, checkpoint.model.state_dict())
    if run.sparsity is not None:
        run.sparsity.restore(checkpoint.masks, state.get("pruning", {}))
    run.optimizer.load_state_dict(state["optimizer"])
    restore_scaler(run.scaler, state["scaler"])
    torch.set_rng_state(state["cpu_rng"])
    if run.device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], run.device)
    run.history = list(checkpoint.history)


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict) -> None:
    """The loss scaler's state, where the run that saved it had one.

    A CPU run's scaler is disabled and saves ``{}``; continued on CUDA, the
    enabled scaler starts from its initial scale, as a new CUDA run does
    (torch refuses to load the empty state).  A CUDA run continued on the CPU
    gets a disabled scaler, which ignores the saved scale.
    """
    if saved:
        scaler.load_state_dict(saved)


def _check_same_config(path: Path, stored: dict, current: dict) -> None:
    changed = [key for key in current if key not in RESUMABLE_WITH_CHANGES and stored.get(key) != current[key]]
    if changed:
        key = changed[0]
        raise InputError(f"{path}: resuming with {key}={current[key]!r}, but the run was started with "
                         f"{key}={stored.get(key)!r}; expected the same training options")


def _stored_config(config: TrainConfig) -> dict:
    """The resolved config as stored: every option, the teacher's hash, the pruning mode."""
    stored = dataclasses.asdict(config) | {"prune_mode": config.prune_mode}
    for source in ("teacher", "init"):
        if getattr(config, source) is not None:
            stored[f"{source}_sha256"] = file_sha256(getattr(config, source))
    return stored


def _build_run(config: TrainConfig, world: World) -> Run:
    """Data, student, teacher, optimiser and masks, all seeded from ``config.seed`` (the same on every rank)."""
    device = _device(config.device)
    if config.prune_mode == DimensionSearch.name and world.size > 1:
        raise InputError(f"prune dims on {world.size} processes: the dimension search runs on one process "
                         "(its gates are not averaged across processes); expected a run without torchrun")
    info = dataset_info(config.dataset)
    torch.manual_seed(config.seed)
    initial = _initial_checkpoint(config)
    student = (_create_student(config, info) if initial is None else initial.model).to(device)
    train_batches, eval_batches = _loaders(config, info, world)
    distiller = Distiller(student, _load_teacher(config, device), _weights(config))
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    sparsity = _sparsity(config, student, None if initial is None else initial.masks)
    if sparsity is not None and sparsity.parameters():  # the dimension search's gates
        optimizer.add_param_group({"params": sparsity.parameters(), "weight_decay": 0.0})
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    arch = cast(dict, student.arch)  # set by create_model
    dense_macs = _dense_macs(tuple(arch.items()))
    return Run(config, device, distiller, optimizer, sparsity, scaler, train_batches, eval_batches,
               info.image_size, dense_macs, arch, world, data_parallel(distiller, world))


@functools.lru_cache(maxsize=16)
def _dense_macs(arch: tuple) -> int:
    """Dense MACs of an architecture, counted once per process (tracing takes seconds)."""
    return count_macs(create_model(**dict(arch)), dict(arch)["image_size"])


def _sparsity(config: TrainConfig, student: nn.Module,
              masks: dict[str, torch.Tensor] | None = None) -> SparseMomentum | DimensionSearch | None:
    """Sparse momentum from ``masks`` (an --init checkpoint's) or from random masks at the density; or the
    dimension search, from all dimensions or from ``masks``."""
    if config.prune_mode == "dense":
        return None
    if config.prune == DimensionSearch.name:
        return DimensionSearch.of(student, config.density, config.dims_search_epochs, config.dims_penalty, masks)
    if not masks:
        masks = initial_masks(student, config.density, config.prune, seed=config.seed, block=config.nm_block)
    sparsity = SparseMomentum(student, masks, config.prune, config.prune_rate, config.nm_block)
    sparsity.apply()
    return sparsity


# The model's size options of a run: unset (None) ones take the model's defaults.
_MODEL_OVERRIDES = ("width", "heads", "kernel_size", "embed_dim", "depth")


def _create_student(config: TrainConfig, info: DatasetInfo) -> nn.Module:
    if config.model not in list_models():
        raise InputError(f"model {config.model!r} is not registered; expected one of {', '.join(list_models())}")
    given = {key: getattr(config, key) for key in _MODEL_OVERRIDES}
    overrides = {key: value for key, value in given.items() if value is not None}
    return create_model(config.model, num_classes=info.num_classes, image_size=info.image_size, **overrides)


def _initial_checkpoint(config: TrainConfig) -> Checkpoint | None:
    """The --init checkpoint, after checking that it is this run's model, dataset and pruning."""
    if config.init is None:
        return None
    initial = load_checkpoint(config.init)
    sizes = [key for key in _MODEL_OVERRIDES if getattr(config, key) is not None]
    expected = "expected a checkpoint of the same model and dataset, without model size options (the checkpoint " \
               "has its own)"
    if initial.arch["name"] != config.model or initial.dataset != config.dataset or sizes or initial.compacted:
        found = f"{initial.arch['name']} on {initial.dataset}{', compacted' if initial.compacted else ''}"
        raise InputError(f"init {config.init}: {found}, for a run of {config.model} on {config.dataset}"
                         f"{' with ' + ', '.join(sizes) if sizes else ''}; {expected}")
    pruned_at = initial.train_config.get("density")
    if initial.prune_mode != "dense" and (initial.prune_mode, pruned_at) != (config.prune_mode, config.density):
        raise InputError(f"init {config.init}: pruned {initial.prune_mode} at density {pruned_at}, for a "
                         f"run of prune {config.prune_mode} at density {config.density:g}; expected the checkpoint's "
                         "pruning, so that its masks carry on")
    return initial


def _load_teacher(config: TrainConfig, device: torch.device) -> nn.Module | None:
    if config.teacher is None:
        return None
    teacher = load_checkpoint(config.teacher)
    if teacher.dataset != config.dataset:
        raise InputError(f"teacher {config.teacher}: trained on {teacher.dataset!r}; "
                         f"expected a teacher trained on {config.dataset!r}")
    held_out = teacher.train_config.get("validation")
    if config.validation is not None and held_out != config.validation:
        raise InputError(f"teacher {config.teacher}: trained with validation={held_out!r}, so it may have seen "
                         f"the images this run holds out; expected a teacher trained with "
                         f"validation={config.validation}")
    return teacher.model.to(device)


def _weights(config: TrainConfig) -> DistillationWeights:
    return DistillationWeights(alpha=config.alpha, temperature=config.temperature, beta=config.beta)


def _loaders(config: TrainConfig, info: DatasetInfo, world: World) -> tuple[BatchLoader, BatchLoader]:
    """The training batches (this rank's share) and the evaluation batches: validation or test."""
    train_images = load_split(config.dataset, config.data_dir, "train", config.cache_dir)
    if config.validation is not None:
        _check_validation_leaves_training_images(config.validation, train_images)
        train_images, held_out = hold_out(train_images, config.validation, VALIDATION_SEED)
    if config.train_subset is not None:
        train_images = subset(train_images, config.train_subset, config.seed)
    train_batches = BatchLoader(train_images, info, batch_size=config.batch_size, shuffle=True,
                                augment=config.augment, seed=config.seed, drop_last=True,
                                shard=(world.rank, world.size))
    if len(train_batches) == 0:
        raise InputError(f"batch_size {config.batch_size} is larger than the {len(train_images)} training "
                         "images; expected a smaller batch_size or a larger train_subset")
    if config.validation is not None:
        return train_batches, in_order(held_out, info, EVALUATION_BATCH, config.seed)
    test_batches, _ = evaluation_batches(config.dataset, config.data_dir, EVALUATION_BATCH, config.test_subset,
                                         config.seed, config.cache_dir)
    return train_batches, test_batches


def _check_validation_leaves_training_images(per_class: int, images: ImageSet) -> None:
    counts = np.bincount(images.labels, minlength=len(images.classes))
    smallest = int(counts.argmin())
    if per_class >= counts[smallest]:
        raise InputError(f"training option validation is {per_class}, but class {images.classes[smallest]!r} "
                         f"has {counts[smallest]} training images; expected fewer, so that some are left to "
                         "train on")


def _device(name: str) -> torch.device:
    if name not in ("cpu", "cuda"):
        raise InputError(f"device {name!r} is not known; expected cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda': no CUDA device is available here; expected cpu")
    return torch.device(name)


def _check_out(checkpoint_path: Path, resume: bool) -> None:
    if resume and not checkpoint_path.is_file():
        raise InputError(f"resume: {checkpoint_path} not found; expected the output folder of an interrupted run")
    if not resume and checkpoint_path.exists():
        raise InputError(f"{checkpoint_path} exists; expected resume, to continue that run, or another output "
                         "folder")


def _validate(config: TrainConfig) -> None:
    """Range checks for the numeric options, one clear line each, naming the option (the CLI's flag is
    its name with dashes) and the range expected."""
    for name, (ok, expected) in _RANGES.items():
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"training option {name} is {value!r}; expected a finite number, {expected}")
        if value is not None and not ok(value):
            raise InputError(f"training option {name} is {value!r}; expected {expected}")
    if not config.out:
        raise InputError("training option out is ''; expected the name of the run folder")
    if config.prune not in TRAINING_PRUNE_MODES:
        raise InputError(f"training option prune is {config.prune!r}; expected one of "
                         f"{', '.join(TRAINING_PRUNE_MODES)}")
    if config.prune == DimensionSearch.name and config.prune_mode != "dense":
        _check_search_epochs(config)
    if config.prune == NMUnits.name and config.prune_mode != "dense":
        nm_kept(config.density, config.nm_block)  # density must be N / nm_block
    if config.validation is not None and config.test_subset is not None:
        raise InputError("training options validation and test_subset are both set, but a run evaluates on its "
                         "validation images or on the test split; expected one of them")


def _check_search_epochs(config: TrainConfig) -> None:
    """The dimension search ends, and the budget applies, after an epoch that is not the last."""
    search = config.dims_search_epochs
    if not 1 <= search < config.epochs:
        raise InputError(f"training options search_epochs {search} and epochs {config.epochs}: prune dims "
                         "applies its budget after the search, so expected at least 2 epochs and from 1 to "
                         f"{config.epochs - 1} search epochs")


# Each numeric option's range: (test, the range in words).  None (width unset) is always allowed.
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, "at least 1"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "lr": (lambda v: v > 0, "a positive learning rate"),
    "momentum": (lambda v: 0 < v < 1, "a momentum in (0, 1) (Nesterov's needs one above 0)"),
    "weight_decay": (lambda v: v >= 0, "zero or more"),
    "density": (lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "prune_rate": (lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
    "alpha": (lambda v: 0 <= v <= 1, "a weight in [0, 1]"),
    "temperature": (lambda v: v > 0, "a positive temperature"),
    "beta": (lambda v: v >= 0, "zero or more"),
    "dims_penalty": (lambda v: v >= 0, "zero or more"),
    "width": (lambda v: v > 0, "a positive width multiplier"),
    "validation": (lambda v: v >= 1, "at least 1 image per class"),
    "seed": (lambda v: v >= 0, "zero or more"),
}
