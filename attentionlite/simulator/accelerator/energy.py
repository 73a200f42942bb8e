"""Energy from access counts: events x energy per event, plus leakage x time.

``E = MACs * e_mac + vector ops * e_vec + SRAM bytes * e_sram + DRAM bytes *
e_dram + P_leak * cores * t``.  The per-event table is the hardware config's
``[energy]`` section (defaults: 45 nm, Horowitz ISSCC 2014 with Eyeriss's
cost ratios; see :class:`~attentionlite.simulator.hardware.EnergyTable`).
"""

from __future__ import annotations

from dataclasses import dataclass

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import OpWork

COMPONENTS = ("mac", "vector", "sram", "dram", "leakage")


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


def op_energy(work: OpWork, busy_core_cycles: int, config: HardwareConfig) -> Energy:
    """The dynamic energy of ``work`` plus leakage of the cores over the cycles they spent on it."""
    table = config.energy
    return Energy(
        mac=work.macs * table.mac_pj,
        vector=work.vector_ops * table.vector_op_pj,
        sram=(work.sram_read_bytes + work.sram_write_bytes) * table.sram_pj_per_byte,
        dram=(work.dram_read_bytes + work.dram_write_bytes) * table.dram_pj_per_byte,
        leakage=leakage_pj(busy_core_cycles, config),
    )
