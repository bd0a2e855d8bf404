"""Typed, validated stack settings: the one place where configuration is read and checked.

`load_settings` turns a stack's `config:` mapping (from `stacks/Pulumi.<stack>.yaml`, or from the Pulumi
engine at run time) into frozen pydantic models. Each default and description is written once, here; the
README's settings table and the stack file's JSON Schema are made from these models (`docs.py`). Every
problem is collected and raised together as one `SettingsError` (`errors.py`): nothing half checked ever
reaches a component.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from domain import sizing
from domain.container_env import (
    DEFAULT_PORT,
    RESERVED_PORTS,
    ContainerSpec,
    Method,
    container_env,
    env_problems,
)
from domain.ids import BUCKET_NAME, IMAGE_EXAMPLE, REPOSITORY_NAME, Engine, ObjectUri, SigningAuthMode
from domain.pricing import DEFAULT_PRICES, PriceTable, with_overrides
from domain.secrets import secret_kind
from domain.settings.errors import (
    Accepts,
    Problem,
    Refused,
    SettingsError,
    keys_of,
    problems_of,
    refused,
    said,
)
from domain.settings.errors import _show as _show
from domain.settings.fields import SECRET_PLACEHOLDER as SECRET_PLACEHOLDER
from domain.settings.fields import (
    SIZE_ACCEPTED,
    Cidr,
    HfId,
    HfToken,
    Image,
    LocalPath,
    Number,
    PricedShape,
    Retention,
    Secret,
    Shape,
    Size,
    TagValue,
    TrainingShape,
    ZipUri,
    is_secure,
    location,
    matching,
    ocid,
)
from domain.settings.files import PROJECT as PROJECT
from domain.settings.files import StackFile as StackFile
from domain.settings.files import config_as_strings as config_as_strings
from domain.settings.files import read_stack_file as read_stack_file
from domain.shapes import SHAPES
from domain.training_args import FineTuneArgs, checked, job_command, to_argv

Quantization = Literal["none", "fp8", "int8", "awq", "gptq"]
ENGINE_QUANTIZATIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("none", "fp8", "awq", "gptq"),
    "tgi": ("none", "fp8", "int8", "awq", "gptq"),
}
GATED_HF_ORGS = ("meta-llama",)
FINE_TUNE_ZIP = "model.zip"
FINE_TUNE_WORK_DIR = "/home/datascience/finetune-work"  # the job run's home, on its block volume
MAX_TRAINING_MINUTES = 7 * 24 * 60
MAX_COMMAND_BYTES = 2048  # a job's CMD and ENTRYPOINT together
TRAINING_URI_FORM = "oci://<bucket>@<namespace>/<prefix>"
_NAME_ACCEPTED = (
    "2-32 characters of a-z, 0-9 and '-', starting with a letter, not ending in '-' "
    "(it becomes part of resource names)"
)
ModelName = Annotated[
    str, matching(re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"), "bad model name", _NAME_ACCEPTED)
]
TagKey = Annotated[
    str,
    matching(
        re.compile(r"^[^.\s]{1,100}$"),
        "bad tag name",
        "a tag name of 1-100 characters without spaces or periods",
    ),
]


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, strict=True)


class NetworkSettings(Section):
    vcn_cidr: Cidr = Field("10.0.0.0/16", description="VCN address range (/16 to /30)")
    subnet_cidr: Cidr = Field("10.0.1.0/24", description="private subnet, inside `vcnCidr`")
    egress: Literal["nat", "managed", "none"] = Field(
        "nat",
        description="`nat`: own VCN, NAT + service gateway; `managed`: service-managed networking with "
        "internet; `none`: own VCN, service gateway only (offline models only)",
    )
    existing_subnet_id: Annotated[str, ocid("subnet")] | None = Field(
        None, description="use this subnet; no network resources are created"
    )

    @property
    def creates_vcn(self) -> bool:
        return self.existing_subnet_id is None and self.egress != "managed"

    @model_validator(mode="after")
    def _consistent(self) -> NetworkSettings:
        ranges = {"vcn_cidr", "subnet_cidr"} & self.model_fields_set
        found = []
        vcn, subnet = ipaddress.IPv4Network(self.vcn_cidr), ipaddress.IPv4Network(self.subnet_cidr)
        if not subnet.subnet_of(vcn):
            accepted = f"a range inside vcnCidr {self.vcn_cidr}"
            found.append((("subnetCidr",), said("outside the VCN:", self.subnet_cidr, accepted)))
        if self.existing_subnet_id and ranges:
            message = (
                "given together with vcnCidr/subnetCidr; accepted: either an existing subnet or the ranges "
            )
            found.append((("existingSubnetId",), message + "of a new VCN, not both"))
        if self.egress == "managed" and not self.existing_subnet_id and ranges:
            accepted = "nat or none to build a VCN from vcnCidr/subnetCidr, or managed without them (the "
            found.append(
                (
                    ("egress",),
                    said("ignores the VCN ranges:", "managed", accepted + "service brings its own network)"),
                )
            )
        if self.existing_subnet_id and self.egress == "managed":
            accepted = "nat or none with existingSubnetId (the subnet's route table decides)"
            found.append((("egress",), said("conflicts with existingSubnetId:", "managed", accepted)))
        if found:
            raise Refused(*found)
        return self


class LoggingSettings(Section):
    retention_days: Retention = Field(30, description="retention of the predict and access logs")
    existing_log_group_id: Annotated[str, ocid("loggroup")] | None = Field(
        None, description="put the logs in this log group instead of a new one"
    )


def _for_stack(model: Section, key: str, rule: Any, info: ValidationInfo) -> Any:
    """The section with `<stack>` in its default name filled in (and the name checked again)."""
    field = to_camel(key)
    try:
        value = rule.check(getattr(model, key).replace("<stack>", info.context["stack"]))
    except Refused as exc:
        raise Refused(*(((field, *at), message) for at, message in exc.items)) from None
    return model.model_copy(update={key: value})


_REPOSITORY = matching(
    REPOSITORY_NAME, "bad repository name", "lowercase letters, digits, '.', '_', '-' and '/'"
)
_BUCKET = matching(BUCKET_NAME, "bad bucket name", "1-256 letters, digits, '.', '_' or '-'")


class RegistrySettings(Section):
    repository: str = Field(
        "llm/serving-<stack>",
        description="private OCIR repository for the serving images (unique per tenancy and region)",
    )

    @model_validator(mode="after")
    def _named(self, info: ValidationInfo) -> RegistrySettings:
        return _for_stack(self, "repository", _REPOSITORY, info)  # type: ignore[no-any-return]


class BucketSettings(Section):
    name: str = Field(f"{PROJECT}-<stack>-artifacts", description="private, versioned bucket for model zips")
    kms_key_id: Annotated[str, ocid("key")] | None = Field(
        None, description="customer-managed Vault key for the bucket (none: Oracle-managed)"
    )

    @model_validator(mode="after")
    def _named(self, info: ValidationInfo) -> BucketSettings:
        return _for_stack(self, "name", _BUCKET, info)  # type: ignore[no-any-return]


class BudgetSettings(Section):
    monthly_usd: Annotated[float, Accepts("a number of US dollars >= 0")] | None = Field(
        None, ge=0, allow_inf_nan=False, description="monthly budget the `monthly-budget` policy checks"
    )


_GROUP = re.compile(r"^(?:[A-Za-z0-9._+@-]{1,100}/)?[A-Za-z0-9._+@-]{1,100}$")
_GROUP_ACCEPTED = "a dynamic group name of letters, digits, '.', '_', '-', '+' and '@', or <domain>/<name>"


class IdentitySettings(Section):
    # Written into policy statements as it is: a space or a quote would break (or bend) them.
    existing_dynamic_group: (
        Annotated[str, matching(_GROUP, "bad dynamic group name", _GROUP_ACCEPTED)] | None
    ) = Field(
        None, description="use this dynamic group (no tenancy-level rights needed); else one is created"
    )


class AuthSettings(Section):
    """How the project's own providers (artifact upload, catalog, readiness) sign OCI calls."""

    mode: SigningAuthMode = Field("api_key", description="how the project's own providers sign OCI calls")
    profile: str = Field("DEFAULT", description="profile in the OCI config file")
    config_file: str = Field("~/.oci/config", description="OCI config file")


