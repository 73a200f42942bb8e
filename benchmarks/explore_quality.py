"""How good a front `explore` finds in 500 trials, against exhaustive grids it can be checked against.

    python benchmarks/explore_quality.py                      # sasa26_hybrid, 500 trials, seeds 0 1 2
    python benchmarks/explore_quality.py --trials 200 --seeds 0

Two comparisons, one model, objectives latency, energy per image and PEs
(all minimised), hypervolume (exact, by slicing) of each front:

1. *Recall on an enumerable space*: explore a sub-space small enough to
   simulate point by point (``SUBSPACE``), and divide its front's hypervolume by
   the exhaustive grid's.
2. *A huge space against its enumerable part*: explore the full ``SPACE``
   (>= 10^5 points, which contains the sub-space) and divide its front's
   hypervolume by the sub-space grid's: above 1 the search of the whole space in
   500 trials found better designs than enumerating the sub-space.

Hypervolume is taken on log10 of each objective (they span orders of
magnitude), normalised by the grid front's range, with the reference point
1.1 in every coordinate, the same for every front of a comparison.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import attentionlite as al  # noqa: E402
from attentionlite.analysis.explore import Search, Space, explore, hypervolume, parse_objectives  # noqa: E402
from attentionlite.analysis.sweep import design_points, pareto_mask, run_sweep  # noqa: E402

SIDES = (8, 16, 32, 64, 128, 256)
SPACE = {  # 36 arrays x 3 x 5 x 6 x 6 x 4 x 3 = 233,280 points
    "array": [(rows, cols) for rows in SIDES for cols in SIDES],
    "dataflow": ["os", "ws", "is"],
    "cores": [1, 2, 4, 8, 16],
    "dram.bandwidth_gb_s": [6.4, 12.8, 25.6, 51.2, 102.4, 204.8],
    "sram_kib": [16, 32, 64, 128, 256, 512],
    "vector.lanes": [8, 16, 32, 64],
    "schedule": ["data", "pipeline", "split"],
}
SUBSPACE = {  # 6 x 3 x 4 x 4 x 4 x 2 = 2,304 points: 500 trials see at most a fifth of them
    "array": [(side, side) for side in SIDES],
    "dataflow": ["os", "ws", "is"],
    "cores": [1, 2, 4, 8],
    "dram.bandwidth_gb_s": [12.8, 25.6, 51.2, 102.4],
    "sram_kib": [128, 256, 512, 1024],
    "vector.lanes": [16, 32],
}
COLUMNS = ("latency_s", "energy_per_image_j", "pes")


def front_values(rows: list[dict]) -> np.ndarray:
    """The distinct non-dominated objective vectors of ``rows`` (a search may try a point twice), in log10."""
    values = np.unique(np.array([[math.log10(float(row[c])) for c in COLUMNS] for row in rows]), axis=0)
    return values[np.array(pareto_mask([dict(zip(COLUMNS, v)) for v in values], COLUMNS))]


def normalised_hypervolume(front: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    return hypervolume((front - low) / np.where(high > low, high - low, 1.0), np.full(len(COLUMNS), 1.1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sasa26_hybrid")
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)

    config = al.api.hardware_config("paa-default")
    graphs = {args.model: al.trace(args.model, density=0.1)}
    objectives = parse_objectives(["latency", "energy", "pes"])
    start = time.perf_counter()
    grid = run_sweep(graphs, config, design_points(config, SUBSPACE), args.workers)
    grid_front = front_values(grid)
    low, high = grid_front.min(axis=0), grid_front.max(axis=0)
    grid_hv = normalised_hypervolume(grid_front, low, high)
    print(f"{args.model}: sub-space grid {len(grid)} points ({time.perf_counter() - start:.0f} s), "
          f"front {len(grid_front)}, hypervolume {grid_hv:.4f}")
    print(f"full space: {Space(SPACE).size:,} points; {args.trials} trials per search; "
          "hypervolume on log10 objectives normalised by the grid front")
    print(f"{'seed':>4}  {'space searched':<16} {'trials':>6} {'distinct':>8} {'front':>5} {'HV':>7} "
          f"{'HV / grid HV':>12} {'s':>5}")
    for seed in args.seeds:
        for name, knobs in (("sub-space", SUBSPACE), ("full space", SPACE)):
            start = time.perf_counter()
            search = Search(Space(knobs), args.trials, tuple(objectives), seed=seed)
            found = explore(graphs, config, search, workers=args.workers)
            rows = [row for row in found.trials if row["feasible"]]
            front = front_values(rows)
            hv = normalised_hypervolume(front, low, high)
            columns = Space(knobs).columns
            distinct = len({tuple(row[column] for column in columns) for row in found.trials})
            print(f"{seed:>4}  {name:<16} {len(found.trials):>6} {distinct:>8} {len(front):>5} {hv:>7.4f} "
                  f"{hv / grid_hv:>12.3f} {time.perf_counter() - start:>5.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
