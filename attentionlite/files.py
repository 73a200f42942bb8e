"""Atomic writes: a result file or folder is either complete or absent, never half-written.

A file (or a folder's every file) is written under a temporary name in the
destination's folder, flushed to disk, renamed into place, and then the folder
itself is flushed, so that after a crash or power loss the rename is there too.
A path that cannot be written is refused before any slow work
(:func:`check_writable`), and a write that fails later is one
:class:`InputError` naming the path.

An output folder is replaced as a whole, so a folder is only replaced when it
is empty or one this tool wrote (it holds :data:`OUTPUT_MARK`): ``--out .``
or ``--out ~/data`` must not delete what was there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from attentionlite.errors import InputError

OUTPUT_MARK = ".attentionlite-output"  # in every output folder: the next run may replace the folder


def default_cache_dir() -> Path:
    """``$ATTENTIONLITE_CACHE`` or ``~/.cache/attentionlite``: where derived files (decoded data, host calibration) are kept."""
    return Path(os.environ.get("ATTENTIONLITE_CACHE") or Path.home() / ".cache" / "attentionlite")


def check_writable(path: str | Path, what: str, folder: bool = False) -> None:
    """Refuse ``path`` (named ``what`` in the message) unless a file or, with ``folder``, a replaceable output
    folder can be created there: the nearest existing folder above it takes a probe folder, which is removed
    at once."""
    path = _named(path, what)
    if folder:
        check_replaceable(path, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{what} {path}: not writable; expected a path this process can write")
    above = path.absolute().parent
    while not above.exists():
        above = above.parent
    try:
        if not above.is_dir():
            raise NotADirectoryError(0, f"{above} is a file")
        os.rmdir(tempfile.mkdtemp(dir=above, prefix=".attentionlite-probe-"))
    except OSError as error:
        raise InputError(f"{what} {path}: cannot be written ({error.strerror}); expected a path in a "
                         "writable folder") from None


def check_replaceable(path: str | Path, what: str) -> None:
    """Refuse an existing file, or a folder that holds files and no :data:`OUTPUT_MARK`, as an output folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: a file; expected a folder to write the output in")
    if path.is_dir() and not (path / OUTPUT_MARK).exists():
        try:
            entries = sorted(entry.name for entry in path.iterdir())
        except OSError as error:
            raise InputError(f"{what} {path}: cannot be read ({error.strerror}); expected a folder this process "
                             "can read and write") from None
        if entries:
            raise InputError(f"{what} {path}: a folder without attentionlite's {OUTPUT_MARK} mark that holds "
                             f"files (e.g. {entries[0]!r}), which writing the output would delete; expected a "
                             "new or empty folder, or an output folder attentionlite marked")


def _named(path: str | Path, what: str) -> Path:
    """``path`` as a Path; an empty one is refused, as every caller would take it for the current folder."""
    if str(path) == "":
        raise InputError(f"{what}: an empty path; expected a file or folder name")
    return Path(path)


def _sync(path: Path) -> None:
    """Flush a file's or a folder's contents (a folder's: its entries, so a rename in it survives a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = _named(path, "output file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise InputError(f"{path}: cannot be written ({error.strerror}); expected a path in a writable folder") \
            from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _sync(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_output_dir(path: str | Path, owned: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``path``, on error it is removed.

    Files already in ``path`` that the new output does not write are dropped, so a
    folder never mixes two runs' results.  ``path`` must be new, empty, or marked
    as an output (see :func:`check_replaceable`) unless ``owned``: a folder only
    this tool writes, such as a cache entry.
    """
    path = _named(path, "output folder")
    if not owned:
        check_replaceable(path, "output folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as error:
        raise InputError(f"{path}: cannot be written ({error.strerror}); expected a path in a writable folder") \
            from None
    try:
        yield staging
        (staging / OUTPUT_MARK).write_text("written by attentionlite; the next output written here replaces "
                                           "this folder as a whole\n", encoding="utf-8")
        for inner in sorted(staging.rglob("*"), reverse=True):  # files, then the folders that hold them
            _sync(inner)
        _sync(staging)
        if path.exists():
            backup = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, backup / path.name)
            os.replace(staging, path)
            shutil.rmtree(backup)
        else:
            os.replace(staging, path)
        _sync(path.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_text_folder(path: str | Path, texts: Mapping[str, str]) -> Path:
    """Write each ``file name -> text`` into the folder ``path``, replacing it as a whole, atomically."""
    with atomic_output_dir(path) as staging:
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
    return Path(path)


def rows_to_csv(rows: Iterable[Mapping]) -> str:
    """Rows as CSV text; columns in first-seen order; floats in their shortest exact form."""
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def json_text(data) -> str:
    """Stable JSON text (sorted keys, indented, newline-terminated) so equal results give equal bytes."""
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
