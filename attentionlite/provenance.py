"""What every result records about how it was made: package version, git revision, input hashes."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

from attentionlite.version import __version__


@lru_cache(maxsize=1)
def git_revision() -> str:
    """The git revision of the source tree this package runs from, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so large checkpoints need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance(**inputs) -> dict:
    """A dict to store beside any result: the inputs given, the package version and git revision."""
    return {"package_version": __version__, "git_revision": git_revision(), **inputs}
