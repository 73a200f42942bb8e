"""CPU configs: presets load, round-trip through TOML, and bad files fail with one clear line."""

from __future__ import annotations

import pytest

from attentionlite.errors import InputError
from attentionlite.simulator.cpu.config import FACTOR_KEYS, list_cpu_presets, load_cpu


def test_presets_include_the_host_default_and_a_documented_server_cpu():
    presets = list_cpu_presets()
    assert "cpu-host-default" in presets
    assert any(name.startswith("cpu-xeon") for name in presets)


@pytest.mark.parametrize("name", list_cpu_presets())
def test_every_preset_loads_and_round_trips(name, tmp_path):
    cpu = load_cpu(name)
    assert cpu.peak_flops > 0 and set(cpu.efficiency) == set(FACTOR_KEYS)
    assert cpu.sources, f"{name} must say where its numbers come from"
    path = tmp_path / "copy.toml"
    path.write_text(cpu.to_toml())
    assert load_cpu(path) == cpu


def _edited(tmp_path, old: str, new: str):
    text = load_cpu("cpu-host-default").to_toml()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("[compute]\n", "[compute]\nturbo = true\n", "unknown key 'compute.turbo'"),
        ("cores = ", "cores = 'two' #", "'compute.cores' is 'two'; expected an integer"),
        ("cores = ", "cores = -1 #", "'compute.cores' is -1; expected a positive value"),
        ("frequency_ghz = ", "frequency_ghz = 0 #", "'compute.frequency_ghz' is 0; expected a positive value"),
        ("shared = false", "shared = 1", "'cache[0].shared' is 1; expected true or false"),
        ("size_kib = ", "size_kib = 0 #", "'cache[0].size_kib' is 0; expected a positive value"),
        ("conv = ", "conv = 1.5 #", "'efficiency.conv' is 1.5; expected at most 1"),
        ("\nact = ", "\nactivation = ", "unknown key 'efficiency.activation'"),
        ("[dram]\nbandwidth_gb_s = ", "[dram]\nbandwidth_gb_s = -3 #", "'dram.bandwidth_gb_s' is -3; expected a positive value"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, old, new, expected):
    path = _edited(tmp_path, old, new)
    with pytest.raises(InputError) as error:
        load_cpu(path)
    message = str(error.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_section_and_unknown_preset_and_missing_file(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text('name = "x"\n')
    with pytest.raises(InputError, match="missing key"):
        load_cpu(path)
    with pytest.raises(InputError, match="unknown CPU preset 'cpu-nonesuch'"):
        load_cpu("cpu-nonesuch")
    with pytest.raises(InputError, match="not found"):
        load_cpu(tmp_path / "absent.toml")


def test_invalid_toml_is_an_input_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_cpu(path)
