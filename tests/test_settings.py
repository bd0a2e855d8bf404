"""Stack settings: defaults a user can rely on, and one pinned message per kind of mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain.settings import Settings, SettingsError, load_settings
from llmstack.settings_docs import KEY_DOCS, settings_table
from llmstack.stack_files import read_stack_file
from tests.conftest import COMPARTMENT, FAKE_HF_TOKEN, PROJECT_DIR, model_of

NS = "oci-llm-stack:"


def load(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> Settings:
    return load_settings(config, stack="test", project_dir=PROJECT_DIR, secret_keys=secret_keys)


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(config)
    return [str(p) for p in caught.value.problems]


def test_a_minimal_model_gets_documented_defaults(config: dict[str, Any]) -> None:
    settings = load(config)
    model = settings.model("llama2-7b-chat")
    assert model.source.method == "online"
    assert model.parameters_b == 7.0  # read from the Hugging Face id
    assert (model.serving.port, model.serving.max_model_len, model.serving.quantization) == (
        8080,
        4096,
        "none",
    )
    assert model.serving.tensor_parallelism == 1  # VM.GPU.A10.1 has one GPU
    assert (model.compute.replicas, model.compute.bandwidth_mbps) == (1, 10)
    assert (model.readiness.timeout_minutes, model.readiness.smoke_prompt) == (60, "Say hello.")
    assert settings.registry.repository == "llm/serving-test"  # one per stack: the names are tenancy-wide
    assert settings.environment == "dev"
    assert settings.hf_token is not None and not settings.hf_token.known


def test_tensor_parallelism_defaults_to_the_shapes_gpu_count(config: dict[str, Any]) -> None:
    model_of(config)["compute"]["shape"] = "VM.GPU.A10.2"
    assert load(config).models[0].serving.tensor_parallelism == 2


def test_keys_without_the_project_namespace_are_accepted(config: dict[str, Any]) -> None:
    plain = {k.removeprefix(NS): v for k, v in config.items()}
    assert load(plain).compartment_id == COMPARTMENT


def test_the_secret_token_is_never_in_repr(config: dict[str, Any]) -> None:
    config[f"{NS}hfToken"] = FAKE_HF_TOKEN
    settings = load(config, secret_keys=(f"{NS}hfToken",))
    assert settings.hf_token is not None and settings.hf_token.value == FAKE_HF_TOKEN
    assert FAKE_HF_TOKEN not in repr(settings)


def test_all_problems_are_reported_at_once(config: dict[str, Any]) -> None:
    config[f"{NS}compartmentId"] = "nope"
    config[f"{NS}budget"] = {"monthlyUsd": -1}
    model_of(config)["compute"]["replicas"] = 0
    found = problems(config)
    assert len(found) == 3
    message = str(SettingsError([], "stacks/Pulumi.x.yaml"))
    assert message.startswith("0 problems with the stack settings in stacks/Pulumi.x.yaml")


# -- one pinned message per mistake ------------------------------------------------------------------------

MODEL = "models.llama2-7b-chat"


def set_model(path: str, value: Any) -> Any:
    def change(config: dict[str, Any]) -> None:
        node = model_of(config)
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return change


def set_top(key: str, value: Any) -> Any:
    def change(config: dict[str, Any]) -> None:
        config[f"{NS}{key}"] = value

    return change


def drop_top(key: str) -> Any:
    def change(config: dict[str, Any]) -> None:
        config.pop(f"{NS}{key}", None)
        config.pop(key, None)

    return change


CASES = [
    (
        "missing compartment",
        drop_top("compartmentId"),
        "compartmentId: missing; accepted: an OCID like ocid1.compartment.oc1..<unique id>",
    ),
    (
        "malformed OCID",
        set_top("compartmentId", "ocid1.compartment.oc1..short"),
        "compartmentId: malformed OCID 'ocid1.compartment.oc1..short'; accepted: an OCID like "
        "ocid1.compartment.oc1..<unique id>",
    ),
    (
        "OCID of the wrong kind",
        set_top("projectId", COMPARTMENT),
        f"projectId: an OCID of type 'compartment': '{COMPARTMENT}'; accepted: an OCID of type "
        "datascienceproject (ocid1.datascienceproject.oc1..<unique id>)",
    ),
    (
        "bad CIDR",
        set_top("network", {"vcnCidr": "10.0.0.0/33"}),
        "network.vcnCidr: bad CIDR '10.0.0.0/33'; accepted: an IPv4 CIDR block such as 10.0.0.0/16 "
        "('33' is not a valid netmask)",
    ),
    (
        "subnet outside the VCN",
        set_top("network", {"vcnCidr": "10.0.0.0/16", "subnetCidr": "10.9.1.0/24"}),
        "network.subnetCidr: outside the VCN: '10.9.1.0/24'; accepted: a range inside vcnCidr 10.0.0.0/16",
    ),
    (
        "unknown egress",
        set_top("network", {"egress": "internet"}),
        "network.egress: unknown value 'internet'; accepted: nat | managed | none",
    ),
    (
        "VCN ranges that managed networking would ignore",
        set_top("network", {"vcnCidr": "10.0.0.0/16", "egress": "managed"}),
        "network.egress: ignores the VCN ranges: 'managed'; accepted: nat or none to build a VCN from "
        "vcnCidr/subnetCidr, or managed without them (the service brings its own network)",
    ),
    (
        "offline-only network for an online model",
        set_top("network", {"egress": "none"}),
        "network.egress: blocks online model: 'none'; accepted: nat or managed: model 'llama2-7b-chat' is "
        "pulled from Hugging Face and needs internet egress",
    ),
    (
        "unknown engine",
        set_model("serving.engine", "triton"),
        f"{MODEL}.serving.engine: unknown value 'triton'; accepted: vllm | tgi",
    ),
    (
        "unknown shape",
        set_model("compute.shape", "VM.GPU.A10.3"),
        f"{MODEL}.compute.shape: unknown shape 'VM.GPU.A10.3'; accepted: BM.GPU.A10.4, BM.GPU.A100-v2.8, "
        "BM.GPU.B4.8, BM.GPU.H100.8, BM.GPU.H200.8, BM.GPU.L40S-NC.4, BM.GPU.L40S.4, BM.GPU2.2, BM.GPU3.8, "
        "BM.GPU4.8, VM.GPU.A10.1, VM.GPU.A10.2, VM.GPU2.1, VM.GPU3.1, VM.GPU3.2, VM.GPU3.4 "
        "(did you mean VM.GPU.A10.2?)",
    ),
    (
        "a shape that is not a string (a YAML list by mistake)",
        set_model("compute.shape", ["VM.GPU.A10.1"]),
        f"{MODEL}.compute.shape: not a string: ['VM.GPU.A10.1']; accepted: a shape name: BM.GPU.A10.4, "
        "BM.GPU.A100-v2.8, BM.GPU.B4.8, BM.GPU.H100.8, BM.GPU.H200.8, BM.GPU.L40S-NC.4, BM.GPU.L40S.4, BM.GPU2.2, "
        "BM.GPU3.8, BM.GPU4.8, VM.GPU.A10.1, VM.GPU.A10.2, VM.GPU2.1, VM.GPU3.1, VM.GPU3.2, VM.GPU3.4",
    ),
    (
        "no replicas",
        set_model("compute.replicas", 0),
        f"{MODEL}.compute.replicas: out of range: 0; accepted: an integer from 1 up",
    ),
    (
        "bandwidth out of range",
        set_model("compute.bandwidthMbps", 9000),
        f"{MODEL}.compute.bandwidthMbps: out of range: 9000; accepted: an integer from 10 to 8000",
    ),
    (
        "more tensor parallelism than GPUs",
        set_model("serving.tensorParallelism", 2),
        f"{MODEL}.serving.tensorParallelism: more GPUs than the shape has: 2; accepted: 1 to 1 "
        "(the shape's GPU count)",
    ),
    (
        "two sources",
        set_model(
            "source", {"huggingface": "meta-llama/Llama-2-7b-chat-hf", "objectStorage": "oci://b@ns/m.zip"}
        ),
        f"{MODEL}.source: has objectStorage and huggingface; accepted: exactly one of localPath, objectStorage, "
        "huggingface, fineTune",
    ),
    (
        "no source",
        set_model("source", {}),
        f"{MODEL}.source: names no source; accepted: exactly one of localPath, objectStorage, huggingface, fineTune",
    ),
    (
        "local folder that does not exist",
        set_model("source", {"localPath": "./models/nothing-here-7b"}),
        f"{MODEL}.source.localPath: no such folder: './models/nothing-here-7b'; accepted: an existing model "
        f"folder (looked for {PROJECT_DIR / 'models' / 'nothing-here-7b'})",
    ),
    (
        "unknown key with a suggestion",
        set_model("compute.replica", 2),
        f"{MODEL}.compute.replica: unknown key; did you mean 'replicas'? known keys: shape, replicas, "
        "bandwidthMbps, autoscaling",
    ),
    (
        "unknown top-level key",
        set_top("budgett", {"monthlyUsd": 1}),
        "budgett: unknown key; did you mean 'budget'? known keys: tenancyId, compartmentId, projectId, network, "
        "logging, registry, artifactBucket, bucketCompartments, budget, identity, auth, tags, hfToken, "
        "hfTokenSecretId, pricing, models",
    ),
    (
        "misspelt project namespace",
        lambda c: c.update({"oci-lm-stack:budget": {"monthlyUsd": 1}}),
        "oci-lm-stack:budget: unknown namespace 'oci-lm-stack'; did you mean 'oci-llm-stack:budget'? accepted: "
        "this project's keys under oci-llm-stack: (other namespaces are left to their providers)",
    ),
    (
        "dynamic group name that would bend the policy statements",
        set_top("identity", {"existingDynamicGroup": "ml to manage all-resources in tenancy"}),
        "identity.existingDynamicGroup: bad dynamic group name 'ml to manage all-resources in tenancy'; "
        "accepted: a dynamic group name of letters, digits, '.', '_', '-', '+' and '@', or <domain>/<name>",
    ),
    (
        "model name that cannot be a resource name",
        lambda c: c[f"{NS}models"].update({"Llama_2": c[f"{NS}models"]["llama2-7b-chat"]}),
        "models.Llama_2: bad model name 'Llama_2'; accepted: 2-32 characters of a-z, 0-9 and '-', starting "
        "with a letter, not ending in '-' (it becomes part of resource names)",
    ),
    (
        "environment over OCI's 2048 bytes",
        set_model("serving.params", "--max-num-seqs 8 " * 120),
        f"{MODEL}.serving.params: the container environment takes 2298 bytes; OCI accepts under 2048 "
        "(params is 2040 characters); accepted: shorter params",
    ),
    (
        "readiness longer than the service waits",
        set_model("readiness.timeoutMinutes", 300),
        f"{MODEL}.readiness.timeoutMinutes: out of range: 300; accepted: an integer from 1 to 240",
    ),
    (
        "log retention OCI does not offer",
        set_top("logging", {"retentionDays": 45}),
        "logging.retentionDays: not a retention OCI Logging accepts: 45; accepted: 30 | 60 | 90 | 120 | 150 | "
        "180 (days)",
    ),
    (
        "negative budget",
        set_top("budget", {"monthlyUsd": -100}),
        "budget.monthlyUsd: invalid value -100; accepted: a number of US dollars >= 0",
    ),
    (
        "no models",
        set_top("models", {}),
        "models: invalid value {}; accepted: at least one model: models.<name>: {source, serving, compute}",
    ),
    (
        "no models key at all",
        drop_top("models"),
        "models: missing; accepted: at least one model: models.<name>: {source, serving, compute}",
    ),
    (
        "image outside OCIR",
        set_model("serving.image", "docker.io/vllm/vllm-openai:latest"),
        f"{MODEL}.serving.image: not an OCIR image: 'docker.io/vllm/vllm-openai:latest'; accepted: an image in "
        "OCI Container Registry: <region-key>.ocir.io/<namespace>/<repository>:<tag>@sha256:<digest>",
    ),
    (
        "image pinned by digest but without the tag OCI needs",
        set_model("serving.image", "iad.ocir.io/idxyzabc1234/llm/serving@sha256:" + "ab" * 32),
        f"{MODEL}.serving.image: bad image reference 'iad.ocir.io/idxyzabc1234/llm/serving@sha256:{'ab' * 32}'; "
        "accepted: <region-key>.ocir.io/<namespace>/<repository>:<tag>@sha256:<digest> (OCI needs the tag; the digest pins it)",
    ),
    (
        "quantization the engine does not serve",
        set_model("serving.quantization", "int8"),
        f"{MODEL}.serving.quantization: not served by this engine: 'int8'; accepted: with vllm: none | fp8 | "
        "awq | gptq",
    ),
    (
        "reserved port",
        set_model("serving.port", 8446),
        f"{MODEL}.serving.port: reserved port 8446; accepted: 1024-65535 except 8446, 8447 and 24224 (used by "
        "the service)",
    ),
    (
        "token in plain text",
        set_top("hfToken", FAKE_HF_TOKEN),
        "hfToken: is stored in plain text; accepted: a secret, set with `pulumi config set --secret hfToken` "
        "(the value is not shown here)",
    ),
    (
        "gated model without a token",
        drop_top("hfToken"),
        f"{MODEL}.source.huggingface: 'meta-llama/Llama-2-7b-chat-hf' is a gated model; accepted: set hfToken "
        "(`pulumi config set --secret hfToken`) or hfTokenSecretId",
    ),
    (
        "size nobody can tell",
        set_model("source", {"objectStorage": "oci://models@ns/final.zip"}),
        f"{MODEL}.parameters: missing, and the size cannot be read from oci://models@ns/final.zip; accepted: a "
        "size such as 7B, 13B, 350M, or a number (billions below 10000, else a count)",
    ),
    (
        "price for a shape that does not exist",
        set_top("pricing", {"shapes": {"VM.GPU.A10.9": 1.0}}),
        "pricing.shapes.VM.GPU.A10.9: unknown shape 'VM.GPU.A10.9'; accepted: "
        + ", ".join(__import__("domain.shapes").shapes.known_shape_names()),
    ),
    (
        "negative price",
        set_top("pricing", {"gpus": {"A10": -2}}),
        "pricing.gpus.A10: invalid value -2; accepted: a number >= 0 (USD per GPU-hour)",
    ),
    (
        "prices that are not a mapping",
        set_top("pricing", {"shapes": "VM.GPU.A10.1=1.6"}),
        "pricing.shapes: not a mapping: 'VM.GPU.A10.1=1.6'; accepted: a mapping of shape names to USD per hour "
        "for the whole shape",
    ),
    (
        "autoscaling below its minimum",
        set_model("compute.autoscaling", {"minReplicas": 3, "maxReplicas": 2}),
        f"{MODEL}.compute.autoscaling.maxReplicas: below minReplicas: 2; accepted: an integer >= minReplicas (3)",
    ),
    (
        "autoscaling cool-down below OCI's minimum",
        set_model("compute.autoscaling", {"maxReplicas": 2, "cooldownSeconds": 60}),
        f"{MODEL}.compute.autoscaling.cooldownSeconds: out of range: 60; accepted: an integer from 300 to 3600",
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_gets_one_pinned_message(config: dict[str, Any], change: Any, expected: str) -> None:
    change(config)
    assert expected in problems(config)


@pytest.mark.parametrize("section", ["source", "serving", "compute"])
def test_a_required_section_left_empty_is_refused_not_dropped(config: dict[str, Any], section: str) -> None:
    """`compute:` with nothing under it is null in YAML; the model must not silently leave the stack."""
    model_of(config)[section] = None
    assert problems(config) == [
        f"{MODEL}.{section}: missing; accepted: a mapping (see the README's settings table for {section})"
    ]


def test_the_secret_value_is_never_echoed_in_a_message(config: dict[str, Any]) -> None:
    config[f"{NS}hfToken"] = FAKE_HF_TOKEN
    assert not any(FAKE_HF_TOKEN in p for p in problems(config))


PLAIN_SECRET = (
    "holds a Hugging Face token in plain text (not shown here); accepted: the Hugging Face token as a secret "
    "(`pulumi config set --secret hfToken`) or in Vault (hfTokenSecretId)"
)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (set_top("hfTokenSecretId", FAKE_HF_TOKEN), "hfTokenSecretId"),
        (
            set_model("serving.params", f"--max-num-seqs 8 --hf-token {FAKE_HF_TOKEN}"),
            f"{MODEL}.serving.params",
        ),
        (set_top("tags", {"environment": "dev", "team": FAKE_HF_TOKEN}), "tags.team"),
    ],
    ids=["pasted into the secret's OCID", "in engine flags", "as a tag"],
)
def test_a_token_in_a_plain_setting_is_refused_and_never_shown(
    config: dict[str, Any], change: Any, key: str
) -> None:
    change(config)
    found = problems(config)
    assert f"{key}: {PLAIN_SECRET}" in found
    assert not any(FAKE_HF_TOKEN in p for p in found)


def test_messages_hide_secret_material_in_any_value() -> None:
    from domain.errors import show

    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    assert show(f"x {FAKE_HF_TOKEN}{FAKE_HF_TOKEN} y") == "'x [hidden] y'"
    assert show(key) == "'[hidden]'"


def test_parameters_accepts_sizes_and_counts(config: dict[str, Any]) -> None:
    for given, expected in (("13B", 13.0), ("350M", 0.35), (70, 70.0), (6_738_415_616, 6.738415616)):
        model_of(config)["parameters"] = given
        assert load(config).models[0].parameters_b == pytest.approx(expected)
    model_of(config)["parameters"] = "lots"
    assert problems(config) == [
        f"{MODEL}.parameters: invalid value 'lots'; accepted: a size such as 7B, 13B, 350M, or a number "
        "(billions below 10000, else a count)"
    ]


def test_a_local_folder_is_resolved_from_the_project(config: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "llama-2-13b-chat-hf"
    folder.mkdir()
    model_of(config)["source"] = {"localPath": str(folder)}
    model = load(config).models[0]
    assert model.source.local_path == folder and model.source.method == "offline"
    assert model.parameters_b == 13.0


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(
        "config:\n  oci:region: us-ashburn-1\n  oci-llm-stack:models: {a: [1, 2}\n", encoding="utf-8"
    )
    with pytest.raises(SettingsError) as caught:
        read_stack_file(path)
    (problem,) = caught.value.problems
    assert problem.path == f"{path}:3"
    assert problem.message.startswith("YAML syntax error at line 3, column")


def test_shipped_stacks_are_valid() -> None:
    for stack in ("dev", "staging", "prod"):
        parsed = read_stack_file(PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml")
        assert parsed.stack == stack
        settings = load_settings(parsed.config, stack=stack, project_dir=PROJECT_DIR)
        assert settings.models, stack
    prod = load_settings(
        read_stack_file(PROJECT_DIR / "stacks" / "Pulumi.prod.yaml").config,
        stack="prod",
        project_dir=PROJECT_DIR,
    )
    (model,) = prod.models
    assert (model.parameters_b, model.compute.shape, model.compute.replicas) == (13.0, "VM.GPU.A10.2", 2)


def test_shipped_stacks_can_live_in_one_tenancy() -> None:
    """OCIR repository names are unique across a tenancy's compartments in a region; images carry a tag
    and a digest, the form OCI documents for a deployment's `image` (`<repo>:<tag>@sha256:...`)."""
    files = [PROJECT_DIR / "stacks" / f"Pulumi.{s}.yaml" for s in ("dev", "staging", "prod")]
    files.append(PROJECT_DIR / "examples" / "Pulumi.finetune.yaml")
    stacks = [read_stack_file(f) for f in files]
    loaded = [load_settings(s.config, stack=s.stack, project_dir=PROJECT_DIR) for s in stacks]
    places = {(s.tenancy_id, s.region, s.registry.repository) for s in loaded}
    assert len(places) == len(loaded)
    images = [m.serving.image for s in loaded for m in s.models if m.serving.image]
    assert all(":" in image.rsplit("/", 1)[1].split("@")[0] and "@sha256:" in image for image in images)
    # the others run Oracle's service container, pinned to a version
    services = [m.serving.image_uri for s in loaded for m in s.models if not m.serving.image]
    assert services == ["dsmc://odsc-vllm-serving:0.19.1.265"]


