"""Tracing models into op graphs: hand counts, fvcore as the reference, masks, errors, the CLI."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
from click.testing import CliRunner
from fvcore.nn import FlopCountAnalysis
from small_models import small_overrides  # pytest puts tests/ on sys.path
from torch import nn

from attentionlite.api import trace
from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.model.nets.complexity import count_macs
from attentionlite.model.nets.gathered import compact_model
from attentionlite.model.nets.layers import AttentionStem, LocalSelfAttention
from attentionlite.model.nets.zoo import create_model, list_models
from attentionlite.model.training.checkpoint import save_checkpoint
from attentionlite.model.training.sparsity import apply_masks
from attentionlite.simulator.graph.formats import load_graph, save_graph
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, OpKind
from attentionlite.simulator.graph.tracing import trace_model

SMALL_WIDTH = 0.25


class _Wrapper(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _einsum_macs(inputs, outputs) -> int:
    """Exact MACs of a two-operand einsum: the product of every index's size."""
    equation = inputs[0].toIValue().replace(" ", "")
    operands = equation.split("->")[0].split(",")
    shapes = [value.type().sizes() for value in inputs[1].node().inputs()]
    sizes = {letter: size for operand, shape in zip(operands, shapes) for letter, size in zip(operand, shape)}
    return math.prod(sizes.values())


def _window_area(outputs) -> int:
    """k*k, from the kernel size the window function was called with (layout-independent)."""
    kernel_size = outputs[0].node().scalar_args()[0]
    return kernel_size * kernel_size


def _window_dot_macs(inputs, outputs) -> int:
    # every query element meets the k*k keys of its window
    return math.prod(inputs[0].type().sizes()) * _window_area(outputs)


def _window_sum_macs(inputs, outputs) -> int:
    # every output element sums k*k weighted values (the stem's mixtures are extra output groups)
    return math.prod(outputs[0].type().sizes()) * _window_area(outputs)


def _no_macs(inputs, outputs) -> int:
    return 0


def fvcore_macs(model: nn.Module, image_size: int) -> int:
    """fvcore's FlopCountAnalysis with handles for the attention ops; vector work counts zero."""
    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, image_size, image_size))
    analysis.set_op_handle(
        **{
            "prim::PythonOp.WindowDot": _window_dot_macs,
            "prim::PythonOp.WindowSum": _window_sum_macs,
            "aten::einsum": _einsum_macs,
            "aten::batch_norm": _no_macs,
            "aten::adaptive_avg_pool2d": _no_macs,
        }
    )
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analysis.total())


@pytest.mark.parametrize("name", list_models())
def test_every_model_matches_count_macs(name):
    """Every registered model against the models' own fvcore count (``count_macs``), narrow, at
    16 px and (students) with 3x3 windows to keep fvcore's real forward pass quick; full width,
    7x7 windows and 32 px are checked below against this file's fvcore handles."""
    small = {"kernel_size": 3} if name.startswith("sasa") else {}
    model = create_model(name, image_size=16, **small_overrides(name, SMALL_WIDTH), **small)
    graph = trace_model(model, 16)
    assert graph.total("macs") == count_macs(model, 16)
    assert graph.metadata["output_shape"] == [1, 10]


@pytest.mark.parametrize(
    "name, giga_macs, check_fvcore",
    [("resnet50", 1.30, True), ("sasa26_homogeneous", 0.68, True), ("sasa26_hybrid", 0.68, False)],
)
def test_full_width_models_match_design_numbers(name, giga_macs, check_fvcore):
    """DESIGN.md's counts at 32 px, 10 classes; fvcore on the teacher and on the homogeneous
    student (the hybrid's parts are the teacher's conv stem and the same attention layers)."""
    model = create_model(name)
    graph = trace_model(model, 32)
    assert graph.total("macs") / 1e9 == pytest.approx(giga_macs, abs=0.01)
    if check_fvcore:
        assert graph.total("macs") == fvcore_macs(model, 32)


def test_conv_and_linear_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    ops = trace_model(model, 8, batch=2).ops_in_order()
    assert [op.kind for op in ops] == [OpKind.CONV, OpKind.LINEAR]  # flatten is free: an edge
    # conv: 2 images x 4x4 outputs = M 32, N 8, K 3*3*3 = 27; linear: M 2, N 5, K 128.
    assert ops[0].gemm == Gemm(32, 8, 27) and ops[0].macs == 32 * 8 * 27
    assert ops[1].gemm == Gemm(2, 5, 128) and ops[1].input_shapes == ((2, 128),)


