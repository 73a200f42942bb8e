"""How results show as text: one map of each result field's format, fixed-width tables, the standard columns.

:data:`METRIC_FORMATS` is the one place that says how a result field is shown
(seconds and joules as milli-units, shares as percent, ratios with an x), so
the terminal tables and the report agree on units and digits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from attentionlite.analysis.compare import GROUPS


def text_table(rows: Sequence[Mapping], columns: Mapping[str, Callable[[Mapping], str]]) -> str:
    """A fixed-width table: ``columns`` maps each heading to how a row shows in it; names left, numbers right."""
    cells = [list(columns)] + [[show(row) for show in columns.values()] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    justified = [[line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])] for line in cells]
    lines = ["  ".join(line) for line in justified]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def point_label(row: Mapping) -> str:
    """A sweep row's design point in words: the columns between ``model`` and the results (``pes`` on)."""
    keys = list(row)
    return " ".join(f"{key}={row[key]}" for key in keys[1:keys.index("pes")])


def _milli(digits: int) -> Callable[[float], str]:
    return lambda value: f"{1e3 * value:.{digits}f}"


def _times(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:.{digits}f}x"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


# How each result field shows in a table, in one place so the terminal tables and the
# report agree on units and digits: seconds and joules as milli-units, shares as percent.
METRIC_FORMATS: dict[str, Callable[[float], str]] = {
    "latency_s": _milli(3),
    "dense_hw_latency_s": _milli(3),
    "cpu_latency_s": _milli(2),
    "energy_per_image_j": _milli(3),
    "throughput": lambda images_per_s: f"{images_per_s:.1f}",
    "edp_per_image": lambda joule_seconds: f"{1e6 * joule_seconds:.4g}",  # mJ*ms
    "dram_bytes_per_image": lambda size: f"{size / 1e6:.2f}",  # MB
    "area_mm2": lambda mm2: f"{mm2:.2f}",
    "utilisation": _percent,
    "stall_share": _percent,
    "speedup_vs_teacher": _times(2),
    "energy_saving_vs_teacher": _times(2),
    "edp_gain_vs_teacher": _times(2),
    "speedup_from_sparsity": _times(2),
    "energy_saving_from_sparsity": _times(2),
    "speedup_vs_cpu": _times(1),
}


def metric_cell(key: str, suffix: str = "") -> Callable[[Mapping], str]:
    """A table column showing ``row[key]`` as :data:`METRIC_FORMATS` says, with ``suffix`` after it."""
    show = METRIC_FORMATS[key]
    return lambda row: show(row[key]) + suffix


SWEEP_COLUMNS: dict[str, Callable[[Mapping], str]] = {
    "model": lambda r: r["model"],
    "design point": point_label,
    "PEs": lambda r: str(r["pes"]),
    "area mm2": metric_cell("area_mm2"),
    "latency ms": metric_cell("latency_s"),
    "energy mJ": metric_cell("energy_per_image_j"),
    "util %": metric_cell("utilisation"),
    "stall %": metric_cell("stall_share"),
}


def comparison_text(rows: Sequence[Mapping], breakdown: Sequence[Mapping]) -> str:
    """The comparison and the op-kind shares as two fixed-width tables."""
    columns: dict[str, Callable[[Mapping], str]] = dict(COMPARE_COLUMNS)
    if "cpu_latency_s" in rows[0]:
        columns["CPU ms"] = metric_cell("cpu_latency_s")
        columns["vs CPU"] = metric_cell("speedup_vs_cpu")
    shares = [{"model": m, **{r["group"]: r["share"] for r in breakdown if r["model"] == m}}
              for m in dict.fromkeys(r["model"] for r in breakdown)]
    share_columns: dict[str, Callable[[Mapping], str]] = {"model": lambda r: r["model"]}
    share_columns.update({group: _percent_of(group) for group in GROUPS})
    return text_table(rows, columns) + "\n\nshare of busy cycles by op kind\n" + text_table(shares, share_columns)


def _percent_of(key: str) -> Callable[[Mapping], str]:
    return lambda row: f"{100 * row[key]:.1f}%"


