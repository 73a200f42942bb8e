"""The report's written summary, generated from its numbers.

Every sentence here is assembled from the comparison rows, the op-kind
breakdown and the sweep rows; nothing is hand-written about the results, so
the summary stays true when the models, masks or hardware change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby

from attentionlite.analysis.attention_sweep import accuracy_key


def times(ratio: float) -> str:
    """A ratio to three significant figures, without exponents: 1.98x, 37.4x, 2,089x."""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"


def ratio_phrase(ratio: float, better: str, worse: str, same: str) -> str:
    """``2.5`` -> "2.5x faster"; ``0.5`` -> "2x slower"; within 0.5% of 1 -> "as fast (within 0.5%)"
    (``same`` is the words for level: "as fast", "as much energy")."""
    if abs(ratio - 1.0) < 0.005:
        return f"{same} (within 0.5%)"
    return f"{times(ratio)} {better}" if ratio > 1 else f"{times(1 / ratio)} {worse}"


def speed_phrase(ratio: float) -> str:
    return ratio_phrase(ratio, "faster", "slower", "as fast")


def energy_phrase(ratio: float) -> str:
    return ratio_phrase(ratio, "less energy", "more energy", "as much energy")


def milli(value: float) -> str:
    """Seconds or joules in milli-units, three significant figures, without exponents."""
    scaled = 1e3 * value
    return f"{scaled:,.0f}" if scaled >= 100 else f"{scaled:.3g}"


def percent(fraction: float) -> str:
    """0.257 -> "26%"; small shares keep two significant figures (0.0043 -> "0.43%")."""
    return f"{100 * fraction:.0f}%" if fraction >= 0.095 else f"{100 * fraction:.2g}%"


def array_label(row: Mapping) -> str:
    return f"{row['array_rows']}x{row['array_cols']}"


def reference_sentences(rows: Sequence[Mapping], point_label: str) -> list[str]:
    """Each model against the teacher (the first row) at the reference design point."""
    teacher = rows[0]
    sentences = [
        f"At the reference design point ({point_label}) the teacher `{teacher['model']}` takes "
        f"{milli(teacher['latency_s'])} ms and {milli(teacher['energy_per_image_j'])} mJ per image."
    ]
    for row in rows[1:]:
        sentences.append(
            f"`{row['model']}` takes {milli(row['latency_s'])} ms and {milli(row['energy_per_image_j'])} mJ: "
            f"{speed_phrase(row['speedup_vs_teacher'])} and "
            f"{energy_phrase(row['energy_saving_vs_teacher'])} than the teacher, "
            f"at {percent(row['utilisation'])} array utilisation (teacher {percent(teacher['utilisation'])})."
        )
    return sentences


def sparsity_sentence(rows: Sequence[Mapping], mode: str) -> str:
    """What exploiting weight sparsity buys each model over the same hardware run dense."""
    parts = [f"`{r['model']}` {speed_phrase(r['speedup_from_sparsity'])}, "
             f"{energy_phrase(r['energy_saving_from_sparsity'])}" for r in rows]
    return (f"Exploiting weight sparsity (mode `{mode}`), against the same hardware running every model "
            "dense: " + "; ".join(parts) + ".")


def attention_sentence(rows: Sequence[Mapping], checkpoint: str) -> str:
    """The sparsest swept point of a ViT's attention against its dense point."""
    dense = next((row for row in rows if row["sparsity"] == 0), None)
    sparsest = max(rows, key=lambda row: row["sparsity"])
    accuracy = accuracy_key(sparsest)
    scored = f"{accuracy.replace('_', ' ')} {sparsest[accuracy]:.3f}"
    if dense is None or sparsest is dense:
        return (f"`{checkpoint}` at attention sparsity {sparsest['sparsity']:g}: "
                f"{milli(sparsest['latency_ms'] / 1e3)} ms per image, {scored}.")
    return (f"`{checkpoint}` at attention sparsity {sparsest['sparsity']:g}: its attention is "
            f"{speed_phrase(sparsest['attention_speedup'])} than dense, the whole model "
            f"{speed_phrase(sparsest['speedup'])}, at {scored} against {dense[accuracy]:.3f} dense.")


def breakdown_sentence(breakdown: Sequence[Mapping]) -> str:
    """Where each model's busy cycles go: its largest op-kind group and that group's share."""
    parts = []
    for model, rows in groupby(breakdown, key=lambda r: r["model"]):
        top = max(rows, key=lambda r: r["share"])
        parts.append(f"`{model}` {percent(top['share'])} in {top['group']}")
    return "Largest share of busy cycles at the reference point: " + "; ".join(parts) + "."


