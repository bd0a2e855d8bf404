"""A test CI requires fails the run when it skips (tests/required.py, wired in by tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.required import REQUIRED_GROUPS, required_groups, required_skips

ROOT = Path(__file__).resolve().parent.parent
ZIP64 = "tests/test_upload.py::test_a_real_file_over_4_gib_gets_zip64"


def test_each_group_is_required_by_name_or_by_the_variable_that_asks_for_it() -> None:
    assert required_groups({}) == set()
    assert required_groups({"LLMSTACK_REQUIRED": "browser, train"}) == {"browser", "train"}
    assert required_groups({"LLMSTACK_REQUIRE_BROWSER": "1", "LLMSTACK_SLOW_TESTS": "1"}) == {
        "browser",
        "slow",
    }
    assert required_groups({"LLMSTACK_REQUIRE_TRAIN": "0"}) == set()
    with pytest.raises(ValueError, match="names gpu; accepted: browser, slow, train"):
        required_groups({"LLMSTACK_REQUIRED": "gpu"})


def test_a_skip_fails_only_in_a_required_group() -> None:
    skipped = [
        "tests/test_chat_browser.py",
        ZIP64,
        "tests/training/test_training_cpu.py::test_x",
        "tests/test_chat.py::t",
    ]
    assert required_skips({}, skipped) == []
    assert required_skips({"LLMSTACK_REQUIRE_BROWSER": "1"}, skipped) == ["tests/test_chat_browser.py"]
    assert required_skips({"LLMSTACK_REQUIRED": "slow,train"}, skipped) == skipped[1:3]


def test_the_groups_name_tests_that_exist() -> None:
    for prefixes in REQUIRED_GROUPS.values():
        for prefix in prefixes:
            path, _, name = prefix.partition("::")
            assert (ROOT / path).is_file(), prefix
            assert not name or f"def {name}(" in (ROOT / path).read_text(), prefix


@pytest.mark.parametrize(("required", "code"), [("slow", 1), ("", 0)])
def test_a_required_test_that_skips_fails_the_pytest_run(required: str, code: int) -> None:
    env = {**os.environ, "LLMSTACK_REQUIRED": required}
    env.pop("LLMSTACK_SLOW_TESTS", None)  # so the zip64 test skips
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ZIP64],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert ("required tests skipped" in result.stdout) is bool(required)
