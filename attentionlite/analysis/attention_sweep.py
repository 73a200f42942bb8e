"""``attentionlite attention-sweep``: one checkpoint at several attention sparsities, on the accelerator.

The checkpoint's attention maps are averaged once over calibration images
(:func:`~attentionlite.model.training.attention_sparsity.calibrate`); at each
sparsity every head keeps its largest entries (``sparsify-attention``'s
masks, chosen from the same maps), the model is scored on the checkpoint's
evaluation images (its held-out validation images, or the test split), traced
and simulated.  A row per sparsity: accuracy, latency, energy and DRAM bytes of
one image, the attention's own share (Q K^T, softmax, A V; or a SASA layer's
window logits, softmax and weighted sum), the kept entries and, for global
attention, ViTCoD's denser-engine share.  Sparsity 0 is the dense model (no
mask), and every row's speed-up and energy saving are against it when it is
swept.

What hardware does with the masks: a global attention's fixed mask saves work
only on split engines (``attention.split_sparse``, on in ``vitcod-like``);
without them the array computes it dense and only the accuracy moves.  A SASA
layer's heads keep window positions, which the gathered window mapping skips on
any hardware (each query gathers the kept positions) and the blocked one does
not (its block computes the whole halo).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from attentionlite.errors import InputError
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.results import SimResult
from attentionlite.simulator.accelerator.simulation import simulate
from attentionlite.simulator.graph.ops import OpKind
from attentionlite.simulator.graph.targets import TraceOptions, checkpoint_graph

DEFAULT_SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)
# The attention's own ops, global (Q K^T, softmax, A V) or local (window logits, softmax, weighted sum).
ATTENTION_KINDS = frozenset(kind.value for kind in (OpKind.ATTENTION_LOGITS, OpKind.SOFTMAX, OpKind.ATTENTION_VALUES,
                                                   OpKind.WINDOW_LOGITS, OpKind.WEIGHTED_SUM))


def attention_sweep(
    path: str | Path,
    data_dir: str | Path,
    hardware: HardwareConfig,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    calibration_images: int = 50,
    test_subset: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> list[dict]:
    """One row per sparsity (see the module docstring), in the order given."""
    from attentionlite.model.training.attention_sparsity import calibrate  # torch and the data pipeline

    calibration = calibrate(path, data_dir, tuple(sparsities), calibration_images, test_subset, device, cache_dir,
                            progress)
    rows = []
    for sparsity in sparsities:
        calibration.apply(sparsity)
        graph = checkpoint_graph(calibration.checkpoint, Path(path), TraceOptions())
        blocks = calibration.block_rows()
        rows.append({"sparsity": sparsity, f"{calibration.split}_accuracy": calibration.accuracy(),
                     **_costs(simulate(graph, hardware)),
                     "kept_per_head": blocks[0]["kept_per_head"][0] if blocks else None,
                     "dense_share": _mean([b["dense_share"] for b in blocks if b["dense_share"] is not None]),
                     "attention": calibration.attention_kind, "hardware": hardware.name})
    return _with_gains(rows)


@dataclass(frozen=True)
class AttentionSweep:
    """A report's attention-sparsity sweep: which checkpoint, on what images, on which hardware."""

    checkpoint: Path
    data_dir: Path
    hardware: HardwareConfig
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    calibration_images: int = 50
    test_subset: int | None = None
    cache_dir: Path | None = None

    def check(self) -> None:
        """The checkpoint has attention the sparsities suit, and the data folder exists: before a report's slow
        steps."""
        from attentionlite.model.training.attention_sparsity import load_attention_model

        load_attention_model(self.checkpoint, self.sparsities)
        if not self.data_dir.is_dir():
            raise InputError(f"dataset folder {self.data_dir}: not found; expected the folder holding the "
                             "checkpoint's dataset")

    def run(self, progress: bool = False) -> list[dict]:
        return attention_sweep(self.checkpoint, self.data_dir, self.hardware, self.sparsities,
                               self.calibration_images, self.test_subset, cache_dir=self.cache_dir,
                               progress=progress)

    def described(self) -> dict:
        return {"checkpoint": str(self.checkpoint), "data_dir": str(self.data_dir), "hardware": self.hardware.name,
                "sparsities": list(self.sparsities), "calibration_images": self.calibration_images,
                "test_subset": self.test_subset}


def accuracy_key(row: Mapping) -> str:
    """The row's accuracy column: ``val_accuracy`` or ``test_accuracy``, as the checkpoint is scored."""
    return next(key for key in row if key.endswith("_accuracy"))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _costs(result: SimResult) -> dict:
    clock_hz = result.hardware["clock_mhz"] * 1e6
    attention = [row for row in result.rows if row.kind in ATTENTION_KINDS]
    image = result.totals.per_image
    batch = result.totals.batch
    return {
        "latency_ms": result.totals.latency_s * 1e3,
        "attention_ms": sum(row.compute_cycles + row.stall_cycles for row in attention) / clock_hz * 1e3 / batch,
        "energy_uj": image.energy_pj / 1e6,
        "attention_energy_uj": sum(row.energy.total for row in attention) / 1e6 / batch,
        "dram_mb": image.dram_bytes / 1e6,
    }


def _with_gains(rows: list[dict]) -> list[dict]:
    """Each row's speed-up (latency and attention) and energy saving over the dense row, where one was swept."""
    dense = next((row for row in rows if row["sparsity"] == 0), None)
    for row in rows:
        row["speedup"] = dense["latency_ms"] / row["latency_ms"] if dense else None
        row["attention_speedup"] = dense["attention_ms"] / row["attention_ms"] if dense else None
        row["energy_saving"] = 1 - row["energy_uj"] / dense["energy_uj"] if dense else None
    return rows
