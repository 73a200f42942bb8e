"""The co-design report's pipeline: models with their masks, the CPU, one design point, the sweep.

The pipeline, read as one list (:func:`build_report`): configure the CPU (a
quick calibration of this host, or a preset); trace each model with its
masks; predict each model on the CPU; simulate every model at the accelerator
preset's own design point (the comparison); sweep array sizes and dataflows,
or search a space from that point (:mod:`attentionlite.analysis.explore`);
vary the reference point's core count under each schedule and cut each model
into pipeline stages (:mod:`attentionlite.analysis.parallelism`).
:mod:`attentionlite.reports.render` turns the result into files.

Without checkpoints (the built-in default) the students carry the pruning
method's initial masks (:mod:`attentionlite.analysis.models`) and the report
says plainly that their accuracy is unknown.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from attentionlite.analysis.attention_sweep import AttentionSweep
from attentionlite.analysis.compare import add_sparsity_gains, compare, compare_results
from attentionlite.analysis.explore import Exploration, Search, explore
from attentionlite.analysis.models import ModelEntry, trace_models
from attentionlite.analysis.parallelism import (
    CORE_COUNTS,
    SCHEDULE_ORDER,
    ParallelismStudy,
    check_study,
    parallelism_study,
)
from attentionlite.analysis.sweep import check_executor, design_points, run_sweep
from attentionlite.analysis.waterfall import cycle_levels, has_waterfall, waterfall_rows
from attentionlite.defaults import DEFAULT_DENSITY, DEFAULT_MASK_SEED
from attentionlite.errors import InputError
from attentionlite.files import atomic_write_text, default_cache_dir
from attentionlite.provenance import provenance
from attentionlite.simulator.accelerator.hardware import HardwareConfig, with_overrides
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.cpu.config import CpuConfig, load_cpu
from attentionlite.simulator.cpu.roofline import CpuResult, predict
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.targets import Target
from attentionlite.version import __version__

TEACHER = "resnet50"
DEFAULT_STUDENTS = ("sasa26_hybrid", "sasa26_homogeneous")
DEFAULT_TARGETS = (TEACHER, *DEFAULT_STUDENTS)
DEFAULT_ARRAYS = (8, 16, 32, 64, 128, 256)
DEFAULT_DATAFLOWS = ("os", "ws", "is")
# Zero-skipping hardware by default: on dense hardware the students' pruning would buy nothing,
# and the report also shows each model on dense hardware beside it.
DEFAULT_SPARSITY = "skip"


@dataclass(frozen=True)
class ReportSettings:
    """What a report is asked for: models (teacher first), hardware, CPU, the sweep, the students' masks.

    ``hardware`` and ``cpu`` are resolved configs; ``cpu`` None means this host,
    calibrated (quick) and cached.
    """

    targets: tuple[Target, ...]
    hardware: HardwareConfig
    cpu: CpuConfig | None = None
    arrays: tuple[int, ...] = DEFAULT_ARRAYS
    dataflows: tuple[str, ...] = DEFAULT_DATAFLOWS
    sparsity: str = DEFAULT_SPARSITY
    density: float = DEFAULT_DENSITY
    seed: int = DEFAULT_MASK_SEED
    workers: int | None = None
    engine: str = "local"  # where the grid's points or the search's trials run, and the Ray cluster's address
    address: str | None = None
    core_counts: tuple[int, ...] = CORE_COUNTS  # the parallelism study's core counts and schedules
    schedules: tuple[str, ...] = SCHEDULE_ORDER
    against: tuple[HardwareConfig, ...] = ()  # accelerators set beside ``hardware`` in the parallelism section
    recalibrate: bool = False  # calibrate this host again instead of reusing the cached calibration
    search: Search | None = None  # explore this space instead of sweeping arrays x dataflows
    attention: AttentionSweep | None = None  # a ViT checkpoint's attention-sparsity sweep, where asked for

    def reference_config(self) -> HardwareConfig:
        """The comparison's design point: the preset itself, with the report's sparsity mode."""
        return with_overrides(self.hardware, sparsity=self.sparsity)

    def sweep_knobs(self) -> dict[str, list]:
        return {"array": [(a, a) for a in self.arrays], "dataflow": list(self.dataflows),
                "sparsity": [self.sparsity]}

    def described(self) -> dict:
        """The settings as plain data for the report's records: configs by name, targets as given."""
        return {
            "targets": [target.text for target in self.targets], "hardware": self.hardware.name,
            "cpu": None if self.cpu is None else self.cpu.name, "arrays": list(self.arrays),
            "dataflows": list(self.dataflows), "sparsity": self.sparsity, "density": self.density,
            "seed": self.seed, "workers": self.workers, "engine": self.engine, "address": self.address,
            "core_counts": list(self.core_counts),
            "schedules": list(self.schedules), "against": [config.name for config in self.against],
            "recalibrate": self.recalibrate, "search": None if self.search is None else self.search.described(),
            "attention_sweep": None if self.attention is None else self.attention.described(),
        }


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
    waterfall: list[dict]  # per student, MAC ratio to latency ratio (waterfall.py); empty where not defined
    sweep: list[dict]  # one row per (model, array, dataflow); empty when the report explores a space instead
    cpu_ops: dict[str, list[dict]]  # per model, the CPU's per-op rows
    cpu_peak_flops: float
    cpu_bandwidths: dict[str, float]  # bytes/s per memory level, innermost first
    parallelism: ParallelismStudy  # the reference point's cores and schedules varied
    provenance: dict = field(default_factory=dict)
    exploration: Exploration | None = None  # the search of ``settings.search``, from the reference point
    attention_sweep: list[dict] = field(default_factory=list)  # settings.attention's rows, one per sparsity

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
    from attentionlite.simulator.cpu.calibrate import CALIBRATION_SOURCE  # imports torch

    identity = f"{platform.node()}|{os.cpu_count()}|{__version__}|{CALIBRATION_SOURCE}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return default_cache_dir() / f"host-cpu-{key}.toml"


