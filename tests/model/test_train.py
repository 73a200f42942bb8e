"""The training loop on a tiny random dataset: logs, exact density, resume, evaluation, the CLI."""

import csv
import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from interrupted import assert_same_state, whole_and_resumed  # pytest puts tests/ on sys.path
from torch import nn

import attentionlite.model.training.train as train_module
from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.model.training.checkpoint import load_checkpoint
from attentionlite.model.training.evaluate import evaluate_checkpoint, zero_weight_macs
from attentionlite.model.training.train import TrainConfig, recompute_norm_statistics, train

CLASSES = 10  # the tiny_cifar fixture's (tests/conftest.py)


def _config(tiny_cifar, out, **changes) -> TrainConfig:
    base = TrainConfig(model="resnet26", dataset="cifar10", data_dir=str(tiny_cifar), out=str(out), epochs=2,
                       batch_size=5, width=0.25, seed=0, cache_dir=str(tiny_cifar / "cache"), progress=False)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def teacher_path(tiny_cifar, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(_config(tiny_cifar, out, epochs=1))
    return out / "checkpoint.pt"


def test_distilled_pruned_student_logs_every_epoch_at_exact_density(tiny_cifar, teacher_path, tmp_path):
    config = _config(tiny_cifar, tmp_path, teacher=str(teacher_path), density=0.1, epochs=3)
    metrics = train(config)
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert {"loss", "ce", "kd", "at", "train_accuracy", "test_accuracy", "density"} <= set(rows[0])
    assert any(name.startswith("density:layer1.") for name in rows[0])
    assert all(float(row["kd"]) > 0 and float(row["at"]) > 0 for row in rows)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    maskable = sum(mask.numel() for mask in checkpoint.masks.values())
    assert abs(checkpoint.density - 0.1) <= 0.001 and abs(metrics["density"] - 0.1) <= 0.001
    assert sum(int(m.sum()) for m in checkpoint.masks.values()) == round(0.1 * maskable)
    weights = dict(checkpoint.model.named_parameters())
    assert all(torch.all(weights[name][~mask] == 0) for name, mask in checkpoint.masks.items())


def test_column_pruned_student_can_be_compacted_from_the_cli(tiny_cifar, tmp_path):
    train(_config(tiny_cifar, tmp_path / "run", density=0.3, prune="column"))
    result = CliRunner().invoke(main, ["compact", str(tmp_path / "run" / "checkpoint.pt"),
                                       "--out", str(tmp_path / "compact.pt")])
    assert result.exit_code == 0, result.output
    masked = load_checkpoint(tmp_path / "run" / "checkpoint.pt").model
    compacted = load_checkpoint(tmp_path / "compact.pt")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(compacted.model(images), masked(images), atol=1e-5, rtol=0)
    assert compacted.compacted and compacted.prune_mode == "column"
    assert sum(p.numel() for p in compacted.model.parameters()) < sum(p.numel() for p in masked.parameters())


def test_resume_after_an_interruption_gives_the_same_weights(tiny_cifar, teacher_path, tmp_path, monkeypatch):
    options = dict(teacher=str(teacher_path), density=0.2, epochs=3, batch_size=10)
    # Ctrl-C during the last epoch: epochs 1 and 2 are on disk
    whole, split = whole_and_resumed(_config(tiny_cifar, tmp_path / "whole", **options),
                                     _config(tiny_cifar, tmp_path / "split", **options), 2, monkeypatch)
    assert_same_state(whole, split)
    assert (tmp_path / "whole" / "log.csv").read_text().count("\n") == (tmp_path / "split" / "log.csv").read_text().count("\n")


def test_resume_with_other_options_is_an_input_error(tiny_cifar, tmp_path):
    train(_config(tiny_cifar, tmp_path, epochs=1))
    with pytest.raises(InputError, match="lr"):
        train(_config(tiny_cifar, tmp_path, epochs=1, lr=0.5), resume=True)


def test_existing_run_folder_needs_resume(tiny_cifar, tmp_path):
    train(_config(tiny_cifar, tmp_path, epochs=1))
    with pytest.raises(InputError, match="exists; expected resume, to continue that run"):
        train(_config(tiny_cifar, tmp_path, epochs=1))


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "training option epochs is 0; expected at least 1"),
    ({"density": 1.5}, "training option density is 1.5; expected a fraction in (0, 1]"),
    ({"lr": -0.1}, "training option lr is -0.1; expected a positive learning rate"),
    ({"prune": "rows"}, "training option prune is 'rows'; expected one of unstructured, column, nm"),
    ({"model": "resnet27"}, "model 'resnet27' is not registered; expected one of"),
    ({"device": "tpu"}, "device 'tpu' is not known; expected cpu or cuda"),
    ({"validation": 0}, "training option validation is 0; expected at least 1 image per class"),
    ({"lr": float("inf")}, "training option lr is inf; expected a finite number, a positive learning rate"),
    ({"momentum": 0.0}, "training option momentum is 0.0; expected a momentum in (0, 1)"),
    ({"weight_decay": -1e-4}, "training option weight_decay is -0.0001; expected zero or more"),
    ({"seed": -3}, "training option seed is -3; expected zero or more"),
    ({"validation": 1, "test_subset": 1}, "validation and test_subset are both set"),
    ({"validation": 2}, "training option validation is 2, but class 'class0' has 2 training images; expected fewer"),
])
def test_bad_options_are_named_in_the_librarys_words(tiny_cifar, tmp_path, changes, message):
    with pytest.raises(InputError) as raised:
        train(_config(tiny_cifar, tmp_path, **changes))
    assert message in str(raised.value) and "--" not in str(raised.value)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_validation_run_evaluates_on_held_out_training_images_and_never_reads_the_test_split(
        tiny_cifar, tmp_path, monkeypatch):
    no_test = tmp_path / "train_only"
    no_test.mkdir()
    (no_test / "train").symlink_to(tiny_cifar / "train", target_is_directory=True)
    config = _config(no_test, tmp_path / "run", validation=1, epochs=1)
    evaluated = []
    original = train_module.evaluate_accuracy

    def recording(model, loader, device="cpu"):
        evaluated.append(loader.images)
        return original(model, loader, device)

    monkeypatch.setattr(train_module, "evaluate_accuracy", recording)
    metrics = train(config)
    with open(tmp_path / "run" / "log.csv") as handle:
        row = next(csv.DictReader(handle))
    assert "val_accuracy" in row and "test_accuracy" not in row
    assert "val_accuracy" in metrics and "test_accuracy" not in metrics
    # 2 training images per class: 1 held out, so 10 evaluated, none of them among the 10 trained on
    trained, _ = train_module._loaders(config, train_module.dataset_info("cifar10"), train_module.World())
    held = evaluated[0].images
    assert len(held) == 10 and np.bincount(evaluated[0].labels).tolist() == [1] * CLASSES
    assert len(trained.images) == 10
    assert not any((image == held).all(axis=(1, 2, 3)).any() for image in trained.images.images)


