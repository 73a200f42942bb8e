"""The accelerator's description: frozen dataclasses loaded from TOML and validated at the door.

A parallel attention accelerator is ``cores`` identical cores on one shared
DRAM channel.  Each core has an R x C systolic MAC array with a dataflow
(``os``, ``ws``, ``is``), a vector unit of L lanes, and double-buffered SRAM
for inputs, weights and outputs.  The TOML file mirrors the dataclasses: a few
top-level keys and one table per unit (``[array]``, ``[vector]``, ``[sram]``,
``[dram]``, ``[sparsity]``, ``[attention]``, ``[energy]``); the last three
may be left out and take the defaults below.

Validation follows ZigZag's habit of checking a config against a schema before
building objects: the schema here *is* the dataclasses (field types plus a
``minimum`` or ``choices`` in each field's metadata), so an unknown key, a
missing key, a wrong type, a zero or negative size, an unknown choice, or a
buffer too small for one array tile is one :class:`InputError` that names the
file and the dotted key.  Presets ship in ``simulator/presets/*.toml``.
"""

import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

from attentionlite.errors import InputError

PRESET_DIR = Path(__file__).resolve().parent / "presets"
DATAFLOWS = ("os", "ws", "is")
SPARSITY_MODES = ("none", "skip", "columns")
WINDOW_MAPPINGS = ("blocked", "gathered")


def _positive(default: Any = MISSING) -> Any:
    return field(default=default, metadata={"minimum": "positive"})


def _non_negative(default: Any = MISSING) -> Any:
    return field(default=default, metadata={"minimum": "non_negative"})


def _one_of(choices: tuple[str, ...], default: Any = MISSING) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass(frozen=True)
class ArrayConfig:
    """The systolic MAC array of one core."""

    rows: int = _positive()
    cols: int = _positive()
    dataflow: str = _one_of(DATAFLOWS)


@dataclass(frozen=True)
class VectorConfig:
    """The vector unit: softmax, normalisation, pooling and element-wise work."""

    lanes: int = _positive()
    exp_cycles: int = _positive(4)  # an exp costs this many lane-cycles (max, sum, divide cost one each)


@dataclass(frozen=True)
class SramConfig:
    """Per-core SRAM per operand in KiB; each is split into two halves (double buffering)."""

    input_kib: float = _positive()
    weight_kib: float = _positive()
    output_kib: float = _positive()


@dataclass(frozen=True)
class DramConfig:
    """The DRAM channel all cores share."""

    bandwidth_gb_s: float = _positive()
    latency_ns: float = _non_negative()


@dataclass(frozen=True)
class SparsityConfig:
    """How the hardware exploits weight sparsity.

    ``skip`` skips blocks of ``granularity`` weights that are all zero and pays
    ``index_bits`` of metadata per stored block; ``columns`` runs a column-pruned
    layer as the smaller dense layer it compacts into.
    """

    mode: str = _one_of(SPARSITY_MODES, "none")
    granularity: int = _positive(1)
    index_bits: int = _non_negative(4)


@dataclass(frozen=True)
class AttentionConfig:
    """How local-attention windows map onto the array (see attention.py)."""

    window_mapping: str = _one_of(WINDOW_MAPPINGS, "blocked")
    block: int = _positive(4)  # query block edge for blocked windows (block x block queries share a halo)


@dataclass(frozen=True)
class EnergyTable:
    """Energy per event in pJ; defaults are 45 nm figures for 8-bit words.

    Horowitz, "Computing's energy problem", ISSCC 2014: 8-bit integer multiply
    0.2 pJ + add 0.03 pJ; an 8 KiB SRAM read of 64 bits ~10 pJ (~1.25 pJ/byte);
    DRAM 1.3-2.6 nJ per 64 bits (160 pJ/byte at the low end); a 32-bit float
    add 0.9 pJ (the vector unit's softmax arithmetic).  The SRAM:MAC ratio of
    ~6x matches Eyeriss's normalised costs (Chen et al., ISCA 2016: global
    buffer 6x, DRAM 200x a MAC).  Leakage per core is an assumption (~5% of a
    busy core's dynamic power at these sizes); override it in the TOML.
    """

    mac_pj: float = _non_negative(0.23)
    sram_pj_per_byte: float = _non_negative(1.25)
    dram_pj_per_byte: float = _non_negative(160.0)
    vector_op_pj: float = _non_negative(0.9)
    leakage_mw_per_core: float = _non_negative(10.0)


