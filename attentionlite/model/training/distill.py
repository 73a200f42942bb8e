"""Distillation losses: cross-entropy, knowledge distillation and attention transfer.

The student's loss (Hinton et al. 2015 for KD; Zagoruyko & Komodakis 2017,
"Paying More Attention to Attention", for AT):

    loss = (1 - a) CE(y, s) + a T^2 KL(softmax(t / T) || softmax(s / T))
           + b / 2 * sum_{stages j} AT(S_j, T_j)

with defaults a = 0.9, T = 4, b = 1000.  Without a teacher the loss is plain CE.

Attention transfer.  The attention map of a feature ``A`` of shape
``(B, C, H, W)`` is ``Q = mean_c |A_c|^p`` with ``p = 2``, flattened to
``(B, H*W)`` and L2-normalised per sample.  The distance between a student's
and a teacher's maps is the one of the authors' reference implementation
(github.com/szagoruyko/attention-transfer, ``at_loss``): the squared Euclidean
distance ``|| Q_s/||Q_s|| - Q_t/||Q_t|| ||_2^2`` divided by the number of
positions ``H*W`` and averaged over the batch.  That scaling is what makes
b = 1000 the right weight (the paper, Sec. 4.1: "10^3 divided by the number of
elements in attention map and batch size"); the un-squared norm of its Eq. 2
would make the AT term dominate by orders of magnitude.  Coarse stages weigh
more per position: a 4 x 4 stage output contributes about 64 times a 32 x 32
one for the same per-position mismatch, so early in training the AT term of
the last stage can dominate the loss.

When a student stage and a teacher stage differ in resolution, the
higher-resolution map of squared activations is average-pooled
(``adaptive_avg_pool2d``) to the lower resolution before normalising, so both
maps describe the same image regions.  Channel counts may differ freely: the
map averages over channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOSS_NAMES = ("loss", "ce", "kd", "at")


@dataclass(frozen=True)
class DistillationWeights:
    """The loss weights: ``alpha`` on KD (``1 - alpha`` on CE), ``temperature``, ``beta`` on AT."""

    alpha: float = 0.9
    temperature: float = 4.0
    beta: float = 1000.0


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 KL(softmax(t/T) || softmax(s/T))``, summed over classes, averaged over the batch (Hinton 2015)."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)  # (B, classes)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)  # (B, classes)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def attention_map(features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """L2-normalised spatial attention of ``features`` (B, C, H, W): mean over channels of A^2 -> (B, H*W).

    ``size`` average-pools the map of squared activations to a lower resolution first.
    """
    energy = features.float().pow(2).mean(dim=1, keepdim=True)  # (B, 1, H, W)
    if size is not None and tuple(energy.shape[-2:]) != tuple(size):
        energy = F.adaptive_avg_pool2d(energy, size)  # (B, 1, h, w)
    return F.normalize(energy.flatten(1), dim=1)  # (B, H*W)


def attention_transfer_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Squared distance of normalised attention maps over ``H*W``, averaged over the batch (see module doc)."""
    size = min(_side_pair(student), _side_pair(teacher), key=lambda hw: hw[0] * hw[1])
    difference = attention_map(student, size) - attention_map(teacher, size)  # (B, h*w)
    return difference.pow(2).mean()


def _side_pair(features: torch.Tensor) -> tuple[int, int]:
    """(H, W) of a (B, C, H, W) feature map."""
    height, width = features.shape[-2:]
    return int(height), int(width)