def test_a_validation_run_refuses_a_teacher_that_trained_on_its_held_out_images(tiny_cifar, teacher_path, tmp_path):
    config = _config(tiny_cifar, tmp_path, validation=1, teacher=str(teacher_path))
    with pytest.raises(InputError, match="trained with validation=None.*expected a teacher trained with validation=1"):
        train(config)


def test_an_empty_run_folder_is_refused_not_taken_for_the_current_one(tiny_cifar):
    config = dataclasses.replace(_config(tiny_cifar, "unused"), out="")
    with pytest.raises(InputError, match="training option out is ''; expected the name of the run folder"):
        train(config)


def test_evaluate_reports_accuracy_and_costs(tiny_cifar, teacher_path):
    result = evaluate_checkpoint(teacher_path, data_dir=tiny_cifar, dataset=None)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["nonzero_parameters"] <= result["parameters"]
    assert result["macs"] <= result["dense_macs"]


def test_zero_weight_macs_on_a_toy_conv():
    # A 3x3 conv with 4 zero weights on a 4x4 image (padding 1) skips 4 * 16 MACs.
    conv = nn.Conv2d(3, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0, 0, :2, :2] = 0.0
    assert zero_weight_macs(conv, 4) == 64


def test_recomputed_norm_statistics_are_those_of_the_current_weights():
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
    batches = [(torch.randn(8, 3, 6, 6, generator=generator) * 3 + 1, torch.zeros(8)) for _ in range(5)]
    with torch.no_grad():
        features = model[0](torch.cat([images for images, _ in batches]))  # (40, 4, 4, 4)
    recompute_norm_statistics(model, batches)
    values = features.transpose(0, 1).flatten(1)  # (4 channels, 640 values)
    assert torch.allclose(model[1].running_mean, values.mean(1), atol=1e-5)
    assert torch.allclose(model[1].running_var, values.var(1, correction=0), rtol=1e-4)  # stale: 0 and 1


