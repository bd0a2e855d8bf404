"""Shared fixtures: valid stack settings to start from, and the offline plan as a test harness.

The plan runs the real `__main__.py` under Pulumi's mock engine with a recording monitor, so tests assert on
the graph a real `pulumi up` would build: types, counts, parents, dependencies and inputs. Pulumi and
pulumi_oci are imported once per process (by the first plan); each further plan costs tens of milliseconds.
"""

from __future__ import annotations

import copy
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakeoci.fixtures import fake_oci, oci_identity  # noqa: F401  (the loopback fake OCI service)
from tests.required import required_skips

PROJECT_DIR = Path(__file__).resolve().parents[1]

TENANCY = "ocid1.tenancy.oc1..aaaaaaaa7mgkrn4hi7xmykn525wmqxf33yu75nhrk6n3onhhi7ezvq6mx4hq"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaajprhlgeisn2xnbcbielnee5zjwzfllvckqygc7blu2yzgk74da3a"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"iad.ocir.io/idxyzabc1234/llm/serving:vllm-3f9c2e1@{DIGEST}"
FAKE_HF_TOKEN = "hf_" + "T0kenForTestsOnlyNotARealOne0000000"


def base_config() -> dict[str, Any]:
    """A valid dev-like stack config (keys as in a stack file) for tests to change one thing at a time."""
    return {
        "oci:region": "us-ashburn-1",
        "oci-llm-stack:tenancyId": TENANCY,
        "oci-llm-stack:compartmentId": COMPARTMENT,
        "oci-llm-stack:network": {"vcnCidr": "10.0.0.0/16", "subnetCidr": "10.0.1.0/24", "egress": "nat"},
        "oci-llm-stack:logging": {"retentionDays": 30},
        "oci-llm-stack:artifactBucket": {"name": "llm-artifacts-test"},
        "oci-llm-stack:tags": {"environment": "dev", "team": "ml-platform"},
        "oci-llm-stack:models": {
            "llama2-7b-chat": {
                "source": {"huggingface": "meta-llama/Llama-2-7b-chat-hf"},
                "serving": {"engine": "vllm", "image": IMAGE},
                "compute": {"shape": "VM.GPU.A10.1"},
            }
        },
        "oci-llm-stack:hfToken": {"secure": "v1:AAAAencryptedplaceholder"},
    }


def model_of(config: dict[str, Any], name: str = "llama2-7b-chat") -> dict[str, Any]:
    models: dict[str, Any] = config["oci-llm-stack:models"]
    return models[name]  # type: ignore[no-any-return]


def local_model(config: dict[str, Any], parent: Path) -> Path:
    """Serve the stack's model from a local folder (`llama-2-7b-chat-hf`, an empty config.json); its path."""
    folder = parent / "llama-2-7b-chat-hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    model_of(config)["source"] = {"localPath": str(folder)}
    return folder


@pytest.fixture
def config() -> dict[str, Any]:
    return copy.deepcopy(base_config())


@pytest.fixture
def write_stack(tmp_path: Path) -> Callable[..., Path]:
    """Write a config mapping as `Pulumi.<stack>.yaml` in a temporary folder and return its path."""

    def write(config: dict[str, Any], stack: str = "test") -> Path:
        path = tmp_path / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def plan_of(write_stack: Callable[..., Path]) -> Callable[..., Any]:
    """Run the offline plan for a config mapping; `secret_keys` marks plain values as Pulumi secrets."""
    from domain.settings import load_settings
    from llmstack.plan import record_program
    from llmstack.stack_files import read_stack_file

    def run(config: dict[str, Any], stack: str = "test", secret_keys: Iterable[str] = ()) -> Any:
        parsed = read_stack_file(write_stack(config, stack))
        settings = load_settings(
            parsed.config,
            stack=parsed.stack,
            project_dir=PROJECT_DIR,
            secret_keys=secret_keys,
            source=str(parsed.path),
        )
        return record_program(PROJECT_DIR, parsed, settings, secret_keys=secret_keys)

    return run


# -- assertions in the style of CDK's Template helpers ---------------------------------------------------


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(actual[k], v) for k, v in expected.items()
        )
    return bool(actual == expected)


def resources(plan: Any, type_: str) -> list[Any]:
    return [r for r in plan.resources if r.type == type_]


def has_resource(plan: Any, type_: str, **subset: Any) -> Any:
    """The one resource of `type_` whose inputs contain `subset` (nested dicts match by subset)."""
    matches = [r for r in resources(plan, type_) if _contains(r.inputs, subset)]
    assert matches, f"no {type_} with inputs {subset}; have: {[r.inputs for r in resources(plan, type_)]}"
    return matches[0]


def resource_count(plan: Any, type_: str) -> int:
    return len(resources(plan, type_))


def one(plan: Any, type_: str) -> Any:
    found = resources(plan, type_)
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0]


# -- no test leaks into the next one: server threads left running, tracebacks printed by a server thread ----

SERVER_THREAD = re.compile(
    r"^(fakeoci|fake-[\w-]+|adapter)(-connection)?$|\((serve_forever|process_request_thread)\)$"
)
TRACEBACK = ("Traceback (most recent call last)", "Exception occurred during processing of request")


@pytest.fixture(autouse=True)
def no_server_thread_outlives_its_test() -> Iterator[None]:
    """A loopback server's threads end with the test that started them; one left running answers, and
    prints into, whatever test runs next."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and SERVER_THREAD.search(t.name)]
    assert not left, f"HTTP server threads still running after the test: {left}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test whose captured stdout/stderr holds a traceback fails, whichever thread printed it."""
    report = yield
    printed = "".join(
        text for name, text in report.sections if name.startswith("Captured std") and name.endswith(call.when)
    )
    if report.passed and any(mark in printed for mark in TRACEBACK):
        report.outcome = "failed"
        report.longrepr = f"a traceback was printed during the test's {call.when}:\n{printed}"
    return report


_skipped: list[str] = []


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a module that skips as a whole (the browser test without Chromium)
        _skipped.append(report.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A required test that skipped (tests/required.py) fails the run, saying which and why."""
    missed = required_skips(os.environ, _skipped)
    if missed:
        print(f"\nrequired tests skipped (tests/required.py), so the run fails: {', '.join(missed)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
