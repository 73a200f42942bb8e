"""Per-op rows from per-task timings: tasks of several ops and batches, in any order, grouped by hand."""

import numpy as np

from attentionlite.simulator.accelerator.engine import Timeline
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.memory import OpWork, TileStream
from attentionlite.simulator.accelerator.results import summarise
from attentionlite.simulator.accelerator.schedules import Task
from attentionlite.simulator.graph.ops import Op, OpKind

STREAM = TileStream(np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1))


def test_rows_take_the_first_batch_compute_and_the_mean_stall_and_span_over_batches():
    ops = [Op(name, OpKind.ADD, ((4,),), (4,), vector_ops=4) for name in ("a", "b")]
    works = [OpWork(parts=(STREAM,), vector_ops=4, folds=1) for _ in ops]
    # (op, core, batch), interleaved; op b's batch 1 is split over cores 1 and 2
    placed = [(1, 1, 1), (0, 0, 0), (1, 0, 0), (0, 1, 1), (1, 2, 1)]
    tasks = [Task(op, core, batch, STREAM) for op, core, batch in placed]
    timings = np.array([  # start, end, compute, stall, first transfer (-1: none), stored
        [26, 40, 14, 1, 24, 42],
        [0, 10, 10, 2, -1, 12],
        [12, 30, 18, 0, 10, 31],
        [5, 20, 10, 5, 3, 25],
        [27, 35, 8, 2, 25, 36],
    ], dtype=np.int64)
    timeline = Timeline(timings, [42, 42, 36], 2, {0: 31, 1: 42})
    config = load_hardware("paa-default", cores=3)
    result = summarise(ops, works, [config, config], tasks, timeline, config, {"schedule": "data"}, {})
    a, b = result.rows
    # a: batch 0 computes 10; stalls 2 and 5 -> 3.5, rounded to even 4; spans: batch 0 from its start 0 (no
    # transfer) to its store 12, batch 1 from its first transfer 3 to its store 25 -> (12 + 22) / 2
    assert (a.compute_cycles, a.stall_cycles, a.active_cycles) == (10, 4, 17.0)
    assert (a.start_cycle, a.end_cycle, a.cores) == (0, 20, "0-1")
    # b: batch 0 computes 18; stalls 0 and 1 + 2 -> 1.5, rounded to even 2; spans: batch 0 10..31 = 21,
    # batch 1 from the first transfer 24 to the last store 42 = 18 -> 19.5
    assert (b.compute_cycles, b.stall_cycles, b.active_cycles) == (18, 2, 19.5)
    assert (b.start_cycle, b.end_cycle, b.cores) == (12, 40, "0-2")
