"""The accelerator's description: frozen dataclasses loaded from TOML and validated at the door.

A parallel attention accelerator is ``cores`` cores on one shared DRAM
channel, identical unless ``[[groups]]`` make it heterogeneous (see
:class:`HardwareConfig`).  Each core has an R x C systolic MAC array with a
dataflow (``os``, ``ws``, ``is``), a vector unit of L lanes, and
double-buffered SRAM for inputs, weights and outputs.  The TOML file mirrors
the dataclasses: a few top-level keys and one table per unit (``[array]``,
``[vector]``, ``[sram]``, ``[dram]``, ``[precision]``, ``[sparsity]``, ``[attention]``,
``[energy]``, ``[area]``); the last five may be left out and take the defaults below,
and each ``[[groups]]`` entry has its own ``[groups.array]``,
``[groups.vector]`` and ``[groups.sram]``.

The dataclasses are the schema (:mod:`attentionlite.simulator.config`, shared
with the CPU configs), so an unknown key, a missing key, a wrong type, a zero
or negative size, an unknown choice, or a buffer too small for one array tile
is one :class:`InputError` that names the file and the dotted key.  Presets
ship in ``simulator/accelerator/presets/*.toml``.  A config is loaded once,
where the user's input enters, and passed down as an object;
:func:`with_overrides` gives the variant of a design point without reading
the file again.
"""

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from attentionlite.errors import InputError, OverrideError
from attentionlite.simulator.config import (
    NON_NEGATIVE,
    POSITIVE,
    Bounds,
    OneOf,
    build,
    leaf_paths,
    read_toml,
    resolve_config_path,
    to_toml,
    with_values,
)
from attentionlite.simulator.graph.ops import OpKind

PRESET_DIR = Path(__file__).resolve().parent / "presets"
DATAFLOWS = ("os", "ws", "is")
SPARSITY_MODES = ("none", "skip", "columns", "nm")
WINDOW_MAPPINGS = ("blocked", "gathered")


@dataclass(frozen=True)
class ArrayConfig:
    """The systolic MAC array of one core."""

    rows: Annotated[int, POSITIVE]
    cols: Annotated[int, POSITIVE]
    dataflow: Annotated[str, OneOf(DATAFLOWS)]
    overlap_folds: bool = False  # pipeline folds (fill under the last drain, preload under the stream); systolic.py
    fuse_post_ops: bool = False  # batch norm, ReLU and residual add in the output path as outputs drain; fusion.py


@dataclass(frozen=True)
class VectorConfig:
    """The vector unit: softmax, normalisation, pooling and element-wise work."""

    lanes: Annotated[int, POSITIVE]
    exp_cycles: Annotated[int, POSITIVE] = 4  # an exp costs this many lane-cycles (max, sum, divide cost one each)
    reciprocal_cycles: Annotated[int, NON_NEGATIVE] = 4  # latency of a softmax row's 1 / sum (attention.py)
    bits: Annotated[int, NON_NEGATIVE] = 0  # a lane's width; 0: the wider of the activation and softmax widths
    overlaps_array: bool = False  # fused attention's softmax of one block runs while the array computes others; fusion.py


@dataclass(frozen=True)
class SramConfig:
    """Per-core SRAM per operand in KiB; each is split into two halves (double buffering)."""

    input_kib: Annotated[float, POSITIVE]
    weight_kib: Annotated[float, POSITIVE]
    output_kib: Annotated[float, POSITIVE]


@dataclass(frozen=True)
class DramConfig:
    """The DRAM channel all cores share."""

    bandwidth_gb_s: Annotated[float, POSITIVE]
    latency_ns: Annotated[float, NON_NEGATIVE]


TENSOR_KINDS = ("weight", "activation", "softmax", "accumulator")