def _price(unit: str) -> Any:
    return Annotated[float, Field(ge=0, allow_inf_nan=False), Accepts(f"a number >= 0 ({unit})")]


class PricingSettings(Section):
    shapes: Annotated[
        dict[PricedShape, _price("USD per hour for the whole shape")],  # type: ignore[valid-type]
        Accepts("a mapping of shape names to USD per hour for the whole shape"),
    ] = Field({}, description="USD per hour for a whole shape, e.g. `{VM.GPU.A10.1: 1.6}` (negotiated rates)")
    gpus: Annotated[
        dict[Literal[tuple(sorted({s.gpu for s in SHAPES.values()}))], _price("USD per GPU-hour")],  # type: ignore[misc, valid-type]
        Accepts("a mapping of GPU names to USD per GPU-hour"),
    ] = Field({}, description="USD per GPU-hour by GPU, e.g. `{A10: 1.6}`")


class FineTuneSettings(Section):
    """A model made by fine-tuning `base_model` on `dataset` in a Data Science job, then deployed offline.

    The job writes merged weights (the deployment serves the artifact as a whole model) as one stored zip,
    `<output>/<run folder>/model.zip`; the run folder is named from the stack, the model and a digest of
    everything that shapes the weights, so a changed setting trains into a new folder and never over the
    model a deployment was made from. The numbers are checked by the training entrypoint's own rules.
    """

    base_model: Annotated[
        str,
        location(f"a Hugging Face model id <org>/<model> or a model folder {TRAINING_URI_FORM}", hub=True),
    ] = Field(
        description="the model to fine-tune: a Hugging Face id (gated ones need hfTokenSecretId) or a model "
        "folder in Object Storage"
    )
    dataset: Annotated[str, location(f"{TRAINING_URI_FORM} (JSONL files the job reads)")] = Field(
        description="JSONL records `{prompt, completion}` or `{text}` (every `*.jsonl` under the prefix)"
    )
    output: Annotated[str, location(f"{TRAINING_URI_FORM} (where the job writes the model)")] = Field(
        description="where the job writes `<run folder>/model.zip` (merged weights) and `finetune.json`"
    )
    method: Literal["lora", "qlora", "full"] = Field("lora", description="what is trained")
    save: Literal["merged"] = Field(
        "merged",
        description="LoRA is folded into the weights: the deployment serves the artifact as a whole model",
    )
    epochs: Number = Field(3.0, description="passes over the dataset")
    learning_rate: Number = Field(2e-4, description="peak learning rate")
    max_seq_len: int = Field(2048, description="tokens per record (longer are cut)")
    batch_size: int = Field(4, description="records per GPU and step")
    grad_accum: int = Field(1, description="steps accumulated per update")
    lora_r: int = Field(16, description="adapter rank (LoRA, QLoRA)")
    lora_alpha: int = Field(32, description="adapter scale (LoRA, QLoRA)")
    max_steps: int | None = Field(None, description="stop after this many updates")
    gradient_checkpointing: bool = Field(
        True, description="recompute activations: far less GPU memory for about a third more time"
    )
    shape: TrainingShape = Field(
        description="GPU shape of the job; every GPU must hold the whole run (checked, see docs/finetune.md)"
    )
    replicas: Literal[1] = Field(1, description="nodes (multi-node training: not yet)")
    image: Annotated[Image, Accepts(f"the training image, {IMAGE_EXAMPLE}")] = Field(
        description="training image with `training/` and the train extra (see docs/finetune.md)"
    )
    timeout_minutes: int = Field(
        12 * 60,
        ge=1,
        le=MAX_TRAINING_MINUTES,
        description="the job's maximum runtime; `up` waits for it (plus an hour to start) and the plan prices it",
    )

    @model_validator(mode="before")
    @classmethod
    def _not_an_adapter(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and raw.get("save") == "adapter":
            message = (
                "'adapter' cannot be deployed: the deployment serves its artifact as a whole model, and an adapter "
                "needs its base weights beside it; accepted: merged (the default; the adapter is folded into the "
                "weights)"
            )
            raise Refused((("save",), message))
        if isinstance(raw, Mapping) and isinstance(raw.get("replicas"), int) and raw["replicas"] > 1:
            accepted = "1 (multi-node training is not supported yet; a shape with more GPUs runs one process per GPU)"
            raise refused("more than one node:", raw["replicas"], accepted, "replicas")
        return raw

    @model_validator(mode="after")
    def _entrypoint_accepts(self) -> FineTuneSettings:
        aliases = {name: field.alias for name, field in type(self).model_fields.items()}
        found = []
        for finding in checked(**self._args_fields())[1]:
            if finding.accepted is not None:
                message = said("invalid value", finding.value, finding.accepted)
            else:
                message = f"invalid value {_show(finding.value)}; {finding.reason}"
            found.append(((str(aliases[finding.field]),), message))
        if found:
            raise Refused(*found)
        return self

    def _args_fields(self) -> dict[str, Any]:
        names = ("method", "epochs", "learning_rate", "max_seq_len", "batch_size", "grad_accum", "lora_r")
        names += (
            "base_model",
            "dataset",
            "output",
            "save",
            "lora_alpha",
            "max_steps",
            "gradient_checkpointing",
        )
        return {name: getattr(self, name) for name in names}

    @property
    def base_model_is_hub_id(self) -> bool:
        return not self.base_model.startswith("oci://")

    @property
    def base_model_name(self) -> str:
        """The name a size or architecture can be read from: the hub id, or the prefix's last part."""
        return (
            self.base_model if self.base_model_is_hub_id else self.base_model.rstrip("/").rsplit("/", 1)[-1]
        )

    def training_args(self, output: str, hf_token_secret_id: str | None = None) -> FineTuneArgs:
        """The entrypoint's arguments for a run writing to `output` (merged weights, one zip)."""
        numbers = {"epochs": float(self.epochs), "learning_rate": float(self.learning_rate)}
        return FineTuneArgs(
            **{**self._args_fields(), **numbers, "output": output},
            work_dir=FINE_TUNE_WORK_DIR,
            overwrite=True,  # a rerun of the same settings (after a failed attempt) replaces what it left
            hf_token_secret_id=hf_token_secret_id if self.base_model_is_hub_id else None,
            zip=FINE_TUNE_ZIP,
        )

    def _gpus(self) -> int:
        return SHAPES[self.shape].gpu_count if self.shape in SHAPES else 1

    def run_folder(self, stack: str, model: str) -> str:
        """`<stack>-<model>-<digest>`: the digest covers everything that shapes the weights."""
        spec = {"argv": to_argv(self.training_args("oci://-@-/-")), "image": self.image, "gpus": self._gpus()}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return f"{stack}-{model}-{digest}"

    def output_prefix(self, stack: str, model: str) -> str:
        """oci://bucket@ns/<prefix>/<run folder>: where one run writes."""
        return f"{self.output}/{self.run_folder(stack, model)}"

    def command(self, stack: str, model: str, hf_token_secret_id: str | None = None) -> list[str]:
        """The job's command: torchrun, one process per GPU of the shape, running training.finetune."""
        args = self.training_args(self.output_prefix(stack, model), hf_token_secret_id)
        return job_command(args, gpus=self._gpus())

    def buckets(self) -> tuple[tuple[str, str], ...]:
        """(bucket, access) for every bucket the job touches: `read` for inputs, `write` for the output."""
        inputs = [self.dataset] + ([] if self.base_model_is_hub_id else [self.base_model])
        found = [(_bucket(uri), "read") for uri in inputs] + [(_bucket(self.output), "write")]
        return tuple(dict.fromkeys(found))


def _bucket(uri: str) -> str:
    return uri.removeprefix("oci://").split("@", 1)[0]


SOURCE_KINDS = ("localPath", "objectStorage", "huggingface", "fineTune")


class SourceSettings(Section):
    local_path: LocalPath | None = Field(None, description="offline: a model folder, zipped and uploaded")
    object_storage: ZipUri | None = Field(None, description="offline: an existing stored zip")
    huggingface: HfId | None = Field(
        None, description="online: pulled from Hugging Face inside the container"
    )
    fine_tune: FineTuneSettings | None = Field(
        None,
        description="offline: fine-tuned in a Data Science job, then deployed from its output (docs/finetune.md)",
    )

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, raw: Any) -> Any:
        given = [kind for kind in SOURCE_KINDS if isinstance(raw, Mapping) and kind in raw]
        if isinstance(raw, Mapping) and len(given) != 1:
            said_ = f"has {' and '.join(given)}" if given else "names no source"
            raise Refused(((), f"{said_}; accepted: exactly one of {', '.join(SOURCE_KINDS)}"))
        return raw

    @property
    def kind(self) -> str:
        return next(kind for kind in SOURCE_KINDS if getattr(self, _snake(kind)) is not None)

    @property
    def method(self) -> Method:
        return "online" if self.huggingface is not None else "offline"

    @property
    def model_id(self) -> str | None:
        """A name that may tell the model's size and architecture (`Llama-2-7b-hf`), besides a folder."""
        if self.object_storage is not None:
            return self.object_storage.path
        return self.fine_tune.base_model_name if self.fine_tune is not None else self.huggingface

    def describe(self) -> str:
        if self.local_path is not None:
            return f"localPath:{self.local_path.name}"
        if self.fine_tune is not None:
            return f"fineTune:{self.fine_tune.method} of {self.fine_tune.base_model}"
        return (
            str(self.object_storage) if self.object_storage is not None else f"huggingface:{self.huggingface}"
        )


