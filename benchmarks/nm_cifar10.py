"""What does N:M pruning cost a distilled student in accuracy against unstructured pruning at the same density?

The CPU preset of ``distill_cifar10.py`` (its teacher, student, data and training sizes), with the
distilled student's settings that study chose on its validation images (b = 100, prune rate 0.2; chosen
for unstructured pruning at 10%, reused here as they are): the same student pruned to 12.5% density
unstructured, and 1:8 (``train --prune nm --density 0.125 --nm-block 8``), on the same seeds, scored once
on the test images.  Seed s of both shares its training images and initial weights, so the comparison is
paired.  About ten minutes on a 2-core machine (two students at a time, one thread each); runs are
resumable and reused.

    python benchmarks/nm_cifar10.py [--seeds 0 1 2] [--density 0.125 --nm-block 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distill_cifar10 as study  # noqa: E402  (the preset and helpers this benchmark shares)

CHOSEN = study.Setting("sasa26_hybrid", "distilled", (("beta", 100.0), ("prune_rate", 0.2)))
PRUNINGS = ("unstructured", "nm")


def main() -> None:
    args = _parse_args()
    settings = study.CPU_PRESET
    teacher = study._run(study._teacher_config(args, settings))
    configs = [_config(args, settings, prune, seed) for prune in PRUNINGS for seed in args.seeds]
    results = study._run_all(configs, settings["jobs"])
    accuracy = {prune: [row["test_accuracy"] for config, row in zip(configs, results) if config.prune == prune]
                for prune in PRUNINGS}
    kept = round(args.density * args.nm_block)
    print(f"Teacher: {teacher['val_accuracy']:.3f} on the validation images.  Student {CHOSEN.label}, "
          f"density {args.density:g}, seeds {args.seeds}, test images: {settings['test_subset']} per class.\n")
    print("| pruning | test accuracy (mean ± sd) |")
    print("|---|---|")
    print(f"| unstructured | {study._mean_spread(accuracy['unstructured'])} |")
    print(f"| {kept}:{args.nm_block} | {study._mean_spread(accuracy['nm'])} |")
    differences = [nm - free for nm, free in zip(accuracy["nm"], accuracy["unstructured"])]
    wins = sum(difference > 0 for difference in differences)
    print(f"\nN:M minus unstructured, paired by seed: {study._mean_spread(differences, signed=True)} "
          f"(N:M higher on {wins} of {len(differences)} seeds; per seed "
          + ", ".join(f"{difference:+.3f}" for difference in differences) + ")")


def _config(args, settings: dict, prune: str, seed: int):
    base = study._student_config(args, settings, CHOSEN, seed, phase="test")
    folder = Path(args.out) / "test" / f"{prune}_density{args.density:g}_block{args.nm_block}_seed{seed}"
    return dataclasses.replace(base, prune=prune, nm_block=args.nm_block, out=str(folder))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=study.REPO.parent / "shared" / "data" / "cifar10",
                        help="CIFAR-10 image folders")
    parser.add_argument("--out", default=str(study.REPO / "runs" / "nm_cifar10"), help="folder of the runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="test seeds (not the selection's)")
    parser.add_argument("--density", type=float, default=0.125, help="both students' density")
    parser.add_argument("--nm-block", type=int, default=8, help="M of the N:M student (N = density x M)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    args.device, args.prune = "cpu", "unstructured"  # what distill_cifar10's config helpers read
    return args


if __name__ == "__main__":
    main()
