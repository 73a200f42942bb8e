"""Schedules: how a graph's ops become tasks on cores, with the dependencies between them.

* ``data``: images across cores; every core runs the whole graph on its own image.
* ``pipeline``: layers in contiguous stages of near-equal compute, one stage per
  core; images stream through.
* ``split``: each op's tiles dealt across the cores; an op waits for all of the
  previous one.

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


@dataclass(frozen=True)
class Task:
    """One op (or one core's share of it) for one image group, on one core."""

    op_index: int
    core: int
    image: int
    tiles: TileStream
    depends_on: tuple[int, ...] = ()


def _single_tile_if_empty(tiles: TileStream) -> TileStream:
    """An op with no work still occupies one (empty) tile, so it has a place in time."""
    if len(tiles):
        return tiles
    return TileStream(np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1))


def data_parallel(works: Sequence[OpWork], config: HardwareConfig) -> list[Task]:
    """Images across cores: every core runs the whole graph on its own images."""
    return [Task(i, core, core, _single_tile_if_empty(work.tiles)) for core in range(config.cores) for i, work in enumerate(works)]


def tile_split(works: Sequence[OpWork], config: HardwareConfig) -> list[Task]:
    """Each op's tiles dealt in contiguous runs across the cores; an op waits for all of the previous one."""
    tasks: list[Task] = []
    previous: tuple[int, ...] = ()
    for i, work in enumerate(works):
        parts = _single_tile_if_empty(work.tiles).split(config.cores)
        first = len(tasks)
        tasks += [Task(i, core, 0, part, previous) for core, part in enumerate(parts)]
        previous = tuple(range(first, len(tasks)))
    return tasks


def balanced_stages(costs: Sequence[float], stages: int) -> list[int]:
    """Stage index of each op: contiguous runs with near-equal cost (cut where the running sum crosses k/stages)."""
    running = np.cumsum(np.asarray(costs, dtype=float)) - np.asarray(costs, dtype=float) / 2
    total = float(np.sum(costs)) or 1.0
    return np.minimum((running / total * stages).astype(int), stages - 1).tolist()


def _pipeline_stages(works: Sequence[OpWork], config: HardwareConfig) -> list[int]:
    """Stages balanced by compute cycles (which on-chip reuse does not change, so both passes agree)."""
    return balanced_stages([int(w.tiles.compute.sum()) for w in works], min(config.cores, len(works)))


def layer_pipeline(works: Sequence[OpWork], config: HardwareConfig) -> list[Task]:
    """Layers in balanced stages, one per core; 2 x stages images stream through."""
    stage_of = _pipeline_stages(works, config)
    images = 2 * (max(stage_of) + 1)
    tasks: list[Task] = []
    for image in range(images):
        previous: tuple[int, ...] = ()
        for i, work in enumerate(works):
            starts_stage = i == 0 or stage_of[i] != stage_of[i - 1]
            tasks.append(Task(i, stage_of[i], image, _single_tile_if_empty(work.tiles), previous if starts_stage else ()))
            previous = (len(tasks) - 1,)
    return tasks


@dataclass(frozen=True)
class Schedule:
    """A way to place ops on cores: its tasks, and which ops run right after their predecessor on one core."""

    tasks: Callable[[Sequence[OpWork], HardwareConfig], list[Task]]
    follows_on_same_core: Callable[[Sequence[OpWork], HardwareConfig], list[bool]]


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
    "split": Schedule(tile_split, _never),
}
