"""The cycle-level engine: the tiles of every task placed at exact cycles, one shared DRAM channel.

The event loop works at tile granularity, never per cycle, and is compiled
(numba, cached on disk once per machine; the pure-Python loop it replaced is
the test suite's oracle, tests/simulator/accelerator/reference_engine.py).
On each core,
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
a load's data arrives ``latency`` cycles after that.  First come first served
is not monotone across cores: more bandwidth can reorder two cores' requests
so that one waits longer, as in any non-preemptive arbiter (the property tests
found a 2-core pipeline that takes 5,709 cycles at 3x the bandwidth of one
that takes 5,708).

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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import TileStream, transfer_cycles
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
    """The engine's answer: per-task timings (one row per task, one column per :class:`TaskTiming` field,
    in its order), when each core went quiet, and when each batch was done (its last compute or store)."""

    timings: np.ndarray
    core_end: list[int]
    batches: int
    batch_end: dict[int, int] = field(default_factory=dict)

    @property
    def tasks(self) -> list[TaskTiming]:
        return [TaskTiming(*row) for row in self.timings.tolist()]

    @property
    def makespan(self) -> int:
        return max(self.core_end, default=0)


def run(tasks: Sequence[Task], config: HardwareConfig) -> Timeline:
    """Place every tile of every task at an exact cycle."""
    tile, task, core, graph = _flatten(tasks, config)
    heap = np.empty((2 * len(tile) + 1, 3), dtype=np.int64)  # requests: a load and a store per tile at most
    stack = np.empty(len(core) + 1, dtype=np.int64)  # cores to advance: each is on it at most once
    _event_loop(tile, task, core, *graph, config.dram_latency_cycles, heap, stack)  # type: ignore[call-arg]
    unfinished = np.flatnonzero(task[:, COMPUTED] == 0)
    if len(unfinished):
        raise RuntimeError(f"engine deadlock: {len(unfinished)} tasks never ran (first: {tasks[unfinished[0]]})")
    timings = task[:, [START, END, BUSY, STALL, FIRST_TRANSFER, STORED]]
    batch_of = np.array([scheduled.batch for scheduled in tasks], dtype=np.int64)
    batches = np.unique(batch_of)
    done = np.zeros(int(batches.max(initial=-1)) + 1, dtype=np.int64)
    np.maximum.at(done, batch_of, np.maximum(timings[:, 1], timings[:, 5]))
    return Timeline(timings, core[:, CORE_END].tolist(), len(batches), {int(b): int(done[b]) for b in batches})


# ----------------------------------------------------------------------------- the loop's state, flat
#
# The compiled loop keeps its state in three int64 tables, one row per tile,
# task or used core, and one column per field below (a row's fields share a
# cache line), -1 where a cycle is "not yet" (a load not arrived, a store not
# done) or a list is empty.  Tiles are numbered core by core (cores by
# increasing id, each core's tasks in order), so a tile's number orders
# requests as (core, tile) does.  A load waiting for
# a producer's stores and a core waiting for a task to compute wait in linked
# lists, first parked first released (a tile or a core waits on one task at a
# time).

NONE = -1
# per tile: given
COMPUTE, LOAD_CYCLES, STORE_CYCLES, TILE_TASK, TILE_CORE = range(5)
# per tile: state
ARRIVAL, STORE_END, COMPUTE_END, PARKED_NEXT, PARKED_READY = range(5, 10)
# per task: given
FIRST_TILE, LAST_TILE = range(2)
# per task: state (START..STORED are TaskTiming's fields)
START, END, BUSY, STALL, FIRST_TRANSFER, STORED, COMPUTED, STORES_LEFT = range(2, 10)
PARKED_HEAD, PARKED_TAIL, WAITING_HEAD, WAITING_TAIL = range(10, 14)
# per core: given, then state
CORE_FIRST, CORE_TILES, COMPUTED_TILES, CORE_END, WAITING_NEXT, WAITING_ON = range(6)
TILE_FIELDS, TASK_FIELDS, CORE_FIELDS = PARKED_READY + 1, WAITING_TAIL + 1, WAITING_ON + 1


def _flatten(tasks: Sequence[Task], config: HardwareConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """The tile, task and core tables with their given columns filled and their state columns initialised, and
    the dependencies as compressed rows (depends_start, depends, reads_start, reads)."""
    order = np.array(sorted(range(len(tasks)), key=lambda task_id: tasks[task_id].core), dtype=np.int64)  # stable
    given, given_start = _distinct_streams([tasks[task_id].tiles for task_id in order], config)
    lengths = np.array([len(tasks[task_id].tiles) for task_id in order], dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    cores_of_order = np.array([tasks[task_id].core for task_id in order], dtype=np.int64)
    _, first_task_of_slot, core_slot = np.unique(cores_of_order, return_index=True, return_inverse=True)

    tile = np.empty((int(lengths.sum()), TILE_FIELDS), dtype=np.int64)
    _fill_tiles(tile, given, given_start, lengths, order, core_slot.astype(np.int64))

    task = np.full((len(tasks), TASK_FIELDS), NONE, dtype=np.int64)
    task[order, FIRST_TILE] = first
    task[order, LAST_TILE] = first + lengths - 1
    task[:, [END, BUSY, STALL, STORED, COMPUTED]] = 0
    task[order, STORES_LEFT] = lengths

    core = np.full((int(core_slot.max(initial=-1)) + 1, CORE_FIELDS), NONE, dtype=np.int64)
    core[:, CORE_FIRST] = first[first_task_of_slot]
    core[:, CORE_TILES] = np.bincount(core_slot, weights=lengths, minlength=core.shape[0]).astype(np.int64)
    core[:, [COMPUTED_TILES, CORE_END]] = 0
    graph = (*_compressed([t.depends_on for t in tasks]), *_compressed([t.reads_from for t in tasks]))
    return tile, task, core, graph


def _distinct_streams(streams: Sequence[TileStream], config: HardwareConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct stream's given tile columns (compute, load and store cycles), stacked once, and where
    each of ``streams`` starts in them: the tasks of one op's batches share its stream, so a data-parallel
    run converts its bytes to cycles once per op instead of once per core."""
    row_of: dict[int, int] = {}  # id of a stream -> its first row in the stack
    distinct: list[TileStream] = []
    starts = np.empty(len(streams), dtype=np.int64)
    rows = 0
    for position, stream in enumerate(streams):
        if id(stream) not in row_of:
            row_of[id(stream)] = rows
            distinct.append(stream)
            rows += len(stream)
        starts[position] = row_of[id(stream)]
    given = np.empty((rows, 3), dtype=np.int64)
    if distinct:
        given[:, 0] = np.concatenate([stream.compute for stream in distinct])
        given[:, 1] = transfer_cycles(np.concatenate([stream.load_bytes for stream in distinct]), config)
        given[:, 2] = transfer_cycles(np.concatenate([stream.store_bytes for stream in distinct]), config)
    return given, starts


