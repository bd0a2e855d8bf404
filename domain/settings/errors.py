"""The error contract: one `Problem` per mistake (full key path, the value, what is accepted), all at once.

pydantic's wording never reaches a user: `problems_of` turns each item of a ValidationError into a Problem,
the key path from the aliases, the reason from the error type, and what is accepted from the field itself
(an `accepted` note in its metadata, its bounds or its choices).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError

from domain.secrets import mask_secrets


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


def _show(value: Any) -> str:
    """A value as a message shows it: short, and with anything like a token hidden."""
    text = mask_secrets(repr(value))
    return text if len(text) <= 160 else text[:157] + "..."


def said(reason: str, value: Any, accepted: str) -> str:
    return f"{reason} {_show(value)}; accepted: {accepted}"


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


def _at(annotation: Any, loc: tuple[str, ...]) -> tuple[Any, list[Any]]:
    """The type and metadata at `loc` below `annotation` (by alias, through mappings); None if unknown."""
    meta: list[Any] = []
    for part in (None, *loc):
        if part is None:
            pass
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = [f for n, f in annotation.model_fields.items() if (f.alias or n) == part]
            annotation, meta = (found[0].annotation, list(found[0].metadata)) if found else (None, [])
        else:
            annotation, meta = (get_args(annotation)[1], []) if get_origin(annotation) is dict else (None, [])
        while get_origin(annotation) in (Annotated, Union, types.UnionType):  # X | None, Annotated[X, ...]
            args = [a for a in get_args(annotation) if a is not type(None)]
            annotation, meta = args[0], meta + (args[1:] if get_origin(annotation) is Annotated else [])
    return annotation, meta


def keys_of(model: Any) -> list[str]:
    """The keys a settings section takes, in order (`oci:region` is not one of the project's keys)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items() if ":" not in (f.alias or n)]


def _accepted(annotation: Any, meta: list[Any], key: str) -> str:
    notes = [m.accepted for m in meta if getattr(m, "accepted", None)]
    low = next((m.ge for m in meta if isinstance(m, Ge)), None)
    high = next((m.le for m in meta if isinstance(m, Le)), None)
    if notes or get_origin(annotation) is Literal:
        return notes[-1] if notes else " | ".join(map(str, get_args(annotation)))
    if annotation is int:
        return f"an integer from {low}" + (f" to {high}" if high is not None else " up")
    if keys_of(annotation):
        return f"a mapping (see the README's settings table for {key})"
    return {str: "a string", float: "a number", bool: "true | false"}.get(
        annotation, "see the README's table"
    )


REASONS = {
    **dict.fromkeys(("int_type", "int_from_float"), "not an integer:"),
    **dict.fromkeys(("string_type",), "not a string:"),
    **dict.fromkeys(("float_type", "finite_number"), "not a number:"),
    **dict.fromkeys(("dict_type", "model_type"), "not a mapping:"),
    **dict.fromkeys(("greater_than_equal", "less_than_equal"), "out of range:"),
    "bool_type": "not a boolean:",
    "literal_error": "unknown value",
}


def problems_of(error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Each of pydantic's error items as the project's Problem."""
    found: list[Problem] = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"] if part != "[key]")
        annotation, meta = _at(root, loc)
        cause, reason = item.get("ctx", {}).get("error"), REASONS.get(item["type"], "invalid value")
        if isinstance(cause, Refused):
            found += [Problem(".".join((*loc, *at)), message) for at, message in cause.items]
        elif item["type"] == "extra_forbidden":
            known = keys_of(_at(root, loc[:-1])[0])
            near = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            found.append(Problem(".".join(loc), f"unknown key; {hint}known keys: {', '.join(known)}"))
        elif item["type"] == "missing":
            found.append(Problem(".".join(loc), f"missing; accepted: {_accepted(annotation, meta, loc[-1])}"))
        else:
            if reason == "out of range:" and annotation is not int:
                reason = "invalid value"
            if reason == "not a mapping:" and keys_of(annotation) and not meta:
                meta = [Accepts(f"a mapping with keys {', '.join(keys_of(annotation))}")]
            accepted = _accepted(annotation, meta, loc[-1])
            found.append(Problem(".".join(loc), said(reason, item["input"], accepted)))
    return found
