"""The design-space search: its rows are the sweep's, its front is non-dominated, its inputs are checked."""

import numpy as np
import pytest
from click.testing import CliRunner
from test_analysis_compare import hand_graphs, tiny_hardware

from attentionlite.analysis.explore import (
    Search,
    explore,
    hypervolume,
    load_space,
    parse_constraint,
    parse_objectives,
)
from attentionlite.analysis.sweep import simulate_point
from attentionlite.cli import main
from attentionlite.errors import InputError

SPACE = """
array = ["2x2", "4x4", "8x4", "8x8"]
dataflow = ["os", "ws", "is"]
"dram.bandwidth_gb_s" = [0.5, 2.0, 1000.0]
sram_kib = [0.0625, 1, 64]
"""


@pytest.fixture(scope="module")
def hardware(tmp_path_factory):
    return tiny_hardware(tmp_path_factory.mktemp("hw"))


@pytest.fixture(scope="module")
def space(hardware, tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(SPACE)
    return load_space(path, hardware)


@pytest.fixture(scope="module")
def explored(hardware, space):
    objectives = parse_objectives(["latency", "energy", "pes"])
    search = Search(space, 60, tuple(objectives), (parse_constraint("pes<=32"),))
    return explore(hand_graphs(), hardware, search, workers=1)


def test_hypervolume_by_hand():
    # 2-D: rectangles of x in [1, 4] above y = 3 (3), x in [2, 4] for y in [2, 3] (2), x in [3, 4] below (1)
    assert hypervolume(np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), np.array([4.0, 4.0])) == 6.0
    # 3-D: two unit-square slabs of depth 0.5, overlapping in a 1 x 0.5 x 0.5 box: 0.5 + 0.5 - 0.25
    points = np.array([[0.0, 0.0, 0.5], [0.0, 0.5, 0.0]])
    assert hypervolume(points, np.ones(3)) == pytest.approx(0.75)
    assert hypervolume(np.array([[1.0, 1.0, 1.0], [1.5, 1.5, 1.5]]), np.array([2.0, 3.0, 4.0])) == 6.0


def test_the_space_is_the_cross_product_of_its_knobs(space):
    assert space.size == 4 * 3 * 3 * 3
    assert space.knobs["array"][0] == (2, 2)


def test_every_trial_row_is_the_sweeps_row_for_its_point(explored, hardware):
    graphs = hand_graphs()
    buildable = [row for row in explored.trials if row["buildable"]]
    assert len(explored.trials) == 2 * 60 and buildable
    for row in buildable[:12]:
        point = {"array": (row["array_rows"], row["array_cols"]), "dataflow": row["dataflow"],
                 "dram.bandwidth_gb_s": row["dram.bandwidth_gb_s"], "sram_kib": row["sram_kib"]}
        expected = simulate_point(row["model"], graphs[row["model"]], hardware, point)
        assert {key: row[key] for key in expected} == expected


def test_a_design_the_hardware_cannot_be_is_a_failed_trial(explored):
    # 0.0625 KiB buffers hold half of 32 bytes: less than one 8x8 tile (64 bytes)
    for row in explored.trials:
        too_small = row["sram_kib"] == 0.0625 and row["array_rows"] * row["array_cols"] > 32
        assert row["buildable"] is not too_small


def test_the_constraint_marks_feasibility_and_the_front_is_feasible_and_non_dominated(explored):
    for row in explored.trials:
        if row["buildable"]:
            assert row["feasible"] is (row["pes"] <= 32)
    columns = ("latency_s", "energy_per_image_j", "pes")
    for model in ("teacher", "student"):
        front = [row for row in explored.front if row["model"] == model]
        feasible = [row for row in explored.trials if row["model"] == model and row["feasible"]]
        assert front and all(row["feasible"] for row in front)
        for row in front:
            assert not any(all(o[c] <= row[c] for c in columns) and any(o[c] < row[c] for c in columns)
                           for o in feasible)
        on_front = {row["trial"] for row in front}
        for row in feasible:  # every feasible trial off the front is dominated by one on it
            if row["trial"] not in on_front:
                assert any(all(f[c] <= row[c] for c in columns) for f in front)


def test_a_design_tried_twice_is_on_the_front_once_as_its_first_trial(explored, space):
    def design(row):
        return tuple(row[column] for column in ("array_rows", "array_cols", "dataflow", "dram.bandwidth_gb_s",
                                                 "sram_kib"))

    assert space.columns == ["array_rows", "array_cols", "dataflow", "dram.bandwidth_gb_s", "sram_kib"]
    for model in ("teacher", "student"):
        trials = [row for row in explored.trials if row["model"] == model]
        assert len({design(row) for row in trials}) < len(trials)  # NSGA-II repeated some designs in 60 trials
        front = [row for row in explored.front if row["model"] == model]
        assert len({design(row) for row in front}) == len(front)
        for row in front:
            assert row["trial"] == min(t["trial"] for t in trials if design(t) == design(row))


def test_the_same_seed_gives_the_same_trials(hardware, space):
    objectives = parse_objectives(["latency", "pes"])
    search = Search(space, 12, tuple(objectives), sampler="tpe", seed=3)
    first = explore(hand_graphs(), hardware, search, workers=1)
    second = explore(hand_graphs(), hardware, search, workers=1)
    assert first.trials == second.trials


@pytest.mark.parametrize("text, message", [
    ("", "names no knob"),
    ("array = \"8x8\"", "expected a non-empty list"),
    ("array = []", "expected a non-empty list"),
    ("nosuch = [1, 2]", "unknown hardware override 'nosuch'"),
    ("cores = [0]", "cores = 0"),
    ("array = [", "not readable TOML"),
])
def test_a_bad_space_file_is_one_clear_error(text, message, hardware, tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_space(path, hardware)


def test_bad_objectives_and_constraints_are_clear_errors():
    assert [o.column for o in parse_objectives(["latency", "area"])] == ["latency_s", "area_mm2"]
    assert parse_constraint("area_mm2<=5").violation({"area_mm2": 6.5}) == pytest.approx(1.5)
    with pytest.raises(InputError, match="'speed' is not known"):
        parse_objectives(["speed"])
    with pytest.raises(InputError, match="repeat"):
        parse_objectives(["pes", "pes"])
    with pytest.raises(InputError, match="COLUMN<=VALUE"):
        parse_constraint("pes < 4")
    assert parse_constraint("latency_s >= 1e-3").violation({"latency_s": 0.002}) == pytest.approx(-0.001)


def test_the_cli_refuses_a_missing_space_file_before_tracing(tmp_path):
    result = CliRunner().invoke(main, ["explore", "resnet26", "--space", str(tmp_path / "none.toml"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "space file" in result.output and "does not exist" in result.output
    assert not (tmp_path / "out").exists()
