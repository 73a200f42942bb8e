"""The public Python API: each stage of the pipeline as one function, and what the CLI calls.

    import attentionlite as al

    graph = al.trace("sasa26_homogeneous")                        # a name, checkpoint, graph file or nn.Module
    result = al.simulate(graph, "paa-default", array=(16, 16))    # per-op rows and totals; .write(folder)
    cpu = al.predict_cpu(graph, "cpu-host-default")               # the CPU roofline's prediction
    rows, breakdown = al.compare(["resnet50", "sasa26_hybrid"])   # teacher first, students at 10% density
    rows = al.sweep(["sasa26_hybrid"], {"cores": [1, 4]}, engine="ray")  # every point; local or on Ray
    found = al.explore(["sasa26_hybrid"], "space.toml")           # a multi-objective search; .trials, .front
    study = al.parallelism(["resnet50", "sasa26_hybrid", "sasa26_homogeneous"])  # scaling, stages, verdict
    al.report(out="attentionlite-report")                         # the co-design report (the main job)

Each function is the door where the user's input enters: names and paths
become typed objects here, once (a :class:`Target`, a
:class:`HardwareConfig`, a :class:`CpuConfig`), bad input is one
:class:`~attentionlite.errors.InputError`, and everything below receives the
objects.  torch, scipy and matplotlib are imported inside the functions that
need them, so ``import attentionlite`` and the CLI start fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attentionlite.defaults import DEFAULT_DENSITY, DEFAULT_HARDWARE, DEFAULT_HETEROGENEOUS, DEFAULT_REPORT_HARDWARE
from attentionlite.errors import InputError

if TYPE_CHECKING:  # for the signatures only: importing these at run time would slow `import attentionlite`
    from torch import nn

    from attentionlite.analysis.explore import Exploration
    from attentionlite.analysis.parallelism import ParallelismStudy
    from attentionlite.simulator.accelerator.hardware import HardwareConfig
    from attentionlite.simulator.accelerator.results import SimResult
    from attentionlite.simulator.cpu.config import CpuConfig
    from attentionlite.simulator.cpu.measure import CpuPrediction
    from attentionlite.simulator.graph.graph import OpGraph
    from attentionlite.simulator.graph.targets import Target, TraceOptions



def trace(
    target: str | Path | Target | nn.Module, *, dataset: str | None = None, batch: int | None = None,
    image_size: int | None = None, input_shape: Sequence[int] | None = None, fold_bn: bool = False,
    density: float = 1.0, mask_seed: int = 0,
) -> OpGraph:
    """The op graph of a model name, checkpoint, saved graph or topology file, or of a torch module.

    A module is traced on ``(batch, 3, image_size, image_size)`` images, or on one
    input of ``input_shape`` (batch first: images of another size or channel
    count, tokens); a registered model at ``density`` below 1 gets the pruning
    method's initial masks (seeded by ``mask_seed``).
    """
    from attentionlite.simulator.graph.targets import Target, TraceOptions, target_graph

    options = TraceOptions(dataset=dataset, batch=batch, image_size=image_size, fold_bn=fold_bn,
                           density=density, mask_seed=mask_seed)
    if isinstance(target, (str, Path, Target)):
        if input_shape is not None:
            raise InputError("input_shape is for tracing a torch module; a registered model or file knows its own")
        return target_graph(_target(target), options)
    return _trace_module(target, options, input_shape)


def simulate(
    workload: str | Target | OpGraph, hardware: str | Path | HardwareConfig = DEFAULT_HARDWARE, *,
    schedule: str = "data", dataset: str | None = None, batch: int | None = None, **overrides: Any,
) -> SimResult:
    """Simulate a workload (anything :func:`trace` takes, or a graph) on the accelerator.

    ``overrides`` change knobs of the hardware config (``array=(16, 16)``,
    ``dataflow="ws"``, ``cores=2``, ``bandwidth_gb_s=12.8``, ``sparsity="skip"``,
    any dotted field); ``schedule`` is ``data``, ``pipeline`` or ``split``.
    """
    from attentionlite.simulator.accelerator.simulation import simulate as run_simulation

    config = hardware_config(hardware, **overrides)  # checked before the slow trace
    return run_simulation(_graph(workload, dataset, batch), config, schedule=schedule)


def predict_cpu(
    workload: str | Target | OpGraph, cpu: str | Path | CpuConfig | None = None, *,
    dataset: str | None = None, batch: int | None = None, measure: bool = False,
) -> CpuPrediction:
    """The CPU roofline's prediction for a workload; ``measure`` also times its model here in PyTorch.

    ``cpu`` None is this host's quick calibration, cached, as :func:`report` uses (made once, about
    ten seconds, if there is none yet).
    """
    from attentionlite.simulator.cpu.measure import CpuPrediction
    from attentionlite.simulator.cpu.measure import measure as measure_model
    from attentionlite.simulator.cpu.roofline import predict
    from attentionlite.simulator.graph.targets import target_model

    config = _host_cpu() if cpu is None else cpu_config(cpu)  # checked before the slow trace
    graph = _graph(workload, dataset, batch)
    result = predict(graph, config)
    if not measure:
        return CpuPrediction(result)
    return CpuPrediction(result, measure_model(target_model(graph), result, graph.metadata["input_shape"]))


def compare(
    targets: Sequence[str | Target], hardware: str | Path | HardwareConfig = DEFAULT_HARDWARE, *,
    cpu: str | Path | CpuConfig | None = None, density: float = DEFAULT_DENSITY, mask_seed: int = 0,
    **overrides: Any,
) -> tuple[list[dict], list[dict]]:
    """Teacher (the first target, dense) against students (at ``density`` unless checkpoints) on one
    design point: (one row per model, op-kind breakdown rows); with a ``cpu``, CPU latencies too."""
    from attentionlite.analysis.compare import compare_targets

    resolved, config = _targets(targets, density), hardware_config(hardware, **overrides)
    return compare_targets(resolved, config, None if cpu is None else cpu_config(cpu), density, mask_seed)


def sweep(
    targets: Sequence[str | Target], knobs: Mapping[str, Sequence], hardware: str | Path | HardwareConfig =
    DEFAULT_HARDWARE, *, density: float = DEFAULT_DENSITY, mask_seed: int = 0, workers: int | None = None,
    progress: bool = True, engine: str = "local", address: str | None = None, journal: str | Path | None = None,
    resume: bool = False,
) -> list[dict]:
    """Every model at every combination of ``knobs`` (``{"array": [(8, 8), (32, 32)], "dataflow": ["os"]}``,
    any hardware knob, ``sram_kib``, ``schedule``); one row per (model, point).

    ``engine``: ``local`` (this host's processes) or ``ray`` (the cluster at
    ``address``, ``auto`` or ``ray://host:port``, or a local one started for
    the sweep).  ``journal``: a file that keeps every finished row; one that
    exists is continued with ``resume`` and refused without it.
    """
    from attentionlite.analysis.models import trace_models
    from attentionlite.analysis.sweep import SweepJournal, check_executor, design_points, sweep_graphs

    resolved, config = _targets(targets, density), hardware_config(hardware)
    points = design_points(config, knobs)  # every point checked before the slow steps
    check_executor(engine, workers, address)
    if journal is not None and Path(journal).exists() and not resume:
        raise InputError(f"{journal}: an unfinished sweep's journal is there; expected resume to continue it "
                         "(or delete it to start over)")
    _, graphs = trace_models(resolved, density, mask_seed)
    return sweep_graphs(graphs, config, points, workers, progress, engine, address,
                        None if journal is None else SweepJournal(journal))


def explore(
    targets: Sequence[str | Target], space: str | Path, hardware: str | Path | HardwareConfig = DEFAULT_HARDWARE, *,
    trials: int | None = None, objectives: Sequence[str] | None = None, constraints: Sequence[str] = (),
    sampler: str | None = None, seed: int | None = None, density: float = DEFAULT_DENSITY, mask_seed: int = 0,
    workers: int | None = None, engine: str = "local", address: str | None = None, progress: bool = True,
) -> Exploration:
    """A multi-objective search of the design space in the TOML file ``space`` (knob = [values]), ``trials``
    trials per model (default 500, objectives latency, energy and area, NSGA-II seeded 0); every trial's row and
    each model's Pareto front (see analysis/explore.py)."""
    from tqdm import tqdm

    from attentionlite.analysis.explore import explore as run_explore
    from attentionlite.analysis.explore import search_settings
    from attentionlite.analysis.models import trace_models
    from attentionlite.analysis.sweep import check_executor

    resolved, config = _targets(targets, density), hardware_config(hardware)
    search = search_settings(space, config, trials, objectives, constraints, sampler, seed)  # before the slow steps
    check_executor(engine, workers, address)
    _, graphs = trace_models(resolved, density, mask_seed)
    with tqdm(total=search.trials * len(graphs), disable=None if progress else True, unit="trial",
              desc="exploring", leave=False) as bar:
        return run_explore(graphs, config, search, workers, engine, address, bar.update)