def test_train_help_explains_every_option():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    options = [p for p in main.commands["train"].params if p.name != "help"]
    assert all(option.help for option in options)
    for flag in ("--teacher", "--density", "--prune", "--resume", "--device", "--width", "--train-subset"):
        assert flag in result.output


def test_cli_bad_input_exits_2(tiny_cifar, tmp_path):
    result = CliRunner().invoke(main, ["train", "--model", "nonexistent", "--dataset", "cifar10", "--data-dir",
                                       str(tiny_cifar), "--out", str(tmp_path), "--epochs", "1"])
    assert result.exit_code == 2 and "nonexistent" in result.output
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["evaluate", str(garbage), "--data-dir", str(tiny_cifar)])
    assert result.exit_code == 2 and "garbage.pt" in result.output


def test_a_cpu_runs_scaler_state_resumes_on_an_enabled_scaler():
    # A CPU run saves its disabled scaler as {}; on CUDA the scaler is enabled, and torch refuses to load {}.
    # No CUDA here: an enabled CPU scaler stands in for it.
    from attentionlite.model.training.train import restore_scaler

    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()
    assert saved == {}
    enabled = torch.amp.GradScaler("cpu", enabled=True)
    with pytest.raises(RuntimeError, match="empty"):
        enabled.load_state_dict(saved)  # what resuming did before
    restore_scaler(enabled, saved)
    assert enabled.state_dict()["scale"] == 65536.0  # the initial scale, as a new run's
    grown = torch.amp.GradScaler("cpu", enabled=True, init_scale=8.0)
    restore_scaler(enabled, grown.state_dict())
    assert enabled.state_dict()["scale"] == 8.0
    restore_scaler(torch.amp.GradScaler("cpu", enabled=False), grown.state_dict())  # CUDA run back on CPU


def test_a_vit_student_distils_from_the_cnn_teacher_and_prunes_to_exact_density(tiny_cifar, teacher_path, tmp_path):
    """CE and KD from the ResNet teacher; a ViT has no stage maps, so no attention transfer."""
    config = _config(tiny_cifar, tmp_path, model="vit_tiny", width=None, teacher=str(teacher_path), density=0.1,
                     epochs=1)
    metrics = train(config)
    with open(tmp_path / "log.csv") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["kd"]) > 0 and float(row["at"]) == 0
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert any(name.startswith("blocks.0.attn.qkv") for name in checkpoint.masks)
    maskable = sum(mask.numel() for mask in checkpoint.masks.values())
    assert sum(int(m.sum()) for m in checkpoint.masks.values()) == round(0.1 * maskable)
    assert abs(metrics["density"] - 0.1) <= 0.001


def test_an_n_of_m_student_traces_as_n_of_m(tiny_cifar, tmp_path):
    import attentionlite as al

    train(_config(tiny_cifar, tmp_path, density=0.25, prune="nm", nm_block=8, epochs=2))  # 2:8
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint.prune_mode == "nm" and checkpoint.train_config["nm_block"] == 8
    for mask in checkpoint.masks.values():
        rows = mask.flatten(1).int()
        assert max(int(rows[:, start:start + 8].sum(1).max()) for start in range(0, rows.shape[1], 8)) <= 2
    masked = [op for op in al.trace(str(tmp_path / "checkpoint.pt")).ops_in_order() if op.weight_params
              and op.kind.value in ("conv", "linear")]
    assert masked and {(op.nm_kept, op.nm_block) for op in masked} == {(2, 8)}


def test_an_n_of_m_density_must_be_n_over_m(tiny_cifar, tmp_path):
    with pytest.raises(InputError, match="density 0.1 with N:M groups of 4: expected a density of N/4"):
        train(_config(tiny_cifar, tmp_path, density=0.1, prune="nm"))
