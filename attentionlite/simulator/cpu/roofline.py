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
which overwrite lines just read; an output too large for the allocator's heap
(32 MiB or more with glibc) is mapped fresh from the OS, and its first write pays
the page faults too (:func:`first_touch_seconds`, added to the overhead:
measured at batch 32 on the development machine, a ReLU writing a new 33.5 MB
output took 21.8 ms, into an existing one 4.0 ms).  Weights are dense: PyTorch runs masked
weights as dense tensors, and a compacted model is a smaller dense one.

The CPU config (:mod:`attentionlite.simulator.cpu.config`) is loaded and
validated where the user's input enters and passed in as an object.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from attentionlite.errors import InputError
from attentionlite.files import json_text, rows_to_csv, write_text_folder
from attentionlite.provenance import provenance
from attentionlite.simulator.cpu.config import FACTOR_KEYS, FUSED_ATTENTION, SPATIAL_CONV, CpuConfig
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Op, OpKind

GEMM_KINDS = frozenset({
    OpKind.CONV, OpKind.LINEAR, OpKind.PROJECTION, OpKind.ATTENTION_LOGITS, OpKind.ATTENTION_VALUES, OpKind.MATMUL,
})
WINDOW_KINDS = frozenset({OpKind.WINDOW_LOGITS, OpKind.WEIGHTED_SUM})
BOUNDS = ("compute", "cache", "dram")
# A store to a line not in cache first reads it (read for ownership), then writes it back: an output
# moves twice its size (as STREAM counts it).
WRITE_ALLOCATE = 2


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
    levels, inner = [], cpu.compute.register_kib * 1024
    for cache in cpu.cache:
        scale = 1 if cache.shared else cpu.compute.cores
        levels.append(_Level(cache.name, cache.size_kib * 1024 * scale, cache.bandwidth_gb_s * 1e9 * scale, inner))
        inner = cache.size_kib * 1024
    levels.append(_Level("DRAM", math.inf, cpu.dram.bandwidth_gb_s * 1e9, inner))
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
    """Kernels PyTorch launches for ``op``: one per window position for window ops; one for a fused
    attention, counted on its logits (its softmax and values run in the same kernel); else one."""
    if op.kind in WINDOW_KINDS and op.window is not None:
        return op.window.window_size
    if dict(op.attrs).get("fused_attention") and op.kind is not OpKind.ATTENTION_LOGITS:
        return 0
    return 1


def compute_seconds(op: Op, cpu: CpuConfig) -> float:
    """Work over the peak rate for the op's kind at that kind's efficiency (and a window op's lane fill)."""
    peak = cpu.peak_flops if op.kind in GEMM_KINDS | WINDOW_KINDS else cpu.peak_vector_ops
    return op_work(op) / (peak * cpu.efficiency[factor_key(op)] * lane_fill(op, cpu))


def factor_key(op: Op) -> str:
    """The entry of the config's efficiency and overhead tables that prices ``op``: the kernel PyTorch
    runs it with.  Mostly its kind's; but a convolution with a kernel wider than 1x1 has its own
    (oneDNN's direct convolution, which at batch 32 ran 1.5-2x faster per FLOP than the 1x1
    convolutions on the development VM), so do the three parts of a fused attention (one
    ``scaled_dot_product_attention`` kernel), layer norms, and activations with a transcendental (by
    function: GELU's erf is not ReLU's max).  A key no calibration fits is refused (InputError)."""
    attrs = dict(op.attrs)
    if op.kind is OpKind.CONV and int(attrs.get("kernel_h", 1)) * int(attrs.get("kernel_w", 1)) > 1:
        key = SPATIAL_CONV
    elif attrs.get("fused_attention"):
        key = FUSED_ATTENTION
    elif op.kind is OpKind.NORM and "norm" in attrs:
        key = f"{attrs['norm']}_norm"
    elif op.kind is OpKind.ACT and attrs.get("transcendentals"):
        key = str(attrs["function"])
    else:
        key = op.kind.value
    if key not in FACTOR_KEYS:
        raise InputError(f"op {op.name!r}: the CPU baseline has no fitted factors for {key} ops yet "
                         f"(its calibration networks have none); it prices {', '.join(FACTOR_KEYS)}")
    return key


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
    lanes = cpu.compute.simd_lanes
    return width / (math.ceil(width / lanes) * lanes)


def bytes_per_level(op: Op, cpu: CpuConfig, model_weight_bytes: float) -> dict[str, float]:
    """Bytes each memory level supplies for ``op``; a tensor is supplied only by levels up to its home."""
    levels, word = _levels(cpu), cpu.compute.word_bytes
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
    weights = op.weight_bytes(cpu.compute.word_bytes) if model_weight_bytes is None else model_weight_bytes
    supplied = bytes_per_level(op, cpu, weights)
    terms = {"compute": compute_seconds(op, cpu), **level_seconds(supplied, cpu)}
    limiting = max(terms, key=terms.__getitem__)
    overhead = cpu.overhead_us[factor_key(op)] * 1e-6 * kernel_launches(op) + first_touch_seconds(op, cpu)
    word = cpu.compute.word_bytes
    tensor_bytes = op.input_bytes(word) + op.output_bytes(word) + op.weight_bytes(word)
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


def first_touch_seconds(op: Op, cpu: CpuConfig) -> float:
    """The page faults of first writing an op's new output, where it is larger than the allocator keeps
    on its heap (an in-place op writes memory already mapped)."""
    output = op.output_bytes(cpu.compute.word_bytes)
    if op.in_place or output < cpu.dram.fresh_output_mib * 2**20:  # glibc maps requests >= its threshold
        return 0.0
    return output / (cpu.dram.first_touch_gb_s * 1e9)


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


def predict(graph: OpGraph | Sequence[Op], cpu: CpuConfig, batch: int | None = None) -> CpuResult:
    """Predict every op of ``graph`` (an OpGraph or a sequence of Ops) on ``cpu``.

    ``batch`` defaults to the graph's traced batch size (1 for a bare op list).
    """
    ops, metadata = _ops_and_metadata(graph)
    weight_bytes = sum(op.weight_bytes(cpu.compute.word_bytes) for op in ops)
    rows = tuple(predict_op(op, cpu, weight_bytes) for op in ops)
    images = batch if batch is not None else int(metadata["batch"]) if "batch" in metadata else 1
    return CpuResult(cpu=cpu, batch=images, rows=rows, metadata=metadata)


def _ops_and_metadata(graph: OpGraph | Sequence[Op]) -> tuple[list[Op], dict]:
    if isinstance(graph, OpGraph):
        return graph.ops_in_order(), dict(graph.metadata)
    return list(graph), {}