def _snake(key: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), key)


class ServingSettings(Section):
    engine: Engine = Field("vllm", description="inference engine")
    image: Image = Field(description=f"serving image, `{IMAGE_EXAMPLE}`")
    params: str = Field("", description="extra engine flags")
    tensor_parallelism: int | None = Field(
        None, ge=1, description="GPUs one replica shards over (none: the shape's GPU count)"
    )
    quantization: Quantization = Field("none", description="weight format (`int8` with `tgi` only)")
    port: int = Field(DEFAULT_PORT, ge=1024, le=65535, description="container port (but 8446, 8447, 24224)")
    max_model_len: int = Field(4096, ge=128, le=1_048_576, description="context length the engine reserves")

    @model_validator(mode="after")
    def _served(self) -> ServingSettings:
        found = []
        if self.quantization not in ENGINE_QUANTIZATIONS[self.engine]:
            accepted = f"with {self.engine}: {' | '.join(ENGINE_QUANTIZATIONS[self.engine])}"
            found.append((("quantization",), said("not served by this engine:", self.quantization, accepted)))
        if self.port in RESERVED_PORTS:
            accepted = "1024-65535 except 8446, 8447 and 24224 (used by the service)"
            found.append((("port",), said("reserved port", self.port, accepted)))
        if found:
            raise Refused(*found)
        return self


