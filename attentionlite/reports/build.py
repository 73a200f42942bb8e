"""What goes into a co-design report: models with their masks, the CPU, one design point, the sweep.

The pipeline, read as one list (:func:`build_report`): configure the CPU (a
quick calibration of this host, or a preset); trace each model with its
masks; predict each model on the CPU; simulate every model at the accelerator
preset's own design point (the comparison); sweep array sizes and dataflows.
:mod:`attentionlite.reports.render` turns the result into files.

Without checkpoints (the built-in default) the students carry the pruning
method's initial masks (:mod:`attentionlite.analysis.models`) and the report
says plainly that their accuracy is unknown.
"""

from __future__ import annotations

import hashlib
import os
import platform
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from attentionlite.analysis.models import (
    DEFAULT_DENSITY, DEFAULT_MASK_SEED, ModelEntry, check_targets, trace_models,
)
from attentionlite.errors import InputError
from attentionlite.files import atomic_write_text, default_cache_dir

TEACHER = "resnet50"
DEFAULT_STUDENTS = ("sasa26_hybrid", "sasa26_homogeneous")
DEFAULT_TARGETS = (TEACHER, *DEFAULT_STUDENTS)
DEFAULT_ARRAYS = (8, 16, 32, 64, 128, 256)
DEFAULT_DATAFLOWS = ("os", "ws", "is")
DEFAULT_HARDWARE = "paa-default"
# Zero-skipping hardware by default: on dense hardware the students' pruning would buy nothing,
# and the report also shows each model on dense hardware beside it.
DEFAULT_SPARSITY = "skip"


@dataclass(frozen=True)
class ReportSettings:
    """What a report is asked for: models (teacher first), hardware, CPU, the sweep, the students' masks."""

    targets: tuple[str, ...] = DEFAULT_TARGETS
    hardware: str = DEFAULT_HARDWARE
    cpu: str | None = None  # a CPU preset or TOML; None calibrates this host (quick)
    arrays: tuple[int, ...] = DEFAULT_ARRAYS
    dataflows: tuple[str, ...] = DEFAULT_DATAFLOWS
    sparsity: str = DEFAULT_SPARSITY
    density: float = DEFAULT_DENSITY
    seed: int = DEFAULT_MASK_SEED
    workers: int | None = None
    recalibrate: bool = False  # calibrate this host again instead of reusing the cached calibration

    def reference_point(self) -> dict:
        """The comparison's design point: the preset itself, with the report's sparsity mode."""
        return {"sparsity": self.sparsity}

    def sweep_knobs(self) -> dict[str, list]:
        return {"array": [(a, a) for a in self.arrays], "dataflow": list(self.dataflows),
                "sparsity": [self.sparsity]}


@dataclass
class CodesignReport:
    """Every number a report shows, with the configs that produced them."""

    settings: ReportSettings
    models: list[ModelEntry]
    hardware_config: dict  # resolved, at the reference point
    cpu_name: str
    cpu_config: dict
    comparison: list[dict]  # one row per model at the reference point
    breakdown: list[dict]  # one row per (model, op-kind group) at that point
    sweep: list[dict]  # one row per (model, array, dataflow)
    cpu_ops: dict[str, list[dict]]  # per model, the CPU's per-op rows
    cpu_peak_flops: float
    cpu_bandwidths: dict[str, float]  # bytes/s per memory level, innermost first
    provenance: dict = field(default_factory=dict)

    @property
    def model_labels(self) -> list[str]:
        return [entry.label for entry in self.models]

    @property
    def untrained(self) -> list[ModelEntry]:
        """The models that come from no checkpoint: their accuracy is unknown."""
        return [entry for entry in self.models if not entry.trained]


# ----------------------------------------------------------------------------- CPU


def host_cpu_cache() -> Path:
    """Where this host's quick calibration is kept, keyed by host name, core count, package version
    and calibration method."""
    from attentionlite import __version__
    from attentionlite.simulator.cpu_calibrate import CALIBRATION_SOURCE

    identity = f"{platform.node()}|{os.cpu_count()}|{__version__}|{CALIBRATION_SOURCE}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return default_cache_dir() / f"host-cpu-{key}.toml"


def resolve_cpu(settings: ReportSettings, step: Callable[[str], None]):
    """(config, name in words): a preset or TOML path, or this host's quick calibration.

    The calibration is made once per host and cached (:func:`host_cpu_cache`): it takes a while, and
    timing noise would otherwise make two reports of the same inputs differ.
    """
    from attentionlite.simulator.cpu import load_cpu
    from attentionlite.simulator.cpu_calibrate import calibrate

    if settings.cpu is not None:
        step(settings.cpu)
        config = load_cpu(settings.cpu)
        return config, config.name
    cache = host_cpu_cache()
    if cache.is_file() and not settings.recalibrate:
        step("this host, cached calibration")
        config = load_cpu(cache)
    else:
        step("calibrating this host")
        config = calibrate(quick=True)
        atomic_write_text(cache, config.to_toml())
    return config, f"{config.name} (quick calibration of this host)"


