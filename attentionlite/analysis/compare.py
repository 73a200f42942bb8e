"""One design point, several models: what each costs on the accelerator and the CPU, and where.

The first model is the reference (the CNN teacher the students replace); every
other model gets its speed-up (reference latency / its latency), its energy
saving (reference energy / its energy) and its EDP gain over it.  With a CPU
config, each model also gets the accelerator's speed-up over the CPU (CPU
latency / accelerator latency).  The CPU model predicts time, not energy, so
there is no energy ratio against the CPU.

Exploiting sparsity is a hardware choice (``sparsity`` none, skip, columns);
:func:`add_sparsity_gains` sets a run beside the same models on dense hardware
to show what the students' pruning buys.

The op-kind breakdown sums each op's busy cycles (compute plus stall) into six
groups a reader can act on: the three parts of local attention that run on the
array (query/key/value *projections*, *window logits*, *weighted sum*), the
*softmax* on the vector unit, *convolution* (the teacher, the hybrid stem), and
*other* (classifier, pooling, normalisation, residual adds, activations).  A
group's utilisation is its useful MACs over its busy PE-cycles: how well that
kind of work fills the array (0 for vector-unit work such as softmax).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from attentionlite.analysis.models import trace_models
from attentionlite.analysis.sweep import result_columns
from attentionlite.defaults import DEFAULT_DENSITY, DEFAULT_MASK_SEED
from attentionlite.files import rows_to_csv, write_text_folder
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.results import OpRow, SimResult
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.cpu.config import CpuConfig
from attentionlite.simulator.cpu.roofline import predict
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import OpKind
from attentionlite.simulator.graph.targets import Target

KIND_GROUPS: dict[OpKind, str] = {
    OpKind.PROJECTION: "projections",
    OpKind.WINDOW_LOGITS: "window logits",
    OpKind.SOFTMAX: "softmax",
    OpKind.WEIGHTED_SUM: "weighted sum",
    OpKind.ATTENTION_LOGITS: "global attention",
    OpKind.ATTENTION_VALUES: "global attention",
    OpKind.MATMUL: "global attention",
    OpKind.CONV: "convolution",
    OpKind.LINEAR: "linear",  # a CNN's classifier; a ViT's projections and MLPs
    OpKind.POOL: "other",
    OpKind.GLOBAL_POOL: "other",
    OpKind.NORM: "other",
    OpKind.ADD: "other",
    OpKind.ELEMENTWISE: "other",
    OpKind.ACT: "other",
    OpKind.RESAMPLE: "other",
}
GROUPS = ("projections", "window logits", "softmax", "weighted sum", "global attention", "convolution", "linear",
          "other")


def model_row(model: str, result: SimResult, cpu_latency_s: float | None = None) -> dict:
    """One model's totals per image at one design point, with its CPU latency when there is one."""
    row = {"model": model, **result_columns(result)}
    if cpu_latency_s is not None:
        row["cpu_latency_s"] = cpu_latency_s
        row["speedup_vs_cpu"] = cpu_latency_s / row["latency_s"]
    return row


def add_reference_ratios(rows: Sequence[Mapping]) -> list[dict]:
    """Each row with its speed-up, energy saving and EDP gain over the first row (the teacher)."""
    reference = rows[0]
    return [
        {
            **row,
            "speedup_vs_teacher": reference["latency_s"] / row["latency_s"],
            "energy_saving_vs_teacher": reference["energy_per_image_j"] / row["energy_per_image_j"],
            "edp_gain_vs_teacher": reference["edp_per_image"] / row["edp_per_image"],
        }
        for row in rows
    ]


def add_sparsity_gains(rows: Sequence[Mapping], dense_rows: Sequence[Mapping]) -> list[dict]:
    """Each row with what exploiting sparsity buys: the same model on dense hardware over this run."""
    return [
        {
            **row,
            "dense_hw_latency_s": dense["latency_s"],
            "speedup_from_sparsity": dense["latency_s"] / row["latency_s"],
            "energy_saving_from_sparsity": dense["energy_per_image_j"] / row["energy_per_image_j"],
        }
        for row, dense in zip(rows, dense_rows)
    ]


def kind_breakdown(model: str, op_rows: Sequence[OpRow]) -> list[dict]:
    """Busy cycles, their share, MACs and array utilisation per op-kind group, in :data:`GROUPS` order.

    ``op_rows`` are a simulation's per-op rows; busy cycles are compute plus
    stall cycles summed over cores, and a group's utilisation is the
    busy-cycle-weighted mean of its ops' (useful MACs over PE-cycles).
    """
    busy, macs = dict.fromkeys(GROUPS, 0), dict.fromkeys(GROUPS, 0)
    weighted = dict.fromkeys(GROUPS, 0.0)
    for op in op_rows:
        group = KIND_GROUPS[OpKind(op.kind)]
        cycles = op.compute_cycles + op.stall_cycles
        busy[group] += cycles
        weighted[group] += op.utilisation * cycles
        macs[group] += op.macs
    total = sum(busy.values())
    return [
        {
            "model": model,
            "group": group,
            "busy_cycles": busy[group],
            "share": busy[group] / total if total else 0.0,
            "macs": macs[group],
            "utilisation": weighted[group] / busy[group] if busy[group] else 0.0,
        }
        for group in GROUPS
    ]


def compare(
    graphs: Mapping[str, OpGraph], config: HardwareConfig, cpu_latencies: Mapping[str, float] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Simulate every model on ``config``: (one row per model, breakdown rows per model and group).

    ``cpu_latencies`` are each model's CPU latency, when there is a CPU to compare with.
    """
    return compare_results({model: simulate(graph, config) for model, graph in graphs.items()}, cpu_latencies)


def compare_results(results: Mapping[str, SimResult], cpu_latencies: Mapping[str, float] | None = None,
                    ) -> tuple[list[dict], list[dict]]:
    """:func:`compare`'s rows and breakdown from each model's simulation at the design point."""
    rows, breakdown = [], []
    for model, result in results.items():
        rows.append(model_row(model, result, (cpu_latencies or {}).get(model)))
        breakdown.extend(kind_breakdown(model, result.rows))
    return add_reference_ratios(rows), breakdown


def compare_targets(
    targets: Sequence[Target], config: HardwareConfig, cpu: CpuConfig | None = None,
    density: float = DEFAULT_DENSITY, seed: int = DEFAULT_MASK_SEED,
) -> tuple[list[dict], list[dict]]:
    """Trace the models (the first dense, the rest at ``density``), then :func:`compare` them.

    With a ``cpu``, each row also carries the CPU's predicted latency.
    """
    _, graphs = trace_models(targets, density, seed)
    latencies = None if cpu is None else {label: predict(graph, cpu).latency_s for label, graph in graphs.items()}
    return compare(graphs, config, latencies)


def write_comparison(rows: Sequence[Mapping], breakdown: Sequence[Mapping], out_dir: str | Path) -> None:
    """``compare.csv`` and ``breakdown.csv`` in ``out_dir``, written atomically as one folder."""
    write_text_folder(out_dir, {"compare.csv": rows_to_csv(rows), "breakdown.csv": rows_to_csv(breakdown)})