def attention_transfer_loss(students: Sequence[torch.Tensor], teachers: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over stages of :func:`attention_transfer_distance` (without the ``b / 2`` factor)."""
    distances = [attention_transfer_distance(s, t) for s, t in zip(students, teachers, strict=True)]
    return sum(distances[1:], distances[0])  # summed left to right, stage after stage


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    weights: DistillationWeights,
    teacher_logits: torch.Tensor | None = None,
    student_stages: Sequence[torch.Tensor] | None = None,
    teacher_stages: Sequence[torch.Tensor] | None = None,
    distilled_logits: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The named losses ``{"loss", "ce", "kd", "at"}``; plain CE (kd = at = 0) without a teacher.

    ``distilled_logits`` (DeiT's distillation head) are what KD compares with the teacher's; by
    default the student's one head, ``student_logits``, learns both.
    """
    ce = F.cross_entropy(student_logits.float(), labels)
    if teacher_logits is None:
        zero = ce.new_zeros(())
        return {"loss": ce, "ce": ce, "kd": zero, "at": zero}
    if student_stages is None or teacher_stages is None:
        raise ValueError("distilling from a teacher needs the stage outputs of both models")
    kd = kd_loss(student_logits if distilled_logits is None else distilled_logits, teacher_logits, weights.temperature)
    # A student without spatial stages (a ViT) has no attention maps to transfer.
    at = attention_transfer_loss(student_stages, teacher_stages) if student_stages else kd.new_zeros(())
    loss = (1 - weights.alpha) * ce + weights.alpha * kd + weights.beta / 2 * at
    return {"loss": loss, "ce": ce, "kd": kd, "at": at}


@contextmanager
def capture_outputs(model: nn.Module, module_paths: list[str]) -> Iterator[list[torch.Tensor | None]]:
    """Forward hooks on ``module_paths``: yields a list that each forward fills with their outputs, in order."""
    outputs: list[torch.Tensor | None] = [None] * len(module_paths)

    def recorder(index: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            outputs[index] = output

        return hook

    handles = [model.get_submodule(path).register_forward_hook(recorder(i)) for i, path in enumerate(module_paths)]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class Distiller(nn.Module):
    """A student, an optional frozen teacher and the loss weights: one call is one distillation step's loss.

    The teacher is kept in eval mode and run under ``torch.no_grad()``; the four
    stage outputs of both come from forward hooks on ``model.stage_modules``.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, weights: DistillationWeights):
        super().__init__()
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.weights = weights

    def train(self, mode: bool = True) -> Distiller:
        """Put the student in ``mode``; the teacher stays in eval mode."""
        self.training = mode
        self.student.train(mode)
        return self

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Student logits (B, classes) and the named losses for one batch.

        A student with two heads (DeiT's ``forward_heads``: a class head and a distillation head) learns
        the labels on the first and the teacher on the second; its logits are their mean.
        """
        if self.teacher is None:
            logits = self.student(images)
            return logits, distillation_loss(logits, labels, self.weights)
        with torch.no_grad(), capture_outputs(self.teacher, stage_paths(self.teacher)) as teacher_stages:
            teacher_logits = self.teacher(images)
        with capture_outputs(self.student, stage_paths(self.student)) as student_stages:
            label_logits, distilled_logits = self._heads(images)
        losses = distillation_loss(label_logits, labels, self.weights, teacher_logits, _captured(student_stages),
                                   _captured(teacher_stages), distilled_logits=distilled_logits)
        return (label_logits + distilled_logits) / 2, losses

    def _heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits for the labels, logits for the teacher): one head's twice, or DeiT's two."""
        forward_heads = getattr(self.student, "forward_heads", None)
        if forward_heads is not None:
            return forward_heads(images)
        logits = self.student(images)
        return logits, logits


def stage_paths(model: nn.Module) -> list[str]:
    """The module paths of a model's stages (its ``stage_modules``), whose outputs attention transfer compares."""
    paths = getattr(model, "stage_modules", None)
    if paths is None:
        raise TypeError(f"{type(model).__name__} names no stage_modules; attention transfer needs its stages")
    return list(paths)


def _captured(outputs: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """The stage outputs a forward pass recorded; a stage the pass did not run is a bug."""
    recorded = [output for output in outputs if output is not None]
    if len(recorded) != len(outputs):
        raise RuntimeError("a stage of the model did not run in its forward pass")
    return recorded
