"""Every wrong value in every key of the shipped stacks gets a problem at its own key, never a traceback.

The pinned messages in test_settings.py say how each kind of mistake reads; this sweeps the shipped stack
files instead: each key in turn is given values of the wrong kind, and loading must either succeed or raise
SettingsError naming that key, in the project's wording (no pydantic phrasing, nothing but a Problem).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.errors import SettingsError
from domain.settings import load_settings
from tests.conftest import PROJECT_DIR

STACK_FILES = sorted((PROJECT_DIR / "stacks").glob("Pulumi.*.yaml")) + sorted(
    (PROJECT_DIR / "examples").glob("Pulumi.*.yaml")
)
NS = "oci-llm-stack:"
# No key takes a list, so each of these is refused at the key it was written to.
NEVER_ACCEPTED = [["VM.GPU.A10.1"], [], [{"a": 1}]]
ODD_VALUES = [
    "x",
    -1,
    0,
    1.5,
    True,
    "",
    10**12,
    {"zz": 1},
    "ocid1.bucket.oc1..aaaaaaaaaaaaaaaaaaaaa",
    "ünïcode",
]
PYDANTIC_WORDING = ("Input should", "Field required", "validation error", "pydantic", "type=", "Extra inputs")


def config_of(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]
    return {k.removeprefix(NS): v for k, v in config.items()}


def leaves(node: Any, at: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        for name, value in node.items():
            yield from leaves(value, (*at, name))
    elif at:
        yield at


def with_value(config: dict[str, Any], at: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    node = changed
    for part in at[:-1]:
        node = node[part]
    node[at[-1]] = value
    return changed


def problems(config: dict[str, Any]) -> list[str] | None:
    """The problems loading `config` finds, or None when it loads; any other exception fails the test."""
    try:
        load_settings(config, stack="sweep", project_dir=PROJECT_DIR)
    except SettingsError as exc:
        return [str(problem) for problem in exc.problems]
    return None


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=lambda p: p.name)
def test_a_list_in_any_key_is_refused_at_that_key(stack_file: Path) -> None:
    config = config_of(stack_file)
    assert problems(config) is None, f"{stack_file.name} should load as shipped"
    paths = list(leaves(config))
    assert len(paths) >= 15, "the sweep must cover the stack's keys"
    for at in paths:
        for value in NEVER_ACCEPTED:
            found = problems(with_value(config, at, value))
            key = ".".join(at)
            assert found, f"{key}={value!r} was accepted"
            assert any(p.startswith(f"{key}: ") for p in found), (key, found)


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=lambda p: p.name)
def test_odd_values_and_unknown_keys_load_or_say_what_is_accepted(stack_file: Path) -> None:
    config = config_of(stack_file)
    refused = 0
    for at in leaves(config):
        cases = [with_value(config, at, value) for value in ODD_VALUES]
        cases.append(with_value(config, (*at[:-1], "zzUnknownKey"), 1))
        for case in cases:
            found = problems(case)
            if found is None:
                continue
            refused += 1
            for problem in found:
                assert not any(word in problem for word in PYDANTIC_WORDING), problem
                assert "accepted" in problem or "known keys" in problem, problem
    assert refused >= 100, "most odd values are refused"