def _compressed(rows: Sequence[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of task numbers as (start of each row, plus the end; the values)."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    values = np.array([value for row in rows for value in row], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), values


# ----------------------------------------------------------------------------- the compiled loop
#
# Compiled once per machine (numba caches it on disk).  Requests wait in a
# binary heap ordered by (ready cycle, kind, tile).  When a task finishes
# computing, the cores waiting for it advance before the core that finished it
# goes on, depth first: a stack of cores to advance.
#
# Compiled without numba's runtime (NRT): every helper takes the tables as
# arguments, and with the runtime each call increments and decrements every
# array argument's reference count with an atomic instruction, which took half
# the loop's time (measured with perf; numba issues #2345 and #2350, where
# ``_nrt=False`` is the maintainers' answer).  Nothing here allocates (the heap
# and the stack come from run()); numba refuses to compile an allocation
# without the runtime, so that cannot change unnoticed.
_compiled = numba.njit(cache=True, _nrt=False)  # type: ignore[call-overload]  # _nrt: not in numba's stubs


@_compiled
def _fill_tiles(tile, given, given_start, lengths, order, core_slot):  # pragma: no cover
    """Write the tile table row by row: the given columns of each task's stream (tasks in ``order``), its
    task and core, and the state columns' initial values."""
    row = 0
    for position in range(order.shape[0]):
        for offset in range(lengths[position]):
            source = given_start[position] + offset
            tile[row, COMPUTE] = given[source, 0]
            tile[row, LOAD_CYCLES] = given[source, 1]
            tile[row, STORE_CYCLES] = given[source, 2]
            tile[row, TILE_TASK] = order[position]
            tile[row, TILE_CORE] = core_slot[position]
            tile[row, ARRIVAL] = tile[row, STORE_END] = tile[row, PARKED_NEXT] = tile[row, PARKED_READY] = NONE
            tile[row, COMPUTE_END] = 0
            row += 1


@_compiled
def _event_loop(tile, task, core, depends_start, depends, reads_start, reads, latency, heap,
                stack):  # pragma: no cover
    """Run every tile (the tables' state columns are filled in place)."""
    size = 0  # requests in the heap; its columns: ready cycle, kind, tile
    channel_free = 0
    for slot in range(core.shape[0]):
        for offset in range(min(2, core[slot, CORE_TILES])):
            size = _request_load(core[slot, CORE_FIRST] + offset, 0, tile, task, reads_start, reads, heap, size)
        size = _advance_from(slot, stack, tile, task, core, depends_start, depends, reads_start, reads, heap, size)
    while size:
        size = _heap_pop(heap, size)
        ready, kind, number = heap[size, 0], heap[size, 1], heap[size, 2]
        cycles = tile[number, LOAD_CYCLES] if kind == LOAD else tile[number, STORE_CYCLES]
        begin = max(ready, channel_free)
        channel_free = done = begin + cycles
        owner = tile[number, TILE_TASK]
        if task[owner, FIRST_TRANSFER] < 0:
            task[owner, FIRST_TRANSFER] = begin
        if kind == LOAD:
            tile[number, ARRIVAL] = done + latency
        else:
            size = _stored(number, done, tile, task, core, reads_start, reads, heap, size)
        size = _advance_from(tile[number, TILE_CORE], stack, tile, task, core, depends_start, depends, reads_start,
                             reads, heap, size)


@_compiled
def _request_load(number, ready, tile, task, reads_start, reads, heap, size):  # pragma: no cover
    """Queue a tile's load, or park it until the tasks it reads from have stored their outputs.

    A tile with nothing to load has its data at once (and reads nothing produced)."""
    if tile[number, LOAD_CYCLES] == 0:
        tile[number, ARRIVAL] = ready
        return size
    owner = tile[number, TILE_TASK]
    for position in range(reads_start[owner], reads_start[owner + 1]):
        producer = reads[position]
        if task[producer, STORES_LEFT]:
            tile[number, PARKED_READY] = ready
            _append(task, producer, PARKED_HEAD, PARKED_TAIL, tile, number, PARKED_NEXT)
            return size
        ready = max(ready, task[producer, STORED])
    return _heap_push(heap, size, ready, LOAD, number)


@_compiled
def _stored(number, done, tile, task, core, reads_start, reads, heap, size):  # pragma: no cover
    """A tile's output has left (or it had none); its task's last store releases the loads parked on it."""
    tile[number, STORE_END] = done
    slot = tile[number, TILE_CORE]
    core[slot, CORE_END] = max(core[slot, CORE_END], done)
    owner = tile[number, TILE_TASK]
    task[owner, STORED] = max(task[owner, STORED], done)
    task[owner, STORES_LEFT] -= 1
    if task[owner, STORES_LEFT] == 0:
        parked = task[owner, PARKED_HEAD]
        task[owner, PARKED_HEAD] = task[owner, PARKED_TAIL] = NONE
        while parked != NONE:
            following = tile[parked, PARKED_NEXT]  # read first: the load may park again, on another producer
            size = _request_load(parked, tile[parked, PARKED_READY], tile, task, reads_start, reads, heap, size)
            parked = following
    return size


@_compiled
def _advance_from(slot, stack, tile, task, core, depends_start, depends, reads_start, reads, heap,
                  size):  # pragma: no cover
    """Advance ``slot`` and, depth first, every core that a task it finishes releases."""
    stack[0] = slot
    pending = 1
    while pending:
        pending -= 1
        size, pending = _advance(stack[pending], pending, stack, tile, task, core, depends_start, depends,
                                 reads_start, reads, heap, size)
    return size


@_compiled
def _advance(slot, pending, stack, tile, task, core, depends_start, depends, reads_start, reads, heap,
             size):  # pragma: no cover
    """Compute every tile of core ``slot`` whose data, buffers and dependencies are ready.

    When a tile finishes a task that cores wait for, this core goes back on
    the stack with the waiters above it (the first on top) and stops.
    Returns (heap size, stack size)."""
    while core[slot, COMPUTED_TILES] < core[slot, CORE_TILES]:
        j = core[slot, COMPUTED_TILES]
        number = core[slot, CORE_FIRST] + j
        owner = tile[number, TILE_TASK]
        freed = tile[number - 2, STORE_END] if j >= 2 else 0  # the output half tile j writes
        gate = _gate(slot, owner, number, task, core, depends_start, depends)
        if tile[number, ARRIVAL] == NONE or freed == NONE or gate == NONE:
            return size, pending
        earliest = max(tile[number - 1, COMPUTE_END] if j > 0 else 0, gate)
        begin = max(earliest, tile[number, ARRIVAL], freed)
        finish = begin + tile[number, COMPUTE]
        tile[number, COMPUTE_END] = finish
        core[slot, COMPUTED_TILES] += 1
        core[slot, CORE_END] = max(core[slot, CORE_END], finish)
        if task[owner, START] < 0:
            task[owner, START] = begin
        task[owner, END] = finish
        task[owner, BUSY] += tile[number, COMPUTE]
        task[owner, STALL] += begin - earliest
        if tile[number, STORE_CYCLES]:
            size = _heap_push(heap, size, finish, STORE, number)
        else:
            size = _stored(number, finish, tile, task, core, reads_start, reads, heap, size)
        if j + 2 < core[slot, CORE_TILES]:
            size = _request_load(number + 2, finish, tile, task, reads_start, reads, heap, size)
        if number == task[owner, LAST_TILE]:
            task[owner, COMPUTED] = 1
            waiter = task[owner, WAITING_HEAD]
            if waiter != NONE:
                task[owner, WAITING_HEAD] = task[owner, WAITING_TAIL] = NONE
                stack[pending] = slot
                pending += 1
                waiters = 0
                while waiter != NONE:  # pushed in order, then reversed so that the first waiter is on top
                    core[waiter, WAITING_ON] = NONE
                    stack[pending + waiters] = waiter
                    waiters += 1
                    waiter = core[waiter, WAITING_NEXT]
                _reverse(stack, pending, pending + waiters - 1)
                return size, pending + waiters
    return size, pending


@_compiled
def _reverse(values, low, high):  # pragma: no cover
    """Reverse ``values[low..high]`` in place."""
    while low < high:
        values[low], values[high] = values[high], values[low]
        low += 1
        high -= 1


@_compiled
def _gate(slot, owner, number, task, core, depends_start, depends):  # pragma: no cover
    """When the dependencies of the task a core's next tile starts finished computing (0: none), or NONE
    after parking the core until the first unfinished one has."""
    gate = 0
    if number != task[owner, FIRST_TILE]:
        return gate
    for position in range(depends_start[owner], depends_start[owner + 1]):
        dependency = depends[position]
        if not task[dependency, COMPUTED]:
            if core[slot, WAITING_ON] != dependency:
                core[slot, WAITING_ON] = dependency
                _append(task, dependency, WAITING_HEAD, WAITING_TAIL, core, slot, WAITING_NEXT)
            return NONE
        gate = max(gate, task[dependency, END])
    return gate


@_compiled
def _append(owners, owner, head, tail, nodes, node, following):  # pragma: no cover
    """Append ``node`` (a row of ``nodes``) to the list row ``owner`` of ``owners`` keeps in its ``head`` and
    ``tail`` columns, linked through the nodes' ``following`` column."""
    nodes[node, following] = NONE
    if owners[owner, tail] == NONE:
        owners[owner, head] = node
    else:
        nodes[owners[owner, tail], following] = node
    owners[owner, tail] = node


@_compiled
def _heap_less(heap, a, b):  # pragma: no cover
    for row in range(3):
        if heap[a, row] != heap[b, row]:
            return heap[a, row] < heap[b, row]
    return False


@_compiled
def _heap_swap(heap, a, b):  # pragma: no cover
    for row in range(3):
        heap[a, row], heap[b, row] = heap[b, row], heap[a, row]


@_compiled
def _heap_push(heap, size, ready, kind, number):  # pragma: no cover
    heap[size, 0], heap[size, 1], heap[size, 2] = ready, kind, number
    child = size
    while child > 0:
        parent = (child - 1) // 2
        if not _heap_less(heap, child, parent):
            break
        _heap_swap(heap, child, parent)
        child = parent
    return size + 1


@_compiled
def _heap_pop(heap, size):  # pragma: no cover
    """Move the first request to slot ``size - 1`` and restore the heap over the rest; returns the new size."""
    size -= 1
    _heap_swap(heap, 0, size)
    parent = 0
    while True:
        first, left = parent, 2 * parent + 1
        if left < size and _heap_less(heap, left, first):
            first = left
        if left + 1 < size and _heap_less(heap, left + 1, first):
            first = left + 1
        if first == parent:
            return size
        _heap_swap(heap, parent, first)
        parent = first
