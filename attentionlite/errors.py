"""The one exception type for bad user input.

Library code raises :class:`InputError` with a single line that names what is
wrong (the file, key or value) and what was expected; the CLI prints that line
and exits with status 2.  Everything else is a bug and keeps its traceback.
"""

from typing import Any


class InputError(Exception):
    """Bad input from the user: a missing file, a malformed config, an unknown name."""


class OverrideError(InputError):
    """A hardware knob override the config cannot take.

    ``knobs`` are the overrides to blame, by the caller's names and values, and
    ``problem`` what is wrong, so that a command line can name the flags that
    set them instead of the library's knob names.
    """

    def __init__(self, config_name: str, knobs: dict[str, Any], problem: str) -> None:
        given = ", ".join(f"{key}={value!r}" for key, value in knobs.items())
        super().__init__(f"hardware {config_name!r} with {given}: {problem}")
        self.config_name = config_name
        self.knobs = knobs
        self.problem = problem

    def __reduce__(self) -> tuple:  # so that it crosses a process pool or Ray whole
        return type(self), (self.config_name, self.knobs, self.problem)
