"""The model zoo: every model runs, rebuilds from its arch, and matches hand counts and published figures."""

import json

import pytest
import torch
from click.testing import CliRunner
from small_models import RESNETS, small_overrides  # pytest puts tests/ on sys.path

from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.model.nets.complexity import count_macs, count_parameters
from attentionlite.model.nets.zoo import create_model, list_models

STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS = {"26": (1, 2, 4, 1), "50": (3, 4, 6, 3)}


def hand_parameters(blocks, num_classes, spatial_parameters, stem_parameters):
    """Bottleneck ResNet parameters from the layer shapes; BN adds 2 per channel."""
    total, in_channels = stem_parameters + 2 * 64, 64
    for stage_blocks, width in zip(blocks, STAGE_WIDTHS):
        for block in range(stage_blocks):
            total += in_channels * width + 2 * width  # 1x1 reduce + BN
            total += spatial_parameters(width) + 2 * width  # 3x3 conv or attention + BN
            total += width * 4 * width + 2 * 4 * width  # 1x1 expand + BN
            if block == 0:
                total += in_channels * 4 * width + 2 * 4 * width  # projection shortcut + BN
            in_channels = 4 * width
    return total + in_channels * num_classes + num_classes


def hand_macs(blocks, side, spatial_macs, stem_macs, num_classes=10):
    """Dense MACs; ``spatial_macs(width, side_in, side_out)`` is the spatial layer's count."""
    total, in_channels = stem_macs, 64
    for stage, (stage_blocks, width) in enumerate(zip(blocks, STAGE_WIDTHS)):
        for block in range(stage_blocks):
            side_out = side // 2 if stage > 0 and block == 0 else side
            total += side * side * in_channels * width
            total += spatial_macs(width, side, side_out)
            total += side_out * side_out * width * 4 * width
            if block == 0:
                total += side_out * side_out * in_channels * 4 * width
            in_channels, side = 4 * width, side_out
    return total + in_channels * num_classes


def conv_macs(width, side_in, side_out):
    return side_out * side_out * 9 * width * width


def attention_macs(width, side_in, side_out, k=7):
    """Attention runs at the input side (pooling follows): 3 projections, q.k, relative, weighted sum."""
    queries = side_in * side_in
    return queries * (3 * width * width + k * k * width + k * width + k * k * width)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("image_size", [32, 64])
def test_every_model_runs_at_32_and_64_px(name, image_size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, image_size=image_size, **small_overrides(name))
    with torch.no_grad():
        out = model(torch.randn(2, 3, image_size, image_size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_a_homogeneous_student_trains_end_to_end():
    """Every parameter, attention embeddings and stem mixtures included, gets a finite, non-zero gradient."""
    torch.manual_seed(0)
    model = create_model("sasa26_homogeneous", width=0.25).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name", RESNETS)
def test_arch_rebuilds_the_model_and_names_its_stages(name):
    model = create_model(name, num_classes=5, image_size=64, width=0.25)
    assert model.arch == {"name": name, "num_classes": 5, "image_size": 64, "width": 0.25}
    rebuilt = create_model(**model.arch)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert len(model.stage_modules) == 4
    outputs = []

    def record(module, inputs, output):
        outputs.append(output.shape[1:])

    hooks = [model.get_submodule(path).register_forward_hook(record) for path in model.stage_modules]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert outputs == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8)]


def test_resnet50_matches_the_standard_cifar_count():
    """The CIFAR ResNet-50 (10 classes) has 23.52M parameters; the hand count from layer shapes agrees exactly."""
    parameters = count_parameters(create_model("resnet50"))
    assert parameters == hand_parameters(BLOCKS["50"], 10, lambda w: 9 * w * w, 3 * 64 * 9)
    assert parameters == pytest.approx(23.52e6, rel=0.005)


def test_sasa26_hybrid_parameters():
    """Attention: 3 w^2 projections + 7 w relative embeddings; about 8.3M (SASA's 10.3M minus the 1000-class head)."""
    parameters = count_parameters(create_model("sasa26_hybrid"))
    assert parameters == hand_parameters(BLOCKS["26"], 10, lambda w: 3 * w * w + 7 * w, 3 * 64 * 9)
    assert parameters == pytest.approx(8.3e6, rel=0.01)


def test_sasa26_homogeneous_parameters():
    """Attention stem: q, k (3->64), 4 value maps (3->256), row/column/mixture embeddings (4x64 each)."""
    stem = 2 * 3 * 64 + 3 * 4 * 64 + 3 * 4 * 64
    expected = hand_parameters(BLOCKS["26"], 10, lambda w: 3 * w * w + 7 * w, stem)
    assert count_parameters(create_model("sasa26_homogeneous")) == expected


def test_resnet50_macs_match_hand_count_and_published_figure():
    macs = count_macs(create_model("resnet50"), 32)
    assert macs == hand_macs(BLOCKS["50"], 32, conv_macs, 32 * 32 * 27 * 64)
    assert macs == pytest.approx(1.30e9, rel=0.01)


def test_sasa26_hybrid_needs_about_half_the_teachers_macs():
    macs = count_macs(create_model("sasa26_hybrid"), 32)
    assert macs == hand_macs(BLOCKS["26"], 32, attention_macs, 32 * 32 * 27 * 64)
    assert macs == pytest.approx(0.68e9, rel=0.02)
    assert 0.45 < macs / 1.30e9 < 0.55


