"""The ``attentionlite`` command line: a thin click layer over the public API (:mod:`attentionlite.api`).

Each command parses its options (the comma lists and ``KEY=V1,V2`` settings
are parsed here, into the values the API takes), calls one library function
and prints or writes the result.  torch and matplotlib are imported inside the
commands that need them, so ``--help`` and the simulator's commands start
fast.  Bad input raises :class:`~attentionlite.errors.InputError`; it is
printed as one line and the command exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from attentionlite import api
from attentionlite.defaults import DEFAULT_DENSITY, DEFAULT_HARDWARE, DEFAULT_HETEROGENEOUS, DEFAULT_REPORT_HARDWARE
from attentionlite.errors import InputError, OverrideError
from attentionlite.simulator.accelerator.hardware import SPARSITY_MODES
from attentionlite.version import __version__

_HARDWARE_HELP = "Accelerator preset name or TOML path."
_BATCH_HELP = "Images per forward pass, at most 4096 [default: 1; a saved graph keeps its own]."
_BATCH = click.IntRange(min=1, max=4096)  # every image's tiles are simulated: more is hours, not a study
_DENSITY_HELP = ("Weight density of registered students (the pruning method's initial masks); "
                 "the first model (the teacher) stays dense and checkpoints keep their own masks.")


def _checked_out(folder: bool) -> Callable:
    """A callback that checks an --out path where it is given, before any slow work: a file or folder must be
    creatable there and, for an output ``folder`` replaced as a whole, an existing one must be empty or an
    earlier output (so that ``--out .`` cannot delete the current folder)."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            from attentionlite.files import check_writable

            check_writable(value, f"--{param.name}", folder=folder)
        return value

    return check


_writable = _checked_out(folder=False)
_output_folder = _checked_out(folder=True)


