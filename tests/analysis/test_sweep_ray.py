"""Sweeps on a real local Ray instance (2 CPUs): the same rows in the same order as the local engine."""

import pytest
from test_analysis_compare import hand_graphs, tiny_hardware

from attentionlite.analysis.explore import Search, Space, explore, parse_objectives
from attentionlite.analysis.sweep import SweepJournal, design_points, run_sweep

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

FIFTY_POINTS = {"array": [(4, 4), (8, 4), (4, 8), (8, 8), (2, 4)], "dram.bandwidth_gb_s": [1.0, 2.0, 4.0, 8.0, 1e3]}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_fifty_point_sweep_on_ray_gives_the_local_rows_in_order(local_ray, tmp_path):
    hardware = tiny_hardware(tmp_path)
    points = design_points(hardware, FIFTY_POINTS)
    local = run_sweep(hand_graphs(), hardware, points, workers=2)
    ticks = []
    on_ray = run_sweep(hand_graphs(), hardware, points, engine="ray", on_done=lambda: ticks.append(1))
    assert len(local) == len(ticks) == 50
    assert on_ray == local


def test_a_ray_sweep_journals_its_rows_and_resumes_from_them(local_ray, tmp_path):
    hardware = tiny_hardware(tmp_path)
    points = design_points(hardware, FIFTY_POINTS)
    journal = SweepJournal(tmp_path / "j.jsonl")
    rows = run_sweep(hand_graphs(), hardware, points[:10], engine="ray", journal=journal)
    assert len(journal.path.read_text().splitlines()) == 20
    assert run_sweep(hand_graphs(), hardware, points[:10], engine="ray", journal=SweepJournal(journal.path)) == rows


def test_a_search_on_ray_tries_the_local_searchs_trials(local_ray, tmp_path):
    hardware = tiny_hardware(tmp_path)
    space = Space({knob: list(values) for knob, values in FIFTY_POINTS.items()})
    search = Search(space, trials=20, objectives=tuple(parse_objectives(["latency", "energy"])), seed=2)
    local = explore(hand_graphs(), hardware, search, workers=2)
    on_ray = explore(hand_graphs(), hardware, search, engine="ray")
    assert on_ray.trials == local.trials and on_ray.front == local.front
