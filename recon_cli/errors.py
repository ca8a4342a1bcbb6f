"""User-facing errors.

Raise :class:`ReconError` for anything a user can act on (a missing file, a malformed model, a
bad option). The CLI prints its message without a traceback and exits with ``exit_code``.
Messages say what was expected, what was found, and what to do.
"""

from __future__ import annotations


class ReconError(Exception):
    """An error with a message meant for the user (no traceback is shown by the CLI)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class InputError(ReconError):
    """Bad input file or option (missing, unreadable, malformed)."""

    exit_code = 2


class NotBuiltError(ReconError):
    """A command or backend that is not available in this build."""

    exit_code = 2
