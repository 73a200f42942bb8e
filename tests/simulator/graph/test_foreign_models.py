"""Models the zoo does not have (foreign_models.py): MACs against fvcore and hand counts, the ops
and edges of global attention, the public trace API on any input shape, and their cost on the array."""

from __future__ import annotations

import math

import foreign_models as fm  # pytest puts tests/ on sys.path
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

import attentionlite as al
from attentionlite.errors import InputError
from attentionlite.model.nets.complexity import count_macs
from attentionlite.simulator.accelerator import mapping
from attentionlite.simulator.accelerator.hardware import load_hardware, with_overrides
from attentionlite.simulator.cpu.config import load_cpu
from attentionlite.simulator.cpu.roofline import factor_key, predict
from attentionlite.simulator.graph.ops import Gemm, OpKind
from attentionlite.simulator.graph.tracing import trace_model

IMAGE = 32


def graph_of(model: nn.Module, image_size: int = IMAGE):
    return trace_model(model.eval(), image_size)


def ops_of(graph, kind: OpKind):
    return [op for op in graph.ops_in_order() if op.kind is kind]


@pytest.mark.parametrize("build", [fm.MobileNetV2, fm.ConvNeXt, fm.SwinBlock, fm.UNetDecoder],
                         ids=lambda build: build.__name__)
def test_macs_equal_fvcore_where_fvcore_sees_every_product(build):
    """Depthwise and transposed convolutions, channels-last linears, hand-written q k^T and @ v."""
    model = build().eval()
    assert graph_of(model).total("macs") == count_macs(model, IMAGE)


def test_fvcore_misses_scaled_dot_product_attention_and_the_graph_does_not():
    """fvcore has no handle for aten::scaled_dot_product_attention (it counts 0); count_macs adds one.
    The graph counts Q K^T and A V: 3 heads x 64 queries x 64 keys x 16 channels each."""
    model = fm.SdpaViT().eval()
    tokens, heads, width = (IMAGE // 4) ** 2, 3, 16
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, IMAGE, IMAGE)).unsupported_ops_warnings(False)
    assert "scaled_dot_product_attention" not in analysis.by_operator()
    attention = 2 * heads * tokens * tokens * width
    assert graph_of(model).total("macs") == count_macs(model, IMAGE)
    macs_without_attention = sum(v for k, v in analysis.by_operator().items() if k in ("conv", "linear"))
    assert graph_of(model).total("macs") == macs_without_attention + attention