def parallelism(
    targets: Sequence[str | Target], hardware: str | Path | HardwareConfig = DEFAULT_HARDWARE, *,
    core_counts: Sequence[int] | None = None, schedules: Sequence[str] | None = None,
    against: Sequence[str | Path | HardwareConfig] = (DEFAULT_HETEROGENEOUS,), density: float = DEFAULT_DENSITY,
    mask_seed: int = 0, progress: bool = True, **overrides: Any,
) -> ParallelismStudy:
    """Every model on 1-16 cores (``core_counts``) of ``hardware`` under each schedule, each model's
    optimal pipeline cut, the ``against`` accelerators at their own size beside it, and which model
    wins where (see analysis/parallelism.py).  ``overrides`` apply to every accelerator."""
    from tqdm import tqdm

    from attentionlite.analysis.models import trace_models
    from attentionlite.analysis.parallelism import CORE_COUNTS, SCHEDULE_ORDER, check_study, parallelism_study

    counts, chosen = list(_given(core_counts, CORE_COUNTS)), list(_given(schedules, SCHEDULE_ORDER))
    resolved, config = _targets(targets, density), hardware_config(hardware, **overrides)
    others = [hardware_config(other, **overrides) for other in against]
    check_study(counts, chosen)  # checked before the slow steps
    _, graphs = trace_models(resolved, density, mask_seed)
    with tqdm(total=(len(set(counts)) + len(others)) * len(chosen) + 1, disable=None if progress else True,
              unit="step", leave=False) as bar:
        def step(what: str) -> None:
            bar.set_description(what)
            bar.update(1)
        return parallelism_study(graphs, config, counts, chosen, others, step)


