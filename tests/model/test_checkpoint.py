"""One self-describing checkpoint file: round trip, clear errors for foreign files, atomic writes."""

import io
import os

import pytest
import torch

from attentionlite import __version__
from attentionlite.errors import InputError
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.checkpoint import install_optional_buffers, load_checkpoint, save_checkpoint
from attentionlite.model.training.compact import compact_checkpoint
from attentionlite.model.training.sparsity import apply_masks, initial_masks


def _save(path, model, masks, prune_mode="unstructured", **changes):
    fields = dict(model=model, masks=masks, prune_mode=prune_mode, density=0.25, arch=model.arch,
                  dataset="cifar10", train_config={"epochs": 3, "lr": 0.1}, metrics={"test_accuracy": 0.5},
                  seed=7, epoch=3)
    save_checkpoint(path, **(fields | changes))


@pytest.fixture
def pruned_model():
    torch.manual_seed(0)
    model = create_model("resnet26", width=0.25)
    masks = initial_masks(model, 0.25, seed=0)
    apply_masks(model, masks)
    return model, masks


def test_round_trip_restores_model_masks_and_metadata(tmp_path, pruned_model):
    model, masks = pruned_model
    _save(tmp_path / "c.pt", model, masks)
    loaded = load_checkpoint(tmp_path / "c.pt")
    for (name, value), other in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(value, other), name
    assert all(torch.equal(masks[n], loaded.masks[n]) for n in masks)
    assert (loaded.prune_mode, loaded.density, loaded.dataset, loaded.seed) == ("unstructured", 0.25, "cifar10", 7)
    assert loaded.arch == {"name": "resnet26", "num_classes": 10, "image_size": 32, "width": 0.25}
    assert loaded.train_config == {"epochs": 3, "lr": 0.1} and loaded.metrics == {"test_accuracy": 0.5}
    assert loaded.package_version == __version__
    assert not loaded.model.training


def test_loaded_model_has_masks_applied(tmp_path, pruned_model):
    model, masks = pruned_model
    with torch.no_grad():
        model.fc.weight.fill_(1.0)  # weights under zero masks saved non-zero by mistake
    _save(tmp_path / "c.pt", model, masks)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.all(loaded.model.fc.weight[~masks["fc.weight"]] == 0)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x01 definitely not a zip or a pickle", "not a readable checkpoint"),
        (b"", "not a readable checkpoint"),
    ],
)
def test_corrupt_files_are_one_input_error(tmp_path, content, message):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_checkpoint(tmp_path / "bad.pt")


def test_truncated_checkpoint_is_an_input_error(tmp_path, pruned_model):
    _save(tmp_path / "c.pt", *pruned_model)
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.pt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_a_torch_file_of_another_kind_is_an_input_error(tmp_path):
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}}, buffer)
    (tmp_path / "other.pt").write_bytes(buffer.getvalue())
    with pytest.raises(InputError, match="not an attentionlite checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_model_and_missing_file_are_input_errors(tmp_path, pruned_model):
    model, masks = pruned_model
    _save(tmp_path / "c.pt", model, masks, arch={"name": "resnet9000", "num_classes": 10, "image_size": 32})
    with pytest.raises(InputError, match="resnet9000"):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_an_interrupted_write_leaves_the_old_checkpoint(tmp_path, pruned_model, monkeypatch):
    model, masks = pruned_model
    _save(tmp_path / "c.pt", model, masks, seed=1)

    def killed(_fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path / "c.pt", model, masks, seed=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "c.pt").seed == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_compact_needs_a_column_pruned_checkpoint(tmp_path, pruned_model):
    _save(tmp_path / "c.pt", *pruned_model)
    with pytest.raises(InputError, match="column pruning"):
        compact_checkpoint(tmp_path / "c.pt", tmp_path / "compact.pt")
    assert not (tmp_path / "compact.pt").exists()


def test_compacted_checkpoint_loads_as_the_smaller_model(tmp_path):
    model = create_model("resnet26", width=0.25)
    masks = initial_masks(model, 0.25, mode="column", seed=0)
    apply_masks(model, masks)
    _save(tmp_path / "c.pt", model, masks, prune_mode="column")
    sizes = compact_checkpoint(tmp_path / "c.pt", tmp_path / "compact.pt")
    assert sizes["parameters_after"] < sizes["parameters_before"]
    assert sizes["macs_after"] == sizes["macs_before"]  # the masked model's zeros were never real work
    assert sizes["dense_macs_after"] < sizes["dense_macs_before"]
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        compacted = load_checkpoint(tmp_path / "compact.pt").model
        assert torch.allclose(compacted(images), model.eval()(images), atol=1e-5, rtol=0)


def test_optional_buffers_are_made_where_their_module_lives():
    model = create_model("vit_tiny", embed_dim=16, depth=1, heads=2).to("meta")
    install_optional_buffers(model, {"blocks.0.attn.attn_mask": torch.ones(2, 65, 65, dtype=torch.bool)})
    assert model.blocks[0].attn.attn_mask.device.type == "meta"  # as a GPU model's would be on the GPU
    assert model.blocks[0].attn.attn_mask.dtype == torch.bool
