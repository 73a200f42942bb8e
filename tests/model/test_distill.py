"""Each distillation loss term against a hand computation; teacher frozen; hooks leave no trace."""

import math

import pytest
import torch
from torch import nn

from attentionlite.model.training.distill import (
    DistillationWeights,
    Distiller,
    attention_map,
    attention_transfer_distance,
    capture_outputs,
    distillation_loss,
    kd_loss,
)


def test_kd_loss_is_t_squared_kl_of_softened_distributions():
    # At T = 2, teacher logits (2 ln 3, 0) soften to p = (3/4, 1/4); the student's (0, 0) to q = (1/2, 1/2).
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    student = torch.tensor([[0.0, 0.0]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_loss(student, teacher, temperature=2.0).item() == pytest.approx(4 * kl, rel=1e-6)


def test_kd_loss_is_zero_for_identical_logits():
    logits = torch.randn(5, 10)
    assert kd_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_map_is_normalised_channel_mean_of_squares():
    # Two channels over a 1 x 2 image: (1, 2) and (3, 0) -> mean squares (5, 2) -> / sqrt(29).
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[5.0, 2.0]]) / math.sqrt(29.0)
    assert torch.allclose(attention_map(features), expected)


def test_attention_transfer_distance_is_squared_distance_over_positions_and_batch():
    # Maps (1, 0) and (0, 1): squared distance 2 over 2 positions = 1 for each of the 3 samples.
    student = torch.tensor([[[[1.0, 0.0]]]]).repeat(3, 1, 1, 1)  # (3, 1, 1, 2)
    teacher = torch.tensor([[[[0.0, 5.0]]]]).repeat(3, 4, 1, 1)  # (3, 4, 1, 2): channel count may differ
    assert attention_transfer_distance(student, teacher).item() == pytest.approx(1.0)


def test_attention_transfer_pools_the_larger_map_to_the_smaller_resolution():
    # Student 2 x 2 map with energy only in the top row pools (by columns: 1 x 1 per 2 x 2 block)...
    student = torch.zeros(1, 1, 4, 4)
    student[:, :, :2, :] = 1.0  # energy 1 in the top two rows -> pooled to (1, 1; 0, 0)
    teacher_same = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])  # (1, 1, 2, 2)
    teacher_other = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])
    assert attention_transfer_distance(student, teacher_same).item() == pytest.approx(0.0, abs=1e-7)
    # (1,1,0,0)/sqrt2 vs (0,0,1,1)/sqrt2: squared distance 2 over 4 positions.
    assert attention_transfer_distance(student, teacher_other).item() == pytest.approx(0.5)


def test_distillation_loss_combines_the_terms_with_the_paper_weights():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[4 * math.log(3.0), 0.0]])  # at T = 4: (3/4, 1/4)
    stages_s = [torch.tensor([[[[1.0, 0.0]]]])]
    stages_t = [torch.tensor([[[[0.0, 1.0]]]])]
    losses = distillation_loss(student, torch.tensor([0]), DistillationWeights(), teacher, stages_s, stages_t)
    ce = math.log(2.0)
    kd = 16 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    at = 1.0
    assert losses["ce"].item() == pytest.approx(ce)
    assert losses["kd"].item() == pytest.approx(kd, rel=1e-5)
    assert losses["at"].item() == pytest.approx(at)
    assert losses["loss"].item() == pytest.approx(0.1 * ce + 0.9 * kd + 500 * at, rel=1e-5)


def test_without_a_teacher_the_loss_is_cross_entropy():
    losses = distillation_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]), DistillationWeights())
    assert set(losses) == {"loss", "ce", "kd", "at"}
    assert losses["loss"].item() == pytest.approx(math.log(2.0))
    assert losses["kd"].item() == 0.0 and losses["at"].item() == 0.0


class Staged(nn.Module):
    """Four 'stages' (1x1 convs) and a linear head: the shape of the zoo's models, in miniature."""

    stage_modules = ("s1", "s2", "s3", "s4")

    def __init__(self):
        super().__init__()
        self.s1, self.s2, self.s3, self.s4 = (nn.Conv2d(3 if i == 0 else 4, 4, 1) for i in range(4))
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.norm(self.s4(self.s3(self.s2(self.s1(x)))))
        return self.head(x.mean(dim=(2, 3)))


def test_capture_outputs_records_stage_outputs_and_removes_its_hooks():
    model = Staged()
    images = torch.randn(2, 3, 4, 4)
    with capture_outputs(model, ["s1", "s3"]) as outputs:
        model(images)
    assert torch.equal(outputs[0], model.s1(images))
    assert torch.equal(outputs[1], model.s3(model.s2(model.s1(images))))
    assert all(not m._forward_hooks for m in model.modules())


def test_distiller_freezes_the_teacher_in_eval_mode():
    student, teacher = Staged(), Staged()
    distiller = Distiller(student, teacher, DistillationWeights()).train()
    running_mean = teacher.norm.running_mean.clone()
    _, losses = distiller(torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 0, 1]))
    losses["loss"].backward()
    assert not teacher.training and student.training
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert torch.equal(teacher.norm.running_mean, running_mean)  # eval mode: statistics untouched
    assert losses["at"].item() > 0


def test_deit_learns_the_labels_on_its_class_head_and_the_teacher_on_its_distillation_head():
    """DeiT's soft distillation: CE on the class token's head, T^2 KL on the distillation token's;
    the prediction is the mean of the two; no stage maps, so no attention transfer."""
    from attentionlite.model.nets.zoo import create_model

    torch.manual_seed(0)
    student = create_model("deit_tiny", num_classes=2, embed_dim=24, depth=1)
    teacher = create_model("resnet26", num_classes=2, width=0.125)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    weights = DistillationWeights()
    logits, losses = Distiller(student, teacher, weights).train()(images, labels)
    label_logits, distilled_logits = student.forward_heads(images)
    with torch.no_grad():
        teacher_logits = teacher.eval()(images)
    assert torch.allclose(logits, (label_logits + distilled_logits) / 2)
    assert torch.allclose(losses["ce"], nn.functional.cross_entropy(label_logits, labels))
    assert torch.allclose(losses["kd"], kd_loss(distilled_logits, teacher_logits, weights.temperature))
    assert losses["at"].item() == 0.0
    student.eval()
    assert torch.allclose(student(images), (label_logits + distilled_logits) / 2, atol=1e-6)
