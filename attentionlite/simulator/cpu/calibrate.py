"""Calibrate a :class:`~attentionlite.simulator.cpu.CpuConfig` on this host.

Three steps, timed with the requested number of PyTorch threads (the cores the
config then has; with one thread, on its CPU-time clock, see
:class:`~attentionlite.simulator.cpu.measure.Repeats`):

1. the machine's shape from the OS: cores, frequency, SIMD lanes, cache sizes;
2. bandwidths: ``sum()`` over tensors sized for each cache level and for DRAM
   (median of repeats after warm-up), less the launch overhead of a tiny
   ``sum()``.  L1 cannot be timed through PyTorch's dispatch, so it keeps the
   architectural two vector loads per cycle;
3. per op kind (convolutions wider than 1x1 apart from the rest, see
   :func:`~attentionlite.simulator.cpu.roofline.factor_key`), the efficiency and
   per-launch overhead that best fit the measured times of that kind's ops
   inside small calibration networks (:func:`calibration_networks`), timed
   unit by unit as ``attentionlite cpu --measure`` times a model
   (:func:`~attentionlite.simulator.cpu.measure.time_units`), by robust least
   squares on log time (scipy).  An op's cost inside a network depends on what
   ran before it: at batch 1 on the development VM, a batch norm right after a
   convolution took twice as long as back to back, and isolated
   micro-benchmarks, even chained, missed the models' per-module times by a
   median 36-60%.

The fit is pure (:func:`fit_kind_factors`), so it is tested without timing.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attentionlite.model.nets.resnet import resnet
from attentionlite.model.nets.students import sasa_resnet
from attentionlite.model.nets.vit import VisionTransformer
from attentionlite.simulator.cpu.config import FACTOR_KEYS, CacheLevel, ComputeConfig, CpuConfig, DramConfig
from attentionlite.simulator.cpu.measure import Repeats, UnitTimes, median_seconds, time_units, torch_threads
from attentionlite.simulator.cpu.roofline import (
    bytes_per_level,
    compute_seconds,
    factor_key,
    kernel_launches,
    level_seconds,
)
from attentionlite.simulator.graph.ops import Op
from attentionlite.simulator.graph.tracing import trace_model

ASSUMED_FMA_UNITS = 2  # two 512-bit FMA pipes on Xeon server cores since Skylake-SP; not visible to the OS
FALLBACK_FREQUENCY_GHZ = 2.0  # when /proc/cpuinfo gives none (the fitted efficiency absorbs the error)
FP32_BYTES = 4  # PyTorch runs the models in fp32
EFFICIENCY_BOUNDS = (1e-3, 1.0)
# An op's fixed cost in a network: dispatch, and at batch 1 the refill of caches the previous op
# evicted; a convolution paid over 300 us of it on the development VM.
OVERHEAD_BOUNDS_US = (0.0, 1000.0)
CALIBRATION_IMAGE_SIZE = 32  # the CIFAR size the benchmark models run at
CALIBRATION_CLASSES = 10  # a CIFAR-10 head
CALIBRATION_WIDTHS = (0.75, 1.25)
CALIBRATION_BATCHES = (1, 8, 32)
BLOCKS_PER_STAGE = (2, 2, 2, 2)
VIT_WIDTH, VIT_HEADS, VIT_DEPTH = 192, 3, 2  # ViT-Ti's width and heads, two blocks
# How a calibrated config was made; it also keys the report's cached calibration, so a new method
# is a new cache entry.
CALIBRATION_SOURCE = (
    "attentionlite calibrate: OS cache sizes, sum() bandwidths, first-touch rate of fresh outputs, per-kind "
    "factors fitted (scipy least squares) to the op times of small bottleneck networks and a two-block ViT "
    "timed unit by unit"
)


def calibrate(quick: bool = False, threads: int | None = None, progress: bool = False) -> CpuConfig:
    """Time this host with ``threads`` PyTorch threads (default: PyTorch's) and fit a config.

    Imports torch.  The config's ``cores`` is the thread count: on a shared
    machine, fewer threads than cores give steadier numbers.  ``progress``
    shows a bar over the calibration networks.
    """
    with torch_threads(threads) as used:
        cpu = measure_bandwidths(host_skeleton(used), Repeats.for_mode(quick, used))
        units = time_calibration_networks(quick, used, progress)
    return fit_kind_factors(cpu, units)


def time_calibration_networks(quick: bool, threads: int, progress: bool = False) -> list[TimedUnit]:
    """The ops of every :func:`calibration_networks` network, grouped by the unit that timed them."""
    from tqdm import tqdm

    networks = tqdm(calibration_networks(quick), desc="calibrating", unit="network", disable=not progress)
    return [unit for network in networks for unit in time_network(network, quick, threads)]


def time_network(network: CalibrationNetwork, quick: bool, threads: int) -> list[TimedUnit]:
    """One calibration network's ops, grouped by the unit that timed them, with ``threads`` PyTorch threads."""
    model = network.build().eval()
    ops = trace_model(model, image_size=CALIBRATION_IMAGE_SIZE, batch=network.batch).ops_in_order()
    example = torch.zeros(network.batch, 3, CALIBRATION_IMAGE_SIZE, CALIBRATION_IMAGE_SIZE)
    with torch_threads(threads) as used, torch.inference_mode():
        # Large batches take seconds a pass: the quick repeats keep calibration within a minute.
        repeats = Repeats.for_mode(quick or network.batch > 1, used)
        return timed_units(ops, time_units(model, example, [op.source for op in ops], repeats))


@dataclass(frozen=True)
class CalibrationNetwork:
    """A network to time for calibration, built on demand (a width-1.25 SASA net is not small)."""

    name: str
    build: Callable[[], nn.Module]
    batch: int


def calibration_networks(quick: bool) -> list[CalibrationNetwork]:
    """Two bottleneck blocks per stage (a downsampling one, and one that runs as the deeper blocks
    do: stride 1, identity shortcut), with convolutions and with attention (stem and blocks), and a
    two-block ViT (patch embedding, layer norms, fused attention, GELU MLPs), at widths either side
    of the benchmark models' (ResNet width 1, ViT-Ti's 192), so that calibration shares no layer
    shape with them, and at batch 1, 8 and 32; ``quick`` keeps the narrower width and batches 1 and 8."""
    networks = []
    for width in CALIBRATION_WIDTHS[:1] if quick else CALIBRATION_WIDTHS:
        for batch in CALIBRATION_BATCHES[:2] if quick else CALIBRATION_BATCHES:
            cnn = functools.partial(resnet, BLOCKS_PER_STAGE, CALIBRATION_CLASSES, width)
            sasa = functools.partial(sasa_resnet, BLOCKS_PER_STAGE, CALIBRATION_CLASSES, True, width)
            embed = round(VIT_WIDTH * width / VIT_HEADS) * VIT_HEADS
            vit = functools.partial(VisionTransformer, CALIBRATION_CLASSES, CALIBRATION_IMAGE_SIZE, embed, VIT_DEPTH,
                                    VIT_HEADS)
            networks += [CalibrationNetwork(f"cnn-w{width}", cnn, batch), CalibrationNetwork(f"sasa-w{width}", sasa, batch),
                         CalibrationNetwork(f"vit-w{width}", vit, batch)]
    return networks


@dataclass(frozen=True)
class TimedUnit:
    """Ops timed together (one module, or one timed function in it) and the network's weight bytes."""

    ops: tuple[Op, ...]
    seconds: float
    model_weight_bytes: float


def timed_units(ops: Sequence[Op], times: UnitTimes) -> list[TimedUnit]:
    """``ops`` of one network grouped by the unit that timed them, with the unit's measured time."""
    weights = sum(op.weight_bytes(FP32_BYTES) for op in ops)
    groups = times.group(ops, lambda op: (op.source, op.kind.value))
    return [TimedUnit(tuple(group), times.seconds[unit], weights) for unit, group in groups.items()]


# --------------------------------------------------------------------------- the machine's shape


def host_skeleton(threads: int) -> CpuConfig:
    """What the OS says about this host, with neutral factors still to be fitted."""
    lanes = _simd_lanes(_cpu_flags())
    return CpuConfig(
        name="host",
        description=f"this host ({_model_name()}), calibrated with {threads} PyTorch threads",
        sources=(CALIBRATION_SOURCE,),
        compute=ComputeConfig(
            cores=threads,
            frequency_ghz=_frequency_ghz(),
            simd_lanes=lanes,
            fma_units=ASSUMED_FMA_UNITS,
            register_kib=32 * lanes * 4 / 1024,  # 32 vector registers (AVX-512; AVX2 has 16, a minor error)
            word_bytes=FP32_BYTES,
        ),
        cache=tuple(_os_caches()),
        dram=DramConfig(bandwidth_gb_s=10.0),
        efficiency={key: 0.5 for key in FACTOR_KEYS},
        overhead_us={key: 5.0 for key in FACTOR_KEYS},
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
    launch = median_seconds(lambda: torch.ones(16).sum(), repeats)
    dram_bytes = max(256 * 2**20, 2 * _total_kib(cpu, cpu.cache[-1]) * 1024)
    dram = _read_bandwidth(int(dram_bytes), launch, replace(repeats, timed=max(3, repeats.timed // 3)))
    caches = [replace(cpu.cache[0], bandwidth_gb_s=_l1_bandwidth_gb_s(cpu))]
    for inner, level in zip(cpu.cache, cpu.cache[1:]):
        last = level is cpu.cache[-1]
        sweep = _sweep(cpu, inner, level, launch, repeats, whole=last)
        caches.append(_level_from_sweep(cpu, level, sweep, dram, measure_size=last))
    return replace(cpu, cache=tuple(caches), dram=DramConfig(bandwidth_gb_s=round(dram / 1e9, 2),
                                                             first_touch_gb_s=round(_first_touch(repeats) / 1e9, 2)))


FIRST_TOUCH_BYTES = 64 * 2**20  # past glibc's largest mmap threshold (32 MiB), so mapped fresh each time


def _first_touch(repeats: Repeats) -> float:
    """Bytes/s of the page faults of a fresh allocation's first write: ``empty().fill_()`` less
    ``fill_()`` of memory already mapped, 64 MiB each."""
    words = FIRST_TOUCH_BYTES // 4
    mapped = torch.empty(words)
    fresh = median_seconds(lambda: torch.empty(words).fill_(1.0), repeats)
    reused = median_seconds(lambda: mapped.fill_(1.0), repeats)
    return FIRST_TOUCH_BYTES / max(fresh - reused, fresh / 100)


def _l1_bandwidth_gb_s(cpu: CpuConfig) -> float:
    """Two vector loads per cycle per core (every x86 core since Haswell)."""
    return 2 * cpu.compute.simd_lanes * 4 * cpu.compute.frequency_ghz


def _total_kib(cpu: CpuConfig, level: CacheLevel) -> float:
    return level.size_kib * (1 if level.shared else cpu.compute.cores)


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
    per_core = 1 if level.shared else cpu.compute.cores
    size_kib = min(level.size_kib, held / 1024 / per_core) if measure_size else level.size_kib
    return replace(level, size_kib=round(size_kib, 1), bandwidth_gb_s=round(best / 1e9 / per_core, 2))


def _read_bandwidth(nbytes: int, launch: float, repeats: Repeats) -> float:
    tensor = torch.ones(max(1, nbytes // 4))
    seconds = median_seconds(tensor.sum, repeats)
    return tensor.numel() * 4 / max(seconds - launch, seconds / 10)


# --------------------------------------------------------------------------- the fit


def fit_kind_factors(cpu: CpuConfig, units: Sequence[TimedUnit]) -> CpuConfig:
    """Fit each :data:`~attentionlite.simulator.cpu.config.FACTOR_KEYS` entry's efficiency and per-launch
    overhead to the measured times of the units whose ops it alone prices; entries not timed keep theirs.

    Each unit's ops are predicted as :func:`~attentionlite.simulator.cpu.roofline.predict` does in their
    network: their weights live where all the network's weights fit.
    """
    efficiency, overhead = dict(cpu.efficiency), dict(cpu.overhead_us)
    for key in FACTOR_KEYS:
        timed = [unit for unit in units if unit.seconds > 0 and {factor_key(op) for op in unit.ops} == {key}]
        if timed:
            efficiency[key], overhead[key] = _fit_one_kind(cpu, timed)
    return replace(cpu, efficiency=efficiency, overhead_us=overhead)


def _fit_one_kind(cpu: CpuConfig, units: list[TimedUnit]) -> tuple[float, float]:
    """Robust least squares on log(predicted / measured), so every unit counts alike, small or large.

    The max() in the roofline makes the cost non-convex, so the fit starts from
    a grid of efficiencies and overheads and keeps the best end point.
    """
    from scipy.optimize import least_squares  # only calibration pays for scipy's import

    residuals = _log_residuals(cpu, units)
    bounds = ([EFFICIENCY_BOUNDS[0], OVERHEAD_BOUNDS_US[0]], [EFFICIENCY_BOUNDS[1], OVERHEAD_BOUNDS_US[1]])
    per_launch_us = min(unit.seconds / sum(kernel_launches(op) for op in unit.ops) for unit in units) * 1e6
    starts = [(e, o) for e in np.geomspace(2e-3, 0.5, 6) for o in (0.0, 0.5 * min(per_launch_us, OVERHEAD_BOUNDS_US[1]))]
    fits = [least_squares(residuals, np.array(start), bounds=bounds, loss="soft_l1", f_scale=0.3) for start in starts]
    best = min(fits, key=lambda fit: fit.cost)
    return round(float(best.x[0]), 5), round(float(best.x[1]), 3)


def _log_residuals(cpu: CpuConfig, units: list[TimedUnit]) -> Callable[[np.ndarray], np.ndarray]:
    """Residuals of log time for (efficiency, overhead in us) of one kind, all else from ``cpu``."""
    unit_cpu = replace(cpu, efficiency={key: 1.0 for key in FACTOR_KEYS})
    ops = [(index, op, unit.model_weight_bytes) for index, unit in enumerate(units) for op in unit.ops]
    owner = np.array([index for index, _, _ in ops])
    compute = np.array([compute_seconds(op, unit_cpu) for _, op, _ in ops])
    memory = np.array([_memory_seconds(op, unit_cpu, weights) for _, op, weights in ops])
    launches = np.array([kernel_launches(op) for _, op, _ in ops])
    measured = np.array([unit.seconds for unit in units])

    def residuals(params: np.ndarray) -> np.ndarray:
        efficiency, overhead_us = params
        per_op = overhead_us * 1e-6 * launches + np.maximum(compute / efficiency, memory)
        return np.log(np.bincount(owner, weights=per_op, minlength=len(units))) - np.log(measured)

    return residuals


def _memory_seconds(op: Op, cpu: CpuConfig, weight_bytes: float) -> float:
    """The slowest memory level's time for ``op`` in a network of ``weight_bytes`` of weights."""
    supplied = bytes_per_level(op, cpu, weight_bytes)
    return max(level_seconds(supplied, cpu).values())