def report(
    targets: Sequence[str | Target] = (), out: str | Path = "attentionlite-report", *,
    hardware: str | Path | HardwareConfig = DEFAULT_REPORT_HARDWARE, cpu: str | Path | CpuConfig | None = None,
    arrays: Sequence[int] | None = None, dataflows: Sequence[str] | None = None, sparsity: str | None = None,
    density: float = DEFAULT_DENSITY, workers: int | None = None, engine: str = "local", address: str | None = None,
    recalibrate: bool = False, core_counts: Sequence[int] | None = None, schedules: Sequence[str] | None = None,
    against: Sequence[str | Path | HardwareConfig] = (DEFAULT_HETEROGENEOUS,), progress: bool = True,
    space: str | Path | None = None, trials: int | None = None, objectives: Sequence[str] | None = None,
    constraints: Sequence[str] = (), sampler: str | None = None, seed: int | None = None,
    attention_sweep: str | Path | None = None, data_dir: str | Path | None = None,
    attention_hardware: str | Path | HardwareConfig = "vitcod-like",
    attention_sparsities: Sequence[float] | None = None,
) -> Path:
    """Write the co-design report into the folder ``out`` (replaced whole); returns its ``index.html``.

    With no ``targets``: the teacher resnet50 and the sasa26 hybrid and
    homogeneous students at ``density`` (initial masks, untrained).  The default ``hardware`` is
    ``paa-attention``: ``paa-default`` with the attention features on (the report says which).  ``cpu``
    None calibrates this host (quick, cached); ``arrays`` are square array sides; ``core_counts`` and
    ``schedules`` are the parallelism section's, ``against`` the accelerators it sets beside ``hardware``.
    ``space`` (a TOML file, as :func:`explore` takes) replaces the grid of ``arrays`` x ``dataflows`` with a
    search of that space from the reference point; ``trials`` to ``seed`` are that search's, as in :func:`explore`.
    ``engine`` and ``address`` say where the grid's points or the search's trials run, as in :func:`sweep`.
    ``attention_sweep`` (a ViT checkpoint) adds its attention-sparsity sweep (:func:`attention_sweep`) on
    ``attention_hardware``, calibrated and scored on the images in ``data_dir``.
    """
    from attentionlite.analysis.attention_sweep import DEFAULT_SPARSITIES, AttentionSweep
    from attentionlite.analysis.codesign import (
        CORE_COUNTS,
        DEFAULT_ARRAYS,
        DEFAULT_DATAFLOWS,
        DEFAULT_SPARSITY,
        DEFAULT_TARGETS,
        SCHEDULE_ORDER,
        ReportSettings,
        build_report,
    )
    from attentionlite.analysis.explore import search_settings
    from attentionlite.files import check_writable
    from attentionlite.reports.render import render_report

    check_writable(out, "out", folder=True)  # before the slow steps
    _check_grid_or_search(space, arrays, dataflows, trials, objectives, constraints, sampler, seed)
    settings = ReportSettings(  # an empty list given is refused by the checks, not taken for the default
        targets=_targets(targets or DEFAULT_TARGETS, density), hardware=hardware_config(hardware),
        cpu=None if cpu is None else cpu_config(cpu), arrays=tuple(_given(arrays, DEFAULT_ARRAYS)),
        dataflows=tuple(_given(dataflows, DEFAULT_DATAFLOWS)), sparsity=sparsity or DEFAULT_SPARSITY,
        density=density, workers=workers, engine=engine, address=address, recalibrate=recalibrate,
        core_counts=tuple(_given(core_counts, CORE_COUNTS)), schedules=tuple(_given(schedules, SCHEDULE_ORDER)),
        against=tuple(hardware_config(a) for a in against),
    )
    if space is not None:
        settings = replace(settings, search=search_settings(space, settings.reference_config(), trials, objectives,
                                                            constraints, sampler, seed))
    attention_config = hardware_config(attention_hardware)  # checked whether or not a sweep is asked for
    if attention_sweep is not None:
        if data_dir is None:
            raise InputError("an attention sweep needs data_dir: the images its masks are chosen on and scored on")
        sweep = AttentionSweep(Path(attention_sweep), Path(data_dir), attention_config,
                               tuple(_given(attention_sparsities, DEFAULT_SPARSITIES)))
        sweep.check()  # before the slow steps
        settings = replace(settings, attention=sweep)
    return render_report(build_report(settings, progress), out) / "index.html"