@dataclass(frozen=True)
class PrecisionConfig:
    """Bits per element of each kind of tensor; 0 takes the word size (8 x ``word_bytes``, SCALE-Sim's one
    width for every operand).  Bytes moved and held, buffer fits, area and MAC energy follow them (see
    precision.py for which tensor is which kind).

    ``softmax_bits`` is the width of logits and probabilities; ``accumulator_bits`` that of partial sums
    wherever they leave a PE (ws/is accumulation in the output buffer, spills, split-K); an unset
    accumulator moves partial sums at the word size and gives the PE an adder twice the multiplier's
    widest input (Aladdin's MAC pairing).
    """

    weight_bits: Annotated[int, NON_NEGATIVE] = 0
    activation_bits: Annotated[int, NON_NEGATIVE] = 0
    softmax_bits: Annotated[int, NON_NEGATIVE] = 0
    accumulator_bits: Annotated[int, NON_NEGATIVE] = 0


@dataclass(frozen=True)
class SparsityConfig:
    """How the hardware exploits weight sparsity.

    ``skip`` skips blocks of ``granularity`` weights that are all zero and pays
    ``index_bits`` of metadata per stored block; with ``lockstep`` (a systolic
    array's truth) a block is skipped only when it is zero in every PE the
    step reaches, without it each PE skips its own zeros (an idealised sparse
    array).  ``columns`` runs a column-pruned layer as the smaller dense layer
    it compacts into.  ``nm`` compresses a layer whose weights are N:M
    structured (at most N non-zeros in every M along the reduction) to N of
    every M reduction steps, with log2(M) bits of index per kept weight (its
    ``index_bits`` are not used).  See sparsity.py.
    """

    mode: Annotated[str, OneOf(SPARSITY_MODES)] = "none"
    granularity: Annotated[int, POSITIVE] = 1
    index_bits: Annotated[int, NON_NEGATIVE] = 4
    lockstep: bool = True


@dataclass(frozen=True)
class AttentionConfig:
    """How local-attention windows map onto the array (see attention.py)."""

    window_mapping: Annotated[str, OneOf(WINDOW_MAPPINGS)] = "blocked"
    block: Annotated[int, POSITIVE] = 4  # query block edge for blocked windows (block x block queries share a halo)
    fused: bool = False  # logits -> softmax -> weighted sum block by block on chip, when a block fits; fusion.py
    split_sparse: bool = False  # fixed attention masks on a denser and a sparser engine at once (ViTCoD); attention.py


