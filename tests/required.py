"""Tests that must not skip where CI asks for them: a skip there is a failure of the run.

The browser test skips without Chromium, the training tests without the train extra, the zip64 test
without LLMSTACK_SLOW_TESTS=1: right on a laptop, silent gaps in CI. A group is required when
LLMSTACK_REQUIRED names it (`browser,slow,train`), or when the variable that asks for it is set:
LLMSTACK_REQUIRE_BROWSER=1 (`make test-browser`), LLMSTACK_SLOW_TESTS=1 (`make test-slow`),
LLMSTACK_REQUIRE_TRAIN=1 (`make test-train`). tests/conftest.py wires the hooks in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# group -> the node ids (or their prefixes) it covers
REQUIRED_GROUPS: dict[str, tuple[str, ...]] = {
    "browser": ("tests/test_chat_browser.py",),
    "slow": ("tests/test_upload.py::test_a_real_file_over_4_gib_gets_zip64",),
    "train": ("tests/training/test_training_cpu.py",),
}
ASKED_BY = {
    "browser": "LLMSTACK_REQUIRE_BROWSER",
    "slow": "LLMSTACK_SLOW_TESTS",
    "train": "LLMSTACK_REQUIRE_TRAIN",
}


def required_groups(env: Mapping[str, str]) -> set[str]:
    named = {word.strip() for word in env.get("LLMSTACK_REQUIRED", "").split(",") if word.strip()}
    unknown = named - REQUIRED_GROUPS.keys()
    if unknown:
        raise ValueError(
            f"LLMSTACK_REQUIRED names {', '.join(sorted(unknown))}; accepted: {', '.join(REQUIRED_GROUPS)}"
        )
    return named | {group for group, variable in ASKED_BY.items() if env.get(variable, "") not in ("", "0")}


def required_skips(env: Mapping[str, str], skipped: Iterable[str]) -> list[str]:
    """The skipped node ids that a required group covers, in order."""
    prefixes = tuple(prefix for group in sorted(required_groups(env)) for prefix in REQUIRED_GROUPS[group])
    return [nodeid for nodeid in skipped if prefixes and nodeid.startswith(prefixes)]
