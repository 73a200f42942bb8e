"""How fast the simulator is: a whole network at one design point, and SCALE-Sim side by side.

    python benchmarks/sim_speed.py                              # ResNet-50 (CIFAR), 32x32, os
    python benchmarks/sim_speed.py --scalesim-layers 8          # SCALE-Sim on the first 8 layers only
    python benchmarks/sim_speed.py --scalesim-layers 0          # skip SCALE-Sim

Both tools get the same topology CSV, array and dataflow, one core each, in
one run.  SCALE-Sim runs in its own virtual environment (see
benchmarks/scalesim_runner.py) in CALC (ideal-bandwidth) mode; AttentionLite
runs the same layers through the full engine (tiles, DRAM channel, energy).
The table gives wall times, the speed-up, and both tools' compute cycles,
which must agree exactly (SCALE-Sim prints the last cycle's 0-based index,
one less than the duration, per layer).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attentionlite.simulator.accelerator.hardware import load_hardware, parse_array  # noqa: E402
from attentionlite.simulator.accelerator.simulation import simulate  # noqa: E402
from attentionlite.simulator.graph.formats import load_graph  # noqa: E402
from benchmarks.scalesim_runner import ArrayConfig, ScaleSimUnavailable, read_topology, run_scalesim  # noqa: E402

DEFAULT_TOPOLOGY = ROOT / "benchmarks" / "topologies" / "resnet50_cifar.csv"


def time_attentionlite(ops, config, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` whole simulations (one process, one thread)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = simulate(ops, config)
        best = min(best, time.perf_counter() - start)
    return best, result


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    parser.add_argument("--array", default="32x32")
    parser.add_argument("--dataflow", default="os", choices=("os", "ws", "is"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scalesim-layers", type=int, default=None, help="first N layers for SCALE-Sim (default all; 0 skips it)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    graph = load_graph(args.topology)
    ops = graph.ops_in_order()
    config = load_hardware("paa-default", array=parse_array(args.array), dataflow=args.dataflow, cores=1)
    whole_s, whole = time_attentionlite(ops, config, args.repeats)
    print(f"AttentionLite: {args.topology.name}, {len(ops)} ops, {args.array} {args.dataflow}, 1 core: "
          f"{whole_s:.3f} s (best of {args.repeats}); {whole.totals.cycles:,} cycles, {whole.totals.per_batch.stall_cycles:,.0f} stall")

    count = len(ops) if args.scalesim_layers is None else args.scalesim_layers
    if count == 0:
        return 0
    layers = read_topology(args.topology)[:count]
    rows, cols = parse_array(args.array)
    try:
        reference = run_scalesim(layers, ArrayConfig(rows, cols, args.dataflow))
    except ScaleSimUnavailable as error:
        print(f"SCALE-Sim not run: {error}")
        return 1
    ours_s, ours = time_attentionlite(ops[:count], config, args.repeats)
    ours_compute = sum(row.compute_cycles for row in ours.rows)
    scalesim_compute = sum(layer["compute_cycles"] + 1 for layer in reference.layers)  # last-cycle index -> duration
    print_table([
        ("tool", "layers", "wall s", "compute cycles", "speed-up"),
        ("SCALE-Sim 3.0.0 (CALC)", str(count), f"{reference.wall_s:.2f}", f"{scalesim_compute:,}", "1x"),
        ("AttentionLite", str(count), f"{ours_s:.4f}", f"{ours_compute:,}", f"{reference.wall_s / ours_s:,.0f}x"),
    ])
    agree = ours_compute == scalesim_compute
    print(f"compute cycles {'agree exactly' if agree else 'DIFFER'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