class _Path(click.Path):
    """click's Path, refusing an empty path, which every reader and writer would take for the current folder."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("an empty path; expected a file or folder name", param, ctx)
        return super().convert(value, param, ctx)


@contextmanager
def _overrides_named_by_flags(**flags: str) -> Iterator[None]:
    """A bad hardware override, within (or within the command it decorates), names the flag that set it
    (``--bandwidth -1.0: ...``), not the library's knob (``bandwidth_gb_s``); a knob without a flag here came
    from ``--set``."""
    try:
        yield
    except OverrideError as error:
        given = ", ".join(_flag_and_value(key, value, flags) for key, value in error.knobs.items())
        raise InputError(f"{given}: {error.problem}") from None


def _flag_and_value(knob: str, value: Any, flags: dict[str, str]) -> str:
    shown = "x".join(map(str, value)) if isinstance(value, tuple) else str(value)  # an array as RxC
    if knob not in flags:
        return f"--set {knob}={shown}"
    if isinstance(value, bool):
        return flags[knob] if value else f"--no-{flags[knob][2:]}"
    return f"{flags[knob]} {shown}"


class _Group(click.Group):
    """A click group that turns :class:`InputError`, and a command's bad option value or missing argument,
    into one line on stderr and exit status 2 (``--help`` says the rest)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except click.UsageError as error:
            where = f"{error.ctx.command_path}: " if error.ctx else ""
            click.echo(f"error: {where}{error.format_message()}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="attentionlite")
def main() -> None:
    """AttentionLite: what a pruned, distilled self-attention model buys on an
    attention accelerator and on a CPU, compared with the CNN it replaces.

    \b
    Pipeline:  train -> checkpoint -> trace -> simulate / cpu -> compare, sweep, report
    Start with `attentionlite report` (built-in default, no dataset needed).
    """


@main.command()
@click.option("--dataset", default="cifar10", show_default=True, help="cifar10, cifar100 or tinyimagenet: class count and image size.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier of every model.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(dataset: str, width: float, as_json: bool) -> None:
    """List the registered models with parameters and dense MACs."""
    import json

    from attentionlite.analysis.models import format_models_report, models_report

    report = models_report(dataset, width)
    click.echo(json.dumps(report, indent=2) if as_json else format_models_report(report))


@main.command()
@click.option("--model", required=True, help="Registered model to train (see `attentionlite models`), e.g. resnet50 or sasa26_hybrid.")
@click.option("--dataset", required=True, help="Dataset name: cifar10, cifar100 or tinyimagenet.")
@click.option("--data-dir", required=True, type=_Path(file_okay=False), help="Folder holding the dataset (CIFAR pickles or image folders).")
@click.option("--out", callback=_writable, required=True, type=_Path(file_okay=False), help="Run folder: checkpoint.pt and log.csv are (re)written there after every epoch.")
@click.option("--epochs", default=200, show_default=True, help="Training epochs.")
@click.option("--batch-size", default=128, show_default=True, help="Images per SGD step.")
@click.option("--lr", default=0.1, show_default=True, help="Initial learning rate; decays to 0 with a per-step cosine.")
@click.option("--momentum", default=0.9, show_default=True, help="SGD (Nesterov) momentum; also the signal sparse momentum regrows by.")
@click.option("--weight-decay", default=5e-4, show_default=True, help="L2 weight decay on all parameters.")
@click.option("--teacher", type=_Path(dir_okay=False), default=None, help="Teacher checkpoint to distil from (KD + attention transfer); omit to train with cross-entropy alone.")
@click.option("--init", type=_Path(dir_okay=False), default=None, help="Start from this checkpoint of the same model and dataset: its weights, its masks (a pruned one needs its own --prune and --density) and its fixed attention masks (fine-tuning after sparsify-attention).")
@click.option("--density", default=1.0, show_default=True, help="Fraction of maskable weights (conv, projection, classifier) kept; 1 = dense.")
@click.option("--prune", type=click.Choice(["unstructured", "column", "nm", "dims"]), default="unstructured", show_default=True, help="Pruning unit when density < 1: single weights, whole columns of the (out, in*k*k) weight matrix (compactable), N:M (N = density x --nm-block of every --nm-block weights along a row, for N:M arrays: --sparsity nm), or a ViT's dimensions (SiDT: density x the embedding channels, heads and MLP units kept, searched by gates; compactable).")
@click.option("--nm-block", default=4, show_default=True, help="M of --prune nm: the group along a weight row that keeps density x M weights (0.5 -> 2:4).")
@click.option("--search-epochs", type=int, default=None, help="--prune dims: epochs the dimension gates are searched before the budget applies; half the epochs if omitted.")
@click.option("--dims-penalty", default=1e-4, show_default=True, help="--prune dims: weight of the gates' L1 norm in the loss (ViT-Slim's).")
@click.option("--prune-rate", default=0.5, show_default=True, help="Fraction of active weights pruned and regrown after the first epoch; decays with a cosine to 0.")
@click.option("--alpha", default=0.9, show_default=True, help="KD weight a: loss = (1-a) CE + a T^2 KL + b/2 AT.")
@click.option("--temperature", default=4.0, show_default=True, help="KD softmax temperature T.")
@click.option("--beta", default=1000.0, show_default=True, help="Attention-transfer weight b (summed over the four stages).")
@click.option("--width", type=float, default=None, help="Channel width multiplier of the model (e.g. 0.25 for small runs); model default if omitted.")
@click.option("--heads", type=int, default=None, help="Attention heads of a SASA student or a ViT; model default (SASA 8, ViT-Ti 3, ViT-S 6) if omitted.")
@click.option("--kernel-size", type=int, default=None, help="Local attention window k of a SASA student; model default (7) if omitted.")
@click.option("--embed-dim", type=int, default=None, help="Token width of a ViT/DeiT; model default (192 tiny, 384 small) if omitted.")
@click.option("--depth", type=int, default=None, help="Blocks of a ViT/DeiT; model default (12) if omitted.")
@click.option("--train-subset", type=int, default=None, help="Use only this many training images per class (small runs).")
@click.option("--test-subset", type=int, default=None, help="Evaluate on only this many test images per class each epoch.")
@click.option("--validation", type=int, default=None, help="Hold out this many training images per class (the same draw for every seed) and evaluate on them instead of the test split: for choosing settings.")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Random crop (pad 4) and horizontal flip of training images.")
@click.option("--seed", default=0, show_default=True, help="Seed of weights, masks, batch order and augmentation.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="Where to train; cuda uses mixed precision (float16 autocast).")
@click.option("--cache-dir", type=_Path(file_okay=False), default=None, help="Where decoded image folders are cached (default ~/.cache/attentionlite/data).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its last finished epoch (same options).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(resume: bool, quiet: bool, **options) -> None:
    """Sparse distillation: train a (pruned) student from a teacher in one pass.

    Writes OUT/checkpoint.pt and OUT/log.csv (losses loss/ce/kd/at, train and
    test accuracy (val with --validation), overall and per-layer density)
    after every epoch.
    """
    from attentionlite.model.training.train import TrainConfig
    from attentionlite.model.training.train import train as run_training

    metrics = run_training(TrainConfig(progress=not quiet, **options), resume=resume)
    click.echo(_format_metrics(metrics))


@main.command()
@click.argument("checkpoint", type=_Path(dir_okay=False))
@click.option("--data-dir", required=True, type=_Path(file_okay=False), help="Folder holding the dataset.")
@click.option("--dataset", default=None, help="Dataset name; the checkpoint's own dataset if omitted (must match it).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="Where to run the model.")
@click.option("--batch-size", default=256, show_default=True, help="Images per forward pass.")
@click.option("--test-subset", type=int, default=None, help="Use only this many test images per class.")
def evaluate(checkpoint: str, **options) -> None:
    """Test accuracy, non-zero parameters and MACs of CHECKPOINT."""
    from attentionlite.model.training.evaluate import evaluate_checkpoint

    click.echo(_format_metrics(evaluate_checkpoint(checkpoint, **options)))


@main.command()
@click.argument("checkpoint", type=_Path(dir_okay=False))
@click.option("--out", callback=_writable, required=True, type=_Path(dir_okay=False), help="Where to write the compacted checkpoint.")
def compact(checkpoint: str, out: str) -> None:
    """Turn a column- or dimension-pruned CHECKPOINT into a smaller dense model with the same outputs."""
    from attentionlite.model.training.compact import compact_checkpoint

    click.echo(_format_metrics(compact_checkpoint(checkpoint, out)))


@main.command("sparsify-attention")
@click.argument("checkpoint", type=_Path(dir_okay=False))
@click.option("--sparsity", required=True, type=float, help="Share of each head's T x T attention entries (or k x k window positions) pruned, in [0, 1); 0 removes the masks. ViTCoD's headline point is 0.9.")
@click.option("--data-dir", required=True, type=_Path(file_okay=False), help="Folder holding the checkpoint's dataset.")
@click.option("--out", callback=_writable, required=True, type=_Path(dir_okay=False), help="Where to write the checkpoint with the fixed masks.")
@click.option("--calibration-images", default=50, show_default=True, type=click.IntRange(min=1), help="Training images per class whose attention maps are averaged (never the checkpoint's held-out validation images).")
@click.option("--test-subset", type=click.IntRange(min=1), default=None, help="Score on only this many test images per class (a checkpoint trained with --validation is scored on its validation images).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="Where to run the model.")
@click.option("--cache-dir", type=_Path(file_okay=False), default=None, help="Where decoded image folders are cached (default ~/.cache/attentionlite/data).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sparsify_attention(checkpoint: str, quiet: bool, **options) -> None:
    """Fixed attention-map sparsity (ViTCoD): prune a ViT's attention maps once, for every image; or a SASA
    network's window positions per head.

    Each block's attention probabilities are averaged over calibration images;
    each head keeps exactly ceil((1 - s) T^2) entries, its largest (each
    query's largest first), or of a SASA window ceil((1 - s) k^2) positions
    (the query's own position first). The masks are stored in OUT and traced with the model
    (`simulate OUT --hardware vitcod-like` runs a ViT's on ViTCoD's denser and
    sparser engines; the gathered window mapping skips a SASA layer's pruned
    positions); `train --init OUT` fine-tunes under them. Prints the accuracy
    before and after on the same images, and per block the entries kept and,
    for a ViT, the global tokens (keys more than 50/197 of the queries keep,
    run dense) and the share of the kept entries in their columns.
    """
    from attentionlite.analysis.tables import text_table
    from attentionlite.model.training.attention_sparsity import sparsify_attention as sparsify

    result = sparsify(checkpoint, progress=not quiet, **options)
    click.echo(f"{result.split} accuracy: {result.accuracy_before:.4f} dense, {result.accuracy_after:.4f} at "
               f"attention sparsity {result.sparsity:g}; written to {result.out}")
    if result.blocks:
        click.echo(text_table(result.blocks, {
            "block": lambda row: row["block"],
            "kept per head": lambda row: f"{'/'.join(map(str, row['kept_per_head']))} of {row['entries_per_head']}",
            "global tokens per head": lambda row: "-" if row["global_tokens"] is None else "/".join(
                map(str, row["global_tokens"])),
            "dense share": lambda row: "-" if row["dense_share"] is None else f"{row['dense_share']:.1%}",
        }))


@main.command("attention-sweep")
@click.argument("checkpoint", type=_Path(dir_okay=False))
@click.option("--data-dir", required=True, type=_Path(file_okay=False), help="Folder holding the checkpoint's dataset (calibration and scoring images).")
@click.option("--sparsities", default="0,0.5,0.8,0.9,0.95", show_default=True, help="Attention sparsities, comma-separated; 0 is the dense model, the speed-ups' reference.")
@click.option("--hardware", default="vitcod-like", show_default=True, help=_HARDWARE_HELP + " Fixed masks save work only with attention.split_sparse on (vitcod-like).")
@click.option("--calibration-images", default=50, show_default=True, type=click.IntRange(min=1), help="Training images per class whose attention maps are averaged, once for every sparsity.")
@click.option("--test-subset", type=click.IntRange(min=1), default=None, help="Score on only this many test images per class.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="Where to run the model.")
@click.option("--cache-dir", type=_Path(file_okay=False), default=None, help="Where decoded image folders are cached (default ~/.cache/attentionlite/data).")
@click.option("--out", callback=_writable, type=_Path(dir_okay=False), default=None, help="Also write the rows to this CSV file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def attention_sweep(checkpoint: str, sparsities: str, quiet: bool, out: str | None, **options) -> None:
    """A ViT or SASA CHECKPOINT at several attention sparsities: accuracy, latency, energy, DRAM bytes.

    The masks are sparsify-attention's, chosen from one averaging of the
    attention maps; each sparsity is scored on the checkpoint's evaluation
    images (its validation images if it held some out, else the test split)
    and simulated at batch 1.
    """
    from attentionlite.analysis.attention_sweep import accuracy_key
    from attentionlite.analysis.tables import text_table
    from attentionlite.files import atomic_write_text, rows_to_csv

    rows = api.attention_sweep(checkpoint, sparsities=parse_fractions(sparsities, "attention sparsities"),
                               progress=not quiet, **options)
    accuracy = accuracy_key(rows[0])
    click.echo(f"{options['hardware']}, batch 1 (speed-ups and savings against sparsity 0):")
    click.echo(text_table(rows, {
        "sparsity": lambda row: f"{row['sparsity']:g}",
        accuracy.replace("_", " "): lambda row: f"{row[accuracy]:.4f}",
        "latency (ms)": lambda row: f"{row['latency_ms']:.4f}",
        "attention (ms)": lambda row: f"{row['attention_ms']:.4f}",
        "energy (uJ)": lambda row: f"{row['energy_uj']:.2f}",
        "DRAM (MB)": lambda row: f"{row['dram_mb']:.3f}",
        "speed-up": lambda row: _optional_ratio(row["speedup"]),
        "attention speed-up": lambda row: _optional_ratio(row["attention_speedup"]),
        "energy saved": lambda row: "" if row["energy_saving"] is None else f"{row['energy_saving']:.1%}",
        "kept per head": lambda row: "all" if row["kept_per_head"] is None else str(row["kept_per_head"]),
        "denser engine": lambda row: "" if row["dense_share"] is None else f"{row['dense_share']:.0%}",
    }))
    if out:
        atomic_write_text(out, rows_to_csv(rows))
        click.echo(f"wrote {out}")


def _optional_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _format_metrics(metrics: dict) -> str:
    return "\n".join(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}"
                     for key, value in metrics.items())


@main.command()
@click.argument("target")
@click.option("--dataset", default=None,
              help="cifar10, cifar100 or tinyimagenet: classes and image size "
                   "[default: cifar10 for a model name, the checkpoint's own for a checkpoint]")
@click.option("--batch", default=None, type=_BATCH, help=_BATCH_HELP)
@click.option("--image-size", default=None, type=click.IntRange(min=1), help="Override the dataset's image side.")
@click.option("--fold-bn", is_flag=True, help="Fold batch norms into the convolution before them.")
@click.option("--format", "graph_format", default=None, type=click.Choice(["json", "graphml"]),
              help="Format of --out [default: from its suffix].")
@click.option("--out", callback=_writable, default=None, type=_Path(dir_okay=False), help="Write the graph to this file.")
@click.option("--word-bytes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Bytes per tensor element in the table.")
def trace(target, dataset, batch, image_size, fold_bn, graph_format, out, word_bytes) -> None:
    """Trace TARGET (a registered model name or a checkpoint file) into an operator graph.

    Prints one row per operator (kind, output shape, MACs, weights, non-zero
    weights, bytes in and out) and the totals; --out writes the graph (JSON or
    GraphML) for `attentionlite simulate` and `attentionlite cpu`.
    """
    from attentionlite.simulator.graph.formats import save_graph
    from attentionlite.simulator.graph.graph import op_table

    graph = api.trace(target, dataset=dataset, batch=batch, fold_bn=fold_bn, image_size=image_size)
    click.echo(op_table(graph, word_bytes))
    if out:
        click.echo(f"wrote {save_graph(graph, out, graph_format)}")


@main.command()
@click.argument("target", required=False)
@click.option("--topology", type=_Path(dir_okay=False), help="A SCALE-Sim topology CSV instead of TARGET.")
@click.option("--hardware", "hardware_name", default=DEFAULT_HARDWARE, show_default=True, help="Preset name or TOML file.")
@click.option("--array", help="Array size RxC (or N for NxN), overriding the hardware's.")
@click.option("--dataflow", type=click.Choice(["os", "ws", "is"]), help="Systolic dataflow.")
@click.option("--cores", type=int, help="Number of cores.")
@click.option("--bandwidth", "bandwidth_gb_s", type=float, help="Shared DRAM bandwidth in GB/s.")
@click.option("--window-mapping", type=click.Choice(["blocked", "gathered"]), help="How attention windows map onto the array.")
@click.option("--schedule", type=click.Choice(["data", "pipeline", "split"]), default="data", show_default=True)
@click.option("--sparsity", type=click.Choice(SPARSITY_MODES), help="How weight sparsity is exploited.")
@click.option("--dataset", help="Dataset that sets classes and image size when tracing a model name.")
@click.option("--batch", type=_BATCH, default=None, help=_BATCH_HELP)
@click.option("--fold-bn/--no-fold-bn", "fold_batch_norm", default=None,
              help="Fold each batch norm into the convolution before it, as inference hardware does "
                   "(default: the hardware's fold_batch_norm, true in every preset).")
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False),
              help="Folder for ops.csv, COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and summary.json.")
@_overrides_named_by_flags(array="--array", dataflow="--dataflow", cores="--cores", bandwidth_gb_s="--bandwidth",
                           window_mapping="--window-mapping", sparsity="--sparsity", fold_batch_norm="--fold-bn")
def simulate(target, topology, hardware_name, array, dataflow, cores, bandwidth_gb_s, window_mapping, schedule,
             sparsity, dataset, batch, fold_batch_norm, out) -> None:
    """Simulate a model, checkpoint, saved graph or SCALE-Sim topology on the accelerator.

    \b
    attentionlite simulate sasa26_homogeneous --hardware paa-default --out sim/
    attentionlite simulate --topology resnet18.csv --array 32x32 --dataflow os
    """
    from attentionlite.simulator.graph.targets import resolve_target

    if (target is None) == (topology is None):
        raise InputError("give either a TARGET (model name, checkpoint or saved graph) or --topology FILE, not both or neither")
    workload = resolve_target(topology, topology=True) if topology is not None else target
    result = api.simulate(workload, hardware_name, schedule=schedule, dataset=dataset, batch=batch, array=array,
                          dataflow=dataflow, cores=cores, bandwidth_gb_s=bandwidth_gb_s,
                          window_mapping=window_mapping, sparsity=sparsity, fold_batch_norm=fold_batch_norm)
    click.echo(result.table())
    if out:
        folder = result.write(out)
        click.echo(f"wrote {folder}/ops.csv, COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and summary.json")


@main.group()
def hardware() -> None:
    """List the accelerator presets or show one resolved config."""


@hardware.command("list")
def hardware_list() -> None:
    """The accelerator presets shipped with the package."""
    from attentionlite.simulator.accelerator.hardware import list_presets, load_hardware

    for name in list_presets():
        click.echo(f"{name:<16} {load_hardware(name).description}")


@hardware.command("show")
@click.argument("name")
@click.option("--array", help="Array size RxC (or N for NxN).")
@click.option("--dataflow", type=click.Choice(["os", "ws", "is"]))
@click.option("--cores", type=int)
@_overrides_named_by_flags(array="--array", dataflow="--dataflow", cores="--cores")
def hardware_show(name, array, dataflow, cores) -> None:
    """One preset or TOML file, resolved (defaults filled in, overrides applied)."""
    from attentionlite.simulator.accelerator.area import area_comment
    from attentionlite.simulator.accelerator.hardware import describe

    config = api.hardware_config(name, array=array, dataflow=dataflow, cores=cores)
    click.echo(describe(config))
    click.echo("\n" + area_comment(config))


@main.command()
@click.option("--out", callback=_writable, type=_Path(dir_okay=False), default="host.toml", show_default=True, help="CPU config TOML to write.")
@click.option("--quick", is_flag=True, help="One network width, batches 1 and 8, fewer repeats (about 10 s instead of about a minute).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="PyTorch threads (the config's cores); PyTorch's default if omitted.")
def calibrate(out: str, quick: bool, threads: int | None) -> None:
    """Time this machine (bandwidths, then small networks op by op) and write a CPU config."""
    from attentionlite.files import atomic_write_text
    from attentionlite.simulator.cpu.calibrate import calibrate as calibrate_host

    config = calibrate_host(quick=quick, threads=threads, progress=True)
    atomic_write_text(out, config.to_toml())
    click.echo(f"wrote {out}: {config.compute.cores} cores, {config.peak_flops / 1e9:.0f} GFLOP/s peak, "
               f"DRAM {config.dram.bandwidth_gb_s:.1f} GB/s")


@main.command()
@click.argument("target")
@click.option("--cpu", "cpu_name", default=None,
              help="CPU preset name or TOML file (from `attentionlite calibrate`); default: this host's cached "
                   "quick calibration, the one `report` uses (made once if there is none).")
@click.option("--batch", type=_BATCH, default=None, help=_BATCH_HELP)
@click.option("--dataset", default=None, help="Dataset setting classes and image size (default cifar10, or the checkpoint's).")
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False), default=None, help="Folder for ops.csv and summary.json.")
@click.option("--measure", "measure_too", is_flag=True, help="Also time the model in PyTorch here and compare per module.")
def cpu(target: str, cpu_name: str | None, batch: int | None, dataset: str | None, out: str | None,
        measure_too: bool) -> None:
    """Predict (and measure) a model's latency on a CPU.

    TARGET is a registered model name, a checkpoint, or a saved graph (.json, .graphml, .csv).
    """
    prediction = api.predict_cpu(target, cpu_name, dataset=dataset, batch=batch, measure=measure_too)
    click.echo(prediction.text())
    if out is not None:
        prediction.write(out)
        click.echo(f"wrote {out}/ops.csv and {out}/summary.json")


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True, help=_HARDWARE_HELP)
@click.option("--array", help="Array size RxC (or N for NxN), instead of the preset's.")
@click.option("--dataflow", type=click.Choice(["os", "ws", "is"]), help="Dataflow, instead of the preset's.")
@click.option("--cores", type=int, help="Cores, instead of the preset's.")
@click.option("--sparsity", type=click.Choice(SPARSITY_MODES),
              help="How the accelerator exploits weight sparsity, instead of the preset's.")
@click.option("--cpu", "cpu_config", help="CPU preset or TOML (see `calibrate`): adds each model's CPU latency.")
@click.option("--density", type=float, default=DEFAULT_DENSITY, show_default=True, help=_DENSITY_HELP)
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False), help="Also write compare.csv and breakdown.csv here.")
@_overrides_named_by_flags(array="--array", dataflow="--dataflow", cores="--cores", sparsity="--sparsity")
def compare(models, hardware, array, dataflow, cores, sparsity, cpu_config, density, out) -> None:
    """Teacher vs students on one design point: MODELS are names or checkpoints, the teacher first."""
    from attentionlite.analysis.compare import write_comparison
    from attentionlite.analysis.tables import comparison_text

    rows, breakdown = api.compare(models, hardware, cpu=cpu_config, density=density, array=array,
                                  dataflow=dataflow, cores=cores, sparsity=sparsity)
    click.echo(comparison_text(rows, breakdown))
    if out:
        write_comparison(rows, breakdown, out)
        click.echo(f"wrote {out}/compare.csv and {out}/breakdown.csv")


def _executor_options(command):
    """``--workers``, ``--engine``, ``--address``: where a sweep's points or a search's trials run (sweep,
    explore, report)."""
    options = (
        click.option("--workers", type=int,
                     help="Worker processes (default: every core this process may use); with --engine ray and no "
                          "--address, the CPUs of the local Ray instance."),
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where the design points run. local: processes on this host; ray: a Ray cluster "
                          "(pip install -e '.[ray]')."),
        click.option("--address", help="With --engine ray: the cluster to join, auto (the one `ray start` runs "
                                       "here) or ray://host:port (default: start a local one for this run)."),
    )
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True, help=_HARDWARE_HELP)
@click.option("--arrays", default="8,16,32,64,128,256", show_default=True,
              help="Array sizes, N or RxC, comma-separated.")
@click.option("--dataflows", default="os,ws,is", show_default=True, help="Dataflows, comma-separated.")
@click.option("--cores", help="Core counts, comma-separated (default: the preset's).")
@click.option("--set", "settings", multiple=True, metavar="KEY=V1,V2",
              help="Sweep any hardware knob too, e.g. dram.bandwidth_gb_s=12.8,25.6, sram_kib=64,256, "
                   "sparsity=none,skip or schedule=data,pipeline. Repeatable.")
@click.option("--density", type=float, default=DEFAULT_DENSITY, show_default=True, help=_DENSITY_HELP)
@_executor_options
@click.option("--resume", is_flag=True,
              help="Continue the unfinished sweep whose journal (OUT.journal.jsonl) is beside --out: its finished "
                   "points are not simulated again.")
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False), default="sweep", show_default=True,
              help="Folder for sweep.csv and pareto.csv.  While the sweep runs, each finished row goes to "
                   "OUT.journal.jsonl beside it (removed once the folder is written).")