@dataclass(frozen=True)
class EnergyTable:
    """Energy per event; the defaults are 45 nm figures for 8-bit words, each from a named source.

    Horowitz, "Computing's energy problem (and what we can do about it)",
    ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V):

    * a MAC: 8-bit integer multiply 0.2 pJ + add 0.03 pJ;
    * the vector unit: a 32-bit float add, 0.9 pJ, per element operation of a
      32-bit lane; a lane of b bits costs b/32 of it (a float adder's energy
      grows about linearly with its width: his 16-bit float add is 0.4 pJ);
    * SRAM: a 64-bit read costs 10 pJ from 8 KB, 20 pJ from 32 KB and 100 pJ from
      1 MB.  Energy per byte here grows with the square root of the capacity
      of the bank accessed, ``sram_reference_pj_per_byte * sqrt(bank /
      sram_reference_kib)`` (the CACTI-style wire-length scaling), anchored at
      8 KiB = 1.25 pJ/byte: that gives 2.5 pJ/byte at 32 KiB (exactly
      Horowitz's) and 14.1 at 1 MiB (his 12.5, +13%).  A bank is one half of an
      operand's double buffer, and at most ``sram_bank_kib_max`` (larger
      buffers are banked; the default is Horowitz's largest, 1 MiB);
    * DRAM: 1.3-2.6 nJ per 64-bit access of a DDR3-class DIMM, so 20 pJ/bit at
      the low end (``dram_pj_per_bit``), also taken for DDR4 (an upper-side
      estimate).  Each preset states its memory's figure: HBM2 is 3.9 pJ/bit
      (O'Connor et al., "Fine-Grained DRAM", MICRO 2017).  For another memory
      (LPDDR4, GDDR6) set ``dram_pj_per_bit`` from its vendor's power
      calculator or a DRAM power model (DRAMPower); no preset uses one.

    Against the 0.23 pJ MAC, a DDR3-class byte costs 160 pJ: about 700 MACs.
    (Eyeriss's normalised table, Chen et al., ISCA 2016, puts DRAM at 200x a
    16-bit MAC at 65 nm; it is another technology and another word, so it is
    used only by the ``eyeriss-like`` preset.)  Leakage per core is an
    assumption (about 5% of a busy core's dynamic power at these sizes).
    """

    mac_pj: Annotated[float, NON_NEGATIVE] = 0.23
    vector_op_pj: Annotated[float, NON_NEGATIVE] = 0.9
    sram_reference_pj_per_byte: Annotated[float, NON_NEGATIVE] = 1.25
    sram_reference_kib: Annotated[float, POSITIVE] = 8.0
    sram_bank_kib_max: Annotated[float, POSITIVE] = 1024.0
    dram_pj_per_bit: Annotated[float, NON_NEGATIVE] = 20.0
    leakage_mw_per_core: Annotated[float, NON_NEGATIVE] = 10.0

    def sram_pj_per_byte(self, bank_kib: float) -> float:
        """Energy of one byte read from or written to a bank of ``bank_kib`` KiB (square-root scaling)."""
        bank = min(bank_kib, self.sram_bank_kib_max)
        return self.sram_reference_pj_per_byte * math.sqrt(bank / self.sram_reference_kib)

    @property
    def dram_pj_per_byte(self) -> float:
        return 8 * self.dram_pj_per_bit


@dataclass(frozen=True)
class AreaTable:
    """Silicon area per component in um^2 at ``node_nm``; the defaults are 40 nm figures from named sources.

    Aladdin (Shao et al., ISCA 2014), as Accelergy's hwcomponents-library
    tabulates it (``hwcomponents_library/library/aladdin.py``), 40 nm:

    * a 32 x 32-bit integer multiplier, 6350 um^2, scaling with the product of
      its input widths (``multiplier_um2`` is the 32-bit figure);
    * a 32-bit adder, 278 um^2, and a 32-bit comparator, 71 um^2, scaling with width;
    * a register, 5.98 um^2 per bit.

    SRAM from CACTI through Accelergy's CACTI plug-in, 40 nm, in the reference
    output of the Eyeriss-like exercise (timeloop-accelergy-exercises,
    ``exercises/accelergy/04_eyeriss_like/ref-output/ART.yaml``): a 100 KiB
    buffer (25 banks of 512 x 64 bits) is 774,388 um^2 and an 8 KiB one (2
    banks of 512 x 64 bits) 60,966 um^2, each with its two address generators:
    0.945 and 0.930 um^2 per bit.  ``sram_um2_per_bit`` takes 0.94 at every
    capacity, within 1% of both; outside 8-100 KiB it is an extrapolation.

    The energy table is 45 nm (Horowitz); these areas are 40 nm, the node of
    both sources, and are reported at it (``node_nm``).  For another node, set
    every figure from that node's library.
    """

    node_nm: Annotated[float, POSITIVE] = 40.0
    multiplier_um2: Annotated[float, NON_NEGATIVE] = 6350.0
    adder_um2: Annotated[float, NON_NEGATIVE] = 278.0
    comparator_um2: Annotated[float, NON_NEGATIVE] = 71.0
    register_um2_per_bit: Annotated[float, NON_NEGATIVE] = 5.98
    sram_um2_per_bit: Annotated[float, NON_NEGATIVE] = 0.94


# The most cores a design may have: every core is simulated (data-parallel, one batch each), so a typo
# such as 10000 would run for hours; 1024 is past any accelerator the presets describe.
MAX_CORES = 1024
CORE_COUNT = Bounds("positive", maximum=MAX_CORES)


