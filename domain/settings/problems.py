"""pydantic's wording never reaches a user: `problems_of` turns each item of a ValidationError into a Problem,
the key path from the aliases, the reason from the error type, and what is accepted from the field itself
(an `accepted` note in its metadata, its bounds or its choices).
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError

from domain.errors import Accepts, Problem, Refused, said


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
