"""The cycle-level engine: the tiles of every task placed at exact cycles, one shared DRAM channel.

The event loop works at tile granularity, never per cycle.  On each core,
tile i computes out of one half of the double buffers while tile i + 1 is
loaded into the other; the DMA request that loads tile i (and stores the
outputs of tile i - 2, whose half it reuses) becomes ready when tile i - 2
finishes computing.  All cores' requests go through one DRAM channel, served
first come first served: a request occupies the channel for
``ceil(bytes / bytes_per_cycle)`` cycles and its data arrives ``latency``
cycles after that.  A tile computes once its data has arrived and the
previous tile is done; waiting for data is a *stall*.  A task (one op on one
core) that depends on tasks on other cores starts computing when they have
finished; its prefetch may start earlier.

Relation to SCALE-Sim's stall model.  SCALE-Sim v3 in USER-bandwidth mode walks
its demand matrices cycle by cycle: each read buffer first prefetches as much
of its operand as fits (its "incl. prefetch" total counts that), then, row by
row, a request that misses triggers the next prefetch at the given words per
cycle and stalls the whole array until it lands.  This engine keeps the same
ingredients (double buffers, prefetch of the next block during compute, stall
when data is late) at the granularity of tiles, with these differences on
purpose: (1) the transfer unit is a tile (a fold or a piece of one), not an
operand row; (2) the first tile's load is not a separate prefetch phase but
overlaps the rest of the op; (3) DRAM latency is modelled (SCALE-Sim has none)
and loads and stores share one channel with all cores; (4) traffic follows the
reuse rules of memory.py (tensors move once when they fit; ws/is partial sums
stay in the output buffer) where SCALE-Sim moves padded operand rows and
spills ws/is partial sums every fold; (5) the prefetch-offset accounting of
SCALE-Sim's ``read_buffer.service_reads`` (a negative offset added, a positive
one counted twice) is not reproduced.  Measured on a 100x72x200 GEMM, 32x32
array, 10 words/cycle (tests/test_sim_scalesim.py): compute cycles agree
exactly; SCALE-Sim stalls 0 cycles after a prefetch and totals 6,422 (os),
11,352 (ws), 12,246 (is) cycles including it; this engine totals 5,769, 6,103
and 6,257, always between the stall-free compute cycles and SCALE-Sim's
total with prefetch, because it overlaps loads that SCALE-Sim serialises.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import transfer_cycles
from attentionlite.simulator.accelerator.schedules import Task


@dataclass
class TaskTiming:
    """When a task ran: first compute start, last compute end, and its cycles."""

    start: int = -1
    end: int = 0
    compute: int = 0
    stall: int = 0


@dataclass
class Timeline:
    """The engine's answer: per-task timings and when each core went quiet."""

    tasks: list[TaskTiming]
    core_end: list[int]
    images: int
    image_end: dict[int, int] = field(default_factory=dict)

    @property
    def makespan(self) -> int:
        return max(self.core_end, default=0)


class _Core:
    """One core's tile stream and how far it has got."""

    def __init__(self, tasks: list[tuple[int, Task]], config: HardwareConfig) -> None:
        streams = [task.tiles for _, task in tasks]
        lengths = [len(stream) for stream in streams]
        loads = np.concatenate([s.load_bytes for s in streams])
        stores = np.concatenate([s.store_bytes for s in streams])
        request_bytes = np.concatenate([loads, np.zeros(2)]) + np.concatenate([np.zeros(2), stores])
        self.transfer = transfer_cycles(request_bytes, config).tolist()  # request i: load tile i, store tile i - 2
        self.compute = np.concatenate([s.compute for s in streams]).tolist()
        self.loads_something = (loads > 0).tolist()
        self.count = len(self.compute)
        tile_task = np.repeat([task_id for task_id, _ in tasks], lengths)
        self.task_of_tile = tile_task.tolist()
        self.finishes_task = np.append(tile_task[1:] != tile_task[:-1], True).tolist()
        starts = np.cumsum([0] + lengths[:-1]).tolist()
        self.dependencies_of_tile = {start: task.depends_on for start, (_, task) in zip(starts, tasks) if task.depends_on}
        self.arrival: list[int] = []
        self.compute_end: list[int] = []
        self.next_request = 0
        self.pending = False  # a request of this core is waiting in the heap
        self.end = 0


