"""A fine-tuned model as one more `source`: settings, the graph (job -> run -> catalog -> deployment), IAM,
the plan's training figures, and the example stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.iam import job_matching_rule, training_policy_statements
from domain import fine_tune_job as job
from domain.settings import Settings, SettingsError, load_settings
from domain.training_args import parse_args
from llmstack.cli import main
from tests.conftest import COMPARTMENT, IMAGE, PROJECT_DIR, model_of, one, resource_count, resources
from tests.test_components import (
    CATALOG,
    DEPLOYMENT,
    DYNAMIC_GROUP,
    LOG,
    POLICY,
    READINESS,
    _known_inputs,
    _unknown_keys,
    depends_on,
    parent_name,
)

Plan = Any
PlanOf = Callable[..., Plan]
NS = "oci-llm-stack:"
MODEL = "models.llama2-7b-chat"
FT = f"{MODEL}.source.fineTune"
JOB = "oci:DataScience/job:Job"
RUN = "pulumi-python:dynamic/training:JobRun"
FINE_TUNE = "oci-llm-stack:training:FineTune"
TRAIN_IMAGE = "iad.ocir.io/idxyzabc1234/llm/train:0.1.0@sha256:" + "cd" * 32
SECRET = "ocid1.vaultsecret.oc1.iad.amaaaaaa4hbtp3iq6bqp7dvgx3rx6yq2qcbuwnblzkjhs7d6gkbqgkzdiyha"
EXAMPLE = PROJECT_DIR / "examples" / "Pulumi.finetune.yaml"


def fine_tune(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "baseModel": "NousResearch/Llama-2-7b-hf",
        "dataset": "oci://training-data@idxyzabc1234/support-qa/v3",
        "output": "oci://llm-finetunes@idxyzabc1234/support",
        "shape": "VM.GPU.A10.1",
        "image": TRAIN_IMAGE,
        "batchSize": 2,
    }
    body.update(changes)
    return body


@pytest.fixture
def tuned(config: dict[str, Any]) -> dict[str, Any]:
    """The dev-like config with its model fine-tuned from an ungated base (no Vault secret needed)."""
    model_of(config)["source"] = {"fineTune": fine_tune()}
    return config


def load(config: dict[str, Any], stack: str = "test") -> Settings:
    return load_settings(config, stack=stack, project_dir=PROJECT_DIR)


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(config)
    return [str(p) for p in caught.value.problems]


# -- settings -------------------------------------------------------------------------------------------------


def test_a_minimal_fine_tune_gets_documented_defaults(tuned: dict[str, Any]) -> None:
    model = load(tuned).model("llama2-7b-chat")
    tune = model.source.fine_tune
    assert tune is not None and model.source.method == "offline"  # deployed from the job's output
    assert model.parameters_b == 7.0  # from the base model's name
    assert (tune.method, tune.epochs, tune.learning_rate, tune.max_seq_len) == ("lora", 3.0, 2e-4, 2048)
    assert (tune.gradient_checkpointing, tune.nodes, tune.timeout_minutes) == (True, 1, 720)
    assert (tune.image, tune.save, tune.sharding) == (TRAIN_IMAGE, "merged", "ddp")  # auto: ddp fits a GPU
    assert job.buckets(tune) == (("training-data", "read"), ("llm-finetunes", "write"))


def test_the_job_command_is_what_the_entrypoint_reads(tuned: dict[str, Any]) -> None:
    tuned[f"{NS}hfTokenSecretId"] = SECRET
    tune = load(tuned).models[0].source.fine_tune
    assert tune is not None
    command = job.command(tune, "dev", "support", SECRET)
    assert command[:6] == ["torchrun", "--standalone", "--nproc-per-node", "1", "-m", "training.finetune"]
    args = parse_args(command[6:])
    assert (args.method, args.save, args.zip, args.overwrite) == ("lora", "merged", "model.zip", True)
    assert args.output == f"oci://llm-finetunes@idxyzabc1234/support/{job.run_folder(tune, 'dev', 'support')}"
    assert args.hf_token_secret_id == SECRET and args.batch_size == 2 and args.gradient_checkpointing
    assert not any("hf_" in part for part in command)


def test_the_run_folder_changes_with_what_shapes_the_weights_only(tuned: dict[str, Any]) -> None:
    def folder(**changes: Any) -> str:
        model_of(tuned)["source"] = {"fineTune": fine_tune(**changes)}
        tune = load(tuned).models[0].source.fine_tune
        assert tune is not None
        return job.run_folder(tune, "dev", "support")

    first = folder()
    assert first.startswith("dev-support-") and len(first) == len("dev-support-") + 12
    assert folder() == first
    assert folder(timeoutMinutes=60) == first  # waiting longer trains the same weights
    assert len({first, folder(learningRate=1e-4), folder(epochs=2), folder(image=IMAGE)}) == 4
    assert folder(shape="VM.GPU.A10.2") != first  # two processes: twice the global batch


FINE_TUNE_CASES = [
    (
        "unknown key with a suggestion",
        {"learning_rate": 1e-4},
        f"{FT}.learning_rate: unknown key; did you mean 'learningRate'? known keys: baseModel, dataset, output, "
        "method, save, epochs, learningRate, maxSeqLen, batchSize, gradAccum, loraR, loraAlpha, maxSteps, "
        "gradientCheckpointing, shape, nodes, sharding, image, timeoutMinutes",
    ),
    (
        "dataset outside Object Storage",
        {"dataset": "./data/qa.jsonl"},
        f"{FT}.dataset: bad URI './data/qa.jsonl'; accepted: oci://<bucket>@<namespace>/<prefix> (JSONL files "
        "the job reads)",
    ),
    (
        "output with a '..' part",
        {"output": "oci://llm-finetunes@ns/a/../b"},
        f"{FT}.output: bad URI 'oci://llm-finetunes@ns/a/../b'; accepted: oci://<bucket>@<namespace>/<prefix> "
        "(where the job writes the model)",
    ),
    (
        "base model that is neither",
        {"baseModel": "llama 2"},
        f"{FT}.baseModel: bad id 'llama 2'; accepted: a Hugging Face model id <org>/<model> or a model folder "
        "oci://<bucket>@<namespace>/<prefix>",
    ),
    (
        "unknown method",
        {"method": "dpo"},
        f"{FT}.method: unknown value 'dpo'; accepted: lora | qlora | full",
    ),
    (
        "learning rate out of the entrypoint's range",
        {"learningRate": 3},
        f"{FT}.learningRate: invalid value 3; accepted: a number above 0 and at most 1 (e.g. 2e-4)",
    ),
    (
        "batch size the entrypoint refuses",
        {"batchSize": 0},
        f"{FT}.batchSize: invalid value 0; accepted: a whole number from 1 to 4096",
    ),
    (
        "epochs not a number",
        {"epochs": "three"},
        f"{FT}.epochs: not a number: 'three'; accepted: a number",
    ),
    (
        "unknown shape",
        {"shape": "VM.GPU.A10.3"},
        f"{FT}.shape: unknown shape 'VM.GPU.A10.3'; accepted: "
        + ", ".join(__import__("domain.shapes").shapes.known_shape_names())
        + " (did you mean VM.GPU.A10.2?)",
    ),
    (
        "a CPU shape",
        {"shape": "VM.Standard.E4.Flex"},
        f"{FT}.shape: not a GPU shape: 'VM.Standard.E4.Flex'; accepted: a GPU shape (the job trains on GPUs; "
        "qlora needs CUDA): " + ", ".join(__import__("domain.shapes").shapes.known_shape_names()),
    ),
    (
        "more nodes than a multi-node job takes",
        {"nodes": 17},
        f"{FT}.nodes: out of range: 17; accepted: an integer from 1 to 16",
    ),
    (
        "training image outside OCIR",
        {"image": "docker.io/pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"},
        f"{FT}.image: not an OCIR image: 'docker.io/pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime'; accepted: "
        "an image in OCI Container Registry: <region-key>.ocir.io/<namespace>/<repository>:<tag>@sha256:<digest>",
    ),
    (
        "a wait longer than a week",
        {"timeoutMinutes": 20000},
        f"{FT}.timeoutMinutes: out of range: 20000; accepted: an integer from 1 to 10080",
    ),
    (
        "a gated base model without a Vault secret",
        {"baseModel": "meta-llama/Llama-2-7b-hf"},
        f"{FT}.baseModel: 'meta-llama/Llama-2-7b-hf' is a gated model, and the training job reads the token "
        "only from Vault; accepted: set hfTokenSecretId (a Vault secret holding the token), or a copy of the "
        "model in Object Storage (oci://<bucket>@<namespace>/<prefix>)",
    ),
    (
        "full fine-tuning of 7B on an A10",
        {"method": "full"},
        f"{FT}.shape: too small for full of a 7B model: 'VM.GPU.A10.1' needs 112.3 GB per GPU (fp32 weights, "
        "gradients and AdamW state 107.8 + activations 3.0 for 4096 tokens + overhead 1.5) of 21.6 GB usable "
        "(torchrun runs one process per GPU, each with the whole model); accepted: method qlora, or a smaller "
        "batchSize or maxSeqLen, or a shape with more memory per GPU (BM.GPU.H200.8)",
    ),
    (
        "LoRA without gradient checkpointing",
        {"gradientCheckpointing": False, "batchSize": 4},
        f"{FT}.shape: too small for lora of a 7B model: 'VM.GPU.A10.1' needs 54.7 GB per GPU (weights 13.5 + "
        "adapters 0.6 + activations 39.1 for 8192 tokens + overhead 1.5) of 21.6 GB usable (torchrun runs one "
        "process per GPU, each with the whole model); accepted: method qlora, or gradientCheckpointing: true, or "
        "a smaller batchSize or maxSeqLen, or a shape with more memory per GPU (BM.GPU.A100-v2.8, "
        "BM.GPU.H100.8, BM.GPU.H200.8)",
    ),
]


@pytest.mark.parametrize(
    ("changes", "expected"), [c[1:] for c in FINE_TUNE_CASES], ids=[c[0] for c in FINE_TUNE_CASES]
)
def test_each_fine_tune_mistake_gets_one_pinned_message(
    tuned: dict[str, Any], changes: dict[str, Any], expected: str
) -> None:
    body = fine_tune(**changes)
    model_of(tuned)["source"] = {"fineTune": {k: v for k, v in body.items() if v is not None}}
    assert problems(tuned) == [expected]


def test_more_gpus_make_a_bigger_model_fit_only_sharded(tuned: dict[str, Any]) -> None:
    """Data-parallel, every GPU holds the whole model: 13B LoRA fits no single A10. With 2 or 4 A10s the
    settings choose FSDP, which splits the weights over them."""
    model_of(tuned)["source"] = {"fineTune": fine_tune(baseModel="NousResearch/Llama-2-13b-hf")}
    [problem] = problems(tuned)
    assert problem.startswith(f"{FT}.shape: too small for lora of a 13B model: 'VM.GPU.A10.1' needs 32.2 GB")
    for shape in ("VM.GPU.A10.2", "BM.GPU.A10.4"):
        model_of(tuned)["source"] = {
            "fineTune": fine_tune(baseModel="NousResearch/Llama-2-13b-hf", shape=shape)
        }
        tune = load(tuned).models[0].source.fine_tune
        assert tune is not None and tune.sharding == "fsdp"
        assert (
            "--sharding" in job.command(tune, "dev", "x") and job.command(tune, "dev", "x")[0] == "torchrun"
        )
    model_of(tuned)["source"] = {
        "fineTune": fine_tune(baseModel="NousResearch/Llama-2-13b-hf", method="qlora", shape="VM.GPU.A10.2")
    }
    assert load(tuned).models[0].parameters_b == 13.0


def test_a_fine_tune_from_hugging_face_needs_egress(tuned: dict[str, Any]) -> None:
    tuned[f"{NS}network"] = {"egress": "none"}
    assert problems(tuned) == [
        "network.egress: blocks fine-tuning: 'none'; accepted: nat or managed: model 'llama2-7b-chat' "
        "fine-tunes NousResearch/Llama-2-7b-hf downloaded from Hugging Face, and the job needs internet egress "
        "for it"
    ]
    model_of(tuned)["source"] = {"fineTune": fine_tune(baseModel="oci://models@idxyzabc1234/llama-2-7b-hf")}
    assert load(tuned).models[0].source.fine_tune is not None  # from a bucket: the service gateway will do


# -- the graph ----------------------------------------------------------------------------------------------


def test_the_plan_has_job_run_catalog_model_and_deployment_in_dependency_order(
    tuned: dict[str, Any], plan_of: PlanOf
) -> None:
    plan = plan_of(tuned)
    names = [r.name for r in plan.resources]
    order = [names.index(one(plan, t).name) for t in (JOB, RUN, CATALOG, DEPLOYMENT, READINESS)]
    assert order == sorted(order)
    job, run, catalog, deployment = (one(plan, t) for t in (JOB, RUN, CATALOG, DEPLOYMENT))
    assert depends_on(plan, run, JOB) == ["llama2-7b-chat-finetune-job"]
    assert run.inputs["jobId"] == job.id
    assert depends_on(plan, catalog, RUN) == ["llama2-7b-chat-finetune-run"]
    assert depends_on(plan, deployment, CATALOG) == ["llama2-7b-chat-model"]
    assert set(depends_on(plan, run, POLICY)) == {
        "llm-identity-policy",
        "llm-identity-training-policy",
        "llm-identity-service-policy",
    }
    component = one(plan, FINE_TUNE)
    assert (parent_name(plan, component), parent_name(plan, job), parent_name(plan, run)) == (
        "llama2-7b-chat",
        "llama2-7b-chat-finetune",
        "llama2-7b-chat-finetune",
    )
    assert component.registered_outputs


def test_the_catalog_model_registers_the_zip_the_run_leaves(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(tuned)
    run, catalog = one(plan, RUN), one(plan, CATALOG)
    tune = load(tuned).models[0].source.fine_tune
    assert tune is not None
    folder = job.run_folder(tune, "test", "llama2-7b-chat")
    assert catalog.inputs["artifact"] == {
        "kind": "objectStorage",
        "namespace": "idxyzabc1234",
        "bucket": "llm-finetunes",
        "objectName": f"support/{folder}/model.zip",
        "region": "us-ashburn-1",
        "byReference": False,
    }
    assert run.inputs["objectName"] == f"support/{folder}/model.zip"
    assert catalog.inputs["customMetadata"]["fingerprint"] == f"jobrun:{run.id}"
    assert "hfToken" not in catalog.inputs
    outputs = plan.outputs["models"]["llama2-7b-chat"]["fineTune"]
    assert outputs["output"] == f"oci://llm-finetunes@idxyzabc1234/support/{folder}"


def test_the_job_runs_the_entrypoint_on_the_stacks_subnet_and_logs(
    tuned: dict[str, Any], plan_of: PlanOf
) -> None:
    plan = plan_of(tuned)
    job = one(plan, JOB)
    by_name = {r.name: r for r in plan.resources}
    infrastructure = job.inputs["jobInfrastructureConfigurationDetails"]
    assert infrastructure == {
        "jobInfrastructureType": "STANDALONE",
        "shapeName": "VM.GPU.A10.1",
        "blockStorageSizeInGbs": 80,
        "subnetId": by_name["llm-network-subnet"].id,
    }
    assert job.inputs["jobLogConfigurationDetails"] == {
        "enableLogging": True,
        "enableAutoLogCreation": False,
        "logGroupId": by_name["llm-logs-group"].id,
        "logId": by_name["llm-logs-llama2-7b-chat-train"].id,
    }
    environment = job.inputs["jobEnvironmentConfigurationDetails"]
    assert (environment["jobEnvironmentType"], environment["image"]) == ("OCIR_CONTAINER", TRAIN_IMAGE)
    assert environment["imageDigest"] == TRAIN_IMAGE.split("@")[1]
    command = environment["entrypoints"] + environment["cmds"]
    assert parse_args(command[6:]).dataset == "oci://training-data@idxyzabc1234/support-qa/v3"
    assert job.inputs["jobConfigurationDetails"]["maximumRuntimeInMinutes"] == "720"
    assert job.inputs["deleteRelatedJobRuns"] is True
    assert one(plan, RUN).inputs["waitMinutes"] == 780  # the runtime plus an hour to get a GPU
    assert sorted(r.name for r in resources(plan, LOG)) == [
        "llm-logs-llama2-7b-chat-access",
        "llm-logs-llama2-7b-chat-predict",
        "llm-logs-llama2-7b-chat-train",
    ]


def test_managed_egress_runs_the_job_without_a_subnet(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    tuned[f"{NS}network"] = {"egress": "managed"}
    infrastructure = one(plan_of(tuned), JOB).inputs["jobInfrastructureConfigurationDetails"]
    assert infrastructure["jobInfrastructureType"] == "ME_STANDALONE" and "subnetId" not in infrastructure


def test_a_base_model_from_a_bucket_keeps_the_job_off_the_hub(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    model_of(tuned)["source"] = {"fineTune": fine_tune(baseModel="oci://models@idxyzabc1234/llama-2-7b-hf")}
    tuned[f"{NS}hfTokenSecretId"] = SECRET
    plan = plan_of(tuned)
    job = one(plan, JOB)
    assert job.inputs["jobConfigurationDetails"]["environmentVariables"]["HF_HUB_OFFLINE"] == "1"
    assert "--hf-token-secret-id" not in job.inputs["jobEnvironmentConfigurationDetails"]["cmds"]
    training = next(r for r in resources(plan, POLICY) if r.name == "llm-identity-training-policy")
    assert any(
        "target.bucket.name = 'models'" in s and "read objects" in s for s in training.inputs["statements"]
    )


def test_no_secret_reaches_the_job(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    model_of(tuned)["source"] = {"fineTune": fine_tune(baseModel="meta-llama/Llama-2-7b-hf")}
    tuned[f"{NS}hfTokenSecretId"] = SECRET
    job = one(plan_of(tuned), JOB)
    text = json.dumps(job.inputs)
    assert "v1:AAAAencryptedplaceholder" not in text and "[secret]" not in text
    assert not any(
        "HF_TOKEN" in name for name in job.inputs["jobConfigurationDetails"]["environmentVariables"]
    )
    cmds = job.inputs["jobEnvironmentConfigurationDetails"]["cmds"]
    assert cmds[cmds.index("--hf-token-secret-id") + 1] == SECRET  # the job reads it from Vault itself


def test_the_job_inputs_are_properties_the_provider_knows(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    job = one(plan_of(tuned), JOB)
    known = _known_inputs(JOB)
    unknown = [k for k in job.inputs if k not in known]
    unknown += [b for k, v in job.inputs.items() if k in known for b in _unknown_keys(v, known[k], k)]
    assert unknown == []


def test_a_stack_without_fine_tuning_gets_no_training_resources(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    plan = plan_of(config)
    assert resource_count(plan, JOB) == resource_count(plan, RUN) == resource_count(plan, FINE_TUNE) == 0
    assert resource_count(plan, DYNAMIC_GROUP) == 1
    assert {r.name for r in resources(plan, POLICY)} == {"llm-identity-policy", "llm-identity-service-policy"}


# -- identity -----------------------------------------------------------------------------------------------


def test_job_runs_get_their_own_scoped_grants(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    where = f"in compartment id {COMPARTMENT}"
    statements = training_policy_statements(
        dynamic_group="jobs",
        compartment_id=COMPARTMENT,
        read_buckets=["training-data", "models"],
        write_buckets=["llm-finetunes"],
        token_secret_id=SECRET,
    )
    assert statements == [
        f"Allow dynamic-group jobs to read repos {where}",
        f"Allow dynamic-group jobs to use log-content {where}",
        f"Allow dynamic-group jobs to read buckets {where} where target.bucket.name = 'llm-finetunes'",
        f"Allow dynamic-group jobs to read buckets {where} where target.bucket.name = 'models'",
        f"Allow dynamic-group jobs to read buckets {where} where target.bucket.name = 'training-data'",
        f"Allow dynamic-group jobs to read objects {where} where target.bucket.name = 'models'",
        f"Allow dynamic-group jobs to read objects {where} where target.bucket.name = 'training-data'",
        f"Allow dynamic-group jobs to manage objects {where} where target.bucket.name = 'llm-finetunes'",
        f"Allow dynamic-group jobs to read secret-bundles {where} where target.secret.id = '{SECRET}'",
    ]
    assert all("where target." in s for s in statements[2:]) and not any("tenancy" in s for s in statements)

    plan = plan_of(tuned)
    group = next(r for r in resources(plan, DYNAMIC_GROUP) if r.name == "llm-identity-jobs")
    assert group.inputs["matchingRule"] == job_matching_rule(COMPARTMENT)
    assert "datasciencejobrun" in group.inputs["matchingRule"] and COMPARTMENT in group.inputs["matchingRule"]
    deployments = next(r for r in resources(plan, POLICY) if r.name == "llm-identity-policy")
    assert not any("manage" in s for s in deployments.inputs["statements"])  # deployments never write


def test_an_existing_dynamic_group_needs_the_training_grants(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    """The stack writes no policy then; the training grants are among those preflight looks for."""
    from domain.iam import stack_statements

    tuned[f"{NS}identity"] = {"existingDynamicGroup": "ml-workloads"}
    plan = plan_of(tuned)
    assert resource_count(plan, DYNAMIC_GROUP) == resource_count(plan, POLICY) == 0
    needed = stack_statements(plan.settings, "ml-workloads")[COMPARTMENT]
    assert any(s.startswith("Allow dynamic-group ml-workloads to manage objects") for s in needed)
    assert any("service datascience to manage object-family" in s and "llm-finetunes" in s for s in needed)


# -- the plan's figures and the CLI -------------------------------------------------------------------------


def plan_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", "--project-dir", str(PROJECT_DIR), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_example_stack_plans_cleanly_with_the_training_cost(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan_cli(capsys, "--stack-file", str(EXAMPLE), "--json")
    assert (code, err) == (0, "")
    plan = json.loads(out)
    assert plan["violations"] == []
    assert plan["training"] == [
        {
            "name": "llama2-7b-support",
            "shape": "VM.GPU.A10.1",
            "method": "lora",
            "nodes": 1,
            "gpuMemoryGb": 24,
            "requiredGpuMemoryGb": 20.6,
            "fits": True,
            "hourlyUsd": 2.0,
            "maxHours": 8,
            "maxUsd": 16.0,
        }
    ]
    assert plan["trainingMaxUsd"] == 16.0
    assert plan["monthlyUsd"] == plan["models"][0]["monthlyUsd"]  # a one-off run is not a monthly cost
    types = [r["type"] for r in plan["resources"]]
    assert [t for t in types if t in (JOB, RUN, CATALOG, DEPLOYMENT)] == [JOB, RUN, CATALOG, DEPLOYMENT]

    code, text, _ = plan_cli(capsys, "--stack-file", str(EXAMPLE))
    assert code == 0
    row = next(line for line in text.splitlines() if line.strip().startswith("llama2-7b-support  lora"))
    assert row.split()[2:] == ["VM.GPU.A10.1", "24.0", "20.6", "yes", "2.00", "8", "16.00"]
    assert "  Training at most: 16.00 USD, once" in text


def test_the_example_stack_settings_load() -> None:
    from llmstack.stack_files import read_stack_file

    parsed = read_stack_file(EXAMPLE)
    settings = load_settings(parsed.config, stack=parsed.stack, project_dir=PROJECT_DIR)
    [model] = settings.models
    assert (
        model.source.fine_tune is not None and model.source.fine_tune.base_model == "meta-llama/Llama-2-7b-hf"
    )
    assert settings.hf_token_secret_id is not None  # the gated base model's token, from Vault


def test_a_negotiated_price_reaches_the_training_figure(tuned: dict[str, Any], plan_of: PlanOf) -> None:
    from llmstack import guardrails
    from policy.rules import PolicyConfig

    tuned[f"{NS}pricing"] = {"shapes": {"VM.GPU.A10.1": 1.5}}
    model_of(tuned)["source"] = {"fineTune": fine_tune(timeoutMinutes=240)}
    plan = plan_of(tuned)
    assert one(plan, JOB).inputs["freeformTags"]["llmstack-shape-hourly-usd"] == "1.5"
    [training] = guardrails.review(plan, PolicyConfig()).training
    assert (training.hourly_usd, training.max_hours, training.max_usd) == (1.5, 4.0, 6.0)


def test_bad_fine_tune_settings_exit_2_like_any_other(
    capsys: pytest.CaptureFixture[str], tuned: dict[str, Any], write_stack: Callable[..., Path]
) -> None:
    model_of(tuned)["source"] = {"fineTune": fine_tune(method="full", learningRate=-1)}
    code, out, err = plan_cli(capsys, "--stack-file", str(write_stack(tuned)))
    assert (code, out) == (2, "")
    assert f"{FT}.learningRate: invalid value -1; accepted: a number above 0 and at most 1 (e.g. 2e-4)" in err
    assert "Traceback" not in err


# -- the training image -------------------------------------------------------------------------------------


def test_the_training_image_holds_everything_the_entrypoint_imports(tmp_path: Path) -> None:
    """Copy what training/Dockerfile copies, nothing else, and import the entrypoint from there alone."""
    import shutil
    import subprocess
    import sys

    from serving.dockerfile_check import instructions

    for instruction in instructions((PROJECT_DIR / "training" / "Dockerfile").read_text()):
        if instruction.keyword != "COPY":
            continue
        *sources, dest = instruction.arguments.split()
        for source in sources:
            origin = PROJECT_DIR / source
            if origin.is_dir():
                shutil.copytree(origin, tmp_path / dest, dirs_exist_ok=True)
            else:
                (tmp_path / dest).mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, tmp_path / dest)
    # The image installs the train extra's third-party packages; the project's own code must all come from
    # the copied folders (PYTHONPATH is searched before this checkout's editable install).
    code = (
        "import sys, training.finetune, oci_runtime.vault; "
        "own = [m for n, m in list(sys.modules.items()) if n.split('.')[0] in ('domain', 'oci_runtime', 'training')]; "
        f"assert own and all((getattr(m, '__file__', None) or {str(tmp_path)!r}).startswith({str(tmp_path)!r}) for m in own); "
        "assert not any(m.split('.')[0] in ('components', 'policy', 'serving', 'llmstack', 'pulumi') for m in sys.modules); "
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
