"""Errors that entry points turn into one-line messages and distinct exit codes.

Anything raised below the entry points that is the user's fault (a bad file, a bad
policy, a bad option) is an `MdfGuardError`; anything else is a bug or the environment's
(out of memory, a full disk): the command prints its traceback and exits EXIT_INTERNAL,
never 1, which would read as "risk found".
"""

from __future__ import annotations

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
