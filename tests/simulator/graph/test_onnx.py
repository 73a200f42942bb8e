"""ONNX in: models exported with torch.onnx.export read back to the same MACs per kind as traced from
their modules; weight densities from the exported zeros; batch, bad files and unknown ops."""

from __future__ import annotations

import warnings
from pathlib import Path

import foreign_models as fm  # pytest puts tests/ on sys.path
import pytest
import torch
from click.testing import CliRunner
from small_models import small_overrides
from torch import nn

import attentionlite as al
from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.model.nets.zoo import create_model
from attentionlite.simulator.graph.onnx import load_onnx_graph
from attentionlite.simulator.graph.ops import Gemm, OpKind
from attentionlite.simulator.graph.tracing import trace_model

IMAGE = 32


def export(model: nn.Module, path, batch: int = 1, dynamic: bool = False) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model.eval(), (torch.zeros(batch, 3, IMAGE, IMAGE),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}} if dynamic else None)
    return str(path)


def macs_by_kind(graph) -> dict[str, int]:
    totals: dict[str, int] = {}
    for op in graph.ops_in_order():
        if op.macs:
            totals[op.kind.value] = totals.get(op.kind.value, 0) + op.macs
    return totals


@pytest.mark.parametrize("build", [
    lambda: create_model("resnet26", **small_overrides("resnet26")),
    lambda: create_model("vit_tiny", **small_overrides("vit_tiny")),
    fm.UNetDecoder, fm.EncoderViT, fm.SwinBlock,
], ids=["resnet26", "vit_tiny", "unet", "encoder_vit", "swin"])
def test_an_export_reads_back_to_the_modules_macs_per_kind(build, tmp_path):
    """Global attention is recognised in the exporter's MatMul, Softmax, MatMul as logits and values."""
    model = build().eval()
    from_onnx = load_onnx_graph(export(model, tmp_path / "model.onnx"))
    from_module = trace_model(model, IMAGE)
    assert macs_by_kind(from_onnx) == macs_by_kind(from_module)
    assert from_onnx.total("weight_params") == from_module.total("weight_params")


def test_weight_density_is_that_of_the_exported_zeros(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    with torch.no_grad():
        model[0].weight[:6] = 0  # 6 of 8 filters of 3 x 3 x 3 pruned: 2 x 27 = 54 of 216 weights left
    conv = next(op for op in load_onnx_graph(export(model, tmp_path / "m.onnx")).ops_in_order() if op.kind is OpKind.CONV)
    assert (conv.weight_params, conv.weight_nonzero) == (216, 54)


def test_a_dynamic_batch_takes_the_batch_asked_for_and_a_fixed_one_refuses_another(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    dynamic = load_onnx_graph(export(model, tmp_path / "d.onnx", dynamic=True), batch=4)
    assert dynamic.metadata["input_shape"] == [4, 3, IMAGE, IMAGE]
    assert dynamic.ops_in_order()[0].gemm == Gemm(m=4 * IMAGE * IMAGE, n=4, k=3)
    with pytest.raises(InputError, match="fixed batch of 1, not 4"):
        load_onnx_graph(export(model, tmp_path / "f.onnx"), batch=4)


def test_an_unknown_op_type_is_named_with_its_node(tmp_path):
    class Cumulative(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, 1)

    with pytest.raises(InputError, match=r"ONNX node '.*CumSum.*' of op type CumSum"):
        load_onnx_graph(export(Cumulative(), tmp_path / "c.onnx"))


def test_the_cli_reads_onnx_and_a_damaged_file_is_one_line(tmp_path):
    path = export(fm.MultiheadViT(), tmp_path / "mha.onnx")
    runner = CliRunner()
    result = runner.invoke(main, ["simulate", path])
    assert result.exit_code == 0, result.output
    assert al.trace(path).metadata["onnx"] == path
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(open(path, "rb").read()[:200])
    result = runner.invoke(main, ["simulate", str(damaged)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "not a readable ONNX model" in result.output
    convolutional = export(fm.MobileNetV2(), tmp_path / "mobilenet.onnx")
    result = runner.invoke(main, ["cpu", convolutional, "--measure", "--cpu", "cpu-host-default"])
    assert result.exit_code == 2 and "not a torch module" in result.output


class SoftmaxAxes(nn.Module):
    """Softmaxes over the channels (3, not the last axis), the rows of 5 columns (32, a module; the last axis
    is 5) and the last axis (32, no dim named)."""

    def __init__(self) -> None:
        super().__init__()
        self.over_rows = nn.Softmax(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.over_rows(x[..., :5]).sum(dim=-1, keepdim=True)
        return x.softmax(dim=1) + rows + torch.softmax(x[:, :2], -1).sum(dim=1, keepdim=True)


def test_a_softmax_knows_the_length_of_the_axis_it_normalises(tmp_path):
    for graph in (trace_model(SoftmaxAxes(), IMAGE), load_onnx_graph(export(SoftmaxAxes(), tmp_path / "s.onnx"))):
        lengths = sorted(dict(op.attrs)["axis_length"] for op in graph.ops_in_order() if op.kind is OpKind.SOFTMAX)
        assert lengths == [3, 32, 32]


def test_a_name_that_is_not_utf8_is_one_error(tmp_path):
    # the fuzzer's find: one damaged byte in a node's name makes protobuf hand back bytes, not text
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    data = Path(export(model, tmp_path / "net.onnx")).read_bytes()
    at = data.index(b"/1/Relu")
    (tmp_path / "damaged.onnx").write_bytes(data[:at] + b"\x80" + data[at + 1:])
    with pytest.raises(InputError, match="ONNX node 1: a name or type is not valid UTF-8"):
        load_onnx_graph(tmp_path / "damaged.onnx")
