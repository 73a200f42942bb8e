"""The command line's option values: comma lists, knob values and ``KEY=V1,V2`` settings."""

import pytest

from attentionlite.cli import parse_knob_values, parse_sides, sweep_knobs
from attentionlite.errors import InputError


def test_knob_values_keep_their_types():
    assert parse_knob_values("1,4") == [1, 4]
    assert parse_knob_values("12.8, 25.6") == [12.8, 25.6]
    assert parse_knob_values("none,skip") == ["none", "skip"]


def test_command_line_knobs():
    knobs = sweep_knobs("8,16x4", "os,ws", "1,4", ("sparsity=none,skip", "dram.bandwidth_gb_s=12.8"))
    assert knobs == {"array": [(8, 8), (16, 4)], "dataflow": ["os", "ws"], "cores": [1, 4],
                     "sparsity": ["none", "skip"], "dram.bandwidth_gb_s": [12.8]}
    with pytest.raises(InputError, match="KEY=V1,V2"):
        sweep_knobs("8", "os", None, ("bandwidth",))


def test_report_array_sides():
    assert parse_sides("8, 16,32") == [8, 16, 32]
    with pytest.raises(InputError, match="array sides"):
        parse_sides("8,0")
