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


def first_line(err: BaseException) -> str:
    """The first non-blank line of what an error says, or its type's name when it says nothing: how a library's
    error is quoted in one message."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


class TrainingDiverged(UserError):
    """The training loss (or the weights) turned NaN or infinite: the run stopped. A result of its settings (a
    learning rate too high), not of broken input: `nlpcli tune` records such a trial as failed and goes on."""


class RefusedBeforeTraining(UserError):
    """A run refused once it had begun to write its folder but before its first step (a tracker that cannot start
    its run): a new run's folder goes with it, as if it had been refused up front."""


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGTERM, SIGINT): one line saying what was kept and how to resume, and
    the conventional exit code (128 + the signal's number). A BaseException, as KeyboardInterrupt is: no
    `except Exception` on the way up swallows it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