@dataclass(frozen=True)
class CoreGroup:
    """Cores of another kind beside the main ones: their own array, vector unit and buffers, and the op
    kinds (``OpKind`` values) they can run; an op kind not listed never lands on them."""

    name: str
    cores: Annotated[int, CORE_COUNT]
    runs: tuple[str, ...]
    array: ArrayConfig
    vector: VectorConfig
    sram: SramConfig


@dataclass(frozen=True)
class HardwareConfig:
    """One accelerator design point, fully resolved.

    ``cores`` counts every core.  Without ``groups`` they are all alike.  With
    ``[[groups]]`` the accelerator is heterogeneous: the last cores are the
    groups' (in order), each with its own array, vector unit, buffers and the
    op kinds it runs; the first ``cores`` - (the groups' cores) are the *main*
    kind, described by the top-level ``[array]``, ``[vector]`` and ``[sram]``,
    and run every op kind.  Every core has the energy table, word size and
    clock of the whole.
    """

    name: str
    description: str
    cores: Annotated[int, CORE_COUNT]
    clock_mhz: Annotated[float, POSITIVE]
    word_bytes: Annotated[int, POSITIVE]
    array: ArrayConfig
    vector: VectorConfig
    sram: SramConfig
    dram: DramConfig
    # Inference hardware folds each batch norm into the convolution before it (scaled weights, a bias).
    fold_batch_norm: bool = True
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    energy: EnergyTable = field(default_factory=EnergyTable)
    area: AreaTable = field(default_factory=AreaTable)
    groups: tuple[CoreGroup, ...] = ()

    @property
    def array_rows(self) -> int:
        return self.array.rows

    @property
    def array_cols(self) -> int:
        return self.array.cols

    @property
    def pes(self) -> int:
        """MAC units in one main core's array."""
        return self.array.rows * self.array.cols

    @property
    def main_cores(self) -> int:
        """Cores of the main kind (all of them without groups)."""
        return self.cores - sum(group.cores for group in self.groups)

    @property
    def total_pes(self) -> int:
        """MAC units over every core of every kind."""
        return sum(len(kind.cores) * kind.design.pes for kind in core_kinds(self))

    @property
    def dram_bytes_per_cycle(self) -> float:
        """DRAM bandwidth in bytes per accelerator clock cycle."""
        return self.dram.bandwidth_gb_s * 1e3 / self.clock_mhz

    @property
    def dram_latency_cycles(self) -> int:
        return math.ceil(self.dram.latency_ns * self.clock_mhz / 1e3)

    def bits(self, kind: str) -> int:
        """Bits per element of a kind of tensor (:data:`TENSOR_KINDS`): its precision, or the word size."""
        return getattr(self.precision, f"{kind}_bits") or 8 * self.word_bytes

    @property
    def vector_bits(self) -> int:
        """Width of a vector-unit lane: ``vector.bits``, or the wider of the activations and logits."""
        return self.vector.bits or max(self.bits("activation"), self.bits("softmax"))

    def vector_passes(self, kind: str) -> int:
        """Passes a lane makes per element of a kind of tensor: one, or more where it is wider than the lane."""
        return math.ceil(self.bits(kind) / self.vector_bits)

    def element_bytes(self, kind: str) -> float:
        """Bytes per element of a kind of tensor (a fraction below 8 bits: 4-bit weights pack two to a byte)."""
        return self.bits(kind) / 8

    def half_buffer_bytes(self, operand: str) -> int:
        """Bytes of one half of an operand's double buffer ('input', 'weight' or 'output')."""
        return int(getattr(self.sram, f"{operand}_kib") * 1024) // 2

    def to_dict(self) -> dict:
        """The resolved config as plain data (what results store beside their numbers)."""
        return asdict(self)


@dataclass(frozen=True)
class CoreKind:
    """One kind of core of an accelerator: which cores (by index), the design one of them maps ops with
    (a config of that kind's cores alone), and the op kinds it runs (None: every kind)."""

    name: str
    cores: tuple[int, ...]
    design: HardwareConfig
    runs: frozenset[OpKind] | None = None

    def can_run(self, kind: OpKind) -> bool:
        return self.runs is None or kind in self.runs


