"""Issue 17 in the plan: a 2-node fine-tune, three adapters on one base, a fine-tune with no training image;
each recorded input checked against pulumi_oci's input types; and the refusals, exit 2 with the key named."""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi_oci
import pytest

from domain.training_args import parse_args
from llmstack.cli import main
from tests.conftest import PROJECT_DIR, model_of, one, resource_count, resources
from tests.test_components import CATALOG, DEPLOYMENT, _known_inputs, _unknown_keys
from tests.test_fine_tune import FT, JOB, NS, RUN, TRAIN_IMAGE, fine_tune

Plan = Any
PlanOf = Callable[..., Plan]
GROUP = "oci:DataScience/modelGroup:ModelGroup"
ADAPTERS = PROJECT_DIR / "examples" / "Pulumi.adapters.yaml"


def provider_accepts(plan: Plan, *types: str) -> list[str]:
    """Every recorded input of these types that pulumi_oci's input types do not know (none, hopefully)."""
    unknown: list[str] = []
    for type_ in types:
        known = _known_inputs(type_)
        for resource in resources(plan, type_):
            unknown += [f"{resource.name}.{k}" for k in resource.inputs if k not in known]
            unknown += [
                b for k, v in resource.inputs.items() if k in known for b in _unknown_keys(v, known[k], k)
            ]
    return unknown


def plan_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", "--project-dir", str(PROJECT_DIR), *args])
    out, err = capsys.readouterr()
    return code, out, err


# -- a 2-node fine-tune -----------------------------------------------------------------------------------------


@pytest.fixture
def two_nodes(config: dict[str, Any]) -> dict[str, Any]:
    """Full fine-tuning of 7B on 2 x BM.GPU.A10.4: it fits only sharded over the 8 GPUs."""
    model_of(config)["source"] = {
        "fineTune": fine_tune(method="full", shape="BM.GPU.A10.4", nodes=2, timeoutMinutes=480)
    }
    return config


def test_a_two_node_fine_tune_is_a_multi_node_job_on_the_stacks_subnet(
    two_nodes: dict[str, Any], plan_of: PlanOf
) -> None:
    plan = plan_of(two_nodes)
    job = one(plan, JOB)
    subnet = next(r for r in plan.resources if r.name == "llm-network-subnet")
    nodes = job.inputs["jobNodeConfigurationDetails"]
    [group] = nodes.pop("jobNodeGroupConfigurationDetailsLists")
    assert nodes == {
        "jobNodeType": "MULTI_NODE",
        "startupOrder": "IN_PARALLEL",
        "maximumRuntimeInMinutes": "480",
        "jobNetworkConfiguration": {"jobNetworkType": "CUSTOM_NETWORK", "subnetId": subnet.id},
    }
    assert (group["name"], group["replicas"], group["minimumSuccessReplicas"]) == ("node-group", 2, 2)
    assert group["jobInfrastructureConfigurationDetails"] == {
        "jobInfrastructureType": "MULTI_NODE",
        "shapeName": "BM.GPU.A10.4",
        "blockStorageSizeInGbs": 80,
    }
    environment = group["jobEnvironmentConfigurationDetails"]
    command = environment["entrypoints"] + environment["cmds"]
    assert command[:8] == [
        "python",
        "-m",
        "training.multinode",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "4",
        "--",
    ]
    args = parse_args(command[8:])
    assert (args.method, args.sharding, args.save) == ("full", "fsdp", "merged")
    assert environment["image"] == TRAIN_IMAGE
    assert "jobInfrastructureConfigurationDetails" not in job.inputs  # all of it is in the node group
    assert "jobEnvironmentConfigurationDetails" not in job.inputs
    assert job.inputs["jobLogConfigurationDetails"]["enableLogging"] is True
    assert provider_accepts(plan, JOB) == []


def test_the_plan_prices_both_nodes_and_fits_the_sharded_run(
    two_nodes: dict[str, Any], write_stack: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(two_nodes)), "--json")
    assert (code, err) == (0, "")
    [training] = json.loads(out)["training"]
    assert training == {
        "name": "llama2-7b-chat",
        "shape": "BM.GPU.A10.4",
        "method": "full",
        "nodes": 2,
        "gpuMemoryGb": 24,
        "requiredGpuMemoryGb": 20.9,
        "fits": True,
        "hourlyUsd": 8.0,
        "maxHours": 8,
        "maxUsd": 128.0,  # 2 nodes x 8.00 USD/h x 8 h
    }
    code, text, _ = plan_cli(capsys, "--stack-file", str(write_stack(two_nodes)))
    row = next(line for line in text.splitlines() if line.strip().startswith("llama2-7b-chat  full"))
    assert row.split()[2:5] == ["2", "x", "BM.GPU.A10.4"] and row.split()[-1] == "128.00"


# -- three adapters on one base ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapters_plan() -> Plan:
    from llmstack.plan import run_plan

    return run_plan(PROJECT_DIR, stack_file=ADAPTERS)


