"""Kill and resume, for real: a pruned SASA student's training killed with SIGKILL in the middle of its
third of five epochs, then resumed, ends with the weights, masks and log of a run never interrupted."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from attentionlite.model.training.checkpoint import load_checkpoint

EPOCHS, KILLED_IN = 5, 3
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # bit-exact float sums


def _command(images, out, prune: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "attentionlite", "train", "--model", "sasa26_hybrid", "--width", "0.25",
            "--dataset", "cifar10", "--data-dir", str(images), "--batch-size", "2", "--epochs", str(EPOCHS),
            "--density", "0.3", "--prune", prune, "--quiet", "--cache-dir", str(images / "cache"),
            "--out", str(out), *extra]


def _log(out) -> list[dict]:
    path = out / "log.csv"
    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _kill_inside_epoch(command: list[str], out, epoch: int) -> None:
    """Start the run, wait until epoch - 1 epochs are on disk, SIGKILL it 40% into the next."""
    process = subprocess.Popen(command, env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while len(_log(out)) < epoch - 1:
            assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
            time.sleep(0.02)
        time.sleep(0.4 * float(_log(out)[-1]["seconds"]))
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert len(_log(out)) == epoch - 1  # killed inside the epoch, not after it


@pytest.mark.parametrize("prune", ["unstructured", "column"])
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_masks_and_log(tiny_cifar, tmp_path, prune):
    images = tiny_cifar
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_command(images, whole, prune), env=ONE_THREAD, check=True, capture_output=True)
    _kill_inside_epoch(_command(images, killed, prune), killed, KILLED_IN)
    at_kill = load_checkpoint(killed / "checkpoint.pt").masks  # what the resumed run starts from
    subprocess.run(_command(images, killed, prune, "--resume"), env=ONE_THREAD, check=True, capture_output=True)

    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(killed / "checkpoint.pt")
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name
    assert a.masks.keys() == b.masks.keys() and all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    # Pruning and regrowth ran after the restore, so the resumed run's mask updates are checked too.
    assert b.prune_mode == prune and any(not torch.equal(at_kill[n], b.masks[n]) for n in b.masks)
    wall_clock = {"seconds"}
    rows = [[{k: v for k, v in row.items() if k not in wall_clock} for row in _log(out)] for out in (whole, killed)]
    assert len(rows[0]) == EPOCHS and rows[0] == rows[1]
