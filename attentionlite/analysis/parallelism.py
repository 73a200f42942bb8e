"""Homogeneous versus hybrid parallelism: scaling over cores, pipeline balance, and who wins where.

The AttentionLite paper claims that homogeneous students "provide the
advantage of parallel execution since they consist of the same set of
operations throughout the network".  This module puts numbers on it:

* **Scaling** (:func:`scaling_rows`): every model under every schedule on 1, 2,
  4, 8 and 16 cores of one accelerator: latency, throughput, speed-up over one
  core of the same schedule and parallel efficiency (speed-up / cores).  Each
  point also carries two throughput ceilings computed from the run's own work
  (:func:`ceilings`), the array's and the DRAM channel's, and names the one it
  meets first (:func:`limit_of`); :func:`scaling_limits` says where each model
  stops gaining and why.
* **Pipeline balance** (:func:`pipeline_balance`): the optimal cut of each
  model's ops into k stages (the pipeline schedule's own,
  :func:`~attentionlite.simulator.accelerator.schedules.balanced_stages`), its
  bottleneck, imbalance and steady-state bubbles, and the bytes the stages
  hand each other.
* **Heterogeneous accelerators** (:func:`accelerator_rows`): every model under
  every schedule on other accelerators at their own size, e.g. ``paa-hetero``
  (attention engines and a conv engine that runs no attention, of
  ``paa-default``'s PEs, lanes and SRAM), beside the reference.
* **Verdict** (:func:`verdict_rows`, :func:`claim_sentences`): at every
  (accelerator, schedule, cores) point, which model wins in throughput,
  latency and energy per image, by how much, and where the homogeneous
  student's parallel efficiency and throughput beat the hybrid's.

Every number is read off simulated rows; the verdict is a function of the
rows, so changing a row changes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from attentionlite.analysis.compare import GROUPS, KIND_GROUPS
from attentionlite.errors import InputError
from attentionlite.files import rows_to_csv
from attentionlite.simulator.accelerator.hardware import HardwareConfig, with_overrides
from attentionlite.simulator.accelerator.precision import output_bytes
from attentionlite.simulator.accelerator.schedules import SCHEDULES
from attentionlite.simulator.accelerator.simulation import Scheduled, schedule_and_run, summarise_run
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import OpKind

CORE_COUNTS = (1, 2, 4, 8, 16)
SCHEDULE_ORDER = ("data", "pipeline", "split")
# A doubling of cores that buys less than this much more throughput ends a model's scaling.
GAIN_THAT_COUNTS = 1.10
# An array ceiling this far below perfect spreading of one core's work is the schedule's own loss.
PLACEMENT_SLACK = 1.10
# Two models within this relative margin of each other tie (timing noise between schedules is below it).
TIE = 0.01
# The verdict's metrics: (row key, whether higher is better).
VERDICT_METRICS = (("throughput", True), ("latency_s", False), ("energy_per_image_j", False))
LOCAL_ATTENTION_KINDS = frozenset({OpKind.WINDOW_LOGITS, OpKind.SOFTMAX, OpKind.WEIGHTED_SUM})
GLOBAL_ATTENTION_KINDS = frozenset({OpKind.ATTENTION_LOGITS, OpKind.ATTENTION_VALUES})


def network_kind(graph: OpGraph) -> str:
    """``transformer`` (global attention between tokens: a ViT), else ``convolutional`` (no attention),
    ``hybrid`` (local attention and a spatial convolution, e.g. a conv stem) or ``homogeneous`` (local
    attention does all the spatial mixing; 1x1 convolutions are GEMMs)."""
    ops = graph.ops_in_order()
    if any(op.kind in GLOBAL_ATTENTION_KINDS for op in ops):
        return "transformer"
    if not any(op.kind in LOCAL_ATTENTION_KINDS for op in ops):
        return "convolutional"
    spatial = any(op.kind is OpKind.CONV and _kernel_area(op.attrs) > 1 for op in ops)
    return "hybrid" if spatial else "homogeneous"


def _kernel_area(attrs: tuple) -> int:
    values = dict(attrs)
    return int(values.get("kernel_h", 1)) * int(values.get("kernel_w", 1))


# ----------------------------------------------------------------------------- ceilings


@dataclass(frozen=True)
class Ceilings:
    """Cycles per batch below which a run cannot go, from its own work.

    ``array``: the busiest core's compute, or the longest chain of tasks that
    wait for each other (a tile-split run's ops one after another) where that
    is longer, over the batches simulated: the makespan is at least each.
    ``dram``: every byte a batch moves, at the channel's full bandwidth.
    ``spread``: one batch's compute (on the cores it ran on) spread perfectly
    over every core.
    """

    array: float
    dram: float
    spread: float


def ceilings(done: Scheduled, config: HardwareConfig) -> Ceilings:
    """The run's ceilings, from its tasks' compute cycles, their dependencies and the bytes it moves."""
    compute = [int(task.tiles.compute.sum()) for task in done.tasks]
    load = [0] * config.cores
    chain = [0] * len(done.tasks)
    for index, task in enumerate(done.tasks):
        load[task.core] += compute[index]
        chain[index] = compute[index] + max((chain[d] for d in task.depends_on), default=0)
    batches = done.timeline.batches
    moved = sum(work.traffic.dram_read + work.traffic.dram_write for work in done.works)
    one_batch = sum(int(work.tiles.compute.sum()) for work in done.works)
    return Ceilings(array=max(max(load), max(chain)) / batches, dram=moved / config.dram_bytes_per_cycle,
                    spread=one_batch / config.cores)


def limit_of(bounds: Ceilings, schedule: str) -> str:
    """What caps a run's throughput first: the DRAM channel, the schedule's placement of work on the
    arrays (pipeline stages that do not balance; tile-split ops that cannot use every core), or the
    arrays' compute itself."""
    if bounds.dram >= bounds.array:
        return "DRAM bandwidth"
    if bounds.array > PLACEMENT_SLACK * bounds.spread:
        return {"pipeline": "stage imbalance", "split": "ops too small to split"}.get(schedule, "compute")
    return "compute"


# ----------------------------------------------------------------------------- scaling


def scaling_point(model: str, network: str, graph: OpGraph, config: HardwareConfig, schedule: str) -> dict:
    """One model under one schedule on one accelerator: its timing, cost, ceilings and limit."""
    return _measured(model, network, graph, config, schedule)[0]


def _measured(model: str, network: str, graph: OpGraph, config: HardwareConfig,
              schedule: str) -> tuple[dict, Scheduled]:
    done = schedule_and_run(graph, config, schedule)
    totals = summarise_run(done, config, schedule).totals
    bounds = ceilings(done, config)
    batch_hz = totals.batch * config.clock_mhz * 1e6  # over cycles per batch: images per second
    return {
        "model": model, "network": network, "accelerator": config.name, "schedule": schedule,
        "cores": config.cores, "pes": totals.pes, "area_mm2": totals.area_mm2, "latency_s": totals.latency_s,
        "throughput": totals.throughput, "energy_per_image_j": totals.per_image.energy_j,
        "dram_bytes_per_image": totals.per_image.dram_bytes, "utilisation": totals.utilisation,
        "array_ceiling": batch_hz / bounds.array if bounds.array else math.inf,
        "dram_ceiling": batch_hz / bounds.dram if bounds.dram else math.inf,
        "limit": limit_of(bounds, schedule),
    }, done


def scaling_rows(
    graphs: Mapping[str, OpGraph], config: HardwareConfig, core_counts: Sequence[int] = CORE_COUNTS,
    schedules: Sequence[str] = SCHEDULE_ORDER, step: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Every (model, schedule, core count) on ``config`` with its core count changed, with speed-up
    over the fewest cores of the same schedule and parallel efficiency (speed-up per core added)."""
    return scaling_and_plans(graphs, config, core_counts, schedules, step)[0]


def scaling_and_plans(
    graphs: Mapping[str, OpGraph], config: HardwareConfig, core_counts: Sequence[int] = CORE_COUNTS,
    schedules: Sequence[str] = SCHEDULE_ORDER, step: Callable[[str], None] = lambda _: None,
) -> tuple[list[dict], list[StagePlan]]:
    """:func:`scaling_rows`, and the stage plan of every pipeline run on more than one core in them."""
    kinds = {label: network_kind(graph) for label, graph in graphs.items()}
    rows, plans = [], []
    for cores in core_counts:
        sized = with_overrides(config, cores=cores)
        for schedule in schedules:
            step(f"{schedule} on {cores} core{'s' if cores > 1 else ''}")
            for label, graph in graphs.items():
                row, done = _measured(label, kinds[label], graph, sized, schedule)
                rows.append(row)
                if schedule == "pipeline" and cores > 1:
                    plans.append(plan_of(label, graph, done, sized))
    return with_speedups(rows), plans


def with_speedups(rows: Sequence[Mapping]) -> list[dict]:
    """``speedup``: throughput over the same model, schedule and accelerator on its fewest cores;
    ``efficiency``: speed-up over the factor by which the cores grew."""
    base: dict[tuple, Mapping] = {}
    for row in rows:
        key = (row["model"], row["accelerator"], row["schedule"])
        if key not in base or row["cores"] < base[key]["cores"]:
            base[key] = row
    out = []
    for row in rows:
        first = base[(row["model"], row["accelerator"], row["schedule"])]
        speedup = row["throughput"] / first["throughput"]
        out.append({**row, "speedup": speedup, "efficiency": speedup / (row["cores"] / first["cores"])})
    return out


def scaling_limits(rows: Sequence[Mapping]) -> list[dict]:
    """Per (model, accelerator, schedule): the core count after which one more step of cores buys
    less than :data:`GAIN_THAT_COUNTS`, and what limits the step that does not pay."""
    out = []
    for key, points in _grouped(rows, ("model", "accelerator", "schedule")).items():
        points = sorted(points, key=lambda r: r["cores"])
        scales_to, stopped_by = points[-1]["cores"], points[-1]["limit"]
        for before, after in zip(points, points[1:]):
            if after["throughput"] < GAIN_THAT_COUNTS * before["throughput"]:
                scales_to, stopped_by = before["cores"], after["limit"]
                break
        out.append({"model": key[0], "network": points[0]["network"], "accelerator": key[1],
                    "schedule": key[2], "scales_to": scales_to, "stopped_by": stopped_by,
                    "best_throughput": max(r["throughput"] for r in points),
                    "efficiency_at_most_cores": points[-1]["efficiency"]})
    return out


def _grouped(rows: Sequence[Mapping], keys: Sequence[str]) -> dict[tuple, list[Mapping]]:
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


# ----------------------------------------------------------------------------- pipeline balance


@dataclass(frozen=True)
class StagePlan:
    """One model's ops cut into pipeline stages: per stage its compute cycles by op-kind group, its
    weight bytes from DRAM, and the activation bytes it hands to later stages (per batch of ``batch``
    images)."""

    model: str
    network: str
    batch: int
    stages: int
    cycles: tuple[dict[str, int], ...]
    weight_bytes: tuple[float, ...]
    handed_on_bytes: tuple[int, ...]
    first_op: tuple[str, ...]

    @property
    def stage_cycles(self) -> list[int]:
        return [sum(groups.values()) for groups in self.cycles]

    @property
    def bottleneck(self) -> int:
        return max(self.stage_cycles)

    @property
    def imbalance(self) -> float:
        """The slowest stage's cycles over the mean stage's: 1.0 is a perfect balance."""
        cycles = self.stage_cycles
        return self.bottleneck * len(cycles) / sum(cycles) if sum(cycles) else 1.0

    @property
    def bubble_share(self) -> float:
        """Share of the stages' time idle in steady state, waiting for the slowest stage."""
        return 1 - 1 / self.imbalance

    def row(self, config: HardwareConfig) -> dict:
        slowest = self.stage_cycles.index(self.bottleneck)
        return {
            "model": self.model, "network": self.network, "stages": self.stages,
            "bottleneck_cycles": self.bottleneck, "bottleneck_stage": slowest,
            "bottleneck_from": self.first_op[slowest], "imbalance": self.imbalance,
            "bubble_share": self.bubble_share,
            "planned_throughput": self.batch * config.clock_mhz * 1e6 / self.bottleneck if self.bottleneck else 0.0,
            "weight_bytes_max_stage": max(self.weight_bytes),
            "handed_on_bytes": sum(self.handed_on_bytes),
        }


def stage_plan(model: str, graph: OpGraph, config: HardwareConfig) -> StagePlan:
    """The pipeline schedule's cut of ``graph`` over ``config.cores`` stages (:func:`plan_of`)."""
    return plan_of(model, graph, schedule_and_run(graph, config, "pipeline"), config)


def plan_of(model: str, graph: OpGraph, done: Scheduled, config: HardwareConfig) -> StagePlan:
    """A pipeline run's cut, read off its tasks (stages numbered in op order, whichever core each is on)."""
    core_of = {task.op_index: task.core for task in done.tasks if task.batch == 0}
    stage_of_core = {core: stage for stage, core in enumerate(dict.fromkeys(core_of[i] for i in sorted(core_of)))}
    stage_of = {i: stage_of_core[core] for i, core in core_of.items()}
    count = len(stage_of_core)
    cycles = [dict.fromkeys(GROUPS, 0) for _ in range(count)]
    weights = [0.0] * count
    handed = [0] * count
    first: list[str] = [""] * count
    index = {op.name: i for i, op in enumerate(done.ops)}
    folded = done.graph if isinstance(done.graph, OpGraph) else graph
    for i, (op, work) in enumerate(zip(done.ops, done.works)):
        stage = stage_of[i]
        first[stage] = first[stage] or op.name
        cycles[stage][KIND_GROUPS[op.kind]] += int(work.tiles.compute.sum())
        weights[stage] += work.traffic.dram_read_weight + work.traffic.dram_read_index
        if any(stage_of[index[c]] != stage for c in folded.consumers(op.name)):
            handed[stage] += math.ceil(output_bytes(op, config))
    batch = int(graph.metadata.get("batch", 1) or 1)
    return StagePlan(model, network_kind(graph), batch, count, tuple(cycles), tuple(weights), tuple(handed),
                     tuple(first))


def pipeline_balance(graphs: Mapping[str, OpGraph], config: HardwareConfig,
                     stage_counts: Sequence[int] = CORE_COUNTS[1:]) -> list[StagePlan]:
    """Every model's optimal cut into each number of stages (one stage per core)."""
    return [stage_plan(label, graph, with_overrides(config, cores=k))
            for k in stage_counts for label, graph in graphs.items()]


# ----------------------------------------------------------------------------- other accelerators


def accelerator_rows(graphs: Mapping[str, OpGraph], configs: Sequence[HardwareConfig],
                     schedules: Sequence[str] = SCHEDULE_ORDER, step: Callable[[str], None] = lambda _: None,
                     ) -> list[dict]:
    """Every model under every schedule on each accelerator at its own size (no speed-up: one size)."""
    kinds = {label: network_kind(graph) for label, graph in graphs.items()}
    rows = []
    for config in configs:
        for schedule in schedules:
            step(f"{schedule} on {config.name}")
            rows += [scaling_point(label, kinds[label], graph, config, schedule) for label, graph in graphs.items()]
    return rows


def accelerator_comparison(reference: Sequence[Mapping], others: Sequence[Mapping]) -> list[dict]:
    """Per (model, schedule, other accelerator): its throughput and energy per image over the reference's."""
    base = {(r["model"], r["schedule"]): r for r in reference}
    out = []
    for row in others:
        ref = base.get((row["model"], row["schedule"]))
        if ref is None:
            continue
        out.append({"model": row["model"], "network": row["network"], "schedule": row["schedule"],
                    "reference": ref["accelerator"], "accelerator": row["accelerator"], "area_mm2": row["area_mm2"],
                    "reference_throughput": ref["throughput"], "throughput": row["throughput"],
                    "throughput_ratio": row["throughput"] / ref["throughput"],
                    "energy_ratio": row["energy_per_image_j"] / ref["energy_per_image_j"],
                    "limit": row["limit"]})
    return out


def _heterogeneous_sentence(comparison: Sequence[Mapping]) -> str:
    """How much throughput each kind of network keeps on the other accelerator, and whether the
    homogeneous student keeps more of it than the hybrid."""
    if not comparison:
        return ""
    ratios = _grouped(comparison, ("accelerator", "network"))
    parts = [f"{network} {min(r['throughput_ratio'] for r in rows):.2f}-{max(r['throughput_ratio'] for r in rows):.2f}x"
             for (_, network), rows in sorted(ratios.items())]
    first = comparison[0]
    sentence = (f"On `{first['accelerator']}` against `{first['reference']}`, throughput over the schedules is "
                + ", ".join(parts))
    by_schedule = _grouped(comparison, ("accelerator", "schedule"))
    pairs = [{r["network"]: r["throughput_ratio"] for r in rows} for rows in by_schedule.values()]
    pairs = [p for p in pairs if "homogeneous" in p and "hybrid" in p]
    if pairs:
        keeps_more = sum(p["homogeneous"] > p["hybrid"] * (1 + TIE) for p in pairs)
        sentence += (f"; the homogeneous student keeps more of its throughput than the hybrid under "
                     f"{keeps_more} of {len(pairs)} schedules")
    return sentence + "."


# ----------------------------------------------------------------------------- verdict


def verdict_rows(rows: Sequence[Mapping]) -> list[dict]:
    """Per (accelerator, schedule, cores): for each metric the winning model, its margin over the
    runner-up (a ratio, >= 1), the homogeneous student over the hybrid and the best student over the
    convolutional teacher (ratios, above 1: the first better)."""
    out = []
    for (accelerator, schedule, cores), points in _grouped(rows, ("accelerator", "schedule", "cores")).items():
        verdict: dict = {"accelerator": accelerator, "schedule": schedule, "cores": cores}
        by_kind = {row["network"]: row for row in points}
        for key, higher_is_better in VERDICT_METRICS:
            ranked = sorted(points, key=lambda r: r[key], reverse=higher_is_better)
            verdict[f"{key}_winner"] = ranked[0]["model"]
            verdict[f"{key}_margin"] = _advantage(ranked[0][key], ranked[1][key], higher_is_better) \
                if len(ranked) > 1 else 1.0
            if "homogeneous" in by_kind and "hybrid" in by_kind:
                verdict[f"{key}_homogeneous_vs_hybrid"] = _advantage(
                    by_kind["homogeneous"][key], by_kind["hybrid"][key], higher_is_better)
            students = [r for r in ranked if r["network"] != "convolutional"]
            if "convolutional" in by_kind and students:
                verdict[f"{key}_best_student_vs_teacher"] = _advantage(
                    students[0][key], by_kind["convolutional"][key], higher_is_better)
        if "homogeneous" in by_kind and "hybrid" in by_kind and "efficiency" in by_kind["hybrid"]:
            verdict["efficiency_homogeneous_minus_hybrid"] = (by_kind["homogeneous"]["efficiency"]
                                                              - by_kind["hybrid"]["efficiency"])
        out.append(verdict)
    return out


def _advantage(value: float, other: float, higher_is_better: bool) -> float:
    """How many times better ``value`` is than ``other`` (above 1: better)."""
    if higher_is_better:
        return value / other if other else math.inf
    return other / value if value else math.inf


def claim_sentences(verdict: Sequence[Mapping], plans: Sequence[StagePlan]) -> list[str]:
    """What the rows say about the paper's claim: where the homogeneous student's parallel efficiency
    and throughput beat the hybrid's, and whether its pipeline stages balance better."""
    compared = [v for v in verdict if "efficiency_homogeneous_minus_hybrid" in v and v["cores"] > 1]
    if not compared:
        return ["The claim needs a homogeneous and a hybrid student; these models do not include both."]
    efficiency = _tally([v["efficiency_homogeneous_minus_hybrid"] for v in compared], TIE)
    throughput = _tally([v["throughput_homogeneous_vs_hybrid"] - 1 for v in compared], TIE)
    ratios = [v["throughput_homogeneous_vs_hybrid"] for v in compared]
    faster = [v for v in compared if v["throughput_homogeneous_vs_hybrid"] > 1 + TIE]
    sentences = [
        f"Of {len(compared)} multi-core points, the homogeneous student's parallel efficiency is higher than "
        f"the hybrid's by more than {TIE:g} at {_many(efficiency[0])}, within {TIE:g} at {_many(efficiency[1])} "
        f"and lower at {_many(efficiency[2])}; its throughput is more than {TIE:.0%} higher at "
        f"{_many(throughput[0])}, within {TIE:.0%} at {_many(throughput[1])} and lower at "
        f"{_many(throughput[2])} (homogeneous / hybrid "
        f"{min(ratios):.3f}-{max(ratios):.3f}; higher at {_points(faster)})."]
    over_teacher = [v["throughput_best_student_vs_teacher"] for v in verdict if "throughput_best_student_vs_teacher" in v]
    if over_teacher:
        sentences.append(f"The best student's throughput over the teacher's: {min(over_teacher):.2f}-"
                         f"{max(over_teacher):.2f}x over all {len(over_teacher)} points.")
    balance = _balance_sentence(plans)
    return sentences + ([balance] if balance else [])


def _many(count: int) -> str:
    """A count of points in a sentence: "none", "1 of them", "3 of them" (a bare "at 3" reads as 3 cores)."""
    return "none" if count == 0 else f"{count} of them"


def _tally(differences: Sequence[float], tie: float) -> tuple[int, int, int]:
    """How many differences are above ``tie``, within it either way, and below ``-tie``."""
    return (sum(d > tie for d in differences), sum(abs(d) <= tie for d in differences),
            sum(d < -tie for d in differences))


def _points(points: Sequence[Mapping]) -> str:
    """``pipeline x8, data x16`` (with `` on ACCELERATOR`` where the points span several)."""
    if not points:
        return "none"
    several = len({p["accelerator"] for p in points}) > 1
    return ", ".join(f"{v['schedule']} x{v['cores']}" + (f" on {v['accelerator']}" if several else "") for v in points)


def _balance_sentence(plans: Sequence[StagePlan]) -> str:
    by_stages: dict[int, dict[str, StagePlan]] = {}
    for plan in plans:
        by_stages.setdefault(plan.stages, {})[plan.network] = plan
    pairs = {k: p for k, p in by_stages.items() if "homogeneous" in p and "hybrid" in p}
    if not pairs:
        return ""
    better = [k for k, p in pairs.items() if p["homogeneous"].imbalance < p["hybrid"].imbalance]
    shown = "; ".join(
        f"{k} stages: " + ", ".join(f"{kind} {plan.imbalance:.3f}" for kind, plan in sorted(p.items()))
        for k, p in sorted(pairs.items()))
    return (f"Pipeline balance (slowest stage / mean, 1 is perfect): the homogeneous student's stages balance "
            f"better than the hybrid's at {len(better)} of {len(pairs)} stage counts ({shown}).")


# ----------------------------------------------------------------------------- the whole study


@dataclass(frozen=True)
class ParallelismStudy:
    """Scaling rows, where each model stops scaling, its pipeline cuts, other accelerators beside the
    reference, the verdict and what it says."""

    config: HardwareConfig
    scaling: list[dict]
    limits: list[dict]
    plans: list[StagePlan]
    accelerators: list[dict]  # each model and schedule on every other accelerator, at its own size
    comparison: list[dict]  # those over the reference accelerator at its own size
    verdict: list[dict]
    claims: list[str]

    def balance_rows(self) -> list[dict]:
        """One row per (model, stage count), beside the pipeline's simulated throughput on that many cores."""
        simulated = {(r["model"], r["cores"]): r["throughput"] for r in self.scaling if r["schedule"] == "pipeline"}
        return [plan.row(self.config) | {"simulated_throughput": simulated.get((plan.model, plan.stages))}
                for plan in self.plans]


def check_study(core_counts: Sequence[int], schedules: Sequence[str]) -> None:
    """Refuse an empty or non-positive list of core counts or an unknown schedule, before any slow step."""
    if not core_counts or not all(isinstance(c, int) and c > 0 for c in core_counts):
        raise InputError(f"core counts {list(core_counts)}: expected one or more positive integers")
    unknown = [name for name in schedules if name not in SCHEDULES]
    if not schedules or unknown:
        raise InputError(f"schedules {list(schedules)}: expected one or more of {', '.join(SCHEDULES)}")


def parallelism_study(
    graphs: Mapping[str, OpGraph], config: HardwareConfig, core_counts: Sequence[int] = CORE_COUNTS,
    schedules: Sequence[str] = SCHEDULE_ORDER, others: Sequence[HardwareConfig] = (),
    step: Callable[[str], None] = lambda _: None,
) -> ParallelismStudy:
    """Scale every model over ``core_counts`` under ``schedules``, cut each into pipeline stages for
    every core count above one, run them on the ``others`` accelerators beside ``config``, and judge."""
    check_study(core_counts, schedules)
    core_counts = sorted(set(core_counts))
    scaling, plans = scaling_and_plans(graphs, config, core_counts, schedules, step)
    step("pipeline stages")
    if "pipeline" not in schedules:
        plans = pipeline_balance(graphs, config, [k for k in core_counts if k > 1])
    reference = [r for r in scaling if r["cores"] == config.cores]
    if others and not reference:  # the reference at its own size, to set the others beside
        reference = accelerator_rows(graphs, [config], schedules)
    elsewhere = accelerator_rows(graphs, others, schedules, step)
    comparison = accelerator_comparison(reference, elsewhere)
    verdict = verdict_rows(scaling) + verdict_rows(elsewhere)
    claims = claim_sentences(verdict, plans)
    hetero = _heterogeneous_sentence(comparison)
    return ParallelismStudy(config, scaling, scaling_limits(scaling), plans, elsewhere, comparison, verdict,
                            claims + ([hetero] if hetero else []))


def study_files(study: ParallelismStudy) -> dict[str, str]:
    """The study's rows as CSV files by name (what ``parallelism --out`` and the report write)."""
    return {"scaling.csv": rows_to_csv(study.scaling), "pipeline_balance.csv": rows_to_csv(study.balance_rows()),
            "accelerators.csv": rows_to_csv(study.comparison), "verdict.csv": rows_to_csv(study.verdict)}