def test_three_adapters_share_one_deployment_and_one_model_group(adapters_plan: Plan) -> None:
    plan = adapters_plan
    assert resource_count(plan, DEPLOYMENT) == 1 and resource_count(plan, GROUP) == 1
    assert resource_count(plan, JOB) == 3 and resource_count(plan, RUN) == 3
    assert resource_count(plan, CATALOG) == 4  # the base and three adapters
    catalog = {r.name: r.id for r in resources(plan, CATALOG)}
    group, deployment = one(plan, GROUP), one(plan, DEPLOYMENT)
    assert group.inputs["modelGroupDetails"] == {"type": "STACKED", "baseModelId": catalog["llama2-7b-model"]}
    members = group.inputs["memberModelEntries"]["memberModelDetails"]
    assert [(m["inferenceKey"], m["modelId"]) for m in members] == [
        ("llama2-7b", catalog["llama2-7b-model"]),
        ("support", catalog["support-model"]),
        ("billing", catalog["billing-model"]),
        ("returns", catalog["returns-model"]),
    ]
    details = deployment.inputs["modelDeploymentConfigurationDetails"]
    assert details["deploymentType"] == "MODEL_GROUP" and "modelConfigurationDetails" not in details
    assert details["modelGroupConfigurationDetails"] == {"modelGroupId": group.id}
    assert details["infrastructureConfigurationDetails"] == {
        "infrastructureType": "INSTANCE_POOL",
        "bandwidthMbps": 10,
        "instanceConfiguration": {
            "instanceShapeName": "VM.GPU.A10.1",
            "networkAccessType": "CUSTOM_NETWORKING",
            "subnetId": next(r.id for r in plan.resources if r.name == "llm-network-subnet"),
        },
        "scalingPolicy": {"policyType": "FIXED_SIZE", "instanceCount": 1},
    }
    env = details["environmentConfigurationDetails"]["environmentVariables"]
    assert shlex.split(env["PARAMS"]) == [
        "--served-model-name", "llama2-7b", "--enable-lora", "--max-loras", "8", "--max-lora-rank", "32",
    ]  # fmt: skip
    assert env["LORA_ADAPTERS_DIR"] == "/opt/ds/model/deployed_model"  # the launcher finds them there
    assert not any(catalog[f"{n}-model"] in json.dumps(env) for n in ("support", "billing", "returns"))
    assert env["MODEL"] == "NousResearch/Llama-2-7b-hf"  # an online base keeps its id
    assert deployment.inputs["freeformTags"]["llmstack-lora-slots"] == "8x32"  # returns has loraR 32
    jobs = {j.name: j.inputs["jobConfigurationDetails"]["commandLineArguments"] for j in resources(plan, JOB)}
    for name in ("support", "billing", "returns"):
        assert "--save adapter" in jobs[f"{name}-finetune-job"]
        assert f"--adapter-name {name}" in jobs[f"{name}-finetune-job"]
    assert provider_accepts(plan, JOB, GROUP, DEPLOYMENT) == []


