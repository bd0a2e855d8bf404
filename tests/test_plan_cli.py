"""`llmstack plan`: exit codes, the JSON contract, masked secrets, the tree and the DOT graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmstack.cli import main
from tests.conftest import FAKE_HF_TOKEN, PROJECT_DIR, local_model, model_of


def plan_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", "--project-dir", str(PROJECT_DIR), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan_cli(capsys, "--stack", "dev", "--json")
    assert (code, err) == (0, "")
    plan = json.loads(out)
    assert set(plan) >= {"stack", "resources", "outputs"} and plan["stack"] == "dev"
    urns = {r["urn"] for r in plan["resources"]}
    for resource in plan["resources"]:
        # `replaceOnChanges` only where a change replaces the resource (a deployment: domain/oci_rules.py).
        assert set(resource) - {"replaceOnChanges"} == {
            "urn",
            "type",
            "name",
            "parent",
            "dependencies",
            "inputs",
        }
        assert resource["parent"] is None or resource["parent"] in urns
        assert set(resource["dependencies"]) <= urns
    deployment = next(r for r in plan["resources"] if r["type"].endswith("modelDeployment:ModelDeployment"))
    catalog = next(r for r in plan["resources"] if r["type"].endswith("catalog:CatalogModel"))
    assert catalog["urn"] in deployment["dependencies"]
    model = plan["outputs"]["models"]["llama2-7b-chat"]
    assert set(model) == {"predictUrl", "streamUrl", "openaiBaseUrl", "deploymentId", "catalogModelId"}
    assert model["predictUrl"].endswith("/predict") and model["streamUrl"].endswith(
        "/predictWithResponseStream"
    )
    assert model["openaiBaseUrl"] == model["predictUrl"] + "/v1"


def test_the_same_stack_always_plans_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    first = plan_cli(capsys, "--stack", "prod", "--json")[1]
    second = plan_cli(capsys, "--stack", "prod", "--json")[1]
    assert first == second


def test_the_plan_is_the_same_in_every_process(tmp_path: Path) -> None:
    """Two runs (as two CI jobs would make them) differ in hash seed, so in the order of Python's sets."""
    script = Path(sys.executable).with_name("llmstack")
    outputs = [
        subprocess.run(
            [str(script), "plan", "--stack", "dev", "--project-dir", str(PROJECT_DIR), "--json"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]


def test_a_plan_leaves_no_event_loop_open(config: dict[str, Any], plan_of: Callable[..., Any]) -> None:
    """Loops left open are closed at interpreter exit, which can print a traceback after a clean plan."""
    import asyncio
    import gc

    def open_loops() -> set[int]:
        gc.collect()
        return {  # type(), not isinstance(): some modules' objects warn when their __class__ is read
            id(o)
            for o in gc.get_objects()
            if issubclass(type(o), asyncio.AbstractEventLoop) and not o.is_closed()
        }

    before = open_loops()
    plan_of(config)
    assert open_loops() - before == set()


def test_secrets_are_masked(
    capsys: pytest.CaptureFixture[str], config: dict[str, Any], write_stack: Callable[..., Path]
) -> None:
    config["oci-llm-stack:hfToken"] = {"secure": "v1:ZmFrZWNpcGhlcnRleHQ="}
    code, out, _ = plan_cli(capsys, "--stack-file", str(write_stack(config)), "--json")
    assert code == 0
    catalog = next(r for r in json.loads(out)["resources"] if r["type"].endswith("CatalogModel"))
    assert catalog["inputs"]["hfToken"] == "[secret]"
    assert "ZmFrZWNpcGhlcnRleHQ" not in out


def test_a_real_token_never_reaches_the_output(config: dict[str, Any], plan_of: Callable[..., Any]) -> None:
    config["oci-llm-stack:hfToken"] = FAKE_HF_TOKEN
    plan = plan_of(config, secret_keys=["oci-llm-stack:hfToken"])
    assert FAKE_HF_TOKEN not in json.dumps(plan.as_json())
    assert FAKE_HF_TOKEN not in json.dumps(plan.outputs)


def test_bad_settings_exit_2_with_every_problem_and_no_traceback(
    capsys: pytest.CaptureFixture[str], config: dict[str, Any], write_stack: Callable[..., Path]
) -> None:
    model_of(config)["compute"]["shape"] = "VM.GPU.H200.8"
    config["oci-llm-stack:network"]["egres"] = "nat"
    path = write_stack(config)
    code, out, err = plan_cli(capsys, "--stack-file", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"2 problems with the stack settings in {path}:")
    assert "models.llama2-7b-chat.compute.shape: unknown shape 'VM.GPU.H200.8'" in err
    assert "network.egres: unknown key; did you mean 'egress'?" in err
    assert "Traceback" not in err


def test_yaml_errors_exit_2_naming_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  oci:region: [us-ashburn-1\n", encoding="utf-8")
    code, _, err = plan_cli(capsys, "--stack-file", str(path))
    assert code == 2 and f"{path}:3: YAML syntax error at line 3" in err


def test_unknown_stack_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan_cli(capsys, "--stack", "qa")
    assert code == 2
    assert (
        err.strip() == "llmstack plan: --stack qa: no stacks/Pulumi.qa.yaml; stacks here: dev, prod, staging"
    )


def test_tree_shows_parents_and_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan_cli(capsys, "--stack", "prod")
    assert code == 0
    assert out.startswith("Plan of stack prod (stacks/Pulumi.prod.yaml): ")
    assert "├─ llama2-13b-chat  [oci-llm-stack:serving:ModelServing]" in out or (
        "└─ llama2-13b-chat  [oci-llm-stack:serving:ModelServing]" in out
    )
    assert (
        "llama2-13b-chat-deployment  [oci:DataScience/modelDeployment:ModelDeployment]  VM.GPU.A10.2 x2"
        in out
    )
    assert (
        "models.llama2-13b-chat.predictUrl: https://modeldeployment.us-ashburn-1.oci.customer-oci.com/" in out
    )


def test_dot_graph_is_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dot = tmp_path / "graph.dot"
    code, _, _ = plan_cli(capsys, "--stack", "staging", "--dot", str(dot))
    text = dot.read_text(encoding="utf-8")
    assert code == 0 and text.startswith('digraph "staging" {') and text.rstrip().endswith("}")
    assert '\\noci:DataScience/modelDeployment:ModelDeployment"' in text
    assert text.count("->") > 20


def test_a_dot_file_that_cannot_be_written_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "no-such-folder" / "graph.dot"
    code, out, err = plan_cli(capsys, "--stack", "dev", "--dot", str(target))
    assert (code, out) == (2, "")
    assert err == f"llmstack plan: --dot {target}: cannot be written (No such file or directory)\n"


def test_a_model_folder_that_cannot_be_read_is_the_users_error_not_a_bug(
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any],
    write_stack: Callable[..., Path],
    tmp_path: Path,
) -> None:
    folder = local_model(config, tmp_path)
    (folder / "tokenizer.model").symlink_to(tmp_path / "gone")
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(config)))
    assert (code, out) == (2, "")
    assert err.startswith(f"llmstack plan: cannot read {folder / 'tokenizer.model'}: ")
    assert err.count("\n") == 1