class AutoscalingSettings(Section):
    min_replicas: int = Field(1, ge=1, description="fewest instances")
    max_replicas: Annotated[int, Accepts("an integer >= minReplicas")] = Field(
        ge=1, description="most instances"
    )
    metric: Literal["cpu", "memory"] = Field("cpu", description="what scales")
    scale_out_threshold: int = Field(
        80, ge=1, le=100, description="percent of the metric that adds an instance"
    )
    scale_in_threshold: int = Field(
        20, ge=1, le=100, description="percent that removes one (below scale-out)"
    )
    cooldown_seconds: int = Field(600, ge=300, le=3600, description="wait between two scalings")

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingSettings:
        found = []
        if self.max_replicas < self.min_replicas:
            accepted = f"an integer >= minReplicas ({self.min_replicas})"
            found.append((("maxReplicas",), said("below minReplicas:", self.max_replicas, accepted)))
        if self.scale_in_threshold >= self.scale_out_threshold:
            accepted = f"a percentage below scaleOutThreshold ({self.scale_out_threshold})"
            found.append(
                (("scaleInThreshold",), said("not below scale-out:", self.scale_in_threshold, accepted))
            )
        if found:
            raise Refused(*found)
        return self


class ComputeSettings(Section):
    shape: Shape = Field(description="GPU shape, e.g. `VM.GPU.A10.1`")
    replicas: int = Field(1, ge=1, description="instances (initial count with autoscaling)")
    bandwidth_mbps: int = Field(10, ge=10, le=8000, description="load balancer bandwidth")
    autoscaling: AutoscalingSettings | None = Field(None, description="scale between min and max replicas")

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas

    @model_validator(mode="after")
    def _within_autoscaling(self) -> ComputeSettings:
        low, high = (
            (self.autoscaling.min_replicas, self.autoscaling.max_replicas) if self.autoscaling else (1, 0)
        )
        if self.autoscaling and not low <= self.replicas <= max(high, low):
            accepted = f"{low} to {high} (the initial count, within the autoscaling range)"
            raise refused("outside the autoscaling range:", self.replicas, accepted, "replicas")
        return self


