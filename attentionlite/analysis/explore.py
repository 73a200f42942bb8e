"""Multi-objective search of design spaces too big to enumerate (optuna: NSGA-II or TPE).

A *space* is a TOML file whose every key is a knob, as a sweep names it
(``array``, ``dataflow``, ``cores``, ``dram.bandwidth_gb_s``, ``sram_kib``,
``schedule``, any hardware field), and whose value is the list of values the
knob may take; the space is their cross product::

    array = ["8x8", "16x16", "32x32", "64x64"]
    dataflow = ["os", "ws", "is"]
    cores = [1, 2, 4, 8, 16]
    "dram.bandwidth_gb_s" = [12.8, 25.6, 51.2, 102.4]
    sram_kib = [32, 64, 128, 256, 512]

Each model gets its own study (a design for each model), with a sampler
seeded by ``seed``: NSGA-II (Deb et al., "A fast and elitist multiobjective
genetic algorithm: NSGA-II", IEEE TEVC 2002, as ``optuna.samplers.NSGAIISampler``)
or multi-objective TPE (Ozaki et al., "Multiobjective tree-structured Parzen
estimator", JAIR 2022, ``optuna.samplers.TPESampler``).  Trials are asked in
batches (one NSGA-II generation at a time) and simulated on the sweep's
executors (this host's processes or a Ray cluster), so every trial's row is
exactly the sweep's row for that point.  A combination the hardware cannot be
(a buffer too small for the array's tile) is a failed trial, which the
samplers skip.  Constraints (``area_mm2<=5``) are passed to the sampler as
constraint values and mark a trial infeasible; the Pareto front is over the
feasible trials.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attentionlite.analysis.sweep import (
    SweepTask,
    apply_point,
    check_executor,
    finished_rows,
    pareto_mask,
    point_columns,
    ray_cluster,
)
from attentionlite.errors import InputError, OverrideError
from attentionlite.files import rows_to_csv, write_text_folder
from attentionlite.simulator.accelerator.hardware import HardwareConfig, parse_array
from attentionlite.simulator.graph.graph import OpGraph

# objective name -> (row column, optuna direction)
OBJECTIVES = {
    "latency": ("latency_s", "minimize"),
    "energy": ("energy_per_image_j", "minimize"),
    "edp": ("edp_per_image", "minimize"),
    "dram": ("dram_bytes_per_image", "minimize"),
    "pes": ("pes", "minimize"),
    "area": ("area_mm2", "minimize"),
    "cycles": ("cycles", "minimize"),
    "throughput": ("throughput", "maximize"),
    "utilisation": ("utilisation", "maximize"),
}
SAMPLER_NAMES = {"nsga2": "NSGA-II", "tpe": "MOTPE"}  # as their papers name them
SAMPLERS = tuple(SAMPLER_NAMES)
DEFAULT_OBJECTIVES = ("latency", "energy", "area")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


# ----------------------------------------------------------------------------- what is searched


@dataclass(frozen=True)
class Space:
    """Knob -> the values it may take (arrays as (rows, cols)), in the file's order."""

    knobs: dict[str, list]

    @property
    def size(self) -> int:
        return math.prod(len(values) for values in self.knobs.values())

    @property
    def columns(self) -> list[str]:
        """The CSV columns that name a point of this space (an array is two)."""
        return list(point_columns({knob: values[0] for knob, values in self.knobs.items()}))


def load_space(path: str | Path, config: HardwareConfig) -> Space:
    """Read and check a space file: every knob known and every value one ``config`` accepts."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"space file {path} does not exist; expected a TOML file of knob = [values]") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"space file {path}: not readable TOML ({error}); expected knob = [values] lines") from None
    if not data:
        raise InputError(f"space file {path} names no knob; expected knob = [values] lines")
    knobs = {}
    for knob, values in data.items():
        if not isinstance(values, list) or not values or any(isinstance(v, dict | list) for v in values):
            raise InputError(f"space file {path}: {knob!r} is {values!r}; expected a non-empty list of values")
        knobs[knob] = [parse_array(str(v)) if knob == "array" and isinstance(v, str | int) else v for v in values]
        for value in knobs[knob]:
            try:
                apply_point(config, {knob: value})
            except OverrideError as error:  # the file's line names the knob: the problem is what is left to say
                raise InputError(f"space file {path}: {knob} = {value!r}: {error.problem}") from None
    return Space(knobs)


@dataclass(frozen=True)
class Objective:
    name: str
    column: str
    direction: str


def parse_objectives(names: Sequence[str]) -> list[Objective]:
    known = ", ".join(OBJECTIVES)
    if not names:
        raise InputError(f"no objectives; expected some of {known}")
    objectives = []
    for name in names:
        if name not in OBJECTIVES:
            raise InputError(f"objective {name!r} is not known; expected some of {known}")
        objectives.append(Objective(name, *OBJECTIVES[name]))
    if len({o.name for o in objectives}) != len(objectives):
        raise InputError(f"objectives {', '.join(names)} repeat one; expected each once")
    return objectives


@dataclass(frozen=True)
class Constraint:
    """``column <= limit`` or ``column >= limit`` on a trial's row."""

    column: str
    operator: str
    limit: float

    def violation(self, row: Mapping) -> float:
        """Positive when violated, as optuna's constraint values are."""
        value = float(row[self.column])
        return value - self.limit if self.operator == "<=" else self.limit - value

    def __str__(self) -> str:
        return f"{self.column}{self.operator}{self.limit:g}"


