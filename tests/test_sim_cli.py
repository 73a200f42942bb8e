"""`attentionlite simulate` end to end on SCALE-Sim topology files and saved graphs."""

import json

from click.testing import CliRunner

from attentionlite.cli import main

TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
conv1, 10, 10, 3, 3, 3, 16, 1,
conv2, 8, 8, 1, 1, 16, 32, 1,
"""


def run(*args):
    return CliRunner().invoke(main, ["simulate", *args])


def test_topology_file_to_ops_csv_and_summary(tmp_path):
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    result = run("--topology", str(topology), "--array", "8x8", "--dataflow", "ws", "--cores", "1", "--out", str(tmp_path / "sim"))
    assert result.exit_code == 0, result.output
    assert "conv1" in result.output and "throughput" in result.output
    lines = (tmp_path / "sim" / "ops.csv").read_text().splitlines()
    assert lines[0].startswith("name,kind,cores,start_cycle,end_cycle,folds,compute_cycles,stall_cycles")
    for operand in ("dram_read_input", "dram_read_weight", "dram_read_index", "dram_write_output", "sram_read_input"):
        assert f"{operand}_bytes" in lines[0].split(",")
    assert [line.split(",")[0] for line in lines[1:]] == ["conv1", "conv2"]
    compute = (tmp_path / "sim" / "COMPUTE_REPORT.csv").read_text().splitlines()
    assert compute[0] == ("LayerID,Layer,Kind,Folds,Total Cycles,Compute Cycles,Stall Cycles,Overall Util %,"
                          "Mapping Efficiency %,Compute Util %")
    bandwidth = (tmp_path / "sim" / "BANDWIDTH_REPORT.csv").read_text().splitlines()
    assert "Avg IFMAP DRAM BW (B/cycle)" in bandwidth[0] and "Peak FILTER DRAM BW (B/cycle)" in bandwidth[0]
    assert len(compute) == len(bandwidth) == 3
    summary = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert summary["hardware"]["array"] == {"rows": 8, "cols": 8, "dataflow": "ws", "overlap_folds": False,
                                          "fuse_post_ops": False}
    assert summary["run"]["schedule"] == "data" and summary["provenance"]["package_version"]
    assert summary["totals"]["cycles"] > 0


def test_same_command_same_bytes(tmp_path):
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    for out in ("a", "b"):
        assert run("--topology", str(topology), "--schedule", "split", "--out", str(tmp_path / out)).exit_code == 0
    for name in ("ops.csv", "COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_bad_input_is_one_line_and_status_2(tmp_path):
    topology = tmp_path / "net.csv"
    topology.write_text(TOPOLOGY)
    neither = run()
    assert neither.exit_code == 2 and "either a TARGET" in neither.output
    bad_array = run("--topology", str(topology), "--array", "0x8", "--out", str(tmp_path / "sim"))
    assert bad_array.exit_code == 2 and "array size '0x8'" in bad_array.output
    assert not (tmp_path / "sim").exists()
