"""The one exception type for bad user input.

Library code raises :class:`InputError` with a single line that names what is
wrong (the file, key or value) and what was expected; the CLI prints that line
and exits with status 2.  Everything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad input from the user: a missing file, a malformed config, an unknown name."""
