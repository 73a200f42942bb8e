"""What a simulation returns: one row per op, totals, and how it was made.

:meth:`SimResult.write` puts ``ops.csv`` (one row per op) and ``summary.json``
(totals, resolved hardware, run options, provenance) in a folder, atomically
and byte-for-byte the same for the same inputs (fixed column order, sorted
JSON keys, floats written by ``repr``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from attentionlite.files import json_text, rows_to_csv, write_text_folder
from attentionlite.simulator.accelerator.energy import COMPONENTS, leakage_pj, op_energy
from attentionlite.simulator.accelerator.engine import TaskTiming, Timeline
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import OpWork
from attentionlite.simulator.accelerator.schedules import Task
from attentionlite.simulator.graph.ops import Op


@dataclass(frozen=True)
class OpRow:
    """One op's cost, summed over the cores (and, data-parallel, the images) that ran it.

    Cycle counts are core-cycles; ``utilisation`` is useful MACs over
    ``PEs x (compute + stall)`` (0 for vector-unit ops); ``macs`` counts MACs the
    array performed (masked halo work included), ``skipped_macs`` the dense MACs
    sparse hardware did not perform.
    """

    name: str
    kind: str
    cores: str
    start_cycle: int
    end_cycle: int
    compute_cycles: int
    stall_cycles: int
    utilisation: float
    macs: int
    skipped_macs: int
    vector_ops: int
    sram_read_bytes: int
    sram_write_bytes: int
    dram_read_bytes: int
    dram_write_bytes: int
    energy_mac_pj: float
    energy_vector_pj: float
    energy_sram_pj: float
    energy_dram_pj: float
    energy_leakage_pj: float
    energy_pj: float


@dataclass(frozen=True)
class Totals:
    """The whole run.

    ``cycles`` is the makespan (last store included); ``latency_s`` is one
    image's time through the network (pipeline) or the makespan (data, split);
    ``throughput`` is images per second (steady state for pipeline);
    ``utilisation`` is useful MACs over ``PEs x cores x cycles``;
    ``energy_leakage_pj`` counts every core over the whole makespan, idle or
    not, so it exceeds the sum of the rows' leakage; ``edp`` is J x s.
    """

    cycles: int
    latency_s: float
    throughput: float
    images: int
    utilisation: float
    macs: int
    useful_macs: int
    skipped_macs: int
    vector_ops: int
    compute_cycles: int
    stall_cycles: int
    stall_share: float
    sram_bytes: int
    dram_read_bytes: int
    dram_write_bytes: int
    dram_bytes: int
    energy_mac_pj: float
    energy_vector_pj: float
    energy_sram_pj: float
    energy_dram_pj: float
    energy_leakage_pj: float
    energy_pj: float
    energy_j: float
    edp: float


@dataclass(frozen=True)
class SimResult:
    """Per-op rows, totals, the resolved hardware config, run options and provenance."""

    rows: tuple[OpRow, ...]
    totals: Totals
    hardware: dict
    run: dict
    provenance: dict

    def summary(self) -> dict:
        """What summary.json holds."""
        return {"totals": asdict(self.totals), "hardware": self.hardware, "run": self.run, "provenance": self.provenance}

    def ops_csv(self) -> str:
        return rows_to_csv(asdict(row) for row in self.rows)

    def write(self, out_dir: str | Path) -> Path:
        """Write ops.csv and summary.json into ``out_dir`` (replaced whole, never half-written)."""
        return write_text_folder(out_dir, {"ops.csv": self.ops_csv(), "summary.json": json_text(self.summary())})

    def table(self) -> str:
        """A per-op table and the totals, for the terminal."""
        header = f"{'op':<40} {'kind':<14} {'cores':>5} {'start':>11} {'end':>11} {'compute':>11} {'stall':>9} {'util':>6} {'DRAM B':>11} {'energy uJ':>10}"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                f"{row.name[:40]:<40} {row.kind:<14} {row.cores:>5} {row.start_cycle:>11,} {row.end_cycle:>11,} {row.compute_cycles:>11,} {row.stall_cycles:>9,} "
                f"{row.utilisation:>6.1%} {row.dram_read_bytes + row.dram_write_bytes:>11,} {row.energy_pj / 1e6:>10.3f}"
            )
        return "\n".join(lines + ["", self._totals_text()])

    def _totals_text(self) -> str:
        t = self.totals
        return (
            f"cycles {t.cycles:,}  latency {t.latency_s * 1e3:.4f} ms  throughput {t.throughput:,.1f} images/s  "
            f"utilisation {t.utilisation:.1%}  stall share {t.stall_share:.1%}\n"
            f"DRAM {t.dram_bytes:,} B  energy {t.energy_j * 1e6:.2f} uJ  EDP {t.edp:.3e} J*s"
        )


# ----------------------------------------------------------------------------- from a timeline


def summarise(ops: Sequence[Op], works: Sequence[OpWork], tasks: Sequence[Task], timeline: Timeline, config: HardwareConfig, run: dict, provenance: dict) -> SimResult:
    """Fold the engine's per-task timings into per-op rows and totals."""
    by_op: dict[int, list[int]] = {}
    for task_id, task in enumerate(tasks):
        by_op.setdefault(task.op_index, []).append(task_id)
    rows = tuple(_op_row(ops[i], works[i], [tasks[t] for t in ids], [timeline.tasks[t] for t in ids], config) for i, ids in sorted(by_op.items()))
    batch = int(provenance.get("graph", {}).get("batch", 1) or 1)
    return SimResult(rows, _totals(rows, works, by_op, tasks, timeline, config, run["schedule"], batch), config.to_dict(), run, provenance)


