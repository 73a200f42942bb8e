"""The sweep's pure parts: design points, the Pareto front, array sizes, CSV text."""

import pytest

from attentionlite.analysis.sweep import design_points, pareto_mask
from attentionlite.errors import InputError
from attentionlite.files import rows_to_csv
from attentionlite.simulator.accelerator.hardware import load_hardware, parse_array


def test_design_points_are_the_cross_product_first_knob_slowest():
    points = design_points(load_hardware("paa-default"), {"array": [(8, 8), (16, 16)], "dataflow": ["os", "ws", "is"]})
    assert len(points) == 6
    assert points[0] == {"array": (8, 8), "dataflow": "os"}
    assert points[2] == {"array": (8, 8), "dataflow": "is"}
    assert points[3] == {"array": (16, 16), "dataflow": "os"}


def test_a_knob_without_values_is_an_input_error():
    with pytest.raises(InputError, match="cores"):
        design_points(load_hardware("paa-default"), {"cores": []})


def test_pareto_front_by_hand():
    rows = [
        {"latency_s": 1.0, "energy_per_image_j": 5.0, "area_mm2": 4.0},  # fastest: on the front
        {"latency_s": 2.0, "energy_per_image_j": 2.0, "area_mm2": 4.0},  # cheapest energy: on the front
        {"latency_s": 2.0, "energy_per_image_j": 3.0, "area_mm2": 4.0},  # dominated by row 1
        {"latency_s": 3.0, "energy_per_image_j": 3.0, "area_mm2": 1.5},  # smallest: on the front
        {"latency_s": 3.0, "energy_per_image_j": 3.0, "area_mm2": 1.5},  # a tie dominates neither copy
    ]
    assert pareto_mask(rows) == [True, True, False, True, True]


@pytest.mark.parametrize("text, expected", [("32", (32, 32)), ("32x32", (32, 32)), ("64x8", (64, 8))])
def test_parse_array(text, expected):
    assert parse_array(text) == expected


@pytest.mark.parametrize("text", ["0", "8x", "axb", "8x8x8", "-4"])
def test_parse_array_rejects_nonsense(text):
    with pytest.raises(InputError, match="array size"):
        parse_array(text)


def test_csv_columns_in_first_seen_order_and_exact_floats():
    text = rows_to_csv([{"model": "a", "latency_s": 0.1}, {"model": "b", "latency_s": 1 / 3, "extra": 1}])
    assert text.splitlines() == ["model,latency_s,extra", "a,0.1,", "b,0.3333333333333333,1"]
