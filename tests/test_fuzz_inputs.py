"""Every kind of file the tool reads, damaged every way hypothesis finds: each command ends with exit 0
(the damage left a valid file) or exit 2 and one line on stderr naming the input, never a traceback,
and creates no output.

Kinds: saved graphs (JSON, GraphML), SCALE-Sim topology CSV, hardware and CPU configs (TOML), a
checkpoint, an explore space (TOML), an ONNX model.  CIFAR pickles and image folders are damaged in
tests/model/test_data.py, sweep journals in tests/analysis/test_sweep_resume.py.
"""

import dataclasses

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attentionlite.cli import main
from attentionlite.model.training.train import TrainConfig, train
from attentionlite.simulator.accelerator.hardware import describe, load_hardware
from attentionlite.simulator.cpu.config import load_cpu
from attentionlite.simulator.graph.formats import save_graph
from attentionlite.simulator.graph.targets import Target, TargetKind, TraceOptions, target_graph

TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
conv1, 10, 10, 3, 3, 3, 16, 1,
conv2, 8, 8, 1, 1, 16, 32, 1,
"""
SPACE = 'array = ["8x8", "16x16"]\ndataflow = ["os", "ws"]\n'
EXAMPLES = 50  # per kind of file: about half a minute for the whole module here


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` cut short, with a byte changed, with junk spliced in, or replaced by random bytes."""
    n = len(valid)
    cut = st.integers(0, n - 1).map(lambda k: valid[:k])
    flipped = st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
        lambda ib: valid[:ib[0]] + bytes([ib[1]]) + valid[ib[0] + 1:])
    spliced = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=16)).map(
        lambda ij: valid[:ij[0]] + ij[1] + valid[ij[0]:])
    return st.one_of(cut, flipped, spliced, st.binary(max_size=64))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One valid file of every kind, as bytes, and the folder the damaged copies go to."""
    root = tmp_path_factory.mktemp("fuzz")
    topology = root / "net.csv"
    topology.write_text(TOPOLOGY)
    graph = target_graph(Target(str(topology), TargetKind.TOPOLOGY), TraceOptions())
    save_graph(graph, root / "net.json")
    save_graph(graph, root / "net.graphml")
    files = {
        "graph.json": (root / "net.json").read_bytes(),
        "graph.graphml": (root / "net.graphml").read_bytes(),
        "topology.csv": TOPOLOGY.encode(),
        "hardware.toml": describe(load_hardware("paa-default")).encode(),
        "cpu.toml": load_cpu("cpu-host-default").to_toml().encode(),
        "space.toml": SPACE.encode(),
        "checkpoint.pt": _tiny_checkpoint(root),
        "model.onnx": _tiny_onnx(root),
    }
    return root, files


def _tiny_onnx(root) -> bytes:
    import warnings

    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(root / "net.onnx"), dynamo=False, opset_version=17)
    return (root / "net.onnx").read_bytes()


def _tiny_checkpoint(root) -> bytes:
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        for label in range(10):
            folder = root / "images" / split / f"class{label}"
            folder.mkdir(parents=True)
            pixels = np.full((32, 32, 3), 20 * label, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "0.png")
    config = TrainConfig(model="resnet26", dataset="cifar10", data_dir=str(root / "images"), out=str(root / "run"),
                         epochs=1, batch_size=5, width=0.25, cache_dir=str(root / "cache"), progress=False)
    train(dataclasses.replace(config))
    return (root / "run" / "checkpoint.pt").read_bytes()


# (kind of file, the command reading it with {file} and {out}); each exits early on a bad file
COMMANDS = {
    "graph.json": ["simulate", "{file}", "--cores", "1", "--out", "{out}"],
    "graph.graphml": ["cpu", "{file}", "--cpu", "cpu-host-default", "--out", "{out}"],
    "topology.csv": ["simulate", "--topology", "{file}", "--array", "8x8", "--out", "{out}"],
    "hardware.toml": ["simulate", "--topology", "{topology}", "--hardware", "{file}", "--out", "{out}"],
    "cpu.toml": ["cpu", "{graph}", "--cpu", "{file}", "--out", "{out}"],
    "space.toml": ["explore", "{topology}", "--space", "{file}", "--trials", "2", "--workers", "1", "--out", "{out}"],
    "checkpoint.pt": ["trace", "{file}", "--out", "{out}.json"],
    "model.onnx": ["simulate", "{file}", "--cores", "1", "--out", "{out}"],
}


def _check(result, out) -> None:
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {result.exception!r}\n{result.output[-2000:]}"
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert not out.exists() and not out.with_name(out.name + ".json").exists()


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_a_damaged_file_is_one_line_and_no_output(sources, kind):
    root, files = sources

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(damaged(files[kind]))
    def run(data: bytes) -> None:
        path = root / f"damaged-{kind}"
        path.write_bytes(data)
        out = root / "out"
        values = {"file": str(path), "out": str(out), "topology": str(root / "net.csv"),
                  "graph": str(root / "net.json")}
        result = CliRunner().invoke(main, [part.format(**values) for part in COMMANDS[kind]])
        _check(result, out)
        for leftover in (out, out.with_name(out.name + ".json")):  # a valid damaged file wrote output
            if leftover.is_dir():
                import shutil

                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()

    run()


BAD_VALUES = ("0", "-3", "nan", "inf", "-inf", "", "abc", "1e309", "2.5", "0x10", "100000")
# Options of a fast command (a two-layer topology) whose every bad value must be refused in one line.
OPTIONS = {
    "simulate": (["simulate", "--topology", "{topology}", "--out", "{out}"],
                 ["--array", "--cores", "--bandwidth", "--batch", "--dataflow", "--schedule", "--sparsity"]),
    "cpu": (["cpu", "{graph}", "--cpu", "cpu-host-default", "--out", "{out}"], ["--batch"]),
    "parallelism": (["parallelism", "{topology}", "--schedules", "data", "--out", "{out}"],
                    ["--cores", "--schedules", "--density"]),
}


@pytest.mark.parametrize("command, option", [(c, o) for c, (_, options) in OPTIONS.items() for o in options])
def test_a_bad_option_value_is_one_line_and_no_output(sources, command, option):
    root, _ = sources
    base, _ = OPTIONS[command]
    out = root / "out"
    values = {"out": str(out), "topology": str(root / "net.csv"), "graph": str(root / "net.json")}
    for value in BAD_VALUES:
        result = CliRunner().invoke(main, [part.format(**values) for part in base] + [option, value])
        if result.exit_code == 0:  # a value that happens to be valid here ("2.5" GB/s)
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            continue
        assert result.exit_code == 2, f"{option} {value!r}: exit {result.exit_code}: {result.exception!r}"
        assert "Traceback" not in result.output and not out.exists(), f"{option} {value!r}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{option} {value!r}: {result.stderr}"
