"""Measured PyTorch latency beside the CPU prediction, per module and end to end.

Ops carry the module path they were lowered from (``Op.source``).  Forward
hooks on those modules (torchdistill's way: no change to the model's forward)
time each module's *exclusive* time: its own time less that of the timed
modules inside it, so a residual block's row holds its add and ReLU and not its
convolutions.  An op whose source is not a module (a function called in a
forward) counts toward the nearest enclosing module, except the attention
layers' softmax and weighted sum: those are submodules of their layer
(``"<layer>.softmax"``, ``"<layer>.weighted_sum"``, see
:mod:`attentionlite.model.nets.layers`) timed as units of their own, so every
unit times one kind of op and the calibration can fit each kind on its own
(the layer's row keeps the window logits).  The end-to-end time is measured without hooks, whose own cost (a few
microseconds per module) would otherwise inflate it.  Every time is the median
of repeats after warm-up, run with as many PyTorch threads as the CPU config
has cores (with one thread, on its CPU-time clock: see :class:`Repeats`).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from attentionlite.simulator.cpu.roofline import CpuResult
from attentionlite.simulator.graph.ops import OpKind

if TYPE_CHECKING:  # torch is imported where a model is timed, so predicting a saved graph stays fast
    import torch
    from torch import nn

# Op kinds timed apart from their attention layer, as the layer's submodule of the same name.
TIMED_PARTS = (OpKind.SOFTMAX.value, OpKind.WEIGHTED_SUM.value)

Item = TypeVar("Item")


@dataclass(frozen=True)
class Repeats:
    """How long each timing runs: warm-up calls, then the median of ``timed`` calls on ``clock``."""

    warmup: int
    timed: int
    clock: Callable[[], float] = time.perf_counter

    @classmethod
    def for_mode(cls, quick: bool, threads: int) -> Repeats:
        """With one thread the clock is that thread's CPU time: it leaves out the time other processes
        hold the core, so timings on a shared machine stay steady.  More threads need wall time."""
        clock = time.thread_time if threads == 1 else time.perf_counter
        return cls(warmup=2, timed=5, clock=clock) if quick else cls(warmup=3, timed=15, clock=clock)


def median_seconds(run: Callable[[], object], repeats: Repeats) -> float:
    """Median time of ``run()`` after warm-up: robust to the odd preempted call."""
    for _ in range(repeats.warmup):
        run()
    samples = []
    for _ in range(repeats.timed):
        start = repeats.clock()
        run()
        samples.append(repeats.clock() - start)
    return statistics.median(samples)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run PyTorch with ``threads`` intra-op threads (None: as it is), restoring the count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ModuleComparison:
    """One timed unit (a module, or a timed function in it): its ops, their predicted time, its measured time."""

    module: str
    kinds: str
    ops: int
    predicted_s: float
    measured_s: float

    @property
    def relative_error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_s - self.measured_s) / self.measured_s if self.measured_s else float("inf")


@dataclass(frozen=True)
class Measurement:
    """Predicted vs measured latency of one model on this host."""

    predicted_s: float
    measured_s: float
    modules: tuple[ModuleComparison, ...]

    @property
    def end_to_end_error(self) -> float:
        return (self.predicted_s - self.measured_s) / self.measured_s

    @property
    def median_module_error(self) -> float:
        """Median of |relative error| over the modules (the per-op fidelity figure)."""
        return statistics.median(abs(row.relative_error) for row in self.modules) if self.modules else 0.0

    def summary(self) -> dict:
        return {
            "predicted_s": self.predicted_s,
            "measured_s": self.measured_s,
            "end_to_end_error": self.end_to_end_error,
            "median_module_error": self.median_module_error,
            "modules": [{**asdict(row), "relative_error": row.relative_error} for row in self.modules],
        }


def measure(model: nn.Module, result: CpuResult, input_shape: Sequence[int], quick: bool = False) -> Measurement:
    """Time ``model`` on zeros of ``input_shape`` and compare with ``result`` unit by unit."""
    end_to_end, times = time_model(model, [row.source for row in result.rows], input_shape, result.cpu.compute.cores, quick)
    return compare(result, end_to_end, times)


def time_model(model: nn.Module, sources: Iterable[str], input_shape: Sequence[int], threads: int,
               quick: bool = False) -> tuple[float, UnitTimes]:
    """Seconds of one forward pass of ``model`` on zeros of ``input_shape`` with ``threads`` PyTorch
    threads, and the exclusive times of the units the ops from ``sources`` ran in."""
    import torch

    example = torch.zeros(tuple(input_shape))
    model.eval()
    with torch_threads(threads) as used, torch.inference_mode():
        repeats = Repeats.for_mode(quick, used)
        end_to_end = median_seconds(lambda: model(example), repeats)
        times = time_units(model, example, sources, repeats)
    return end_to_end, times


def compare(result: CpuResult, end_to_end_s: float, times: UnitTimes) -> Measurement:
    """The predicted ``result`` beside measured times, unit by unit and end to end."""
    groups = times.group(result.rows, lambda row: (row.source, row.kind))
    rows = tuple(_comparison(unit, rows, times.seconds[unit]) for unit, rows in groups.items())
    return Measurement(predicted_s=result.latency_s, measured_s=end_to_end_s, modules=rows)


@dataclass(frozen=True)
class UnitTimes:
    """Measured exclusive seconds per timed unit: a module path, or ``"<module>:<function>"``."""

    modules: frozenset[str]  # every module path of the model ("" is the model itself)
    seconds: Mapping[str, float]

    def unit(self, source: str, kind: str) -> str:
        """The unit that timed an op: its module's timed part for its kind if it has one, else the module."""
        module = _enclosing(source, self.modules)
        part = f"{module}.{kind}"
        return part if kind in TIMED_PARTS and part in self.seconds else module

    def group(self, items: Iterable[Item], source_and_kind: Callable[[Item], tuple[str, str]]) -> dict[str, list[Item]]:
        """``items`` (ops or their predictions) by the unit that timed them, in order of first appearance."""
        groups: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            groups[self.unit(*source_and_kind(item))].append(item)
        return dict(groups)