class _EventLoop:
    """First-come-first-served DRAM channel shared by cores that compute tile by tile."""

    def __init__(self, tasks: Sequence[Task], config: HardwareConfig) -> None:
        self.latency = config.dram_latency_cycles
        by_core: dict[int, list[tuple[int, Task]]] = {}
        for task_id, task in enumerate(tasks):
            by_core.setdefault(task.core, []).append((task_id, task))
        self.cores = {core: _Core(assigned, config) for core, assigned in sorted(by_core.items())}
        self.timings = [TaskTiming() for _ in tasks]
        self.done = [False] * len(tasks)
        self.waiting: dict[int, list[int]] = {}
        self.heap: list[tuple[int, int]] = []
        self.channel_free = 0

    def run(self) -> list[TaskTiming]:
        for core_id, core in self.cores.items():
            self._issue_next(core, core_id)
        while self.heap:
            ready, core_id = heapq.heappop(self.heap)
            self._serve(self.cores[core_id], core_id, ready)
        return self.timings

    def _serve(self, core: _Core, core_id: int, ready: int) -> None:
        """Give the channel to the core's next request, then compute what that makes possible."""
        i = core.next_request
        core.pending = False
        start = ready if ready > self.channel_free else self.channel_free
        self.channel_free = start + core.transfer[i]
        if i < core.count:
            core.arrival.append(self.channel_free + self.latency if core.loads_something[i] else ready)
        else:
            core.end = max(core.end, self.channel_free)
        core.next_request += 1
        self._advance(core, core_id)

    def _advance(self, core: _Core, core_id: int) -> None:
        """Compute every tile whose data and dependencies are in, then issue the next request."""
        while len(core.compute_end) < len(core.arrival):
            j = len(core.compute_end)
            gate = self._gate(core.dependencies_of_tile[j], core_id) if j in core.dependencies_of_tile else 0
            if gate is None:
                break
            self._compute_tile(core, j, gate)
        self._issue_next(core, core_id)

    def _gate(self, dependencies: tuple[int, ...], core_id: int) -> int | None:
        """When the dependencies finished, or None after parking the core until they have."""
        for dependency in dependencies:
            if not self.done[dependency]:
                waiting = self.waiting.setdefault(dependency, [])
                waiting += [] if core_id in waiting else [core_id]
                return None
        return max(self.timings[d].end for d in dependencies)

    def _compute_tile(self, core: _Core, j: int, gate: int) -> None:
        previous_end = core.compute_end[-1] if core.compute_end else 0
        earliest = previous_end if previous_end > gate else gate
        start = earliest if earliest > core.arrival[j] else core.arrival[j]
        end = start + core.compute[j]
        core.compute_end.append(end)
        core.end = end if end > core.end else core.end
        task_id = core.task_of_tile[j]
        timing = self.timings[task_id]
        if timing.start < 0:
            timing.start = start
        timing.end, timing.compute, timing.stall = end, timing.compute + core.compute[j], timing.stall + start - earliest
        if core.finishes_task[j]:
            self._finish(task_id)

    def _finish(self, task_id: int) -> None:
        self.done[task_id] = True
        for core_id in self.waiting.pop(task_id, []):
            self._advance(self.cores[core_id], core_id)

    def _issue_next(self, core: _Core, core_id: int) -> None:
        """Request i is ready when tile i - 2 has computed (its buffer half is free)."""
        i = core.next_request
        if core.pending or i > core.count + 1 or (i >= 2 and len(core.compute_end) < i - 1):
            return
        core.pending = True
        heapq.heappush(self.heap, (core.compute_end[i - 2] if i >= 2 else 0, core_id))


def run(tasks: Sequence[Task], config: HardwareConfig) -> Timeline:
    """Place every tile of every task at an exact cycle."""
    loop = _EventLoop(tasks, config)
    timings = loop.run()
    unfinished = [task_id for task_id, done in enumerate(loop.done) if not done]
    if unfinished:
        raise RuntimeError(f"engine deadlock: {len(unfinished)} tasks never ran (first: {tasks[unfinished[0]]})")
    image_end: dict[int, int] = {}
    for task, timing in zip(tasks, timings):
        image_end[task.image] = max(image_end.get(task.image, 0), timing.end)
    return Timeline(timings, [core.end for core in loop.cores.values()], len(image_end), image_end)
