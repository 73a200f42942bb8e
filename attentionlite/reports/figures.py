"""The report's figures, each returned as PNG bytes.

matplotlib is imported here only, with the Agg backend, so nothing that merely
imports the package pays for it.  PNGs are written without the "Software"
metadata and at a fixed size and DPI so that the same numbers give the same
bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

_DPI = 110
_MODEL_COLOURS = ("#3b6ea8", "#d9822b", "#3a9a5b", "#b8474c", "#7d5ba6", "#8c6d3f", "#c45ca2")
_MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_GROUP_COLOURS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#b0b0b0")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    _pyplot().close(figure)
    return buffer.getvalue()


def _style(models: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A fixed colour and marker per model, in the order the models were given."""
    return {m: (_MODEL_COLOURS[i % 7], _MODEL_MARKERS[i % 7]) for i, m in enumerate(models)}


def _plain_numbers(*scales) -> None:
    """Log axes ticked at 1, 2, 5 x 10^n and labelled 0.5, 1, 2 rather than 5x10^-1: easier to read
    off, and a range under one decade still gets labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for scale in scales:
        if scale.get_scale() == "log":
            scale.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=30))
            scale.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            scale.set_minor_formatter(NullFormatter())


def metric_vs_array(
    rows: Sequence[Mapping], models: Sequence[str], dataflows: Sequence[str], metric: str, label: str,
    scale: float = 1.0, log_y: bool = True,
) -> bytes:
    """One panel per dataflow: ``metric`` times ``scale`` against the array side, one line per model."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(dataflows), figsize=(4.0 * len(dataflows), 3.4), sharey=True,
                                squeeze=False, layout="constrained")
    for axis, dataflow in zip(axes[0], dataflows):
        chosen = [r for r in rows if r["dataflow"] == dataflow]
        _lines_by_model(axis, chosen, models, lambda r: (r["array_rows"], scale * r[metric]))
        _array_axis(axis, rows)
        axis.set_yscale("log" if log_y else "linear")
        axis.set_title(f"dataflow {dataflow}")
        axis.grid(True, which="both", alpha=0.3)
        _plain_numbers(axis.yaxis)
    axes[0][0].set_ylabel(label)
    axes[0][-1].legend(fontsize=8)
    return _png(figure)


def _lines_by_model(axis, rows: Sequence[Mapping], models: Sequence[str], point) -> None:
    """One line per model through ``point(row)`` = (x, y), sorted by x, in the model's colour and marker."""
    style = _style(models)
    for model in models:
        xs_ys = sorted(point(r) for r in rows if r["model"] == model)
        axis.plot(*zip(*xs_ys), marker=style[model][1], color=style[model][0], label=model)


def _array_axis(axis, rows: Sequence[Mapping]) -> None:
    sides = sorted({r["array_rows"] for r in rows})
    axis.set_xscale("log", base=2)
    axis.set_xticks(sides, [f"{s}x{s}" for s in sides], fontsize=8)
    axis.minorticks_off()
    axis.set_xlabel("array (rows x columns)")


def _log_log(axis, xlabel: str, ylabel: str) -> None:
    """Both axes logarithmic, labelled with plain numbers, with a light grid."""
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(True, which="both", alpha=0.3)
    _plain_numbers(axis.xaxis, axis.yaxis)


def kind_breakdown(shares: Mapping[str, Mapping[str, float]], groups: Sequence[str], title: str) -> bytes:
    """Stacked horizontal bars: each model's cycles split by op-kind group (shares sum to 1)."""
    plt = _pyplot()
    models = list(shares)
    figure, axis = plt.subplots(figsize=(9.5, 0.6 * len(models) + 1.6), layout="constrained")
    left = [0.0] * len(models)
    for group, colour in zip(groups, _GROUP_COLOURS):
        widths = [100.0 * shares[m][group] for m in models]
        axis.barh(models, widths, left=left, color=colour, label=group)
        left = [a + b for a, b in zip(left, widths)]
    axis.invert_yaxis()
    axis.set_xlim(0, 100)
    axis.set_xlabel("share of busy cycles (%)")
    axis.set_title(title, fontsize=10)
    figure.legend(*axis.get_legend_handles_labels(), ncol=len(groups), fontsize=8, loc="outside lower center")
    return _png(figure)


