"""Design-space sweeps: the cross product of hardware knobs, over models, on all local cores.

A *design point* is a dict of knob values (``{"array": (32, 32), "dataflow":
"ws", "cores": 4}``); any knob of the hardware config can be swept (by the
names :func:`~attentionlite.simulator.hardware.load_hardware` accepts, e.g.
``dram.bandwidth_gb_s``, ``sparsity``), plus ``sram_kib`` (all three SRAM
buffers at once) and the simulator's ``schedule`` (data, pipeline, split).  Every (model, design
point) pair is one independent :func:`simulate` run, so the sweep fans them
out over worker processes and gathers one tidy row per pair, in the order the
pairs were listed; a row is exactly what :func:`simulate_point` returns for
that pair alone (the test suite checks this).

The Pareto front is taken over all rows: latency, energy and processing
elements (PEs over all cores, the silicon a design costs) are minimised
together, so a row is on the front when no other row is at least as good on
all three and better on one.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Mapping, Sequence

from attentionlite.errors import InputError
from attentionlite.files import rows_to_csv, write_text_folder
from attentionlite.simulator.hardware import parse_array

PARETO_OBJECTIVES = ("latency_s", "energy_per_image_j", "pes")
SIMULATE_KNOBS = ("schedule",)  # passed to simulate(); every other knob overrides the hardware config
# Knobs that set several config fields at once, so "SRAM size" is one axis of a sweep.
COMPOSITE_KNOBS = {"sram_kib": ("sram.input_kib", "sram.weight_kib", "sram.output_kib")}


def design_points(knobs: Mapping[str, Sequence]) -> list[dict]:
    """Every combination of the knobs' values; the first knob varies slowest."""
    for name, values in knobs.items():
        if not values:
            raise InputError(f"sweep knob {name!r} has no values; expected at least one")
    names = list(knobs)
    return [dict(zip(names, combo)) for combo in itertools.product(*(knobs[n] for n in names))]