def test_adaptive_pool_to_one_pixel_is_a_global_pool():
    model = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1))
    ops = trace_model(nn.Sequential(nn.Conv2d(3, 4, 1), model), 8).ops_in_order()[1:]
    assert [op.kind for op in ops] == [OpKind.POOL, OpKind.POOL, OpKind.GLOBAL_POOL]
    assert [op.vector_ops for op in ops] == [4 * 8 * 8, 4 * 2 * 2, 4 * 1 * 1]  # one add per element read


class _InPlaceAndNot(nn.Module):
    """relu_(x + x), then y.add_(relu(y)): out-of-place add, in-place ReLU, out-of-place ReLU, in-place add."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(x + x)
        return y.add_(torch.relu(y))


def test_in_place_ops_are_marked():
    ops = trace_model(_InPlaceAndNot(), 4).ops_in_order()
    marked = [(op.kind, dict(op.attrs).get("in_place", 0)) for op in ops]
    assert marked == [(OpKind.ADD, 0), (OpKind.ACT, 1), (OpKind.ACT, 0), (OpKind.ADD, 1)]


def test_local_attention_hand_count():
    graph = trace_model(_Wrapper(LocalSelfAttention(16, 16, kernel_size=3, heads=2, stride=2)), 8)
    ops = {op.name.split(".")[-1]: op for op in graph.ops_in_order()}
    assert list(ops) == ["query", "key", "value", "logits", "softmax", "weighted_sum", "pool"]
    queries, channels, window = 64, 16, 9  # 8x8 pixels, 16 channels, 3x3 window
    assert ops["query"].gemm == Gemm(queries, channels, 16)
    assert ops["logits"].macs == queries * window * channels + queries * 3 * channels
    assert ops["softmax"].vector_ops == 4 * queries * 2 * window  # 2 heads
    assert ops["weighted_sum"].macs == queries * window * channels
    assert ops["pool"].output_shape == (1, 16, 4, 4) and ops["pool"].vector_ops == 4 * 16 * 16
    assert ops["logits"].weight_params == 16 * 3  # row and column embeddings: (C/2) x k each
    assert sorted(graph.producers(ops["weighted_sum"].name)) == [ops["softmax"].name, ops["value"].name]


def test_attention_stem_hand_count():
    stem = _Wrapper(AttentionStem(3, 16, kernel_size=4, heads=1, mixtures=4))
    ops = {op.name.split(".")[-1]: op for op in trace_model(stem, 8).ops_in_order()}
    assert ops["value"].gemm == Gemm(64, 4 * 16, 3)  # one projection per mixture
    assert ops["logits"].macs == 64 * 16 * 16  # no relative term
    assert ops["weighted_sum"].macs == 64 * 16 * 16 * 4
    assert ops["weighted_sum"].window.mixtures == 4
    assert "pool" not in ops


def _random_masks(model: nn.Module, density: float, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        f"{path}.weight": torch.rand(module.weight.shape, generator=generator) < density
        for path, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    }


def _relative_embedding_params(model: nn.Module) -> int:
    return sum(m.rel_rows.numel() + m.rel_cols.numel() for m in model.modules() if isinstance(m, LocalSelfAttention))


def test_ten_percent_masks_give_the_masks_non_zero_count():
    model = create_model("sasa26_hybrid", width=SMALL_WIDTH)
    masks = _random_masks(model, 0.10)
    graph = trace_model(model, 32, masks=masks, prune_mode="unstructured")
    dense_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    relative = _relative_embedding_params(model)
    assert graph.total("weight_params") == dense_weights + relative
    assert graph.total("weight_nonzero") == sum(int(mask.sum()) for mask in masks.values()) + relative
    assert graph.total("weight_nonzero") < 0.12 * graph.total("weight_params")


def _column_masks(model: nn.Module, keep_every: int) -> dict[str, torch.Tensor]:
    """Keep every ``keep_every``-th column of each (out, in*kh*kw) weight matrix."""
    masks = {}
    for path, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            columns = torch.arange(module.weight[0].numel()) % keep_every == 0
            masks[f"{path}.weight"] = columns.expand(module.weight.shape[0], -1).reshape(module.weight.shape)
    return masks


def test_column_masks_record_kept_columns():
    model = create_model("resnet26", width=SMALL_WIDTH)
    graph = trace_model(model, 32, masks=_column_masks(model, 4), prune_mode="column")
    conv = graph.op("layer1.0.spatial")  # 3x3 conv, 16 -> 16 channels: 144 columns
    assert (conv.columns_total, conv.columns_kept) == (144, 36)
    assert conv.weight_nonzero == 16 * 36


def test_compacted_model_counts_kept_columns_only():
    model = create_model("sasa26_hybrid", width=SMALL_WIDTH)
    masks = _column_masks(model, 4)
    graph = trace_model(compact_model(model, masks), 32, masks=masks, prune_mode="column")
    conv = graph.op("layer1.0.conv3")  # 1x1 conv, 16 -> 64 channels: 4 of 16 columns kept
    assert conv.gemm == Gemm(32 * 32, 64, 4)
    assert (conv.weight_params, conv.weight_nonzero, conv.columns_total, conv.columns_kept) == (256, 256, 16, 4)
    query = graph.op("layer1.0.spatial.query")  # 16 -> 16 projection: 4 of 16 columns kept
    assert query.gemm == Gemm(32 * 32, 16, 4) and (query.columns_total, query.columns_kept) == (16, 4)


def test_checkpoint_trace(tmp_path):
    model = create_model("sasa26_homogeneous", width=SMALL_WIDTH)
    masks = _random_masks(model, 0.10, seed=1)
    apply_masks(model, masks)
    path = tmp_path / "student.pt"
    save_checkpoint(path, model=model, masks=masks, prune_mode="unstructured", density=0.1, arch=model.arch,
                    dataset="cifar10", train_config={}, metrics={}, seed=0)
    graph = trace(str(path), fold_bn=True)
    assert graph.total("weight_nonzero") == sum(int(m.sum()) for m in masks.values()) + _relative_embedding_params(model)
    assert graph.metadata["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert graph.metadata["model"] == "sasa26_homogeneous"
    with pytest.raises(InputError, match="trained on 'cifar10'"):
        trace(str(path), dataset="cifar100")


def test_fold_bn_keeps_norms_after_attention_only():
    model = create_model("sasa26_hybrid", width=SMALL_WIDTH)
    folded = trace_model(model, 32, fold_bn=True)
    norms = [op.source for op in folded.ops_in_order() if op.kind is OpKind.NORM]
    # ResNet-26 has 1 + 2 + 4 + 1 = 8 blocks; each one's bn2 follows an attention layer.
    assert len(norms) == 8 and all(source.endswith(".bn2") for source in norms)
    assert folded.total("macs") == trace_model(model, 32).total("macs")
    assert folded.producers("layer1.0.relu") == ["layer1.0.conv1"]


def test_round_trip_of_a_traced_graph(tmp_path):
    model = create_model("sasa26_homogeneous", width=SMALL_WIDTH)
    graph = trace_model(model, 32, masks=_column_masks(model, 3), prune_mode="column", fold_bn=True)
    for suffix in ("json", "graphml"):
        assert load_graph(save_graph(graph, tmp_path / f"graph.{suffix}")) == graph


class _PixelShuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class _Cumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.conv(x), 1)


def test_unknown_module_is_named():
    with pytest.raises(InputError, match=r"module 'block\.act' of type PixelShuffle"):
        trace_model(_Wrapper(_PixelShuffle()), 8)


def test_unknown_function_is_named():
    with pytest.raises(InputError, match=r"'cumsum' in module 'block'"):
        trace_model(_Wrapper(_Cumsum()), 8)


def test_bad_targets():
    with pytest.raises(InputError, match="neither a registered model"):
        trace("no_such_model")
    with pytest.raises(InputError, match="batch"):
        trace("resnet26", batch=0)


def test_cli_prints_table_and_writes_graph(tmp_path):
    out = tmp_path / "graph.graphml"
    result = CliRunner().invoke(main, ["trace", "resnet26", "--dataset", "tinyimagenet", "--batch", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "total (" in result.output and str(out) in result.output
    graph = load_graph(out)
    assert isinstance(graph, OpGraph)
    assert graph.metadata["input_shape"] == [2, 3, 64, 64] and graph.metadata["output_shape"] == [2, 200]


def test_cli_bad_target_exits_2():
    result = CliRunner().invoke(main, ["trace", "no_such_model"])
    assert result.exit_code == 2
