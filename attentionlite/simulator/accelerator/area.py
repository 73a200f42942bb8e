"""Silicon area of an accelerator: its cores' arrays, vector units and buffers, from the ``[area]`` table.

``area = sum over kinds of core: cores x (PEs x PE + lanes x lane + SRAM bits x um^2 per bit)``, with
components at the widths of ``[precision]`` (each the word size, ``8 x word_bytes``, unless set) scaled
from the table's 32-bit figures (:class:`~attentionlite.simulator.accelerator.hardware.AreaTable` names
the sources):

* a PE: a multiplier of the weight width by the activation width ``a x w``, an accumulator adder of
  the accumulator width (unset: twice the wider input, as Aladdin's integer MAC pairs an adder twice
  the multiplier's width), and registers for its input, weight and accumulator, plus a second weight
  register where folds overlap (``array.overlap_folds``: the next fold's operand is preloaded under
  the stream);
* a vector-unit lane at ``b`` (``vector.bits``; unset, the wider of the activation and softmax widths): a ``b x b``
  multiplier, a ``2b``-bit adder and a ``b``-bit comparator (max); the exponential's lookup table and
  the reciprocal are not counted;
* the array's output path (``array.fuse_post_ops``): one such lane per array column, counted with
  the array (its multiplier scales a batch norm, its adder shifts it or adds the residual, its
  comparator clamps a ReLU);
* SRAM: every operand buffer at its full (double-buffered) capacity.

Not counted: the DRAM controller and PHY, the on-chip network, and control; so the figure is a lower
bound on a die, and it compares design points by what they add: PEs, lanes and buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

from attentionlite.simulator.accelerator.hardware import AreaTable, HardwareConfig, core_kinds

TABLE_BITS = 32  # the width the table's multiplier, adder and comparator figures are for


@dataclass(frozen=True)
class Area:
    """Area by component, um^2: MAC arrays, vector units, SRAM buffers."""

    array_um2: float = 0.0
    vector_um2: float = 0.0
    sram_um2: float = 0.0

    @property
    def total_um2(self) -> float:
        return self.array_um2 + self.vector_um2 + self.sram_um2

    @property
    def total_mm2(self) -> float:
        return self.total_um2 * 1e-6

    def __add__(self, other: Area) -> Area:
        return Area(self.array_um2 + other.array_um2, self.vector_um2 + other.vector_um2,
                    self.sram_um2 + other.sram_um2)

    def __mul__(self, count: int) -> Area:
        return Area(self.array_um2 * count, self.vector_um2 * count, self.sram_um2 * count)


def multiplier_um2(bits: int, table: AreaTable, other_bits: int | None = None) -> float:
    """A ``bits x other_bits`` multiplier (square unless ``other_bits`` is given): area scales with the
    product of its input widths."""
    return table.multiplier_um2 * bits * (other_bits or bits) / TABLE_BITS ** 2


def adder_um2(bits: int, table: AreaTable) -> float:
    return table.adder_um2 * bits / TABLE_BITS


def mac_um2(bits: int, table: AreaTable) -> float:
    """A ``bits x bits`` multiplier and the ``2 x bits`` adder it accumulates into (PE and vector lane alike)."""
    return multiplier_um2(bits, table) + adder_um2(2 * bits, table)


def accumulator_bits(config: HardwareConfig) -> int:
    """The PE's accumulator width: the precision's, or twice the multiplier's wider input."""
    return config.precision.accumulator_bits or 2 * max(config.bits("weight"), config.bits("activation"))


def pe_um2(config: HardwareConfig) -> float:
    """One PE of ``config``'s array: its multiplier, accumulator adder and registers."""
    table, weight, activation = config.area, config.bits("weight"), config.bits("activation")
    accumulator = accumulator_bits(config)
    register_bits = activation + weight + accumulator + (weight if config.array.overlap_folds else 0)
    return (multiplier_um2(weight, table, activation) + adder_um2(accumulator, table)
            + register_bits * table.register_um2_per_bit)


def lane_um2(config: HardwareConfig) -> float:
    """One vector-unit lane: a MAC and a comparator, as wide as the activations and logits it works on."""
    table, bits = config.area, config.vector_bits
    return mac_um2(bits, table) + table.comparator_um2 * bits / TABLE_BITS


def core_area(config: HardwareConfig) -> Area:
    """One core of the design ``config`` describes (its main kind's)."""
    sram_bits = (config.sram.input_kib + config.sram.weight_kib + config.sram.output_kib) * 1024 * 8
    output_path_lanes = config.array.cols if config.array.fuse_post_ops else 0
    return Area(config.pes * pe_um2(config) + output_path_lanes * lane_um2(config),
                config.vector.lanes * lane_um2(config), sram_bits * config.area.sram_um2_per_bit)


def accelerator_area(config: HardwareConfig) -> Area:
    """Every core of every kind."""
    total = Area()
    for kind in core_kinds(config):
        total = total + core_area(kind.design) * len(kind.cores)
    return total


def area_comment(config: HardwareConfig) -> str:
    """The area as TOML comment lines, for ``hardware show`` (the output stays a loadable config)."""
    area = accelerator_area(config)
    return (f"# area at {config.area.node_nm:g} nm: {area.total_mm2:.3f} mm^2 = arrays {area.array_um2 * 1e-6:.3f}"
            f" + vector units {area.vector_um2 * 1e-6:.3f} + SRAM {area.sram_um2 * 1e-6:.3f}\n"
            "# (not counted: the DRAM controller and PHY, the on-chip network, control)")