@_overrides_named_by_flags(array="--arrays", dataflow="--dataflows", cores="--cores")
def sweep(models, hardware, arrays, dataflows, cores, settings, density, workers, engine, address, resume,
          out) -> None:
    """Simulate MODELS at every combination of the swept knobs; one CSV row per (model, point).

    \b
    The same points give the same rows in the same order on either engine.
    An interrupted sweep (Ctrl-C, a kill, a lost node) resumes where it
    stopped with the same command and --resume.
    """
    from attentionlite.analysis.sweep import journal_path, with_pareto_flags, write_sweep
    from attentionlite.analysis.tables import SWEEP_COLUMNS, text_table

    journal = journal_path(out)
    rows = api.sweep(models, sweep_knobs(arrays, dataflows, cores, settings), hardware, density=density,
                     workers=workers, engine=engine, address=address, journal=journal, resume=resume)
    write_sweep(rows, out)
    journal.unlink(missing_ok=True)
    front = [row for row in with_pareto_flags(rows) if row["pareto"]]
    click.echo(f"Pareto front ({len(front)} of {len(rows)} rows; latency, energy, area):")
    click.echo(text_table(front, SWEEP_COLUMNS))
    click.echo(f"wrote {out}/sweep.csv and {out}/pareto.csv")


def _search_options(command):
    """``--trials``, ``--objectives``, ``--constraint``, ``--sampler``, ``--seed``: how a search runs (explore,
    report --space).  Defaults are None here, so that report can tell them given from not."""
    options = (
        click.option("--trials", type=int, help="Trials per model (default 500)."),
        click.option("--objectives",
                     help="Comma list of latency, energy, edp, dram, area (mm^2 of every core), pes (PEs over all "
                          "cores), cycles (minimised), throughput, utilisation (maximised); default "
                          "latency,energy,area."),
        click.option("--constraint", "constraints", multiple=True, metavar="COLUMN<=V",
                     help="A limit on a result column, e.g. area_mm2<=5 or latency_s<=0.001.  Repeatable."),
        click.option("--sampler", type=click.Choice(["nsga2", "tpe"]),
                     help="NSGA-II (batches of 50, one generation; the default) or multi-objective TPE."),
        click.option("--seed", type=int, help="The search sampler's seed (default 0)."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _objectives(text: str | None) -> list[str] | None:
    return None if text is None else parse_names(text)


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--space", "space_file", required=True, type=_Path(dir_okay=False),
              help="TOML file: every key a knob (as --set names it), every value the list it may take; the space "
                   "is their cross product.")
@_search_options
@click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True, help=_HARDWARE_HELP)
@click.option("--density", type=float, default=DEFAULT_DENSITY, show_default=True, help=_DENSITY_HELP)
@_executor_options
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False), default="explore", show_default=True,
              help="Folder for trials.csv (every trial) and pareto.csv (each model's front).")