def test_count_macs_leaves_training_mode_and_statistics_alone():
    model = create_model("sasa26_hybrid", width=0.25).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, 32)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("resnet51", {}, "resnet50"),
        ("resnet50", {"heads": 4}, "unknown override 'heads'"),
        ("sasa26_hybrid", {"width": "wide"}, "width='wide'"),
        ("sasa26_hybrid", {"kernel_size": 0}, "kernel_size=0"),
        ("sasa26_hybrid", {"heads": 3}, "heads=3"),
        ("resnet50", {"image_size": 36}, "image_size=36"),
        ("resnet50", {"num_classes": 0}, "num_classes=0"),
        ("resnet26", {"width": float("inf")}, "width=inf for model 'resnet26': expected a positive float"),
        ("resnet26", {"width": 100000.0}, "width=100000.0 for model 'resnet26': expected at most 8"),
        ("vit_tiny", {"depth": 100000}, "depth=100000 for model 'vit_tiny': expected at most 64"),
        ("sasa26_hybrid", {"kernel_size": 33}, "kernel_size=33 .*expected a window of at most the image size, 32"),
    ],
)
def test_bad_names_and_overrides_are_input_errors(name, overrides, message):
    with pytest.raises(InputError, match=message):
        create_model(name, **overrides)


def test_models_command_lists_models_at_the_datasets_size(monkeypatch):
    # One model keeps the test fast; test_every_model_* covers the rest of the zoo.
    monkeypatch.setattr("attentionlite.analysis.models.list_models", lambda: ["sasa26_homogeneous"])
    runner = CliRunner()
    cifar = json.loads(runner.invoke(main, ["models", "--json", "--width", "0.25"]).output)
    tiny = json.loads(runner.invoke(main, ["models", "--json", "--width", "0.25", "--dataset", "tinyimagenet"]).output)
    assert (tiny["num_classes"], tiny["image_size"]) == (200, 64)
    [small], [large] = cifar["models"], tiny["models"]
    assert large["model"] == "sasa26_homogeneous"
    # 190 more classes on a 512-wide head; four times the pixels at 64 px (the classifier aside).
    assert large["parameters"] - small["parameters"] == 190 * (512 + 1)
    assert large["macs"] - 512 * 200 == 4 * (small["macs"] - 512 * 10)
    table = runner.invoke(main, ["models", "--width", "0.25"]).output
    assert "sasa26_homogeneous" in table and "MACs (G)" in table


def test_models_command_rejects_unknown_dataset():
    result = CliRunner().invoke(main, ["models", "--dataset", "imagenet"])
    assert result.exit_code == 2
    assert "imagenet" in result.output


@pytest.mark.parametrize("name", ["vit_tiny", "vit_small", "deit_tiny"])
def test_a_vit_rebuilds_from_its_arch_and_patches_the_image_into_8x8_tokens(name):
    model = create_model(name, num_classes=5, image_size=64, embed_dim=48, depth=2)
    assert model.arch == {"name": name, "num_classes": 5, "image_size": 64, "embed_dim": 48, "depth": 2}
    rebuilt = create_model(**model.arch)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    tokens = 66 if name.startswith("deit") else 65  # DeiT's distillation token
    assert model.patch_embed.kernel_size == (8, 8) and model.pos_embed.shape == (1, tokens, 48)
    assert model.stage_modules == ()  # no spatial stages: distilled without attention transfer


def test_vit_tiny_by_hand():
    """ViT-Ti at 32 px: 65 tokens of 192 in 3 heads, MLP 768, 12 blocks; per block
    65 x (3*192*192 + 192*192 + 2*192*768) + 2 x 3 x 65 x 65 x 64 MACs, plus the 4x4 patch
    embedding (64 patches x 192 x 48) and the head (192 x 10).  Parameters: per block 4 x 192^2 +
    2 x 192 x 768 weights, 3*192 + 192 + 768 + 192 biases, two norms of 2 x 192."""
    model = create_model("vit_tiny", num_classes=10, image_size=32)
    per_block = 65 * (3 * 192 * 192 + 192 * 192 + 2 * 192 * 768) + 2 * 3 * 65 * 65 * 64
    assert count_macs(model, 32) == 12 * per_block + 64 * 192 * 48 + 192 * 10
    block_parameters = 4 * 192 * 192 + 2 * 192 * 768 + (3 * 192 + 192 + 768 + 192) + 2 * 2 * 192
    embedding = 192 * 48 + 192 + 192 + 65 * 192  # patch conv, its bias, class token, positions
    assert count_parameters(model) == 12 * block_parameters + embedding + 2 * 192 + 192 * 10 + 10


def test_deit_tiny_by_hand():
    """DeiT-Ti: ViT-Ti with a distillation token (66 tokens) and a second 192 x 10 head."""
    model = create_model("deit_tiny", num_classes=10, image_size=32)
    per_block = 66 * (3 * 192 * 192 + 192 * 192 + 2 * 192 * 768) + 2 * 3 * 66 * 66 * 64
    assert count_macs(model, 32) == 12 * per_block + 64 * 192 * 48 + 2 * 192 * 10