def parse_constraint(text: str) -> Constraint:
    match = _CONSTRAINT.match(text)
    columns = sorted({column for column, _ in OBJECTIVES.values()} | {"stall_share"})
    if not match or match.group(1) not in columns:
        raise InputError(f"constraint {text!r}: expected COLUMN<=VALUE or COLUMN>=VALUE with COLUMN one of "
                         f"{', '.join(columns)} (e.g. area_mm2<=5)")
    try:
        limit = float(match.group(3))
    except ValueError:
        raise InputError(f"constraint {text!r}: {match.group(3)!r} is not a number") from None
    return Constraint(match.group(1), match.group(2), limit)


@dataclass(frozen=True)
class Search:
    """What a search explores and how: the space, trials per model, objectives, constraints, sampler and seed."""

    space: Space
    trials: int = 500
    objectives: tuple[Objective, ...] = field(default_factory=lambda: tuple(parse_objectives(DEFAULT_OBJECTIVES)))
    constraints: tuple[Constraint, ...] = ()
    sampler: str = "nsga2"
    seed: int = 0

    def described(self) -> dict:
        """The search as plain data for a report's records."""
        return {"space": {knob: [list(v) if isinstance(v, tuple) else v for v in values]
                          for knob, values in self.space.knobs.items()},
                "trials": self.trials, "objectives": [o.name for o in self.objectives],
                "constraints": [str(c) for c in self.constraints], "sampler": self.sampler, "seed": self.seed}

    @property
    def feasible_means(self) -> str:
        """What a feasible trial is, in words: "buildable and area_mm2<=5"."""
        return " and ".join(["buildable", *(str(c) for c in self.constraints)])


def search_settings(space: str | Path, config: HardwareConfig, trials: int | None = None,
                    objectives: Sequence[str] | None = None, constraints: Sequence[str] = (),
                    sampler: str | None = None, seed: int | None = None) -> Search:
    """A search read and checked before anything slow; None takes each setting's default."""
    defaults = Search(Space({}))
    found = Search(load_space(space, config), trials=defaults.trials if trials is None else trials,
                   objectives=defaults.objectives if objectives is None else tuple(parse_objectives(objectives)),
                   constraints=tuple(parse_constraint(text) for text in constraints),
                   sampler=sampler or defaults.sampler, seed=defaults.seed if seed is None else seed)
    _check_settings(found.trials, found.sampler, found.seed)
    return found


# ----------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class Exploration:
    """Every trial's row (with its model, trial number and feasibility), each model's Pareto front, and the search
    that found them."""

    trials: list[dict]
    front: list[dict]
    search: Search

    @property
    def feasible(self) -> list[dict]:
        """The trials that are buildable designs within every constraint, in trial order."""
        return [row for row in self.trials if row["feasible"]]

    def front_flags(self, rows: Sequence[Mapping]) -> list[bool]:
        """For each row (a trial's), whether it is on its model's front."""
        on_front = {(row["model"], row["trial"]) for row in self.front}
        return [(row["model"], row["trial"]) in on_front for row in rows]

    def files(self) -> dict[str, str]:
        """``trials.csv`` (every trial) and ``pareto.csv`` (each model's front), as text."""
        return {"trials.csv": rows_to_csv(self.trials), "pareto.csv": rows_to_csv(self.front)}

    def write(self, out_dir: str | Path) -> Path:
        """:meth:`files` as one folder, replaced whole."""
        return write_text_folder(out_dir, self.files())


