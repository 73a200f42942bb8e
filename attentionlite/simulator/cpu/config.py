"""A CPU's description: frozen dataclasses loaded from TOML and validated at the door.

The TOML file mirrors the dataclasses (:mod:`attentionlite.simulator.config`,
the schema machinery the accelerator configs use too): ``name``,
``description`` and ``sources`` at the top; ``[compute]`` (cores, frequency,
SIMD lanes, FMA units, register file, word size); one ``[[cache]]`` table per
cache level, innermost first; ``[dram]``; and the per-kind ``[efficiency]``
and ``[overhead_us]`` tables that ``attentionlite calibrate`` fits, one entry
per :data:`FACTOR_KEYS` key, every one present.  Presets named ``cpu-*.toml``
ship in ``simulator/cpu/presets/``; the ``cpu-`` prefix may be left out of a
preset's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from attentionlite.simulator.config import (
    NON_NEGATIVE,
    POSITIVE,
    Bounds,
    Keyed,
    as_table,
    build,
    read_toml,
    resolve_config_path,
    to_toml,
)
from attentionlite.simulator.graph.ops import OpKind

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
PRESET_PREFIX = "cpu-"
# The kernels PyTorch runs some ops with get factors of their own (roofline.factor_key): convolutions
# wider than 1x1, fused attention (scaled_dot_product_attention: logits, softmax and values in one
# kernel), layer norm, and GELU.
SPATIAL_CONV = "conv_spatial"
FUSED_ATTENTION = "attention"
LAYER_NORM = "layer_norm"
GELU = "gelu"
# Kinds that no calibration network has (products of activations outside a fused attention, other
# arithmetic, resampling): no factor is fitted for them, so the roofline refuses them rather than price
# them at another kernel's factors.
UNCALIBRATED_KINDS = frozenset({
    OpKind.ATTENTION_LOGITS, OpKind.ATTENTION_VALUES, OpKind.MATMUL, OpKind.ELEMENTWISE, OpKind.RESAMPLE,
})
FACTOR_KEYS = tuple(kind.value for kind in OpKind if kind not in UNCALIBRATED_KINDS) + (
    SPATIAL_CONV, FUSED_ATTENTION, LAYER_NORM, GELU,
)


@dataclass(frozen=True)
class ComputeConfig:
    """Cores x frequency x SIMD lanes x FMA units, the register file, the word size the model runs in."""

    cores: Annotated[int, POSITIVE]
    frequency_ghz: Annotated[float, POSITIVE]
    simd_lanes: Annotated[int, POSITIVE]  # fp32 lanes per vector register (AVX-512: 16)
    fma_units: Annotated[int, POSITIVE]  # vector FMA pipes per core
    register_kib: Annotated[float, POSITIVE]  # vector register file per core: the innermost tile
    word_bytes: Annotated[int, POSITIVE]


@dataclass(frozen=True)
class CacheLevel:
    """One cache level: capacity and the bandwidth at which it supplies the level inside it.

    A private level (``shared = false``) has ``size_kib`` and ``bandwidth_gb_s``
    per core; a shared level has them for the whole chip.
    """

    name: str
    size_kib: Annotated[float, POSITIVE]
    bandwidth_gb_s: Annotated[float, POSITIVE]
    shared: bool


@dataclass(frozen=True)
class DramConfig:
    """Main memory as the whole chip sees it.

    ``first_touch_gb_s``: the rate at which an op's freshly allocated output
    is first written, where the allocator maps it from the OS (page faults)
    because it is at least ``fresh_output_mib``, glibc's largest dynamic
    mmap threshold (32 MiB on 64-bit).  Smaller outputs reuse freed heap
    memory.  Measured by :mod:`attentionlite.simulator.cpu.calibrate`
    (``empty().fill_()`` against ``fill_()`` of 64 MiB); the default, 1e6
    GB/s, makes the term negligible (34 ns per 32 MiB) in a config without the measurement.
    """

    bandwidth_gb_s: Annotated[float, POSITIVE]
    first_touch_gb_s: Annotated[float, POSITIVE] = 1e6
    fresh_output_mib: Annotated[float, POSITIVE] = 32.0


@dataclass(frozen=True)
class CpuConfig:
    """A CPU: compute, caches (innermost first), DRAM, and the fitted per-kind factors."""

    name: str
    description: str
    sources: tuple[str, ...]
    compute: ComputeConfig
    cache: tuple[CacheLevel, ...]  # innermost first
    dram: DramConfig
    efficiency: Annotated[Mapping[str, float], Keyed(FACTOR_KEYS, Bounds("positive", maximum=1.0))]  # of peak
    overhead_us: Annotated[Mapping[str, float], Keyed(FACTOR_KEYS, NON_NEGATIVE)]  # fixed cost per kernel launch

    @property
    def peak_flops(self) -> float:
        """Peak fp32 FLOP/s: every FMA pipe of every core retires a vector FMA (2 FLOPs/lane) per cycle."""
        return 2 * self.peak_vector_ops

    @property
    def peak_vector_ops(self) -> float:
        """Peak element operations/s for vector work: one per lane per FMA pipe per cycle."""
        c = self.compute
        return c.cores * c.frequency_ghz * 1e9 * c.simd_lanes * c.fma_units

    def to_dict(self) -> dict:
        """The resolved config as plain data, in the TOML file's layout."""
        return as_table(self)

    def to_toml(self) -> str:
        """The config as a TOML file that :func:`load_cpu` reads back to an equal config."""
        return to_toml(self)


def list_cpu_presets() -> list[str]:
    """Names of the CPU presets shipped with the package, sorted."""
    return sorted(_presets())


def load_cpu(name_or_path: str | Path) -> CpuConfig:
    """A CPU preset name (``cpu-`` prefix optional) or a TOML path, as a validated :class:`CpuConfig`."""
    presets = _presets()
    named = Path(name_or_path)
    if not (named.suffix == ".toml" or named.exists()) and PRESET_PREFIX + str(name_or_path) in presets:
        name_or_path = PRESET_PREFIX + str(name_or_path)
    path = resolve_config_path(name_or_path, presets, "CPU")
    return build(CpuConfig, read_toml(path), str(path))


def _presets() -> dict[str, Path]:
    return {path.stem: path for path in PRESETS_DIR.glob(f"{PRESET_PREFIX}*.toml")}