@dataclass(frozen=True)
class HardwareConfig:
    """One accelerator design point, fully resolved."""

    name: str
    description: str
    cores: int = _positive()
    clock_mhz: float = _positive()
    word_bytes: int = _positive()
    array: ArrayConfig = MISSING
    vector: VectorConfig = MISSING
    sram: SramConfig = MISSING
    dram: DramConfig = MISSING
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    energy: EnergyTable = field(default_factory=EnergyTable)

    @property
    def array_rows(self) -> int:
        return self.array.rows

    @property
    def array_cols(self) -> int:
        return self.array.cols

    @property
    def pes(self) -> int:
        """MAC units in one core's array."""
        return self.array.rows * self.array.cols

    @property
    def dram_bytes_per_cycle(self) -> float:
        """DRAM bandwidth in bytes per accelerator clock cycle."""
        return self.dram.bandwidth_gb_s * 1e3 / self.clock_mhz

    @property
    def dram_latency_cycles(self) -> int:
        return math.ceil(self.dram.latency_ns * self.clock_mhz / 1e3)

    def half_buffer_bytes(self, operand: str) -> int:
        """Bytes of one half of an operand's double buffer ('input', 'weight' or 'output')."""
        return int(getattr(self.sram, f"{operand}_kib") * 1024) // 2

    def to_dict(self) -> dict:
        """The resolved config as plain data (what results store beside their numbers)."""
        return asdict(self)


# ----------------------------------------------------------------------------- loading


def list_presets() -> list[str]:
    """Names of the accelerator presets shipped with the package, sorted (CPU presets, ``cpu-*``, excluded)."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml") if not path.stem.startswith("cpu-"))


def parse_array(text: str) -> tuple[int, int]:
    """``"32"``, ``"32x32"`` or ``"64x8"`` as (rows, columns)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise InputError(f"array size {text!r} is not understood; expected N or RxC with positive integers")
    return int(parts[0]), int(parts[-1])


