"""Schedules: how a graph's ops become tasks on cores, with the dependencies between them.

* ``data``: batches across cores; every core runs the whole graph on its own batch.
* ``pipeline``: layers in contiguous stages, one per core, cut where the largest
  stage's compute cycles are least (:func:`balanced_stages`); batches stream through.
* ``split``: each op's folds shared across the cores (memory.py decides each
  core's share and traffic, and a reduction where K had to be cut); an op
  waits for all of the previous one.

On a heterogeneous accelerator (core groups, hardware.py) a schedule first
lays the ops out on kinds of core (:class:`Layout`), each op only on a kind
that runs it: ``data`` runs one batch per main core and gives each op, in
order, the kind that keeps the most loaded kind's cores least loaded (a
greedy balance of compute cycles), a group's cores serving every batch; ``pipeline`` cuts stages and
gives each stage a core of a kind, exactly (:func:`kind_stages`); ``split``
runs each op on the kind whose cores finish it first.  With one kind all three
are the homogeneous schedules above.

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
from typing import NamedTuple

import numpy as np

from attentionlite.simulator.accelerator.hardware import CoreKind
from attentionlite.simulator.accelerator.memory import OpWork, TileStream

# Batches a pipeline streams per stage: the first ``stages`` fill it, the rest run in steady state, over
# which throughput is measured (the second half of the completions).
PIPELINE_BATCHES_PER_STAGE = 4

# For each op, the ops whose outputs it reads from DRAM (not handed over on chip), by index.
DramInputs = Sequence[tuple[int, ...]]


class Task(NamedTuple):
    """One op (or one core's share of it) for one batch of images, on one core.

    ``depends_on``: tasks that must finish computing before this one computes;
    ``reads_from``: tasks whose stores this one's loads read (read after write).
    (A named tuple: a schedule makes one per op per batch at every design point
    of a sweep, and a tuple is made about three times faster than a frozen dataclass.)
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


# Per kind of core, per op: the op's cycles on that kind (None where the kind cannot run it).
KindCosts = Sequence[Sequence[int | None]]


@dataclass(frozen=True)
class Layout:
    """Where each op runs: the kind of core (an index into the accelerator's kinds) and, under ``pipeline``,
    its stage's core (None: the batches or the op's parts spread over the kind's cores)."""

    kind_of: tuple[int, ...]
    core_of: tuple[int, ...] | None = None


# ----------------------------------------------------------------------------- data


def balanced_kinds(costs: KindCosts, kinds: Sequence[CoreKind]) -> Layout:
    """Each op, in order, on the kind that leaves the busiest kind's cores least loaded (ties: the first)."""
    load = [0.0] * len(kinds)
    chosen = []
    for i in range(len(costs[0])):
        able = {k: cost for k, row in enumerate(costs) if (cost := row[i]) is not None}
        best = min(able, key=lambda k: max((load[j] + able[k] * (j == k)) / len(kinds[j].cores)
                                          for j in range(len(kinds))))
        load[best] += able[best]
        chosen.append(best)
    return Layout(tuple(chosen))


def data_parallel(works: Sequence[OpWork], layout: Layout, kinds: Sequence[CoreKind], reads: DramInputs) -> list[Task]:
    """Batches across the main cores, one per core: batch b runs op i on core b mod (cores of op i's kind)
    of that kind (main core b itself where the op is laid out on the main kind), after op i - 1 of the
    same batch where that ran on another core.  Without groups: every core runs the whole graph on its
    own batch.

    Ops go in order, each op for every batch before the next op, so a group
    core serving several batches interleaves them rather than finishing one
    batch's ops before starting the next's (which would serialise the
    batches); a main core serves one batch, so its ops stay adjacent.
    """
    batches = len(kinds[0].cores)

    def core(i: int, batch: int) -> int:
        cores = kinds[layout.kind_of[i]].cores
        return cores[batch % len(cores)]

    return [Task(i, core(i, batch), batch, _single_tile_if_empty(work.tiles),
                 ((i - 1) * batches + batch,) if i and core(i - 1, batch) != core(i, batch) else (),
                 tuple(p * batches + batch for p in reads[i]))
            for i, work in enumerate(works) for batch in range(batches)]


# ----------------------------------------------------------------------------- split


def fastest_kinds(costs: KindCosts, kinds: Sequence[CoreKind]) -> Layout:
    """Each op on the kind whose cores finish it first (ties: the first kind)."""
    return Layout(tuple(min((k for k in range(len(kinds)) if costs[k][i] is not None), key=lambda k: costs[k][i] or 0)
                        for i in range(len(costs[0]))))


def tile_split(works: Sequence[OpWork], layout: Layout, kinds: Sequence[CoreKind], reads: DramInputs) -> list[Task]:
    """Each op's folds shared across its kind's cores (a core with no share idles); an op waits for all of
    the previous one (and its reduction)."""
    tasks: list[Task] = []
    finals: list[tuple[int, ...]] = []  # per op, the tasks whose end completes it
    previous: tuple[int, ...] = ()
    for i, work in enumerate(works):
        produced = tuple(task for p in reads[i] for task in finals[p])
        final = split_tasks(i, work, kinds[layout.kind_of[i]].cores, previous, produced, tasks)
        finals.append(final)
        previous = final
    return tasks


def split_tasks(op_index: int, work: OpWork, cores: Sequence[int], after: tuple[int, ...],
                reading: tuple[int, ...], tasks: list[Task]) -> tuple[int, ...]:
    """Append one op's parts (part j on ``cores[j]``) and any reduction to ``tasks``; the tasks that end it."""
    first = len(tasks)
    busy = [(cores[j], part) for j, part in enumerate(work.parts) if len(part)] or [(cores[0], work.parts[0])]
    tasks += [Task(op_index, core, 0, _single_tile_if_empty(part), after, reading) for core, part in busy]
    final = tuple(range(first, len(tasks)))
    if work.reduction is not None:  # the first core adds the split-K partial sums the parts stored
        tasks.append(Task(op_index, cores[0], 0, work.reduction, final, final))
        final = (len(tasks) - 1,)
    return final


# ----------------------------------------------------------------------------- pipeline


def balanced_stages(costs: Sequence[int], stages: int) -> list[int]:
    """Stage index of each op: ``stages`` contiguous, non-empty runs whose largest total cost (the
    pipeline's bottleneck) is as small as it can be.

    Exact, by dynamic programming over the op order (the linear partition
    problem): ``best[j, m]``, the smallest bottleneck of the first ``m`` ops in
    ``j`` stages, is ``min over i < m of max(best[j - 1, i], cost(i..m))``.
    O(stages x ops^2) integer work, vectorised over both ops.  Among partitions
    with the same bottleneck the one whose last cut lies furthest left is taken.
    """
    n = len(costs)
    stages = min(stages, n)
    if stages <= 1:
        return [0] * n
    prefix = np.concatenate(([0], np.cumsum(np.asarray(costs, dtype=np.int64))))
    span = prefix[None, :] - prefix[:, None]  # span[i, m]: cost of ops i..m-1
    best = np.where(np.arange(n + 1) > 0, prefix, _IMPOSSIBLE)[None, :].repeat(stages, axis=0)  # one stage
    cut = np.zeros((stages, n + 1), dtype=np.int64)
    later = np.arange(n + 1)[:, None] < np.arange(n + 1)[None, :]  # i < m
    for j in range(1, stages):
        candidates = np.where(later, np.maximum(best[j - 1][:, None], span), _IMPOSSIBLE)
        cut[j] = np.argmin(candidates, axis=0)
        best[j] = candidates[cut[j], np.arange(n + 1)]
    stage_of = [0] * n
    end = n
    for j in range(stages - 1, 0, -1):
        start = int(cut[j, end])
        stage_of[start:end] = [j] * (end - start)
        end = start
    return stage_of


_IMPOSSIBLE = np.iinfo(np.int64).max


def kind_stages(costs: KindCosts, counts: Sequence[int]) -> list[tuple[int, int]]:
    """(stage, kind) of each op: contiguous stages, each on one core of a kind that runs all its ops, at most
    ``counts[k]`` stages of kind k, with the slowest stage (its ops' cycles on its kind) as fast as it can be.

    Exact, by dynamic programming over (ops done, stages used of each kind), in
    order of ops done; each step adds one stage of one kind, vectorised over
    where it ends.  Ties keep the first way found (fewer ops in earlier stages,
    kinds in order).
    """
    n = len(costs[0])
    shape = (n + 1, *[c + 1 for c in counts])
    best = np.full(shape, _IMPOSSIBLE, dtype=np.int64)
    came_from: dict[tuple, tuple[tuple, int]] = {}
    start = (0,) * (len(counts) + 1)
    best[start] = 0
    prefixes, reach = [], []
    for row in costs:  # per kind: prefix sums of cycles, and how far a stage starting at each op can reach
        cycles = np.array([0 if c is None else c for c in row], dtype=np.int64)
        prefixes.append(np.concatenate(([0], np.cumsum(cycles))))
        can = [c is not None for c in row]
        far, ends = n, [0] * (n + 1)
        for i in range(n - 1, -1, -1):
            far = far if can[i] else i
            ends[i] = far
        reach.append(ends)
    for state in sorted(np.ndindex(*shape), key=lambda s: s[0]):
        value = best[state]
        if value == _IMPOSSIBLE or state[0] == n:
            continue
        done, used = state[0], state[1:]
        for k, count in enumerate(counts):
            if used[k] == count or reach[k][done] == done:
                continue
            stops = np.arange(done + 1, reach[k][done] + 1)
            bottleneck = np.maximum(value, prefixes[k][stops] - prefixes[k][done])
            after = tuple(u + (j == k) for j, u in enumerate(used))
            for end, candidate in zip(stops.tolist(), bottleneck.tolist()):
                target = (end, *after)
                if candidate < best[target]:
                    best[target] = candidate
                    came_from[target] = (state, k)
    finals = [(n, *used) for used in np.ndindex(*shape[1:])]
    state = min(finals, key=lambda s: best[s])
    if best[state] == _IMPOSSIBLE:
        raise ValueError("no kind of core runs every op")  # cannot happen: the main kind runs every op kind
    segments = []
    while state[0] > 0:
        previous, kind = came_from[state]
        segments.append((previous[0], state[0], kind))
        state = previous
    placed = [(0, 0)] * n
    for stage, (first, end, kind) in enumerate(reversed(segments)):
        placed[first:end] = [(stage, kind)] * (end - first)
    return placed


def pipeline_layout(costs: KindCosts, kinds: Sequence[CoreKind]) -> Layout:
    """Stages cut exactly (:func:`balanced_stages` on one kind, :func:`kind_stages` on several), each on its
    own core: the j-th stage of a kind on that kind's j-th core.  The costs are compute cycles, which
    on-chip reuse does not change, so the cut holds once the hand-overs are known."""
    if len(kinds) == 1:
        stage_of = balanced_stages([c or 0 for c in costs[0]], len(kinds[0].cores))
        return Layout((0,) * len(stage_of), tuple(kinds[0].cores[s] for s in stage_of))
    placed = kind_stages(costs, [len(kind.cores) for kind in kinds])
    seen: dict[int, int] = {}  # stage -> its core
    taken = [0] * len(kinds)
    for stage, kind in placed:
        if stage not in seen:
            seen[stage] = kinds[kind].cores[taken[kind]]
            taken[kind] += 1
    return Layout(tuple(kind for _, kind in placed), tuple(seen[stage] for stage, _ in placed))


def layer_pipeline(works: Sequence[OpWork], layout: Layout, kinds: Sequence[CoreKind], reads: DramInputs) -> list[Task]:
    """Layers in balanced stages, one per core; :data:`PIPELINE_BATCHES_PER_STAGE` x stages batches stream through."""
    core_of = layout.core_of
    assert core_of is not None
    n = len(works)
    tasks: list[Task] = []
    for batch in range(PIPELINE_BATCHES_PER_STAGE * len(set(core_of))):
        for i, work in enumerate(works):
            depends = (batch * n + i - 1,) if 0 < i and core_of[i] != core_of[i - 1] else ()
            reads_from = tuple(batch * n + p for p in reads[i])
            tasks.append(Task(i, core_of[i], batch, _single_tile_if_empty(work.tiles), depends, reads_from))
    return tasks


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Schedule:
    """A way to place ops on cores: how it lays ops out on kinds of core (from each op's cycles on each
    kind), its tasks, which ops run right after their predecessor on one core (so may hand a tensor over
    on chip), and whether each op's work is shared by its kind's cores."""

    layout: Callable[[KindCosts, Sequence[CoreKind]], Layout]
    tasks: Callable[[Sequence[OpWork], Layout, Sequence[CoreKind], DramInputs], list[Task]]
    follows_on_same_core: Callable[[Layout, Sequence[CoreKind]], list[bool]]
    shares_each_op: bool = False

    def parts(self, kind: CoreKind) -> int:
        """Cores one op's work is shared across on this kind of core."""
        return len(kind.cores) if self.shares_each_op else 1


def _same_kind_as_predecessor(layout: Layout, kinds: Sequence[CoreKind]) -> list[bool]:
    """Data-parallel: an op follows the one before it on the same core when both run on one kind whose
    cores serve one batch each (a group core serving several batches interleaves them)."""
    kind_of, batches = layout.kind_of, len(kinds[0].cores)
    return [i > 0 and kind_of[i] == kind_of[i - 1] and len(kinds[kind_of[i]].cores) >= batches
            for i in range(len(kind_of))]


def _within_stage(layout: Layout, kinds: Sequence[CoreKind]) -> list[bool]:
    """Pipeline: an op follows its predecessor on the same core unless a stage starts there."""
    cores = layout.core_of or ()
    return [i > 0 and cores[i] == cores[i - 1] for i in range(len(cores))]


def _never(layout: Layout, kinds: Sequence[CoreKind]) -> list[bool]:
    """Tile-split: each core holds only part of every tensor, so none is handed over on chip."""
    return [False] * len(layout.kind_of)


SCHEDULES: dict[str, Schedule] = {
    "data": Schedule(balanced_kinds, data_parallel, _same_kind_as_predecessor),
    "pipeline": Schedule(pipeline_layout, layer_pipeline, _within_stage),
    "split": Schedule(fastest_kinds, tile_split, _never, shares_each_op=True),
}