def explore(models, space_file, trials, objectives, constraints, sampler, seed, hardware, density, workers,
            engine, address, out) -> None:
    """Search a design space too big to enumerate, for each of MODELS.

    \b
    Multi-objective (optuna's NSGA-II or TPE), on the sweep's executors, so
    each trial's row is the sweep's row for that point.  Designs the hardware
    cannot be (a buffer too small for the array) are failed trials.
    """
    from attentionlite.analysis.tables import SWEEP_COLUMNS, text_table

    result = api.explore(models, space_file, hardware, trials=trials, objectives=_objectives(objectives),
                         constraints=constraints, sampler=sampler, seed=seed, density=density, workers=workers,
                         engine=engine, address=address)
    result.write(out)
    named = ", ".join(objective.name for objective in result.search.objectives)
    click.echo(f"Pareto front ({len(result.front)} of {len(result.trials)} trials; {named}):")
    click.echo(text_table(result.front, SWEEP_COLUMNS))
    click.echo(f"wrote {out}/trials.csv and {out}/pareto.csv")


def _study_options(command):
    """``--cores``, ``--schedules`` and ``--against``: what the parallelism study varies (report, parallelism)."""
    options = (
        click.option("--cores", "core_counts", default="1,2,4,8,16", show_default=True,
                     help="Parallelism: core counts to scale the accelerator over, comma-separated."),
        click.option("--schedules", default="data,pipeline,split", show_default=True,
                     help="Parallelism: schedules, comma-separated (data, pipeline, split)."),
        click.option("--against", multiple=True, default=(DEFAULT_HETEROGENEOUS,), show_default=True,
                     help="Parallelism: another accelerator (preset or TOML) to run every model on at its own "
                          "size, beside --hardware; repeatable; none for no other."),
    )
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("models", nargs=-1)
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False), default="attentionlite-report", show_default=True,
              help="Report folder (replaced as a whole).")
