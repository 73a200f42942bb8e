"""An interrupted sweep resumes from its journal: the finished points are not simulated again, and the
result is the same bytes as an uninterrupted sweep's."""

import os
import signal
import subprocess
import sys
import time

import pytest
from test_analysis_compare import hand_graphs, tiny_hardware

import attentionlite as al
from attentionlite.analysis import sweep as sweep_module
from attentionlite.analysis.sweep import SweepJournal, design_points, journal_path, run_sweep, sweep_tasks, write_sweep
from attentionlite.errors import InputError

KNOBS = {"array": [(4, 4), (8, 4)], "dataflow": ["os", "ws"], "dram.bandwidth_gb_s": [1.0, 1000.0]}


@pytest.fixture(scope="module")
def hardware(tmp_path_factory):
    return tiny_hardware(tmp_path_factory.mktemp("hw"))


def counting_simulations(monkeypatch):
    calls = []
    real = sweep_module.simulate_point

    def counted(model, graph, config, point):
        calls.append((model, point))
        return real(model, graph, config, point)

    monkeypatch.setattr(sweep_module, "simulate_point", counted)
    return calls


class Interrupted(Exception):
    pass


def test_a_resumed_sweep_simulates_only_the_unfinished_points_and_gives_the_same_rows(hardware, tmp_path,
                                                                                     monkeypatch):
    points = design_points(hardware, KNOBS)
    whole = run_sweep(hand_graphs(), hardware, points, workers=1)
    journal = SweepJournal(tmp_path / "sweep.journal.jsonl")
    finished = []

    def stop_after_five():
        finished.append(1)
        if len(finished) == 5:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_sweep(hand_graphs(), hardware, points, workers=1, on_done=stop_after_five, journal=journal)
    assert len((tmp_path / "sweep.journal.jsonl").read_text().splitlines()) == 5

    calls = counting_simulations(monkeypatch)
    resumed = run_sweep(hand_graphs(), hardware, points, workers=1, journal=SweepJournal(journal.path))
    assert len(calls) == 2 * len(points) - 5
    assert resumed == whole


def test_a_line_cut_short_by_a_kill_is_dropped_and_its_point_simulated_again(hardware, tmp_path, monkeypatch):
    points = design_points(hardware, KNOBS)
    whole = run_sweep(hand_graphs(), hardware, points, workers=1)
    tasks = sweep_tasks(hand_graphs(), points)
    path = tmp_path / "j.jsonl"
    journal = SweepJournal(path)
    for task, row in list(zip(tasks, whole))[:3]:
        journal.add(task, row)
    path.write_text(path.read_text()[:-20])  # the third line's write was interrupted
    calls = counting_simulations(monkeypatch)
    assert run_sweep(hand_graphs(), hardware, points, workers=1, journal=SweepJournal(path)) == whole
    assert len(calls) == len(tasks) - 2


def test_a_journal_of_another_sweep_is_refused(hardware, tmp_path):
    points = design_points(hardware, KNOBS)
    path = tmp_path / "j.jsonl"
    other = design_points(hardware, {"array": [(4, 4)], "dataflow": ["is"]})
    SweepJournal(path).add(sweep_tasks(hand_graphs(), other)[0], {"model": "teacher"})
    with pytest.raises(InputError, match="line 1: from another sweep"):
        run_sweep(hand_graphs(), hardware, points, workers=1, journal=SweepJournal(path))
    path.write_text("not json\n{}\n")
    with pytest.raises(InputError, match="line 1: not a journal entry"):
        run_sweep(hand_graphs(), hardware, points, workers=1, journal=SweepJournal(path))


def test_an_existing_journal_without_resume_is_refused_before_anything_runs(tmp_path):
    journal = journal_path(tmp_path / "sweep")
    journal.write_text("")
    with pytest.raises(InputError, match="unfinished sweep's journal.*expected resume"):
        al.api.sweep(["resnet26"], {"array": [(8, 8)]}, journal=journal)
    assert journal.read_text() == "" and not (tmp_path / "sweep").exists()


def _journal_lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_killed_cli_sweep_resumes_to_the_same_bytes(tmp_path):
    # A real kill (SIGKILL, no clean-up) of the CLI in the middle of a sweep, then the same command with
    # --resume; the result must be the bytes an uninterrupted sweep writes.
    arguments = ["resnet26", "--arrays", "8,16", "--dataflows", "os,ws,is", "--cores", "1,2",
                 "--set", "dram.bandwidth_gb_s=6.4,51.2", "--workers", "1"]
    out, journal = tmp_path / "sweep", journal_path(tmp_path / "sweep")
    command = [sys.executable, "-c", "from attentionlite.cli import main; main()", "sweep", *arguments,
               "--out", str(out)]
    env = {**os.environ, "ATTENTIONLITE_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _journal_lines(journal) < 4 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _journal_lines(journal)
    assert 4 <= killed_at < 24 and not out.exists()

    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not journal.exists()

    knobs = {"array": [(8, 8), (16, 16)], "dataflow": ["os", "ws", "is"], "cores": [1, 2],
             "dram.bandwidth_gb_s": [6.4, 51.2]}
    write_sweep(al.api.sweep(["resnet26"], knobs, workers=1, progress=False), tmp_path / "whole")
    for name in ("sweep.csv", "pareto.csv"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