def waterfall_sentence(rows: Sequence[Mapping], steps: Sequence[str]) -> str:
    """Each student's MAC ratio against its latency ratio, and the step that costs it most."""
    parts = []
    for row in rows:
        worst = min(steps, key=lambda step: row[step])
        loss = f"; the largest loss is {worst} ({row[worst]:.3g}x)" if row[worst] < 1 else ""
        parts.append(f"`{row['model']}` has {times(row['mac_ratio'])} fewer MACs than the teacher and "
                     f"is {speed_phrase(row['latency_ratio'])}{loss}")
    return "From MACs to latency at the reference point: " + "; ".join(parts) + "."


def winners_by_array(sweep: Sequence[Mapping], metric: str, noun: str) -> str:
    """Which model has the lowest ``metric`` (at its best dataflow) for each array size, as runs of sizes."""
    sides = sorted({(r["array_rows"], r["array_cols"]) for r in sweep})
    winners = []
    for side in sides:
        at_side = [r for r in sweep if (r["array_rows"], r["array_cols"]) == side]
        winners.append((side, min(at_side, key=lambda r: r[metric])["model"]))
    runs = []
    for model, pairs in groupby(winners, key=lambda pair: pair[1]):
        group = [side for side, _ in pairs]
        span = _side(group[0]) if len(group) == 1 else f"{_side(group[0])} to {_side(group[-1])}"
        runs.append(f"{span}: `{model}`")
    return f"Lowest {noun} by array size (best dataflow each): " + "; ".join(runs) + "."


def _side(side: tuple[int, int]) -> str:
    return f"{side[0]}x{side[1]}"


def head_to_head(sweep: Sequence[Mapping], first: str, second: str) -> str:
    """Two models over every design point of the sweep: where each is faster and cheaper, and by how much."""
    pairs = list(zip((r for r in sweep if r["model"] == first), (r for r in sweep if r["model"] == second)))
    parts = []
    for metric, better in (("latency_s", "faster"), ("energy_per_image_j", "cheaper in energy")):
        ratios = [b[metric] / a[metric] for a, b in pairs]  # above 1: the first model wins
        wins = [r for r in ratios if r > 1]
        margin = f" (by up to {100 * (max(wins) - 1):.1f}%)" if wins else ""
        parts.append(f"{better} at {len(wins)} of {len(pairs)} design points{margin}")
    return f"`{first}` against `{second}`: " + "; ".join(parts) + "."


def scaling_sentence(sweep: Sequence[Mapping], model: str) -> str:
    """How far the best latency falls from the smallest to the largest array, and what utilisation does."""
    rows = [r for r in sweep if r["model"] == model]
    small = min(rows, key=lambda r: (r["pes"], r["latency_s"]))
    large = min((r for r in rows if r["pes"] == max(x["pes"] for x in rows)), key=lambda r: r["latency_s"])
    return (
        f"From {array_label(small)} to {array_label(large)} ({large['pes'] / small['pes']:.0f}x the PEs), "
        f"`{model}`'s latency falls {small['latency_s'] / large['latency_s']:.1f}x while utilisation goes "
        f"from {percent(small['utilisation'])} to {percent(large['utilisation'])}."
    )


def best_edp_sentence(sweep: Sequence[Mapping], models: Sequence[str]) -> str:
    parts = []
    for model in models:
        best = min((r for r in sweep if r["model"] == model), key=lambda r: r["edp_per_image"])
        parts.append(f"`{model}` on {array_label(best)} {best['dataflow']} ({1e6 * best['edp_per_image']:.3g} mJ*ms)")
    return "Lowest energy-delay product per model: " + "; ".join(parts) + "."


def pareto_sentence(sweep: Sequence[Mapping], on_front: Sequence[bool], models: Sequence[str]) -> str:
    front = [r for r, keep in zip(sweep, on_front) if keep]
    counts = ", ".join(f"`{m}` {sum(r['model'] == m for r in front)}" for m in models)
    return (
        f"{len(front)} of {len(sweep)} (model, design point) pairs are Pareto-optimal in latency, energy "
        f"and area; by model: {counts}."
    )


