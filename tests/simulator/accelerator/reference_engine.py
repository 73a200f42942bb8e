"""The engine as it was before it was compiled (release 0.1.0, commit f872a75): a pure-Python event loop
over the same rules, kept as the oracle the compiled loop must match tile for tile."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from attentionlite.simulator.accelerator.engine import LOAD, STORE, TaskTiming
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import transfer_cycles
from attentionlite.simulator.accelerator.schedules import Task


class _Core:
    """One core's tile stream and how far it has got."""

    def __init__(self, tasks: list[tuple[int, Task]], config: HardwareConfig) -> None:
        streams = [task.tiles for _, task in tasks]
        lengths = [len(stream) for stream in streams]
        loads = np.concatenate([s.load_bytes for s in streams])
        stores = np.concatenate([s.store_bytes for s in streams])
        self.compute = np.concatenate([s.compute for s in streams]).tolist()
        self.load_cycles = transfer_cycles(loads, config).tolist()
        self.store_cycles = transfer_cycles(stores, config).tolist()
        self.count = len(self.compute)
        tile_task = np.repeat([task_id for task_id, _ in tasks], lengths)
        self.task_of_tile = tile_task.tolist()
        self.finishes_task = np.append(tile_task[1:] != tile_task[:-1], True).tolist()
        starts = np.cumsum([0] + lengths[:-1]).tolist()
        self.compute_gate = {start: task.depends_on for start, (_, task) in zip(starts, tasks) if task.depends_on}
        self.arrival: list[int | None] = [None] * self.count
        self.store_end: list[int | None] = [None] * self.count
        self.compute_end: list[int] = []
        self.end = 0


class _EventLoop:
    """First-come-first-served DRAM channel shared by cores that compute tile by tile."""

    def __init__(self, tasks: Sequence[Task], config: HardwareConfig) -> None:
        self.latency = config.dram_latency_cycles
        by_core: dict[int, list[tuple[int, Task]]] = {}
        for task_id, task in enumerate(tasks):
            by_core.setdefault(task.core, []).append((task_id, task))
        self.cores = {core: _Core(assigned, config) for core, assigned in sorted(by_core.items())}
        self.reads_from = [task.reads_from for task in tasks]
        self.timings = [TaskTiming() for _ in tasks]
        self.computed = [False] * len(tasks)
        self.stores_left = [len(task.tiles) for task in tasks]
        self.waiting_compute: dict[int, list[int]] = {}  # task -> cores whose next tile waits for it to compute
        self.waiting_stores: dict[int, list[tuple[int, int, int]]] = {}  # task -> parked (core, tile, ready)
        self.heap: list[tuple[int, int, int, int]] = []  # (ready cycle, kind, core, tile)
        self.channel_free = 0

    def run(self) -> list[TaskTiming]:
        for core_id, core in self.cores.items():
            for tile in range(min(2, core.count)):
                self._request_load(core_id, tile, 0)
            self._advance(core_id)
        while self.heap:
            ready, kind, core_id, tile = heapq.heappop(self.heap)
            self._serve(kind, core_id, tile, ready)
            self._advance(core_id)
        return self.timings

    # ---- the channel

    def _serve(self, kind: int, core_id: int, tile: int, ready: int) -> None:
        """Move a request's bytes over the channel (only requests with bytes reach the queue)."""
        core = self.cores[core_id]
        cycles = core.load_cycles[tile] if kind == LOAD else core.store_cycles[tile]
        start = ready if ready > self.channel_free else self.channel_free
        self.channel_free = done = start + cycles
        timing = self.timings[core.task_of_tile[tile]]
        if timing.first_transfer < 0:
            timing.first_transfer = start
        if kind == LOAD:
            core.arrival[tile] = done + self.latency
        else:
            self._stored(core, tile, done)

    def _stored(self, core: _Core, tile: int, done: int) -> None:
        core.store_end[tile] = done
        core.end = max(core.end, done)
        self._store_done(core.task_of_tile[tile], done)

    def _store_done(self, task_id: int, done: int) -> None:
        timing = self.timings[task_id]
        timing.stored = max(timing.stored, done)
        self.stores_left[task_id] -= 1
        if self.stores_left[task_id] == 0:
            for core_id, tile, ready in self.waiting_stores.pop(task_id, []):
                self._request_load(core_id, tile, ready)

    def _request_load(self, core_id: int, tile: int, ready: int) -> None:
        """Queue a tile's load, or park it until the tasks it reads from have stored their outputs.

        A tile with nothing to load has its data at once (and reads nothing produced)."""
        core = self.cores[core_id]
        if not core.load_cycles[tile]:
            core.arrival[tile] = ready
            return
        for producer in self.reads_from[core.task_of_tile[tile]]:
            if self.stores_left[producer]:
                self.waiting_stores.setdefault(producer, []).append((core_id, tile, ready))
                return
            ready = max(ready, self.timings[producer].stored)
        heapq.heappush(self.heap, (ready, LOAD, core_id, tile))

    # ---- the array

    def _advance(self, core_id: int) -> None:
        """Compute every tile of the core whose data, buffers and dependencies are ready."""
        core = self.cores[core_id]
        while len(core.compute_end) < core.count:
            j = len(core.compute_end)
            ready = self._ready_to_compute(core, core_id, j)
            if ready is None:
                return
            self._compute_tile(core, core_id, j, *ready)

    def _ready_to_compute(self, core: _Core, core_id: int, j: int) -> tuple[int, int] | None:
        """(earliest start without memory, start) of tile j, or None while something it needs is missing."""
        arrival = core.arrival[j]
        freed = core.store_end[j - 2] if j >= 2 else 0  # the output half tile j writes
        gate = self._gate(core.compute_gate[j], core_id) if j in core.compute_gate else 0
        if arrival is None or freed is None or gate is None:
            return None
        previous_end = core.compute_end[-1] if core.compute_end else 0
        earliest = max(previous_end, gate)
        return earliest, max(earliest, arrival, freed)

    def _gate(self, dependencies: tuple[int, ...], core_id: int) -> int | None:
        """When the dependencies finished computing, or None after parking the core until they have."""
        for dependency in dependencies:
            if not self.computed[dependency]:
                waiting = self.waiting_compute.setdefault(dependency, [])
                waiting += [] if core_id in waiting else [core_id]
                return None
        return max(self.timings[d].end for d in dependencies)

    def _compute_tile(self, core: _Core, core_id: int, j: int, earliest: int, start: int) -> None:
        end = start + core.compute[j]
        core.compute_end.append(end)
        core.end = max(core.end, end)
        task_id = core.task_of_tile[j]
        timing = self.timings[task_id]
        if timing.start < 0:
            timing.start = start
        timing.end, timing.compute, timing.stall = end, timing.compute + core.compute[j], timing.stall + start - earliest
        if core.store_cycles[j]:
            heapq.heappush(self.heap, (end, STORE, core_id, j))
        else:
            self._stored(core, j, end)
        if j + 2 < core.count:
            self._request_load(core_id, j + 2, end)
        if core.finishes_task[j]:
            self.computed[task_id] = True
            for waiting_core in self.waiting_compute.pop(task_id, []):
                self._advance(waiting_core)


def reference_run(tasks: Sequence[Task], config: HardwareConfig) -> tuple[list[TaskTiming], list[int], list[bool]]:
    """(per-task timings, per used core its end, per task whether it computed)."""
    loop = _EventLoop(tasks, config)
    timings = loop.run()
    return timings, [core.end for core in loop.cores.values()], loop.computed
