"""The Pulumi SDK internals the project uses are all where components/pulumi_internals.py expects them.

When a Pulumi upgrade moves or removes one, this fails naming it (and importing the module fails the same
way), instead of the offline plan breaking with an AttributeError deep inside a run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from components import pulumi_internals
from components.pulumi_internals import (
    INTERNALS,
    Internal,
    PulumiInternalsMoved,
    _resolve_all,
    missing,
    moved_message,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]


def test_every_pulumi_internal_the_project_uses_is_where_it_was() -> None:
    assert missing() == [], moved_message(missing())


def test_each_internal_says_why_it_is_needed() -> None:
    paths = [internal.path for internal in INTERNALS]
    assert len(paths) == len(set(paths))
    assert all(internal.path.startswith("pulumi.") and len(internal.why) > 20 for internal in INTERNALS)


def test_a_missing_function_is_named_with_what_is_missing_and_why_it_is_used() -> None:
    fake = [
        Internal("pulumi.runtime.sync_await._sync_await", "is real"),
        Internal("pulumi.runtime.sync_await._gone_in_a_future_release", "runs the engine's coroutines"),
        Internal("pulumi.runtime.no_such_module.run_pulumi_func", "runs the program"),
        Internal("pulumi_not_installed_anywhere.thing", "is absent"),
    ]

    problems = missing(fake)

    assert problems == [
        "pulumi.runtime.sync_await._gone_in_a_future_release (pulumi.runtime.sync_await has no "
        "'_gone_in_a_future_release'): used because it runs the engine's coroutines",
        "pulumi.runtime.no_such_module.run_pulumi_func (pulumi.runtime has no 'no_such_module'): used because "
        "it runs the program",
        "pulumi_not_installed_anywhere.thing (no module 'pulumi_not_installed_anywhere'): used because it is "
        "absent",
    ]
    with pytest.raises(PulumiInternalsMoved) as caught:
        _resolve_all(fake)
    message = str(caught.value)
    assert re.match(r"pulumi \d+\.\d+\.\d+ no longer has 3 SDK internal\(s\)", message), message
    assert "  - pulumi.runtime.sync_await._gone_in_a_future_release (" in message
    assert "  - pulumi.runtime.no_such_module.run_pulumi_func (" in message
    assert "pulumi.runtime.sync_await._sync_await (" not in message  # the one that resolves is not listed
    assert isinstance(caught.value, ImportError)  # importing the module fails with it


def test_resolve_finds_modules_functions_and_attributes() -> None:
    from pulumi.runtime import settings

    assert resolve("pulumi.runtime.settings") is settings
    assert resolve("pulumi.runtime.settings.get_root_resource") is settings.get_root_resource
    assert pulumi_internals.root_resource is not None


def test_no_other_module_uses_a_private_pulumi_name() -> None:
    """Only pulumi_internals imports from Pulumi's private or unexported places (and this test)."""
    allowed = {ROOT / "components" / "pulumi_internals.py", Path(__file__).resolve()}
    internal_modules = {path.rsplit(".", 1)[0] for path in (i.path for i in INTERNALS)} | {
        i.path for i in INTERNALS
    }
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if ".venv" in path.parts or path in allowed or "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                private = any(part.startswith("_") for part in name.split(".")) and name.startswith("pulumi")
                if name in internal_modules or private:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []
