"""The CPU baseline: a roofline with a cache model, calibrated on the host.

Per op, the predicted time is a fixed overhead per kernel launch (PyTorch's
dispatch and threading cost, which dominates small ops at batch 1) plus the
largest of

* the compute time: the op's work over the peak rate at the efficiency for its
  kind (FLOP/s for GEMM-like and window kinds, element operations/s for vector
  kinds), and
* for each memory level, the bytes that level supplies over its bandwidth.

The bytes a level supplies come from a working-set model (Williams et al. 2009,
"Roofline"; the cache-aware form of Ilic et al. 2014): a tensor lives in the
smallest level that holds it (weights: the smallest that holds all the model's
weights, as in steady-state repeated inference) and passes through every level
inside that one.  Each level supplies what the level inside it cannot keep:
everything once when the working set fits, else one pass per tile of a blocked
GEMM (tiles of ``sqrt(capacity / 3)`` words).  Local attention is modelled as
PyTorch runs it (``attentionlite.model.layers``): one element-wise pass per
window position over the queries and a shifted view of the neighbours, so a
window op launches ``kernel**2`` kernels and re-streams its inputs that many
times unless they fit; its passes run over rows a map's width long, so maps
narrower than a vector leave SIMD lanes idle (:func:`lane_fill`).  Softmax,
pooling, normalisation and element-wise work stream their tensors once.
Outputs move twice their size (write-allocate), except those of in-place ops,
which overwrite lines just read.  Weights are dense: PyTorch runs masked
weights as dense tensors, and a compacted model is a smaller dense one.

The CPU config is a TOML file validated at the door (:func:`load_cpu`);
presets named ``cpu-*.toml`` ship in ``simulator/presets/``.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from attentionlite.errors import InputError
from attentionlite.files import json_text, rows_to_csv, write_text_folder
from attentionlite.provenance import provenance
from attentionlite.simulator.ops import Op, OpKind

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
PRESET_PREFIX = "cpu-"

GEMM_KINDS = frozenset({OpKind.CONV, OpKind.LINEAR, OpKind.PROJECTION})
WINDOW_KINDS = frozenset({OpKind.WINDOW_LOGITS, OpKind.WEIGHTED_SUM})
BOUNDS = ("compute", "cache", "dram")
# Convolutions with a kernel wider than 1x1 get factors of their own (:func:`factor_key`).
SPATIAL_CONV = "conv_spatial"
FACTOR_KEYS = tuple(kind.value for kind in OpKind) + (SPATIAL_CONV,)
# A store to a line not in cache first reads it (read for ownership), then writes it back: an output
# moves twice its size (as STREAM counts it).
WRITE_ALLOCATE = 2


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CacheLevel:
    """One cache level: capacity and the bandwidth at which it supplies the level inside it.

    A private level (``shared = false``) has ``size_kib`` and ``bandwidth_gb_s``
    per core; a shared level has them for the whole chip.
    """

    name: str
    size_kib: float
    bandwidth_gb_s: float
    shared: bool


@dataclass(frozen=True)
class CpuConfig:
    """A CPU: compute (cores x frequency x SIMD lanes x FMA units), caches, DRAM, per-kind factors."""

    name: str
    description: str
    sources: tuple[str, ...]
    cores: int
    frequency_ghz: float
    simd_lanes: int  # fp32 lanes per vector register (AVX-512: 16)
    fma_units: int  # vector FMA pipes per core
    register_kib: float  # vector register file per core: the innermost tile
    word_bytes: int
    caches: tuple[CacheLevel, ...]  # innermost first
    dram_bandwidth_gb_s: float
    efficiency: Mapping[str, float] = field(default_factory=dict)  # fraction of peak per FACTOR_KEYS entry
    overhead_us: Mapping[str, float] = field(default_factory=dict)  # fixed cost per kernel launch, likewise

    @property
    def peak_flops(self) -> float:
        """Peak fp32 FLOP/s: every FMA pipe of every core retires a vector FMA (2 FLOPs/lane) per cycle."""
        return self.cores * self.frequency_ghz * 1e9 * self.simd_lanes * self.fma_units * 2

    @property
    def peak_vector_ops(self) -> float:
        """Peak element operations/s for vector work: one per lane per FMA pipe per cycle."""
        return self.cores * self.frequency_ghz * 1e9 * self.simd_lanes * self.fma_units

    def to_dict(self) -> dict:
        """The resolved config as plain data, in the TOML file's layout."""
        return {
            "name": self.name,
            "description": self.description,
            "sources": list(self.sources),
            "compute": {
                "cores": self.cores,
                "frequency_ghz": self.frequency_ghz,
                "simd_lanes": self.simd_lanes,
                "fma_units": self.fma_units,
                "register_kib": self.register_kib,
                "word_bytes": self.word_bytes,
            },
            "cache": [asdict(level) for level in self.caches],
            "dram": {"bandwidth_gb_s": self.dram_bandwidth_gb_s},
            "efficiency": {key: self.efficiency[key] for key in FACTOR_KEYS},
            "overhead_us": {key: self.overhead_us[key] for key in FACTOR_KEYS},
        }

    def to_toml(self) -> str:
        """The config as a TOML file that :func:`load_cpu` reads back to an equal config."""
        data = self.to_dict()
        lines = [f"{key} = {_toml_value(data[key])}" for key in ("name", "description", "sources")]
        for table in ("compute", "dram", "efficiency", "overhead_us"):
            lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in data[table].items()]
        for level in data["cache"]:
            lines += ["", "[[cache]]"] + [f"{k} = {_toml_value(v)}" for k, v in level.items()]
        return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


