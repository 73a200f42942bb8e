"""Hardware configs: presets load, overrides apply, bad TOML is one clear error naming file and key."""

import pickle
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from attentionlite.cli import main
from attentionlite.errors import InputError, OverrideError
from attentionlite.simulator.accelerator.hardware import describe, list_presets, load_hardware, parse_array

MINIMAL = """
name = "tiny"
description = "a test accelerator"
cores = 2
clock_mhz = 1000
word_bytes = 1

[array]
rows = 8
cols = 8
dataflow = "os"

[vector]
lanes = 8

[sram]
input_kib = 4
weight_kib = 4
output_kib = 4

[dram]
bandwidth_gb_s = 8.0
latency_ns = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hw.toml"
    path.write_text(text)
    return path


def test_required_presets_exist_and_load():
    assert {"paa-default", "tpu-like", "eyeriss-like", "vitcod-like"} <= set(list_presets())
    for name in list_presets():
        assert load_hardware(name).name == name


def test_paa_default_has_several_cores():
    assert load_hardware("paa-default").cores > 1


def test_vitcod_like_numbers_from_the_paper():
    config = load_hardware("vitcod-like")
    assert (config.array.rows, config.array.cols, config.clock_mhz, config.dram.bandwidth_gb_s) == (64, 8, 500.0, 76.8)
    assert config.array.overlap_folds  # counted as ViTCoD counts its engines: work over PEs, no fill per fold
    assert config.dram_bytes_per_cycle == pytest.approx(76.8e9 / 500e6)


def test_minimal_file_takes_defaults_for_optional_sections(tmp_path):
    config = load_hardware(write(tmp_path, MINIMAL))
    assert config.sparsity.mode == "none" and config.attention.window_mapping == "blocked"
    assert config.energy.mac_pj == pytest.approx(0.23)  # Horowitz 2014: 8-bit mult 0.2 + add 0.03
    assert config.dram_latency_cycles == 10  # 10 ns at 1 GHz
    assert config.half_buffer_bytes("input") == 2048


def test_overrides_by_shortcut_bare_and_dotted_name():
    config = load_hardware("paa-default", array=(64, 8), dataflow="ws", cores=2, bandwidth_gb_s=10, **{"energy.mac_pj": 1.0})
    assert (config.array_rows, config.array_cols, config.array.dataflow, config.cores) == (64, 8, "ws", 2)
    assert config.dram.bandwidth_gb_s == 10.0 and config.energy.mac_pj == 1.0
    assert load_hardware("paa-default", array="16x4", sparsity="skip", cores=None).array.cols == 4


def test_overrides_are_validated_too():
    with pytest.raises(InputError, match="'array.dataflow' is 'xs'; expected one of os, ws, is"):
        load_hardware("paa-default", dataflow="xs")
    with pytest.raises(InputError, match="unknown hardware override 'colour'"):
        load_hardware("paa-default", colour="red")


def test_a_bad_override_is_blamed_alone_and_a_bad_combination_on_the_overrides_that_change_something():
    # paa-default: 128 KiB input buffer; a 256x256 os array needs 2 x 256 x 256 B = 128 KiB, 512x512 needs 512 KiB
    with pytest.raises(OverrideError) as caught:
        load_hardware("paa-default", cores=2, array=(512, 512), bandwidth_gb_s=12.8)
    assert caught.value.knobs == {"array": (512, 512)}
    assert caught.value.problem.startswith("'sram.input_kib' is 128.0; expected at least 512 KiB")
    with pytest.raises(OverrideError) as caught:  # each alone is fine; together the buffer is too small
        load_hardware("paa-default", cores=2, array=(256, 256), sram_kib=64, dataflow="os", bandwidth_gb_s=None)
    assert caught.value.knobs == {"array": (256, 256), "sram_kib": 64}  # cores=2 changes the config, but no matter
    assert pickle.loads(pickle.dumps(caught.value)).knobs == caught.value.knobs  # it crosses a process pool
    assert str(caught.value) == ("hardware 'paa-default' with array=(256, 256), sram_kib=64: 'sram.input_kib' is "
                                 "64.0; expected at least 128 KiB (two halves of one 256x256 tile)")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("rows = 8", "rows = 8\nrowz = 3", r"unknown key 'array.rowz'"),
        ("lanes = 8", "lanes = 8.5", r"'vector.lanes' is 8.5; expected an integer"),
        ("cores = 2", "cores = 0", r"'cores' is 0; expected a positive value"),
        ("input_kib = 4", "input_kib = -4", r"'sram.input_kib' is -4; expected a positive value"),
        ('dataflow = "os"', 'dataflow = "rs"', r"'array.dataflow' is 'rs'; expected one of os, ws, is"),
        ("clock_mhz = 1000", 'clock_mhz = "fast"', r"'clock_mhz' is 'fast'; expected a number"),
        ("word_bytes = 1\n", "", r"missing key 'word_bytes'"),
        ("cores = 2", "cores = true", r"'cores' is True; expected an integer"),
        ("weight_kib = 4", "weight_kib = 0.1", r"'sram.weight_kib' is 0.1; expected at least 0.125 KiB"),
        ("[dram]", "[dram]\n[dram.extra]", r"unknown key 'dram.extra'"),
        ("bandwidth_gb_s = 8.0", "bandwidth_gb_s = inf", r"'dram.bandwidth_gb_s' is inf; expected a finite number"),
        ("bandwidth_gb_s = 8.0", "bandwidth_gb_s = nan", r"'dram.bandwidth_gb_s' is nan; expected a finite number"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, old, new, message):
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(InputError, match=message) as caught:
        load_hardware(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_buffer_must_hold_one_array_tile(tmp_path):
    # a 64x64 array of 1-byte words needs 4 KiB per half buffer, 8 KiB in all
    path = write(tmp_path, MINIMAL.replace("rows = 8", "rows = 64").replace("cols = 8", "cols = 64"))
    with pytest.raises(InputError, match=r"'sram.input_kib' is 4.0; expected at least 8 KiB"):
        load_hardware(path)


def test_unknown_preset_missing_file_and_broken_toml(tmp_path):
    with pytest.raises(InputError, match="unknown hardware preset 'nope'"):
        load_hardware("nope")
    with pytest.raises(InputError, match="not found"):
        load_hardware(tmp_path / "absent.toml")
    with pytest.raises(InputError, match="not valid TOML"):
        load_hardware(write(tmp_path, "cores = = 2"))


def test_parse_array():
    assert parse_array("32") == (32, 32) and parse_array("64x8") == (64, 8)
    with pytest.raises(InputError, match="expected N or RxC"):
        parse_array("0x4")


def test_describe_round_trips_through_toml(tmp_path):
    config = load_hardware("eyeriss-like")
    assert load_hardware(write(tmp_path, describe(config))) == config


def test_cli_hardware_list_show_and_error():
    runner = CliRunner()
    listed = runner.invoke(main, ["hardware", "list"])
    assert listed.exit_code == 0 and "vitcod-like" in listed.output
    shown = runner.invoke(main, ["hardware", "show", "paa-default", "--array", "16x8"])
    assert shown.exit_code == 0 and "rows = 16" in shown.output and "cols = 8" in shown.output
    failed = runner.invoke(main, ["hardware", "show", "nope"])
    assert failed.exit_code == 2 and "unknown hardware preset" in failed.output


def test_the_report_preset_is_paa_default_with_the_attention_features_on():
    features = {"overlap_folds": True, "fuse_post_ops": True, "fused": True, "overlaps_array": True}
    attention = load_hardware("paa-attention")
    assert replace(attention, name="paa-default", description="") == replace(
        load_hardware("paa-default", **features), description="")
