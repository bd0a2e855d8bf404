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
    up = _action_step("Pulumi up")
    assert set(up["with"]) <= PULUMI_ACTIONS_INPUTS
    assert up["with"]["policyPacks"] == "policy"
    assert up["with"]["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
    assert up["with"]["stack-name"] == "${{ inputs.stack }}"
    preview = _action_step("Pulumi preview")["run"]
    assert '--policy-pack policy --policy-pack-config "policy/config/$STACK.json"' in preview
    assert '--stack "$STACK"' in preview


def _action_step(name: str) -> dict[str, Any]:
    return next(s for s in STACK_ACTION_SPEC["runs"]["steps"] if s.get("name", "").startswith(name))


def test_pull_requests_run_the_tests_then_preview_every_stack_on_the_pr() -> None:
    assert "pull_request" in PULL_REQUEST["on"]
    jobs = PULL_REQUEST["jobs"]
    assert any(step.get("run") == "make test" for step in jobs["test"]["steps"])
    preview = jobs["preview"]
    assert preview["needs"] == ["test", "browser"]
    assert preview["strategy"]["matrix"]["stack"] == STACKS
    call = _calls_to_stack_action(PULL_REQUEST)["preview"]
    assert call["command"] == "preview"
    assert call["comment-on-pr"] == "true"
    assert preview["permissions"]["pull-requests"] == "write"
    assert PULL_REQUEST["concurrency"]["cancel-in-progress"] is True


def test_main_deploys_dev_then_staging_then_prod_behind_an_approval() -> None:
    assert DEPLOY["on"]["push"]["branches"] == ["main"]
    jobs = DEPLOY["jobs"]
    assert [jobs["dev"]["needs"], jobs["staging"]["needs"], jobs["prod"]["needs"]] == [
        ["test", "browser", "slow"],
        "dev",
        "staging",
    ]
    assert jobs["prod"]["environment"] == "production"
    calls = _calls_to_stack_action(DEPLOY)
    assert {job: (c["command"], c["stack"]) for job, c in calls.items()} == {
        stack: ("up", stack) for stack in STACKS
    }


def test_every_previewed_stack_has_a_policy_config_and_the_pack_has_its_own_venv() -> None:
    for stack in PULL_REQUEST["jobs"]["preview"]["strategy"]["matrix"]["stack"]:
        assert (ROOT / "policy" / "config" / f"{stack}.json").is_file(), stack
        assert (ROOT / "stacks" / f"Pulumi.{stack}.yaml").is_file(), stack
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    assert (ROOT / "policy" / "requirements.txt").is_file()
    # The stack action builds that virtualenv before Pulumi runs the pack.
    steps = yaml.safe_load(STACK_ACTION.read_text())["runs"]["steps"]
    assert any("make install policy-venv" in str(step.get("run", "")) for step in steps)


# -- issue 18: credentials, first deploy, failed previews, concurrency, Dependabot, locks, what CI runs ------

DEPLOY_ENVIRONMENTS = {"dev": "dev", "staging": "staging", "prod": "production"}


def test_previews_run_in_their_own_environment_with_read_only_credentials() -> None:
    """Secrets kept in environments reach only jobs naming one: the previews name `preview`."""
    assert PULL_REQUEST["jobs"]["preview"]["environment"] == "preview"


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_every_job_that_reads_secrets_names_its_environment(path: Path) -> None:
    """No repository-level secret is needed: a same-repository pull request cannot reach deploy credentials."""
    for name, job in _load(path)["jobs"].items():
        if "secrets." in yaml.safe_dump(job):
            assert job.get("environment") in {"preview", *DEPLOY_ENVIRONMENTS.values()}, name


def test_each_deploy_job_uses_its_environment_and_creates_its_stack_on_the_first_deploy() -> None:
    jobs = DEPLOY["jobs"]
    assert {stack: jobs[stack]["environment"] for stack in STACKS} == DEPLOY_ENVIRONMENTS
    assert {stack: call["upsert"] for stack, call in _calls_to_stack_action(DEPLOY).items()} == {
        stack: "true" for stack in STACKS
    }
    assert "upsert" not in _calls_to_stack_action(PULL_REQUEST)["preview"]  # previews never create stacks
    assert _action_step("Pulumi up")["with"]["upsert"] == "${{ inputs.upsert }}"
    assert STACK_ACTION_SPEC["inputs"]["upsert"]["default"] == "false"


def test_a_passphrase_stack_with_secure_values_needs_its_salt_committed() -> None:
    guard = _action_step("A passphrase stack created by upsert")
    assert "inputs.upsert == 'true'" in guard["if"] and "inputs.config-passphrase != ''" in guard["if"]
    assert "encryptionsalt" in guard["run"] and "exit 1" in guard["run"]


def test_a_failed_preview_still_posts_its_output_and_then_fails_the_check() -> None:
    """pulumi/actions comments only after a success; the preview step records its exit code instead of
    failing, the comment is posted in any case, and a last step fails on a failed preview."""
    steps = STACK_ACTION_SPEC["runs"]["steps"]
    names = [step.get("name", "") for step in steps]
    preview = _action_step("Pulumi preview")
    assert preview["id"] == "preview" and "uses" not in preview
    assert "set +e" in preview["run"] and 'echo "exit-code=$code" >> "$GITHUB_OUTPUT"' in preview["run"]
    comment = _action_step("Post the preview")
    assert comment["if"].startswith("always()")
    assert "startswith" in comment["run"] and "--method PATCH" in comment["run"]  # one comment per stack
    assert "FAILED" in comment["run"]
    fail = _action_step("Fail on a failed preview")
    assert fail["if"] == "inputs.command == 'preview' && steps.preview.outputs.exit-code != '0'"
    assert "exit 1" in fail["run"]
    assert names.index(preview["name"]) < names.index(comment["name"]) < names.index(fail["name"])


def test_concurrency_is_per_deploy_job_so_a_waiting_approval_blocks_no_other_stack() -> None:
    assert "concurrency" not in DEPLOY
    for stack in STACKS:
        assert DEPLOY["jobs"][stack]["concurrency"] == {
            "group": f"deploy-{stack}",
            "cancel-in-progress": False,
        }


def test_forks_and_dependabot_get_no_preview() -> None:
    condition = PULL_REQUEST["jobs"]["preview"]["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "github.event.pull_request.user.login != 'dependabot[bot]'" in condition


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_only_the_commenting_job_may_write(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        writes = {key for key, value in job.get("permissions", {}).items() if value == "write"}
        assert writes == ({"pull-requests"} if name == "preview" else set()), name


def test_a_failed_or_cancelled_up_unlocks_its_stack() -> None:
    unlock = _action_step("Unlock")
    assert unlock["if"] == "(failure() || cancelled()) && inputs.command == 'up'"
    assert 'pulumi cancel --yes --stack "$STACK"' in unlock["run"]


def _make_targets(job: dict[str, Any]) -> list[str]:
    return [
        step["run"].split("#")[0].split()[1]
        for step in job.get("steps", [])
        if step.get("run", "").startswith("make ")
    ]


@pytest.mark.parametrize("workflow", [PULL_REQUEST, DEPLOY], ids=["pull-request", "deploy"])
def test_the_workflows_run_everything_ci_runs_and_the_browser_test_where_it_can(
    workflow: dict[str, Any],
) -> None:
    ci = [
        line.split()[1]
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith("make ")
    ]
    assert ci == ["test", "test-train"]
    ran = {target: name for name, job in workflow["jobs"].items() for target in _make_targets(job)}
    assert set(ci) <= ran.keys()
    browser = workflow["jobs"][ran["test-browser"]]
    assert browser["container"].startswith("python:3.11") and browser["container"].endswith("-bookworm")
    assert "LLMSTACK_REQUIRE_BROWSER=1" in (ROOT / "Makefile").read_text()


def test_main_runs_the_slow_zip64_test_before_deploying() -> None:
    ran = {target: name for name, job in DEPLOY["jobs"].items() for target in _make_targets(job)}
    assert "test-slow" in ran
    assert set(DEPLOY["jobs"]["dev"]["needs"]) == {ran["test"], ran["test-browser"], ran["test-slow"]}
    makefile = (ROOT / "Makefile").read_text()
    assert "LLMSTACK_SLOW_TESTS=1 $(BIN)/pytest -q tests/test_upload.py" in makefile
    assert "LLMSTACK_REQUIRE_TRAIN=1" in makefile  # a skipped training test fails `make test-train`


def test_the_docs_describe_the_credentials_layout_the_first_deploy_and_a_stale_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    guardrails = (ROOT / "docs" / "guardrails.md").read_text()
    for text in (readme, guardrails):
        assert "Credentials layout" in text
        assert all(f"`{name}`" in text for name in ("preview", "dev", "staging", "production"))
        assert "required reviewers" in text and "Enterprise" in text
    assert "repository-wide" not in guardrails  # secrets live in environments only
    assert "pulumi cancel --yes --stack" in guardrails and "pulumi stack init" in guardrails
    assert "encryptionsalt" in guardrails