def attention_sweep(
    checkpoint: str | Path, data_dir: str | Path, hardware: str | Path | HardwareConfig = "vitcod-like", *,
    sparsities: Sequence[float] | None = None, calibration_images: int = 50, test_subset: int | None = None,
    device: str = "cpu", cache_dir: str | Path | None = None, progress: bool = True, **overrides: Any,
) -> list[dict]:
    """A ViT checkpoint at each attention sparsity (default 0, 0.5, 0.8, 0.9, 0.95): accuracy, latency,
    energy and DRAM bytes on ``hardware`` (``vitcod-like`` runs fixed masks on split engines)."""
    from attentionlite.analysis.attention_sweep import DEFAULT_SPARSITIES
    from attentionlite.analysis.attention_sweep import attention_sweep as sweep_sparsities

    config = hardware_config(hardware, **overrides)  # checked before the slow calibration
    return sweep_sparsities(checkpoint, data_dir, config, tuple(_given(sparsities, DEFAULT_SPARSITIES)),
                            calibration_images, test_subset, device, cache_dir, progress)


def _check_grid_or_search(space: str | Path | None, arrays: Sequence[int] | None, dataflows: Sequence[str] | None,
                          *search: object) -> None:
    """A report sweeps a grid or searches a space, not both: each one's settings only with it."""
    if space is not None and (arrays is not None or dataflows is not None):
        raise InputError("arrays and dataflows (--arrays, --dataflows) set the report's grid, which a space "
                         "(--space) replaces; put array and dataflow knobs in the space file instead")
    if space is None and any(value not in (None, ()) for value in search):
        raise InputError("trials, objectives, constraints, sampler and seed (--trials ... --seed) are a "
                         "search's settings; give the space to search as well (--space)")


