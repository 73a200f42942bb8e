"""Write a co-design report: one folder with index.html, report.md, figures, CSVs and configs.

``index.html`` is self-contained (figures embedded as base64 PNGs) and
``report.md`` links the PNGs in ``figures/``; both come from the same blocks
(:mod:`attentionlite.reports.document`).  The folder is written through
:func:`~attentionlite.files.atomic_output_dir`, so it is complete or absent.
Apart from the ``generated`` timestamp, the same report renders to the same
bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from attentionlite.analysis.attention_sweep import accuracy_key
from attentionlite.analysis.codesign import CodesignReport
from attentionlite.analysis.compare import GROUPS
from attentionlite.analysis.explore import SAMPLER_NAMES, Exploration
from attentionlite.analysis.models import INITIAL_MASKS_NOTE, ModelEntry
from attentionlite.analysis.parallelism import GAIN_THAT_COUNTS, study_files
from attentionlite.analysis.sweep import pareto_mask, sweep_files
from attentionlite.analysis.tables import (
    ACCELERATOR_COLUMNS,
    BALANCE_COLUMNS,
    LIMIT_COLUMNS,
    VERDICT_COLUMNS,
    metric_cell,
)
from attentionlite.analysis.waterfall import LEVELS
from attentionlite.files import atomic_output_dir, rows_to_csv
from attentionlite.reports import figures, summary
from attentionlite.reports.document import (
    Block,
    BulletList,
    Figure,
    FileLinks,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from attentionlite.simulator.cpu.roofline import GEMM_KINDS, WINDOW_KINDS
from attentionlite.simulator.graph.targets import INITIAL_MASK_MODE

TITLE = "AttentionLite co-design report"
REFERENCE_FILES = (
    ("compare.csv", "one row per model at the reference design point, with ratios to the teacher and the CPU"),
    ("breakdown.csv", "busy cycles, MACs and utilisation per model and op-kind group at the reference point"),
)
GRID_FILES = (
    ("sweep.csv", "one row per (model, array size, dataflow), with its Pareto flag"),
    ("pareto.csv", "the Pareto-optimal rows of the sweep"),
)
EXPLORATION_FILES = (
    ("trials.csv", "one row per trial of the exploration: model, trial, knobs, whether buildable and feasible, "
                   "and its costs"),
    ("pareto.csv", "each model's Pareto-optimal trials"),
)
WATERFALL_FILE = ("waterfall.csv", "per student, its MAC ratio to the teacher, each step's factor and its "
                                    "latency ratio at the reference point")
ATTENTION_FILE = ("attention_sweep.csv", "one row per attention sparsity of the swept ViT checkpoint: accuracy, "
                                        "latency, energy, DRAM bytes and the gains over sparsity 0")
OTHER_FILES = (
    ("cpu_ops.csv", "the CPU baseline's per-op prediction for every model"),
    ("scaling.csv", "one row per (model, schedule, core count): timing, cost, ceilings, speed-up, efficiency"),
    ("pipeline_balance.csv", "one row per (model, stage count): the optimal pipeline cut"),
    ("accelerators.csv", "one row per (model, schedule, other accelerator): against the reference accelerator"),
    ("verdict.csv", "one row per (accelerator, schedule, core count): the winner of each metric"),
    ("config.json", "resolved accelerator and CPU configs, models, package version and git revision"),
)


def render_report(report: CodesignReport, out_dir: str | Path, generated: str | None = None) -> Path:
    """Write the report folder; ``generated`` is the timestamp shown (default: now, UTC)."""
    generated = generated or datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    on_front = _front_flags(report)
    images = _figures(report, on_front)
    blocks = report_blocks(report, on_front, generated)
    with atomic_output_dir(out_dir) as staging:
        (staging / "figures").mkdir()
        for path, png in images.items():
            (staging / path).write_bytes(png)
        for path, text in _data_files(report, generated).items():
            (staging / path).write_text(text, encoding="utf-8")
        (staging / "report.md").write_text(to_markdown(TITLE, blocks), encoding="utf-8")
        (staging / "index.html").write_text(to_html(TITLE, blocks, images), encoding="utf-8")
    return Path(out_dir)


# ----------------------------------------------------------------------------- data files


def _designs(report: CodesignReport) -> list[dict]:
    """The design points the Pareto figure draws: the sweep's rows, or the exploration's feasible trials."""
    return report.sweep if report.exploration is None else report.exploration.feasible


def _front_flags(report: CodesignReport) -> list[bool]:
    """For each of :func:`_designs`, whether it is Pareto-optimal: on the sweep's front (every model together),
    or on its own model's front (each model searched the space on its own)."""
    if report.exploration is None:
        return pareto_mask(report.sweep)
    return report.exploration.front_flags(report.exploration.feasible)