def resolve_cpu(settings: ReportSettings, step: Callable[[str], None]) -> tuple[CpuConfig, str]:
    """(config, name in words): the given config, or this host's quick calibration.

    The calibration is made once per host and cached (:func:`host_cpu_cache`): it takes a while, and
    timing noise would otherwise make two reports of the same inputs differ.
    """
    if settings.cpu is not None:
        step(settings.cpu.name)
        return settings.cpu, settings.cpu.name
    config = host_cpu(settings.recalibrate, step)
    return config, f"{config.name} (quick calibration of this host)"


def host_cpu(recalibrate: bool = False, step: Callable[[str], None] = lambda _: None) -> CpuConfig:
    """This host's quick calibration: the cached one (:func:`host_cpu_cache`), made and cached first if
    there is none or ``recalibrate``."""
    from attentionlite.simulator.cpu.calibrate import calibrate  # imports torch

    cache = host_cpu_cache()
    if cache.is_file() and not recalibrate:
        step("this host, cached calibration")
        return load_cpu(cache)
    step("calibrating this host")
    config = calibrate(quick=True)
    atomic_write_text(cache, config.to_toml())
    return config


def cpu_bandwidths(cpu: CpuConfig) -> dict[str, float]:
    """Bytes/s each memory level supplies to the whole chip, innermost first (the roofline's slopes)."""
    levels = {c.name: c.bandwidth_gb_s * 1e9 * (1 if c.shared else cpu.compute.cores) for c in cpu.cache}
    return {**levels, "DRAM": cpu.dram.bandwidth_gb_s * 1e9}


# ----------------------------------------------------------------------------- the pipeline


