"""The sweep's rows equal single simulate() runs at the same points, in parallel or not."""

import csv

import pytest
from test_analysis_compare import hand_graphs, tiny_hardware

from attentionlite import api
from attentionlite.analysis.sweep import design_points, run_sweep, write_sweep
from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.hardware import with_overrides
from attentionlite.simulator.accelerator.simulation import simulate

KNOBS = {"array": [(4, 4), (8, 4)], "dataflow": ["os", "ws"], "cores": [1, 2],
         "dram.bandwidth_gb_s": [1.0, 1000.0], "schedule": ["data", "split"]}


@pytest.fixture(scope="module")
def hardware(tmp_path_factory):
    return tiny_hardware(tmp_path_factory.mktemp("hw"))


@pytest.fixture(scope="module")
def swept(hardware):
    ticks = []
    rows = run_sweep(hand_graphs(), hardware, design_points(hardware, KNOBS), workers=2, on_done=lambda: ticks.append(1))
    return rows, len(ticks)


def test_one_row_per_model_and_point_in_order(swept, hardware):
    rows, ticks = swept
    points = design_points(hardware, KNOBS)
    assert len(rows) == ticks == 2 * len(points) == 64
    assert [r["model"] for r in rows] == ["teacher"] * 32 + ["student"] * 32
    assert (rows[1]["array_rows"], rows[1]["array_cols"], rows[1]["schedule"]) == (4, 4, "split")


def test_rows_equal_single_simulate_runs(swept, hardware):
    rows, _ = swept
    graphs = hand_graphs()
    for row in rows:
        config = with_overrides(hardware, array=(row["array_rows"], row["array_cols"]), dataflow=row["dataflow"],
                                cores=row["cores"], bandwidth_gb_s=row["dram.bandwidth_gb_s"])
        totals = simulate(graphs[row["model"]], config, schedule=row["schedule"]).totals
        assert row["cycles"] == totals.cycles
        assert row["latency_s"] == totals.latency_s
        assert row["energy_per_image_j"] == totals.per_image.energy_j
        assert row["dram_bytes_per_image"] == totals.per_image.dram_bytes
        assert row["pes"] == row["array_rows"] * row["array_cols"] * row["cores"]


def test_serial_and_parallel_sweeps_agree(swept, hardware):
    points = design_points(hardware, {"array": [(4, 4), (8, 4)], "dataflow": ["is"]})
    assert run_sweep(hand_graphs(), hardware, points, workers=1) == run_sweep(hand_graphs(), hardware, points, workers=2)


def _point(row: dict) -> tuple:
    return tuple(row[k] for k in ("model", "array_rows", "array_cols", "dataflow", "cores", "schedule"))


def test_the_bandwidth_knob_reaches_the_simulator(swept):
    rows, _ = swept
    ample = {_point(r): r for r in rows if r["dram.bandwidth_gb_s"] == 1000.0}
    for row in (r for r in rows if r["dram.bandwidth_gb_s"] == 1.0):
        assert row["cycles"] > ample[_point(row)]["cycles"]


def test_written_csv_has_a_row_per_point_and_a_pareto_file(swept, tmp_path):
    rows, _ = swept
    write_sweep(rows, tmp_path / "sweep")
    with open(tmp_path / "sweep" / "sweep.csv") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 64 and written[0]["model"] == "teacher"
    front = (tmp_path / "sweep" / "pareto.csv").read_text().splitlines()
    assert 1 < len(front) <= 65 and all(line.endswith(",True") for line in front[1:])


def test_sram_kib_sets_all_three_buffers(hardware):
    rows = run_sweep(hand_graphs(), hardware, design_points(hardware, {"sram_kib": [2.0]}), workers=1)
    config = with_overrides(hardware, input_kib=2.0, weight_kib=2.0, output_kib=2.0)
    assert rows[0]["sram_kib"] == 2.0
    assert rows[0]["cycles"] == simulate(hand_graphs()["teacher"], config).totals.cycles


def test_an_unknown_knob_is_an_input_error(hardware):
    with pytest.raises(InputError, match="warp_drive"):
        design_points(hardware, {"warp_drive": [1]})


@pytest.mark.parametrize(("options", "message"), [
    ({"workers": 0}, "workers is 0; expected at least 1 (or none: every core this process may use)"),
    ({"address": "auto"}, "address 'auto' is a Ray cluster's, but the engine is 'local'; expected engine 'ray'"),
])
def test_an_executor_option_that_would_be_ignored_or_misread_is_refused(options, message):
    with pytest.raises(InputError) as raised:
        api.sweep(["resnet26"], {"array": [(8, 8)], "dataflow": ["os"]}, **options)
    assert message in str(raised.value)
