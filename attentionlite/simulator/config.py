"""One schema machinery for every TOML config (hardware and CPU): typed, frozen, validated at the door.

A config is a frozen dataclass whose fields *are* its schema (ZigZag's habit of
checking a config against a schema before building objects): each field's
type, with its constraint in ``Annotated`` (``Annotated[int, POSITIVE]``,
``Annotated[str, OneOf(...)]``, ``Annotated[Mapping[str, float], Keyed(...)]``).
The TOML file mirrors the dataclasses: scalars at the top, one table per
nested dataclass, a non-empty array of tables (``[[name]]``) per tuple of
dataclasses, and a table of numbers per keyed mapping.  Field types
understood: ``int``, ``float`` (TOML integers accepted), ``str``, ``bool``,
``tuple[str, ...]``, a dataclass, a tuple of dataclasses and
``Mapping[str, float]``.

Every bad input is one :class:`InputError` in one wording, naming where the
config came from and the dotted key: ``<where>: '<key>' is <value>; expected
<what>`` (or ``unknown key``, ``missing key``).
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any

from attentionlite.errors import InputError

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_SHOWN_CHARACTERS = 60  # a value quoted in an error is cut to this length, so the message stays one line


@dataclass(frozen=True)
class Bounds:
    """A number that must be above zero (``positive``) or at least zero (``non_negative``), and at most ``maximum``."""

    minimum: str
    maximum: float | None = None


POSITIVE = Bounds("positive")
NON_NEGATIVE = Bounds("non_negative")


@dataclass(frozen=True)
class OneOf:
    """A string that must be one of ``choices``."""

    choices: tuple[str, ...]


@dataclass(frozen=True)
class Keyed:
    """A table of numbers with exactly ``keys``, every one present, each within ``bounds``."""

    keys: tuple[str, ...]
    bounds: Bounds


# ----------------------------------------------------------------------------- files


def read_toml(path: Path) -> dict:
    """The parsed file; a syntax error is one :class:`InputError`."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; expected a TOML file") from None


