"""Design-space sweeps: the cross product of hardware knobs, over models, on local cores or a Ray cluster.

A *design point* is a dict of knob values (``{"array": (32, 32), "dataflow":
"ws", "cores": 4}``); any knob of the hardware config can be swept (by the
names :func:`~attentionlite.simulator.accelerator.hardware.with_overrides`
accepts, e.g. ``dram.bandwidth_gb_s``, ``sparsity``), plus ``sram_kib`` (all
three SRAM buffers at once) and the simulator's ``schedule`` (data, pipeline,
split).  :func:`design_points` builds and checks every point once, at the
door; every (model, design point) pair is then one independent
:func:`simulate` run, so the sweep fans them out (over this host's
processes, or over a Ray cluster) and gathers one tidy row per pair, in the
order the pairs were listed, whichever the executor; a row is exactly what
:func:`simulate_point` returns for that pair alone (the test suite checks
this).  A :class:`SweepJournal` keeps each row as it finishes, so that an
interrupted sweep resumes without simulating those pairs again.

The Pareto front is taken over all rows: latency, energy and silicon area
(every core's arrays, vector units and buffers, :mod:`~attentionlite.simulator.accelerator.area`)
are minimised together, so a row is on the front when no other row is at least
as good on all three and better on one.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from attentionlite.errors import InputError
from attentionlite.files import atomic_write_text, rows_to_csv, write_text_folder
from attentionlite.simulator.accelerator.hardware import HardwareConfig, with_overrides
from attentionlite.simulator.accelerator.results import SimResult
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.graph import OpGraph

PARETO_OBJECTIVES = ("latency_s", "energy_per_image_j", "area_mm2")
SIMULATE_KNOBS = ("schedule",)  # passed to simulate(); every other knob overrides the hardware config

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
    overrides = {knob: value for knob, value in point.items() if knob not in SIMULATE_KNOBS}
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
    return {"model": model, **point_columns(point), **result_columns(simulate(graph, changed, **options))}


def point_columns(point: Point) -> dict:
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
    totals, image = result.totals, result.totals.per_image
    return {
        "pes": totals.pes,
        "area_mm2": totals.area_mm2,
        "cycles": totals.cycles,
        "latency_s": totals.latency_s,
        "throughput": totals.throughput,
        "energy_per_image_j": image.energy_j,
        "edp_per_image": image.edp,
        "dram_bytes_per_image": image.dram_bytes,
        "utilisation": totals.utilisation,
        "stall_share": totals.stall_share,
    }


# ----------------------------------------------------------------------------- executors
#
# An executor runs (index, model, point) tasks and yields (index, row) as each
# finishes, in any order; the sweep puts the rows back in task order, so every
# executor gives the same rows in the same order.

SweepTask = tuple[int, str, dict]
ENGINES = ("local", "ray")
# Points of one model per task sent to a worker: consecutive points share a core design (the last knobs
# vary fastest), so the worker maps each op once for them; on Ray it also amortises unpacking the graph.
POINTS_PER_TASK = 8

_worker_graphs: dict[str, OpGraph] = {}
_worker_config: HardwareConfig | None = None


def _start_worker(graphs: Mapping[str, OpGraph], config: HardwareConfig) -> None:
    """Give each worker process the graphs and the config once, instead of pickling them per task."""
    global _worker_graphs, _worker_config
    _worker_graphs, _worker_config = dict(graphs), config


def _run_chunk(chunk: Sequence[SweepTask]) -> list[tuple[int, dict]]:
    assert _worker_config is not None, "the worker was not started"
    return _simulate_chunk(_worker_graphs[chunk[0][1]], _worker_config, chunk)


def _local_rows(graphs: Mapping[str, OpGraph], config: HardwareConfig, tasks: Sequence[SweepTask],
                workers: int) -> Iterator[tuple[int, dict]]:
    """This host's processes (in this process when one worker will do)."""
    if workers <= 1:
        _start_worker(graphs, config)
        for task in tasks:  # one at a time: each row reaches the journal as it is done
            yield from _run_chunk([task])
        return
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(dict(graphs), config)) as pool:
        size = max(1, min(POINTS_PER_TASK, len(tasks) // (4 * workers)))  # enough chunks to balance the workers
        futures = [pool.submit(_run_chunk, chunk) for chunk in _chunks(tasks, size)]
        try:
            for future in as_completed(futures):
                yield from future.result()
        finally:  # interrupted or failed: drop what has not started
            for future in futures:
                future.cancel()


def _simulate_chunk(graph: OpGraph, config: HardwareConfig, chunk: Sequence[SweepTask]) -> list[tuple[int, dict]]:
    """Points of one model, in order."""
    return [(index, simulate_point(model, graph, config, point)) for index, model, point in chunk]


@contextmanager
def ray_cluster(workers: int | None, address: str | None) -> Iterator[None]:
    """Ray, connected: to the cluster at ``address`` (``auto``, ``ray://host:port``), or to a local
    instance of ``workers`` CPUs started here and stopped on leaving.  Already connected: left as it is."""
    try:
        import ray
    except ImportError:
        raise InputError("engine 'ray' needs Ray; install it with: pip install -e '.[ray]'") from None
    if ray.is_initialized():
        yield
        return
    options = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
    try:
        ray.init(log_to_driver=False, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise InputError(f"Ray cluster {address!r}: cannot connect ({error}); expected auto or ray://host:port "
                         "of a running cluster") from None
    try:
        yield
    finally:
        ray.shutdown()


def _ray_rows(graphs: Mapping[str, OpGraph], config: HardwareConfig, tasks: Sequence[SweepTask],
              workers: int | None, address: str | None) -> Iterator[tuple[int, dict]]:
    """A Ray cluster (see :func:`ray_cluster`); graphs and config go to the object store once."""
    with ray_cluster(workers, address):
        import ray

        remote = ray.remote(_simulate_chunk)
        graph_refs = {model: ray.put(graph) for model, graph in graphs.items()}
        config_ref = ray.put(config)
        pending = [remote.remote(graph_refs[chunk[0][1]], config_ref, chunk)
                   for chunk in _chunks(tasks, POINTS_PER_TASK)]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield from ray.get(ready[0])


def finished_rows(graphs: Mapping[str, OpGraph], config: HardwareConfig, tasks: Sequence[SweepTask],
                  workers: int | None = None, engine: str = "local",
                  address: str | None = None) -> Iterator[tuple[int, dict]]:
    """(index, row) of each task as it finishes, on ``engine`` (``local`` or ``ray``), in any order."""
    check_executor(engine, workers, address)
    if engine == "local":
        return _local_rows(graphs, config, tasks, max(1, min(workers or len(os.sched_getaffinity(0)), len(tasks))))
    return _ray_rows(graphs, config, tasks, workers, address)


def check_executor(engine: str, workers: int | None = None, address: str | None = None) -> None:
    """Where the points will run: a known engine, a positive worker count (None: every core), and a cluster
    address only for Ray, which is the only engine that would use it."""
    if engine not in ENGINES:
        raise InputError(f"sweep engine {engine!r} is not known; expected one of {', '.join(ENGINES)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers is {workers!r}; expected at least 1 (or none: every core this process may use)")
    if address is not None and engine != "ray":
        raise InputError(f"address {address!r} is a Ray cluster's, but the engine is {engine!r}; expected engine "
                         "'ray' with it, or no address")


def _chunks(tasks: Sequence[SweepTask], size: int) -> list[list[SweepTask]]:
    """Runs of consecutive tasks of one model, at most ``size`` long."""
    chunks: list[list[SweepTask]] = []
    for task in tasks:
        if chunks and chunks[-1][0][1] == task[1] and len(chunks[-1]) < size:
            chunks[-1].append(task)
        else:
            chunks.append([task])
    return chunks


# ----------------------------------------------------------------------------- the sweep


def sweep_tasks(graphs: Mapping[str, OpGraph], points: Sequence[dict]) -> list[SweepTask]:
    """Every (model, point) pair, numbered: models in the given order, points in theirs."""
    return [(index, model, point) for index, (model, point) in
            enumerate((model, point) for model in graphs for point in points)]


def run_sweep(
    graphs: Mapping[str, OpGraph],
    config: HardwareConfig,
    points: Sequence[dict],
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
    engine: str = "local",
    address: str | None = None,
    journal: SweepJournal | None = None,
) -> list[dict]:
    """Simulate every model at every design point; one row per pair, models in the given order.

    ``points`` come from :func:`design_points`; ``workers`` defaults to the
    cores this process may use; ``on_done`` is called once per finished point
    (a progress bar); ``engine`` is ``local`` (processes on this host) or
    ``ray`` (a cluster, at ``address`` or started here).  With a ``journal``,
    the pairs it holds are not simulated again and each new row is added to it
    as it finishes.
    """
    tasks = sweep_tasks(graphs, points)
    rows = journal.finished(tasks) if journal is not None else {}
    todo = [task for task in tasks if task[0] not in rows]
    for index, row in finished_rows(graphs, config, todo, workers, engine, address):
        rows[index] = row
        if journal is not None:
            journal.add(tasks[index], row)
        if on_done is not None:
            on_done()
    return [rows[index] for index, _, _ in tasks]


def sweep_graphs(
    graphs: Mapping[str, OpGraph], config: HardwareConfig, points: Sequence[dict], workers: int | None = None,
    progress: bool = True, engine: str = "local", address: str | None = None, journal: SweepJournal | None = None,
) -> list[dict]:
    """:func:`run_sweep` with a progress bar over the (model, point) pairs."""
    from tqdm import tqdm

    total = len(graphs) * len(points)
    resumed = len(journal.finished(sweep_tasks(graphs, points))) if journal is not None else 0
    with tqdm(total=total, initial=resumed, disable=None if progress else True, unit="point", desc="simulating",
              leave=False) as bar:
        return run_sweep(graphs, config, points, workers, lambda: bar.update(1), engine, address, journal)


class SweepJournal:
    """The rows of a sweep finished so far, one JSON line each, so that an interrupted sweep resumes.

    A line holds a pair's number, model, design point and row; reading checks
    each against the sweep being run (a journal of another sweep is refused)
    and drops a last line cut short by a kill.  JSON keeps every value's type
    and floats exactly, so a resumed sweep writes the same bytes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[int, dict] | None = None

    def finished(self, tasks: Sequence[SweepTask]) -> dict[int, dict]:
        """Rows by pair number (read once; a cut-short last line is dropped from the file too)."""
        if self._rows is None:
            self._rows = self._read(tasks)
        return dict(self._rows)

    def _read(self, tasks: Sequence[SweepTask]) -> dict[int, dict]:
        if not self.path.exists():
            return {}
        lines = self.path.read_text().splitlines(keepends=True)
        rows: dict[int, dict] = {}
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) and not line.endswith("\n"):  # the write a kill interrupted
                    atomic_write_text(self.path, "".join(lines[:-1]))
                    break
                raise InputError(f"{self.path} line {number}: not a journal entry; expected one JSON object "
                                 "per line (delete the journal to start over)") from None
            rows[self._check(entry, tasks, number)] = entry["row"]
        return rows

    def _check(self, entry: object, tasks: Sequence[SweepTask], number: int) -> int:
        """The pair number of a line that matches its pair (number, model and point) and holds a row."""
        index = entry.get("index") if isinstance(entry, dict) else None
        if not (isinstance(entry, dict) and isinstance(index, int) and 0 <= index < len(tasks)
                and isinstance(entry.get("row"), dict)
                and all(_json(entry.get(key)) == _json(value)
                        for key, value in zip(("index", "model", "point"), tasks[index]))):
            raise InputError(f"{self.path} line {number}: from another sweep (models or design points differ); "
                             "expected the same command to resume it, or delete the journal to start over")
        return index

    def add(self, task: SweepTask, row: dict) -> None:
        """Append one finished row (flushed, so a killed sweep keeps it)."""
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps({"index": task[0], "model": task[1], "point": task[2], "row": row}) + "\n")
        except OSError as error:
            raise InputError(f"{self.path}: cannot write the sweep's journal ({error.strerror}); expected a "
                             "writable folder beside the output folder") from None



def journal_path(out_dir: str | Path) -> Path:
    """Where a sweep writing ``out_dir`` keeps its journal: ``<out_dir>.journal.jsonl`` beside it (a folder
    written whole cannot hold it)."""
    out = Path(out_dir)
    return out.with_name(f"{out.name}.journal.jsonl")


def _json(value: Any) -> str:
    """Canonical JSON text (a point's tuples as lists), to compare a line with its pair."""
    return json.dumps(value, sort_keys=True)


# ----------------------------------------------------------------------------- writing


def with_pareto_flags(rows: Sequence[Mapping]) -> list[dict]:
    """Each row with a ``pareto`` column: True when it is on the front of :data:`PARETO_OBJECTIVES`."""
    return [{**row, "pareto": front} for row, front in zip(rows, pareto_mask(rows))]


def sweep_files(rows: Sequence[Mapping]) -> dict[str, str]:
    """``sweep.csv`` (every row, with its ``pareto`` flag) and ``pareto.csv`` (the front only), as text."""
    flagged = with_pareto_flags(rows)
    return {"sweep.csv": rows_to_csv(flagged), "pareto.csv": rows_to_csv(row for row in flagged if row["pareto"])}


def write_sweep(rows: Sequence[Mapping], out_dir: str) -> None:
    """:func:`sweep_files` as one folder."""
    write_text_folder(out_dir, sweep_files(rows))
