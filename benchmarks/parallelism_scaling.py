"""The scaling table of issue 20: the three default models on paa-default and on paa-hetero, printed.

    python benchmarks/parallelism_scaling.py                      # DRAM as the presets have it (25.6 GB/s)
    python benchmarks/parallelism_scaling.py --bandwidth 409.6    # an HBM-class channel instead

For each preset, every model under every schedule over core counts: on
paa-default 1, 2, 4, 8 and 16 cores; on paa-hetero the same numbers of
attention engines beside its one conv engine (2, 3, 5, 9 and 17 cores), so its
speed-up is over the 2-core design.  Then where each model stops scaling, and
the verdict sentences.  Students at 10% density (initial masks), sparsity
``skip``, as the report.  Simulated numbers, not timings: the same on any machine.
"""

from __future__ import annotations

import argparse

import attentionlite as al
from attentionlite.analysis.parallelism import parallelism_study
from attentionlite.analysis.tables import LIMIT_COLUMNS, SCALING_COLUMNS, text_table
from attentionlite.simulator.accelerator.hardware import load_hardware, with_overrides

MODELS = ("resnet50", "sasa26_hybrid", "sasa26_homogeneous")
CORE_COUNTS = {"paa-default": (1, 2, 4, 8, 16), "paa-hetero": (2, 3, 5, 9, 17)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandwidth", type=float, help="DRAM GB/s for both presets (default: theirs)")
    args = parser.parse_args()
    graphs = {m: al.trace(m, density=1.0 if m == MODELS[0] else 0.1) for m in MODELS}
    for preset, counts in CORE_COUNTS.items():
        config = with_overrides(load_hardware(preset), sparsity="skip", bandwidth_gb_s=args.bandwidth)
        study = parallelism_study(graphs, config, counts)
        print(f"\n## {preset} ({config.dram.bandwidth_gb_s:g} GB/s DRAM)\n")
        print(text_table(study.scaling, SCALING_COLUMNS), "\n")
        print(text_table(study.limits, LIMIT_COLUMNS), "\n")
        print("\n".join(study.claims))


if __name__ == "__main__":
    main()
