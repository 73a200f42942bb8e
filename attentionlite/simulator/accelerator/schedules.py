"""Schedules: how a graph's ops become tasks on cores, with the dependencies between them.

* ``data``: batches across cores; every core runs the whole graph on its own batch.
* ``pipeline``: layers in contiguous stages of near-equal compute, one stage per
  core; batches stream through.
* ``split``: each op's folds shared across the cores (memory.py decides each
  core's share and traffic, and a reduction where K had to be cut); an op
  waits for all of the previous one.

Every schedule also wires read-after-write: a task that reads an op's output
from DRAM lists that op's tasks in ``reads_from``, so the engine issues its
loads only after their stores.

A schedule also says which ops run right after their predecessor on the same
core with the whole tensor, which is when that tensor may stay on chip
(:func:`~attentionlite.simulator.accelerator.memory.on_chip_reuse`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import OpWork, TileStream

# Batches a pipeline streams per stage: the first ``stages`` fill it, the rest run in steady state, over
# which throughput is measured (the second half of the completions).
PIPELINE_BATCHES_PER_STAGE = 4

# For each op, the ops whose outputs it reads from DRAM (not handed over on chip), by index.
DramInputs = Sequence[tuple[int, ...]]


@dataclass(frozen=True)
class Task:
    """One op (or one core's share of it) for one batch of images, on one core.

    ``depends_on``: tasks that must finish computing before this one computes;
    ``reads_from``: tasks whose stores this one's loads read (read after write).
    """

    op_index: int
    core: int
    batch: int
    tiles: TileStream
    depends_on: tuple[int, ...] = ()
    reads_from: tuple[int, ...] = ()


def _single_tile_if_empty(tiles: TileStream) -> TileStream:
    """An op with no work still occupies one (empty) tile, so it has a place in time."""
    if len(tiles):
        return tiles
    return TileStream(np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1))


def data_parallel(works: Sequence[OpWork], config: HardwareConfig, reads: DramInputs) -> list[Task]:
    """Batches across cores: every core runs the whole graph on its own batch, in order."""
    n = len(works)
    return [Task(i, core, core, _single_tile_if_empty(work.tiles), reads_from=tuple(core * n + p for p in reads[i]))
            for core in range(config.cores) for i, work in enumerate(works)]


def tile_split(works: Sequence[OpWork], config: HardwareConfig, reads: DramInputs) -> list[Task]:
    """Each op's folds shared across the cores (a core with no share idles); an op waits for all of the
    previous one (and its reduction)."""
    tasks: list[Task] = []
    finals: list[tuple[int, ...]] = []  # per op, the tasks whose end completes it
    previous: tuple[int, ...] = ()
    for i, work in enumerate(works):
        produced = tuple(task for p in reads[i] for task in finals[p])
        first = len(tasks)
        busy = [(core, part) for core, part in enumerate(work.parts) if len(part)] or [(0, work.parts[0])]
        tasks += [Task(i, core, 0, _single_tile_if_empty(part), previous, produced) for core, part in busy]
        final = tuple(range(first, len(tasks)))
        if work.reduction is not None:  # core 0 adds the split-K partial sums the parts stored
            tasks.append(Task(i, 0, 0, work.reduction, final, final))
            final = (len(tasks) - 1,)
        finals.append(final)
        previous = final
    return tasks


def balanced_stages(costs: Sequence[float], stages: int) -> list[int]:
    """Stage index of each op: contiguous runs with near-equal cost (cut where the running sum crosses k/stages)."""
    running = np.cumsum(np.asarray(costs, dtype=float)) - np.asarray(costs, dtype=float) / 2
    total = float(np.sum(costs)) or 1.0
    return np.minimum((running / total * stages).astype(int), stages - 1).tolist()


def _pipeline_stages(works: Sequence[OpWork], config: HardwareConfig) -> list[int]:
    """Stages balanced by compute cycles (which on-chip reuse does not change, so both passes agree)."""
    return balanced_stages([int(w.tiles.compute.sum()) for w in works], min(config.cores, len(works)))


def layer_pipeline(works: Sequence[OpWork], config: HardwareConfig, reads: DramInputs) -> list[Task]:
    """Layers in balanced stages, one per core; :data:`PIPELINE_BATCHES_PER_STAGE` x stages batches stream through."""
    stage_of = _pipeline_stages(works, config)
    n = len(works)
    tasks: list[Task] = []
    for batch in range(PIPELINE_BATCHES_PER_STAGE * (max(stage_of) + 1)):
        for i, work in enumerate(works):
            starts_stage = 0 < i and stage_of[i] != stage_of[i - 1]
            depends = (batch * n + i - 1,) if starts_stage else ()
            reads_from = tuple(batch * n + p for p in reads[i])
            tasks.append(Task(i, stage_of[i], batch, _single_tile_if_empty(work.tiles), depends, reads_from))
    return tasks


@dataclass(frozen=True)
class Schedule:
    """A way to place ops on cores: its tasks, which ops run right after their predecessor on one core
    (so may hand a tensor over on chip), and on how many cores each op's work is shared."""

    tasks: Callable[[Sequence[OpWork], HardwareConfig, DramInputs], list[Task]]
    follows_on_same_core: Callable[[Sequence[OpWork], HardwareConfig], list[bool]]
    shares_each_op: bool = False

    def parts(self, config: HardwareConfig) -> int:
        """Cores one op's work is shared across."""
        return config.cores if self.shares_each_op else 1


def _after_predecessor(works: Sequence[OpWork], config: HardwareConfig) -> list[bool]:
    """Data-parallel: every op follows the one before it on the same core."""
    return [i > 0 for i in range(len(works))]


def _within_stage(works: Sequence[OpWork], config: HardwareConfig) -> list[bool]:
    """Pipeline: an op follows its predecessor on the same core unless a stage starts there."""
    stage_of = _pipeline_stages(works, config)
    return [i > 0 and stage_of[i] == stage_of[i - 1] for i in range(len(works))]


def _never(works: Sequence[OpWork], config: HardwareConfig) -> list[bool]:
    """Tile-split: each core holds only part of every tensor, so none is handed over on chip."""
    return [False] * len(works)


SCHEDULES: dict[str, Schedule] = {
    "data": Schedule(data_parallel, _after_predecessor),
    "pipeline": Schedule(layer_pipeline, _within_stage),
    "split": Schedule(tile_split, _never, shares_each_op=True),
}
