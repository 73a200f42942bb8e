"""The compiled event loop against the pure-Python loop it replaced (reference_engine.py), tile for tile.

Random task sets exercise every rule (double buffers, the shared channel, compute gates across cores,
read-after-write parking, tiles with nothing to move); real graphs under every schedule exercise them at
scale.  Every timing field, every core's end and the deadlock verdict must agree exactly.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_engine import reference_run

import attentionlite as al
from attentionlite.simulator.accelerator.engine import run
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.accelerator.memory import TileStream
from attentionlite.simulator.accelerator.schedules import Task
from attentionlite.simulator.accelerator.simulation import schedule_and_run


def assert_same_timeline(tasks, config):
    timings, core_end, computed = reference_run(tasks, config)
    if not all(computed):
        with pytest.raises(RuntimeError, match="deadlock"):
            run(tasks, config)
        return
    timeline = run(tasks, config)
    assert timeline.tasks == timings
    assert timeline.core_end == core_end


@st.composite
def task_sets(draw):
    """Tasks on up to 4 cores whose dependencies point only to earlier tasks (so none can deadlock)."""
    count = draw(st.integers(1, 12))
    tasks = []
    for task_id in range(count):
        tiles = draw(st.integers(1, 6))
        byte_counts = st.lists(st.sampled_from([0.0, 1.0, 7.0, 40.0, 333.0]), min_size=tiles, max_size=tiles)
        stream = TileStream(np.array(draw(st.lists(st.integers(0, 30), min_size=tiles, max_size=tiles)),
                                     dtype=np.int64),
                            np.array(draw(byte_counts)), np.array(draw(byte_counts)))
        earlier = st.lists(st.integers(0, task_id - 1), max_size=3, unique=True) if task_id else st.just([])
        tasks.append(Task(task_id, draw(st.integers(0, 3)), draw(st.integers(0, 2)), stream,
                          tuple(draw(earlier)), tuple(draw(earlier))))
    return tasks


@settings(max_examples=300, deadline=None)
@given(tasks=task_sets(), bandwidth=st.sampled_from([0.5, 4.0, 64.0]), latency=st.sampled_from([0, 10, 100]))
def test_random_task_sets_time_exactly_as_the_reference(tasks, bandwidth, latency):
    config = load_hardware("paa-default", bandwidth_gb_s=bandwidth, latency_ns=latency)
    assert_same_timeline(tasks, config)


def test_a_core_waiting_for_a_task_that_never_runs_is_a_deadlock_in_both():
    stream = TileStream(np.array([5]), np.array([8.0]), np.array([8.0]))
    tasks = [Task(0, 0, 0, stream, depends_on=(1,)), Task(1, 0, 0, stream)]  # core 0 runs 0 before 1
    assert_same_timeline(tasks, load_hardware("paa-default"))


@pytest.mark.parametrize("schedule", ["data", "pipeline", "split"])
@pytest.mark.parametrize("model", ["resnet26", "sasa26_hybrid"])
def test_zoo_models_time_exactly_as_the_reference(model, schedule):
    config = load_hardware("paa-default", cores=3, array=(16, 16), bandwidth_gb_s=12.8, sparsity="skip")
    done = schedule_and_run(al.trace(model, density=0.1), config, schedule)
    assert_same_timeline(done.tasks, config)
