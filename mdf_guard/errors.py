"""Errors that entry points turn into one-line messages and distinct exit codes.

Anything raised below the entry points that is the user's fault (a bad file, a bad
policy, a bad option) is an `MdfGuardError`; anything else is a bug or the environment's
(out of memory, a full disk): the command prints its traceback and exits EXIT_INTERNAL,
never 1, which would read as "risk found".
"""

from __future__ import annotations

import os
from pathlib import Path

EXIT_PASS = 0
EXIT_RISK = 1
EXIT_INPUT = 2
EXIT_BASELINE_REWRITTEN = 3
EXIT_INTERNAL = 4


class MdfGuardError(Exception):
    """A failure the user can fix; `str(err)` is the one line we print."""

    exit_code: int = EXIT_INPUT


class InputError(MdfGuardError):
    """Bad input data or configuration, located as precisely as we can."""

    def __init__(self, path: str | Path, message: str, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        where = self.path if line is None else f"{self.path}:{line}"
        if field is not None:
            where = f"{where}: field '{field}'"
        super().__init__(f"{where}: {message}")


class UsageError(MdfGuardError):
    """A bad combination of options or arguments."""


def check_destination(path: Path, folder: bool = False) -> None:
    """Refuse, up front and without creating anything, a place where a command could not write
    what it makes at the end of a long run (a report, validation results): an existing file
    where a folder is wanted or the reverse, or no writable folder to make it in."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise InputError(path, "is a file; give a folder" if folder else "is a folder; give a file name")
    start = path if folder or not path.exists() else path.parent   # an existing file is rewritten in its folder
    existing = next(p for p in (start, *start.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(path, f"cannot be written: {existing} is not a writable folder")
