"""Simulate an op graph on the accelerator: the pipeline read as one list (ZigZag's ``api.py``).

    graph = fold_batch_norms(graph)             # inference hardware folds BN into the conv before it
    formats = weight_formats(ops, kind, parts)  # per kind of core, per layer: sparse or dense weights, and
                                                # its tiles + access counts with every tensor via DRAM (mapping.py)
    layout = plan.layout(costs, kinds)          # which kind of core (and, pipelined, which core) runs each op
    kept = on_chip_reuse(ops, graph, ...)       # tensors the next op on the same core reads on chip (fusion.py)
    works = [map_op(op, hw, on_chip, parts) ...]  # again, without those tensors' DRAM traffic
    works = overlap_softmax(ops, works, ...)    # a fused softmax beside the array: only what it does not hide
    reads = dram_inputs(ops, graph, kept)       # which producers each op reads from DRAM (read after write)
    tasks = plan.tasks(works, layout, kinds, reads)  # tiles -> cores, with dependencies (schedules.py)
    timeline = run(tasks, hw)                   # every load, compute and store at an exact cycle (engine.py)
    return summarise(...)                       # per-op rows + totals + provenance (results.py)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from attentionlite.errors import InputError
from attentionlite.provenance import provenance
from attentionlite.simulator.accelerator.engine import Timeline, run
from attentionlite.simulator.accelerator.fusion import on_chip_reuse, overlap_softmax
from attentionlite.simulator.accelerator.hardware import CoreKind, HardwareConfig, core_kinds
from attentionlite.simulator.accelerator.mapping import Memo, core_design, has_sparse_form, map_op
from attentionlite.simulator.accelerator.memory import NOTHING_ON_CHIP, OnChip, OpWork
from attentionlite.simulator.accelerator.results import SimResult, summarise
from attentionlite.simulator.accelerator.schedules import SCHEDULES, Schedule, Task, split_tasks
from attentionlite.simulator.graph.graph import OpGraph, fold_batch_norms
from attentionlite.simulator.graph.ops import Op


def _ops_of(graph: OpGraph | Sequence[Op]) -> list[Op]:
    return graph.ops_in_order() if isinstance(graph, OpGraph) else list(graph)


@dataclass(frozen=True)
class Scheduled:
    """A graph's ops as run: the core design each runs on, their work, what stays on chip, the tasks and
    the engine's timeline."""

    graph: OpGraph | Sequence[Op]
    ops: list[Op]
    designs: list[HardwareConfig]
    works: list[OpWork]
    kept: list[OnChip]
    tasks: list[Task]
    timeline: Timeline


def simulate(graph: OpGraph | Sequence[Op], config: HardwareConfig, schedule: str = "data") -> SimResult:
    """Simulate ``graph`` (an OpGraph, or a sequence of Ops in order) on the accelerator ``config``.

    ``schedule``: ``data`` (images across cores), ``pipeline`` (balanced layer
    stages across cores) or ``split`` (each op's folds across cores).
    """
    return summarise_run(schedule_and_run(graph, config, schedule), config, schedule)


def summarise_run(done: Scheduled, config: HardwareConfig, schedule: str) -> SimResult:
    """The per-op rows, totals and provenance of a run :func:`schedule_and_run` made."""
    graph = done.graph
    metadata = dict(graph.metadata) if isinstance(graph, OpGraph) else {}
    run_options = {"schedule": schedule, "sparsity": config.sparsity.mode, "window_mapping": config.attention.window_mapping,
                   "fold_batch_norm": config.fold_batch_norm}
    return summarise(done.ops, done.works, done.designs, done.tasks, done.timeline, config, run_options,
                     provenance(graph=metadata, **run_options))


def schedule_and_run(graph: OpGraph | Sequence[Op], config: HardwareConfig, schedule: str) -> Scheduled:
    """Every step of :func:`simulate` up to the engine's timeline (the module doc lists them)."""
    if schedule not in SCHEDULES:
        raise InputError(f"schedule {schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")
    if isinstance(graph, OpGraph) and config.fold_batch_norm:
        graph = fold_batch_norms(graph)
    ops = _ops_of(graph)
    plan, kinds = SCHEDULES[schedule], core_kinds(config)
    formats = [weight_formats(ops, kind, plan.parts(kind)) for kind in kinds]  # per kind, per op: the
    # hardware it runs on and its work with every tensor via DRAM (None where the kind cannot run it)
    layout = plan.layout([[_cycles(plan, f) for f in per_kind] for per_kind in formats], kinds)
    chosen = [_runnable(formats[kind][i]) for i, kind in enumerate(layout.kind_of)]
    designs = [hw for hw, _ in chosen]
    kept = on_chip_reuse(ops, graph, plan.follows_on_same_core(layout, kinds), designs)  # what stays on chip
    works = [map_op(op, hw, on_chip, plan.parts(kinds[kind])) if on_chip != NOTHING_ON_CHIP else work
             for op, (hw, work), on_chip, kind in zip(ops, chosen, kept, layout.kind_of)]
    works = overlap_softmax(ops, works, kept, designs)
    tasks = plan.tasks(works, layout, kinds, dram_inputs(ops, graph, kept))  # tiles -> cores, with dependencies
    return Scheduled(graph, ops, designs, works, kept, tasks, run(tasks, config))  # every transfer and tile at a cycle


def _runnable(formatted: tuple[HardwareConfig, OpWork] | None) -> tuple[HardwareConfig, OpWork]:
    if formatted is None:  # a layout places an op only on a kind of core that runs it
        raise AssertionError("an op was laid out on a kind of core that cannot run it")
    return formatted


def _cycles(plan: Schedule, formatted: tuple[HardwareConfig, OpWork] | None) -> int | None:
    """An op's compute cycles on one core of a kind, or (split) on that kind's cores; None: it cannot run there."""
    if formatted is None:
        return None
    work = formatted[1]
    if not plan.shares_each_op:
        return int(work.tiles.compute.sum())
    reduction = int(work.reduction.compute.sum()) if work.reduction is not None else 0
    return max(int(part.compute.sum()) for part in work.parts) + reduction


def weight_formats(ops: Sequence[Op], kind: CoreKind, parts: int) -> list[tuple[HardwareConfig, OpWork] | None]:
    """Per op, the hardware it runs on (the kind's design, or the same with sparsity off for a layer
    stored dense) and its work with every tensor via DRAM; None for an op the kind cannot run.

    As a compiler for sparse hardware does, each layer is stored in the
    sparse format only where that moves no more DRAM bytes and, run on its
    own, takes no longer than the dense format: index metadata can outweigh
    the weights it saves, and whole-byte transfers of small tiles can cost
    more cycles.  So a dense (or barely pruned) layer costs exactly what it
    costs on dense hardware.  Decided once per op, before any on-chip reuse.
    """
    config = kind.design
    dense_config = replace(config, sparsity=replace(config.sparsity, mode="none"))
    formats: list[tuple[HardwareConfig, OpWork] | None] = []
    for op in ops:
        if not kind.can_run(op.kind):
            formats.append(None)
        elif has_sparse_form(op, config) and not _sparse_is_no_worse(op, config, dense_config, parts):
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
    tasks: list[Task] = []
    split_tasks(0, work, range(len(work.parts)), (), (), tasks)
    return run(tasks, config).makespan


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
