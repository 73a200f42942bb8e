"""From a student's MAC ratio to its latency ratio against the teacher: where the savings go.

A model's cycles per batch are built up step by step, each step adding one
kind of cost to the one before (:data:`LEVELS`, on one core's array of ``P``
PEs):

1. ``dense MACs``: the graph's MACs over P, every PE busy every cycle;
2. ``sparsity``: less the MACs sparse hardware skipped;
3. ``mapping``: the folds' streamed cycles, ``macs / (mapping efficiency x P)``
   per array op (PEs a fold leaves empty, and the masked halo work of window
   ops, which the array performs too);
4. ``fill and drain``: the array ops' compute cycles (the skew, drain and
   stationary preload of each fold);
5. ``vector work``: plus the vector unit's compute cycles (softmax, activations,
   pooling, adds);
6. ``memory stalls``: plus every op's stall cycles (data late from DRAM, a full
   output half);
7. ``overlap and gaps``: the batch's latency in cycles (an op waiting for
   another, work of one op overlapping another's).

The teacher's level over the student's is a ratio; the first is the MAC ratio,
the last the latency ratio, and each step's factor is its ratio over the one
before, so the factors multiply from one to the other exactly.  A factor below
1 is a step that costs the student more than the teacher, relatively: the
step the hardware loses the student's savings in.  The order of the steps
is a choice (stated in the report); a different order would share the same
product out differently.

Defined for accelerators of one kind of core (P is one core's PEs); an
accelerator with core groups has no single P, and gets no waterfall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.results import SimResult
from attentionlite.simulator.graph.graph import OpGraph

LEVELS = ("dense MACs", "sparsity", "mapping", "fill and drain", "vector work", "memory stalls", "overlap and gaps")


def cycle_levels(graph: OpGraph, result: SimResult, config: HardwareConfig) -> tuple[float, ...]:
    """One model's cycles per batch at each of :data:`LEVELS`, from ``result`` (a simulation of ``graph`` on
    ``config``)."""
    pes, rows = config.pes, result.rows
    on_array = [row for row in rows if row.macs]
    dense = graph.total("macs") / pes
    performed = dense - sum(row.skipped_macs for row in rows) / pes
    streamed = sum(row.macs / (row.mapping_efficiency * pes) for row in on_array)
    array = float(sum(row.compute_cycles for row in on_array))
    vector = array + sum(row.compute_cycles for row in rows if not row.macs)
    stalled = vector + sum(row.stall_cycles for row in rows)
    latency = result.totals.latency_s * config.clock_mhz * 1e6
    return (dense, performed, streamed, array, vector, stalled, latency)


def waterfall_rows(levels: Mapping[str, Sequence[float]]) -> list[dict]:
    """Per student (every model after the first, the teacher): its MAC ratio, each step's factor and the
    latency ratio, the teacher's level over the student's at each step."""
    teacher, *students = levels
    rows = []
    for student in students:
        ratios = [t / s for t, s in zip(levels[teacher], levels[student])]
        steps = {step: after / before for step, before, after in zip(LEVELS[1:], ratios, ratios[1:])}
        rows.append({"model": student, "mac_ratio": ratios[0], **steps, "latency_ratio": ratios[-1]})
    return rows


def has_waterfall(config: HardwareConfig) -> bool:
    """Whether :func:`cycle_levels` is defined on ``config``: one kind of core, one P."""
    return not config.groups
