"""How long tracing takes: every registered model at 32 px, 10 classes, batch 1.

    python benchmarks/trace_speed.py             # full width
    python benchmarks/trace_speed.py --width 0.25

Builds each model first (not timed), then times ``trace_model`` alone: torch.fx
tracing, the meta-tensor shape pass and the lowering into an OpGraph.  The
first trace in a process also pays one-off imports; it is timed separately.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attentionlite.model.nets.zoo import create_model, list_models  # noqa: E402
from attentionlite.simulator.graph.tracing import trace_model  # noqa: E402

IMAGE_SIZE = 32


def time_trace(name: str, width: float) -> tuple[float, int, int]:
    """Seconds to trace one model, its op count and its MACs."""
    model = create_model(name, image_size=IMAGE_SIZE, width=width)
    start = time.perf_counter()
    graph = trace_model(model, IMAGE_SIZE)
    return time.perf_counter() - start, len(graph), graph.total("macs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    width = parser.parse_args().width
    warm_up, _, _ = time_trace("resnet26", width)
    print(f"first trace in the process (resnet26, one-off imports): {warm_up:.3f} s")
    print(f"{'model':<20} {'ops':>5} {'GMACs':>8} {'trace s':>8}")
    total = 0.0
    for name in list_models():
        seconds, ops, macs = time_trace(name, width)
        total += seconds
        print(f"{name:<20} {ops:>5} {macs / 1e9:>8.3f} {seconds:>8.3f}")
    print(f"{'all ' + str(len(list_models())) + ' models':<20} {'':>5} {'':>8} {total:>8.3f}")


if __name__ == "__main__":
    main()
