"""Bad input, as a new user would give it: each command ends with exit 0 (the input was valid after all) or
exit 2 and one line on stderr naming the input, never a traceback, and creates or changes no file.

- Every kind of file the tool reads, damaged every way hypothesis finds: saved graphs (JSON, GraphML),
  SCALE-Sim topology CSV, hardware and CPU configs (TOML), a checkpoint, an explore space (TOML), an ONNX
  model.  CIFAR pickles and image folders are damaged in tests/model/test_data.py, sweep journals in
  tests/analysis/test_sweep_resume.py.
- Every option that takes a value, of every command (found by walking the CLI, so a new one is covered as
  it lands; on/off flags and arguments are not fuzzed here), each with values of the wrong type, empty, NaN,
  infinite, zero, negative and huge, and paths that are missing, unwritable, a folder of someone else's
  files or an existing file.  Each runs in an empty working folder, which must stay empty.
"""

import dataclasses
import shutil
from pathlib import Path

import click
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
EXISTING = "the user's file"
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

    for split, count in (("train", 2), ("test", 1)):
        for label in range(10):
            folder = root / "images" / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = np.full((32, 32, 3), 20 * label + index, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    train(_tiny_config(root))
    return (root / "run" / "checkpoint.pt").read_bytes()


def _tiny_config(root) -> TrainConfig:
    return TrainConfig(model="resnet26", dataset="cifar10", data_dir=str(root / "images"), out=str(root / "run"),
                       epochs=1, batch_size=5, width=0.25, cache_dir=str(root / "cache"), progress=False)


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
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()

    run()


# --- every option of every command -----------------------------------------------------------------

# Each command's cheapest valid run ({out}: the output, which a refused value must not create).
BASES = {
    "models": ["models", "--dataset", "cifar10"],
    "train": ["train", "--model", "resnet26", "--width", "0.25", "--dataset", "cifar10", "--data-dir", "{images}",
              "--out", "{out}", "--epochs", "1", "--batch-size", "5", "--train-subset", "1", "--cache-dir", "{cache}",
              "--quiet"],
    "evaluate": ["evaluate", "{checkpoint}", "--data-dir", "{images}"],
    "compact": ["compact", "{column_checkpoint}", "--out", "{out}"],
    "sparsify-attention": ["sparsify-attention", "{vit_checkpoint}", "--sparsity", "0.5", "--data-dir", "{images}",
                           "--out", "{out}", "--cache-dir", "{cache}", "--quiet"],
    "attention-sweep": ["attention-sweep", "{vit_checkpoint}", "--data-dir", "{images}", "--sparsities", "0,0.5",
                        "--cache-dir", "{cache}", "--out", "{out}.csv", "--quiet"],
    "trace": ["trace", "resnet26", "--out", "{out}.json"],
    "simulate": ["simulate", "{topology}", "--out", "{out}"],
    "hardware show": ["hardware", "show", "paa-default"],
    "calibrate": ["calibrate", "--out", "{out}.toml"],
    "cpu": ["cpu", "{graph}", "--cpu", "cpu-host-default", "--out", "{out}"],
    "compare": ["compare", "{topology}", "{topology}", "--out", "{out}"],
    "sweep": ["sweep", "{topology}", "--arrays", "8", "--dataflows", "os", "--workers", "1", "--out", "{out}"],
    "explore": ["explore", "{topology}", "--space", "{space}", "--trials", "2", "--workers", "1", "--out", "{out}"],
    "report": ["report", "{topology}", "--arrays", "8", "--dataflows", "os", "--cores", "1", "--schedules", "data",
               "--against", "none", "--cpu", "cpu-host-default", "--workers", "1", "--out", "{out}"],
    "parallelism": ["parallelism", "{topology}", "--schedules", "data", "--cores", "1", "--against", "none",
                    "--out", "{out}"],
}
# Values no option of the type may take (exit 2), and values it may (exit 0, or 2 where out of range).
REFUSED = {"int": ["abc", "", "2.5", "nan", "1e309"], "float": ["abc", "", "nan", "inf", "-inf", "1e309"],
           "choice": ["abc", ""], "text": [""], "path": [""]}
MAYBE = {"int": ["0", "-3", "100000"], "float": ["0", "-3", "100000"], "choice": [], "text": ["abc", "-3", ","],
         "path": ["{root}/missing/file", "{folder}", "{existing}", "/proc/none/file"]}
# Valid values that would run for hours (100,000 epochs or trials) and a command that runs for minutes.
TOO_SLOW_IF_VALID = {("train", "--epochs"), ("explore", "--trials"), ("calibrate", "--threads"),
                     ("calibrate", "--out")}


def _kind(option: click.Option) -> str:
    if isinstance(option.type, click.Choice):
        return "choice"
    if isinstance(option.type, click.Path):
        return "path"
    if isinstance(option.type, (click.types.IntParamType, click.IntRange)):
        return "int"
    return "float" if isinstance(option.type, click.types.FloatParamType) else "text"


def _commands(group: click.Group = main, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _commands(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = command
    return found


def _cases() -> list[tuple[str, str, str, bool]]:
    """(command, option, value, must be refused) for every value option of every command."""
    cases = []
    for name, command in _commands().items():
        for option in command.params:
            if isinstance(option, click.Option) and not option.is_flag and "--help" not in option.opts:
                kind, flag = _kind(option), option.opts[0]
                cases += [(name, flag, value, True) for value in REFUSED[kind]]
                if (name, flag) not in TOO_SLOW_IF_VALID:
                    cases += [(name, flag, value, False) for value in MAYBE[kind]]
    return cases


@pytest.fixture(scope="module")
def runnable(sources):
    """The placeholders of :data:`BASES`, with a column-pruned checkpoint for ``compact`` and a ViT's for
    ``sparsify-attention``."""
    root, _ = sources
    column = dataclasses.replace(_tiny_config(root), out=str(root / "column"), density=0.3, prune="column")
    train(column)
    train(dataclasses.replace(_tiny_config(root), out=str(root / "vit"), model="vit_tiny", width=None, embed_dim=16,
                              depth=1, heads=2))
    (root / "space.toml").write_text(SPACE)
    (root / "existing.txt").write_text(EXISTING)
    (root / "theirs").mkdir()
    (root / "theirs" / "notes.txt").write_text(EXISTING)
    return root, {"root": str(root), "images": str(root / "images"), "cache": str(root / "cache"),
                  "checkpoint": str(root / "run" / "checkpoint.pt"),
                  "column_checkpoint": str(root / "column" / "checkpoint.pt"),
                  "vit_checkpoint": str(root / "vit" / "checkpoint.pt"), "topology": str(root / "net.csv"),
                  "graph": str(root / "net.json"), "space": str(root / "space.toml"),
                  "existing": str(root / "existing.txt"), "folder": str(root / "theirs")}


def _invoke(arguments: list[str], values: dict[str, str], option: str | None = None, value: str | None = None):
    arguments = [part.format(**values) for part in arguments]
    if option in arguments:  # the fuzzed option replaces the base's own
        at = arguments.index(option)
        arguments = arguments[:at] + arguments[at + 2:]
    extra = [option, value.format(**values)] if option is not None and value is not None else []
    return CliRunner().invoke(main, arguments + extra)


def _listing(root) -> dict[str, int]:
    """Every file under ``root`` but the decode cache, with its size."""
    return {str(path.relative_to(root)): path.stat().st_size for path in sorted(root.rglob("*"))
            if path.is_file() and "cache" not in path.relative_to(root).parts}


def test_every_command_has_a_base_that_runs(runnable):
    root, values = runnable
    assert set(BASES) == set(_commands()) - {"hardware list"}  # hardware list takes no option
    for name, base in BASES.items():
        if name == "calibrate":  # minutes; tests/simulator/cpu runs it
            continue
        out = root / "out"
        result = _invoke(base, values | {"out": str(out)})
        assert result.exit_code == 0, f"{name}: {result.output[-1000:]}"
        _remove(out)


@pytest.mark.parametrize("command, option, value, refused", _cases(),
                         ids=lambda item: repr(item) if isinstance(item, str) else "")
def test_a_bad_option_value_is_one_line_and_no_output(runnable, command, option, value, refused, tmp_path,
                                                      monkeypatch):
    """A refused value: exit 2, one line, and no file created or changed.  A valid one may write only where
    the value points (an --out, a --cache-dir: new files, or the file given) and the base's output; never
    in the working folder."""
    root, values = runnable
    out = root / "out"
    monkeypatch.chdir(tmp_path)
    before = _listing(root)
    result = _invoke(BASES[command], values | {"out": str(out)}, option, value)
    assert list(tmp_path.iterdir()) == [], f"{command} {option} {value!r} wrote into the working folder"
    case = f"{command} {option} {value!r}"
    assert "Traceback" not in result.output, case
    assert result.exit_code in ((2,) if refused else (0, 2)), \
        f"{case}: exit {result.exit_code}: {result.exception!r} {result.output[-500:]}"
    after = _listing(root)
    _remove(out)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {result.stderr}"
        assert after == before, f"{case} was refused, but created or changed files"
        return
    given = Path(value.format(**values)).absolute()
    kept = {path: size for path, size in before.items() if root / path != given}  # a file given may be replaced
    assert all(after.get(path) == size for path, size in kept.items()), f"{case} changed files it was not given"
    for path in set(after) - set(before):  # what the valid run wrote
        (root / path).unlink(missing_ok=True)
    (root / "existing.txt").write_text(EXISTING)  # restored, should a valid run have replaced it


def _remove(out) -> None:
    """What a valid value wrote: the output folder or file, whatever suffix the base gave it."""
    for leftover in (out, out.with_name(out.name + ".json"), out.with_name(out.name + ".toml")):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
