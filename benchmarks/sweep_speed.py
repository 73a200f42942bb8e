"""Sweep and single-point speed of this tree against a baseline revision, side by side in one run.

    python benchmarks/sweep_speed.py                    # baseline: f872a75 (the last Python event loop)
    python benchmarks/sweep_speed.py --baseline HEAD~3 --skip-big-sweep

The baseline is checked out into a temporary git worktree and both trees run
the same commands in fresh processes, one after the other, on whatever this
machine has (print the load average with it).  Measured:

* the 864-point sweep of issue 18 (`sweep resnet50 sasa26_hybrid
  sasa26_homogeneous --arrays 8,...,256 --cores 1,2,4,8 --set
  dram.bandwidth_gb_s=12.8,25.6,51.2,102.4`, every local core): wall time,
  points per second, and whether both trees wrote the same sweep.csv bytes;
* single simulations: best of 3 in one process after one warm-up run (the
  warm-up compiles or loads the compiled engine and fills the memos, which a
  sweep does once per worker).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "f872a75"
SWEEP = ["sweep", "resnet50", "sasa26_hybrid", "sasa26_homogeneous", "--arrays", "8,16,32,64,128,256",
         "--cores", "1,2,4,8", "--set", "dram.bandwidth_gb_s=12.8,25.6,51.2,102.4"]
POINTS = [  # (label, model, hardware overrides)
    ("sasa26_homogeneous 10%, 8 cores of 8x8", "sasa26_homogeneous", {"cores": 8, "array": (8, 8)}),
    ("sasa26_homogeneous 10%, 4 cores of 32x32", "sasa26_homogeneous", {"cores": 4, "array": (32, 32)}),
    ("resnet50, 1 core of 32x32", "resnet50", {"cores": 1, "array": (32, 32)}),
]
POINT_SCRIPT = """
import sys, time
import attentionlite as al
from attentionlite.simulator.accelerator.simulation import simulate
model, overrides = sys.argv[1], eval(sys.argv[2])
graph = al.trace(model, density=1.0 if model == "resnet50" else 0.1)
config = al.api.hardware_config("paa-default", **overrides)
simulate(graph, config)
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    simulate(graph, config)
    best = min(best, time.perf_counter() - start)
print(best)
"""


def run_in(tree: Path, arguments: list[str], out: Path | None = None) -> float:
    """Wall seconds of the CLI of ``tree`` with ``arguments``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "from attentionlite.cli import main; main()", *arguments]
    command += ["--out", str(out)] if out is not None else []
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def point_seconds(tree: Path, model: str, overrides: dict) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", POINT_SCRIPT, model, repr(overrides)], env=env, check=True,
                          cwd=tree, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare against")
    parser.add_argument("--skip-big-sweep", action="store_true", help="only the single points")
    args = parser.parse_args(argv)
    print(f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as scratch:
        baseline = Path(scratch) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            trees = {f"baseline {args.baseline}": baseline, "this tree": ROOT}
            print(f"{'':<44}" + "".join(f"{name:>20}" for name in trees) + f"{'speed-up':>10}")
            for label, model, overrides in POINTS:
                seconds = [point_seconds(tree, model, overrides) for tree in trees.values()]
                print(f"{label:<44}" + "".join(f"{s * 1e3:>17.0f} ms" for s in seconds)
                      + f"{seconds[0] / seconds[1]:>9.1f}x")
            if not args.skip_big_sweep:
                outs = {name: Path(scratch) / name.replace(" ", "_") for name in trees}
                seconds = [run_in(tree, SWEEP, outs[name]) for name, tree in trees.items()]
                rates = [864 / s for s in seconds]
                print(f"{'864-point sweep, wall':<44}" + "".join(f"{s:>18.1f} s" for s in seconds)
                      + f"{seconds[0] / seconds[1]:>9.1f}x")
                print(f"{'  points per second':<44}" + "".join(f"{r:>20.1f}" for r in rates))
                same = [(out / "sweep.csv").read_bytes() for out in outs.values()]
                print(f"  sweep.csv byte-identical across the trees: {same[0] == same[1]}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
