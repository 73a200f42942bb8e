"""CIFAR ResNet-50 teacher as a SCALE-Sim topology, and its reference run.

    python3 benchmarks/scalesim_resnet50.py topology   # writes benchmarks/topologies/resnet50_cifar.csv
    python3 benchmarks/scalesim_resnet50.py run        # runs SCALE-Sim (32x32, os, CALC), writes
                                                       # tests/simulator/accelerator/golden/scalesim_resnet50_32x32_os.json

Teacher: 3x3 stem conv (64, stride 1, no max-pool) at 32x32; bottleneck blocks
[3, 4, 6, 3], widths 64..512, expansion 4; stride 2 on the 3x3 conv of the first
block of stages 2-4 and on its 1x1 projection shortcut; FC 2048 -> 10 (M=1 GEMM).

Conv ifmap sizes are what the layer reads: (Ho - 1) * stride + R, i.e. the
input plus the padding rows/cols PyTorch actually touches. SCALE-Sim computes
Ho = ceil((H - R + stride) / stride), which for a stride-2 layer over the full
padded input (34 for 32 + 2) would give 17, not PyTorch's 16; the trimmed size
(33; 31 for the 1x1 stride-2 shortcut) gives 16. The FC is written as the conv
row SCALE-Sim's own GEMM loader makes of M=1, N=10, K=2048:
ifmap 1 x 2048, filter 1 x 2048, 1 channel, 10 filters.
Batch-norm, ReLU, residual adds and pooling are not MAC-array work and are left out.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scalesim_runner import (  # noqa: E402
    ArrayConfig,
    ConvLayer,
    formula_cycles,
    layer_spec,
    read_topology,
    run_scalesim,
    write_topology,
)

TOPOLOGY = ROOT / "benchmarks" / "topologies" / "resnet50_cifar.csv"
GOLDEN = ROOT / "tests" / "simulator" / "accelerator" / "golden" / "scalesim_resnet50_32x32_os.json"


def _conv(name, h_in, k, c_in, c_out, stride, pad):
    h_out = (h_in + 2 * pad - k) // stride + 1  # PyTorch
    h_eff = (h_out - 1) * stride + k            # rows actually read, padding included
    layer = ConvLayer(name, h_eff, h_eff, k, k, c_in, c_out, stride)
    assert layer.ofmap_h == h_out, (name, layer.ofmap_h, h_out)
    return layer, h_out


def resnet50_cifar_layers(image_size: int = 32, num_classes: int = 10) -> list[ConvLayer]:
    layers = []
    stem, h = _conv("stem_conv3x3", image_size, 3, 3, 64, 1, 1)
    layers.append(stem)
    c_in = 64
    for si, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512]), start=1):
        for bi in range(blocks):
            stride = 2 if (si > 1 and bi == 0) else 1
            p = f"s{si}b{bi}"
            l1, h1 = _conv(f"{p}_conv1_1x1", h, 1, c_in, width, 1, 0)
            l2, h2 = _conv(f"{p}_conv2_3x3", h1, 3, width, width, stride, 1)
            l3, h3 = _conv(f"{p}_conv3_1x1", h2, 1, width, width * 4, 1, 0)
            layers += [l1, l2, l3]
            if bi == 0:
                sc, hs = _conv(f"{p}_shortcut_1x1", h, 1, c_in, width * 4, stride, 0)
                assert hs == h3
                layers.append(sc)
            c_in, h = width * 4, h3
    # FC as SCALE-Sim's GEMM loader maps M=1, N=num_classes, K=c_in.
    layers.append(ConvLayer("fc", 1, c_in, 1, c_in, 1, num_classes, 1))
    return layers


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else "topology"
    layers = resnet50_cifar_layers()
    TOPOLOGY.parent.mkdir(parents=True, exist_ok=True)
    write_topology(layers, TOPOLOGY)
    assert read_topology(TOPOLOGY) == layers
    macs = sum(m * n * k for m, n, k in (layer.gemm_mnk() for layer in layers))
    print(f"{len(layers)} layers, {macs / 1e9:.4f} GMACs -> {TOPOLOGY}")
    if cmd == "topology":
        return 0
    if cmd != "run":
        print(__doc__)
        return 2
    cfg = ArrayConfig(32, 32, "os")
    t0 = time.time()
    res = run_scalesim(layers, cfg, nice=10)
    rows = []
    for layer, rep in zip(layers, res.layers):
        m, n, k = layer.gemm_mnk()
        rows.append({"layer": layer_spec(layer), **{k2: rep[k2] for k2 in (
            "total_cycles", "stall_cycles", "compute_cycles", "total_cycles_incl_prefetch",
            "overall_util_pct", "mapping_efficiency_pct", "compute_util_pct",
            "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes",
            "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes")},
            "formula_compute_cycles": formula_cycles(m, n, k, 32, 32, "os")})
    doc = {
        "model": "resnet50 CIFAR teacher (3x3 stem, no max-pool, [3,4,6,3] bottlenecks, FC 2048->10)",
        "image_size": 32,
        "scalesim_version": res.scalesim_version,
        "array": {"rows": 32, "cols": 32},
        "dataflow": "os",
        "bandwidth_mode": "CALC",
        "config": res.config,
        "config_text": res.config_text,
        "topology_csv": "benchmarks/topologies/resnet50_cifar.csv",
        "num_layers": len(layers),
        "macs": macs,
        "totals": res.totals(),
        "wall_s": round(res.wall_s, 1),
        "sim_s": round(res.sim_s, 1),
        "run_conditions": {
            "host_cpus": __import__("os").cpu_count(),
            "nice": 10,
            "python": platform.python_version(),
            "note": "shared 2-core machine with other jobs running; wall time is indicative",
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        },
        "layers": rows,
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    out = Path(argv[1]) if len(argv) > 1 else GOLDEN
    out.write_text(json.dumps(doc, indent=1) + "\n")
    bad = [r["layer"]["name"] for r in rows if r["compute_cycles"] != r["formula_compute_cycles"]]
    print(f"wrote {out}: total {doc['totals']['total_cycles']} cycles, wall {res.wall_s:.0f}s, "
          f"formula mismatches: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
