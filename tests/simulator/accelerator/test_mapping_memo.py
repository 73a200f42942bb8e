"""The mapping memo: an op's mapping depends only on one core's design, so design points share it."""

import os
import subprocess
import sys
from dataclasses import fields, replace

import numpy as np
import pytest

import attentionlite as al
from attentionlite.simulator.accelerator import mapping
from attentionlite.simulator.accelerator.hardware import (
    AreaTable,
    DramConfig,
    EnergyTable,
    HardwareConfig,
    load_hardware,
)
from attentionlite.simulator.accelerator.memory import OnChip, OpWork, TileStream


def plain(value):
    """An OpWork (or a part of it) as nested plain data, numpy arrays as lists, for equality."""
    if isinstance(value, OpWork | TileStream):
        return {item.name: plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def other_everything_mapping_ignores(config: HardwareConfig) -> HardwareConfig:
    """``config`` with a different value in every field of NOT_READ_BY_MAPPING."""
    changed = replace(config, name="other", description="other", cores=config.cores + 3, clock_mhz=123.0,
                      dram=DramConfig(bandwidth_gb_s=1.5, latency_ns=999.0),
                      energy=EnergyTable(mac_pj=9.0, dram_pj_per_bit=1.0), area=AreaTable(sram_um2_per_bit=9.0),
                      fold_batch_norm=not config.fold_batch_norm)
    assert {item.name for item in fields(config)
            if getattr(changed, item.name) != getattr(config, item.name)} == mapping.NOT_READ_BY_MAPPING
    return changed


def map_fresh(op, config, on_chip, parts):
    mapping._MAPPED.values.clear()
    return plain(mapping.map_op(op, config, on_chip, parts))


@pytest.mark.parametrize("sparsity, window_mapping", [("none", "blocked"), ("skip", "gathered"), ("columns", "blocked")])
def test_no_mapper_reads_the_fields_the_memo_ignores(sparsity, window_mapping):
    config = load_hardware("paa-default", array=(8, 16), sparsity=sparsity, window_mapping=window_mapping,
                           input_kib=4, weight_kib=4, output_kib=4)  # small buffers: tiles split, operands spill
    other = other_everything_mapping_ignores(config)
    ops = [op for model in ("resnet26", "sasa26_homogeneous", "sasa26_hybrid")
           for op in al.trace(model, density=0.1).ops_in_order()]
    for op in ops[::3]:
        for on_chip, parts in ((OnChip(), 1), (OnChip(frozenset({0}), True), 1), (OnChip(), 4)):
            assert map_fresh(op, config, on_chip, parts) == map_fresh(op, other, on_chip, parts), op.name


def test_a_changed_core_design_is_mapped_anew():
    op = al.trace("resnet26").ops_in_order()[0]
    small, large = load_hardware("paa-default", array=(8, 8)), load_hardware("paa-default", array=(32, 32))
    assert mapping.map_op(op, small).folds != mapping.map_op(op, large).folds
    assert mapping.map_op(op, small) is mapping.map_op(op, replace(small, cores=7))  # shared, not recomputed


def test_the_memo_forgets_the_least_recently_used_beyond_its_size():
    memo: mapping.Memo[int] = mapping.Memo(2)
    calls = []

    def compute(value):
        return lambda: calls.append(value) or value

    memo.get("a", compute(1))
    memo.get("b", compute(2))
    memo.get("a", compute(1))  # a is now the most recent
    memo.get("c", compute(3))  # evicts b
    memo.get("a", compute(1))
    memo.get("b", compute(2))
    assert calls == [1, 2, 3, 2]


def test_equal_designs_are_one_object_and_configs_are_not_confused():
    config = load_hardware("paa-default")
    twin = replace(config, cores=3)  # another object, the same core design
    assert mapping.core_design(config) is mapping.core_design(twin)
    assert mapping.core_design(config) != mapping.core_design(replace(config, word_bytes=2))


def test_a_core_design_unpickled_in_another_process_is_hashed_there(tmp_path):
    # strings hash with a per-process seed: a hash carried across processes would miss every memo lookup
    pickled = tmp_path / "design.pickle"
    dump = ("import pickle, sys; from attentionlite.simulator.accelerator import hardware, mapping; "
            "open(sys.argv[1], 'wb').write(pickle.dumps(mapping.core_design(hardware.load_hardware('paa-default'))))")
    load = ("import pickle, sys; from attentionlite.simulator.accelerator import mapping; "
            "d = pickle.loads(open(sys.argv[1], 'rb').read()); print(hash(d) == hash(mapping.CoreDesign(d.fields)))")
    for script, seed in ((dump, "1"), (load, "2")):
        done = subprocess.run([sys.executable, "-c", script, str(pickled)], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