def test_encoder_vit_macs_by_hand():
    """nn.TransformerEncoder, which fvcore counts through PyTorch's fused fast path (wrongly): per
    layer 65 tokens x (q, k, v 3*64*64 + out 64*64 + MLP 2*64*128) + 4 heads x (65*65*16) x 2."""
    tokens, width, hidden, heads, depth = 65, 64, 128, 4, 2
    per_layer = tokens * (3 * width * width + width * width + 2 * width * hidden) + 2 * tokens * tokens * width
    patches = (IMAGE // 4) ** 2 * width * 3 * 4 * 4
    assert graph_of(fm.EncoderViT()).total("macs") == depth * per_layer + patches + width * 10
    assert heads * (width // heads) == width


def test_multihead_attention_ops_by_hand():
    """nn.MultiheadAttention(32, 4) on 64 tokens, need_weights by default: one fused in_proj GEMM,
    Q K^T and A V per head as batched GEMMs, softmax and the head-averaged weights on the vector unit."""
    graph = graph_of(fm.MultiheadViT())
    ops = {op.name.split(".")[-1]: op for op in graph.ops_in_order() if op.source.startswith("attention")}
    assert ops["in_proj"].gemm == Gemm(m=64, n=96, k=32) and ops["in_proj"].weight_params == 96 * 32
    assert ops["logits"].gemm == Gemm(m=64, n=64, k=8, batch=4)
    assert ops["logits"].vector_ops == 4 * 64 * 64  # the 1/sqrt(d) scale, one multiply per logit
    assert ops["softmax"].vector_ops == 4 * (4 * 64 * 64)
    assert ops["values"].gemm == Gemm(m=64, n=8, k=64, batch=4)
    assert ops["weights_mean"].vector_ops == 4 * 64 * 64
    assert ops["out_proj"].gemm == Gemm(m=64, n=32, k=32) and ops["out_proj"].weight_params == 32 * 32
    assert graph.producers(ops["logits"].name) == [ops["in_proj"].name]
    assert sorted(graph.producers(ops["values"].name)) == sorted([ops["in_proj"].name, ops["softmax"].name])


def test_sdpa_reads_queries_and_keys_into_logits_values_into_the_weighted_sum():
    graph = graph_of(fm.SdpaViT())
    logits, values = ops_of(graph, OpKind.ATTENTION_LOGITS)[0], ops_of(graph, OpKind.ATTENTION_VALUES)[0]
    assert graph.producers(logits.name) == ["qkv"]  # through reshape, permute and unbind
    assert sorted(graph.producers(values.name)) == sorted(["qkv", ops_of(graph, OpKind.SOFTMAX)[0].name])
    assert logits.weight_params == 0 and values.weight_params == 0


def test_vector_work_by_hand():
    """LayerNorm: 6 ops per element (sum, sum of squares, subtract, scale, times weight, plus bias);
    GELU: 5, one of them an erf; hardswish 5, sigmoid 3 with one exp; bilinear 7 per output."""
    convnext = graph_of(fm.ConvNeXt())
    norm = next(op for op in ops_of(convnext, OpKind.NORM) if op.source == "blocks.0.norm")
    assert norm.vector_ops == 6 * 8 * 8 * 32 and dict(norm.attrs)["norm"] == "layer"
    gelu = next(op for op in ops_of(convnext, OpKind.ACT) if op.source == "blocks.0.act")
    assert gelu.vector_ops == 5 * 8 * 8 * 128 and dict(gelu.attrs)["transcendentals"] == 8 * 8 * 128
    unet = graph_of(fm.UNetDecoder())
    resample = ops_of(unet, OpKind.RESAMPLE)[0]
    assert resample.vector_ops == 7 * 8 * 32 * 32 and dict(resample.attrs)["mode"] == "bilinear"
    functions = {dict(op.attrs).get("function"): op for op in ops_of(unet, OpKind.ACT)}
    assert functions["hardswish"].vector_ops == 5 * 8 * 16 * 16
    assert dict(functions["sigmoid"].attrs)["transcendentals"] == 16 * 8 * 8


def test_depthwise_and_transposed_convolutions_as_gemms():
    mobilenet = graph_of(fm.MobileNetV2())
    depthwise = next(op for op in ops_of(mobilenet, OpKind.CONV) if dict(op.attrs)["groups"] > 1)
    assert depthwise.gemm == Gemm(m=32 * 32, n=1, k=9, batch=16)
    unet = graph_of(fm.UNetDecoder())
    transposed = next(op for op in ops_of(unet, OpKind.CONV) if dict(op.attrs).get("transposed"))
    assert transposed.gemm == Gemm(m=8 * 8, n=16 * 2 * 2, k=16)  # each input pixel to its 2x2 outputs


def test_a_concatenation_wires_both_inputs_to_its_reader():
    unet = graph_of(fm.UNetDecoder())
    assert sorted(unet.producers("fuse2")) == ["down2.2", "up"]  # torch.cat([up(...), skip2])


def test_batch_norms_fold_but_layer_norms_do_not():
    """A LayerNorm after a linear computes statistics at inference: it must stay."""
    convnext = trace_model(fm.ConvNeXt().eval(), IMAGE, fold_bn=True)
    assert len(ops_of(convnext, OpKind.NORM)) == 4
    mobilenet = trace_model(fm.MobileNetV2().eval(), IMAGE, fold_bn=True)
    assert not ops_of(mobilenet, OpKind.NORM)


def test_public_trace_takes_any_input_shape():
    """A token model on (2, 16, 24) inputs, not images."""
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = nn.MultiheadAttention(24, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attention(x, x, x, need_weights=False)[0]

    graph = al.trace(Tokens(), input_shape=(2, 16, 24))
    assert graph.metadata["input_shape"] == [2, 16, 24] and graph.metadata["batch"] == 2
    logits = ops_of(graph, OpKind.ATTENTION_LOGITS)[0]
    assert logits.gemm == Gemm(m=16, n=16, k=12, batch=2 * 2)
    assert not ops_of(graph, OpKind.GLOBAL_POOL)  # need_weights=False: no averaged weights
    with pytest.raises(InputError, match="input_shape"):
        al.trace(Tokens(), input_shape=(2, 0, 24))


def test_a_failing_shape_is_one_error_naming_the_node():
    class Mismatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) @ torch.ones(7, 2)

    with pytest.raises(InputError, match=r"cannot compute the shapes of fx node .*matmul"):
        trace_model(Mismatch(), 4)


def test_attention_logits_on_the_array_by_hand():
    """SdpaViT's Q K^T (batch 3, M = N = 64, K = 16) on a 16 x 16 os array: per head 4 x 4 folds of
    16 + 16 + 16 - 2 = 46 cycles; then the scale of 3*64*64 logits on 32 lanes in the output path."""
    logits = ops_of(graph_of(fm.SdpaViT()), OpKind.ATTENTION_LOGITS)[0]
    config = with_overrides(load_hardware("paa-default"), array=(16, 16), dataflow="os")
    work = mapping.map_op(logits, config)
    assert work.tiles.compute.sum() == 3 * 16 * 46 + math.ceil(3 * 64 * 64 / 32)
    assert work.useful_macs == 3 * 64 * 64 * 16


def test_a_transcendental_costs_the_exp_cycles_on_the_vector_unit():
    """GELU on 8*8*128 elements: 5 ops each, of which the erf costs exp_cycles = 4: 8 lane-cycles."""
    gelu = next(op for op in ops_of(graph_of(fm.ConvNeXt()), OpKind.ACT) if op.source == "blocks.0.act")
    config = load_hardware("paa-default")
    assert mapping.vector_cycles(gelu, config) == math.ceil(8 * 8 * 128 * (5 + 3) / 32)


def test_simulate_runs_every_foreign_model_under_every_schedule():
    for build in (fm.EncoderViT, fm.UNetDecoder):
        graph = graph_of(build())
        for schedule in ("data", "pipeline", "split"):
            totals = al.simulate(graph, "paa-default", schedule=schedule, cores=2).totals
            assert totals.per_batch.useful_macs == graph.total("macs")


def test_the_cpu_baseline_prices_a_fused_attention_as_one_kernel():
    """scaled_dot_product_attention's three ops share the fused kernel's factors and one launch."""
    graph = graph_of(fm.SdpaViT())
    rows = {row.kind: row for row in predict(graph, load_cpu("cpu-host-default")).rows if row.source == ""
            and row.kind in ("attention_logits", "softmax", "attention_values")}
    cpu = load_cpu("cpu-host-default")
    assert rows["attention_logits"].overhead_s == pytest.approx(cpu.overhead_us["attention"] * 1e-6)
    assert rows["softmax"].overhead_s == rows["attention_values"].overhead_s == 0.0
    assert {factor_key(op) for op in graph.ops_in_order() if op.kind is OpKind.NORM} == {"layer_norm"}
    gelu = next(op for op in ops_of(graph_of(fm.ConvNeXt()), OpKind.ACT) if op.source == "blocks.0.act")
    relu6 = next(op for op in ops_of(graph_of(fm.MobileNetV2()), OpKind.ACT))
    assert (factor_key(gelu), factor_key(relu6)) == ("gelu", "act")  # an erf is not a max


def test_the_cpu_baseline_refuses_what_it_was_not_calibrated_for():
    """Hand-written attention runs as separate kernels (a multiply, matmuls), which no calibration
    network has."""
    with pytest.raises(InputError, match="'attention.mul'.* no fitted factors for elementwise"):
        predict(graph_of(fm.SwinBlock()), load_cpu("cpu-host-default"))
    swin_products = [op for op in graph_of(fm.SwinBlock()).ops_in_order() if op.kind is OpKind.ATTENTION_LOGITS]
    with pytest.raises(InputError, match="no fitted factors for attention_logits"):
        predict(swin_products, load_cpu("cpu-host-default"))
    with pytest.raises(InputError, match="no fitted factors for group_norm"):
        predict(graph_of(fm.UNetDecoder()), load_cpu("cpu-host-default"))