def _enclosing(source: str, modules: Iterable[str]) -> str:
    """The longest module path that is ``source`` or a prefix of it ("" is the model itself)."""
    path = source
    while path and path not in modules:
        path = path.rpartition(".")[0]
    return path


def _comparison(module: str, rows: list, measured: float) -> ModuleComparison:
    kinds = "+".join(sorted({row.kind for row in rows}))
    return ModuleComparison(module, kinds, len(rows), sum(row.seconds for row in rows), measured)


def time_units(model: nn.Module, example: torch.Tensor, sources: Iterable[str], repeats: Repeats) -> UnitTimes:
    """Median over repeats of the exclusive time, in one forward pass, of every module that ops
    come from (``sources``) and of their timed parts, less the timer's own cost."""
    modules = frozenset(name for name, _ in model.named_modules())
    hooked = {_enclosing(source, modules) for source in sources}
    hooked |= {f"{module}.{part}" for module in hooked for part in TIMED_PARTS if f"{module}.{part}" in modules}
    inside, outside = _hook_costs(example, repeats)
    timer, passes = _timed_passes(model, example, hooked, repeats)
    seconds = {
        unit: max(0.0, statistics.median(p[unit] for p in passes)
                  - inside * timer.calls[unit] - outside * timer.child_calls[unit])
        for unit in set(hooked).union(*passes)
    }
    return UnitTimes(modules, seconds)


def _timed_passes(model: nn.Module, example: torch.Tensor, modules: set[str], repeats: Repeats,
                  ) -> tuple[_ExclusiveTimer, list[defaultdict[str, float]]]:
    timer = _ExclusiveTimer(repeats.clock)
    with _hooked(timer, model, modules):
        for _ in range(repeats.warmup):
            model(example)
        passes: list[defaultdict[str, float]] = []
        for _ in range(repeats.timed):
            timer.reset()
            model(example)
            passes.append(defaultdict(float, timer.totals))
    return timer, passes


def _hook_costs(example: torch.Tensor, repeats: Repeats) -> tuple[float, float]:
    """Seconds the timer adds to a module's own time (inside) and to its parent's per child (outside).

    Measured on a chain of identity modules, whose own work is nil.
    """
    from torch import nn

    chain_length = 32
    probe = nn.Sequential(*[nn.Identity() for _ in range(chain_length)])
    names = {name for name, _ in probe.named_modules()}
    _, passes = _timed_passes(probe, example, names, repeats)
    inside = statistics.median(statistics.mean(p[str(i)] for i in range(chain_length)) for p in passes)
    outside = statistics.median(p[""] for p in passes) / chain_length
    return inside, outside


class _ExclusiveTimer:
    """A unit's start pushes a frame; its end pops it and charges its time less its children's."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.child_calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [unit, start time, seconds spent in timed children]

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()
        self.child_calls.clear()

    @property
    def current(self) -> str:
        """The innermost unit running now ("" outside any)."""
        return self._stack[-1][0] if self._stack else ""

    def enter(self, unit: str) -> None:
        self._stack.append([unit, self.clock(), 0.0])

    def leave(self) -> None:
        unit, start, children = self._stack.pop()
        elapsed = self.clock() - start
        self.totals[unit] += elapsed - children
        self.calls[unit] += 1
        if self._stack:
            self._stack[-1][2] += elapsed
            self.child_calls[self._stack[-1][0]] += 1


@contextmanager
def _hooked(timer: _ExclusiveTimer, model: nn.Module, modules: set[str]) -> Iterator[None]:
    """Time ``modules`` of ``model`` by pre- and post-forward hooks; remove the hooks after."""
    handles = []
    for path, module in model.named_modules():
        if path in modules:
            handles.append(module.register_forward_pre_hook(lambda *_, p=path: timer.enter(p)))
            handles.append(module.register_forward_hook(lambda *_: timer.leave()))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def comparison_table(measurement: Measurement) -> str:
    """Fixed-width per-module table: predicted, measured, error; then the end-to-end line."""
    header = f"{'module':<40} {'kinds':<42} {'ops':>3} {'pred ms':>9} {'meas ms':>9} {'error':>7}"
    lines = [header, "-" * len(header)]
    for row in measurement.modules:
        lines.append(
            f"{row.module or '(model)':<40} {row.kinds:<42} {row.ops:>3} {row.predicted_s * 1e3:>9.3f} "
            f"{row.measured_s * 1e3:>9.3f} {row.relative_error:>+7.0%}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"end to end: predicted {measurement.predicted_s * 1e3:.2f} ms, measured {measurement.measured_s * 1e3:.2f} ms "
        f"({measurement.end_to_end_error:+.0%}); median per-module error {measurement.median_module_error:.0%}"
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class CpuPrediction:
    """What ``attentionlite cpu`` shows: the prediction, and the measurement beside it when one was made."""

    result: CpuResult
    measurement: Measurement | None = None

    def text(self) -> str:
        """The per-op table, then (measured) the per-unit comparison."""
        table = self.result.table()
        return table if self.measurement is None else f"{table}\n\n{comparison_table(self.measurement)}"

    def write(self, out_dir: str | Path) -> Path:
        """``ops.csv`` and ``summary.json`` (with the measurement, if any) in ``out_dir``, atomically."""
        extra = {} if self.measurement is None else {"measured": self.measurement.summary()}
        return self.result.write(out_dir, extra)
