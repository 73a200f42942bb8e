"""Models for an analysis: checkpoints keep their masks and accuracy; registered students get initial masks."""

import pytest

from attentionlite.analysis.models import trace_models
from attentionlite.errors import InputError
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.checkpoint import save_checkpoint
from attentionlite.model.training.sparsity import apply_masks, initial_masks
from attentionlite.simulator.graph.targets import resolve_target


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A narrow SASA-26 hybrid pruned to 20% density, recording 87.5% test accuracy."""
    model = create_model("sasa26_hybrid", width=0.25)
    masks = initial_masks(model, 0.2, seed=3)
    apply_masks(model, masks)
    path = tmp_path_factory.mktemp("ckpt") / "hybrid.pt"
    save_checkpoint(path, model=model, masks=masks, prune_mode="unstructured", density=0.2, arch=model.arch,
                    dataset="cifar10", train_config={}, metrics={"test_accuracy": 0.875}, seed=3)
    return path, sum(int(mask.sum()) for mask in masks.values())


def test_a_checkpoint_keeps_its_masks_and_accuracy(checkpoint):
    path, kept = checkpoint
    entries, graphs = trace_models([resolve_target(str(path))])
    entry = entries[0]
    assert (entry.label, entry.role, entry.accuracy, entry.trained) == ("sasa26_hybrid", "teacher", 0.875, True)
    assert entry.masks == "trained unstructured masks, 20.0% density"
    assert len(entry.checkpoint_sha256) == 64
    # the graph's non-zero weights are the masks' kept weights plus the weights pruning leaves dense
    # (relative position embeddings), so at least the kept count and well under the dense count
    assert kept <= entry.nonzero_weights < 0.3 * entry.weights
    assert list(graphs) == ["sasa26_hybrid"]


def test_the_first_model_stays_dense_and_the_rest_get_initial_masks(checkpoint):
    path, _ = checkpoint
    entries, graphs = trace_models([resolve_target(str(path)), resolve_target("sasa26_homogeneous")], density=0.1)
    student = entries[1]
    assert (student.role, student.accuracy, student.trained) == ("student", None, False)
    assert student.masks == "initial masks, 10% density"
    assert student.nonzero_weights / student.weights == pytest.approx(0.1, abs=0.01)
    assert list(graphs) == ["sasa26_hybrid", "sasa26_homogeneous"]


def test_an_unknown_model_names_itself():
    with pytest.raises(InputError, match="no_such_net"):
        resolve_target("no_such_net")