def _file_list(report: CodesignReport) -> tuple[tuple[str, str], ...]:
    """(path, what it holds) of every data file, in the order the Files section lists them."""
    waterfall = (WATERFALL_FILE,) if report.waterfall else ()
    attention = (ATTENTION_FILE,) if report.attention_sweep else ()
    return (REFERENCE_FILES + waterfall + attention
            + (GRID_FILES if report.exploration is None else EXPLORATION_FILES) + OTHER_FILES)


def _data_files(report: CodesignReport, generated: str) -> dict[str, str]:
    cpu_rows = [{"model": model, **row} for model, rows in report.cpu_ops.items() for row in rows]
    return {
        "compare.csv": rows_to_csv(report.comparison),
        "breakdown.csv": rows_to_csv(report.breakdown),
        **({"waterfall.csv": rows_to_csv(report.waterfall)} if report.waterfall else {}),
        **({"attention_sweep.csv": rows_to_csv(report.attention_sweep)} if report.attention_sweep else {}),
        **(sweep_files(report.sweep) if report.exploration is None else report.exploration.files()),
        "cpu_ops.csv": rows_to_csv(cpu_rows),
        **study_files(report.parallelism),
        "config.json": json.dumps(_config(report, generated), indent=2, sort_keys=True) + "\n",
    }


def _config(report: CodesignReport, generated: str) -> dict:
    return {
        "generated": generated,
        "provenance": report.provenance,
        "models": [vars(entry) for entry in report.models],
        "settings": report.settings.described(),
        "hardware_at_reference_point": report.hardware_config,
        "cpu": {"name": report.cpu_name, "resolved": report.cpu_config},
    }


# ----------------------------------------------------------------------------- figures


def _figures(report: CodesignReport, on_front: list[bool]) -> dict[str, bytes]:
    models = report.model_labels
    shares = {m: {r["group"]: r["share"] for r in report.breakdown if r["model"] == m} for m in models}
    stages = {"figures/stages.png": figures.pipeline_stages(
        _stage_cycles(report), GROUPS, f"optimal pipeline cut into {_stages_shown(report)} stages"),
    } if report.parallelism.plans else {}
    waterfall = {"figures/waterfall.png": figures.waterfall(report.waterfall, STEPS)} if report.waterfall else {}
    return stages | waterfall | _grid_figures(report) | {
        "figures/breakdown.png": figures.kind_breakdown(
            shares, GROUPS, "busy cycles by op kind on " + _point(report).replace("`", "")),
        "figures/pareto.png": figures.pareto_front(_designs(report), models, on_front),
        "figures/scaling.png": figures.scaling(report.parallelism.scaling, models,
                                               list(dict.fromkeys(r["schedule"] for r in report.parallelism.scaling))),
        "figures/roofline.png": figures.roofline(
            report.cpu_peak_flops, report.cpu_bandwidths, _roofline_points(report), f"CPU: {report.cpu_name}"),
    }


def _grid_figures(report: CodesignReport) -> dict[str, bytes]:
    """Each metric against array size, a line per (model, dataflow): only a grid has those lines."""
    if report.exploration is not None:
        return {}
    models, dataflows, rows = report.model_labels, report.settings.dataflows, report.sweep
    return {
        "figures/latency.png": figures.metric_vs_array(
            rows, models, dataflows, "latency_s", "latency per image (ms)", scale=1e3),
        "figures/energy.png": figures.metric_vs_array(
            rows, models, dataflows, "energy_per_image_j", "energy per image (mJ)", scale=1e3),
        "figures/edp.png": figures.metric_vs_array(
            rows, models, dataflows, "edp_per_image", "energy x delay (mJ x ms)", scale=1e6),
        "figures/utilisation.png": figures.metric_vs_array(
            rows, models, dataflows, "utilisation", "array utilisation (%)", scale=100, log_y=False),
    }