class ReadinessSettings(Section):
    timeout_minutes: int = Field(60, ge=1, le=240, description="how long `up` waits for a working endpoint")
    smoke_prompt: Annotated[str, Accepts("a non-empty prompt")] = Field(
        "Say hello.", pattern=r"\S", description="prompt that must get a completion"
    )


class ModelSettings(Section):
    """One deployed model; `<name>`: 2-32 of `a-z 0-9 -`, starting with a letter."""

    source: SourceSettings = Field(description="where the weights come from: exactly one of the keys below")
    parameters_b: Size | None = Field(
        None,
        alias="parameters",
        description="model size (`7B`, `13B`, a number) for GPU fit and cost; none: read from config.json or the name",
    )
    serving: ServingSettings = Field(description="the engine and its image")
    compute: ComputeSettings = Field(description="the deployment's shape and instances")
    readiness: ReadinessSettings = Field(ReadinessSettings(), description="the check after `up`")
    _name: str = PrivateAttr("")

    @property
    def name(self) -> str:
        return self._name

    @model_validator(mode="after")
    def _sized(self) -> ModelSettings:
        gpus = SHAPES[self.compute.shape].gpu_count
        found = []
        if (self.serving.tensor_parallelism or gpus) > gpus:
            accepted = f"1 to {gpus} (the shape's GPU count)"
            tp = self.serving.tensor_parallelism
            found.append(
                (("serving", "tensorParallelism"), said("more GPUs than the shape has:", tp, accepted))
            )
        size = self.parameters_b or sizing.infer_parameters_b(
            local_path=self.source.local_path, model_id=self.source.model_id
        )
        if size is None:
            where = f"missing, and the size cannot be read from {self.source.describe()}"
            found.append((("parameters",), f"{where}; accepted: {SIZE_ACCEPTED}"))
        if found:
            raise Refused(*found)
        serving = self.serving.model_copy(
            update={"tensor_parallelism": self.serving.tensor_parallelism or gpus}
        )
        return self.model_copy(update={"parameters_b": size, "serving": serving})

    def container_spec(
        self, token_secret_id: str | None = None, token_in_artifact: bool = True
    ) -> ContainerSpec:
        return ContainerSpec(
            engine=self.serving.engine,
            method=self.source.method,
            model=self.source.huggingface or "",
            port=self.serving.port,
            tensor_parallelism=self.serving.tensor_parallelism or 1,
            max_model_len=self.serving.max_model_len,
            quantization=self.serving.quantization,
            params=self.serving.params,
            timeout_minutes=self.readiness.timeout_minutes,
            token_secret_id=token_secret_id,
            token_in_artifact=token_in_artifact,
        )