COMPARE_COLUMNS = {
    "model": lambda r: r["model"],
    "latency ms": metric_cell("latency_s"),
    "images/s": metric_cell("throughput"),
    "energy mJ": metric_cell("energy_per_image_j"),
    "EDP mJ*ms": metric_cell("edp_per_image"),
    "DRAM MB": metric_cell("dram_bytes_per_image"),
    "util %": metric_cell("utilisation"),
    "stall %": metric_cell("stall_share"),
    "speed-up": metric_cell("speedup_vs_teacher"),
    "energy saving": metric_cell("energy_saving_vs_teacher"),
}


# The parallelism study's tables (analysis/parallelism.py), for the terminal and the report alike.
LIMIT_COLUMNS = {
    "model": lambda r: r["model"],
    "network": lambda r: r["network"],
    "schedule": lambda r: r["schedule"],
    "gains up to (cores)": lambda r: str(r["scales_to"]),
    "then limited by": lambda r: r["stopped_by"],
    "best images/s": lambda r: f"{r['best_throughput']:.1f}",
    "efficiency on most cores": lambda r: f"{100 * r['efficiency_at_most_cores']:.0f}%",
}
BALANCE_COLUMNS = {
    "model": lambda r: r["model"],
    "stages": lambda r: str(r["stages"]),
    "bottleneck (k cycles)": lambda r: f"{r['bottleneck_cycles'] / 1e3:.1f}",
    "slowest stage starts at": lambda r: f"{r['bottleneck_stage']}: {r['bottleneck_from']}",
    "imbalance": lambda r: f"{r['imbalance']:.3f}",
    "bubbles": lambda r: f"{100 * r['bubble_share']:.1f}%",
    "planned images/s": lambda r: f"{r['planned_throughput']:.0f}",
    "simulated images/s": lambda r: "-" if r["simulated_throughput"] is None else f"{r['simulated_throughput']:.0f}",
    "weight DRAM reads, largest stage (MB)": lambda r: f"{r['weight_bytes_max_stage'] / 1e6:.2f}",
    "handed between stages (MB)": lambda r: f"{r['handed_on_bytes'] / 1e6:.2f}",
}


def _verdict_cell(key: str) -> Callable[[Mapping], str]:
    return lambda r: f"{r[f'{key}_winner']} ({r[f'{key}_margin']:.3f}x)"


VERDICT_COLUMNS: dict[str, Callable[[Mapping], str]] = {
    "accelerator": lambda r: r["accelerator"],
    "schedule": lambda r: r["schedule"],
    "cores": lambda r: str(r["cores"]),
    "throughput": _verdict_cell("throughput"),
    "latency": _verdict_cell("latency_s"),
    "energy per image": _verdict_cell("energy_per_image_j"),
    "homogeneous / hybrid throughput": lambda r: _optional(r, "throughput_homogeneous_vs_hybrid", "{:.3f}x"),
    "efficiency, homogeneous - hybrid": lambda r: _optional(r, "efficiency_homogeneous_minus_hybrid", "{:+.3f}"),
}


def _optional(row: Mapping, key: str, form: str) -> str:
    return form.format(row[key]) if key in row else "-"
SCALING_COLUMNS: dict[str, Callable[[Mapping], str]] = {
    "model": lambda r: r["model"],
    "schedule": lambda r: r["schedule"],
    "cores": lambda r: str(r["cores"]),
    "images/s": metric_cell("throughput"),
    "latency ms": metric_cell("latency_s"),
    "speed-up": lambda r: f"{r['speedup']:.2f}x",
    "efficiency": lambda r: f"{100 * r['efficiency']:.0f}%",
    "array ceiling": lambda r: f"{r['array_ceiling']:.0f}",
    "DRAM ceiling": lambda r: f"{r['dram_ceiling']:.0f}",
    "limited by": lambda r: r["limit"],
}
ACCELERATOR_COLUMNS: dict[str, Callable[[Mapping], str]] = {
    "model": lambda r: r["model"],
    "schedule": lambda r: r["schedule"],
    "accelerator": lambda r: r["accelerator"],
    "area mm2": metric_cell("area_mm2"),
    "images/s": metric_cell("throughput"),
    "on the reference": lambda r: f"{r['reference_throughput']:.1f}",
    "throughput ratio": lambda r: f"{r['throughput_ratio']:.3f}x",
    "energy ratio": lambda r: f"{r['energy_ratio']:.3f}x",
    "limited by": lambda r: r["limit"],
}