def test_the_plan_shows_one_deployment_with_its_adapters_priced_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = plan_cli(capsys, "--stack-file", str(ADAPTERS), "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    [model] = result["models"]
    assert model["adapters"] == ["support", "billing", "returns"]
    assert model["loraGpuMemoryGb"] == 1.42 and model["fits"] is True  # 8 slots of rank 32
    assert result["monthlyUsd"] == model["monthlyUsd"] == 1468.98  # one A10 deployment, not four
    assert [t["name"] for t in result["training"]] == ["billing", "returns", "support"]
    assert result["trainingMaxUsd"] == 48.0


def test_changing_one_adapter_changes_its_run_and_the_group_not_the_others(tmp_path: Path) -> None:
    """A new dataset retrains `returns` alone; the deployment keeps its identity and gets the group's id,
    an input pulumi_oci updates in place, while the group's members are not updatable (a new group)."""
    from llmstack.plan import load, record_program
    from llmstack.stack_files import read_stack_file

    parsed = read_stack_file(ADAPTERS)
    changed = copy.deepcopy(parsed.config)
    changed["oci-llm-stack:models"]["returns"]["source"]["fineTune"]["dataset"] += "-v3"
    path = tmp_path / "Pulumi.adapters.yaml"
    path.write_text(json.dumps({"config": changed}))
    before = record_program(PROJECT_DIR, *load(PROJECT_DIR, stack_file=ADAPTERS))
    after = record_program(PROJECT_DIR, *load(PROJECT_DIR, stack_file=path))
    inputs = {r.name: r.inputs for r in before.resources}
    moved = sorted(r.name for r in after.resources if r.inputs != inputs.get(r.name))
    assert moved == ["returns-finetune-job", "returns-finetune-run", "returns-model"]  # the deployment stays

    docs = pulumi_oci.datascience.ModelGroupArgs.__init__.__doc__ or ""
    assert ":param pulumi.Input['ModelGroupMemberModelEntriesArgs'] member_model_entries:" in docs
    entries = docs.split("member_model_entries:", 1)[1].split(":param", 1)[0]
    assert "(Updatable)" not in entries  # a new member list is a new group
    group_config = pulumi_oci.datascience.ModelDeploymentModelDeploymentConfigurationDetailsModelGroupConfigurationDetailsArgs
    assert "(Updatable)" in (group_config.__init__.__doc__ or "")  # the deployment moves to it in place


# -- a fine-tune with no training image --------------------------------------------------------------------------


def test_without_an_image_the_job_runs_the_entrypoint_artifact_on_a_service_conda_environment(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    body = fine_tune()
    del body["image"]
    model_of(config)["source"] = {"fineTune": body}
    plan = plan_of(config)
    job = one(plan, JOB)
    assert "jobEnvironmentConfigurationDetails" not in job.inputs
    details = job.inputs["jobConfigurationDetails"]
    env = details["environmentVariables"]
    assert (env["CONDA_ENV_TYPE"], env["CONDA_ENV_SLUG"], env["JOB_RUN_ENTRYPOINT"]) == (
        "service",
        "pytorch24_p310_gpu_x86_64_v1",
        "job_entry.sh",
    )
    command = shlex.split(details["commandLineArguments"])
    assert command[:6] == ["torchrun", "--standalone", "--nproc-per-node", "1", "-m", "training.finetune"]
    assert parse_args(command[6:]).dataset == "oci://training-data@idxyzabc1234/support-qa/v3"
    artifact = Path(job.inputs["jobArtifact"])
    assert artifact.is_file() and artifact.name.startswith("training-job-")
    assert job.inputs["artifactContentLength"] == str(artifact.stat().st_size)
    assert job.inputs["artifactContentDisposition"] == f"attachment; filename={artifact.name}"
    assert provider_accepts(plan, JOB) == []


# -- refused, exit 2, the key named -----------------------------------------------------------------------------


def adapter_stack(config: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The config's model as a base, plus one adapter of it (changed by `changes`)."""
    models = config[f"{NS}models"]
    models["llama2-7b-chat"]["source"] = {"huggingface": "NousResearch/Llama-2-7b-chat-hf"}
    body = fine_tune(baseModel="llama2-7b-chat", save="adapter")
    body.update(changes)
    models["support"] = {"source": {"fineTune": body}}
    return config


REFUSED = [
    (
        "two nodes with managed egress (no subnet)",
        lambda c: (
            c.update({f"{NS}network": {"egress": "managed"}}),
            model_of(c).update(source={"fineTune": fine_tune(method="full", shape="BM.GPU.A10.4", nodes=2)}),
        ),
        f"{FT}.nodes: 2 nodes need the stack's subnet: a multi-node job run's nodes reach each other on a custom "
        "network, and network.egress is 'managed' (no subnet); accepted: nodes: 1, or network.egress: nat (or an "
        "existingSubnetId)",
    ),
    (
        "an adapter whose base model is not in the stack",
        lambda c: adapter_stack(c, baseModel="llama3-70b"),
        "models.support.source.fineTune.baseModel: 'llama3-70b' is not a model of this stack; an adapter is "
        "served on its base model's deployment, so baseModel names that model (models.<name>); accepted: one of "
        "llama2-7b-chat",
    ),
    (
        "save: adapter on method: full",
        lambda c: adapter_stack(c, method="full"),
        "models.support.source.fineTune.save: invalid value 'adapter'; full fine-tuning has no adapter; use "
        "--save merged or --method lora",
    ),
    (
        "an adapter with a deployment of its own",
        lambda c: adapter_stack(c)[f"{NS}models"]["support"].update(compute={"shape": "VM.GPU.A10.1"}),
        "models.support.compute: an adapter (save: adapter) is served on its base model's deployment and has no "
        "compute of its own; accepted: leave it out (set it on the base model)",
    ),
    (
        "a base from a zip the job cannot read",
        lambda c: (
            adapter_stack(c),
            model_of(c).update(source={"objectStorage": "oci://models@idxyzabc1234/llama-2-7b-hf.zip"}),
        ),
        "models.support.source.fineTune.baseModel: model 'llama2-7b-chat' is not from Hugging Face: the training "
        "job reads the base weights by their Hugging Face id (a zip or a local folder it cannot read yet); "
        "accepted: a base model whose source is huggingface",
    ),
    (
        "no image and no internet",
        lambda c: (
            c.update({f"{NS}network": {"egress": "none"}}),
            model_of(c).update(
                source={
                    "fineTune": {
                        k: v
                        for k, v in fine_tune(baseModel="oci://m@ns/llama-2-7b-hf").items()
                        if k != "image"
                    }
                }
            ),
        ),
        f"{FT}.image: missing, and network.egress is 'none': a job without a training image installs Python 3.11 "
        "and the pinned train extra from PyPI when it starts (docs/finetune.md); accepted: a training image in "
        "OCIR, or network.egress: nat",
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_exit_2_and_the_key_named(
    config: dict[str, Any],
    change: Callable[[dict[str, Any]], Any],
    expected: str,
    write_stack: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    change(config)
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(config)))
    assert (code, out) == (2, "")
    assert err.splitlines()[1:] == [f"  - {expected}"], err