# Schema: key -> (type, whether it must be > 0).  Floats accept TOML integers too.
_COMPUTE_KEYS = {
    "cores": (int, True),
    "frequency_ghz": (float, True),
    "simd_lanes": (int, True),
    "fma_units": (int, True),
    "register_kib": (float, True),
    "word_bytes": (int, True),
}
_CACHE_KEYS = {"name": (str, False), "size_kib": (float, True), "bandwidth_gb_s": (float, True), "shared": (bool, False)}
_DRAM_KEYS = {"bandwidth_gb_s": (float, True)}
_TOP_KEYS = {"name", "description", "sources", "compute", "cache", "dram", "efficiency", "overhead_us"}


def list_cpu_presets() -> list[str]:
    """Names of the CPU presets shipped with the package, sorted."""
    return sorted(path.stem for path in PRESETS_DIR.glob(f"{PRESET_PREFIX}*.toml"))


def load_cpu(name_or_path: str | Path) -> CpuConfig:
    """Load a CPU config from a preset name (``cpu-`` prefix optional) or a TOML file; bad input
    raises a one-line InputError."""
    path = _resolve_cpu_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    return cpu_from_dict(data, where=str(path))


def _resolve_cpu_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: CPU config file not found")
        return path
    name = str(name_or_path)
    preset = PRESETS_DIR / f"{name if name.startswith(PRESET_PREFIX) else PRESET_PREFIX + name}.toml"
    if not preset.is_file():
        known = ", ".join(list_cpu_presets())
        raise InputError(f"unknown CPU '{name_or_path}': expected a .toml file or one of {known}")
    return preset


def cpu_from_dict(data: dict, where: str = "<config>") -> CpuConfig:
    """Validate parsed TOML and build a :class:`CpuConfig`."""
    _reject_unknown(data, _TOP_KEYS, where)
    compute = _section(data, "compute", _COMPUTE_KEYS, where)
    caches = data.get("cache") if "cache" in data else _missing(where, "cache")
    if not isinstance(caches, list) or not caches:
        raise InputError(f"{where}: key 'cache' must be a non-empty array of [[cache]] tables")
    levels = tuple(CacheLevel(**_table(c, _CACHE_KEYS, f"{where}: cache[{i}]")) for i, c in enumerate(caches))
    return CpuConfig(
        name=_typed(data, "name", str, False, where),
        description=_typed(data, "description", str, False, where),
        sources=tuple(_string_list(data, "sources", where)),
        caches=levels,
        dram_bandwidth_gb_s=_section(data, "dram", _DRAM_KEYS, where)["bandwidth_gb_s"],
        efficiency=_per_kind(data, "efficiency", where, upper=1.0),
        overhead_us=_per_kind(data, "overhead_us", where, upper=None, allow_zero=True),
        **compute,
    )


