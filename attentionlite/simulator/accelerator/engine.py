"""The cycle-level engine: the tiles of every task placed at exact cycles, one shared DRAM channel.

The event loop works at tile granularity, never per cycle.  On each core,
tile i computes out of one half of the double buffers while tile i + 1 is
loaded into the other.  Each tile makes two DMA requests:

* its *load*, ready when tile i - 2 has finished computing (its input half is
  free then); tiles 0 and 1 are ready at once;
* its *store*, ready when tile i has finished computing.

A tile computes once its data has arrived, the previous tile is done, and the
store of tile i - 2 has left the output half it is about to write; waiting for
any of these is a *stall*.  All cores' requests go through one DRAM channel,
served first come first served (stores before loads at the same cycle): a
request occupies the channel for ``ceil(bytes / bytes_per_cycle)`` cycles and
a load's data arrives ``latency`` cycles after that.

Two kinds of dependency between tasks (a task is one op, or one core's share
of it, for one batch):

* ``depends_on``: the task computes only after those tasks have finished
  computing (across cores, or after all parts of the previous op);
* ``reads_from``: read after write.  The task reads those tasks' outputs from
  DRAM, so none of its loads is issued before the last of their stores has
  left the channel.  (Its weights wait with them: the DMA does not prefetch a
  task's operands separately.)

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
reuse rules of memory.py (tensors move once when they fit, re-swept operands
once per column fold; ws/is partial sums stay in the output buffer) where
SCALE-Sim moves padded operand blocks through a ring-buffer window that
refetches whole laps, and spills ws/is partial sums every fold (compared per
operand in benchmarks/scalesim_notes.md); (5) the prefetch-offset accounting of
SCALE-Sim's ``read_buffer.service_reads`` (a negative offset added, a positive
one counted twice) is not reproduced.  Measured on a 100x72x200 GEMM, 32x32
array, 10 words/cycle (tests/simulator/accelerator/test_sim_scalesim.py):
compute cycles agree exactly; SCALE-Sim stalls 0 cycles after a prefetch and
totals 6,422 (os), 11,352 (ws), 12,246 (is) cycles including it; this engine
stays between the stall-free compute cycles and SCALE-Sim's total with
prefetch, because it overlaps loads that SCALE-Sim serialises.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import transfer_cycles
from attentionlite.simulator.accelerator.schedules import Task

STORE, LOAD = 0, 1  # request kinds, in the order the channel serves them at the same cycle


@dataclass
class TaskTiming:
    """When a task ran: first compute start, last compute end, its cycles, when its first DRAM transfer
    began (-1: none) and when its stores were done."""

    start: int = -1
    end: int = 0
    compute: int = 0
    stall: int = 0
    first_transfer: int = -1
    stored: int = 0

    @property
    def active_span(self) -> tuple[int, int]:
        """(first cycle, last cycle) the task used the array or the DRAM channel."""
        first = self.start if self.first_transfer < 0 else min(self.start, self.first_transfer)
        return first, max(self.end, self.stored)


@dataclass
class Timeline:
    """The engine's answer: per-task timings, when each core went quiet, and when each batch was done
    (its last compute or store)."""

    tasks: list[TaskTiming]
    core_end: list[int]
    batches: int
    batch_end: dict[int, int] = field(default_factory=dict)

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


def run(tasks: Sequence[Task], config: HardwareConfig) -> Timeline:
    """Place every tile of every task at an exact cycle."""
    loop = _EventLoop(tasks, config)
    timings = loop.run()
    unfinished = [task_id for task_id, done in enumerate(loop.computed) if not done]
    if unfinished:
        raise RuntimeError(f"engine deadlock: {len(unfinished)} tasks never ran (first: {tasks[unfinished[0]]})")
    batch_end: dict[int, int] = {}
    for task, timing in zip(tasks, timings):
        batch_end[task.batch] = max(batch_end.get(task.batch, 0), timing.end, timing.stored)
    return Timeline(timings, [core.end for core in loop.cores.values()], len(batch_end), batch_end)
