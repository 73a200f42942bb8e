"""Simulate an op graph on the accelerator: the pipeline read as one list (ZigZag's ``api.py``).

    graph = fold_batch_norms(graph)             # inference hardware folds BN into the conv before it
    formats = weight_formats(ops, hw, parts)    # per layer: sparse or dense weights, and its tiles + access
                                                # counts with every tensor via DRAM (mapping.py)
    kept = on_chip_reuse(ops, graph, ...)       # tensors the next op on the same core reads on chip
    works = [map_op(op, hw, on_chip, parts) ...]  # again, without those tensors' DRAM traffic
    reads = dram_inputs(ops, graph, kept)       # which producers each op reads from DRAM (read after write)
    tasks = SCHEDULES[schedule].tasks(works, hw, reads)  # tiles -> cores, with dependencies (schedules.py)
    timeline = run(tasks, hw)                   # every load, compute and store at an exact cycle (engine.py)
    return summarise(...)                       # per-op rows + totals + provenance (results.py)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from attentionlite.errors import InputError
from attentionlite.provenance import provenance
from attentionlite.simulator.accelerator.engine import Timeline, run
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.mapping import Memo, core_design, has_sparse_form, map_op
from attentionlite.simulator.accelerator.memory import NOTHING_ON_CHIP, OnChip, OpWork, on_chip_reuse
from attentionlite.simulator.accelerator.results import SimResult, summarise
from attentionlite.simulator.accelerator.schedules import SCHEDULES, Task, tile_split
from attentionlite.simulator.graph.graph import OpGraph, fold_batch_norms
from attentionlite.simulator.graph.ops import Op


def _ops_of(graph: OpGraph | Sequence[Op]) -> list[Op]:
    return graph.ops_in_order() if isinstance(graph, OpGraph) else list(graph)


@dataclass(frozen=True)
class Scheduled:
    """A graph's ops as run: their work, what stays on chip, the tasks and the engine's timeline."""

    graph: OpGraph | Sequence[Op]
    ops: list[Op]
    works: list[OpWork]
    kept: list[OnChip]
    tasks: list[Task]
    timeline: Timeline


def simulate(graph: OpGraph | Sequence[Op], config: HardwareConfig, schedule: str = "data") -> SimResult:
    """Simulate ``graph`` (an OpGraph, or a sequence of Ops in order) on the accelerator ``config``.

    ``schedule``: ``data`` (images across cores), ``pipeline`` (balanced layer
    stages across cores) or ``split`` (each op's folds across cores).
    """
    done = schedule_and_run(graph, config, schedule)
    metadata = dict(done.graph.metadata) if isinstance(done.graph, OpGraph) else {}
    run_options = {"schedule": schedule, "sparsity": config.sparsity.mode, "window_mapping": config.attention.window_mapping,
                   "fold_batch_norm": config.fold_batch_norm}
    return summarise(done.ops, done.works, done.tasks, done.timeline, config, run_options,
                     provenance(graph=metadata, **run_options))


def schedule_and_run(graph: OpGraph | Sequence[Op], config: HardwareConfig, schedule: str) -> Scheduled:
    """Every step of :func:`simulate` up to the engine's timeline (the module doc lists them)."""
    if schedule not in SCHEDULES:
        raise InputError(f"schedule {schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")
    if isinstance(graph, OpGraph) and config.fold_batch_norm:
        graph = fold_batch_norms(graph)
    ops = _ops_of(graph)
    plan = SCHEDULES[schedule]
    parts = plan.parts(config)
    formats = weight_formats(ops, config, parts)  # per op: the hardware it runs on, and its work all via DRAM
    streamed = [work for _, work in formats]
    kept = on_chip_reuse(ops, graph, plan.follows_on_same_core(streamed, config), config)  # what stays on chip
    works = [map_op(op, hw, on_chip, parts) if on_chip != NOTHING_ON_CHIP else work
             for op, (hw, work), on_chip in zip(ops, formats, kept)]
    tasks = plan.tasks(works, config, dram_inputs(ops, graph, kept))  # tiles -> cores, with dependencies
    return Scheduled(graph, ops, works, kept, tasks, run(tasks, config))  # every transfer and tile at a cycle


def weight_formats(ops: Sequence[Op], config: HardwareConfig, parts: int) -> list[tuple[HardwareConfig, OpWork]]:
    """Per op, the hardware it runs on (``config``, or the same hardware with sparsity off for a layer
    stored dense) and its work with every tensor via DRAM.

    As a compiler for sparse hardware does, each layer is stored in the
    sparse format only where that moves no more DRAM bytes and, run on its
    own, takes no longer than the dense format: index metadata can outweigh
    the weights it saves, and whole-byte transfers of small tiles can cost
    more cycles.  So a dense (or barely pruned) layer costs exactly what it
    costs on dense hardware.  Decided once per op, before any on-chip reuse.
    """
    dense_config = replace(config, sparsity=replace(config.sparsity, mode="none"))
    formats = []
    for op in ops:
        if has_sparse_form(op, config) and not _sparse_is_no_worse(op, config, dense_config, parts):
            formats.append((dense_config, map_op(op, dense_config, parts=parts)))
        else:
            formats.append((config, map_op(op, config, parts=parts)))
    return formats


# The choice depends on the op, one core's design and the DRAM channel (bytes per cycle and latency).
_FORMAT_CHOICES: Memo[bool] = Memo(4096)


def _sparse_is_no_worse(op: Op, config: HardwareConfig, dense_config: HardwareConfig, parts: int) -> bool:
    def decide() -> bool:
        sparse, dense = map_op(op, config, parts=parts), map_op(op, dense_config, parts=parts)
        moved = [work.traffic.dram_read + work.traffic.dram_write for work in (sparse, dense)]
        return moved[0] <= moved[1] and _alone_cycles(sparse, config) <= _alone_cycles(dense, config)

    key = (op, core_design(config), parts, config.dram_bytes_per_cycle, config.dram_latency_cycles)
    return _FORMAT_CHOICES.get(key, decide)


def _alone_cycles(work: OpWork, config: HardwareConfig) -> int:
    """Cycles the op takes on an otherwise idle accelerator (its parts on their cores, then any reduction)."""
    return run(tile_split([work], config, [()]), config).makespan


def dram_inputs(ops: Sequence[Op], graph: OpGraph | Sequence[Op], kept: Sequence[OnChip]) -> list[tuple[int, ...]]:
    """For each op, the ops whose outputs it loads from DRAM: its producers, less the one it reads on chip.

    A bare list of ops has no edges: each op is taken to read nothing produced.
    """
    if not isinstance(graph, OpGraph):
        return [() for _ in ops]
    index = {op.name: i for i, op in enumerate(ops)}
    reads = []
    for i, op in enumerate(ops):
        on_chip_producer = i - 1 if kept[i].inputs else None
        reads.append(tuple(index[p] for p in graph.producers(op.name) if index[p] != on_chip_producer))
    return reads