def _stages_shown(report: CodesignReport) -> int:
    """The stage count the stage figure shows: the reference point's cores, else the most studied."""
    counts = {plan.stages for plan in report.parallelism.plans}
    cores = report.hardware_config["cores"]
    return cores if cores in counts else max(counts)


def _stage_cycles(report: CodesignReport) -> dict[str, tuple[dict[str, int], ...]]:
    shown = _stages_shown(report)
    return {plan.model: plan.cycles for plan in report.parallelism.plans if plan.stages == shown}


def _roofline_points(report: CodesignReport) -> dict[str, list[tuple[float, float]]]:
    """Each model's multiply-accumulate ops as (FLOP per byte, predicted FLOP/s) on the CPU."""
    flop_kinds = {kind.value for kind in GEMM_KINDS | WINDOW_KINDS}
    return {
        model: [(r["arithmetic_intensity"], r["work"] / r["seconds"]) for r in rows if r["kind"] in flop_kinds]
        for model, rows in report.cpu_ops.items()
    }


# ----------------------------------------------------------------------------- blocks


def _point(report: CodesignReport) -> str:
    """The reference design point in words, from the resolved config."""
    hw = report.hardware_config
    array = hw["array"]
    return (f"`{hw['name']}`: {hw['cores']} cores of {array['rows']}x{array['cols']} PEs, "
            f"{array['dataflow']} dataflow, {hw['clock_mhz']:g} MHz, {hw['dram']['bandwidth_gb_s']:g} GB/s DRAM, "
            f"sparsity {hw['sparsity']['mode']}")


# The knobs that make a design point fair to attention, with what each means (hardware.py has them all).
ATTENTION_FEATURES = (
    ("array", "overlap_folds", "folds pipelined"),
    ("attention", "fused", "local attention fused block by block"),
    ("vector", "overlaps_array", "the vector unit beside the array"),
    ("array", "fuse_post_ops", "batch norm, ReLU and residual adds in the array's output path"),
)


def _features_sentence(report: CodesignReport) -> str:
    """Which attention features the reference point has, from the resolved config."""
    hw = report.hardware_config
    marked = [(f"{words} (`{unit}.{knob}`)", bool(hw[unit][knob])) for unit, knob, words in ATTENTION_FEATURES]
    on, off = ([text for text, state in marked if state is wanted] for wanted in (True, False))
    parts = [f"Attention features on: {'; '.join(on)}." if on else "No attention feature is on."]
    if off:
        parts.append(f"Off: {'; '.join(off)}.")
    if on:
        parts.append("`--set array.overlap_folds=false` gives SCALE-Sim's fold timing; `--hardware paa-default` "
                     "is SCALE-Sim's array with every feature off.")
    return " ".join(parts)


def report_blocks(report: CodesignReport, on_front: list[bool], generated: str) -> list:
    """The whole report, top to bottom."""
    made_by = report.provenance
    blocks: list[Block] = [Paragraph(f"Generated {generated} by attentionlite {made_by['package_version']} "
                        f"(git {made_by['git_revision'][:12]}).")]
    blocks += _summary_blocks(report, on_front)
    blocks += _model_blocks(report)
    blocks += _comparison_blocks(report)
    blocks += _attention_blocks(report)
    found = report.exploration
    blocks += _sweep_blocks(report, on_front) if found is None else _exploration_blocks(report, found)
    blocks += _parallelism_blocks(report)
    blocks += _cpu_blocks(report)
    blocks += _configuration_blocks(report)
    blocks += [Heading("Files"), FileLinks(_file_list(report) + (("report.md", "this report as Markdown"),))]
    return blocks


def _summary_blocks(report: CodesignReport, on_front: list[bool]) -> list:
    items = summary.reference_sentences(report.comparison, _point(report))
    if "speedup_from_sparsity" in report.comparison[0]:
        items.append(summary.sparsity_sentence(report.comparison, report.settings.sparsity))
    items.append(summary.breakdown_sentence(report.breakdown))
    if report.waterfall:
        items.append(summary.waterfall_sentence(report.waterfall, STEPS))
    if report.attention_sweep:
        items.append(summary.attention_sentence(report.attention_sweep, _attention_checkpoint(report)))
    found = report.exploration
    items += _grid_sentences(report, on_front) if found is None else _exploration_sentences(report, found)
    items += report.parallelism.claims[:1]
    items.append(summary.cpu_sentence(report.comparison, report.cpu_name))
    if summary.cpu_caveat(report.cpu_bandwidths):
        items.append(summary.cpu_caveat(report.cpu_bandwidths))
    return [Heading("Summary"), BulletList(tuple(items), summary=True), Paragraph(_accuracy_note(report))]