def core_kinds(config: HardwareConfig) -> list[CoreKind]:
    """The accelerator's kinds of core, main first, each with its cores' indices (one kind without groups)."""
    main = config.main_cores
    kinds = [CoreKind("main", tuple(range(main)), replace(config, cores=main, groups=()))]
    first = main
    for group in config.groups:
        design = replace(config, cores=group.cores, array=group.array, vector=group.vector, sram=group.sram,
                         groups=())
        kinds.append(CoreKind(group.name, tuple(range(first, first + group.cores)), design,
                              frozenset(OpKind(kind) for kind in group.runs)))
        first += group.cores
    return kinds


# ----------------------------------------------------------------------------- loading


def list_presets() -> list[str]:
    """Names of the accelerator presets shipped with the package, sorted."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml"))


def parse_array(text: str) -> tuple[int, int]:
    """``"32"``, ``"32x32"`` or ``"64x8"`` as (rows, columns)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise InputError(f"array size {text!r} is not understood; expected N or RxC with positive integers")
    return int(parts[0]), int(parts[-1])


def describe(config: HardwareConfig) -> str:
    """The resolved config as TOML, one table per unit, for ``attentionlite hardware show``, with the
    width each kind of tensor resolves to as a comment (the output stays a loadable config)."""
    widths = ", ".join(f"{kind} {config.bits(kind)}" for kind in TENSOR_KINDS)
    return to_toml(config).rstrip("\n") + f"\n\n# bits per element: {widths} (a 0 in [precision] is the word size)"


def load_hardware(name_or_path: str | Path, **overrides: Any) -> HardwareConfig:
    """A preset name or a TOML path, with knob overrides (see :func:`with_overrides`), validated."""
    presets = {path.stem: path for path in PRESET_DIR.glob("*.toml")}
    path = resolve_config_path(name_or_path, presets, "hardware")
    config = build(HardwareConfig, read_toml(path), str(path))
    _check(config, str(path))
    return with_overrides(config, **overrides)