def test_under_the_engine_a_users_error_is_a_run_error(
    config: dict[str, Any], plan_of: Callable[..., Any], tmp_path: Path
) -> None:
    """`pulumi up` prints a RunError as its message alone; any other exception with a traceback."""
    import pulumi

    from domain.errors import UserError

    folder = tmp_path / "llama-2-7b-chat-hf"
    folder.mkdir()
    (folder / "weights.bin").symlink_to(tmp_path / "gone")
    model_of(config)["source"] = {"localPath": str(folder)}
    with pytest.raises(UserError) as caught:
        plan_of(config)
    assert isinstance(caught.value.__context__, pulumi.RunError)
    assert str(caught.value.__context__) == str(caught.value)


def test_console_script_runs_from_a_clean_process(tmp_path: Path) -> None:
    """What `make preview` does, through the installed entry point, from outside the project folder."""
    script = Path(sys.executable).with_name("llmstack")
    result = subprocess.run(
        [str(script), "plan", "--stack", "dev", "--project-dir", str(PROJECT_DIR), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "dev"


def test_under_the_engine_bad_settings_stop_the_program_before_any_resource(
    config: dict[str, Any], write_stack: Callable[..., Path]
) -> None:
    """`pulumi up` reads settings inside __main__; a bad value must stop it with the same message, no resource."""
    from domain.settings import load_settings
    from llmstack.plan import ProgramError, record_program
    from llmstack.stack_files import read_stack_file

    good = load_settings(read_stack_file(write_stack(config)).config, stack="test", project_dir=PROJECT_DIR)
    model_of(config)["compute"]["replicas"] = 0
    bad = read_stack_file(write_stack(config))
    with pytest.raises(ProgramError) as caught:
        record_program(PROJECT_DIR, bad, good)
    assert "models.llama2-7b-chat.compute.replicas: out of range: 0; accepted: an integer from 1 up" in str(
        caught.value
    )


def test_a_tgi_model_without_safetensors_is_refused_before_anything_is_made(
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any],
    write_stack: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """TGI converts .bin weights next to them; OCI mounts the artifact read-only (issue: first contact)."""
    folder = local_model(config, tmp_path)
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 16)
    model = model_of(config)
    model["serving"]["engine"] = "tgi"
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(config)))
    assert (code, out) == (2, "")
    assert f"models.llama2-7b-chat.source.localPath: {folder}: the folder has only pytorch_model.bin" in err
    assert "OCI mounts the model read-only" in err and "Traceback" not in err
    # The same folder with vLLM (which loads .bin itself, in memory) plans.
    model["serving"]["engine"] = "vllm"
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(config)))
    assert code in (0, 1) and "localPath" not in err, err
    # And TGI plans once the folder holds safetensors.
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    model["serving"]["engine"] = "tgi"
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(config)))
    assert code in (0, 1) and "localPath" not in err, err