def cpu_bandwidths(cpu) -> dict[str, float]:
    """Bytes/s each memory level supplies to the whole chip, innermost first (the roofline's slopes)."""
    levels = {c.name: c.bandwidth_gb_s * 1e9 * (1 if c.shared else cpu.cores) for c in cpu.caches}
    return {**levels, "DRAM": cpu.dram_bandwidth_gb_s * 1e9}


# ----------------------------------------------------------------------------- the pipeline


def build_report(settings: ReportSettings, progress: bool = True) -> CodesignReport:
    """Trace, predict on the CPU, compare at the preset's design point, sweep; the first target is the teacher."""
    from attentionlite.analysis.sweep import checked_points, run_sweep
    from attentionlite.provenance import provenance
    from attentionlite.simulator.cpu import predict

    check_targets(settings.targets, settings.density)  # bad input fails before the slow steps
    hardware_config = reference_config(settings)
    checked_points(settings.hardware, settings.sweep_knobs())
    with _progress_bar(settings, progress) as step:
        cpu_config, cpu_name = resolve_cpu(settings, step("CPU: "))  # calibrated host, or a preset
        entries, graphs = trace_models(settings.targets, settings.density, settings.seed, step("tracing "))
        cpu_results = {label: predict(graph, cpu_config) for label, graph in graphs.items()}
        comparison, breakdown = compare_reference(graphs, settings, cpu_results, step("comparing "))
        sweep = run_sweep(graphs, settings.hardware, settings.sweep_knobs(), settings.workers, step("sweeping"))
    return CodesignReport(
        settings=settings, models=entries, hardware_config=hardware_config.to_dict(),
        cpu_name=cpu_name, cpu_config=cpu_config.to_dict(), comparison=comparison, breakdown=breakdown,
        sweep=sweep, cpu_ops={label: [row.row() for row in r.rows] for label, r in cpu_results.items()},
        cpu_peak_flops=cpu_config.peak_flops, cpu_bandwidths=cpu_bandwidths(cpu_config),
        provenance=provenance(settings=asdict(settings), cpu=cpu_name),
    )


def reference_config(settings: ReportSettings):
    """The accelerator preset with the report's sparsity mode: the design point the comparison uses."""
    from attentionlite.analysis.sweep import resolve_point

    return resolve_point(settings.hardware, settings.reference_point())[0]


def compare_reference(graphs, settings: ReportSettings, cpu_results, step: Callable[[str], None]):
    """(rows, breakdown) at the reference point, each row also against the same model on dense hardware."""
    from attentionlite.analysis.compare import add_sparsity_gains, compare

    step(settings.hardware)
    latencies = {label: result.latency_s for label, result in cpu_results.items()}
    rows, breakdown = compare(graphs, settings.hardware, settings.reference_point(), latencies)
    if settings.sparsity == "none":
        return rows, breakdown
    step(f"{settings.hardware}, dense hardware")
    dense_rows, _ = compare(graphs, settings.hardware, {"sparsity": "none"})
    return add_sparsity_gains(rows, dense_rows), breakdown


@contextmanager
def _progress_bar(settings: ReportSettings, enabled: bool):
    """One tqdm bar over every step; yields ``step(prefix)``, a callback that advances it by one."""
    from tqdm import tqdm

    points = len(settings.arrays) * len(settings.dataflows) * len(settings.targets)
    steps = len(settings.targets) + 2 + (settings.sparsity != "none") + points
    # disable=None: no bar when stderr is not a terminal (logs, CI), as tqdm decides
    with tqdm(total=steps, disable=None if enabled else True, unit="step", leave=False) as bar:
        def step(prefix: str) -> Callable[..., None]:
            def advance(what: str = "") -> None:
                bar.set_description(prefix + what)
                bar.update(1)
            return advance
        yield step


def parse_sides(text: str) -> list[int]:
    """``"8,16,32"`` -> [8, 16, 32]: the sides of the square arrays a report sweeps."""
    sides = [part.strip() for part in text.split(",") if part.strip()]
    if not sides or not all(side.isdigit() and int(side) > 0 for side in sides):
        raise InputError(f"array sides {text!r}: expected positive integers separated by commas, e.g. 8,16,32")
    return [int(side) for side in sides]
