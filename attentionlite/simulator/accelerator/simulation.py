"""Simulate an op graph on the accelerator: the pipeline read as one list (ZigZag's ``api.py``).

    streamed = [map_op(op, hw) for op in ops]   # each op -> tiles + access counts (mapping.py)
    kept = on_chip_reuse(ops, graph, ...)       # tensors the next op on the same core reads on chip
    works = [map_op(op, hw, on_chip) ...]       # again, without those tensors' DRAM traffic
    tasks = SCHEDULES[schedule].tasks(works)    # tiles -> cores, with dependencies (schedules.py)
    timeline = run(tasks, hw)                   # every load, compute and store at an exact cycle (engine.py)
    return summarise(...)                       # per-op rows + totals + provenance (results.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from attentionlite.errors import InputError
from attentionlite.provenance import provenance
from attentionlite.simulator.accelerator.engine import run
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.mapping import map_op
from attentionlite.simulator.accelerator.memory import NOTHING_ON_CHIP, on_chip_reuse
from attentionlite.simulator.accelerator.results import SimResult, summarise
from attentionlite.simulator.accelerator.schedules import SCHEDULES
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Op


def _ops_of(graph: OpGraph | Sequence[Op]) -> list[Op]:
    return graph.ops_in_order() if isinstance(graph, OpGraph) else list(graph)


def simulate(graph: OpGraph | Sequence[Op], config: HardwareConfig, schedule: str = "data") -> SimResult:
    """Simulate ``graph`` (an OpGraph, or a sequence of Ops in order) on the accelerator ``config``.

    ``schedule``: ``data`` (images across cores), ``pipeline`` (balanced layer
    stages across cores) or ``split`` (each op's tiles across cores).
    """
    if schedule not in SCHEDULES:
        raise InputError(f"schedule {schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")
    ops = _ops_of(graph)
    plan = SCHEDULES[schedule]
    streamed = [map_op(op, config) for op in ops]  # each op -> tiles + access counts, every tensor via DRAM
    kept = on_chip_reuse(ops, graph, plan.follows_on_same_core(streamed, config), config)  # what stays on chip
    works = [map_op(op, config, on_chip) if on_chip != NOTHING_ON_CHIP else work for op, work, on_chip in zip(ops, streamed, kept)]
    tasks = plan.tasks(works, config)  # tiles -> cores, with dependencies
    timeline = run(tasks, config)  # every load, compute and store at an exact cycle
    metadata = dict(graph.metadata) if isinstance(graph, OpGraph) else {}
    run_options = {"schedule": schedule, "sparsity": config.sparsity.mode, "window_mapping": config.attention.window_mapping}
    return summarise(ops, works, tasks, timeline, config, run_options, provenance(graph=metadata, **run_options))