def explore(graphs: Mapping[str, OpGraph], config: HardwareConfig, search: Search, workers: int | None = None,
            engine: str = "local", address: str | None = None,
            on_done: Callable[[int], None] | None = None) -> Exploration:
    """``search.trials`` trials per model, in batches of one NSGA-II generation (or of the workers, for TPE)."""
    import optuna

    objectives = search.objectives
    check_search(search.trials, search.sampler, engine, search.seed, workers, address)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions: list[Any] = [o.direction for o in objectives]
    studies = {model: optuna.create_study(directions=directions,
                                          sampler=_sampler(search.sampler, search.seed)) for model in graphs}
    batch = _batch_size(search.sampler, workers)
    rows: list[dict] = []
    with ray_cluster(workers, address) if engine == "ray" else nullcontext():
        for start in range(0, search.trials, batch):
            asked = {model: [study.ask() for _ in range(min(batch, search.trials - start))]
                     for model, study in studies.items()}
            tasks: list[SweepTask] = []
            trial_of: dict[int, tuple[str, Any, dict]] = {}
            for model, model_trials in asked.items():
                for trial in model_trials:
                    point = {knob: _suggest(trial, knob, values) for knob, values in search.space.knobs.items()}
                    trial_of[len(tasks)] = (model, trial, point)
                    tasks.append((len(tasks), model, point))
            feasible = _feasible(tasks, config)
            simulated = dict(finished_rows(graphs, config, [tasks[i] for i in feasible], workers, engine, address))
            for index, (model, trial, point) in trial_of.items():
                rows.append(_tell(studies[model], trial, index, model, point, simulated.get(index), objectives,
                                  search.constraints))
            if on_done is not None:
                on_done(len(tasks))
    return Exploration(rows, _fronts(rows, objectives, search.space.columns), search)


def check_search(trials: int, sampler: str, engine: str, seed: int = 0, workers: int | None = None,
                 address: str | None = None) -> None:
    """The search's own settings and where it runs, checked before anything slow."""
    check_executor(engine, workers, address)
    _check_settings(trials, sampler, seed)


def _check_settings(trials: int, sampler: str, seed: int) -> None:
    if sampler not in SAMPLERS:
        raise InputError(f"sampler {sampler!r} is not known; expected one of {', '.join(SAMPLERS)}")
    if trials < 1:
        raise InputError(f"trials {trials}: expected at least 1")
    if not 0 <= seed < 2**32:  # the samplers' numpy generators take no other
        raise InputError(f"seed {seed}: expected an integer from 0 to 2**32 - 1")


def _sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _batch_size(sampler: str, workers: int | None) -> int:
    """NSGA-II: one generation (its population, 50) at a time; TPE learns from every trial: one per worker."""
    if sampler == "nsga2":
        return 50
    return max(1, workers or 2)


def _suggest(trial: Any, knob: str, values: list) -> Any:
    """A value of the knob for this trial (optuna's categorical values are scalars: arrays go as 'RxC')."""
    if knob == "array":
        return parse_array(trial.suggest_categorical(knob, [f"{r}x{c}" for r, c in values]))
    return trial.suggest_categorical(knob, values)


def _feasible(tasks: Sequence[SweepTask], config: HardwareConfig) -> list[int]:
    """The tasks whose point the hardware can be (its buffers hold the array's tile, ...)."""
    feasible = []
    for index, _, point in tasks:
        try:
            apply_point(config, point)
        except InputError:
            continue
        feasible.append(index)
    return feasible


def _tell(study: Any, trial: Any, index: int, model: str, point: dict, row: dict | None,
          objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> dict:
    """Report a trial's outcome to its study; its row for trials.csv."""
    import optuna

    head = {"model": model, "trial": trial.number, **point_columns(point)}
    if row is None:  # not a buildable design
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return {**head, "buildable": False, "feasible": False}
    violations = [constraint.violation(row) for constraint in constraints]
    for constraint, violation in zip(constraints, violations):  # what the samplers read (optuna >= 5)
        trial.set_constraint(str(constraint), violation)
    study.tell(trial, [float(row[o.column]) for o in objectives])
    return {**head, **row, "buildable": True, "feasible": all(v <= 0 for v in violations)}


def _fronts(rows: Sequence[dict], objectives: Sequence[Objective], design: Sequence[str]) -> list[dict]:
    """Per model, the feasible trials no other feasible trial of that model dominates; a design the sampler
    tried more than once (the same values of the ``design`` columns) appears once, as its first trial."""
    front = []
    columns = [o.column for o in objectives]
    for model in dict.fromkeys(row["model"] for row in rows):
        distinct = {tuple(row[c] for c in design): row for row in reversed(rows)
                    if row["model"] == model and row["feasible"]}  # reversed: the first trial of each wins
        candidates = sorted(distinct.values(), key=lambda row: row["trial"])
        if not candidates:
            continue
        signed = [{c: _signed(row[c], o.direction) for c, o in zip(columns, objectives)} for row in candidates]
        front += [row for row, keep in zip(candidates, pareto_mask(signed, columns)) if keep]
    return front


def _signed(value: float, direction: str) -> float:
    return float(value) if direction == "minimize" else -float(value)


# ----------------------------------------------------------------------------- measuring a front


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The volume the minimisation front ``points`` dominates up to ``reference`` (exact, by slicing:
    While et al., "A faster algorithm for calculating hypervolume", IEEE TEVC 2006)."""
    points = points[(points < reference).all(axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    order = np.argsort(points[:, 0])
    points = points[order]
    volume = 0.0
    for i, x in enumerate(points[:, 0]):
        width = (points[i + 1, 0] if i + 1 < len(points) else reference[0]) - x
        if width > 0:
            volume += width * hypervolume(points[: i + 1, 1:], reference[1:])
    return volume