def _missing(where: str, key: str):
    raise InputError(f"{where}: missing key '{key}'")


def _reject_unknown(table: dict, known: Iterable[str], where: str) -> None:
    for key in table:
        if key not in known:
            raise InputError(f"{where}: unknown key '{key}' (expected one of {', '.join(sorted(known))})")


def _section(data: dict, key: str, schema: dict, where: str) -> dict:
    if key not in data:
        _missing(where, key)
    return _table(data[key], schema, f"{where}: [{key}]")


def _table(table, schema: dict, where: str) -> dict:
    if not isinstance(table, dict):
        raise InputError(f"{where}: expected a table")
    _reject_unknown(table, schema, where)
    return {key: _typed(table, key, kind, positive, where) for key, (kind, positive) in schema.items()}


def _typed(table: dict, key: str, kind: type, positive: bool, where: str):
    if key not in table:
        _missing(where, key)
    value = table[key]
    numeric_ok = kind is float and isinstance(value, int) and not isinstance(value, bool)
    if not (isinstance(value, kind) and not (kind is int and isinstance(value, bool))) and not numeric_ok:
        raise InputError(f"{where}: key '{key}' must be {kind.__name__}, got {value!r}")
    if positive and not value > 0:
        raise InputError(f"{where}: key '{key}' must be > 0, got {value!r}")
    return float(value) if kind is float else value


