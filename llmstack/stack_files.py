"""Stack files: `Pulumi.<stack>.yaml` read (YAML errors named by file and line) and written as the runtime
holds config (namespaced keys, JSON-ish strings)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from domain.context import PROJECT
from domain.errors import Problem, SettingsError
from domain.secrets import SECRET_PLACEHOLDER, is_secure


@dataclass(frozen=True)
class StackFile:
    path: Path
    stack: str
    config: dict[str, Any]


def read_stack_file(path: Path, stack: str | None = None) -> StackFile:
    """Read `Pulumi.<stack>.yaml`; YAML errors become a SettingsError naming the file and line."""
    name = stack or _stack_name(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError([Problem(str(path), f"cannot be read: {exc.strerror or exc}")]) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        where = f"{path}:{mark.line + 1 if mark else '?'}"
        raise SettingsError([Problem(where, f"YAML syntax error at {line}: {exc.problem or exc}")]) from exc
    except yaml.YAMLError as exc:
        raise SettingsError([Problem(str(path), f"YAML error: {exc}")]) from exc
    if not isinstance(doc or {}, Mapping):
        raise SettingsError(
            [Problem(str(path), "is not a mapping; accepted: a Pulumi stack file with `config:`")]
        )
    config = (doc or {}).get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError([Problem(f"{path}: config", "is not a mapping of keys to values")])
    return StackFile(path=path, stack=name, config=dict(config))


def _stack_name(path: Path) -> str:
    name = path.name
    if name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")):
        return name[len("Pulumi.") :].rsplit(".", 1)[0]
    return path.stem


def config_as_strings(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The stack file's config in the form the Pulumi runtime holds it: namespaced keys, JSON-ish strings.

    Secure values become a placeholder; their keys are returned as secret keys.
    """
    out: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if is_secure(value):
            out[full] = SECRET_PLACEHOLDER
            secret_keys.append(full)
        else:
            out[full] = value if isinstance(value, str) else json.dumps(value)
    return out, secret_keys
