"""`llmstack plan` evaluates the policy pack's rules on the recorded resources and reports fit and cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmstack.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "stacks" / "Pulumi.dev.yaml"


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["plan", "--project-dir", str(ROOT), *args])
    return code, capsys.readouterr().out


def _json_plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out = _plan(capsys, "--json", *args)
    return code, json.loads(out)


def _variant(tmp_path: Path, change: Any) -> Path:
    """The dev stack file with one change, under a stack name that has no policy config of its own."""
    document = yaml.safe_load(DEV.read_text())
    change(document["config"], document["config"]["oci-llm-stack:models"]["llama2-7b-chat"])
    path = tmp_path / "Pulumi.variant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_pass_with_fit_and_cost(capsys: pytest.CaptureFixture[str], stack: str) -> None:
    code, plan = _json_plan(capsys, "--stack", stack)
    assert code == 0
    assert plan["violations"] == []
    [model] = plan["models"]
    assert model["fits"] is True
    assert model["requiredGpuMemoryGb"] < model["gpuMemoryGb"]
    assert plan["monthlyUsd"] == pytest.approx(model["monthlyUsd"])
    assert {"name", "shape", "gpuMemoryGb", "requiredGpuMemoryGb", "fits", "monthlyUsd"} <= set(model)


def test_dev_figures(capsys: pytest.CaptureFixture[str]) -> None:
    _, plan = _json_plan(capsys, "--stack", "dev")
    assert plan["models"] == [
        {
            "name": "llama2-7b-chat",
            "container": "service",  # Oracle's vLLM container: no image to build
            "artifact": "reference",  # the files stay in the bucket: no zip, no catalog copy
            "shape": "VM.GPU.A10.1",
            "gpuMemoryGb": 24.0,
            "requiredGpuMemoryGb": 19.0,
            "fits": True,
            "fullLengthSequences": 3,
            "instances": 1,
            "monthlyUsd": 1469.34,  # the weights' 13.5 GB in Object Storage count now (offline)
        }
    ]


def _latest(config: dict[str, Any], model: dict[str, Any]) -> None:
    model["serving"]["image"] = "iad.ocir.io/idxyzabc1234/llm/serving:latest"


def _too_big(config: dict[str, Any], model: dict[str, Any]) -> None:
    model["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/meta-llama/Llama-2-13b-chat-hf/"}


def _over_budget(config: dict[str, Any], model: dict[str, Any]) -> None:
    config["oci-llm-stack:budget"]["monthlyUsd"] = 1000


def _no_team(config: dict[str, Any], model: dict[str, Any]) -> None:
    del config["oci-llm-stack:tags"]["team"]


@pytest.mark.parametrize(
    ("change", "rule", "words"),
    [
        (_latest, "image-pinned-by-digest", "tag 'latest'"),
        (_too_big, "gpu-memory-fits-model", "does not fit"),
        (_over_budget, "monthly-budget", "exceeds the budget of $1,000"),
        (_no_team, "required-tags", "team missing"),
    ],
)
def test_a_broken_stack_exits_1_naming_the_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: Any, rule: str, words: str
) -> None:
    stack_file = _variant(tmp_path, change)
    code, plan = _json_plan(capsys, "--stack-file", str(stack_file))
    assert code == 1
    named = [v for v in plan["violations"] if v["policy"] == rule]
    assert named and all(v["enforcement"] == "mandatory" for v in named)
    assert words in named[0]["message"]
    assert {v["policy"] for v in plan["violations"]} == {rule}

    code, text = _plan(capsys, "--stack-file", str(stack_file))
    assert code == 1
    assert "Policy violations:" in text and rule in text


def test_too_big_model_shows_in_the_models_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text = _plan(capsys, "--stack-file", str(_variant(tmp_path, _too_big)))
    assert code == 1
    row = next(line for line in text.splitlines() if line.strip().startswith("llama2-7b-chat  VM.GPU.A10.1"))
    assert row.split()[2:5] == ["24.0", "34.3", "NO"]


def test_advisory_violations_do_not_fail_the_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "advisory.json"
    config.write_text(json.dumps({"image-pinned-by-digest": "advisory"}))
    stack_file = _variant(tmp_path, _latest)
    code, plan = _json_plan(capsys, "--stack-file", str(stack_file), "--policy-config", str(config))
    assert code == 0
    assert [v["enforcement"] for v in plan["violations"]] == ["advisory"]


def test_a_missing_policy_config_is_refused_before_the_plan_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmstack.plan

    def no_plan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the plan ran")

    monkeypatch.setattr(llmstack.plan, "run_plan", no_plan)
    missing = tmp_path / "nope.json"
    code = main(["plan", "--project-dir", str(ROOT), "--stack", "dev", "--policy-config", str(missing)])
    assert code == 2
    assert capsys.readouterr().err == f"llmstack plan: --policy-config {missing}: no such file\n"


def test_a_bad_policy_config_is_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"no-broad-iam": "sometimes"}))
    code = main(["plan", "--project-dir", str(ROOT), "--stack", "dev", "--policy-config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "bad.json: no-broad-iam: enforcement level 'sometimes'" in err


def test_the_facts_the_rules_need_travel_as_tags(capsys: pytest.CaptureFixture[str]) -> None:
    _, plan = _json_plan(capsys, "--stack", "prod")
    [deployment] = [r for r in plan["resources"] if r["type"].endswith("ModelDeployment")]
    tags = deployment["inputs"]["freeformTags"]
    assert tags["llmstack-architecture"] == "Llama-2-13B"  # from the object name
    assert tags["llmstack-parameters-b"] == "13"
    assert tags["llmstack-budget-monthly-usd"] == "7000"
    assert tags["llmstack-tensor-parallelism"] == "2"
