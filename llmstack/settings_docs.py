"""What the settings models say about themselves: the README's settings table and the JSON Schema of a stack
file (`llmstack schema`, `schema/stack.schema.json`). Both come from the models' JSON Schema, so a default or
a description is written once, in the model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from domain.context import PROJECT
from domain.settings import Settings


@dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str
    meaning: str


def _without_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_titles(v) for k, v in node.items() if k != "title"}
    return [_without_titles(v) for v in node] if isinstance(node, list) else node


@cache
def _settings_schema() -> dict[str, Any]:
    return _without_titles(Settings.model_json_schema(by_alias=True))  # type: ignore[no-any-return]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with `$ref` followed and `X | None` taken as X (defaults stay)."""
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1 and "anyOf" in node:
        node = {**{k: v for k, v in node.items() if k != "anyOf"}, **options[0]}
    if "$ref" in node:
        node = {**_settings_schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]], **node}
    return node


def _type(node: dict[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    if "format" in node:
        return str(node["format"]).replace("|", "\\|")
    if "enum" in node or "const" in node:
        return " \\| ".join(f"`{v}`" for v in node.get("enum", [node.get("const")]))
    if node.get("type") == "object":
        return "map"
    if node.get("type") in ("integer", "number") and low is not None:
        return f"{low}-{high}" if high is not None else f"{node['type']} >= {low}"
    return str(node.get("type", "string or number"))


def _default(value: Any) -> str:
    if isinstance(value, dict):
        return "`{}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return "none" if value is None else f"`{value}`" if value != "" else '`""`'


def _rows(node: dict[str, Any], prefix: str) -> Iterator[KeyDoc]:
    for key, given in node.get("properties", {}).items():
        prop = _resolve(given)
        default = "required" if key in node.get("required", []) else _default(prop.get("default"))
        meaning = prop.get("description", "").replace("|", "\\|")
        yield KeyDoc(f"{prefix}{key}", _type(prop), default, meaning)
        if "$ref" in json.dumps(given.get("anyOf", given)) and "properties" in prop:  # a section
            yield from _rows(prop, f"{prefix}{key}.")
        for entry in prop.get("patternProperties", {}).values():
            if "$ref" in entry:  # one entry per name (models.<name>)
                model = _resolve(entry)
                yield KeyDoc(f"{prefix}{key}.<name>", "map", "one or more", model.get("description", ""))
                yield from _rows(model, f"{prefix}{key}.<name>.")


KEY_DOCS: tuple[KeyDoc, ...] = tuple(_rows(_settings_schema(), ""))


def settings_table() -> str:
    """The README's settings table (a test keeps the two equal; `make docs` writes it)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{d.key}` | {d.type} | {d.default} | {d.meaning} |" for d in KEY_DOCS]
    return "\n".join(rows)


def stack_schema() -> dict[str, Any]:
    """The JSON Schema of a stack file: `config:` with `oci:region` and this project's keys, each with or
    without the `oci-llm-stack:` namespace; other namespaces belong to their providers."""
    settings = _settings_schema()
    config: dict[str, Any] = {}
    required = []
    for key, prop in settings["properties"].items():
        names = [key] if ":" in key else [f"{PROJECT}:{key}", key]
        config.update({name: prop for name in names})
        if key in settings.get("required", []):
            required.append({"anyOf": [{"required": [name]} for name in names]})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{PROJECT} stack file (stacks/Pulumi.<stack>.yaml)",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": config,
                "patternProperties": {f"^(?!{PROJECT}:)[^:]+:": {}},
                "additionalProperties": False,
                "allOf": required,
            }
        },
        "$defs": settings["$defs"],
    }


def stack_schema_text() -> str:
    return json.dumps(stack_schema(), indent=2) + "\n"
