"""`report`, `sweep` and `compare` from the command line, on small checkpoints."""

import csv
import re

import pytest
from click.testing import CliRunner

from attentionlite.cli import main
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.checkpoint import save_checkpoint
from attentionlite.model.training.sparsity import apply_masks, initial_masks

CPU = "cpu-xeon-8380"
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _checkpoint(folder, name: str, density: float, accuracy: float) -> str:
    """A quarter-width model at ``density`` (1.0: dense), recording ``accuracy``."""
    model = create_model(name, width=0.25)
    masks = {} if density == 1.0 else initial_masks(model, density, seed=1)
    apply_masks(model, masks)
    path = folder / f"{name}.pt"
    save_checkpoint(path, model=model, masks=masks, prune_mode="dense" if density == 1.0 else "unstructured",
                    density=density, arch=model.arch, dataset="cifar10", train_config={},
                    metrics={"test_accuracy": accuracy}, seed=1)
    return str(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    return [_checkpoint(folder, "resnet26", 1.0, 0.91), _checkpoint(folder, "sasa26_hybrid", 0.2, 0.875)]


def _report(checkpoints, out) -> None:
    args = ["report", *checkpoints, "--cpu", CPU, "--arrays", "16,32", "--dataflows", "os", "--workers", "1",
            "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def report_dir(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    _report(checkpoints, out)
    return out


def test_checkpoint_report_shows_real_accuracy_and_masks(report_dir):
    text = (report_dir / "report.md").read_text()
    assert "Top-1 test accuracy recorded in the checkpoints: `resnet26` 91.00%; `sasa26_hybrid` 87.50%." in text
    assert "Accuracy is not known" not in text
    assert "trained unstructured masks, 20.0% density" in text
    with open(report_dir / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["array_rows"]) for r in rows] == [
        ("resnet26", "16"), ("resnet26", "32"), ("sasa26_hybrid", "16"), ("sasa26_hybrid", "32")]


def test_same_inputs_same_report_except_timestamps(checkpoints, report_dir, tmp_path):
    _report(checkpoints, tmp_path / "again")
    for path in sorted(p for p in report_dir.rglob("*") if p.is_file()):
        again = tmp_path / "again" / path.relative_to(report_dir)
        assert TIMESTAMP.sub(b"T", path.read_bytes()) == TIMESTAMP.sub(b"T", again.read_bytes()), path.name


def test_sweep_command_writes_a_row_per_point(checkpoints, tmp_path):
    args = ["sweep", *checkpoints, "--arrays", "32", "--dataflows", "os,ws", "--set", "sparsity=none,skip",
            "--workers", "1", "--out", str(tmp_path / "sweep")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.output
    with open(tmp_path / "sweep" / "sweep.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * 2 * 2


SPACE = """
array = ["8x8", "16x16", "32x32"]
dataflow = ["os", "ws"]
cores = [1, 2]
"""


def test_a_report_over_a_space_shows_the_explorations_front(checkpoints, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    search = ["--space", str(tmp_path / "space.toml"), "--trials", "10", "--seed", "4", "--workers", "1"]
    explored = CliRunner().invoke(main, ["explore", *checkpoints, *search, "--out", str(tmp_path / "explore")])
    assert explored.exit_code == 0, explored.output
    # the report searches from its reference point, here explore's paa-default and sparsity none
    reported = CliRunner().invoke(main, ["report", *checkpoints, *search, "--hardware", "paa-default",
                                         "--sparsity", "none", "--cpu", CPU, "--out", str(tmp_path / "report")])
    assert reported.exit_code == 0, reported.output
    for name in ("trials.csv", "pareto.csv"):
        assert (tmp_path / "report" / name).read_text() == (tmp_path / "explore" / name).read_text(), name
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "NSGA-II ran 10 trials per model over a space of 12 designs." in markdown
    assert not (tmp_path / "report" / "sweep.csv").exists()


def test_a_search_with_no_feasible_design_is_one_error_and_no_report(checkpoints, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    args = ["report", *checkpoints, "--space", str(tmp_path / "space.toml"), "--trials", "4", "--constraint",
            "area_mm2<=0.001", "--cpu", CPU, "--workers", "1", "--out", str(tmp_path / "report")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "no trial of the search was a feasible design (buildable and area_mm2<=0.001)" in result.output
    assert not (tmp_path / "report").exists()


def test_compare_command_prints_both_models_and_the_cpu(checkpoints):
    result = CliRunner().invoke(main, ["compare", *checkpoints, "--array", "32x16", "--cpu", CPU])
    assert result.exit_code == 0, result.output
    assert "resnet26" in result.output and "sasa26_hybrid" in result.output and "vs CPU" in result.output


@pytest.mark.parametrize("args, named", [
    (["report", "--arrays", "8,zero", "--out", "{out}"], "8,zero"),
    (["report", "no_such_model", "--out", "{out}"], "no_such_model"),  # named before any CPU calibration
    (["report", "--density", "0", "--out", "{out}"], "density 0.0"),
    (["report", "--space", "space.toml", "--arrays", "8", "--out", "{out}"], "--arrays"),
    (["report", "--trials", "20", "--out", "{out}"], "--space"),
    (["report", "--space", "no_such_space.toml", "--out", "{out}"], "no_such_space.toml"),
    (["compare", "missing.pt", "resnet26"], "missing.pt"),
    (["sweep", "resnet26", "--arrays", "8", "--set", "warp_drive=1", "--out", "{out}"], "warp_drive"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(args, named, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTIONLITE_CACHE", str(tmp_path / "cache"))  # no cached calibration to lean on
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [a.format(out=out) for a in args])
    assert result.exit_code == 2
    assert named in result.output and result.output.count("\n") == 1
    assert not out.exists()