def test_the_readme_settings_table_is_current() -> None:
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "README settings table is stale: run `make docs`"
    assert all(f"| `{doc.key}` |" in readme for doc in KEY_DOCS)


# -- one definition of each id: where the old settings rules differed, domain/ids.py decides -------------------

FUTURE_SECRET = (
    "ocid1.vaultsecret.oc1.iad.futureuse.amaaaaaahqssvraa4ynbujkfzbzwvqasvmj4wxy7ipnhcgyfpqbl7ro2xboq"
)
TUNE = {
    "baseModel": "NousResearch/Llama-2-7b-hf",
    "dataset": "oci://training-data@idxyzabc1234/qa",
    "output": "oci://llm-finetunes@idxyzabc1234/out",
    "shape": "VM.GPU.A10.1",
    "image": "iad.ocir.io/idxyzabc1234/llm/train:0.1.0@sha256:" + "cd" * 32,
    "batchSize": 2,
}


def test_an_ocid_with_a_future_use_segment_is_accepted(config: dict[str, Any]) -> None:
    """OCI documents `ocid1.<type>.<realm>.[region][.future use].<unique id>`; the old rule refused the segment."""
    config[f"{NS}hfTokenSecretId"] = FUTURE_SECRET
    assert load(config).hf_token_secret_id == FUTURE_SECRET


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # namespaces are lower case; the training job's old URI rule let upper case through
            set_model("source", {"fineTune": {**TUNE, "dataset": "oci://training-data@IdXyz/qa"}}),
            f"{MODEL}.source.fineTune.dataset: bad URI 'oci://training-data@IdXyz/qa'; accepted: "
            "oci://<bucket>@<namespace>/<prefix> (JSONL files the job reads)",
        ),
        (  # the hub refuses `--`, `..` and a trailing `.` or `-`; the old rule took them
            set_model("source", {"huggingface": "meta-llama/Llama-2-7b-chat-hf."}),
            f"{MODEL}.source.huggingface: bad id 'meta-llama/Llama-2-7b-chat-hf.'; accepted: a Hugging Face "
            "model id <org>/<model>, e.g. meta-llama/Llama-2-7b-chat-hf",
        ),
        (  # a '..' part in a stored zip's name used to pass
            set_model("source", {"objectStorage": "oci://models@ns/a/../llama-2-7b.zip"}),
            f"{MODEL}.source.objectStorage: bad URI 'oci://models@ns/a/../llama-2-7b.zip'; accepted: "
            "oci://<bucket>@<namespace>/<prefix>/ (a model folder's objects, by reference) or "
            "oci://<bucket>@<namespace>/<object>.zip (one zip, copied into the catalog)",
        ),
        (  # OCIR repository parts end in a letter or digit
            set_top("registry", {"repository": "llm/serving-"}),
            "registry.repository: bad repository name 'llm/serving-'; accepted: lowercase letters, digits, '.', "
            "'_', '-' and '/'",
        ),
    ],
    ids=["upper-case namespace", "hub id ending in a dot", "dot-dot in a zip name", "repository ending in -"],
)
def test_strings_the_old_rules_let_through_are_refused(
    config: dict[str, Any], change: Any, expected: str
) -> None:
    change(config)
    assert expected in problems(config)