def with_overrides(config: HardwareConfig, **overrides: Any) -> HardwareConfig:
    """``config`` with knobs changed, validated as a file would be.

    Overrides name a field by its dotted path (``"dram.bandwidth_gb_s"``), by its
    bare name when that is unique (``bandwidth_gb_s``, ``dataflow``, ``cores``),
    or one of the shortcuts ``array=(rows, cols)`` (or ``"RxC"``),
    ``sram_kib=..`` (every buffer), ``sparsity="skip"``, ``vector_lanes=..``;
    ``None`` values are ignored (unset CLI options).  A bad one is an
    :class:`OverrideError` that blames the first override the config cannot
    take on its own, or, when only their combination fails, the fewest of
    those that change the config that still fail together.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return config
    where = f"hardware {config.name!r} with overrides"
    try:
        return _overridden(config, given, where)
    except InputError as error:
        changing = {}
        for key, value in given.items():
            try:
                alone = _overridden(config, {key: value}, where)
            except InputError as refused:
                raise OverrideError(config.name, {key: value}, str(refused).removeprefix(f"{where}: ")) from None
            if alone != config:
                changing[key] = value
        raise OverrideError(config.name, _fewest_failing(config, changing, where),
                            str(error).removeprefix(f"{where}: ")) from None


def _fewest_failing(config: HardwareConfig, overrides: dict[str, Any], where: str) -> dict[str, Any]:
    """``overrides`` (which fail together) less each one without which the rest still fail."""
    blamed = dict(overrides)
    for key in list(blamed):
        rest = {other: value for other, value in blamed.items() if other != key}
        try:
            _overridden(config, rest, where)
        except InputError:
            blamed = rest
    return blamed


def _overridden(config: HardwareConfig, overrides: dict[str, Any], where: str) -> HardwareConfig:
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        values.update(_dotted_values(key, value, where))
    changed = with_values(config, values, where)
    _check(changed, where)
    return changed


# ----------------------------------------------------------------------------- overrides

_SHORTCUTS = {"sparsity": "sparsity.mode", "vector_lanes": "vector.lanes"}
_COMPOSITE = {"sram_kib": ("sram.input_kib", "sram.weight_kib", "sram.output_kib")}


def _dotted_values(key: str, value: Any, where: str) -> dict[str, Any]:
    """The config fields one override sets, by dotted path."""
    if key == "array":
        rows, cols = value if isinstance(value, tuple) and len(value) == 2 else parse_array(str(value))
        return {"array.rows": rows, "array.cols": cols}
    if key in _COMPOSITE:
        return dict.fromkeys(_COMPOSITE[key], value)
    key = _SHORTCUTS.get(key, key).replace("__", ".")
    leaves = leaf_paths(HardwareConfig)
    matches = [leaf for leaf in leaves if leaf == key or leaf.endswith(f".{key}")]
    if len(matches) != 1:
        raise InputError(f"{where}: unknown hardware override {key!r}; expected one of array, sram_kib, "
                         f"{', '.join(leaves)}")
    return {matches[0]: value}


# ----------------------------------------------------------------------------- validation


def _check(config: HardwareConfig, where: str) -> None:
    _check_groups(config, where)
    for index, kind in enumerate(core_kinds(config)):
        prefix = f"groups[{index - 1}]." if index else ""
        _check_buffers_hold_a_tile(kind.design, where, prefix)
        _check_overlap_has_fused_attention(kind.design, where, prefix)


def _check_groups(config: HardwareConfig, where: str) -> None:
    """Group cores leave at least one main core; a group runs known op kinds."""
    grouped = sum(group.cores for group in config.groups)
    if config.groups and config.main_cores < 1:
        raise InputError(f"{where}: 'cores' is {config.cores}; expected more than the groups' {grouped} cores "
                         "(at least one core of the main kind, which runs every op)")
    known = [kind.value for kind in OpKind]
    for index, group in enumerate(config.groups):
        unknown = [name for name in group.runs if name not in known]
        if unknown or not group.runs:
            raise InputError(f"{where}: 'groups[{index}].runs' is {list(group.runs)}; expected op kinds "
                             f"among {', '.join(known)}")


def _check_overlap_has_fused_attention(config: HardwareConfig, where: str, prefix: str) -> None:
    """The vector unit overlaps the array block by block, which only fused attention's blocks allow."""
    if config.vector.overlaps_array and not config.attention.fused:
        raise InputError(f"{where}: '{prefix}vector.overlaps_array' is true while 'attention.fused' is false; "
                         "expected attention.fused = true too (the softmax overlaps the array only on blocks "
                         "that stay on chip)")


# The kinds of tensor each buffer holds (precision.py): the input buffer also takes probabilities, the
# weight buffer a product's second activation, the output buffer logits and partial sums.
BUFFER_TENSORS = {"input": ("activation", "softmax"), "weight": ("weight", "activation"),
                  "output": ("activation", "softmax", "accumulator")}


def _check_buffers_hold_a_tile(config: HardwareConfig, where: str, prefix: str = "") -> None:
    """Each half buffer must hold one array-sized tile (R x C elements of the widest tensor it holds)."""
    for operand, kinds in BUFFER_TENSORS.items():
        tile_bytes = math.ceil(config.pes * max(config.element_bytes(kind) for kind in kinds))
        if config.half_buffer_bytes(operand) < tile_bytes:
            raise InputError(
                f"{where}: '{prefix}sram.{operand}_kib' is {getattr(config.sram, f'{operand}_kib')}; expected at "
                f"least {2 * tile_bytes / 1024:g} KiB (two halves of one {config.array.rows}x{config.array.cols} "
                "tile)"
            )