def _grid_sentences(report: CodesignReport, on_front: list[bool]) -> list[str]:
    """The sweep's findings: every model at the same points, so head to head and by array size."""
    labels = report.model_labels
    items = []
    if len(labels) >= 3:  # the two students against each other (hybrid vs homogeneous by default)
        items.append(summary.head_to_head(report.sweep, labels[1], labels[2]))
    items.append(summary.winners_by_array(report.sweep, "latency_s", "latency"))
    items.append(summary.winners_by_array(report.sweep, "energy_per_image_j", "energy"))
    items += [summary.scaling_sentence(report.sweep, model) for model in labels]
    items.append(summary.best_edp_sentence(report.sweep, labels))
    items.append(summary.pareto_sentence(report.sweep, on_front, labels))
    return items


def _exploration_sentences(report: CodesignReport, found: Exploration) -> list[str]:
    """The search's findings: each model searched on its own, so each at its own best designs."""
    labels = report.model_labels
    search, rows = found.search, found.feasible
    knobs = list(search.space.knobs)
    return [
        summary.search_sentence(found.trials, found.front, labels, SAMPLER_NAMES[search.sampler], search.space.size,
                                [o.name for o in search.objectives], search.feasible_means, search.space.columns),
        summary.best_found_sentence(rows, labels, "latency_s", "Fastest design", "ms", knobs),
        summary.best_found_sentence(rows, labels, "energy_per_image_j", "Lowest-energy design", "mJ", knobs),
        summary.best_found_sentence(rows, labels, "edp_per_image", "Lowest energy-delay product", "mJ*ms", knobs),
        summary.best_against_teacher(rows, labels),
    ]


def _accuracy_note(report: CodesignReport) -> str:
    notes = []
    if report.untrained:
        names = ", ".join(f"`{e.label}`" for e in report.untrained)
        notes.append(f"**Accuracy is not known** for {names}: no checkpoint was given, so these models are "
                     "untrained and the students carry the pruning method's initial masks at their density "
                     "(see Models). Their costs are those of a model of that size and sparsity.")
    scores = [f"`{e.label}` {100 * e.accuracy:.2f}%" for e in report.models if e.accuracy is not None]
    if scores:
        notes.append("Top-1 test accuracy recorded in the checkpoints: " + "; ".join(scores) + ".")
    return " ".join(notes)


def _model_blocks(report: CodesignReport) -> list:
    teacher_nonzero = report.models[0].nonzero_weights
    rows = tuple(
        (f"`{e.label}`", e.role, _source(e), f"{e.weights / 1e6:.2f} M", f"{e.nonzero_weights / 1e6:.3f} M",
         f"{100 * e.nonzero_weights / e.weights:.1f}%", f"{teacher_nonzero / e.nonzero_weights:.1f}x",
         f"{e.dense_macs / 1e9:.3f} G", e.masks, "unknown" if e.accuracy is None else f"{100 * e.accuracy:.2f}%")
        for e in report.models
    )
    columns = ("model", "role", "source", "weights", "non-zero", "density", "teacher / non-zero",
               "dense MACs", "masks", "top-1")
    blocks = [Heading("Models"), Table(columns, rows, caption=f"at {report.models[0].dataset} input size, batch 1")]
    if any(entry.masks.startswith("initial") for entry in report.models):
        blocks.append(Paragraph(INITIAL_MASKS_NOTE.format(mode=INITIAL_MASK_MODE, seed=report.settings.seed)))
    return blocks


def _source(entry: ModelEntry) -> str:
    if entry.checkpoint_sha256:
        return f"checkpoint `{Path(entry.target).name}` (sha256 {entry.checkpoint_sha256[:12]})"
    return "model zoo"