def pareto_front(rows: Sequence[Mapping], models: Sequence[str], on_front: Sequence[bool]) -> bytes:
    """Latency against energy for every (model, design point); colour = area, ringed = on the front."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    style = _style(models)
    figure, axis = plt.subplots(figsize=(8.5, 5.2), layout="constrained")
    areas = [r["area_mm2"] for r in rows]
    norm = LogNorm(min(areas), max(max(areas), 2 * min(areas)))
    for model in models:
        chosen = [r for r in rows if r["model"] == model]
        scatter = axis.scatter(*_ms_mj(chosen), c=[r["area_mm2"] for r in chosen], cmap="viridis", norm=norm,
                               marker=style[model][1], s=36, edgecolors="none")
    front = axis.scatter(*_ms_mj([r for r, keep in zip(rows, on_front) if keep]), s=110, facecolors="none",
                         edgecolors="#d62728", linewidths=1.4, label="Pareto front")
    _log_log(axis, "latency per image (ms)", "energy per image (mJ)")
    figure.colorbar(scatter, ax=axis, label="area, mm$^2$ (all cores)")
    axis.legend(handles=_marker_legend(models, style) + [front], fontsize=8)
    return _png(figure)


def _ms_mj(rows: Sequence[Mapping]) -> tuple[list[float], list[float]]:
    return [1e3 * r["latency_s"] for r in rows], [1e3 * r["energy_per_image_j"] for r in rows]


def _marker_legend(models: Sequence[str], style: Mapping[str, tuple[str, str]]) -> list:
    """Grey marker swatches per model (colour encodes area in the scatter, so not the model)."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], linestyle="none", marker=style[m][1], color="#666666", label=m) for m in models]


def roofline(
    peak_flops: float, bandwidths: Mapping[str, float], points: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
) -> bytes:
    """A CPU roofline (peak compute and one slope per memory level) with each model's ops on it.

    ``points`` maps a model to (FLOP per byte of the op's tensors, attained FLOP/s) per op.
    """
    plt = _pyplot()
    style = _style(list(points))
    figure, axis = plt.subplots(figsize=(8.5, 5.2), layout="constrained")
    intensities = [i for ops in points.values() for i, _ in ops if i > 0]
    low, high = min(intensities + [0.1]) / 2, max(intensities + [100.0]) * 2
    _roofs(axis, peak_flops, bandwidths, low, high)
    for model, ops in points.items():
        kept = [(i, f / 1e9) for i, f in ops if i > 0 and f > 0]
        axis.scatter(*zip(*kept), color=style[model][0], marker=style[model][1], s=18, alpha=0.7, label=model)
    _log_log(axis, "arithmetic intensity (FLOP per byte of the op's inputs, weights and output)",
             "attained GFLOP/s (predicted)")
    axis.set_xlim(low, high)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    return _png(figure)


def _roofs(axis, peak_flops: float, bandwidths: Mapping[str, float], low: float, high: float) -> None:
    """The compute roof and one bandwidth slope per memory level, up to where each meets the roof."""
    shades = ("#222222", "#555555", "#888888", "#aaaaaa", "#cccccc")
    for (level, bandwidth), shade in zip(bandwidths.items(), shades):
        ridge = min(max(peak_flops / bandwidth, low), high)
        axis.plot([low, ridge], [bandwidth * low / 1e9, bandwidth * ridge / 1e9], color=shade, linestyle="--",
                  label=f"{level} {bandwidth / 1e9:.3g} GB/s")
    axis.plot([low, high], [peak_flops / 1e9] * 2, color="black", label=f"peak {peak_flops / 1e9:.4g} GFLOP/s")


