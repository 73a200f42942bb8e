"""Simulate an op graph on the accelerator: the pipeline read as one list (ZigZag's ``api.py``).

    graph = fold_batch_norms(graph)             # inference hardware folds BN into the conv before it
    hws = weight_formats(ops, hw, parts)        # per layer: sparse hardware, or dense where sparse is no better
    streamed = [map_op(op, hw, parts) ...]      # each op -> tiles + access counts (mapping.py)
    kept = on_chip_reuse(ops, graph, ...)       # tensors the next op on the same core reads on chip
    works = [map_op(op, hw, on_chip, parts) ...]  # again, without those tensors' DRAM traffic
    reads = dram_inputs(ops, graph, kept)       # which producers each op reads from DRAM (read after write)
    tasks = SCHEDULES[schedule].tasks(works, hw, reads)  # tiles -> cores, with dependencies (schedules.py)
    timeline = run(tasks, hw)                   # every load, compute and store at an exact cycle (engine.py)
    return summarise(...)                       # per-op rows + totals + provenance (results.py)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from attentionlite.errors import InputError
from attentionlite.provenance import provenance
from attentionlite.simulator.accelerator.engine import run
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.mapping import has_sparse_form, map_op
from attentionlite.simulator.accelerator.memory import NOTHING_ON_CHIP, OnChip, OpWork, on_chip_reuse
from attentionlite.simulator.accelerator.results import SimResult, summarise
from attentionlite.simulator.accelerator.schedules import SCHEDULES, tile_split
from attentionlite.simulator.graph.graph import OpGraph, fold_batch_norms
from attentionlite.simulator.graph.ops import Op


def _ops_of(graph: OpGraph | Sequence[Op]) -> list[Op]:
    return graph.ops_in_order() if isinstance(graph, OpGraph) else list(graph)


def simulate(graph: OpGraph | Sequence[Op], config: HardwareConfig, schedule: str = "data") -> SimResult:
    """Simulate ``graph`` (an OpGraph, or a sequence of Ops in order) on the accelerator ``config``.

    ``schedule``: ``data`` (images across cores), ``pipeline`` (balanced layer
    stages across cores) or ``split`` (each op's folds across cores).
    """
    if schedule not in SCHEDULES:
        raise InputError(f"schedule {schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")
    if isinstance(graph, OpGraph) and config.fold_batch_norm:
        graph = fold_batch_norms(graph)
    ops = _ops_of(graph)
    plan = SCHEDULES[schedule]
    parts = plan.parts(config)
    configs = weight_formats(ops, config, parts)  # the layers stored dense run with sparsity off
    streamed = [map_op(op, hw, parts=parts) for op, hw in zip(ops, configs)]  # tiles + access counts, all via DRAM
    kept = on_chip_reuse(ops, graph, plan.follows_on_same_core(streamed, config), config)  # what stays on chip
    works = [map_op(op, hw, on_chip, parts) if on_chip != NOTHING_ON_CHIP else work
             for op, hw, work, on_chip in zip(ops, configs, streamed, kept)]
    tasks = plan.tasks(works, config, dram_inputs(ops, graph, kept))  # tiles -> cores, with dependencies
    timeline = run(tasks, config)  # every load, compute and store at an exact cycle
    metadata = dict(graph.metadata) if isinstance(graph, OpGraph) else {}
    run_options = {"schedule": schedule, "sparsity": config.sparsity.mode, "window_mapping": config.attention.window_mapping,
                   "fold_batch_norm": config.fold_batch_norm}
    return summarise(ops, works, tasks, timeline, config, run_options, provenance(graph=metadata, **run_options))


def weight_formats(ops: Sequence[Op], config: HardwareConfig, parts: int) -> list[HardwareConfig]:
    """Per op, the hardware it runs on: ``config``, or the same hardware with sparsity off for a layer
    stored dense.

    As a compiler for sparse hardware does, each layer is stored in the
    sparse format only where that moves no more DRAM bytes and, run on its
    own, takes no longer than the dense format: index metadata can outweigh
    the weights it saves, and whole-byte transfers of small tiles can cost
    more cycles.  So a dense (or barely pruned) layer costs exactly what it
    costs on dense hardware.  Decided once per op, before any on-chip reuse.
    """
    dense_config = replace(config, sparsity=replace(config.sparsity, mode="none"))
    return [config if not has_sparse_form(op, config)
            or _no_worse(map_op(op, config, parts=parts), map_op(op, dense_config, parts=parts), config)
            else dense_config for op in ops]


def _no_worse(sparse: OpWork, dense: OpWork, config: HardwareConfig) -> bool:
    moved = [work.traffic.dram_read + work.traffic.dram_write for work in (sparse, dense)]
    return moved[0] <= moved[1] and _alone_cycles(sparse, config) <= _alone_cycles(dense, config)


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