@click.option("--hardware", default=DEFAULT_REPORT_HARDWARE, show_default=True,
              help=_HARDWARE_HELP + " The default is paa-default with the attention features on; "
                   "--hardware paa-default is SCALE-Sim's array.")
@click.option("--cpu", "cpu_config", help="CPU preset or TOML (default: a quick calibration of this host).")
@click.option("--arrays", help="Square array sides of the grid, comma-separated (default 8,16,32,64,128,256).")
@click.option("--dataflows", help="Dataflows of the grid, comma-separated (default os,ws,is).")
@click.option("--space", "space_file", type=_Path(dir_okay=False),
              help="Instead of the grid of --arrays x --dataflows, search this space (a TOML file as explore takes) "
                   "from the reference point, each model on its own; the report shows each model's Pareto front.")
@_search_options
@click.option("--sparsity", type=click.Choice(SPARSITY_MODES), default="skip", show_default=True,
              help="How the accelerator exploits weight sparsity (each model is also shown on dense hardware).")
@click.option("--density", type=float, default=DEFAULT_DENSITY, show_default=True, help=_DENSITY_HELP)
@_executor_options
@click.option("--recalibrate", is_flag=True,
              help="Calibrate this host again instead of reusing its cached calibration.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Change a knob of the reference design point, e.g. dram.bandwidth_gb_s=51.2 or cores=8 "
                   "(the sweep and the Parallelism section start from it too). Repeatable.")