class Settings(Section):
    project: ClassVar[str] = PROJECT
    region: Annotated[
        str,
        matching(
            re.compile(r"^[a-z]{2,}-[a-z]+-\d+$"),
            "invalid value",
            "an OCI region identifier such as us-ashburn-1",
        ),
    ] = Field(alias="oci:region", description="OCI region of every resource, e.g. `us-ashburn-1`")
    tenancy_id: Annotated[str, ocid("tenancy")] = Field(
        description="tenancy; the dynamic group lives in its root compartment"
    )
    compartment_id: Annotated[str, ocid("compartment", "tenancy")] = Field(
        description="compartment of every other resource"
    )
    project_id: Annotated[str, ocid("datascienceproject")] | None = Field(
        None, description="existing Data Science project; else one is created"
    )
    network: NetworkSettings = Field(NetworkSettings(), description="the VCN, or an existing subnet")
    logging: LoggingSettings = Field(LoggingSettings(), description="the predict and access logs")
    registry: RegistrySettings = Field(RegistrySettings.model_construct(), description="the serving images")
    artifact_bucket: BucketSettings = Field(
        BucketSettings.model_construct(), description="the model artifacts"
    )
    budget: BudgetSettings = Field(BudgetSettings(), description="what the stack may cost")
    identity: IdentitySettings = Field(IdentitySettings(), description="who the deployments and jobs are")
    auth: AuthSettings = Field(AuthSettings(), description="how the project's own providers sign OCI calls")
    tags: dict[TagKey, TagValue] = Field(
        {}, description="freeform tags on every resource (`environment`, `team` are required by policy)"
    )
    hf_token: HfToken | None = Field(
        None, description="Hugging Face token for gated models (`pulumi config set --secret hfToken`)"
    )
    hf_token_secret_id: Annotated[str, ocid("vaultsecret")] | None = Field(
        None, description="Vault secret holding the token instead (read by the container)"
    )
    pricing: PricingSettings | None = Field(None, description="negotiated prices, for cost and budget")
    models_by_name: Annotated[
        dict[ModelName, ModelSettings],
        Accepts("at least one model: models.<name>: {source, serving, compute}"),
    ] = Field(alias="models", min_length=1, description="one entry per deployed model")
    _stack: str = PrivateAttr("")

    @model_validator(mode="before")
    @classmethod
    def _named_sections(cls, raw: Any) -> Any:
        """The sections whose default names carry the stack are always validated (with the stack at hand)."""
        return {"registry": {}, "artifactBucket": {}, **raw} if isinstance(raw, Mapping) else raw

    def model_post_init(self, context: Any) -> None:
        self._stack = context["stack"]
        for name, model in self.models_by_name.items():
            model._name = name

    @property
    def stack(self) -> str:
        return self._stack

    @property
    def models(self) -> tuple[ModelSettings, ...]:
        return tuple(self.models_by_name.values())

    @property
    def price_overrides(self) -> bool:
        return self.pricing is not None and bool(self.pricing.shapes or self.pricing.gpus)

    @property
    def prices(self) -> PriceTable:
        given = self.pricing.model_dump() if self.pricing and self.price_overrides else None
        return with_overrides(DEFAULT_PRICES, given)

    def shape_hourly_usd(self, shape: str) -> float | None:
        """The hourly price of `shape` when the stack sets prices, else None (the price table decides)."""
        return self.prices.shape_hourly_usd(shape) if self.price_overrides else None

    @property
    def environment(self) -> str:
        return self.tags.get("environment", self.stack)

    def model(self, name: str) -> ModelSettings:
        if name in self.models_by_name:
            return self.models_by_name[name]
        raise KeyError(name)

    @model_validator(mode="after")
    def _models_fit_the_stack(self, info: ValidationInfo) -> Settings:
        found: list[tuple[tuple[str, ...], str]] = []
        offline_only = self.network.egress == "none" and self.network.existing_subnet_id is None
        for name, model in self.models_by_name.items():
            at, before, tune = ("models", name, "source"), len(found), model.source.fine_tune
            if model.source.huggingface is not None:
                if offline_only:
                    accepted = f"nat or managed: model {name!r} is pulled from Hugging Face and needs internet egress"
                    found.append((("network", "egress"), said("blocks online model:", "none", accepted)))
                gated = model.source.huggingface.split("/")[0] in GATED_HF_ORGS
                if gated and self.hf_token is None and self.hf_token_secret_id is None:
                    message = f"{model.source.huggingface!r} is a gated model; accepted: set hfToken "
                    found.append(
                        (
                            (*at, "huggingface"),
                            message + "(`pulumi config set --secret hfToken`) or hfTokenSecretId",
                        )
                    )
            if tune is not None:
                found += self._fine_tune_problems(name, tune, model.parameters_b, info.context["stack"])
            if len(found) == before:
                spec = model.container_spec(
                    self.hf_token_secret_id, token_in_artifact=self.hf_token is not None
                )
                for message in env_problems(container_env(spec)):
                    params = f"{message} (params is {len(model.serving.params)} characters); accepted: shorter params"
                    found.append((("models", name, "serving", "params"), params))
        if found:
            raise Refused(*found)
        return self

    def _fine_tune_problems(
        self, name: str, tune: FineTuneSettings, parameters_b: float | None, stack: str
    ) -> list[tuple[tuple[str, ...], str]]:
        """What the job needs from the rest of the stack: egress, a token it can read, a shape that fits."""
        at, found = ("models", name, "source", "fineTune"), []
        if tune.base_model_is_hub_id:
            if self.network.egress == "none" and self.network.existing_subnet_id is None:
                accepted = (
                    f"nat or managed: model {name!r} fine-tunes {tune.base_model} downloaded from Hugging "
                )
                accepted += "Face, and the job needs internet egress for it"
                found.append((("network", "egress"), said("blocks fine-tuning:", "none", accepted)))
            if tune.base_model.split("/")[0] in GATED_HF_ORGS and self.hf_token_secret_id is None:
                message = (
                    f"{tune.base_model!r} is a gated model, and the training job reads the token only from Vault; "
                    "accepted: set hfTokenSecretId (a Vault secret holding the token), or a copy of the model in "
                    f"Object Storage ({TRAINING_URI_FORM})"
                )
                found.append(((*at, "baseModel"), message))
        length = len(" ".join(tune.command(stack, name, self.hf_token_secret_id)).encode())
        if length >= MAX_COMMAND_BYTES:
            message = (
                f"the job's command takes {length} bytes; OCI accepts under {MAX_COMMAND_BYTES}; accepted: "
            )
            found.append((at, message + "shorter baseModel, dataset and output addresses"))
        if parameters_b is None or (fit := training_fit(tune, parameters_b)).fits:
            return found
        advice = ["a smaller batchSize or maxSeqLen"]
        advice[:0] = ["method qlora"] * (tune.method != "qlora") + ["gradientCheckpointing: true"] * (
            not tune.gradient_checkpointing
        )
        by_price = sorted(SHAPES, key=lambda n: (DEFAULT_PRICES.shape_hourly_usd(n), n))
        roomy = [shape for shape in by_price if training_fit(tune, parameters_b, shape=shape).fits]
        advice.append(
            f"a shape with more memory per GPU ({', '.join(roomy[:3])})" if roomy else "a smaller model"
        )
        message = (
            f"too small for {tune.method} of a {parameters_b:g}B model: {tune.shape!r} needs {fit.breakdown()} "
            f"(torchrun runs one process per GPU, each with the whole model); accepted: {', or '.join(advice)}"
        )
        return [*found, ((*at, "shape"), message)]