COST_COLUMNS = {
    "model": lambda r: f"`{r['model']}`",
    "latency (ms)": metric_cell("latency_s"),
    "images/s": metric_cell("throughput"),
    "energy per image (mJ)": metric_cell("energy_per_image_j"),
    "EDP per image (mJ*ms)": metric_cell("edp_per_image"),
    "DRAM per image (MB)": metric_cell("dram_bytes_per_image"),
    "utilisation": metric_cell("utilisation", "%"),
    "stall share": metric_cell("stall_share", "%"),
}
RATIO_COLUMNS = {
    "model": lambda r: f"`{r['model']}`",
    "speed-up vs teacher": metric_cell("speedup_vs_teacher"),
    "energy saving vs teacher": metric_cell("energy_saving_vs_teacher"),
    "EDP gain vs teacher": metric_cell("edp_gain_vs_teacher"),
}
SPARSITY_COLUMNS = {
    "on dense hardware (ms)": metric_cell("dense_hw_latency_s"),
    "speed-up from sparsity": metric_cell("speedup_from_sparsity"),
    "energy saving from sparsity": metric_cell("energy_saving_from_sparsity"),
}
CPU_COLUMNS = {
    "CPU latency (ms)": metric_cell("cpu_latency_s"),
    "accelerator vs CPU": metric_cell("speedup_vs_cpu"),
}


def _table(rows, columns: dict, caption: str = "") -> Table:
    """A table with one column per heading, each cell shown by that heading's formatter."""
    return Table(tuple(columns), tuple(tuple(show(row) for show in columns.values()) for row in rows), caption)


def _comparison_blocks(report: CodesignReport) -> list:
    ratios = dict(RATIO_COLUMNS)
    if "speedup_from_sparsity" in report.comparison[0]:
        ratios.update(SPARSITY_COLUMNS)
    ratios.update(CPU_COLUMNS)
    return [
        Heading("Reference design point"),
        Paragraph(f"All models on {_point(report)}; one image at a time on each core (batch 1), so latency "
                  "is one image's time and energy and DRAM traffic are per image."),
        Paragraph(_features_sentence(report)),
        _table(report.comparison, COST_COLUMNS, "cost per image"),
        Paragraph("Ratios are the reference over the model, so above 1 means the model is faster or "
                  "cheaper. **From sparsity**: the same model on the same hardware with sparsity `none` "
                  "(dense) over this run. **Accelerator vs CPU**: CPU latency over accelerator latency."),
        _table(report.comparison, ratios, "ratios"),
        Heading("Where the cycles go", level=3),
        Figure("figures/breakdown.png", "Share of each model's busy cycles (compute + stall) by op-kind group"),
        _group_table(report, "share", "share of busy cycles"),
        _group_table(report, "utilisation", "array utilisation within each group (useful MACs / busy "
                     "PE-cycles; - where the group has no array work)"),
        *_waterfall_blocks(report),
    ]


def _attention_checkpoint(report: CodesignReport) -> str:
    sweep = report.settings.attention
    return "" if sweep is None else sweep.checkpoint.name


def _attention_blocks(report: CodesignReport) -> list:
    """The swept ViT checkpoint at each attention sparsity, where the report was asked for one."""
    rows, sweep = report.attention_sweep, report.settings.attention
    if not rows or sweep is None:
        return []
    accuracy = accuracy_key(rows[0])
    columns = {
        "sparsity": lambda r: f"{r['sparsity']:g}", accuracy.replace("_", " "): lambda r: f"{r[accuracy]:.3f}",
        "latency (ms)": lambda r: f"{r['latency_ms']:.4g}", "attention (ms)": lambda r: f"{r['attention_ms']:.4g}",
        "energy (uJ)": lambda r: f"{r['energy_uj']:.4g}", "DRAM (MB)": lambda r: f"{r['dram_mb']:.4g}",
        "speed-up": lambda r: "-" if r["speedup"] is None else f"{r['speedup']:.3g}x",
        "attention speed-up": lambda r: "-" if r["attention_speedup"] is None else f"{r['attention_speedup']:.3g}x",
        "kept per head": lambda r: "all" if r["kept_per_head"] is None else str(r["kept_per_head"]),
        "denser engine": lambda r: "-" if r["dense_share"] is None else f"{r['dense_share']:.0%}",
    }
    return [
        Heading("Attention sparsity", level=3),
        Paragraph(f"`{sweep.checkpoint.name}` with fixed attention masks: at each sparsity every head keeps its "
                  f"largest entries of the attention maps averaged over {sweep.calibration_images} training "
                  f"images per class, and is scored on its evaluation images. Simulated on `{sweep.hardware.name}` "
                  f"at batch 1, {_mask_hardware_phrase(rows[0]['attention'], sweep.hardware)} Speed-ups are "
                  "against sparsity 0 (the dense model)."),
        _table(rows, columns, "one image per sparsity"),
    ]