def scaling(rows: Sequence[Mapping], models: Sequence[str], schedules: Sequence[str]) -> bytes:
    """Per schedule (columns): throughput (top) and parallel efficiency (bottom) against core count,
    one line per model; dotted, each model's DRAM-channel ceiling on throughput."""
    plt = _pyplot()
    style = _style(models)
    figure, axes = plt.subplots(2, len(schedules), figsize=(4.0 * len(schedules), 6.4), sharex=True,
                                sharey="row", squeeze=False, layout="constrained")
    for column, schedule in enumerate(schedules):
        chosen = [r for r in rows if r["schedule"] == schedule]
        top, bottom = axes[0][column], axes[1][column]
        _lines_by_model(top, chosen, models, lambda r: (r["cores"], r["throughput"]))
        _lines_by_model(bottom, chosen, models, lambda r: (r["cores"], 100 * r["efficiency"]))
        for model in models:
            ceiling = sorted((r["cores"], r["dram_ceiling"]) for r in chosen if r["model"] == model)
            top.plot(*zip(*ceiling), linestyle=":", color=style[model][0], linewidth=1)
        top.set_title(f"schedule {schedule}")
        top.set_yscale("log")
        _plain_numbers(top.yaxis)
        cores = sorted({r["cores"] for r in rows})
        bottom.set_xscale("log", base=2)
        bottom.set_xticks(cores, [str(c) for c in cores])
        bottom.minorticks_off()
        bottom.set_xlabel("cores")
        bottom.set_ylim(0, 105)
        for axis in (top, bottom):
            axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("images/s (dotted: DRAM ceiling)")
    axes[1][0].set_ylabel("parallel efficiency (%)")
    axes[0][-1].legend(fontsize=8)
    return _png(figure)


def pipeline_stages(stage_cycles: Mapping[str, Sequence[Mapping[str, int]]], groups: Sequence[str],
                    title: str) -> bytes:
    """One panel per model: each pipeline stage's compute cycles, stacked by op-kind group."""
    plt = _pyplot()
    models = list(stage_cycles)
    figure, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), sharey=True, squeeze=False,
                                layout="constrained")
    for axis, model in zip(axes[0], models):
        stages = stage_cycles[model]
        bottom = [0.0] * len(stages)
        for group, colour in zip(groups, _GROUP_COLOURS):
            heights = [stage[group] / 1e3 for stage in stages]
            axis.bar(range(len(stages)), heights, bottom=bottom, color=colour, label=group)
            bottom = [a + b for a, b in zip(bottom, heights)]
        axis.set_xticks(range(len(stages)), [str(s) for s in range(len(stages))])
        axis.set_xlabel("stage (core)")
        axis.set_title(model, fontsize=10)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("compute cycles per image (thousands)")
    figure.suptitle(title, fontsize=10)
    figure.legend(*axes[0][0].get_legend_handles_labels(), ncol=len(groups), fontsize=8, loc="outside lower center")
    return _png(figure)


def waterfall(rows: Sequence[Mapping], steps: Sequence[str]) -> bytes:
    """One panel per student: its MAC ratio, each step's factor as a bar from the ratio before it to the ratio
    after (green where the step favours the student, red where it costs it), and its latency ratio."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows), 3.8), sharey=True, squeeze=False,
                                layout="constrained")
    for axis, row in zip(axes[0], rows):
        ratio, labels = row["mac_ratio"], ["MAC ratio"]
        axis.bar(0, ratio, color="#7f7f7f")
        for index, step in enumerate(steps, start=1):
            after = ratio * row[step]
            axis.bar(index, abs(after - ratio), bottom=min(ratio, after),
                     color="#3a9a5b" if after >= ratio else "#b8474c")
            ratio = after
            labels.append(step)
        axis.bar(len(labels), row["latency_ratio"], color="#3b6ea8")
        labels.append("latency ratio")
        axis.axhline(1.0, color="black", linewidth=0.6)
        axis.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        axis.set_title(row["model"], fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("teacher / student")
    return _png(figure)