def training_fit(
    fine_tune: FineTuneSettings, parameters_b: float, shape: str | None = None
) -> sizing.TrainingFitReport:
    """The sizing module's figures for this fine-tune (on `shape` instead of its own, when given)."""
    return sizing.estimate_training_fit(
        shape=shape or fine_tune.shape,
        method=fine_tune.method,
        parameters_b=parameters_b,
        architecture=sizing.known_architecture(fine_tune.base_model_name),
        max_seq_len=fine_tune.max_seq_len,
        batch_size=fine_tune.batch_size,
        lora_r=fine_tune.lora_r,
        gradient_checkpointing=fine_tune.gradient_checkpointing,
    )


def load_settings(
    config: Mapping[str, Any],
    *,
    stack: str,
    project_dir: Path,
    secret_keys: Iterable[str] = (),
    source: str | None = None,
) -> Settings:
    """Parse a stack's config mapping (keys as in the stack file) into `Settings`, or raise SettingsError.

    `secret_keys` are the (namespaced) keys Pulumi holds as secrets; a value written `{secure: ...}` in the
    stack file also counts as one (its plain value is unknown offline). A key left empty counts as absent.
    """
    found: list[Problem] = []
    raw: dict[str, Any] = {}
    secret = set(secret_keys)
    for key, value in config.items():
        namespace, _, name = str(key).rpartition(":")
        if namespace in ("", PROJECT):
            raw[name] = value
        elif key == "oci:region":
            raw[key] = value
        elif difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.8:
            # A misspelt project namespace would otherwise pass for a provider's setting, unread.
            message = (
                f"unknown namespace {namespace!r}; did you mean '{PROJECT}:{name}'? accepted: this project's "
            )
            found.append(
                Problem(
                    key, message + f"keys under {PROJECT}: (other namespaces are left to their providers)"
                )
            )
    found += _plain_secrets({k: v for k, v in raw.items() if k != "hfToken"})
    hf_token_is_secret = {"hfToken", f"{PROJECT}:hfToken"} & secret or is_secure(raw.get("hfToken"))
    context = {"stack": stack, "project_dir": project_dir, "hf_token_is_secret": bool(hf_token_is_secret)}
    try:
        settings = Settings.model_validate(_present(raw), context=context)
    except ValidationError as exc:
        found += problems_of(exc, Settings)
    if found:
        raise SettingsError(found, source)
    return settings


def _present(value: Any) -> Any:
    """The config without keys left empty (`compute:` with nothing under it is null in YAML)."""
    if isinstance(value, Mapping):
        return {k: _present(v) for k, v in value.items() if v is not None}
    return value


PLAIN_SECRET = (
    "in plain text (not shown here); accepted: the Hugging Face token as a secret (`pulumi config set --secret "
    "hfToken`) or in Vault (hfTokenSecretId)"
)


def _plain_secrets(value: Any, path: str = "") -> list[Problem]:
    """Secret material pasted into any plain setting: a problem at its key, the value never shown."""
    if isinstance(value, str) and (kind := secret_kind(value)):
        return [Problem(path, f"holds {kind} {PLAIN_SECRET}")]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _plain_secrets(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _plain_secrets(v, f"{path}[{i}]")]
    return []