def _mask_hardware_phrase(attention: str, hardware) -> str:
    """What the swept hardware does with the masks of global (ViTCoD) or local (SASA window) attention."""
    if attention == "local":
        gathered = hardware.attention.window_mapping == "gathered"
        return ("whose gathered window mapping computes only the positions each head keeps." if gathered else
                "whose blocked window mapping computes each block's whole halo, so only the softmax and the "
                "accuracy move.")
    if hardware.attention.split_sparse:
        return ("whose denser and sparser engines compute only the kept logits (global-token columns on the one, "
                "the rest on the other); **denser engine** is the share of kept entries in global-token columns.")
    return ("which has no split engines (`attention.split_sparse` off): it computes a masked attention dense, so "
            "only the accuracy moves.")


STEPS = LEVELS[1:]  # the waterfall's steps after the MAC ratio


def _waterfall_blocks(report: CodesignReport) -> list:
    if not report.waterfall:
        return [Heading("From MAC ratio to latency ratio", level=3),
                Paragraph("Not computed: the accelerator has core groups, so no one array size to count "
                          "ideal cycles on.")]
    columns = {"model": lambda r: f"`{r['model']}`", "MAC ratio": lambda r: f"{r['mac_ratio']:.3g}x",
               **{step: _factor(step) for step in STEPS}, "latency ratio": lambda r: f"{r['latency_ratio']:.3g}x"}
    return [
        Heading("From MAC ratio to latency ratio", level=3),
        Paragraph("Each student's cycles per image and the teacher's are built up step by step on one core "
                  "of P PEs: the graph's MACs over P; less the MACs the hardware skipped (**sparsity**); the "
                  "folds' streamed cycles, PEs a fold leaves empty and window halo work included (**mapping**); "
                  "the array ops' compute cycles (**fill and drain**: skew, drain, preload); plus the vector "
                  "unit's cycles (**vector work**); plus every stall (**memory stalls**); the latency itself "
                  "(**overlap and gaps**). The teacher's over the student's is the MAC ratio at the first step "
                  "and the latency ratio at the last; each factor is a step's ratio over the one before, so they "
                  "multiply from one to the other. Below 1, a step costs the student more than the teacher: "
                  "that is where its savings go."),
        Figure("figures/waterfall.png", "Each student's MAC ratio, step by step, to its latency ratio"),
        _table(report.waterfall, columns, "factor of each step (teacher / student)"),
    ]


def _factor(step: str):
    return lambda row: f"{row[step]:.3g}"


def _group_table(report: CodesignReport, field: str, caption: str) -> Table:
    rows = tuple(
        (f"`{model}`",) + tuple(
            f"{100 * r[field]:.1f}%" if r["busy_cycles"] and (field == "share" or r["macs"]) else "-"
            for r in report.breakdown if r["model"] == model)
        for model in report.model_labels
    )
    return Table(("model",) + GROUPS, rows, caption=caption)


def _sweep_blocks(report: CodesignReport, on_front: list[bool]) -> list:
    sides = ", ".join(f"{a}x{a}" for a in report.settings.arrays)
    return [
        Heading("Array size and dataflow"),
        Paragraph(f"Square arrays {sides} with dataflows {', '.join(report.settings.dataflows)} and sparsity "
                  f"`{report.settings.sparsity}`; every other setting as at the reference point "
                  f"({report.hardware_config['cores']} cores). PE counts below are over all cores."),
        Figure("figures/latency.png", "Latency per image against array size, per dataflow"),
        Figure("figures/energy.png", "Energy per image against array size, per dataflow"),
        Figure("figures/edp.png", "Energy-delay product against array size, per dataflow"),
        Figure("figures/utilisation.png", "Array utilisation against array size, per dataflow"),
        Heading("Pareto front: latency, energy, area", level=3),
        Figure("figures/pareto.png", "Every (model, design point); ringed points are Pareto-optimal"),
        _pareto_table(report, on_front),
    ]


