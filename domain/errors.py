"""Errors a user can act on: printed as one line by the CLI, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; `exit_code` is what the CLI returns."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
