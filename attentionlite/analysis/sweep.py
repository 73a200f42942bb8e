"""Design-space sweeps: the cross product of hardware knobs, over models, on all local cores.

A *design point* is a dict of knob values (``{"array": (32, 32), "dataflow":
"ws", "cores": 4}``); any knob of the hardware config can be swept (by the
names :func:`~attentionlite.simulator.accelerator.hardware.with_overrides`
accepts, e.g. ``dram.bandwidth_gb_s``, ``sparsity``), plus ``sram_kib`` (all
three SRAM buffers at once) and the simulator's ``schedule`` (data, pipeline,
split).  :func:`design_points` builds and checks every point once, at the
door; every (model, design point) pair is then one independent
:func:`simulate` run, so the sweep fans them out over worker processes and
gathers one tidy row per pair, in the order the pairs were listed; a row is
exactly what :func:`simulate_point` returns for that pair alone (the test
suite checks this).

The Pareto front is taken over all rows: latency, energy and processing
elements (PEs over all cores, the silicon a design costs) are minimised
together, so a row is on the front when no other row is at least as good on
all three and better on one.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from attentionlite.errors import InputError
from attentionlite.files import rows_to_csv, write_text_folder
from attentionlite.simulator.accelerator.hardware import HardwareConfig, with_overrides
from attentionlite.simulator.accelerator.results import SimResult
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.graph import OpGraph

PARETO_OBJECTIVES = ("latency_s", "energy_per_image_j", "pes")
SIMULATE_KNOBS = ("schedule",)  # passed to simulate(); every other knob overrides the hardware config
# Knobs that set several config fields at once, so "SRAM size" is one axis of a sweep.
COMPOSITE_KNOBS = {"sram_kib": ("sram.input_kib", "sram.weight_kib", "sram.output_kib")}

Point = Mapping[str, Any]


def design_points(config: HardwareConfig, knobs: Mapping[str, Sequence]) -> list[dict]:
    """Every combination of the knobs' values (the first knob varies slowest), each checked against ``config``
    so that a bad knob or value fails before any simulation."""
    for name, values in knobs.items():
        if not values:
            raise InputError(f"sweep knob {name!r} has no values; expected at least one")
    names = list(knobs)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(knobs[n] for n in names))]
    for point in points:
        apply_point(config, point)
    return points


def apply_point(config: HardwareConfig, point: Point) -> tuple[HardwareConfig, dict]:
    """(``config`` with the point's hardware knobs applied, keyword options for :func:`simulate`)."""
    overrides = {}
    for knob, value in point.items():
        if knob not in SIMULATE_KNOBS:
            overrides.update(dict.fromkeys(COMPOSITE_KNOBS.get(knob, (knob,)), value))
    return with_overrides(config, **overrides), {k: v for k, v in point.items() if k in SIMULATE_KNOBS}


def pareto_mask(rows: Sequence[Mapping], objectives: Sequence[str] = PARETO_OBJECTIVES) -> list[bool]:
    """True for each row no other row dominates (all objectives minimised)."""
    values = np.array([[float(row[o]) for o in objectives] for row in rows]).reshape(len(rows), len(objectives))
    no_worse = (values[:, None, :] <= values[None, :, :]).all(axis=2)  # [i, j]: i no worse than j
    better = (values[:, None, :] < values[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    return [not bool(flag) for flag in np.atleast_1d(dominated)]


# ----------------------------------------------------------------------------- one point


def simulate_point(model: str, graph: OpGraph, config: HardwareConfig, point: Point) -> dict:
    """One (model, design point) simulated on its own: the row the sweep writes for it."""
    changed, options = apply_point(config, point)
    return {"model": model, **_point_columns(point), **result_columns(simulate(graph, changed, **options))}


def _point_columns(point: Point) -> dict:
    """The knob values as CSV columns; an array size becomes its rows and columns."""
    columns = {}
    for name, value in point.items():
        if name == "array":
            columns["array_rows"], columns["array_cols"] = value
        else:
            columns[name] = value
    return columns


def result_columns(result: SimResult) -> dict:
    """One simulation's totals per image, as a sweep row and a comparison row carry them.

    Energy, its energy-delay product (per-image energy times one batch's
    latency) and DRAM traffic are the simulator's per-image cost; cycles,
    latency and throughput are of the run it simulated.
    """
    totals, hardware, image = result.totals, result.hardware, result.totals.per_image
    return {
        "pes": hardware["array"]["rows"] * hardware["array"]["cols"] * hardware["cores"],
        "cycles": totals.cycles,
        "latency_s": totals.latency_s,
        "throughput": totals.throughput,
        "energy_per_image_j": image.energy_j,
        "edp_per_image": image.edp,
        "dram_bytes_per_image": image.dram_bytes,
        "utilisation": totals.utilisation,
        "stall_share": totals.stall_share,
    }


# ----------------------------------------------------------------------------- the sweep

_worker_graphs: dict[str, OpGraph] = {}
_worker_config: HardwareConfig | None = None


def _start_worker(graphs: Mapping[str, OpGraph], config: HardwareConfig) -> None:
    """Give each worker process the graphs and the config once, instead of pickling them per task."""
    global _worker_graphs, _worker_config
    _worker_graphs, _worker_config = dict(graphs), config


def _run_task(task: tuple[str, dict]) -> dict:
    model, point = task
    assert _worker_config is not None, "the worker was not started"
    return simulate_point(model, _worker_graphs[model], _worker_config, point)


def run_sweep(
    graphs: Mapping[str, OpGraph],
    config: HardwareConfig,
    points: Sequence[dict],
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[dict]:
    """Simulate every model at every design point; one row per pair, models in the given order.

    ``points`` come from :func:`design_points`; ``workers`` defaults to the
    cores this process may use; ``on_done`` is called once per finished point
    (a progress bar).
    """
    tasks = [(model, point) for model in graphs for point in points]
    workers = min(workers or len(os.sched_getaffinity(0)), len(tasks))
    if workers <= 1:
        _start_worker(graphs, config)
        return [_tick(_run_task(task), on_done) for task in tasks]
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(dict(graphs), config)) as pool:
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


def sweep_graphs(
    graphs: Mapping[str, OpGraph], config: HardwareConfig, points: Sequence[dict], workers: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """:func:`run_sweep` with a progress bar over the (model, point) pairs."""
    from tqdm import tqdm

    total = len(graphs) * len(points)
    with tqdm(total=total, disable=None if progress else True, unit="point", desc="simulating", leave=False) as bar:
        return run_sweep(graphs, config, points, workers=workers, on_done=lambda: bar.update(1))


# ----------------------------------------------------------------------------- writing


def with_pareto_flags(rows: Sequence[Mapping]) -> list[dict]:
    """Each row with a ``pareto`` column: True when it is on the front of :data:`PARETO_OBJECTIVES`."""
    return [{**row, "pareto": front} for row, front in zip(rows, pareto_mask(rows))]


def write_sweep(rows: Sequence[Mapping], out_dir: str) -> None:
    """``sweep.csv`` (every row, with its ``pareto`` flag) and ``pareto.csv`` (the front only), as one folder."""
    flagged = with_pareto_flags(rows)
    front = [row for row in flagged if row["pareto"]]
    write_text_folder(out_dir, {"sweep.csv": rows_to_csv(flagged), "pareto.csv": rows_to_csv(front)})
