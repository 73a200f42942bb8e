"""What a simulation returns: one row per op, totals per batch and per image, and how it was made.

A schedule simulates several *batches* (image groups of the graph's batch
size): one per core under ``data``, :data:`PIPELINE_BATCHES_PER_STAGE` per stage
under ``pipeline``, one under ``split``.  Every batch does the same work, so
rows and totals are given for one batch (and, divided by the batch size, one
image); only the timing (makespan, latency, throughput) is of the whole run.

:meth:`SimResult.write` puts, in one folder, atomically and byte-for-byte the
same for the same inputs:

* ``ops.csv``: one row per op (one batch's cost), DRAM and SRAM bytes by operand;
* ``COMPUTE_REPORT.csv`` and ``BANDWIDTH_REPORT.csv``: SCALE-Sim's per-layer
  reports (folds, compute and stall cycles, mapping efficiency, utilisation;
  average and peak DRAM bandwidth per operand), in bytes where SCALE-Sim counts
  words;
* ``summary.json``: totals, resolved hardware, run options, provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from attentionlite.files import json_text, rows_to_csv, write_text_folder
from attentionlite.simulator.accelerator.area import accelerator_area
from attentionlite.simulator.accelerator.energy import COMPONENTS, Energy, leakage_pj, op_energy, sram_pj_per_byte
from attentionlite.simulator.accelerator.engine import Timeline
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import OpWork, Traffic
from attentionlite.simulator.accelerator.schedules import Task
from attentionlite.simulator.graph.ops import Op


@dataclass(frozen=True)
class OpRow:
    """One op's cost for one batch.

    Cycle counts are core-cycles (summed over the cores a split op runs on);
    ``stall_cycles`` is the mean over the batches simulated (DRAM contention
    differs between them); ``start_cycle`` and ``end_cycle`` span every batch.
    ``utilisation`` is useful MACs over ``PEs x (compute + stall)`` (0 for
    vector-unit ops); ``macs`` counts MACs the array performed (masked halo work
    included), ``skipped_macs`` the dense MACs sparse hardware did not perform.
    ``traffic`` is in bytes by operand (see
    :class:`~attentionlite.simulator.accelerator.memory.Traffic`);
    ``active_cycles`` is the mean span from a batch's first transfer or compute
    of the op to its last, over which average bandwidths are taken.
    ``energy`` is the op's dynamic energy plus the leakage of its cores over
    its busy cycles; the totals charge leakage over the run's whole time per
    batch instead (idle cores and gaps included), so the rows' energies do not
    add up to the total.
    """

    name: str
    kind: str
    cores: str
    start_cycle: int
    end_cycle: int
    folds: int
    compute_cycles: int
    stall_cycles: int
    active_cycles: float
    mapping_efficiency: float
    utilisation: float
    macs: int
    skipped_macs: int
    vector_ops: int
    traffic: Traffic
    peak_bandwidth: dict[str, float]
    energy: Energy

    @property
    def dram_read_bytes(self) -> float:
        return self.traffic.dram_read

    @property
    def dram_write_bytes(self) -> float:
        return self.traffic.dram_write

    @property
    def sram_read_bytes(self) -> float:
        return self.traffic.sram_read

    @property
    def sram_write_bytes(self) -> float:
        return self.traffic.sram_write

    def as_dict(self) -> dict:
        """The row flattened for ``ops.csv``: bytes by operand and totals, energy by component."""
        plain = {name: value for name, value in asdict(self).items()
                 if name not in ("traffic", "peak_bandwidth", "energy")}
        traffic = {f"{name}_bytes": value for name, value in self.traffic.rounded().items()}
        sums = {"dram_read_bytes": round(self.dram_read_bytes), "dram_write_bytes": round(self.dram_write_bytes),
                "sram_read_bytes": round(self.sram_read_bytes), "sram_write_bytes": round(self.sram_write_bytes)}
        energy = {f"energy_{name}_pj": getattr(self.energy, name) for name in COMPONENTS}
        return plain | traffic | sums | energy | {"energy_pj": self.energy.total}


@dataclass(frozen=True)
class Cost:
    """What a batch (or an image) costs: work, bytes moved and energy."""

    macs: float
    useful_macs: float
    skipped_macs: float
    vector_ops: float
    compute_cycles: float
    stall_cycles: float
    dram_read_bytes: float
    dram_write_bytes: float
    dram_bytes: float
    sram_bytes: float
    energy_mac_pj: float
    energy_vector_pj: float
    energy_sram_pj: float
    energy_dram_pj: float
    energy_leakage_pj: float
    energy_pj: float
    energy_j: float
    edp: float  # energy (J) x latency (s)

    def divided(self, images: int) -> Cost:
        """The same cost shared by ``images`` images (the energy-delay product keeps the batch's latency)."""
        return Cost(**{name: value / images for name, value in asdict(self).items()})


@dataclass(frozen=True)
class Totals:
    """The whole run's timing, and the cost of one batch and of one image.

    ``schedule``, ``batches`` (image groups simulated) and ``batch`` (images in
    each) say what was simulated; ``images = batches x batch``.  ``cycles`` is
    the makespan (last store included).  ``latency_s`` is one batch's time
    through the network: the makespan for ``data`` and ``split``, the first
    batch's through the empty pipeline for ``pipeline``.  ``throughput`` is images per
    second: a pipeline's over the second half of its completions, once it is
    full.  ``utilisation`` is useful MACs over ``PEs of every core x cycles``.  The
    leakage of a batch is every core's over the time the run spends per batch
    (``batch / throughput``), idle cores included; ``stall_share`` is stall
    over compute + stall cycles.
    """

    schedule: str
    batches: int
    batch: int
    images: int
    pes: int  # MAC units over every core
    area_mm2: float  # every core's arrays, vector units and buffers (area.py)
    cycles: int
    latency_s: float
    throughput: float
    utilisation: float
    stall_share: float
    per_batch: Cost
    per_image: Cost


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
        return rows_to_csv(row.as_dict() for row in self.rows)

    def compute_report_csv(self) -> str:
        """SCALE-Sim's COMPUTE_REPORT columns, per op, for one batch."""
        return rows_to_csv(_compute_report_row(index, row, self.hardware) for index, row in enumerate(self.rows))

    def bandwidth_report_csv(self) -> str:
        """Average and peak DRAM bandwidth per operand (bytes per cycle), per op."""
        return rows_to_csv(_bandwidth_report_row(index, row) for index, row in enumerate(self.rows))

    def write(self, out_dir: str | Path) -> Path:
        """Write ops.csv, COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and summary.json into ``out_dir``
        (replaced whole, never half-written)."""
        return write_text_folder(out_dir, {
            "ops.csv": self.ops_csv(),
            "COMPUTE_REPORT.csv": self.compute_report_csv(),
            "BANDWIDTH_REPORT.csv": self.bandwidth_report_csv(),
            "summary.json": json_text(self.summary()),
        })

    def table(self) -> str:
        """A per-op table (one batch) and the totals, for the terminal."""
        header = (f"{'op':<40} {'kind':<14} {'cores':>5} {'start':>11} {'end':>11} {'compute':>11} {'stall':>9} "
                  f"{'util':>6} {'DRAM B':>11} {'energy uJ':>10}")
        lines = [header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                f"{row.name[:40]:<40} {row.kind:<14} {row.cores:>5} {row.start_cycle:>11,} {row.end_cycle:>11,} "
                f"{row.compute_cycles:>11,} {row.stall_cycles:>9,} {row.utilisation:>6.1%} "
                f"{round(row.dram_read_bytes + row.dram_write_bytes):>11,} {row.energy.total / 1e6:>10.3f}"
            )
        return "\n".join(lines + ["", self.totals_text()])

    def totals_text(self) -> str:
        """What was simulated, the run's timing, and the cost per batch and per image."""
        t = self.totals
        lines = [
            f"schedule {t.schedule}: {t.batches} batch{'es' if t.batches != 1 else ''} of {t.batch} "
            f"image{'s' if t.batch != 1 else ''} simulated; rows above are per batch",
            f"cycles {t.cycles:,}  latency {t.latency_s * 1e3:.4f} ms per batch  throughput {t.throughput:,.1f} images/s"
            f"  utilisation {t.utilisation:.1%}  stall share {t.stall_share:.1%}",
        ]
        for label, cost in (("per batch", t.per_batch), ("per image", t.per_image)):
            if label == "per image" and t.batch == 1:
                continue
            lines.append(f"{label}: DRAM {cost.dram_bytes:,.0f} B  energy {cost.energy_j * 1e6:.2f} uJ  "
                         f"EDP {cost.edp:.3e} J*s")
        return "\n".join(lines)


def _compute_report_row(index: int, row: OpRow, hardware: dict) -> dict:
    """SCALE-Sim's COMPUTE_REPORT.csv for one op: utilisations over the MACs the array performed."""
    pes = hardware["array"]["rows"] * hardware["array"]["cols"]
    total = row.compute_cycles + row.stall_cycles
    return {
        "LayerID": index, "Layer": row.name, "Kind": row.kind, "Folds": row.folds,
        "Total Cycles": total, "Compute Cycles": row.compute_cycles, "Stall Cycles": row.stall_cycles,
        "Overall Util %": 100 * row.macs / (pes * total) if total else 0.0,
        "Mapping Efficiency %": 100 * row.mapping_efficiency,
        "Compute Util %": 100 * row.macs / (pes * row.compute_cycles) if row.compute_cycles else 0.0,
    }


# BANDWIDTH_REPORT's operand columns, SCALE-Sim's names where it has them.
_BANDWIDTH_COLUMNS = {
    "dram_read_input": "IFMAP", "dram_read_weight": "FILTER", "dram_read_index": "INDEX",
    "dram_read_psum": "PSUM", "dram_write_output": "OFMAP",
}


def _bandwidth_report_row(index: int, row: OpRow) -> dict:
    """Average DRAM bytes per cycle over the op's active span, and the peak a fold needs, per operand."""
    span = row.active_cycles
    averages = {f"Avg {label} DRAM BW (B/cycle)": getattr(row.traffic, name) / span if span else 0.0
                for name, label in _BANDWIDTH_COLUMNS.items()}
    peaks = {f"Peak {label} DRAM BW (B/cycle)": row.peak_bandwidth.get(name, 0.0)
             for name, label in _BANDWIDTH_COLUMNS.items()}
    return {"LayerID": index, "Layer": row.name, "Active Cycles": span} | averages | peaks


# ----------------------------------------------------------------------------- from a timeline


def summarise(ops: Sequence[Op], works: Sequence[OpWork], designs: Sequence[HardwareConfig], tasks: Sequence[Task],
              timeline: Timeline, config: HardwareConfig, run: dict, provenance: dict) -> SimResult:
    """Fold the engine's per-task timings into per-op rows (one batch) and totals; ``designs[i]`` is the
    core design op i ran on (its array size and buffers)."""
    groups = _OpGroups(tasks, timeline)
    prices = {id(design): sram_pj_per_byte(design) for design in designs}  # a few distinct designs
    rows = tuple(_op_row(ops[i], works[i], groups, g, designs[i], prices[id(designs[i])])
                 for g, i in enumerate(groups.ops))
    batch = int(provenance.get("graph", {}).get("batch", 1) or 1)
    useful = sum(work.useful_macs for work in works)
    return SimResult(rows, _totals(rows, useful, timeline, config, run["schedule"], batch),
                     config.to_dict(), run, provenance)


class _OpGroups:
    """The tasks' timings summed per op and batch, then per op, in numpy (a sweep summarises every point).

    Tasks are sorted by (op, batch); every sum is of integers, so the means
    taken from them (a float sum over a count) equal :func:`statistics.fmean`
    over the same integers."""

    def __init__(self, tasks: Sequence[Task], timeline: Timeline) -> None:
        op_of = np.array([task.op_index for task in tasks], dtype=np.int64)
        batch_of = np.array([task.batch for task in tasks], dtype=np.int64)
        order = np.lexsort((batch_of, op_of))
        start, end, compute, stall, first_transfer, stored = timeline.timings[order].T
        first_active = np.where(first_transfer < 0, start, np.minimum(start, first_transfer))
        last_active = np.maximum(end, stored)
        op_of, batch_of = op_of[order], batch_of[order]
        group = _run_starts(op_of, batch_of)  # first task of each (op, batch)
        self.op_task = _run_starts(op_of)  # first task of each op
        per_op = _run_starts(op_of[group])  # first (op, batch) group of each op
        self.ops = op_of[self.op_task].tolist()
        self.batches = np.diff(np.append(per_op, len(group))).tolist()
        self.compute = np.add.reduceat(compute, group)[per_op].tolist()  # the op's first batch
        self.stall_total = np.add.reduceat(np.add.reduceat(stall, group), per_op).tolist()
        spans = np.maximum.reduceat(last_active, group) - np.minimum.reduceat(first_active, group)
        self.span_total = np.add.reduceat(spans, per_op).tolist()
        self.start = np.minimum.reduceat(start, self.op_task).tolist()
        self.end = np.maximum.reduceat(end, self.op_task).tolist()
        cores = np.array([task.core for task in tasks], dtype=np.int64)[order].tolist()
        bounds = [*self.op_task.tolist(), len(order)]
        self.cores = [sorted(set(cores[bounds[g]:bounds[g + 1]])) for g in range(len(self.ops))]


def _run_starts(*keys: np.ndarray) -> np.ndarray:
    """Where each run of equal consecutive key tuples starts (keys sorted; at least one element)."""
    changed = np.zeros(len(keys[0]), dtype=bool)
    changed[0] = True
    for key in keys:
        changed[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(changed)


def _op_row(op: Op, work: OpWork, groups: _OpGroups, g: int, config: HardwareConfig,
            sram_prices: tuple[float, ...]) -> OpRow:
    compute, batches = groups.compute[g], groups.batches[g]
    stall = round(groups.stall_total[g] / batches)
    busy = compute + stall
    return OpRow(
        name=op.name,
        kind=op.kind.value,
        cores=_core_list(groups.cores[g]),
        start_cycle=groups.start[g],
        end_cycle=groups.end[g],
        folds=work.folds,
        compute_cycles=compute,
        stall_cycles=stall,
        active_cycles=groups.span_total[g] / batches,
        mapping_efficiency=work.mapping_efficiency,
        utilisation=work.useful_macs / (config.pes * busy) if busy and work.useful_macs else 0.0,
        macs=work.macs,
        skipped_macs=work.skipped_macs,
        vector_ops=work.vector_ops,
        traffic=work.traffic,
        peak_bandwidth=work.peak_bandwidth,
        energy=op_energy(work, busy, config, sram_prices),
    )


def _core_list(cores: list[int]) -> str:
    """'0', '0-3' or '0;2': which cores ran an op."""
    if len(cores) > 1 and cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ";".join(str(core) for core in cores)


def _totals(rows: tuple[OpRow, ...], useful_macs: int, timeline: Timeline,
            config: HardwareConfig, schedule: str, batch: int) -> Totals:
    clock_hz = config.clock_mhz * 1e6
    batches = timeline.batches
    latency_s, throughput = _latency_and_throughput(schedule, timeline, clock_hz, batch)
    cycles_per_batch = clock_hz * batch / throughput if throughput else float(timeline.makespan)
    energy = {name: sum(getattr(row.energy, name) for row in rows) for name in COMPONENTS if name != "leakage"}
    energy["leakage"] = leakage_pj(round(cycles_per_batch * config.cores), config)
    energy_pj = sum(energy.values())
    compute, stall = sum(r.compute_cycles for r in rows), sum(r.stall_cycles for r in rows)
    dram_read, dram_write = sum(r.dram_read_bytes for r in rows), sum(r.dram_write_bytes for r in rows)
    per_batch = Cost(
        macs=sum(r.macs for r in rows), useful_macs=useful_macs, skipped_macs=sum(r.skipped_macs for r in rows),
        vector_ops=sum(r.vector_ops for r in rows), compute_cycles=compute, stall_cycles=stall,
        dram_read_bytes=dram_read, dram_write_bytes=dram_write, dram_bytes=dram_read + dram_write,
        sram_bytes=sum(r.sram_read_bytes + r.sram_write_bytes for r in rows),
        **{f"energy_{name}_pj": value for name, value in energy.items()},
        energy_pj=energy_pj, energy_j=energy_pj * 1e-12, edp=energy_pj * 1e-12 * latency_s,
    )
    makespan = timeline.makespan
    return Totals(
        schedule=schedule, batches=batches, batch=batch, images=batches * batch, pes=config.total_pes,
        area_mm2=accelerator_area(config).total_mm2, cycles=makespan,
        latency_s=latency_s, throughput=throughput,
        utilisation=useful_macs * batches / (config.total_pes * makespan) if makespan else 0.0,
        stall_share=stall / (compute + stall) if compute + stall else 0.0,
        per_batch=per_batch, per_image=per_batch.divided(batch),
    )


def _latency_and_throughput(schedule: str, timeline: Timeline, clock_hz: float, batch: int) -> tuple[float, float]:
    """One batch's latency and images per second.

    A pipeline's latency is its first batch's, through the empty pipeline (later
    batches also queue behind the slowest stage); its throughput is measured
    over the second half of the completions, once it is full.
    """
    seconds = timeline.makespan / clock_hz
    ends = sorted(timeline.batch_end.values())
    if schedule != "pipeline" or len(ends) < 3:
        return seconds, len(ends) * batch / seconds if seconds else 0.0
    steady = ends[len(ends) // 2:]
    latency = timeline.batch_end[0] / clock_hz
    if steady[-1] == steady[0]:
        return latency, len(ends) * batch / seconds
    return latency, (len(steady) - 1) * batch * clock_hz / (steady[-1] - steady[0])