def _op_row(op: Op, work: OpWork, tasks: list[Task], timings: list[TaskTiming], config: HardwareConfig) -> OpRow:
    instances = len({task.image for task in tasks})  # data/pipeline repeat the op per image group
    busy = sum(t.compute + t.stall for t in timings)
    energy = op_energy(work, busy, config)
    scale = {name: getattr(energy, name) * (instances if name != "leakage" else 1) for name in COMPONENTS}
    useful = work.useful_macs * instances
    return OpRow(
        name=op.name,
        kind=op.kind.value,
        cores=_core_list(sorted({task.core for task in tasks})),
        start_cycle=min(t.start for t in timings),
        end_cycle=max(t.end for t in timings),
        compute_cycles=sum(t.compute for t in timings),
        stall_cycles=sum(t.stall for t in timings),
        utilisation=useful / (config.pes * busy) if busy and useful else 0.0,
        macs=work.macs * instances,
        skipped_macs=work.skipped_macs * instances,
        vector_ops=work.vector_ops * instances,
        sram_read_bytes=work.sram_read_bytes * instances,
        sram_write_bytes=work.sram_write_bytes * instances,
        dram_read_bytes=work.dram_read_bytes * instances,
        dram_write_bytes=work.dram_write_bytes * instances,
        **{f"energy_{name}_pj": value for name, value in scale.items()},
        energy_pj=sum(scale.values()),
    )


def _core_list(cores: list[int]) -> str:
    """'0', '0-3' or '0;2': which cores ran an op."""
    if len(cores) > 1 and cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ";".join(str(core) for core in cores)


def _totals(rows: tuple[OpRow, ...], works: Sequence[OpWork], by_op: dict[int, list[int]], tasks: Sequence[Task], timeline: Timeline, config: HardwareConfig, schedule: str, batch: int) -> Totals:
    cycles = timeline.makespan
    seconds = cycles / (config.clock_mhz * 1e6)
    latency_s, throughput = _latency_and_throughput(schedule, timeline, seconds, config, batch)
    useful = sum(works[i].useful_macs * len({tasks[t].image for t in ids}) for i, ids in by_op.items())
    dynamic = {name: sum(getattr(row, f"energy_{name}_pj") for row in rows) for name in COMPONENTS if name != "leakage"}
    energy = {**dynamic, "leakage": leakage_pj(cycles * config.cores, config)}
    compute, stall = sum(r.compute_cycles for r in rows), sum(r.stall_cycles for r in rows)
    dram_read, dram_write = sum(r.dram_read_bytes for r in rows), sum(r.dram_write_bytes for r in rows)
    energy_pj = sum(energy.values())
    return Totals(
        cycles=cycles,
        latency_s=latency_s,
        throughput=throughput,
        images=timeline.images * batch,
        utilisation=useful / (config.pes * config.cores * cycles) if cycles else 0.0,
        macs=sum(r.macs for r in rows),
        useful_macs=useful,
        skipped_macs=sum(r.skipped_macs for r in rows),
        vector_ops=sum(r.vector_ops for r in rows),
        compute_cycles=compute,
        stall_cycles=stall,
        stall_share=stall / (compute + stall) if compute + stall else 0.0,
        sram_bytes=sum(r.sram_read_bytes + r.sram_write_bytes for r in rows),
        dram_read_bytes=dram_read,
        dram_write_bytes=dram_write,
        dram_bytes=dram_read + dram_write,
        **{f"energy_{name}_pj": value for name, value in energy.items()},
        energy_pj=energy_pj,
        energy_j=energy_pj * 1e-12,
        edp=energy_pj * 1e-12 * latency_s,
    )


def _latency_and_throughput(schedule: str, timeline: Timeline, seconds: float, config: HardwareConfig, batch: int) -> tuple[float, float]:
    """One image group's latency and images per second; a pipeline's rate is measured once it is full."""
    clock_hz = config.clock_mhz * 1e6
    ends = sorted(timeline.image_end.values())
    if schedule == "pipeline" and len(ends) > 1 and ends[-1] > ends[0]:
        return timeline.image_end[0] / clock_hz, (len(ends) - 1) * batch * clock_hz / (ends[-1] - ends[0])
    return seconds, timeline.images * batch / seconds if seconds else 0.0