def _pareto_table(report: CodesignReport, on_front: list[bool]) -> Table:
    front = sorted((r for r, keep in zip(report.sweep, on_front) if keep), key=lambda r: r["latency_s"])
    rows = tuple((f"`{r['model']}`", f"{r['array_rows']}x{r['array_cols']}", r["dataflow"], str(r["pes"]),
                  *_front_costs(r)) for r in front)
    columns = ("model", "array", "dataflow", "PEs (all cores)", *FRONT_COST_COLUMNS)
    return Table(columns, rows, caption="Pareto-optimal design points, fastest first")


FRONT_COST_COLUMNS = ("area (mm^2)", "latency (ms)", "energy (mJ)", "utilisation")


def _front_costs(row: dict) -> tuple[str, ...]:
    """A design's cells under :data:`FRONT_COST_COLUMNS`."""
    return (metric_cell("area_mm2")(row), f"{1e3 * row['latency_s']:.3f}", f"{1e3 * row['energy_per_image_j']:.3f}",
            f"{100 * row['utilisation']:.1f}%")


def _exploration_blocks(report: CodesignReport, found: Exploration) -> list:
    search = found.search
    objectives = ", ".join(o.name for o in search.objectives)
    limits = ", ".join(f"`{c}`" for c in search.constraints)
    space = tuple((f"`{knob}`", ", ".join(summary.value_text(v) for v in values), str(len(values)))
                  for knob, values in search.space.knobs.items())
    return [
        Heading("Design-space exploration"),
        Paragraph(f"Each model searched the space below on its own, from the reference point ({_point(report)}; "
                  f"every knob not in the space as there): {search.trials:,} trials of "
                  f"{SAMPLER_NAMES[search.sampler]} (seed {search.seed}) with objectives {objectives}"
                  + (f", within {limits}" if limits else "") + ". A trial the hardware cannot be (a buffer too "
                  "small for the array's tile) is not buildable. Each model's front holds its own best designs, "
                  "so the models are compared at their own best, not at equal points. Every trial is in "
                  "`trials.csv`."),
        Table(("knob", "values", "count"), space, caption=f"the space: {search.space.size:,} design points"),
        Heading(f"Pareto fronts: {objectives}", level=3),
        Figure("figures/pareto.png", "Every feasible trial; ringed points are on their own model's Pareto front"),
        _front_table(found, report.model_labels),
    ]


def _front_table(found: Exploration, models: list[str]) -> Table:
    knobs = list(found.search.space.knobs)
    order = {model: index for index, model in enumerate(models)}
    front = sorted(found.front, key=lambda r: (order[r["model"]], r["latency_s"]))
    rows = tuple((f"`{r['model']}`", str(r["trial"]), *(summary.knob_value(r, knob) for knob in knobs),
                  *_front_costs(r)) for r in front)
    columns = ("model", "trial", *knobs, *FRONT_COST_COLUMNS)
    return Table(columns, rows, caption="each model's Pareto-optimal designs, fastest first")


def _parallelism_blocks(report: CodesignReport) -> list:
    study = report.parallelism
    counts = ", ".join(str(c) for c in sorted({r["cores"] for r in study.scaling}))
    return [
        Heading("Parallelism"),
        Paragraph(f"Every model on {_point(report)}, with the core count changed to {counts}, under each "
                  "schedule: `data` (one image per core), `pipeline` (contiguous layer stages, one per core, cut "
                  "optimally on compute cycles) and `split` (each op's folds shared by every core). Speed-up is "
                  "throughput over the same model and schedule on the fewest cores; parallel efficiency is "
                  "speed-up over the growth in cores. Each point has two ceilings computed from its own work: "
                  "the arrays' (the busiest core's compute, or the chain of ops that wait for each other) and "
                  "the DRAM channel's (every byte moved at full bandwidth); the lower one is what limits it."),
        Figure("figures/scaling.png", "Throughput and parallel efficiency against cores, per schedule"),
        _table(study.limits, LIMIT_COLUMNS, f"where one more step of cores buys less than "
               f"{100 * (GAIN_THAT_COUNTS - 1):.0f}% more throughput, and what limits that step"),
        *_pipeline_blocks(report),
        *_accelerator_blocks(report),
        Heading("Verdict", level=3),
        BulletList(tuple(study.claims)),
        _table(study.verdict, VERDICT_COLUMNS, "winner of each metric and its margin over the runner-up"),
    ]


