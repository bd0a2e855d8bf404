"""Errors a user can act on: printed by the CLI, never as a traceback; and the settings' error contract, one
`Problem` per mistake (full key path, the value with secrets hidden, what is accepted), all at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from domain.secrets import mask_secrets


class UserError(Exception):
    """A problem with the user's input or environment; `exit_code` is what the CLI returns."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SettingsError(Exception):
    """All problems found in one stack's settings; `str()` is what the user reads."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems, self.source = list(problems), source
        count, where = len(self.problems), f" in {source}" if source else ""
        head = f"{count} problem{'s' if count != 1 else ''} with the stack settings{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


def show(value: Any) -> str:
    """A value as a message shows it: short, and with anything like a token hidden."""
    text = mask_secrets(repr(value))
    return text if len(text) <= 160 else text[:157] + "..."


def said(reason: str, value: Any, accepted: str) -> str:
    return f"{reason} {show(value)}; accepted: {accepted}"


@dataclass(frozen=True)
class Accepts:
    """What a field accepts, as messages say it; kept in the field's metadata."""

    accepted: str


class Refused(ValueError):
    """Problems a validator found: (key path below the value it checked, message) pairs."""

    def __init__(self, *items: tuple[tuple[str, ...], str]) -> None:
        super().__init__("; ".join(message for _, message in items))
        self.items = items


def refused(reason: str, value: Any, accepted: str, *at: str) -> Refused:
    return Refused((at, said(reason, value, accepted)))


Found = list[tuple[tuple[str, ...], str]]  # what a cross-field check refuses: (key path, message)