# ----------------------------------------------------------------------------- the door


def _given(values: Sequence | None, default: Sequence) -> Sequence:
    return default if values is None else values


def hardware_config(hardware: str | Path | HardwareConfig, **overrides: Any) -> HardwareConfig:
    """A preset name, a TOML path or a config, with knob overrides, as a validated config."""
    from attentionlite.simulator.accelerator.hardware import HardwareConfig, load_hardware, with_overrides

    if isinstance(hardware, HardwareConfig):
        return with_overrides(hardware, **overrides)
    return load_hardware(hardware, **overrides)


def cpu_config(cpu: str | Path | CpuConfig) -> CpuConfig:
    """A CPU preset name, a TOML path or a config, validated."""
    from attentionlite.simulator.cpu.config import CpuConfig, load_cpu

    return cpu if isinstance(cpu, CpuConfig) else load_cpu(cpu)


def _host_cpu() -> CpuConfig:
    from attentionlite.analysis.codesign import host_cpu

    return host_cpu()


def _target(target: str | Path | Target) -> Target:
    from attentionlite.simulator.graph.targets import Target, resolve_target

    return target if isinstance(target, Target) else resolve_target(str(target))


def _targets(targets: Sequence[str | Target], density: float) -> tuple[Target, ...]:
    """The models of a comparison, each resolved, and the students' density checked, before any slow step."""
    from attentionlite.simulator.graph.targets import check_density

    if not targets:
        raise InputError("no models given; expected registered model names or checkpoint paths")
    check_density(density)
    return tuple(_target(target) for target in targets)


def _trace_module(module: nn.Module, options: TraceOptions, input_shape: Sequence[int] | None) -> OpGraph:
    from torch import nn

    from attentionlite.simulator.graph.tracing import trace_model

    if not isinstance(module, nn.Module):
        raise InputError(f"cannot trace a {type(module).__name__}; expected a model name, a file path or a torch module")
    if options.image_size is None and input_shape is None:
        raise InputError("tracing a torch module needs image_size (the side of the square RGB images it takes) "
                         "or input_shape (batch first)")
    shape = tuple(input_shape) if input_shape is not None else None
    return trace_model(module, options.image_size, batch=options.batch or 1, fold_bn=options.fold_bn, input_shape=shape)


def _graph(workload: str | Target | OpGraph, dataset: str | None, batch: int | None) -> OpGraph:
    from attentionlite.simulator.graph.graph import OpGraph

    return workload if isinstance(workload, OpGraph) else trace(workload, dataset=dataset, batch=batch)
