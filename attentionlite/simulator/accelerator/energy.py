"""Energy from access counts: events x energy per event, plus leakage x time.

``E = MACs * e_mac + vector ops * e_vec + sum over buffers (SRAM bytes * e_sram(bank))
+ DRAM bytes * e_dram + P_leak * cores * t``.  The per-event table is the
hardware config's ``[energy]`` section (45 nm figures from Horowitz, ISSCC
2014, and each preset's memory technology; see
:class:`~attentionlite.simulator.accelerator.hardware.EnergyTable`).  Each
operand buffer is priced at its own bank size (half its double buffer), and
its bytes include the DRAM fills written into it and the drains read out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import OPERANDS, OpWork

COMPONENTS = ("mac", "vector", "sram", "dram", "leakage")
VECTOR_TABLE_BITS = 32  # the lane width the table's vector_op_pj is for


@dataclass(frozen=True)
class Energy:
    """Energy by component, in picojoules."""

    mac: float = 0.0
    vector: float = 0.0
    sram: float = 0.0
    dram: float = 0.0
    leakage: float = 0.0

    @property
    def total(self) -> float:
        return sum(getattr(self, name) for name in COMPONENTS)


def leakage_pj(core_cycles: int, config: HardwareConfig) -> float:
    """Leakage of cores powered for ``core_cycles`` cycles in total: mW x s = 1e9 pJ."""
    seconds = core_cycles / (config.clock_mhz * 1e6)
    return config.energy.leakage_mw_per_core * seconds * 1e9


def mac_pj(config: HardwareConfig) -> float:
    """One MAC: the table's figure at the word width, scaled by the product of the multiplier's input
    widths (its multiplier dominates: 0.2 of Horowitz's 0.23 pJ at 8 bits, and his 32-bit multiply,
    3.1 pJ, is 15.5x the 8-bit one, where the product of widths gives 16x)."""
    word_bits = 8 * config.word_bytes
    return config.energy.mac_pj * config.bits("weight") * config.bits("activation") / word_bits ** 2


def sram_pj_per_byte(config: HardwareConfig) -> tuple[float, ...]:
    """Energy of a byte in each operand buffer (in :data:`OPERANDS` order): a bank is one half of its
    double buffer."""
    return tuple(config.energy.sram_pj_per_byte(config.half_buffer_bytes(buffer) / 1024) for buffer in OPERANDS)


def op_energy(work: OpWork, busy_core_cycles: int, config: HardwareConfig, sram_prices: tuple[float, ...]) -> Energy:
    """The dynamic energy of ``work`` plus leakage of the cores over the cycles they spent on it;
    ``sram_prices`` is :func:`sram_pj_per_byte` of ``config`` (taken once per design, not per op)."""
    table, traffic = config.energy, work.traffic
    return Energy(
        mac=work.macs * mac_pj(config),
        vector=work.vector_ops * table.vector_op_pj * config.vector_bits / VECTOR_TABLE_BITS,
        sram=sum(traffic.sram_bytes(buffer) * price for buffer, price in zip(OPERANDS, sram_prices)),
        dram=(traffic.dram_read + traffic.dram_write) * table.dram_pj_per_byte,
        leakage=leakage_pj(busy_core_cycles, config),
    )
