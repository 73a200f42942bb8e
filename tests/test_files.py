"""Atomic writers: every file and folder flushed before its rename, the folder after it; unwritable
paths refused before any work, in one line."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from attentionlite.cli import main
from attentionlite.errors import InputError
from attentionlite.files import OUTPUT_MARK, atomic_write_text, check_writable, write_text_folder


@pytest.fixture
def events(monkeypatch):
    """Every fsync (by the path of its descriptor) and every rename, in order."""
    log: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, target):
        log.append(("rename", str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's path")
def test_a_folder_is_flushed_file_by_file_then_renamed_then_its_parent_flushed(tmp_path, events):
    out = tmp_path / "report"
    write_text_folder(out, {"a.csv": "1\n", "b.json": "{}\n"})
    kinds = [kind for kind, _ in events]
    rename = kinds.index("rename")
    synced_before = [Path(path).name for kind, path in events[:rename] if kind == "sync"]
    assert "a.csv" in synced_before and "b.json" in synced_before
    assert any(name.startswith(".report.") for name in synced_before)  # the staging folder itself
    assert events[rename:] == [("rename", str(out)), ("sync", str(tmp_path))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's path")
def test_a_file_is_flushed_renamed_and_its_folder_flushed(tmp_path, events):
    atomic_write_text(tmp_path / "x.toml", "a = 1\n")
    assert [kind for kind, _ in events] == ["sync", "rename", "sync"]
    assert events[1:] == [("rename", str(tmp_path / "x.toml")), ("sync", str(tmp_path))]


def test_check_writable_takes_a_new_path_in_a_writable_folder_and_leaves_nothing(tmp_path):
    check_writable(tmp_path / "new" / "deeper", "out")
    assert list(tmp_path.iterdir()) == []  # the probe is gone and nothing was created


def test_a_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=r"out .*file/sub: cannot be written \(.*is a file\)"):
        check_writable(tmp_path / "file" / "sub", "out")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc, a folder no one can create files in")
def test_simulate_refuses_an_unwritable_out_before_simulating():
    result = CliRunner().invoke(main, ["simulate", "resnet50", "--out", "/proc/x"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --out /proc/x: cannot be written (No such file or directory); expected a path in a writable folder"]
    assert result.stdout == ""  # no per-op table printed first


def test_report_set_is_checked_before_any_work(tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["report", "--set", "dram.bandwidth_gb_s=-1", "--out", str(out)])
    assert result.exit_code == 2
    assert "'dram.bandwidth_gb_s' is -1; expected a positive value" in result.output
    bad = CliRunner().invoke(main, ["report", "--set", "cores=1,2", "--out", str(out)])
    assert bad.exit_code == 2 and "expected KEY=VALUE with one value" in bad.output
    assert not out.exists()


def test_an_output_folder_replaces_an_earlier_output_but_never_a_folder_of_other_files(tmp_path):
    write_text_folder(tmp_path / "out", {"a.csv": "1"})
    write_text_folder(tmp_path / "out", {"b.csv": "2"})  # an earlier output: replaced as a whole
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OUTPUT_MARK, "b.csv"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match=r"--out .*mine: a folder without attentionlite's .attentionlite-output "
                                         r"mark that holds files \(e.g. 'thesis.tex'\)"):
        check_writable(tmp_path / "mine", "--out", folder=True)
    with pytest.raises(InputError, match="without attentionlite's .attentionlite-output mark"):
        write_text_folder(tmp_path / "mine", {"a.csv": "1"})
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]
    (tmp_path / "empty").mkdir()
    write_text_folder(tmp_path / "empty", {"a.csv": "1"})  # an empty folder holds nothing to lose


def test_simulate_into_a_folder_of_other_files_is_refused_before_simulating(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["simulate", "resnet50", "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "mark that holds files (e.g. 'notes.txt')" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("command", [["simulate", "resnet50", "--out", ""], ["trace", "resnet50", "--out", ""]])
def test_an_empty_path_is_refused(command):
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and "'--out': an empty path; expected a file or folder name" in result.stderr
    with pytest.raises(InputError, match="an empty path"):
        write_text_folder("", {"a.csv": "1"})
