"""The operator IR: every model is lowered into a few frozen op dataclasses.

One IR serves the accelerator simulator and the CPU baseline (ZigZag's einsum
form and SCALE-Sim's M/N/K GEMMs are the models): an op that maps onto a MAC
array carries a :class:`Gemm` view, a local-attention op also carries its
:class:`Window` geometry so the simulator can choose how windows map onto the
array, and vector work (softmax, normalisation, element-wise) is counted in
``vector_ops``.  Shapes are NCHW (or (N, features)) at the traced batch size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum


class OpKind(str, Enum):
    """What an op is; the analysis groups cycles by these."""

    CONV = "conv"  # dense convolution, im2col GEMM: M = N*Ho*Wo, N = Cout, K = Cin*kh*kw / groups
    LINEAR = "linear"  # fully connected: M = batch, N = out_features, K = in_features
    PROJECTION = "projection"  # 1x1 query/key/value projections of local attention (GEMM)
    WINDOW_LOGITS = "window_logits"  # q . (k + r) over each k x k window, per head
    SOFTMAX = "softmax"  # max, exp, sum, divide over each window (vector unit)
    WEIGHTED_SUM = "weighted_sum"  # softmax-weighted sum of the window's values, per head
    ATTENTION_LOGITS = "attention_logits"  # global attention Q K^T per head: M = queries, N = keys, K = head width
    ATTENTION_VALUES = "attention_values"  # global attention A V per head: M = queries, N = head width, K = keys
    MATMUL = "matmul"  # a product of two activations (matmul, bmm, @): no weights
    POOL = "pool"  # average / max pooling over small windows (vector unit)
    GLOBAL_POOL = "global_pool"  # mean or sum over whole axes (a plane, the tokens): a reduction (vector unit)
    NORM = "norm"  # batch norm (folded into the conv before it, or vector unit); layer and group norm
    ADD = "add"  # element-wise add (residual)
    ELEMENTWISE = "elementwise"  # other element-wise arithmetic: multiply, divide, subtract
    ACT = "act"  # ReLU and other element-wise activations
    RESAMPLE = "resample"  # interpolation onto a larger or smaller grid (nearest, bilinear)

    @property
    def uses_array(self) -> bool:
        """Whether this kind of op runs on the MAC array (the rest run on the vector unit)."""
        return self in _ARRAY_KINDS


_ARRAY_KINDS = frozenset({
    OpKind.CONV, OpKind.LINEAR, OpKind.PROJECTION, OpKind.WINDOW_LOGITS, OpKind.WEIGHTED_SUM,
    OpKind.ATTENTION_LOGITS, OpKind.ATTENTION_VALUES, OpKind.MATMUL,
})


@dataclass(frozen=True)
class Gemm:
    """``batch`` independent (M x K) @ (K x N) products; SCALE-Sim's SR = M, SC = N, T = K."""

    m: int
    n: int
    k: int
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("m", "n", "k", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"Gemm.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.n * self.k


@dataclass(frozen=True)
class Window:
    """Geometry of a local-attention op (Ramachandran et al. 2019).

    Queries sit on a ``height`` x ``width`` grid per image; each attends to the
    ``kernel`` x ``kernel`` neighbourhood around it (zero-padded at borders,
    padding excluded from the softmax), in ``heads`` heads of ``head_channels``
    channels.  ``mixtures`` > 1 marks the attention stem's spatially-aware value
    mixture (the weighted sum then reduces over ``kernel**2 * mixtures`` values).
    ``kept`` is the window positions each head keeps under a fixed window mask
    (the most any head keeps); None, all of them.
    """

    images: int
    height: int
    width: int
    kernel: int
    heads: int
    head_channels: int
    mixtures: int = 1
    kept: int | None = None

    @property
    def queries(self) -> int:
        return self.images * self.height * self.width

    @property
    def window_size(self) -> int:
        return self.kernel * self.kernel

    @property
    def kept_positions(self) -> int:
        """Positions a head attends to: ``kept``, or the whole window."""
        return self.window_size if self.kept is None else self.kept


@dataclass(frozen=True)
class Op:
    """One operator of a traced model.

    ``macs`` counts dense multiply-accumulates (what fvcore counts, one MAC per
    multiply-add); ``vector_ops`` counts element operations for the vector unit
    (softmax: max, exp, sum and divide per element; add; ReLU; pooling; norm).
    ``weight_nonzero`` comes from the checkpoint's masks (equal to
    ``weight_params`` when dense); for column-pruned weights, viewed as an
    (out x in*kh*kw) matrix, ``columns_kept`` of ``columns_total`` survive
    (both 0 for an op that is not column-pruned; for a compacted layer
    ``weight_params`` is already the kept part).  ``nm_kept`` of ``nm_block``:
    no group of ``nm_block`` consecutive weights along a row of that matrix
    (the reduction axis) holds more than ``nm_kept`` non-zeros, N:M structure
    an N:M array can compress (both 0 where none was measured).
    ``weight_row_nonzero_max`` is the most non-zeros any row of that matrix
    (one output's weights) keeps (0 where no mask was measured).  ``weight_params`` counts the
    weight operands of array ops: conv, linear and projection matrices and the
    relative embeddings of window logits; biases and norm scales are not counted.
    ``source`` is the module path in the torch model the op was lowered from.

    ``attrs`` keys set by the tracer (:mod:`attentionlite.simulator.lowering`):
    ``relative_macs`` (window logits: the part of ``macs`` that is q . r, a
    GEMM of M = queries, N = kernel, K = head channels per head); ``kernel_h``,
    ``kernel_w``, ``stride_h``, ``stride_w`` (conv, pool), ``groups`` (conv),
    ``transposed`` (a transposed convolution), ``mode`` (pool: avg, max,
    adaptive_avg, adaptive_max; global pool: mean, sum; resample: nearest,
    bilinear, ...), ``norm`` (layer, group: a norm that is not a batch norm, so
    never folded), ``transcendentals`` (exp, erf or tanh evaluations among an
    op's vector ops, each of which the vector unit prices at its exp cost),
    ``function`` (the activation or arithmetic: gelu, mul, ...), ``fused_attention``
    (the logits, softmax and values of one fused attention call), ``folded_norm`` (a conv or linear
    that absorbed a batch norm: the norm's module path), ``in_place`` (an add or
    ReLU that overwrites its input: ``add_``, ``relu_``,
    ``nn.ReLU(inplace=True)``; torch.fx records ``+=`` as a plain add).
    """

    name: str
    kind: OpKind
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    macs: int = 0
    vector_ops: int = 0
    gemm: Gemm | None = None
    window: Window | None = None
    weight_params: int = 0
    weight_nonzero: int = 0
    columns_total: int = 0
    columns_kept: int = 0
    nm_kept: int = 0
    nm_block: int = 0
    weight_row_nonzero_max: int = 0
    source: str = ""
    attrs: tuple[tuple[str, int | float | str], ...] = field(default=())

    @property
    def in_place(self) -> bool:
        """Whether the op overwrites its first input (the ``in_place`` attr, :data:`IN_PLACE`)."""
        return bool(dict(self.attrs).get("in_place"))

    @property
    def weight_density(self) -> float:
        """Fraction of weights that are non-zero (1.0 for ops without weights)."""
        return self.weight_nonzero / self.weight_params if self.weight_params else 1.0

    @property
    def input_elements(self) -> int:
        return sum(math.prod(shape) for shape in self.input_shapes)

    @property
    def output_elements(self) -> int:
        return math.prod(self.output_shape)

    def input_bytes(self, word_bytes: int) -> int:
        return self.input_elements * word_bytes

    def output_bytes(self, word_bytes: int) -> int:
        return self.output_elements * word_bytes

    def weight_bytes(self, word_bytes: int) -> int:
        """Bytes of the dense weight tensor (sparse formats are the hardware model's business)."""
        return self.weight_params * word_bytes

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; :func:`op_from_dict` inverts it exactly."""
        data = asdict(self)
        data["kind"] = self.kind.value
        data["input_shapes"] = [list(shape) for shape in self.input_shapes]
        data["output_shape"] = list(self.output_shape)
        data["attrs"] = [list(pair) for pair in self.attrs]
        return data


IN_PLACE: tuple[tuple[str, int], ...] = (("in_place", 1),)  # the attrs that mark an op as in place
SOFTMAX_OPS_PER_ELEMENT = 4  # how a softmax's vector_ops are counted: max, exp, sum, divide per element
AXIS_LENGTH = "axis_length"  # a softmax's attr: the length of the axis it normalises over
# A fixed attention mask's attrs on its logits, softmax and values (transformers.py measures them): key
# columns dense for every query (global tokens, summed over heads and sequences), kept logits elsewhere.
MASK_DENSE_KEYS = "mask_dense_keys"
MASK_SPARSE_KEPT = "mask_sparse_kept"


def op_from_dict(data: dict) -> Op:
    """Rebuild an :class:`Op` from :meth:`Op.to_dict` output."""
    data = dict(data)
    data["kind"] = OpKind(data["kind"])
    data["input_shapes"] = tuple(tuple(shape) for shape in data["input_shapes"])
    data["output_shape"] = tuple(data["output_shape"])
    data["gemm"] = Gemm(**data["gemm"]) if data.get("gemm") else None
    data["window"] = Window(**data["window"]) if data.get("window") else None
    data["attrs"] = tuple(tuple(pair) for pair in data.get("attrs", ()))
    return Op(**data)
