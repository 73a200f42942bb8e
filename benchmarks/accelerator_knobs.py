"""What each accelerator knob buys the teacher and the students (issue 15's table).

The teacher (resnet50, dense) and both students (sasa26 hybrid and homogeneous at 10% weight density,
their initial masks) on ``paa-default`` with weight zero-skipping (the report's default), batch 1:
latency, energy, area, DRAM bytes, compute and stall cycles with the defaults (folds one after another, as SCALE-Sim runs
them; zero-skipping in lockstep), then with each knob changed in turn, then the four that fuse and pipeline
work together; and, with the students given 1:8 N:M masks (12.5% density) instead, zero-skipping against
N:M hardware.  Beside each student's latency ratio against the teacher stands its MAC
ratio (the teacher's MACs over the student's without its zero weights' work, a property of the models,
not of the hardware): what a design that turned every saved MAC into saved time would reach.  Every number is simulated; nothing is timed, so the machine's load does not
matter.

    python benchmarks/accelerator_knobs.py [--hardware paa-default]
"""

from __future__ import annotations

import argparse

from attentionlite import api
from attentionlite.defaults import DEFAULT_DENSITY
from attentionlite.model.nets.zoo import create_model
from attentionlite.model.training.sparsity import apply_masks, initial_masks
from attentionlite.simulator.graph.tracing import trace_model

MODELS = ("resnet50", "sasa26_hybrid", "sasa26_homogeneous")
FUSED = {"attention.fused": True}
KNOBS: dict[str, dict] = {
    "defaults (folds not overlapped, lockstep skip)": {},
    "array.overlap_folds": {"array.overlap_folds": True},
    "attention.fused": FUSED,
    "attention.fused + vector.overlaps_array": FUSED | {"vector.overlaps_array": True},
    "array.fuse_post_ops": {"array.fuse_post_ops": True},
    "all four above": FUSED | {"vector.overlaps_array": True, "array.fuse_post_ops": True, "array.overlap_folds": True},
    "sparsity.lockstep = false (idealised)": {"sparsity.lockstep": False},
    "precision.weight_bits = 4": {"precision.weight_bits": 4},
    "precision.softmax_bits = 16": {"precision.softmax_bits": 16},
}
NM_BLOCK, NM_DENSITY = 8, 0.125  # the students' N:M masks: 1:8
NM_KNOBS: dict[str, dict] = {
    "1:8 students, sparsity = skip (lockstep)": {"sparsity": "skip"},
    "1:8 students, sparsity = nm": {"sparsity": "nm"},
    "1:8 students, sparsity = nm + the four": {"sparsity": "nm"} | FUSED | {
        "vector.overlaps_array": True, "array.fuse_post_ops": True, "array.overlap_folds": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hardware", default="paa-default", help="accelerator preset or TOML")
    args = parser.parse_args()
    graphs = {name: api.trace(name, density=1.0 if name == MODELS[0] else DEFAULT_DENSITY) for name in MODELS}
    work = {name: nonzero_macs(graph) for name, graph in graphs.items()}
    print("| knob | model | latency (ms) | energy (uJ) | area (mm^2) | DRAM (MB) | compute cycles | stall cycles "
          "| latency ratio vs teacher | MAC ratio vs teacher |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for knob, overrides in KNOBS.items():
        print_rows(knob, graphs, work, args.hardware, {"sparsity": "skip"} | overrides)
    # N:M hardware needs N:M students: the same students with 1:8 initial masks instead
    nm_graphs = {name: n_of_m_graph(name) if name != MODELS[0] else graph for name, graph in graphs.items()}
    nm_work = {name: nonzero_macs(graph) for name, graph in nm_graphs.items()}
    for knob, overrides in NM_KNOBS.items():
        print_rows(knob, nm_graphs, nm_work, args.hardware, overrides)


def print_rows(knob: str, graphs: dict, work: dict, hardware: str, overrides: dict) -> None:
    results = {name: api.simulate(graph, hardware, **overrides) for name, graph in graphs.items()}
    teacher = results[MODELS[0]].totals
    for name, result in results.items():
        totals, cost = result.totals, result.totals.per_image
        print(f"| {knob} | {name} | {totals.latency_s * 1e3:.3f} | {cost.energy_j * 1e6:,.1f} "
              f"| {totals.area_mm2:.3f} | {cost.dram_bytes / 1e6:.2f} "
              f"| {cost.compute_cycles:,.0f} | {cost.stall_cycles:,.0f} "
              f"| {teacher.latency_s / totals.latency_s:.2f} "
              f"| {work[MODELS[0]] / work[name]:.2f} |")


def n_of_m_graph(name: str):
    """A student with N:M initial masks (1 of every 8 weights along each row kept)."""
    model = create_model(name, num_classes=10, image_size=32)
    masks = initial_masks(model, NM_DENSITY, mode="nm", block=NM_BLOCK)
    apply_masks(model, masks)
    return trace_model(model, 32, masks=masks, prune_mode="nm", nm_block=NM_BLOCK,
                       metadata={"model": name})


def nonzero_macs(graph) -> float:
    """MACs per image without the zero weights' work: a weight op's MACs times its weight density."""
    total = sum(op.macs * (op.weight_density if op.weight_params else 1.0) for op in graph.ops_in_order())
    return total / int(graph.metadata.get("batch", 1) or 1)


if __name__ == "__main__":
    main()