# -- no pydantic wording ---------------------------------------------------------------------------------------

PYDANTIC_PHRASES = (
    "Field required",
    "Input should be",
    "validation error",
    "errors.pydantic.dev",
    "pydantic",
    "[type=",
)


def test_no_pydantic_wording_reaches_the_user(config: dict[str, Any]) -> None:
    config.update({f"{NS}tenancyId": 7, f"{NS}projectId": ["x"], f"{NS}tags": "team", f"{NS}budget": "lots"})
    config.update(
        {f"{NS}network": {"egress": 3, "vcnCidr": None, "subnetCidr": True}, f"{NS}auth": {"mode": 1}}
    )
    config.update(
        {f"{NS}logging": "30", f"{NS}pricing": {"shapes": {"VM.GPU.A10.1": "cheap"}, "gpus": {"A10": True}}}
    )
    config[f"{NS}identity"] = {"existingDynamicGroup": 5}
    model = model_of(config)
    model["serving"].update(
        {"port": "8080", "tensorParallelism": 1.5, "engine": None, "params": 3, "image": {}}
    )
    model["compute"].update({"replicas": True, "bandwidthMbps": 12.5, "autoscaling": {"minReplicas": "2"}})
    model["readiness"] = {"timeoutMinutes": [], "smokePrompt": 1}
    model["parameters"] = {"b": 7}
    config[f"{NS}models"]["second-model"] = {
        "source": {"fineTune": {"epochs": "x", "gradientCheckpointing": "yes"}}
    }
    config[f"{NS}models"]["third"] = "not a model"
    with pytest.raises(SettingsError) as caught:
        load(config)
    text = str(caught.value)
    assert len(caught.value.problems) >= 25
    assert not [phrase for phrase in PYDANTIC_PHRASES if phrase.lower() in text.lower()], text
    assert all("; accepted: " in p.message or "unknown key" in p.message for p in caught.value.problems), text