def _string_list(data: dict, key: str, where: str) -> list[str]:
    value = data[key] if key in data else _missing(where, key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InputError(f"{where}: key '{key}' must be a list of strings, got {value!r}")
    return value


def _per_kind(data: dict, key: str, where: str, upper: float | None, allow_zero: bool = False) -> dict:
    """One number per :data:`FACTOR_KEYS` entry, every one present: a missing one would price ops at zero."""
    table = data[key] if key in data else _missing(where, key)
    if not isinstance(table, dict):
        raise InputError(f"{where}: [{key}] must be a table")
    _reject_unknown(table, FACTOR_KEYS, f"{where}: [{key}]")
    values = {}
    for factor in FACTOR_KEYS:
        value = _typed(table, factor, float, not allow_zero, f"{where}: [{key}]")
        if value < 0 or (upper is not None and value > upper):
            bound = f"in (0, {upper}]" if upper is not None else ">= 0"
            raise InputError(f"{where}: [{key}] key '{factor}' must be {bound}, got {value!r}")
        values[factor] = value
    return values


# --------------------------------------------------------------------------- traffic model


@dataclass(frozen=True)
class Traffic:
    """Bytes of one op's activations and weights that must come past a cache of a given capacity."""

    activations: float
    weights: float


def _gemm_traffic(op: Op, capacity: float, word: int) -> Traffic:
    """Blocked GEMM: an operand that fits stays; otherwise one pass per tile of the other dimension."""
    a, b, out = op.input_bytes(word), op.weight_bytes(word), WRITE_ALLOCATE * op.output_bytes(word)
    if a + b + out <= capacity or min(a, b) <= capacity / 2 or op.gemm is None:
        return Traffic(a + out, b)
    tile = max(1.0, math.sqrt(capacity / (3 * word)))
    return Traffic(a * math.ceil(op.gemm.n / tile) + out, b * math.ceil(op.gemm.m / tile))


def _window_traffic(op: Op, capacity: float, word: int) -> Traffic:
    """Local attention, offset-major as ``model.layers`` runs it: one pass per window position.

    Each pass streams the per-pixel tensors (queries, keys, values, the
    weighted-sum accumulator) whole, but only its own slice of the tensors that
    carry the window axis (logits, attention weights).  The per-pixel tensors
    come from this level once if they fit in the cache inside, else every pass.
    """
    window = op.window
    if window is None:
        return _streaming_traffic(op, capacity, word)
    window_sized = window.queries * window.heads * window.window_size
    tensors = [math.prod(shape) for shape in op.input_shapes] + [op.output_elements] * WRITE_ALLOCATE
    per_pass = word * sum(size for size in tensors if size != window_sized)
    once = word * sum(size for size in tensors if size == window_sized)
    passes = 1 if per_pass <= capacity else window.window_size
    return Traffic(passes * per_pass + once, op.weight_bytes(word))


def _streaming_traffic(op: Op, capacity: float, word: int) -> Traffic:
    """Softmax, pooling, normalisation, element-wise: every tensor streams through once.

    An in-place op writes back the lines it has just read, so its output costs no read for ownership.
    """
    writes = 1 if op.in_place else WRITE_ALLOCATE
    return Traffic(op.input_bytes(word) + writes * op.output_bytes(word), op.weight_bytes(word))


_TRAFFIC: dict[OpKind, Callable[[Op, float, int], Traffic]] = {
    **{kind: _gemm_traffic for kind in GEMM_KINDS},
    **{kind: _window_traffic for kind in WINDOW_KINDS},
    **{kind: _streaming_traffic for kind in set(OpKind) - GEMM_KINDS - WINDOW_KINDS},
}


@dataclass(frozen=True)
class _Level:
    """A memory level as the model sees it: total bytes it holds, bytes/s it supplies, what is inside it."""

    name: str
    capacity: float
    bandwidth: float
    inner_capacity: float  # what tiles see of the level inside (registers for L1)


def _levels(cpu: CpuConfig) -> list[_Level]:
    """Private levels hold a tile per core; a shared level's tiles are shared by all cores (BLAS keeps
    the common operand's panel there), so its whole capacity counts for each tile."""
    levels, inner = [], cpu.register_kib * 1024
    for cache in cpu.caches:
        scale = 1 if cache.shared else cpu.cores
        levels.append(_Level(cache.name, cache.size_kib * 1024 * scale, cache.bandwidth_gb_s * 1e9 * scale, inner))
        inner = cache.size_kib * 1024
    levels.append(_Level("DRAM", math.inf, cpu.dram_bandwidth_gb_s * 1e9, inner))
    return levels


def _home(levels: list[_Level], nbytes: float) -> int:
    """Index of the smallest level that holds ``nbytes``."""
    return next(i for i, level in enumerate(levels) if nbytes <= level.capacity)


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class CpuOpTime:
    """One op's predicted time and why: the bound that limits it and the bytes at each level."""

    name: str
    kind: str
    source: str
    seconds: float
    bound: str  # compute | cache | dram
    limiting_level: str  # "compute" or the memory level's name
    compute_s: float
    overhead_s: float
    work: float  # FLOPs (GEMM-like and window kinds) or element operations (vector kinds)
    arithmetic_intensity: float  # work per byte of the op's tensors (inputs, weights, output)
    bytes_per_level: Mapping[str, float]

    def row(self) -> dict:
        """Flat dict for ops.csv: one ``bytes_<level>`` column per memory level."""
        data = {k: v for k, v in asdict(self).items() if k != "bytes_per_level"}
        data.update({f"bytes_{level}": nbytes for level, nbytes in self.bytes_per_level.items()})
        return data


def op_work(op: Op) -> float:
    """FLOPs for ops that multiply-accumulate (2 per MAC), element operations for vector kinds."""
    return 2.0 * op.macs if op.kind in GEMM_KINDS | WINDOW_KINDS else float(op.vector_ops)


def kernel_launches(op: Op) -> int:
    """Kernels PyTorch launches for ``op``: one per window position for window ops, else one."""
    return op.window.window_size if op.kind in WINDOW_KINDS and op.window is not None else 1


def compute_seconds(op: Op, cpu: CpuConfig) -> float:
    """Work over the peak rate for the op's kind at that kind's efficiency (and a window op's lane fill)."""
    peak = cpu.peak_flops if op.kind in GEMM_KINDS | WINDOW_KINDS else cpu.peak_vector_ops
    return op_work(op) / (peak * cpu.efficiency[factor_key(op)] * lane_fill(op, cpu))


def factor_key(op: Op) -> str:
    """The entry of the config's efficiency and overhead tables that prices ``op``: its kind's, except
    that a convolution with a kernel wider than 1x1 has its own.  PyTorch runs those through oneDNN's
    direct convolution, which at batch 32 ran 1.5-2x faster per FLOP than the 1x1 convolutions on the
    development VM."""
    attrs = dict(op.attrs)
    if op.kind is OpKind.CONV and attrs.get("kernel_h", 1) * attrs.get("kernel_w", 1) > 1:
        return SPATIAL_CONV
    return op.kind.value


def lane_fill(op: Op, cpu: CpuConfig) -> float:
    """Fraction of the SIMD lanes a window op's passes fill.

    Each window position is an element-wise pass over a shifted view of a
    padded map, whose rows are ``width`` floats apart from the next: a row
    fills ``ceil(width / lanes)`` vectors, so an 8-wide map keeps half of
    AVX-512's 16 lanes idle.  Other ops run over contiguous memory (1).
    """
    if op.kind not in WINDOW_KINDS or op.window is None:
        return 1.0
    width = op.window.width
    return width / (math.ceil(width / cpu.simd_lanes) * cpu.simd_lanes)


def bytes_per_level(op: Op, cpu: CpuConfig, model_weight_bytes: float) -> dict[str, float]:
    """Bytes each memory level supplies for ``op``; a tensor is supplied only by levels up to its home."""
    levels, word = _levels(cpu), cpu.word_bytes
    # An in-place op's output overwrites its input: its working set is the input alone.
    footprint = op.input_bytes(word) + (0 if op.in_place else op.output_bytes(word))
    activation_home = _home(levels, footprint)
    weight_home = _home(levels, model_weight_bytes)
    supplied = {}
    for index, level in enumerate(levels):
        traffic = _TRAFFIC[op.kind](op, level.inner_capacity, word)
        supplied[level.name] = (traffic.activations if index <= activation_home else 0.0) + (
            traffic.weights if index <= weight_home else 0.0
        )
    return supplied


def level_seconds(supplied: Mapping[str, float], cpu: CpuConfig) -> dict[str, float]:
    """Seconds each memory level needs to supply its bytes."""
    return {level.name: supplied[level.name] / level.bandwidth for level in _levels(cpu)}


def predict_op(op: Op, cpu: CpuConfig, model_weight_bytes: float | None = None) -> CpuOpTime:
    """The roofline time of one op: overhead + max(compute, bytes / bandwidth at every level)."""
    weights = op.weight_bytes(cpu.word_bytes) if model_weight_bytes is None else model_weight_bytes
    supplied = bytes_per_level(op, cpu, weights)
    terms = {"compute": compute_seconds(op, cpu), **level_seconds(supplied, cpu)}
    limiting = max(terms, key=terms.__getitem__)
    overhead = cpu.overhead_us[factor_key(op)] * 1e-6 * kernel_launches(op)
    tensor_bytes = op.input_bytes(cpu.word_bytes) + op.output_bytes(cpu.word_bytes) + op.weight_bytes(cpu.word_bytes)
    return CpuOpTime(
        name=op.name,
        kind=op.kind.value,
        source=op.source,
        seconds=overhead + terms[limiting],
        bound=_bound_name(limiting),
        limiting_level=limiting,
        compute_s=terms["compute"],
        overhead_s=overhead,
        work=op_work(op),
        arithmetic_intensity=op_work(op) / tensor_bytes if tensor_bytes else 0.0,
        bytes_per_level=supplied,
    )


def _bound_name(limiting: str) -> str:
    return "compute" if limiting == "compute" else "dram" if limiting == "DRAM" else "cache"


@dataclass(frozen=True)
class CpuResult:
    """Predicted per-op times of one graph on one CPU, with totals and how they were made."""

    cpu: CpuConfig
    batch: int
    rows: tuple[CpuOpTime, ...]
    metadata: Mapping[str, object] = field(default_factory=dict)  # the graph's: model, checkpoint hash, ...

    @property
    def latency_s(self) -> float:
        """One forward pass of the batch: ops run one after another, as PyTorch runs them."""
        return sum(row.seconds for row in self.rows)

    @property
    def throughput(self) -> float:
        """Images per second."""
        return self.batch / self.latency_s if self.latency_s else 0.0

    @property
    def dram_bytes(self) -> float:
        return sum(row.bytes_per_level["DRAM"] for row in self.rows)

    def bound_shares(self) -> dict[str, float]:
        """Fraction of the predicted latency spent in ops limited by each bound."""
        total = self.latency_s or 1.0
        return {bound: sum(r.seconds for r in self.rows if r.bound == bound) / total for bound in BOUNDS}

    def summary(self) -> dict:
        return {
            "latency_s": self.latency_s,
            "throughput_images_per_s": self.throughput,
            "dram_bytes": self.dram_bytes,
            "batch": self.batch,
            "ops": len(self.rows),
            "overhead_s": sum(row.overhead_s for row in self.rows),
            "bound_shares": self.bound_shares(),
            "graph": dict(self.metadata),
            "cpu": self.cpu.to_dict(),
            "provenance": provenance(cpu=self.cpu.name, batch=self.batch),
        }

    def csv_text(self) -> str:
        return rows_to_csv(row.row() for row in self.rows)

    def write(self, out_dir: str | Path, extra: Mapping[str, object] | None = None) -> Path:
        """Write ``ops.csv`` and ``summary.json`` (with ``extra`` merged in) into ``out_dir`` atomically."""
        summary = {**self.summary(), **(extra or {})}
        return write_text_folder(out_dir, {"ops.csv": self.csv_text(), "summary.json": json_text(summary)})

    def table(self) -> str:
        """Fixed-width per-op table and the totals, for the terminal."""
        header = f"{'op':<44} {'kind':<13} {'bound':<7} {'level':<7} {'time us':>10} {'FLOP/B':>7} {'DRAM KiB':>10}"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                f"{row.name:<44} {row.kind:<13} {row.bound:<7} {row.limiting_level:<7} {row.seconds * 1e6:>10.1f} "
                f"{row.arithmetic_intensity:>7.2f} {row.bytes_per_level['DRAM'] / 1024:>10.1f}"
            )
        shares = ", ".join(f"{bound} {share:.0%}" for bound, share in self.bound_shares().items())
        overhead = sum(row.overhead_s for row in self.rows) / (self.latency_s or 1.0)
        lines += ["-" * len(header), (
            f"{self.cpu.name}, batch {self.batch}: latency {self.latency_s * 1e3:.3f} ms, "
            f"{self.throughput:.1f} images/s, DRAM {self.dram_bytes / 2**20:.1f} MiB; "
            f"time by bound: {shares}; launch overhead {overhead:.0%} of it"
        )]
        return "\n".join(lines)


def predict(graph, cpu: CpuConfig, batch: int | None = None) -> CpuResult:
    """Predict every op of ``graph`` (an OpGraph or a sequence of Ops) on ``cpu``.

    ``batch`` defaults to the graph's traced batch size (1 for a bare op list).
    """
    ops, metadata = _ops_and_metadata(graph)
    weight_bytes = sum(op.weight_bytes(cpu.word_bytes) for op in ops)
    rows = tuple(predict_op(op, cpu, weight_bytes) for op in ops)
    images = batch if batch is not None else int(metadata["batch"]) if "batch" in metadata else 1
    return CpuResult(cpu=cpu, batch=images, rows=rows, metadata=metadata)


def _ops_and_metadata(graph) -> tuple[list[Op], dict]:
    if hasattr(graph, "ops_in_order"):
        return list(graph.ops_in_order()), dict(graph.metadata)
    return list(graph), {}
