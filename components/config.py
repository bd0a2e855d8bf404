"""The stack's settings as the Pulumi engine hands them to the program (inside `__main__`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from components import pulumi_internals
from domain.settings import Settings, load_settings


def settings_from_runtime(project_dir: Path) -> Settings:
    """Settings for the stack Pulumi is running (inside `__main__`).

    The engine hands the program every config key as a string (objects as JSON); the whole map is read so
    that unknown keys are reported like any other problem, not silently ignored.
    """
    raw, secret_keys = pulumi_internals.config_map()
    config = {key: _parse_config_value(text) for key, text in raw.items()}
    return load_settings(
        config,
        stack=pulumi.get_stack(),
        project_dir=project_dir,
        secret_keys=secret_keys,
        source=f"stack {pulumi.get_stack()!r}",
    )


def _parse_config_value(text: Any) -> Any:
    """Objects and numbers arrive as JSON text; plain strings as they are."""
    if not isinstance(text, str):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict | list | int | float) and not isinstance(value, bool) else text