@_study_options
@click.option("--attention-sweep", "attention_checkpoint", type=_Path(dir_okay=False),
              help="A ViT or SASA checkpoint to sweep over attention sparsities (as attention-sweep does), in its own section; "
                   "needs --data-dir.")
@click.option("--data-dir", type=_Path(file_okay=False), help="With --attention-sweep: the checkpoint's dataset folder.")
@click.option("--attention-hardware", default="vitcod-like", show_default=True,
              help="With --attention-sweep: the accelerator it runs on (split engines for fixed masks).")
@click.option("--attention-sparsities", default="0,0.5,0.8,0.9,0.95", show_default=True,
              help="With --attention-sweep: the sparsities, comma-separated.")
@_overrides_named_by_flags(array="--arrays", dataflow="--dataflows", sparsity="--sparsity")
def report(models, out, hardware, cpu_config, arrays, dataflows, space_file, trials, objectives, constraints,
           sampler, seed, sparsity, density, workers, engine, address, recalibrate, settings, core_counts, schedules,
           against, attention_checkpoint, data_dir, attention_hardware, attention_sparsities) -> None:
    """The co-design report (the main job).

    \b
    With no MODELS: the teacher resnet50 and the sasa26 hybrid and homogeneous
    students at 10% weight density (initial masks, untrained).  MODELS are
    checkpoints (their trained masks and accuracy) or model names, the teacher first.
    With --space, a search of that space (as explore runs it) replaces the
    grid of array sizes and dataflows.  --engine runs the grid's points or
    the search's trials; the rest of the report runs in this process.
    """
    with _overrides_named_by_flags():  # the reference point's knobs all come from --set
        reference = api.hardware_config(hardware, **parse_overrides(settings))
    index = api.report(models, out, hardware=reference, cpu=cpu_config,
                       arrays=None if arrays is None else parse_sides(arrays),
                       dataflows=None if dataflows is None else parse_names(dataflows), sparsity=sparsity,
                       density=density, workers=workers, engine=engine, address=address, recalibrate=recalibrate,
                       core_counts=parse_counts(core_counts, "core counts"), schedules=parse_names(schedules),
                       against=_accelerators(against), space=space_file, trials=trials,
                       objectives=_objectives(objectives), constraints=constraints, sampler=sampler, seed=seed,
                       attention_sweep=attention_checkpoint, data_dir=data_dir, attention_hardware=attention_hardware,
                       attention_sparsities=parse_fractions(attention_sparsities, "attention sparsities"))
    click.echo(f"wrote {index}")


