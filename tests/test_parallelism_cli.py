"""`attentionlite parallelism` end to end on a small topology file, and its bad input."""

import csv

import pytest
from click.testing import CliRunner

from attentionlite.cli import main

TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
conv1, 10, 10, 3, 3, 3, 16, 1,
conv2, 8, 8, 1, 1, 16, 32, 1,
conv3, 8, 8, 3, 3, 32, 32, 1,
"""


def run(*args):
    return CliRunner().invoke(main, ["parallelism", *args])


def test_tables_and_files(tmp_path):
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    out = tmp_path / "par"
    result = run(str(topology), "--cores", "1,2", "--schedules", "data,pipeline", "--out", str(out))
    assert result.exit_code == 0, result.output
    for title in ("where scaling stops", "pipeline balance", "other accelerators, over the reference", "verdict"):
        assert title in result.output
    scaling = list(csv.DictReader((out / "scaling.csv").open()))
    assert [(r["schedule"], r["cores"]) for r in scaling] == [("data", "1"), ("pipeline", "1"), ("data", "2"),
                                                               ("pipeline", "2")]
    assert float(scaling[0]["efficiency"]) == 1.0
    others = list(csv.DictReader((out / "accelerators.csv").open()))
    assert {r["accelerator"] for r in others} == {"paa-hetero"} and len(others) == 2
    (balance,) = csv.DictReader((out / "pipeline_balance.csv").open())
    assert balance["stages"] == "2"
    # A single convolutional model: nothing to say about homogeneous against hybrid, and it says so.
    assert "needs a homogeneous and a hybrid student" in result.output


@pytest.mark.parametrize("option, value, message", [
    ("--cores", "0,2", "core counts '0,2': expected positive integers"),
    ("--cores", "two", "core counts 'two': expected positive integers"),
    ("--schedules", "data,bogus", "schedules ['data', 'bogus']: expected one or more of data, pipeline, split"),
    ("--against", "no-such-preset", "unknown hardware preset 'no-such-preset'"),
])
def test_bad_options_are_one_line_and_leave_nothing(tmp_path, option, value, message):
    out = tmp_path / "par"
    result = run("resnet50", option, value, "--out", str(out))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()
