"""Wall time of the default `attentionlite report` on this machine (the issue's goal: under two minutes).

Runs the command as a user would, into a temporary folder, twice: the first run calibrates this host
(unless a calibration is already cached), the second reuses the cached calibration.  Prints both
wall times, the machine's core count and load average at the start, and what the report holds.

    python benchmarks/report_time.py            # both runs
    python benchmarks/report_time.py --once     # one run, whatever the cache holds
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 120.0


def timed_report(out: Path, recalibrate: bool) -> float:
    """Seconds for one `attentionlite report` run into ``out``."""
    command = [sys.executable, "-c", "from attentionlite.cli import main; main()", "report", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command + (["--recalibrate"] if recalibrate else []), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def describe(out: Path) -> str:
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    rows = (out / "sweep.csv").read_text().count("\n") - 1
    return f"{len(files)} files, {rows} sweep rows"


def main() -> None:
    once = "--once" in sys.argv[1:]
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        runs = [("as cached now" if once else "calibrating this host", not once)]
        runs += [] if once else [("cached calibration", False)]
        for label, recalibrate in runs:
            seconds = timed_report(Path(folder) / "report", recalibrate)
            verdict = "within" if seconds <= GOAL_S else "over"
            print(f"default report, {label}: {seconds:.1f} s ({verdict} the {GOAL_S:.0f} s goal); "
                  f"{describe(Path(folder) / 'report')}")


if __name__ == "__main__":
    main()
