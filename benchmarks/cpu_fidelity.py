"""How well the calibrated CPU roofline predicts measured PyTorch latency on this host.

For resnet50, sasa26_hybrid and sasa26_homogeneous at 32 px (CIFAR-10), batch
1 and 32: predicted vs measured end-to-end latency (goal: within 15%) and the
median per-module error (goal: within 25%; modules are the ops' sources, see
``attentionlite.simulator.cpu_measure``).  The CPU config is calibrated first
(``--cpu FILE`` reuses one).  Timings are medians after warm-up, with the
config's cores as PyTorch threads; batch 32 uses the quick repeats to stay
within a few minutes.  Run it on a quiet machine, and report its load::

    uptime; nice -n 0 python benchmarks/cpu_fidelity.py --threads 1 --out cpu_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

MODELS = ("resnet50", "sasa26_hybrid", "sasa26_homogeneous")
BATCHES = (1, 32)
GOAL_END_TO_END, GOAL_MEDIAN_MODULE = 0.15, 0.25


def main() -> None:
    args = _arguments()
    from attentionlite.simulator.cpu import load_cpu
    from attentionlite.simulator.cpu_calibrate import calibrate

    cpu = load_cpu(args.cpu) if args.cpu else calibrate(quick=args.quick, threads=args.threads)
    rows = [_one(model, batch, cpu) for model in args.models for batch in args.batches]
    print(_table(rows, cpu))
    print()
    print(_kind_table(rows))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"cpu": cpu.to_dict(), "rows": rows}, handle, indent=2, default=str)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", help="CPU config to use instead of calibrating now")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads when calibrating (default: PyTorch's)")
    parser.add_argument("--quick", action="store_true", help="quick calibration")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--out", help="also write the rows as JSON here")
    return parser.parse_args()


def _one(model: str, batch: int, cpu) -> dict:
    from attentionlite.simulator.cpu import predict
    from attentionlite.simulator.cpu_measure import build_model, measure
    from attentionlite.simulator.graph import trace

    start = time.perf_counter()
    graph = trace(model, dataset="cifar10", batch=batch)
    result = predict(graph, cpu)
    measured = measure(build_model(graph.metadata), result, graph.metadata["input_shape"], quick=batch > 1)
    row = {"model": model, "batch": batch, **measured.summary(), "wall_s": time.perf_counter() - start}
    print(f"  {model} batch {batch}: {row['end_to_end_error']:+.0%} end to end, "
          f"{row['median_module_error']:.0%} median module ({row['wall_s']:.0f} s)", flush=True)
    return row


def _table(rows: list[dict], cpu) -> str:
    header = f"{'model':<20} {'batch':>5} {'pred ms':>10} {'meas ms':>10} {'e2e err':>8} {'median module err':>18}"
    lines = [f"CPU config: {cpu.name} ({cpu.cores} threads)", header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['model']:<20} {row['batch']:>5} {row['predicted_s'] * 1e3:>10.1f} {row['measured_s'] * 1e3:>10.1f} "
            f"{row['end_to_end_error']:>+8.0%} {row['median_module_error']:>18.0%}"
        )
    hits = sum(abs(r["end_to_end_error"]) <= GOAL_END_TO_END for r in rows)
    module_hits = sum(r["median_module_error"] <= GOAL_MEDIAN_MODULE for r in rows)
    lines.append(f"within {GOAL_END_TO_END:.0%} end to end: {hits}/{len(rows)}; "
                 f"median module error within {GOAL_MEDIAN_MODULE:.0%}: {module_hits}/{len(rows)}")
    return "\n".join(lines)


def _kind_table(rows: list[dict]) -> str:
    """Where the error comes from: per model, batch and module kind, the summed times and the median error."""
    header = f"{'model':<20} {'batch':>5} {'module kinds':<34} {'modules':>7} {'pred ms':>9} {'meas ms':>9} {'median err':>10}"
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