def describe(config: HardwareConfig) -> str:
    """The resolved config as TOML-like text, one table per unit, for ``attentionlite hardware show``."""
    data = config.to_dict()
    lines = [f"{key} = {_toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for section, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"] + [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def load_hardware(name_or_path: str | Path, **overrides: Any) -> HardwareConfig:
    """A preset name or a TOML path, with knob overrides, as a validated :class:`HardwareConfig`.

    Overrides name a field by its dotted path (``"dram.bandwidth_gb_s"``), by its
    bare name when that is unique (``bandwidth_gb_s``, ``dataflow``, ``cores``),
    or one of the shortcuts ``array=(rows, cols)``, ``sparsity="skip"``,
    ``vector_lanes=..``; ``None`` values are ignored (unset CLI options).
    """
    path = _resolve_path(name_or_path)
    table = _read_toml(path)
    for key, value in overrides.items():
        if value is not None:
            _apply_override(table, key, value, path)
    config = _build(HardwareConfig, table, path, prefix="")
    _check_buffers_hold_a_tile(config, path)
    return config


def _resolve_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: hardware file not found; expected a TOML file or a preset name")
        return path
    preset = PRESET_DIR / f"{name_or_path}.toml"
    if str(name_or_path) not in list_presets():
        raise InputError(f"unknown hardware preset {str(name_or_path)!r}; expected one of {', '.join(list_presets())} or a .toml path")
    return preset


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None


# ----------------------------------------------------------------------------- overrides

_SHORTCUTS = {"sparsity": "sparsity.mode", "vector_lanes": "vector.lanes"}


def _leaf_paths(cls: type = HardwareConfig, prefix: str = "") -> list[str]:
    """Dotted paths of every scalar field of the config."""
    paths = []
    for item in fields(cls):
        if is_dataclass(item.type):
            paths += _leaf_paths(item.type, f"{prefix}{item.name}.")
        else:
            paths.append(f"{prefix}{item.name}")
    return paths


def _override_path(key: str, path: Path) -> str:
    key = _SHORTCUTS.get(key, key).replace("__", ".")
    leaves = _leaf_paths()
    matches = [leaf for leaf in leaves if leaf == key or leaf.endswith(f".{key}")]
    if len(matches) != 1:
        raise InputError(f"{path}: unknown hardware override {key!r}; expected one of array, {', '.join(leaves)}")
    return matches[0]


def _apply_override(table: dict, key: str, value: Any, path: Path) -> None:
    if key == "array":
        rows, cols = parse_array(value) if isinstance(value, str) else value
        _apply_override(table, "array.rows", rows, path)
        _apply_override(table, "array.cols", cols, path)
        return
    *sections, leaf = _override_path(key, path).split(".")
    for section in sections:
        table = table.setdefault(section, {})
    table[leaf] = value


# ----------------------------------------------------------------------------- validation

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _build(cls: type, table: Any, path: Path, prefix: str) -> Any:
    """Instantiate ``cls`` from a TOML table, checking every key against the dataclass fields."""
    if not isinstance(table, Mapping):
        raise InputError(f"{path}: '{prefix.rstrip('.')}' must be a table")
    known = {item.name: item for item in fields(cls)}
    for key in table:
        if key not in known:
            raise InputError(f"{path}: unknown key '{prefix}{key}'; expected one of {', '.join(known)}")
    values = {}
    for name, item in known.items():
        if name in table:
            values[name] = _checked_value(item, table[name], path, f"{prefix}{name}")
        elif item.default is MISSING and item.default_factory is MISSING:
            raise InputError(f"{path}: missing key '{prefix}{name}'")
    return cls(**values)


def _checked_value(item: Any, value: Any, path: Path, key: str) -> Any:
    if is_dataclass(item.type):
        return _build(item.type, value, path, f"{key}.")
    typed = _typed(item.type, value, path, key)
    _check_minimum(item.metadata.get("minimum"), value, path, key)
    choices = item.metadata.get("choices")
    if choices and value not in choices:
        raise InputError(f"{path}: '{key}' is {value!r}; expected one of {', '.join(choices)}")
    return typed


def _typed(kind: type, value: Any, path: Path, key: str) -> Any:
    accepted = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise InputError(f"{path}: '{key}' is {value!r}; expected {_TYPE_NAMES[kind]}")
    return float(value) if kind is float else value


def _check_minimum(minimum: str | None, value: Any, path: Path, key: str) -> None:
    if minimum == "positive" and not value > 0:
        raise InputError(f"{path}: '{key}' is {value!r}; expected a positive value")
    if minimum == "non_negative" and not value >= 0:
        raise InputError(f"{path}: '{key}' is {value!r}; expected zero or more")


def _check_buffers_hold_a_tile(config: HardwareConfig, path: Path) -> None:
    """Each half buffer must hold one array-sized tile (R x C words) of its operand."""
    tile_bytes = config.pes * config.word_bytes
    for operand in ("input", "weight", "output"):
        if config.half_buffer_bytes(operand) < tile_bytes:
            raise InputError(
                f"{path}: 'sram.{operand}_kib' is {getattr(config.sram, f'{operand}_kib')}; expected at least "
                f"{2 * tile_bytes / 1024:g} KiB (two halves of one {config.array.rows}x{config.array.cols} tile)"
            )
