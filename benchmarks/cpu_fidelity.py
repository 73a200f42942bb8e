"""How well the calibrated CPU roofline predicts measured PyTorch latency on this host.

For resnet50, sasa26_hybrid, sasa26_homogeneous and vit_tiny at 32 px (CIFAR-10), batch
1 and 32: predicted vs measured end-to-end latency (goal: within 15%) and the
median per-unit error (goal: within 25%; units are the modules ops come from
and the attention functions timed apart, see ``attentionlite.simulator.cpu.measure``).

The machine's speed drifts: on the 2-vCPU development VM, resnet50 at batch 1
measured 32 to 44 ms in twelve medians taken two seconds apart, and 50 to 65 ms
in other runs.  A calibration made at one moment and a measurement at another
carry that drift as error.  So the benchmark runs in rounds, each timing the
calibration networks and the models in alternation, and takes each time's
median over the rounds: calibration and measurement sample the same stretch of
time.  ``--cpu FILE`` uses a config instead of calibrating (the rounds then only
measure).  Batch 32 uses the quick repeats; a round takes about two minutes on
the development VM::

    uptime; python benchmarks/cpu_fidelity.py --out cpu_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

MODELS = ("resnet50", "sasa26_hybrid", "sasa26_homogeneous", "vit_tiny")
BATCHES = (1, 32)
GOAL_END_TO_END, GOAL_MEDIAN_MODULE = 0.15, 0.25


def main() -> None:
    args = _arguments()
    from tqdm import tqdm

    from attentionlite.api import trace
    from attentionlite.simulator.cpu.calibrate import (
        calibration_networks,
        fit_kind_factors,
        host_skeleton,
        measure_bandwidths,
    )
    from attentionlite.simulator.cpu.config import load_cpu
    from attentionlite.simulator.cpu.measure import Repeats, torch_threads

    start = time.perf_counter()
    cases = [(model, batch, trace(model, dataset="cifar10", batch=batch)) for model in args.models for batch in args.batches]
    networks = [] if args.cpu else calibration_networks(quick=False)
    with torch_threads(args.threads) as threads:
        cpu = load_cpu(args.cpu) if args.cpu else measure_bandwidths(host_skeleton(threads), Repeats.for_mode(False, threads))
        rounds = [_round(networks, cases, threads) for _ in tqdm(range(args.rounds), desc="rounds", unit="round")]
    unit_rounds, timing_rounds = zip(*rounds)
    if networks:
        cpu = fit_kind_factors(cpu, _median_units(unit_rounds))
    rows = [_row(case, [timings[index] for timings in timing_rounds], cpu) for index, case in enumerate(cases)]
    print(f"{args.rounds} rounds in {time.perf_counter() - start:.0f} s")
    print(_table(rows, cpu))
    print()
    print(_kind_table(rows))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"cpu": cpu.to_dict(), "rows": rows}, handle, indent=2, default=str)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", help="CPU config to use instead of calibrating now")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: PyTorch's)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of calibration and measurement (median over them)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()
    for name in ("rounds", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def _interleaved(networks: int, cases: int) -> list[tuple[str, int]]:
    """Calibration networks and timed models in alternation, spread evenly over a round, so drift in
    the machine's speed during a round touches both alike."""
    jobs = [((index + 0.5) / networks, "network", index) for index in range(networks)]
    jobs += [((index + 0.5) / cases, "case", index) for index in range(cases)]
    return [(kind, index) for _, kind, index in sorted(jobs)]


def _round(networks: list, cases: list[tuple], threads: int) -> tuple[list, list]:
    """One round: every calibration network's timed units, and every case's (end-to-end, unit) times."""
    from attentionlite.simulator.cpu.calibrate import time_network

    units, timings = [[]] * len(networks), [None] * len(cases)
    for kind, index in _interleaved(len(networks), len(cases)):
        if kind == "network":
            units[index] = time_network(networks[index], False, threads)
        else:
            timings[index] = _time(*cases[index], threads)
    return [unit for network_units in units for unit in network_units], timings


def _time(model: str, batch: int, graph, threads: int):
    from attentionlite.simulator.cpu.measure import time_model
    from attentionlite.simulator.graph.targets import target_model

    sources = [op.source for op in graph.ops_in_order()]
    return time_model(target_model(graph), sources, graph.metadata["input_shape"], threads, quick=batch > 1)


def _median_units(rounds: tuple[list, ...]) -> list:
    """Each calibration unit with its median time over the rounds (the networks run the same units each round)."""
    return [replace(units[0], seconds=statistics.median(unit.seconds for unit in units)) for units in zip(*rounds)]


def _row(case: tuple, timings: list[tuple], cpu) -> dict:
    """Prediction vs the median over rounds of the end-to-end time and of each unit's time."""
    from attentionlite.simulator.cpu.measure import UnitTimes, compare
    from attentionlite.simulator.cpu.roofline import predict

    model, batch, graph = case
    first = timings[0][1]
    times = UnitTimes(first.modules, {unit: statistics.median(t.seconds[unit] for _, t in timings) for unit in first.seconds})
    end_to_end = [seconds for seconds, _ in timings]
    measured = compare(predict(graph, cpu), statistics.median(end_to_end), times)
    spread = max(end_to_end) / min(end_to_end) - 1
    return {"model": model, "batch": batch, **measured.summary(), "end_to_end_round_spread": spread}


def _table(rows: list[dict], cpu) -> str:
    header = (f"{'model':<20} {'batch':>5} {'pred ms':>10} {'meas ms':>10} {'round spread':>12} {'e2e err':>8} "
              f"{'median unit err':>16}")
    lines = [f"CPU config: {cpu.name} ({cpu.compute.cores} threads)", header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['model']:<20} {row['batch']:>5} {row['predicted_s'] * 1e3:>10.1f} {row['measured_s'] * 1e3:>10.1f} "
            f"{row['end_to_end_round_spread']:>12.0%} {row['end_to_end_error']:>+8.0%} {row['median_module_error']:>16.0%}"
        )
    hits = sum(abs(r["end_to_end_error"]) <= GOAL_END_TO_END for r in rows)
    module_hits = sum(r["median_module_error"] <= GOAL_MEDIAN_MODULE for r in rows)
    lines.append(f"within {GOAL_END_TO_END:.0%} end to end: {hits}/{len(rows)}; "
                 f"median unit error within {GOAL_MEDIAN_MODULE:.0%}: {module_hits}/{len(rows)}")
    return "\n".join(lines)


def _kind_table(rows: list[dict]) -> str:
    """Where the error comes from: per model, batch and unit kind, the summed times and the median error."""
    header = f"{'model':<20} {'batch':>5} {'unit kinds':<34} {'units':>7} {'pred ms':>9} {'meas ms':>9} {'median err':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        groups: dict[str, list[dict]] = {}
        for module in row["modules"]:
            groups.setdefault(module["kinds"], []).append(module)
        for kinds, modules in sorted(groups.items()):
            predicted = sum(m["predicted_s"] for m in modules) * 1e3
            measured = sum(m["measured_s"] for m in modules) * 1e3
            error = statistics.median(m["relative_error"] for m in modules)
            lines.append(f"{row['model']:<20} {row['batch']:>5} {kinds:<34} {len(modules):>7} {predicted:>9.2f} "
                         f"{measured:>9.2f} {error:>+10.0%}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