@main.command()
@click.argument("models", nargs=-1)
@click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True, help=_HARDWARE_HELP)
@_study_options
@click.option("--sparsity", type=click.Choice(SPARSITY_MODES), default="skip", show_default=True,
              help="How the accelerators exploit weight sparsity.")
@click.option("--density", type=float, default=DEFAULT_DENSITY, show_default=True, help=_DENSITY_HELP)
@click.option("--out", callback=_output_folder, type=_Path(file_okay=False),
              help="Folder for scaling.csv, pipeline_balance.csv, accelerators.csv and verdict.csv (replaced "
                   "as a whole).")
def parallelism(models, hardware, core_counts, schedules, against, sparsity, density, out) -> None:
    """Homogeneous vs hybrid parallelism: scaling, pipeline balance, verdict.

    \b
    Every model on each core count under each schedule (data, pipeline, split):
    throughput, speed-up, parallel efficiency and what limits it (the arrays or
    the DRAM channel); each model's optimal cut into pipeline stages; the same
    models on other accelerators (--against, e.g. a heterogeneous one); and
    which model wins each metric where.  With no MODELS: the teacher resnet50 and the
    sasa26 hybrid and homogeneous students at 10% density.
    """
    from attentionlite.analysis.codesign import DEFAULT_TARGETS
    from attentionlite.analysis.parallelism import study_files
    from attentionlite.analysis.tables import (
        ACCELERATOR_COLUMNS,
        BALANCE_COLUMNS,
        LIMIT_COLUMNS,
        SCALING_COLUMNS,
        VERDICT_COLUMNS,
        text_table,
    )
    from attentionlite.files import write_text_folder

    study = api.parallelism(models or DEFAULT_TARGETS, hardware, core_counts=parse_counts(core_counts, "core counts"),
                            schedules=parse_names(schedules), against=_accelerators(against), density=density,
                            sparsity=sparsity)
    for title, rows, columns in (("scaling", study.scaling, SCALING_COLUMNS),
                                 ("where scaling stops", study.limits, LIMIT_COLUMNS),
                                 ("pipeline balance", study.balance_rows(), BALANCE_COLUMNS),
                                 ("other accelerators, over the reference", study.comparison, ACCELERATOR_COLUMNS),
                                 ("verdict (winner, margin over the runner-up)", study.verdict, VERDICT_COLUMNS)):
        click.echo(f"{title}\n{text_table(rows, columns)}\n")
    click.echo("\n".join(study.claims))
    if out:
        write_text_folder(out, study_files(study))
        click.echo(f"wrote {out}/{', '.join(study_files(study))}")


