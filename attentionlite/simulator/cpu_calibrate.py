"""Calibrate a :class:`~attentionlite.simulator.cpu.CpuConfig` on this host.

Three steps, each a short PyTorch micro-benchmark timed as the median of
repeats after warm-up, with the requested number of PyTorch threads (the cores
the config then has; with one thread, timed on its CPU-time clock, see
:class:`Repeats`):

1. the machine's shape from the OS: cores, frequency, SIMD lanes, cache sizes;
2. bandwidths: ``sum()`` over tensors sized for each cache level and for DRAM,
   less the launch overhead of a tiny ``sum()``.  L1 cannot be timed through
   PyTorch's dispatch, so it keeps the architectural two vector loads per cycle;
3. per op kind, the efficiency and per-launch overhead that best fit the
   measured times of that kind's micro-benchmarks (the ops of bottleneck blocks
   and attention layers with the shapes of 32 px CIFAR networks, each reading
   what the one before it wrote, :mod:`~attentionlite.simulator.cpu_samples`,
   timed in turn as a network runs them: :func:`median_seconds_in_turn`),
   by robust least squares on log time (scipy).

The fit is pure (:func:`fit_kind_factors`), so it is tested without timing.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from attentionlite.simulator.cpu import (
    CacheLevel,
    CpuConfig,
    bytes_per_level,
    compute_seconds,
    kernel_launches,
    level_seconds,
)
from attentionlite.simulator.ops import Op, OpKind

ASSUMED_FMA_UNITS = 2  # two 512-bit FMA pipes on Xeon server cores since Skylake-SP; not visible to the OS
FALLBACK_FREQUENCY_GHZ = 2.0  # when /proc/cpuinfo gives none (the fitted efficiency absorbs the error)
EFFICIENCY_BOUNDS = (1e-3, 1.0)
OVERHEAD_BOUNDS_US = (0.0, 200.0)  # dispatch costs microseconds; more would be noise fitted as overhead


@dataclass(frozen=True)
class Repeats:
    """How long each micro-benchmark runs: warm-up calls, then the median of ``timed`` calls on ``clock``."""

    warmup: int
    timed: int
    clock: Callable[[], float] = time.perf_counter

    @classmethod
    def for_mode(cls, quick: bool, threads: int) -> Repeats:
        """With one thread the clock is that thread's CPU time: it leaves out the time other processes
        hold the core, so timings on a shared machine stay steady.  More threads need wall time."""
        clock = time.thread_time if threads == 1 else time.perf_counter
        return cls(warmup=2, timed=5, clock=clock) if quick else cls(warmup=3, timed=15, clock=clock)


def median_seconds(run: Callable[[], object], repeats: Repeats) -> float:
    """Median time of ``run()`` after warm-up: robust to the odd preempted call."""
    return median_seconds_in_turn([run], repeats)[0]


def median_seconds_in_turn(runs: Sequence[Callable[[], object]], repeats: Repeats) -> list[float]:
    """Median time of each of ``runs``, called in turn, one call per run per round.

    A network runs each op once between different ops, so its caches, branch
    predictors and kernel dispatch never warm up on one shape; timing each
    sample between all the others measures it in that state.  Back to back,
    the samples under 100 us ran 1.5 to 5 times faster than in turn on the
    development VM (2 threads).
    """
    for _ in range(repeats.warmup):
        for run in runs:
            run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats.timed):
        for run, samples in zip(runs, times):
            start = repeats.clock()
            run()
            samples.append(repeats.clock() - start)
    return [statistics.median(samples) for samples in times]


def calibrate(quick: bool = False, threads: int | None = None) -> CpuConfig:
    """Micro-benchmark this host with ``threads`` PyTorch threads (default: PyTorch's) and fit a config.

    Imports torch.  The config's ``cores`` is the thread count: on a shared
    machine, fewer threads than cores give steadier numbers.
    """
    import torch

    from attentionlite.simulator import cpu_samples  # imports torch and the model layers

    with torch_threads(threads) as used, torch.inference_mode():
        repeats = Repeats.for_mode(quick, used)
        cpu = measure_bandwidths(host_skeleton(used), repeats)
        samples = cpu_samples.kind_samples(quick)
        measured = median_seconds_in_turn([sample.run for sample in samples], repeats)
    return fit_kind_factors(cpu, [sample.op for sample in samples], measured)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run PyTorch with ``threads`` intra-op threads (None: as it is), restoring the count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- the machine's shape


def host_skeleton(threads: int) -> CpuConfig:
    """What the OS says about this host, with neutral factors still to be fitted."""
    lanes = _simd_lanes(_cpu_flags())
    return CpuConfig(
        name="host",
        description=f"this host ({_model_name()}), calibrated with {threads} PyTorch threads",
        sources=["attentionlite calibrate: OS cache sizes, PyTorch micro-benchmarks, scipy least-squares fit"],
        cores=threads,
        frequency_ghz=_frequency_ghz(),
        simd_lanes=lanes,
        fma_units=ASSUMED_FMA_UNITS,
        register_kib=32 * lanes * 4 / 1024,  # 32 vector registers (AVX-512; AVX2 has 16, a minor error)
        word_bytes=4,
        caches=tuple(_os_caches()),
        dram_bandwidth_gb_s=10.0,
        efficiency={kind: 0.5 for kind in OpKind},
        overhead_us={kind: 5.0 for kind in OpKind},
    )


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.is_file() else ""


def _cpu_flags() -> set[str]:
    match = re.search(r"^flags\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def _model_name() -> str:
    match = re.search(r"^model name\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    return match.group(1).strip() if match else "unknown CPU"


def _frequency_ghz() -> float:
    speeds = [float(mhz) for mhz in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _cpuinfo(), re.MULTILINE)]
    return max(speeds) / 1000 if speeds else FALLBACK_FREQUENCY_GHZ


def _simd_lanes(flags: set[str]) -> int:
    """fp32 lanes of the widest vector unit PyTorch's kernels use."""
    return 16 if "avx512f" in flags else 8 if "avx2" in flags else 4


def _os_caches() -> list[CacheLevel]:
    """Data and unified caches of cpu0 from sysfs, innermost first; bandwidths are placeholders."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    levels = []
    for index in sorted(root.glob("index*")):
        if (index / "type").read_text().strip() == "Instruction":
            continue
        shared = len(_cpu_list((index / "shared_cpu_list").read_text())) > 1
        size = _size_kib((index / "size").read_text())
        levels.append(CacheLevel(f"L{(index / 'level').read_text().strip()}", size, 50.0, shared))
    return levels or [CacheLevel("L1", 32.0, 50.0, False), CacheLevel("L2", 1024.0, 50.0, False)]


def _cpu_list(text: str) -> list[int]:
    cpus = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus += list(range(int(first), int(last or first) + 1))
    return cpus


def _size_kib(text: str) -> float:
    value = text.strip()
    return float(value[:-1]) * 1024 if value.endswith("M") else float(value.rstrip("K"))


# --------------------------------------------------------------------------- bandwidths


def measure_bandwidths(cpu: CpuConfig, repeats: Repeats) -> CpuConfig:
    """Time ``sum()`` over tensors sized inside each level and far beyond the last (DRAM).

    The last level's capacity is measured too: on a shared or virtual machine
    the OS reports the whole chip's cache, of which this host sees only a part.
    """
    import torch

    launch = median_seconds(lambda: torch.ones(16).sum(), repeats)
    dram_bytes = max(256 * 2**20, 2 * _total_kib(cpu, cpu.caches[-1]) * 1024)
    dram = _read_bandwidth(int(dram_bytes), launch, replace(repeats, timed=max(3, repeats.timed // 3)))
    caches = [replace(cpu.caches[0], bandwidth_gb_s=_l1_bandwidth_gb_s(cpu))]
    for inner, level in zip(cpu.caches, cpu.caches[1:]):
        last = level is cpu.caches[-1]
        sweep = _sweep(cpu, inner, level, launch, repeats, whole=last)
        caches.append(_level_from_sweep(cpu, level, sweep, dram, measure_size=last))
    return replace(cpu, caches=tuple(caches), dram_bandwidth_gb_s=round(dram / 1e9, 2))


def _l1_bandwidth_gb_s(cpu: CpuConfig) -> float:
    """Two vector loads per cycle per core (every x86 core since Haswell)."""
    return 2 * cpu.simd_lanes * 4 * cpu.frequency_ghz


def _total_kib(cpu: CpuConfig, level: CacheLevel) -> float:
    return level.size_kib * (1 if level.shared else cpu.cores)


def _sweep(cpu: CpuConfig, inner: CacheLevel, level: CacheLevel, launch: float, repeats: Repeats, whole: bool) -> dict:
    """Read bandwidth (bytes/s) at sizes from twice the inner level to half this one (all of it if ``whole``)."""
    low, high = 2 * _total_kib(cpu, inner), _total_kib(cpu, level) / (1 if whole else 2)
    sizes = np.geomspace(low, max(low, high), 6 if whole else 3) * 1024
    return {float(size): _read_bandwidth(int(size), launch, repeats) for size in sizes}


def _level_from_sweep(cpu: CpuConfig, level: CacheLevel, sweep: dict, dram: float, measure_size: bool) -> CacheLevel:
    """The best rate is the level's bandwidth; with ``measure_size`` it holds the largest size read well above DRAM speed."""
    best = max(sweep.values())
    threshold = math.sqrt(best * dram)
    held = max([size for size, rate in sweep.items() if rate >= threshold], default=min(sweep))
    per_core = 1 if level.shared else cpu.cores
    size_kib = min(level.size_kib, held / 1024 / per_core) if measure_size else level.size_kib
    return replace(level, size_kib=round(size_kib, 1), bandwidth_gb_s=round(best / 1e9 / per_core, 2))


def _read_bandwidth(nbytes: int, launch: float, repeats: Repeats) -> float:
    import torch

    tensor = torch.ones(max(1, nbytes // 4))
    seconds = median_seconds(tensor.sum, repeats)
    return tensor.numel() * 4 / max(seconds - launch, seconds / 10)


# --------------------------------------------------------------------------- the fit


def fit_kind_factors(cpu: CpuConfig, ops: Sequence[Op], measured: Sequence[float]) -> CpuConfig:
    """Fit each kind's efficiency and per-launch overhead to measured op times; kinds not sampled keep theirs.

    The ops were timed in turn, as one network: their weights live where all of them fit together,
    as a model's do (:func:`~attentionlite.simulator.cpu.predict`).
    """
    efficiency, overhead = dict(cpu.efficiency), dict(cpu.overhead_us)
    weight_bytes = sum(op.weight_bytes(cpu.word_bytes) for op in ops)
    for kind in OpKind:
        pairs = [(op, seconds) for op, seconds in zip(ops, measured) if op.kind is kind]
        if pairs:
            efficiency[kind], overhead[kind] = _fit_one_kind(cpu, pairs, weight_bytes)
    return replace(cpu, efficiency=efficiency, overhead_us=overhead)


def _fit_one_kind(cpu: CpuConfig, pairs: list[tuple[Op, float]], weight_bytes: float) -> tuple[float, float]:
    """Robust least squares on log(predicted / measured), so every shape counts alike, small or large.

    The max() in the roofline makes the cost non-convex, so the fit starts from
    a grid of efficiencies and overheads and keeps the best end point.
    """
    from scipy.optimize import least_squares  # only calibration pays for scipy's import

    residuals = _log_residuals(cpu, pairs, weight_bytes)
    bounds = ([EFFICIENCY_BOUNDS[0], OVERHEAD_BOUNDS_US[0]], [EFFICIENCY_BOUNDS[1], OVERHEAD_BOUNDS_US[1]])
    per_launch_us = min(seconds / kernel_launches(op) for op, seconds in pairs) * 1e6
    starts = [(e, o) for e in np.geomspace(2e-3, 0.5, 6) for o in (0.0, 0.5 * min(per_launch_us, OVERHEAD_BOUNDS_US[1]))]
    fits = [least_squares(residuals, np.array(start), bounds=bounds, loss="soft_l1", f_scale=0.3) for start in starts]
    best = min(fits, key=lambda fit: fit.cost)
    return round(float(best.x[0]), 5), round(float(best.x[1]), 3)


def _log_residuals(cpu: CpuConfig, pairs: list[tuple[Op, float]], weight_bytes: float) -> Callable[[np.ndarray], np.ndarray]:
    """Residuals of log time for (efficiency, overhead in us) of one kind, all else from ``cpu``."""
    unit = replace(cpu, efficiency={kind: 1.0 for kind in OpKind})
    compute = np.array([compute_seconds(op, unit) for op, _ in pairs])
    memory = np.array([_memory_seconds(op, unit, weight_bytes) for op, _ in pairs])
    launches = np.array([kernel_launches(op) for op, _ in pairs])
    measured = np.array([seconds for _, seconds in pairs])

    def residuals(params: np.ndarray) -> np.ndarray:
        efficiency, overhead_us = params
        return np.log(overhead_us * 1e-6 * launches + np.maximum(compute / efficiency, memory)) - np.log(measured)

    return residuals


def _memory_seconds(op: Op, cpu: CpuConfig, weight_bytes: float) -> float:
    """The slowest memory level's time for ``op`` in a network of ``weight_bytes`` of weights."""
    supplied = bytes_per_level(op, cpu, weight_bytes)
    return max(level_seconds(supplied, cpu).values())
