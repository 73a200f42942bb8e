"""The command line's option values: comma lists, knob values, ``KEY=V1,V2`` settings, and the errors that name them."""

import pytest
from click.testing import CliRunner

from attentionlite.cli import main, parse_knob_values, parse_sides, sweep_knobs
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


@pytest.mark.parametrize(("command", "line"), [
    # paa-default: 32x32 os array, 128 KiB per buffer; a 1024x1024 os tile needs 2 x 1024 x 1024 B = 2048 KiB
    ("simulate resnet50 --bandwidth -1", "--bandwidth -1.0: 'dram.bandwidth_gb_s' is -1.0; expected a positive value"),
    ("simulate resnet50 --array 1024", "--array 1024: 'sram.input_kib' is 128.0; expected at least 2048 KiB "
                                        "(two halves of one 1024x1024 tile)"),
    ("compare resnet50 --array 0x3", "--array 0x3: array size '0x3' is not understood; expected N or RxC with "
                                     "positive integers"),
    ("hardware show paa-default --cores -1", "--cores -1: 'cores' is -1; expected a positive value"),
    ("sweep resnet50 --set sram_kib=0", "--set sram_kib=0: 'sram.input_kib' is 0; expected a positive value"),
    ("sweep resnet50 --set dram.bandwidth_gb_s=1,-2",
     "--set dram.bandwidth_gb_s=-2: 'dram.bandwidth_gb_s' is -2; expected a positive value"),
    ("sweep resnet50 --arrays 8,1024", "--arrays 1024x1024: 'sram.input_kib' is 128.0; expected at least 2048 KiB "
                                       "(two halves of one 1024x1024 tile)"),
    ("sweep resnet50 --arrays 256 --set sram_kib=64", "--arrays 256x256, --set sram_kib=64: 'sram.input_kib' is "
                                                      "64.0; expected at least 128 KiB (two halves of one 256x256 tile)"),
    ("report --set cores=0", "--set cores=0: 'cores' is 0; expected a positive value"),
    ("report --arrays 1024", "--arrays 1024x1024: 'sram.input_kib' is 128.0; expected at least 2048 KiB "
                             "(two halves of one 1024x1024 tile)"),
    ("report --set array=1024", "--set array=1024: 'sram.input_kib' is 128.0; expected at least 2048 KiB "
                                "(two halves of one 1024x1024 tile)"),
])
def test_a_bad_hardware_override_names_the_flag_the_user_typed(tmp_path, command, line):
    result = CliRunner().invoke(main, [*command.split(), *(["--out", str(tmp_path / "out")] if "sweep" in command
                                                          or "report" in command else [])])
    assert result.exit_code == 2
    assert result.stderr == f"error: {line}\n"
    assert not (tmp_path / "out").exists()