def pareto_mask(rows: Sequence[Mapping], objectives: Sequence[str] = PARETO_OBJECTIVES) -> list[bool]:
    """True for each row no other row dominates (all objectives minimised)."""
    import numpy as np

    values = np.array([[float(row[o]) for o in objectives] for row in rows]).reshape(len(rows), len(objectives))
    no_worse = (values[:, None, :] <= values[None, :, :]).all(axis=2)  # [i, j]: i no worse than j
    better = (values[:, None, :] < values[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    return [not flag for flag in dominated]


def parse_names(text: str) -> list[str]:
    """``"os, ws,is"`` -> ["os", "ws", "is"]."""
    return [part.strip() for part in text.split(",") if part.strip()]


def single_point(array: str | None = None, **knobs) -> dict:
    """One design point from command-line options; options left unset keep the preset's values."""
    point = {"array": parse_array(array)} if array else {}
    point.update({knob: value for knob, value in knobs.items() if value is not None})
    return point


def parse_knob_values(text: str) -> list:
    """A comma list of knob values, each read as an int, a float or a string, in that order of preference."""
    return [_scalar(part.strip()) for part in text.split(",") if part.strip()]


def _scalar(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


# ----------------------------------------------------------------------------- one point


def simulate_point(model: str, graph, hardware: str, point: Mapping) -> dict:
    """One (model, design point) simulated on its own: the row the sweep writes for it."""
    from attentionlite.simulator.engine import simulate

    config, options = resolve_point(hardware, point)
    return {"model": model, **_point_columns(point), **result_columns(simulate(graph, config, **options))}


def checked_points(hardware: str, knobs: Mapping[str, Sequence]) -> list[dict]:
    """The design points, each loaded once so that a bad knob or value fails before any simulation."""
    points = design_points(knobs)
    for point in points:
        resolve_point(hardware, point)
    return points


def resolve_point(hardware: str, point: Mapping):
    """(hardware config with the point's knobs applied, keyword options for simulate())."""
    from attentionlite.simulator.hardware import load_hardware

    overrides = {}
    for knob, value in point.items():
        if knob not in SIMULATE_KNOBS:
            overrides.update(dict.fromkeys(COMPOSITE_KNOBS.get(knob, (knob,)), value))
    config = load_hardware(hardware, **overrides)
    return config, {k: v for k, v in point.items() if k in SIMULATE_KNOBS}


def _point_columns(point: Mapping) -> dict:
    """The knob values as CSV columns; an array size becomes its rows and columns."""
    columns = {}
    for name, value in point.items():
        if name == "array":
            columns["array_rows"], columns["array_cols"] = value
        else:
            columns[name] = value
    return columns


def result_columns(result) -> dict:
    """One simulation's totals per image, as a sweep row and a comparison row carry them.

    The simulator runs ``totals.images`` images (one per core when data-parallel)
    and reports energy and DRAM traffic for all of them; here they are divided
    by the images, and the energy-delay product is the per-image energy times
    the latency (one image's time through the network).
    """
    totals, hardware = result.totals, result.hardware
    energy = totals.energy_j / totals.images
    return {
        "pes": hardware["array"]["rows"] * hardware["array"]["cols"] * hardware["cores"],
        "cycles": totals.cycles,
        "latency_s": totals.latency_s,
        "throughput": totals.throughput,
        "energy_per_image_j": energy,
        "edp_per_image": energy * totals.latency_s,
        "dram_bytes_per_image": totals.dram_bytes / totals.images,
        "utilisation": totals.utilisation,
        "stall_share": totals.stall_share,
    }


# ----------------------------------------------------------------------------- the sweep

_worker_graphs: dict = {}
_worker_hardware: str = ""


def _start_worker(graphs: Mapping, hardware: str) -> None:
    """Give each worker process the graphs once, instead of pickling one per task."""
    global _worker_graphs, _worker_hardware
    _worker_graphs, _worker_hardware = dict(graphs), hardware


def _run_task(task: tuple[str, dict]) -> dict:
    model, point = task
    return simulate_point(model, _worker_graphs[model], _worker_hardware, point)


def run_sweep(
    graphs: Mapping[str, object],
    hardware: str,
    knobs: Mapping[str, Sequence],
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[dict]:
    """Simulate every model at every design point; one row per pair, models in the given order.

    ``hardware`` is a preset name or a TOML path; ``workers`` defaults to the
    cores this process may use; ``on_done`` is called once per finished point
    (a progress bar).  Every point is checked before any is simulated.
    """
    points = checked_points(hardware, knobs)
    tasks = [(model, point) for model in graphs for point in points]
    workers = min(workers or len(os.sched_getaffinity(0)), len(tasks))
    if workers <= 1:
        _start_worker(graphs, hardware)
        return [_tick(_run_task(task), on_done) for task in tasks]
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(dict(graphs), hardware)) as pool:
        futures = [pool.submit(_run_task, task) for task in tasks]
        try:
            for future in as_completed(futures):
                _tick(future.result(), on_done)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [future.result() for future in futures]


def _tick(row: dict, on_done: Callable[[], None] | None) -> dict:
    if on_done is not None:
        on_done()
    return row


# ----------------------------------------------------------------------------- writing


def with_pareto_flags(rows: Sequence[Mapping]) -> list[dict]:
    """Each row with a ``pareto`` column: True when it is on the front of :data:`PARETO_OBJECTIVES`."""
    return [{**row, "pareto": front} for row, front in zip(rows, pareto_mask(rows))]


def write_sweep(rows: Sequence[Mapping], out_dir) -> None:
    """``sweep.csv`` (every row, with its ``pareto`` flag) and ``pareto.csv`` (the front only), as one folder."""
    flagged = with_pareto_flags(rows)
    front = [row for row in flagged if row["pareto"]]
    write_text_folder(out_dir, {"sweep.csv": rows_to_csv(flagged), "pareto.csv": rows_to_csv(front)})


def text_table(rows: Sequence[Mapping], columns: Mapping[str, Callable[[Mapping], str]]) -> str:
    """A fixed-width table: ``columns`` maps each heading to how a row shows in it; names left, numbers right."""
    cells = [list(columns)] + [[show(row) for show in columns.values()] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    justified = [[line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])] for line in cells]
    lines = ["  ".join(line) for line in justified]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def point_label(row: Mapping) -> str:
    """A sweep row's design point in words: the columns between ``model`` and the results (``pes`` on)."""
    keys = list(row)
    return " ".join(f"{key}={row[key]}" for key in keys[1:keys.index("pes")])


def _milli(digits: int) -> Callable[[float], str]:
    return lambda value: f"{1e3 * value:.{digits}f}"


def _times(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:.{digits}f}x"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


# How each result field shows in a table, in one place so the terminal tables and the
# report agree on units and digits: seconds and joules as milli-units, shares as percent.
METRIC_FORMATS: dict[str, Callable[[float], str]] = {
    "latency_s": _milli(3),
    "dense_hw_latency_s": _milli(3),
    "cpu_latency_s": _milli(2),
    "energy_per_image_j": _milli(3),
    "throughput": lambda images_per_s: f"{images_per_s:.1f}",
    "edp_per_image": lambda joule_seconds: f"{1e6 * joule_seconds:.4g}",  # mJ*ms
    "dram_bytes_per_image": lambda size: f"{size / 1e6:.2f}",  # MB
    "utilisation": _percent,
    "stall_share": _percent,
    "speedup_vs_teacher": _times(2),
    "energy_saving_vs_teacher": _times(2),
    "edp_gain_vs_teacher": _times(2),
    "speedup_from_sparsity": _times(2),
    "energy_saving_from_sparsity": _times(2),
    "speedup_vs_cpu": _times(1),
}


def metric_cell(key: str, suffix: str = "") -> Callable[[Mapping], str]:
    """A table column showing ``row[key]`` as :data:`METRIC_FORMATS` says, with ``suffix`` after it."""
    show = METRIC_FORMATS[key]
    return lambda row: show(row[key]) + suffix


SWEEP_COLUMNS: dict[str, Callable[[Mapping], str]] = {
    "model": lambda r: r["model"],
    "design point": point_label,
    "PEs": lambda r: str(r["pes"]),
    "latency ms": metric_cell("latency_s"),
    "energy mJ": metric_cell("energy_per_image_j"),
    "util %": metric_cell("utilisation"),
    "stall %": metric_cell("stall_share"),
}


def sweep_targets(
    targets: Sequence[str], hardware: str, knobs: Mapping[str, Sequence], density: float, seed: int,
    workers: int | None = None, progress: bool = True,
) -> list[dict]:
    """Trace the models (the first one dense, the rest at ``density``) and sweep them; rows as :func:`run_sweep`."""
    from tqdm import tqdm

    from attentionlite.analysis.models import check_targets, trace_models

    check_targets(targets, density)
    total = len(targets) * len(checked_points(hardware, knobs))
    _, graphs = trace_models(targets, density, seed)
    with tqdm(total=total, disable=None if progress else True, unit="point", desc="simulating", leave=False) as bar:
        return run_sweep(graphs, hardware, knobs, workers=workers, on_done=lambda: bar.update(1))


def sweep_knobs(arrays: str, dataflows: str, cores: str | None, settings: Sequence[str]) -> dict[str, list]:
    """The knobs of a sweep from the command line's comma lists and ``KEY=V1,V2`` settings."""
    knobs: dict[str, list] = {"array": [parse_array(a) for a in arrays.split(",") if a.strip()]}
    knobs["dataflow"] = parse_names(dataflows)
    if cores:
        knobs["cores"] = parse_knob_values(cores)
    for setting in settings:
        key, sep, values = setting.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InputError(f"--set {setting!r}: expected KEY=V1,V2,... (e.g. dram.bandwidth_gb_s=12.8,25.6)")
        knobs[key.strip()] = parse_knob_values(values)
    return knobs