def resolve_config_path(name_or_path: str | Path, presets: Mapping[str, Path], what: str) -> Path:
    """A TOML path (which must exist) or the file of the preset so named."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: {what} file not found; expected a TOML file or a preset name")
        return path
    if str(name_or_path) not in presets:
        raise InputError(f"unknown {what} preset {str(name_or_path)!r}; expected one of "
                         f"{', '.join(sorted(presets))} or a .toml path")
    return presets[str(name_or_path)]


def to_toml(config: Any) -> str:
    """The config as TOML that :func:`build` reads back to an equal config: scalars, tables, arrays of tables."""
    table = as_table(config)
    lines = [f"{key} = {toml_value(value)}" for key, value in table.items() if not _holds_tables(value)]
    for name, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{name}]"] + [f"{key} = {toml_value(entry)}" for key, entry in value.items()]
    for name, value in table.items():
        for entry in value if _holds_tables(value) and isinstance(value, list) else ():
            lines += ["", f"[[{name}]]"] + [f"{key} = {toml_value(item)}" for key, item in entry.items()
                                            if not isinstance(item, dict)]
            for key, inner in entry.items():  # an entry's own tables, e.g. [groups.array]
                if isinstance(inner, dict):
                    lines += [f"[{name}.{key}]"] + [f"{k} = {toml_value(v)}" for k, v in inner.items()]
    return "\n".join(lines) + "\n"


def _holds_tables(value: Any) -> bool:
    """A table, or an array of tables: what TOML writes under a header rather than as ``key = value``."""
    return isinstance(value, dict) or (isinstance(value, list) and bool(value) and isinstance(value[0], dict))


def toml_value(value: Any) -> str:
    """One value in TOML syntax: strings JSON-quoted (TOML's basic strings share the escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


# ----------------------------------------------------------------------------- building


def build(cls: type, table: Any, where: str, prefix: str = "") -> Any:
    """Instantiate ``cls`` from a parsed TOML table, checking every key against its fields."""
    if not isinstance(table, Mapping):
        raise InputError(f"{where}: '{prefix.rstrip('.') or '(top)'}' is {_shown(table)}; expected a table")
    known = {item.name: item for item in fields(cls)}
    for key in table:
        if key not in known:
            raise InputError(f"{where}: unknown key '{prefix}{key}'; expected one of {', '.join(known)}")
    schema = _schema(cls)
    values = {}
    for name, item in known.items():
        if name in table:
            values[name] = _value(*schema[name], table[name], where, f"{prefix}{name}")
        elif item.default is MISSING and item.default_factory is MISSING:
            raise InputError(f"{where}: missing key '{prefix}{name}'")
    return cls(**values)


def with_values(config: Any, values: Mapping[str, Any], where: str) -> Any:
    """A copy of ``config`` with fields set by dotted path (``"dram.bandwidth_gb_s"``), validated again."""
    table = as_table(config)
    for dotted, value in values.items():
        *sections, leaf = dotted.split(".")
        inner = table
        for section in sections:
            inner = inner[section]
        inner[leaf] = value
    return build(type(config), table, where)


def as_table(config: Any) -> dict:
    """The config as the plain nested dicts and lists its TOML file parses to."""
    table: dict[str, Any] = {}
    kind: type = type(config)
    schema = _schema(kind)
    for item in fields(config):
        value = getattr(config, item.name)
        if value == () and _element_config(schema[item.name][0]) is not None:
            continue  # no [[tables]] at all: the field's default (an empty array of tables is refused)
        if is_dataclass(value):
            table[item.name] = as_table(value)
        elif isinstance(value, tuple) and value and is_dataclass(value[0]):
            table[item.name] = [as_table(entry) for entry in value]
        elif isinstance(value, (tuple, Mapping)):
            table[item.name] = list(value) if isinstance(value, tuple) else dict(value)
        else:
            table[item.name] = value
    return table


def leaf_paths(cls: type, prefix: str = "") -> list[str]:
    """Dotted paths of every scalar field of a config class, nested tables included."""
    paths = []
    for name, (kind, constraint) in _schema(cls).items():
        if _is_config(kind):
            paths += leaf_paths(kind, f"{prefix}{name}.")
        elif isinstance(constraint, Keyed):
            paths += [f"{prefix}{name}.{key}" for key in constraint.keys]
        elif _element_config(kind) is None:
            paths.append(f"{prefix}{name}")
    return paths


def _value(kind: Any, constraint: object, value: Any, where: str, key: str) -> Any:
    if _is_config(kind):
        return build(kind, value, where, f"{key}.")
    element = _element_config(kind)
    if element is not None:
        return _array_of_tables(element, value, where, key)
    if isinstance(constraint, Keyed):
        return _keyed_numbers(constraint, value, where, key)
    if typing.get_origin(kind) is tuple:
        return _strings(value, where, key)
    return _scalar(kind, constraint, value, where, key)


def _scalar(kind: type, constraint: object, value: Any, where: str, key: str) -> Any:
    if not _of_type(value, kind):
        raise InputError(f"{where}: '{key}' is {_shown(value)}; expected {_TYPE_NAMES[kind]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: '{key}' is {value!r}; expected a finite number")
    if isinstance(constraint, Bounds):
        _check_bounds(constraint, value, where, key)
    if isinstance(constraint, OneOf) and value not in constraint.choices:
        raise InputError(f"{where}: '{key}' is {value!r}; expected one of {', '.join(constraint.choices)}")
    return float(value) if kind is float else value


def _of_type(value: Any, kind: type) -> bool:
    """A TOML value of the field's type: a float field takes integers too; booleans are not numbers."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def _check_bounds(bounds: Bounds, value: float, where: str, key: str) -> None:
    if bounds.minimum == "positive" and not value > 0:
        raise InputError(f"{where}: '{key}' is {value!r}; expected a positive value")
    if bounds.minimum == "non_negative" and not value >= 0:
        raise InputError(f"{where}: '{key}' is {value!r}; expected zero or more")
    if bounds.maximum is not None and not value <= bounds.maximum:
        raise InputError(f"{where}: '{key}' is {value!r}; expected at most {bounds.maximum:g}")


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(entry, str) for entry in value):
        raise InputError(f"{where}: '{key}' is {_shown(value)}; expected a list of strings")
    return tuple(value)


def _array_of_tables(element: type, value: Any, where: str, key: str) -> tuple:
    """The ``[[key]]`` tables as a tuple of configs; an empty array describes nothing and is an error."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(f"{where}: '{key}' is {_shown(value)}; expected a non-empty array of [[{key}]] tables")
    return tuple(build(element, entry, where, f"{key}[{index}].") for index, entry in enumerate(value))


def _keyed_numbers(keyed: Keyed, value: Any, where: str, key: str) -> dict[str, float]:
    """Exactly the field's keys, every one present (a missing one would silently price something at zero)."""
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: '{key}' is {_shown(value)}; expected a table")
    for name in value:
        if name not in keyed.keys:
            raise InputError(f"{where}: unknown key '{key}.{name}'; expected one of {', '.join(keyed.keys)}")
    numbers = {}
    for name in keyed.keys:
        if name not in value:
            raise InputError(f"{where}: missing key '{key}.{name}'")
        numbers[name] = _scalar(float, keyed.bounds, value[name], where, f"{key}.{name}")
    return numbers


def _is_config(kind: Any) -> bool:
    """Whether a field's type is a nested config (a dataclass class, not an instance)."""
    return isinstance(kind, type) and is_dataclass(kind)


def _element_config(kind: Any) -> type | None:
    """``D`` for a ``tuple[D, ...]`` of configs, else None."""
    arguments = typing.get_args(kind) if typing.get_origin(kind) is tuple else ()
    return arguments[0] if arguments and _is_config(arguments[0]) else None


@functools.cache
def _schema(cls: Any) -> dict[str, tuple[Any, object]]:
    """Each field's type and its ``Annotated`` constraint (None without one), string annotations resolved."""
    schema: dict[str, tuple[Any, object]] = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        if typing.get_origin(hint) is Annotated:
            kind, constraint = typing.get_args(hint)[:2]
            schema[name] = (kind, constraint)
        else:
            schema[name] = (hint, None)
    return schema


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 3] + "..."
