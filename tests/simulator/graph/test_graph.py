"""OpGraph container, JSON/GraphML files and SCALE-Sim topology readers (no torch needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attentionlite.errors import InputError
from attentionlite.simulator.graph.formats import load_graph, save_graph
from attentionlite.simulator.graph.graph import OpGraph, fold_batch_norms, op_table
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind, Window
from attentionlite.simulator.graph.topology import read_scalesim_conv, read_scalesim_gemm


def _chain() -> OpGraph:
    """conv (1x3x8x8 -> 1x4x8x8, 3x3) -> norm -> relu, and a window-logits op reading the relu."""
    graph = OpGraph({"model": "toy", "arch": {"width": 0.5}})
    conv = Op("conv", OpKind.CONV, ((1, 3, 8, 8),), (1, 4, 8, 8), macs=64 * 4 * 27, gemm=Gemm(64, 4, 27),
              weight_params=108, weight_nonzero=11, columns_total=27, columns_kept=5, source="conv",
              attrs=(("kernel_h", 3), ("mode", "x"), ("ratio", 0.5)))
    norm = Op("bn", OpKind.NORM, ((1, 4, 8, 8),), (1, 4, 8, 8), vector_ops=512, source="bn")
    relu = Op("relu", OpKind.ACT, ((1, 4, 8, 8),), (1, 4, 8, 8), vector_ops=256, source="relu")
    window = Window(images=1, height=8, width=8, kernel=3, heads=2, head_channels=2)
    logits = Op("attn.logits", OpKind.WINDOW_LOGITS, ((1, 4, 8, 8),) * 2, (1, 2, 9, 8, 8), macs=9, window=window)
    graph.add_op(conv)
    graph.add_op(norm, [("conv", (1, 4, 8, 8))])
    graph.add_op(relu, [("bn", (1, 4, 8, 8))])
    graph.add_op(logits, [("relu", (1, 4, 8, 8))])
    return graph


def test_ops_in_order_follow_every_edge():
    graph = _chain()
    order = [op.name for op in graph.ops_in_order()]
    assert order == ["conv", "bn", "relu", "attn.logits"]
    assert all(order.index(a) < order.index(b) for a, b, _ in graph.edges())


def test_total_sums_fields_and_rejects_unknown_ones():
    graph = _chain()
    assert graph.total("macs") == 64 * 4 * 27 + 9
    assert graph.total("vector_ops") == 512 + 256
    assert graph.total("weight_nonzero") == 11
    assert graph.total("output_elements") == 3 * 256 + 2 * 9 * 64
    with pytest.raises(InputError, match="'flops'"):
        graph.total("flops")


def test_fold_batch_norms_merges_norm_into_conv():
    graph = fold_batch_norms(_chain())
    assert [op.name for op in graph.ops_in_order()] == ["conv", "relu", "attn.logits"]
    assert graph.producers("relu") == ["conv"]
    assert ("folded_norm", "bn") in graph.op("conv").attrs


@pytest.mark.parametrize("suffix", ["json", "graphml"])
def test_round_trip_is_equal(tmp_path, suffix):
    graph = _chain()
    path = save_graph(graph, tmp_path / f"graph.{suffix}")
    loaded = load_graph(path)
    assert loaded == graph
    assert loaded.op("conv").gemm == Gemm(64, 4, 27)
    assert loaded.op("attn.logits").window.heads == 2
    assert loaded.edges() == graph.edges()


def test_same_graph_same_bytes(tmp_path):
    first, second = save_graph(_chain(), tmp_path / "a.json"), save_graph(_chain(), tmp_path / "b.json")
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("g.json", "{not json", "not a JSON op graph"),
        ("g.json", '{"format": "other"}', "expected 'attentionlite-opgraph'"),
        ("g.json", '{"format": "attentionlite-opgraph", "version": 9}', "version 9"),
        ("g.json", '{"format": "attentionlite-opgraph", "version": 1, "metadata": {}, "ops": [{"name": "a"}]}', "malformed"),
        ("g.graphml", "<graphml", "not a GraphML op graph"),
        ("g.txt", "", "unknown graph file suffix"),
    ],
)
def test_bad_graph_files_are_one_line_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_graph(path)


def test_missing_graph_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_graph(tmp_path / "absent.json")


def test_op_table_has_a_row_per_op_and_totals():
    table = op_table(_chain(), word_bytes=2).splitlines()
    assert len(table) == 2 + 4 + 2
    assert table[-1].split()[:3] == ["total", "(4", "ops)"]
    # conv row: bytes in = 3*8*8 elements * 2 bytes, bytes out = 4*8*8 * 2.
    assert table[2].split()[-2:] == ["384", "512"]


CONV_CSV = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 34, 34, 3, 3, 3, 64, 1,
Conv2, 18, 18, 3, 3, 64, 128, 2,
FC, 1, 1, 1, 1, 2048, 10, 1,
"""


def test_scalesim_conv_topology(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text(CONV_CSV)
    graph = read_scalesim_conv(path)
    ops = graph.ops_in_order()
    # The IFMAP includes padding: 34 - 3 + 1 = 32 rows; (18 - 3) // 2 + 1 = 8 rows.
    assert [op.gemm for op in ops] == [Gemm(32 * 32, 64, 27), Gemm(8 * 8, 128, 576), Gemm(1, 10, 2048)]
    assert ops[1].output_shape == (1, 128, 8, 8)
    assert ops[0].macs == 32 * 32 * 64 * 27
    assert graph.producers("Conv2") == ["Conv1"]
    assert load_graph(path) == graph


def test_scalesim_gemm_topology(tmp_path):
    path = tmp_path / "gemms.csv"
    path.write_text("Layer, M, N, K,\nqk, 128, 64, 256,\nav, 64, 32, 128,\n")
    ops = read_scalesim_gemm(path).ops_in_order()
    assert [(op.name, op.gemm) for op in ops] == [("qk", Gemm(128, 64, 256)), ("av", Gemm(64, 32, 128))]
    assert ops[0].macs == 128 * 64 * 256
    assert ops[0].weight_params == 256 * 64


@pytest.mark.parametrize(
    "text, message",
    [
        ("Layer, M, N, K,\nfc, 12, x, 4,\n", r"gemms.csv:2: column 'n' is 'x'"),
        ("Layer, M, N, Q,\nfc, 1, 2, 3,\n", "unknown column 'q'"),
        ("Layer, M, N, K,\n", "no layers"),
        ("Layer, M, N, K,\nfc, 1, 2, 3,\nfc, 1, 2, 3,\n", "appears twice"),
    ],
)
def test_bad_scalesim_files(tmp_path, text, message):
    path = tmp_path / "gemms.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_graph(path)


def test_conv_reader_rejects_a_gemm_file(tmp_path):
    path = tmp_path / "gemms.csv"
    path.write_text("Layer, M, N, K,\nfc, 1, 2, 3,\n")
    with pytest.raises(InputError, match="expected conv"):
        read_scalesim_conv(path)


def test_loading_a_saved_graph_does_not_import_torch(tmp_path):
    """The simulator's CLI must start fast on a saved graph or a topology file."""
    save_graph(_chain(), tmp_path / "graph.json")
    (tmp_path / "net.csv").write_text(CONV_CSV)
    code = (
        "import sys; from attentionlite.simulator.graph.formats import load_graph; "
        f"load_graph({str(tmp_path / 'graph.json')!r}); load_graph({str(tmp_path / 'net.csv')!r}); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
