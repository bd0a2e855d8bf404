"""The GitHub workflows do what the guardrails promise: test, preview every stack with the policy pack on
pull requests, deploy in order with prod behind an approval, and keep credentials out of scripts.

actionlint (`make actionlint`) checks the syntax; these tests check intent and what actionlint cannot see:
the inputs of the local composite action and of pulumi/actions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
STACK_ACTION = ROOT / ".github" / "actions" / "pulumi-stack" / "action.yml"
STACKS = ["dev", "staging", "prod"]

# Inputs of pulumi/actions v7.0.0 (its action.yml at 8e5e406f4007fca908480587cb9893c07090f58d).
PULUMI_ACTIONS_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider",
    "parallel", "message", "config-map", "expect-no-changes", "diff", "replace", "exclude",
    "exclude-dependents", "target", "target-dependents", "policyPacks", "policyPackConfigs", "refresh",
    "upsert", "remove", "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs",
    "suppress-progress", "always-include-summary", "continue-on-error", "log-verbosity", "log-flow", "debug",
}  # fmt: skip


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


PULL_REQUEST = _load(WORKFLOWS / "pull-request.yml")
DEPLOY = _load(WORKFLOWS / "deploy.yml")
STACK_ACTION_SPEC = _load(STACK_ACTION)


@pytest.mark.parametrize("path", [*_workflow_files(), STACK_ACTION], ids=lambda p: p.name)
def test_remote_actions_are_pinned_to_a_commit_with_its_version(path: Path) -> None:
    uses = [line.split("uses:", 1)[1].strip() for line in path.read_text().splitlines() if "uses:" in line]
    remote = [u for u in uses if not u.startswith("./")]
    assert remote
    for ref in remote:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", ref), ref


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_secrets_never_reach_a_shell_script(path: Path) -> None:
    for step in _steps(_load(path)):
        assert "secrets." not in step.get("run", ""), step


def test_the_key_file_is_written_without_echoing_the_key() -> None:
    scripts = [step.get("run", "") for step in STACK_ACTION_SPEC["runs"]["steps"]]
    writer = next(s for s in scripts if "oci_api_key.pem" in s and "printf" in s)
    assert "umask 077" in writer
    assert "set -x" not in writer
    assert "${{" not in writer  # values come from step env, never pasted into the script
    assert any("rm -f" in s and "oci_api_key.pem" in s for s in scripts)


def _calls_to_stack_action(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: step["with"]
        for name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
        if step.get("uses") == "./.github/actions/pulumi-stack"
    }


@pytest.mark.parametrize("workflow", [PULL_REQUEST, DEPLOY], ids=["pull-request", "deploy"])
def test_calls_of_the_stack_action_give_known_and_required_inputs(workflow: dict[str, Any]) -> None:
    inputs = STACK_ACTION_SPEC["inputs"]
    required = {name for name, spec in inputs.items() if spec.get("required")}
    calls = _calls_to_stack_action(workflow)
    assert calls
    for job, given in calls.items():
        assert set(given) <= set(inputs), f"{job}: unknown inputs {set(given) - set(inputs)}"
        assert required <= set(given), f"{job}: missing {required - set(given)}"


def test_the_stack_action_runs_pulumi_with_the_policy_pack_of_that_stack() -> None:
    step = next(
        s for s in STACK_ACTION_SPEC["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")
    )
    assert set(step["with"]) <= PULUMI_ACTIONS_INPUTS
    assert step["with"]["policyPacks"] == "policy"
    assert step["with"]["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
    assert step["with"]["stack-name"] == "${{ inputs.stack }}"
    assert step["with"]["comment-on-pr"] == "${{ inputs.comment-on-pr }}"


def test_pull_requests_run_the_tests_then_preview_every_stack_on_the_pr() -> None:
    assert "pull_request" in PULL_REQUEST["on"]
    jobs = PULL_REQUEST["jobs"]
    assert any(step.get("run") == "make test" for step in jobs["test"]["steps"])
    preview = jobs["preview"]
    assert preview["needs"] == "test"
    assert preview["strategy"]["matrix"]["stack"] == STACKS
    call = _calls_to_stack_action(PULL_REQUEST)["preview"]
    assert call["command"] == "preview"
    assert call["comment-on-pr"] == "true"
    assert PULL_REQUEST["permissions"]["pull-requests"] == "write"
    assert PULL_REQUEST["concurrency"]["cancel-in-progress"] is True


def test_main_deploys_dev_then_staging_then_prod_behind_an_approval() -> None:
    assert DEPLOY["on"]["push"]["branches"] == ["main"]
    jobs = DEPLOY["jobs"]
    assert [jobs["dev"]["needs"], jobs["staging"]["needs"], jobs["prod"]["needs"]] == [
        "test",
        "dev",
        "staging",
    ]
    assert jobs["prod"]["environment"] == "production"
    calls = _calls_to_stack_action(DEPLOY)
    assert {job: (c["command"], c["stack"]) for job, c in calls.items()} == {
        stack: ("up", stack) for stack in STACKS
    }
    assert DEPLOY["concurrency"]["cancel-in-progress"] is False


def test_every_previewed_stack_has_a_policy_config_and_the_pack_has_its_own_venv() -> None:
    for stack in PULL_REQUEST["jobs"]["preview"]["strategy"]["matrix"]["stack"]:
        assert (ROOT / "policy" / "config" / f"{stack}.json").is_file(), stack
        assert (ROOT / "stacks" / f"Pulumi.{stack}.yaml").is_file(), stack
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    assert (ROOT / "policy" / "requirements.txt").is_file()