def _pipeline_blocks(report: CodesignReport) -> list:
    study = report.parallelism
    if not study.plans:
        return [Heading("Pipeline balance", level=3),
                Paragraph("Not studied: one core is one stage, and the study has no core count above one "
                          "(see `--cores`).")]
    return [
        Heading("Pipeline balance", level=3),
        Paragraph("The pipeline schedule's cut: contiguous stages of the op order whose slowest stage has the "
                  "fewest compute cycles (exact, by dynamic programming). Imbalance is the slowest stage over "
                  "the mean (1 is perfect); bubbles are the share of stage time idle in steady state. Planned "
                  "images/s is the clock over the bottleneck; simulated images/s includes DRAM contention. "
                  "Handed between stages: activations a stage writes for a later one, per batch."),
        Figure("figures/stages.png", "Each stage's compute cycles by op kind"),
        _table(study.balance_rows(), BALANCE_COLUMNS, "optimal pipeline cuts"),
    ]


def _accelerator_blocks(report: CodesignReport) -> list:
    study = report.parallelism
    if not study.comparison:
        return []
    names = ", ".join(f"`{name}`" for name in dict.fromkeys(r["accelerator"] for r in study.comparison))
    return [
        Heading("Other accelerators", level=3),
        Paragraph(f"Every model under every schedule on {names} at its own size, over the reference "
                  f"`{report.hardware_config['name']}` at its own ({report.hardware_config['cores']} cores). On an "
                  "accelerator with core groups each op runs only on a kind of core that can run it: `data` runs "
                  "one image per main core and gives each op the kind that keeps the busiest kind least loaded "
                  "(a group's cores serve every image), `pipeline` cuts stages and gives "
                  "each a core of a kind exactly, `split` runs each op on the kind that finishes it first. Sizes "
                  "are compared by area (arrays, vector units and SRAM at the area table's node)."),
        _table(study.comparison, ACCELERATOR_COLUMNS, "throughput and energy per image over the reference's"),
    ]


def _cpu_blocks(report: CodesignReport) -> list:
    rows = tuple(_cpu_row(model, report.cpu_ops[model]) for model in report.model_labels)
    caveat = summary.cpu_caveat(report.cpu_bandwidths)
    return [
        Heading("CPU baseline"),
        Paragraph(f"Predicted by the calibrated roofline of `{report.cpu_name}`. The figure places every "
                  "multiply-accumulate op (convolutions, projections, window logits, weighted sums, "
                  "the classifier) at its arithmetic intensity and predicted FLOP/s."),
        *([Paragraph(caveat)] if caveat else []),
        Figure("figures/roofline.png", "CPU roofline with the models' ops"),
        Table(("model", "latency (ms)", "compute-bound", "cache-bound", "DRAM-bound"), rows,
              caption="share of predicted time by the bound that limits each op"),
    ]


def _cpu_row(model: str, rows: list[dict]) -> tuple[str, ...]:
    total = sum(r["seconds"] for r in rows)
    shares = [sum(r["seconds"] for r in rows if r["bound"] == bound) / total for bound in ("compute", "cache", "dram")]
    return (f"`{model}`", f"{1e3 * total:.2f}") + tuple(f"{100 * s:.0f}%" for s in shares)


def _configuration_blocks(report: CodesignReport) -> list:
    """The resolved accelerator config as setting/value rows, and the CPU's headline numbers."""
    cpu = (f"CPU `{report.cpu_name}`: peak {report.cpu_peak_flops / 1e9:.4g} GFLOP/s; bandwidth "
           + ", ".join(f"{level} {rate / 1e9:.3g} GB/s" for level, rate in report.cpu_bandwidths.items())
           + ". Full configs in `config.json`.")
    return [
        Heading("Configuration"),
        Table(("setting", "value"), tuple(_flattened(report.hardware_config)),
              caption=f"accelerator `{report.hardware_config['name']}` at the reference point"),
        Paragraph(cpu),
    ]


def _flattened(config: dict, prefix: str = ""):
    """(dotted key, value) for every scalar in a nested config dict, in its own order."""
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", f"{value:g}" if isinstance(value, float) else str(value)