# -- the JSON Schema of a stack file -----------------------------------------------------------------------------

STACK_FILES = sorted(
    [*(PROJECT_DIR / "stacks").glob("Pulumi.*.yaml"), *(PROJECT_DIR / "examples").glob("*.yaml")]
)


def schema_errors(doc: Any) -> list[Any]:
    import jsonschema

    from llmstack.settings_docs import stack_schema

    validator = jsonschema.Draft202012Validator(stack_schema())
    return sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))


def test_the_committed_schema_is_what_llmstack_schema_prints(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from llmstack.cli import main

    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["properties"]["config"]["type"] == "object"
    committed = (PROJECT_DIR / "schema" / "stack.schema.json").read_text(encoding="utf-8")
    assert printed == committed, "schema/stack.schema.json is stale: run `make docs`"


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_stack_files_validate_and_point_editors_at_the_schema(path: Path) -> None:
    import yaml

    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schema/stack.schema.json"
    assert schema_errors(yaml.safe_load(text)) == []


def test_a_misspelt_key_fails_the_schema_naming_the_key(config: dict[str, Any]) -> None:
    config[f"{NS}budgett"] = {"monthlyUsd": 1}
    model_of(config)["compute"]["replica"] = 2
    found = [(list(e.absolute_path), e.message) for e in schema_errors({"config": config})]
    assert [where for where, message in found if "'oci-llm-stack:budgett'" in message] == [["config"]]
    [(where, message)] = [f for f in found if f[0][:1] == ["config"] and len(f[0]) > 1]
    assert where == ["config", f"{NS}models", "llama2-7b-chat", "compute"] and "'replica'" in message


def test_a_wrong_type_fails_the_schema_naming_the_key(config: dict[str, Any]) -> None:
    model_of(config)["compute"]["replicas"] = "two"
    config[f"{NS}logging"] = {"retentionDays": 45}
    paths = [list(e.absolute_path) for e in schema_errors({"config": config})]
    assert ["config", f"{NS}models", "llama2-7b-chat", "compute", "replicas"] in paths
    assert ["config", f"{NS}logging", "retentionDays"] in paths


def test_secrets_and_other_namespaces_fit_the_schema(config: dict[str, Any]) -> None:
    config[f"{NS}hfToken"] = {"secure": "v1:ZmFrZQ=="}
    config["oci:tenancyOcid"] = "kept for the provider"
    config.pop(f"{NS}tenancyId")
    config["tenancyId"] = "ocid1.tenancy.oc1..aaaaaaaa7mgkrn4hi7xmykn525wmqxf33yu75nhrk6n3onhhi7ezvq6mx4hq"
    assert schema_errors({"config": config}) == []
    config[f"{NS}hfToken"] = "hf_plain"
    assert [list(e.absolute_path) for e in schema_errors({"config": config})] == [["config", f"{NS}hfToken"]]
