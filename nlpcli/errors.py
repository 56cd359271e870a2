"""User-facing errors: one clear message, exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a bad file, a missing column, an unreachable hub, ..."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"