def cpu_sentence(rows: Sequence[Mapping], cpu_name: str) -> str:
    parts = [
        f"`{r['model']}` {milli(r['cpu_latency_s'])} ms "
        f"({speed_phrase(r['speedup_vs_cpu'])} on the accelerator)"
        for r in rows
    ]
    return f"On the CPU baseline (`{cpu_name}`), predicted latency per image: " + "; ".join(parts) + "."


def cpu_caveat(bandwidths: Mapping[str, float]) -> str:
    """A warning when a cache level measured slower than the memory outside it: a sign of a busy host.

    ``bandwidths`` are bytes/s per level, innermost first, DRAM last; empty when nothing looks wrong.
    """
    levels = list(bandwidths.items())
    slower = [(inner, outer) for inner, outer in zip(levels, levels[1:]) if inner[1] < outer[1]]
    if not slower:
        return ""
    (inner, inner_rate), (outer, outer_rate) = slower[0]
    return (f"**Check the CPU calibration**: it measured {inner} ({inner_rate / 1e9:.3g} GB/s) slower than "
            f"{outer} ({outer_rate / 1e9:.3g} GB/s), which a quiet machine does not do; the host was probably "
            "busy while it ran. Re-run with `--recalibrate` on a quiet machine, or give `--cpu PRESET`.")


# ----------------------------------------------------------------------------- an exploration instead of a grid


def value_text(value: object) -> str:
    """A knob's value: an array (rows, cols) as RxC, a number without trailing zeros."""
    if isinstance(value, tuple):
        return f"{value[0]}x{value[1]}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def knob_value(row: Mapping, knob: str) -> str:
    """A knob's value in a trial's row, where an array is two columns."""
    return array_label(row) if knob == "array" else value_text(row[knob])


def design_label(row: Mapping, knobs: Sequence[str]) -> str:
    """A searched design in words: "32x32, os, cores 4, dram.bandwidth_gb_s 25.6"."""
    return ", ".join(knob_value(row, knob) if knob in ("array", "dataflow") else f"{knob} {knob_value(row, knob)}"
                     for knob in knobs)


def search_sentence(trials: Sequence[Mapping], front: Sequence[Mapping], models: Sequence[str], sampler: str,
                    space_size: int, objectives: Sequence[str], feasible_means: str,
                    design_columns: Sequence[str]) -> str:
    """How many trials each model's search ran, how many distinct feasible designs they found, and how many
    of those are on its front."""
    parts = []
    for model in models:
        feasible = {tuple(r[c] for c in design_columns) for r in trials if r["model"] == model and r["feasible"]}
        parts.append(f"`{model}` {sum(r['model'] == model for r in front)} of {len(feasible)}")
    return (f"{sampler} ran {len(trials) // len(models):,} trials per model over a space of {space_size:,} "
            f"designs. Each model's Pareto front in {', '.join(objectives)}, of the distinct feasible designs "
            f"({feasible_means}) its trials found: " + "; ".join(parts) + ".")


def best_found_sentence(designs: Sequence[Mapping], models: Sequence[str], metric: str, noun: str, unit: str,
                        knobs: Sequence[str]) -> str:
    """Each model's best feasible design for ``metric`` (minimised; seconds, joules or their product, shown in
    milli-units) and where it is."""
    parts = []
    for model in models:
        rows = [r for r in designs if r["model"] == model]
        if not rows:
            parts.append(f"`{model}` none feasible")
            continue
        best = min(rows, key=lambda r: r[metric])
        value = f"{1e6 * best[metric]:.3g}" if metric == "edp_per_image" else milli(best[metric])
        parts.append(f"`{model}` {value} {unit} on {design_label(best, knobs)}")
    return f"{noun} found per model: " + "; ".join(parts) + "."


def best_against_teacher(designs: Sequence[Mapping], models: Sequence[str]) -> str:
    """Each student at its own fastest and its own most frugal design, against the teacher at the teacher's."""
    best = {}
    for model in models:
        rows = [r for r in designs if r["model"] == model]
        if rows:
            best[model] = (min(r["latency_s"] for r in rows), min(r["energy_per_image_j"] for r in rows))
    teacher = models[0]
    if teacher not in best or len(best) < 2:
        return "No comparison with the teacher: a model has no feasible design."
    parts = [f"`{model}` {speed_phrase(best[teacher][0] / latency)} and "
             f"{energy_phrase(best[teacher][1] / energy)}" for model, (latency, energy) in best.items()
             if model != teacher]
    return (f"Each model at its own best design found (fastest for latency, most frugal for energy), against "
            f"the teacher `{teacher}` at its own: " + "; ".join(parts) + ".")
