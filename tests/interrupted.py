"""A training run interrupted during an epoch and resumed, beside the same run never interrupted, and the check
that both end the same."""

import pytest
import torch

import attentionlite.model.training.train as train_module
from attentionlite.model.training.checkpoint import Checkpoint, load_checkpoint
from attentionlite.model.training.train import TrainConfig, train


def whole_and_resumed(whole: TrainConfig, split: TrainConfig, stop_in: int, monkeypatch) -> tuple[Checkpoint, Checkpoint]:
    """Train ``whole``; train ``split`` (the same options, another folder) until Ctrl-C in epoch ``stop_in``
    (0-based), then resume it; both final checkpoints."""
    train(whole)
    finish_epoch = train_module._train_and_record_epoch

    def interrupted(run, epoch, path):
        if epoch == stop_in:
            raise KeyboardInterrupt  # the epochs before it are on disk
        finish_epoch(run, epoch, path)

    monkeypatch.setattr(train_module, "_train_and_record_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(split)
    monkeypatch.setattr(train_module, "_train_and_record_epoch", finish_epoch)
    train(split, resume=True)
    return (load_checkpoint(f"{whole.out}/checkpoint.pt"), load_checkpoint(f"{split.out}/checkpoint.pt"))


def assert_same_state(whole: Checkpoint, split: Checkpoint) -> None:
    """The same weights, buffers and masks, tensor for tensor."""
    for (name, a), b in zip(whole.model.state_dict().items(), split.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert all(torch.equal(whole.masks[n], split.masks[n]) for n in whole.masks)
