"""What do SiDT's dimension pruning and ViTCoD's attention-map sparsity cost a distilled ViT in accuracy?

CIFAR-10 at CPU scale, scored once on the test images, on paired seeds (seed s of every method shares
its training images and initial weights):

- **dense**: a small ViT (``vit_tiny`` 64 wide, 4 blocks, 2 heads) distilled from the CPU teacher of
  ``distill_cifar10.py`` (ResNet-26 at width 0.25 on 250 images per class, 100 per class held out);
- **dims 0.8, dims 0.6**: the same ViT trained with ``--prune dims`` at those densities (the gates
  searched for the first half of the epochs, then the budget, then the rest of the run), compacted;
- **attention 0.9**: each dense run's checkpoint given 90% attention sparsity by
  ``sparsify-attention`` (calibrated on 50 training images per class), scored as it is and after
  ``train --init`` fine-tunes it for a few epochs under its masks, distilled as before; beside it, the
  dense checkpoint given the same extra epochs without masks (the fine-tuning's control).

Sizes are the SASA study's CPU preset where they carry over (batch 32, lr 0.05, KD a = 0.9, T = 4,
100 test images per class); the students see 100 training images per class for 20 epochs.  No setting
here was tuned, on test or validation images: the penalty and search length are ViT-Slim's default
and half the run.  About 20 minutes on a 2-core machine (two runs at a time); runs are resumable and
reused.

    python benchmarks/vit_pruning_cifar10.py [--seeds 0 1 2]
    python benchmarks/vit_pruning_cifar10.py --full --device cuda   # the recipe for a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distill_cifar10 as study  # noqa: E402  (the teacher and the helpers this benchmark shares)

from attentionlite.model.training.attention_sparsity import sparsify_attention  # noqa: E402
from attentionlite.model.training.compact import compact_checkpoint  # noqa: E402
from attentionlite.model.training.evaluate import evaluate_checkpoint  # noqa: E402
from attentionlite.model.training.train import CHECKPOINT_NAME, TrainConfig  # noqa: E402

CPU_PRESET = {"embed_dim": 64, "depth": 4, "heads": 2, "train_subset": 100, "epochs": 20, "tune_epochs": 5,
              "tune_lr": 0.01, "calibration_images": 50}
FULL_PRESET = {"embed_dim": None, "depth": None, "heads": None, "train_subset": None, "epochs": 300,
               "tune_epochs": 30, "tune_lr": 0.01, "calibration_images": 100}
DIMS_DENSITIES = (0.8, 0.6)


def main() -> None:
    args = _parse_args()
    teacher_settings = study.FULL_PRESET if args.full else study.CPU_PRESET
    vit = FULL_PRESET if args.full else CPU_PRESET
    teacher = study._run(study._teacher_config(args, teacher_settings))
    jobs = 1 if args.full else 2
    study._run_all([_config(args, teacher_settings, vit, method, seed)
                    for method in ("dense", *(f"dims{d:g}" for d in DIMS_DENSITIES)) for seed in args.seeds], jobs)
    scored = {"dense": [_scored(args, teacher_settings, _folder(args, "dense", seed) / CHECKPOINT_NAME)
                        for seed in args.seeds]}
    for density in DIMS_DENSITIES:
        scored[f"dims {density:g} (compacted)"] = [_compacted(args, teacher_settings, f"dims{density:g}", seed)
                                                   for seed in args.seeds]
    sparse = [_sparsified(args, teacher_settings, vit, seed) for seed in args.seeds]
    scored["attention 0.9, as sparsified"] = [_scored(args, teacher_settings, path) for path in sparse]
    # the fine-tuning's control: the dense model given the same extra epochs, without masks
    epochs = vit["tune_epochs"]
    for name, method, starts in (
            (f"dense, {epochs} more epochs", "dense_tuned", [_folder(args, "dense", s) / CHECKPOINT_NAME
                                                             for s in args.seeds]),
            (f"attention 0.9, fine-tuned {epochs} epochs", "attention0.9_tuned", sparse)):
        tuned = [_tune(args, teacher_settings, vit, start, method, seed) for start, seed in zip(starts, args.seeds)]
        study._run_all(tuned, jobs)
        scored[name] = [_scored(args, teacher_settings, Path(config.out) / CHECKPOINT_NAME) for config in tuned]
    print(f"Teacher: {teacher['val_accuracy']:.3f} on the validation images.  Seeds {args.seeds}; test images: "
          f"{teacher_settings['test_subset']} per class.\n")
    print("| student | test accuracy (mean ± sd) | minus dense, paired (mean ± sd) | parameters | MACs |")
    print("|---|---|---|---|---|")
    dense = [row["test_accuracy"] for row in scored["dense"]]
    for name, rows in scored.items():
        accuracies = [row["test_accuracy"] for row in rows]
        difference = [a - d for a, d in zip(accuracies, dense)]
        paired = study._mean_spread(difference, signed=True) if name != "dense" else ""
        print(f"| {name} | {study._mean_spread(accuracies)} | {paired} | {rows[0]['parameters']:,} "
              f"| {rows[0]['macs'] / 1e6:.1f} M |")


def _config(args, teacher: dict, vit: dict, method: str, seed: int) -> TrainConfig:
    prune = {"prune": "dims", "density": float(method.removeprefix("dims"))} if method.startswith("dims") else {}
    return TrainConfig(
        model="vit_tiny", embed_dim=vit["embed_dim"], depth=vit["depth"], heads=vit["heads"], epochs=vit["epochs"],
        out=str(_folder(args, method, seed)), seed=seed, teacher=str(Path(args.out) / "teacher" / CHECKPOINT_NAME),
        test_subset=teacher["test_subset"], **prune, **(study._common(args, teacher) | {"train_subset": vit["train_subset"]}),
    )


def _folder(args, method: str, seed: int) -> Path:
    return Path(args.out) / "test" / f"{method}_seed{seed}"


def _scored(args, teacher: dict, checkpoint: Path) -> dict:
    """Test accuracy, parameters and MACs (without the zero weights' work) of one checkpoint."""
    return evaluate_checkpoint(checkpoint, args.data_dir, test_subset=teacher["test_subset"])


def _compacted(args, teacher: dict, method: str, seed: int) -> dict:
    folder = _folder(args, method, seed)
    compacted = folder / "compacted.pt"
    if not compacted.is_file():
        compact_checkpoint(folder / CHECKPOINT_NAME, compacted)
    return _scored(args, teacher, compacted)


def _sparsified(args, teacher: dict, vit: dict, seed: int) -> Path:
    """The dense run's checkpoint at 90% attention sparsity."""
    sparse = _folder(args, "dense", seed) / "attention0.9.pt"
    if not sparse.is_file():
        sparsify_attention(_folder(args, "dense", seed) / CHECKPOINT_NAME, 0.9, args.data_dir, sparse,
                           calibration_images=vit["calibration_images"], test_subset=teacher["test_subset"],
                           progress=False)
    return sparse


def _tune(args, teacher: dict, vit: dict, start: Path, method: str, seed: int) -> TrainConfig:
    """A few more epochs from ``start`` at a lower learning rate, distilled as before."""
    base = _config(args, teacher, vit, "dense", seed)
    return dataclasses.replace(base, init=str(start), embed_dim=None, depth=None, heads=None, epochs=vit["tune_epochs"],
                               lr=vit["tune_lr"], out=str(_folder(args, method, seed)))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=study.REPO.parent / "shared" / "data" / "cifar10",
                        help="CIFAR-10 image folders")
    parser.add_argument("--out", default=str(study.REPO / "runs" / "vit_cifar10"), help="folder of the runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="test seeds")
    parser.add_argument("--full", action="store_true", help="the paper-scale recipe (a GPU's work)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args()


if __name__ == "__main__":
    main()