def build_report(settings: ReportSettings, progress: bool = True) -> CodesignReport:
    """Trace, predict on the CPU, compare at the preset's design point, sweep (or explore); the first target is
    the teacher."""
    reference = settings.reference_config()
    # bad knobs fail before the slow steps (a search's space was checked as it was read)
    points = [] if settings.search else design_points(settings.hardware, settings.sweep_knobs())
    check_study(settings.core_counts, settings.schedules)
    check_executor(settings.engine, settings.workers, settings.address)
    with _progress_bar(settings, progress) as step:
        cpu_config, cpu_name = resolve_cpu(settings, step("CPU: "))  # calibrated host, or a preset
        entries, graphs = trace_models(settings.targets, settings.density, settings.seed, step("tracing "))
        cpu_results = {label: predict(graph, cpu_config) for label, graph in graphs.items()}
        comparison, breakdown, waterfall = compare_reference(graphs, reference, cpu_results, step("comparing "))
        sweep, exploration = _design_space(graphs, settings, reference, points, step)
        others = [with_overrides(other, sparsity=settings.sparsity) for other in settings.against]
        parallelism = parallelism_study(graphs, reference, settings.core_counts, settings.schedules, others,
                                        step("parallelism: "))
        attention: list[dict] = []
        if settings.attention is not None:
            step("attention sparsity: ")(settings.attention.hardware.name)
            attention = settings.attention.run()
    return CodesignReport(
        settings=settings, models=entries, hardware_config=reference.to_dict(),
        cpu_name=cpu_name, cpu_config=cpu_config.to_dict(), comparison=comparison, breakdown=breakdown,
        sweep=sweep, cpu_ops={label: [row.row() for row in r.rows] for label, r in cpu_results.items()},
        cpu_peak_flops=cpu_config.peak_flops, cpu_bandwidths=cpu_bandwidths(cpu_config), parallelism=parallelism,
        provenance=provenance(settings=settings.described(), cpu=cpu_name), exploration=exploration,
        waterfall=waterfall, attention_sweep=attention,
    )


def _design_space(graphs: Mapping[str, OpGraph], settings: ReportSettings, reference: HardwareConfig,
                  points: list[dict], step: Callable[[str], Callable[..., None]],
                  ) -> tuple[list[dict], Exploration | None]:
    """(sweep rows, None) over the grid of ``points``, or ([], the exploration from ``reference``) when the
    settings search a space."""
    if settings.search is None:
        return run_sweep(graphs, settings.hardware, points, settings.workers, step("sweeping"), settings.engine,
                         settings.address), None
    searched = step("exploring")
    found = explore(graphs, reference, settings.search, settings.workers, settings.engine,
                    settings.address, lambda done: searched(count=done))
    if not found.feasible:
        raise InputError(f"no trial of the search was a feasible design ({settings.search.feasible_means}); "
                         "expected a space or constraints that some design meets")
    return [], found


def compare_reference(
    graphs: Mapping[str, OpGraph], reference: HardwareConfig, cpu_results: Mapping[str, CpuResult],
    step: Callable[[str], None],
) -> tuple[list[dict], list[dict], list[dict]]:
    """(rows, breakdown, waterfall) at the reference point, each row also against the same model on dense
    hardware; the waterfall is empty where it is not defined (:func:`has_waterfall`)."""
    step(reference.name)
    latencies = {label: result.latency_s for label, result in cpu_results.items()}
    results = {label: simulate(graph, reference) for label, graph in graphs.items()}
    rows, breakdown = compare_results(results, latencies)
    waterfall = waterfall_rows({label: cycle_levels(graphs[label], result, reference)
                                for label, result in results.items()}) if has_waterfall(reference) else []
    if reference.sparsity.mode == "none":
        return rows, breakdown, waterfall
    step(f"{reference.name}, dense hardware")
    dense_rows, _ = compare(graphs, with_overrides(reference, sparsity="none"))
    return add_sparsity_gains(rows, dense_rows), breakdown, waterfall


@contextmanager
def _progress_bar(settings: ReportSettings, enabled: bool) -> Iterator[Callable[[str], Callable[..., None]]]:
    """One tqdm bar over every step; yields ``step(prefix)``, a callback that advances it (by ``count``)."""
    from tqdm import tqdm

    per_model = settings.search.trials if settings.search else len(settings.arrays) * len(settings.dataflows)
    parallelism = (len(set(settings.core_counts)) + len(settings.against)) * len(settings.schedules) + 1
    steps = (len(settings.targets) * (1 + per_model) + 2 + (settings.sparsity != "none") + parallelism
             + (settings.attention is not None))
    # disable=None: no bar when stderr is not a terminal (logs, CI), as tqdm decides
    with tqdm(total=steps, disable=None if enabled else True, unit="step", leave=False) as bar:
        def step(prefix: str) -> Callable[..., None]:
            def advance(what: str = "", count: int = 1) -> None:
                bar.set_description(prefix + what)
                bar.update(count)
            return advance
        yield step