# ----------------------------------------------------------------------------- option values


def parse_names(text: str) -> list[str]:
    """``"os, ws,is"`` -> ["os", "ws", "is"]."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_sides(text: str) -> list[int]:
    """``"8,16,32"`` -> [8, 16, 32]: the sides of the square arrays a report sweeps."""
    return parse_counts(text, "array sides")


def _accelerators(names: Sequence[str]) -> list[str]:
    """``--against`` values, with ``none`` meaning no other accelerator."""
    return [] if list(names) == ["none"] else list(names)


def parse_counts(text: str, what: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; anything but positive integers is refused, naming ``what``."""
    counts = parse_names(text)
    if not counts or not all(count.isdigit() and int(count) > 0 for count in counts):
        raise InputError(f"{what} {text!r}: expected positive integers separated by commas, e.g. 1,2,4")
    return [int(count) for count in counts]


def parse_fractions(text: str, what: str) -> list[float]:
    """``"0,0.5,0.9"`` -> [0.0, 0.5, 0.9]; anything but numbers is refused, naming ``what`` (their range is the
    command's to check)."""
    try:
        values = [float(part) for part in parse_names(text)]
    except ValueError:
        values = []
    if not values:
        raise InputError(f"{what} {text!r}: expected numbers separated by commas, e.g. 0,0.5,0.9")
    return values


def parse_knob_values(text: str) -> list:
    """A comma list of knob values, each read as an int, a float or a string, in that order of preference."""
    return [_scalar(part) for part in parse_names(text)]


def _scalar(text: str) -> bool | int | float | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_overrides(settings: Sequence[str]) -> dict:
    """``KEY=VALUE`` settings as hardware overrides (each value read as :func:`parse_knob_values` reads one)."""
    overrides = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip() or not value.strip() or "," in value:
            raise InputError(f"--set {setting!r}: expected KEY=VALUE with one value (e.g. dram.bandwidth_gb_s=51.2)")
        overrides[key.strip()] = _scalar(value.strip())
    return overrides


def sweep_knobs(arrays: str, dataflows: str, cores: str | None, settings: tuple[str, ...]) -> dict[str, list]:
    """The knobs of a sweep from the command line's comma lists and ``KEY=V1,V2`` settings."""
    from attentionlite.simulator.accelerator.hardware import parse_array

    knobs: dict[str, list] = {"array": [parse_array(a) for a in parse_names(arrays)]}
    knobs["dataflow"] = parse_names(dataflows)
    if cores is not None:
        knobs["cores"] = parse_knob_values(cores)
    for setting in settings:
        key, sep, values = setting.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InputError(f"--set {setting!r}: expected KEY=V1,V2,... (e.g. dram.bandwidth_gb_s=12.8,25.6)")
        knobs[key.strip()] = parse_knob_values(values)
    return knobs
