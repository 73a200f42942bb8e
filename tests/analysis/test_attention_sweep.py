"""The attention-sparsity sweep of a ViT checkpoint: kept entries by hand, dense at sparsity 0, work saved
only where the hardware has split engines, and the command's table, CSV and errors."""

import csv
import re

import pytest
from click.testing import CliRunner

from attentionlite import api
from attentionlite.cli import main
from attentionlite.model.training.evaluate import evaluate_checkpoint
from attentionlite.model.training.train import TrainConfig, train


@pytest.fixture(scope="module")
def vit_checkpoint(tiny_cifar, tmp_path_factory):
    out = tmp_path_factory.mktemp("vit")
    train(TrainConfig(model="vit_tiny", dataset="cifar10", data_dir=str(tiny_cifar), out=str(out), epochs=1,
                      batch_size=5, embed_dim=24, depth=1, heads=2, cache_dir=str(tiny_cifar / "cache"),
                      progress=False))
    return out / "checkpoint.pt"


def _sweep(vit_checkpoint, tiny_cifar, hardware, sparsities=(0.0, 0.5, 0.9)):
    return api.attention_sweep(vit_checkpoint, tiny_cifar, hardware, sparsities=sparsities,
                               cache_dir=tiny_cifar / "cache", progress=False)


def test_each_sparsity_keeps_its_entries_and_saves_attention_work(vit_checkpoint, tiny_cifar):
    rows = _sweep(vit_checkpoint, tiny_cifar, "vitcod-like")
    # 65 tokens: ceil(0.5 x 4225) = 2113 and ceil(0.1 x 4225) = 423 entries a head; none at 0 (no mask)
    assert [row["kept_per_head"] for row in rows] == [None, 2113, 423]
    assert rows[0]["speedup"] == rows[0]["attention_speedup"] == 1.0 and rows[0]["energy_saving"] == 0.0
    assert rows[0]["attention_ms"] > rows[1]["attention_ms"] > rows[2]["attention_ms"]
    assert rows[2]["energy_saving"] > 0
    # sparsity 0 scores what the checkpoint scores evaluated on its own
    assert rows[0]["test_accuracy"] == evaluate_checkpoint(vit_checkpoint, tiny_cifar)["test_accuracy"]


def test_without_split_engines_a_mask_saves_no_time(vit_checkpoint, tiny_cifar):
    # the array computes every logit anyway, and the mask costs its own select on the logits
    rows = _sweep(vit_checkpoint, tiny_cifar, "paa-default", sparsities=(0.0, 0.9))
    assert rows[1]["latency_ms"] >= rows[0]["latency_ms"] and rows[1]["speedup"] <= 1.0


def test_the_command_prints_the_table_and_writes_the_csv(vit_checkpoint, tiny_cifar, tmp_path):
    result = CliRunner().invoke(main, ["attention-sweep", str(vit_checkpoint), "--data-dir", str(tiny_cifar),
                                       "--sparsities", "0,0.9", "--cache-dir", str(tiny_cifar / "cache"),
                                       "--out", str(tmp_path / "sweep.csv"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "attention speed-up" in result.output and "423" in result.output
    with open(tmp_path / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["sparsity"] for row in rows] == ["0.0", "0.9"] and rows[1]["hardware"] == "vitcod-like"


@pytest.mark.parametrize(("sparsities", "message"), [("a,b", "expected numbers separated by commas"),
                                                     ("0,1", r"expected a fraction in \[0, 1\)"),
                                                     ("0.99", "fewer than one per query")])
def test_bad_sparsities_are_one_line_and_write_nothing(vit_checkpoint, tiny_cifar, tmp_path, sparsities, message):
    result = CliRunner().invoke(main, ["attention-sweep", str(vit_checkpoint), "--data-dir", str(tiny_cifar),
                                       "--sparsities", sparsities, "--out", str(tmp_path / "sweep.csv")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert re.search(message, result.output)
    assert not (tmp_path / "sweep.csv").exists()


REPORT = ["--cpu", "cpu-xeon-8380", "--arrays", "8", "--dataflows", "os", "--workers", "1", "--cores", "1",
          "--schedules", "data", "--against", "none"]


def test_a_report_with_an_attention_sweep_has_its_section_and_csv(vit_checkpoint, tiny_cifar, tmp_path):
    result = CliRunner().invoke(main, ["report", "resnet26", str(vit_checkpoint), *REPORT, "--attention-sweep",
                                       str(vit_checkpoint), "--data-dir", str(tiny_cifar), "--attention-sparsities",
                                       "0,0.9", "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "### Attention sparsity" in markdown and "at attention sparsity 0.9: its attention is" in markdown
    with open(tmp_path / "report" / "attention_sweep.csv") as handle:
        assert [row["kept_per_head"] for row in csv.DictReader(handle)] == ["", "423"]


def test_a_report_refuses_a_bad_attention_sweep_before_its_slow_steps(tiny_cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTIONLITE_CACHE", str(tmp_path / "cache"))  # no cached calibration to lean on
    cnn = tmp_path / "cnn.pt"
    train(TrainConfig(model="resnet26", dataset="cifar10", data_dir=str(tiny_cifar), out=str(tmp_path / "cnn"),
                      epochs=1, batch_size=5, width=0.25, cache_dir=str(tiny_cifar / "cache"), progress=False))
    (tmp_path / "cnn" / "checkpoint.pt").rename(cnn)
    result = CliRunner().invoke(main, ["report", "--attention-sweep", str(cnn), "--data-dir", str(tiny_cifar),
                                       "--out", str(tmp_path / "report")])
    assert result.exit_code == 2 and "expected a ViT, DeiT or SASA checkpoint" in result.output
    assert not (tmp_path / "report").exists() and not (tmp_path / "cache").exists()
