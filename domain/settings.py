"""Typed, validated stack settings: the one place where configuration is read and checked.

`load_settings` turns a stack's `config:` mapping (from `stacks/Pulumi.<stack>.yaml`, or from the Pulumi
engine at run time) into frozen dataclasses. Every problem is collected, then raised together as one
`SettingsError`, each line naming the full key path, the value and what would be accepted; nothing half
checked ever reaches a component.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import yaml

from domain import sizing
from domain.container_env import (
    DEFAULT_PORT,
    RESERVED_PORTS,
    ContainerSpec,
    Method,
    container_env,
    env_problems,
)
from domain.ids import ENGINES, Engine, InvalidId, parse_object_uri
from domain.pricing import DEFAULT_PRICES, PriceTable, with_overrides
from domain.secrets import mask_secrets, secret_kind
from domain.shapes import SHAPES, known_shape_names

if TYPE_CHECKING:
    from domain.training_args import FineTuneArgs as TrainingArgs

PROJECT = "oci-llm-stack"
Egress = Literal["nat", "managed", "none"]
EGRESS_MODES: tuple[Egress, ...] = ("nat", "managed", "none")
QUANTIZATIONS: tuple[str, ...] = ("none", "fp8", "int8", "awq", "gptq")
ENGINE_QUANTIZATIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("none", "fp8", "awq", "gptq"),
    "tgi": ("none", "fp8", "int8", "awq", "gptq"),
}
AUTH_MODES = ("api_key", "security_token", "instance_principal", "resource_principal")
LOG_RETENTION_DAYS = (30, 60, 90, 120, 150, 180)
BANDWIDTH_MBPS = (10, 8000)
MAX_TIMEOUT_MINUTES = 240
GATED_HF_ORGS = ("meta-llama",)
SECRET_PLACEHOLDER = "[secret]"

_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_OCID = re.compile(r"^ocid1\.([a-z0-9]+)\.(oc\d+)\.([a-z0-9-]*)\.([a-z0-9]{20,})$")
_REGION = re.compile(r"^[a-z]{2,}-[a-z]+-\d+$")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_OS_URI = re.compile(
    r"^oci://(?P<bucket>[A-Za-z0-9._-]{1,256})@(?P<namespace>[a-z0-9-]{1,64})/(?P<object>.+)$"
)
_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
_REPOSITORY = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,254}$")
_IMAGE = re.compile(
    r"^(?P<host>[a-z0-9.-]+(?::\d+)?)/(?P<path>[a-z0-9][a-z0-9._/-]*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_OCIR_HOST = re.compile(r"^([a-z0-9-]+\.ocir\.io|ocir\.[a-z0-9-]+\.oci\.oraclecloud\.com)$")
_PARAMETERS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bBmM]?)\s*$")
_TAG_KEY = re.compile(r"^[^.\s]{1,100}$")
_DYNAMIC_GROUP = re.compile(r"^(?:[A-Za-z0-9._+@-]{1,100}/)?[A-Za-z0-9._+@-]{1,100}$")

IMAGE_EXAMPLE = "<region-key>.ocir.io/<namespace>/<repository>:<tag>@sha256:<digest>"


# ---------------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SettingsError(Exception):
    """All problems found in one stack's settings; `str()` is what the user reads."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} with the stack settings{where}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def _show(value: Any) -> str:
    """A value as a message shows it: short, and with anything like a token hidden."""
    text = mask_secrets(repr(value))
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------------------------------------------------
# Settings types


@dataclass(frozen=True)
class Secret:
    """A secret value from config; never shown by repr. `known` is False in the offline plan."""

    value: str = field(repr=False)
    known: bool = True

    def __repr__(self) -> str:
        return f"Secret({SECRET_PLACEHOLDER})"


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    vcn_cidr: str = "10.0.0.0/16"
    subnet_cidr: str = "10.0.1.0/24"
    egress: Egress = "nat"
    existing_subnet_id: str | None = None

    @property
    def creates_vcn(self) -> bool:
        return self.existing_subnet_id is None and self.egress != "managed"


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    retention_days: int = 30
    existing_log_group_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    repository: str  # OCIR repository names are unique per tenancy and region: the default carries the stack


@dataclass(frozen=True, kw_only=True)
class BucketSettings:
    name: str
    kms_key_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class BudgetSettings:
    monthly_usd: float | None = None


@dataclass(frozen=True, kw_only=True)
class IdentitySettings:
    existing_dynamic_group: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """How the project's own providers (artifact upload, catalog, readiness) sign OCI calls."""

    mode: str = "api_key"
    profile: str = "DEFAULT"
    config_file: str = "~/.oci/config"


@dataclass(frozen=True, kw_only=True)
class ObjectStorageUri:
    bucket: str
    namespace: str
    object_name: str

    def __str__(self) -> str:
        return f"oci://{self.bucket}@{self.namespace}/{self.object_name}"


SourceKind = Literal["localPath", "objectStorage", "huggingface", "fineTune"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("localPath", "objectStorage", "huggingface", "fineTune")

FINE_TUNE_ZIP = "model.zip"
FINE_TUNE_WORK_DIR = "/home/datascience/finetune-work"  # the job run's home, on its block volume
MAX_TRAINING_MINUTES = 7 * 24 * 60
MAX_COMMAND_BYTES = 2048  # a job's CMD and ENTRYPOINT together


@dataclass(frozen=True, kw_only=True)
class FineTuneSettings:
    """A model made by fine-tuning `base_model` on `dataset` in a Data Science job, then deployed offline.

    The job writes merged weights (the deployment serves the artifact as a whole model) as one stored zip,
    `<output>/<run folder>/model.zip`; the run folder is named from the stack, the model and a digest of
    everything that shapes the weights, so a changed setting trains into a new folder and never over the
    model a deployment was made from.
    """

    base_model: str  # a Hugging Face id or oci://bucket@namespace/prefix
    dataset: str  # oci://bucket@namespace/prefix
    output: str  # oci://bucket@namespace/prefix
    shape: str
    image: str
    method: str = "lora"
    epochs: float = 3.0
    learning_rate: float = 2e-4
    max_seq_len: int = 2048
    batch_size: int = 4
    grad_accum: int = 1
    lora_r: int = 16
    lora_alpha: int = 32
    max_steps: int | None = None
    gradient_checkpointing: bool = True
    replicas: int = 1
    timeout_minutes: int = 12 * 60

    @property
    def base_model_is_hub_id(self) -> bool:
        return not self.base_model.startswith("oci://")

    @property
    def base_model_name(self) -> str:
        """The name a size or architecture can be read from: the hub id, or the prefix's last part."""
        if self.base_model_is_hub_id:
            return self.base_model
        return self.base_model.rstrip("/").rsplit("/", 1)[-1]

    def training_args(self, output: str, hf_token_secret_id: str | None = None) -> TrainingArgs:
        """The entrypoint's arguments for a run writing to `output` (merged weights, one zip)."""
        from domain.training_args import FineTuneArgs as EntrypointArgs

        return EntrypointArgs(
            base_model=self.base_model,
            dataset=self.dataset,
            output=output,
            method=cast(Any, self.method),
            save="merged",
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            max_seq_len=self.max_seq_len,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            max_steps=self.max_steps,
            gradient_checkpointing=self.gradient_checkpointing,
            work_dir=FINE_TUNE_WORK_DIR,
            # A rerun of the same settings (after a failed attempt) replaces what that attempt left.
            overwrite=True,
            hf_token_secret_id=hf_token_secret_id if self.base_model_is_hub_id else None,
            zip=FINE_TUNE_ZIP,
        )

    def run_folder(self, stack: str, model: str) -> str:
        """`<stack>-<model>-<digest>`: the digest covers everything that shapes the weights."""
        import hashlib
        import json

        from domain.training_args import to_argv

        shape = SHAPES.get(self.shape)
        spec = {
            "argv": to_argv(self.training_args("oci://-@-/-")),
            "image": self.image,
            "gpus": shape.gpu_count if shape else None,
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return f"{stack}-{model}-{digest}"

    def output_prefix(self, stack: str, model: str) -> str:
        """oci://bucket@ns/<prefix>/<run folder>: where one run writes."""
        return f"{self.output}/{self.run_folder(stack, model)}"

    def command(self, stack: str, model: str, hf_token_secret_id: str | None = None) -> list[str]:
        """The job's command: torchrun, one process per GPU of the shape, running training.finetune."""
        from domain.training_args import job_command

        shape = SHAPES.get(self.shape)
        args = self.training_args(self.output_prefix(stack, model), hf_token_secret_id)
        return job_command(args, gpus=shape.gpu_count if shape else 1)

    def buckets(self) -> tuple[tuple[str, str], ...]:
        """(bucket, access) for every bucket the job touches: `read` for inputs, `write` for the output."""
        inputs = [self.dataset] + ([] if self.base_model_is_hub_id else [self.base_model])
        found = [(_uri_bucket(uri), "read") for uri in inputs] + [(_uri_bucket(self.output), "write")]
        return tuple(dict.fromkeys(found))


def image_digest(image: str) -> str | None:
    """The `sha256:...` digest an image reference pins, or None for one by tag alone."""
    match = _IMAGE.match(image)
    return match.group("digest") if match else None


def _uri_bucket(uri: str) -> str:
    return uri.removeprefix("oci://").split("@", 1)[0]


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    kind: SourceKind
    local_path: Path | None = None
    object_storage: ObjectStorageUri | None = None
    huggingface: str | None = None
    fine_tune: FineTuneSettings | None = None

    @property
    def method(self) -> Method:
        return "online" if self.kind == "huggingface" else "offline"

    @property
    def model_id(self) -> str | None:
        """A name that may tell the model's size and architecture (`Llama-2-7b-hf`), besides a folder."""
        if self.huggingface is not None:
            return self.huggingface
        if self.object_storage is not None:
            return self.object_storage.object_name
        if self.fine_tune is not None:
            return self.fine_tune.base_model_name
        return None

    def describe(self) -> str:
        if self.local_path is not None:
            return f"localPath:{self.local_path.name}"
        if self.object_storage is not None:
            return str(self.object_storage)
        if self.fine_tune is not None:
            return f"fineTune:{self.fine_tune.method} of {self.fine_tune.base_model}"
        return f"huggingface:{self.huggingface}"


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    engine: Engine
    image: str
    params: str = ""
    tensor_parallelism: int = 1
    quantization: str = "none"
    port: int = DEFAULT_PORT
    max_model_len: int = 4096


@dataclass(frozen=True, kw_only=True)
class AutoscalingSettings:
    min_replicas: int = 1
    max_replicas: int
    metric: Literal["cpu", "memory"] = "cpu"
    scale_out_threshold: int = 80
    scale_in_threshold: int = 20
    cooldown_seconds: int = 600


@dataclass(frozen=True, kw_only=True)
class ComputeSettings:
    shape: str
    replicas: int = 1
    bandwidth_mbps: int = 10
    autoscaling: AutoscalingSettings | None = None

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas


@dataclass(frozen=True, kw_only=True)
class ReadinessSettings:
    timeout_minutes: int = 60
    smoke_prompt: str = "Say hello."


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    name: str
    source: SourceSettings
    parameters_b: float | None
    serving: ServingSettings
    compute: ComputeSettings
    readiness: ReadinessSettings

    def container_spec(
        self, token_secret_id: str | None = None, token_in_artifact: bool = True
    ) -> ContainerSpec:
        return ContainerSpec(
            engine=self.serving.engine,
            method=self.source.method,
            model=self.source.huggingface or "",
            port=self.serving.port,
            tensor_parallelism=self.serving.tensor_parallelism,
            max_model_len=self.serving.max_model_len,
            quantization=self.serving.quantization,
            params=self.serving.params,
            timeout_minutes=self.readiness.timeout_minutes,
            token_secret_id=token_secret_id,
            token_in_artifact=token_in_artifact,
        )


@dataclass(frozen=True, kw_only=True)
class Settings:
    project: str
    stack: str
    region: str
    tenancy_id: str
    compartment_id: str
    project_id: str | None
    network: NetworkSettings
    logging: LoggingSettings
    registry: RegistrySettings
    artifact_bucket: BucketSettings
    budget: BudgetSettings
    identity: IdentitySettings
    auth: AuthSettings
    tags: Mapping[str, str]
    hf_token: Secret | None
    hf_token_secret_id: str | None
    models: tuple[ModelSettings, ...]
    prices: PriceTable = DEFAULT_PRICES
    price_overrides: bool = False

    def shape_hourly_usd(self, shape: str) -> float | None:
        """The hourly price of `shape` when the stack sets prices, else None (the price table decides)."""
        return self.prices.shape_hourly_usd(shape) if self.price_overrides else None

    @property
    def environment(self) -> str:
        return self.tags.get("environment", self.stack)

    def model(self, name: str) -> ModelSettings:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------------------
# Documented keys (the README's settings table is generated from this list and checked by a test)


@dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str
    meaning: str


KEY_DOCS: tuple[KeyDoc, ...] = (
    KeyDoc("oci:region", "string", "required", "OCI region of every resource, e.g. `us-ashburn-1`"),
    KeyDoc("tenancyId", "OCID", "required", "tenancy; the dynamic group lives in its root compartment"),
    KeyDoc("compartmentId", "OCID", "required", "compartment of every other resource"),
    KeyDoc("projectId", "OCID", "created", "existing Data Science project; else one is created"),
    KeyDoc("network.vcnCidr", "CIDR", "`10.0.0.0/16`", "VCN address range (/16 to /30)"),
    KeyDoc("network.subnetCidr", "CIDR", "`10.0.1.0/24`", "private subnet, inside `vcnCidr`"),
    KeyDoc(
        "network.egress",
        "`nat` \\| `managed` \\| `none`",
        "`nat`",
        "`nat`: own VCN, NAT + service gateway; `managed`: service-managed networking with internet; "
        "`none`: own VCN, service gateway only (offline models only)",
    ),
    KeyDoc("network.existingSubnetId", "OCID", "none", "use this subnet; no network resources are created"),
    KeyDoc(
        "logging.retentionDays",
        "30 \\| 60 \\| ... \\| 180",
        "`30`",
        "retention of the predict and access logs",
    ),
    KeyDoc(
        "logging.existingLogGroupId", "OCID", "none", "put the logs in this log group instead of a new one"
    ),
    KeyDoc(
        "registry.repository",
        "string",
        "`llm/serving-<stack>`",
        "private OCIR repository for the serving images (unique per tenancy and region)",
    ),
    KeyDoc(
        "artifactBucket.name",
        "string",
        "`<project>-<stack>-artifacts`",
        "private, versioned bucket for model zips",
    ),
    KeyDoc("artifactBucket.kmsKeyId", "OCID", "Oracle-managed", "customer-managed Vault key for the bucket"),
    KeyDoc("budget.monthlyUsd", "number >= 0", "none", "monthly budget the `monthly-budget` policy checks"),
    KeyDoc(
        "identity.existingDynamicGroup",
        "string",
        "created",
        "use this dynamic group (no tenancy-level rights needed); else one is created",
    ),
    KeyDoc(
        "auth.mode",
        "`api_key` \\| `security_token` \\| `instance_principal` \\| `resource_principal`",
        "`api_key`",
        "how the project's own providers sign OCI calls",
    ),
    KeyDoc("auth.profile", "string", "`DEFAULT`", "profile in the OCI config file"),
    KeyDoc("auth.configFile", "path", "`~/.oci/config`", "OCI config file"),
    KeyDoc(
        "tags",
        "map",
        "`{}`",
        "freeform tags on every resource (`environment`, `team` are required by policy)",
    ),
    KeyDoc(
        "hfToken",
        "secret",
        "none",
        "Hugging Face token for gated models (`pulumi config set --secret hfToken`)",
    ),
    KeyDoc(
        "hfTokenSecretId", "OCID", "none", "Vault secret holding the token instead (read by the container)"
    ),
    KeyDoc(
        "pricing.shapes",
        "map",
        "list prices",
        "USD per hour for a whole shape, e.g. `{VM.GPU.A10.1: 1.6}` (negotiated rates), for cost and budget",
    ),
    KeyDoc("pricing.gpus", "map", "list prices", "USD per GPU-hour by GPU, e.g. `{A10: 1.6}`"),
    KeyDoc("models.<name>", "map", "required", "one entry per deployed model; `<name>`: 2-32 of `a-z 0-9 -`"),
    KeyDoc(
        "models.<name>.source.localPath", "path", "one source", "offline: a model folder, zipped and uploaded"
    ),
    KeyDoc(
        "models.<name>.source.objectStorage",
        "`oci://bucket@ns/object.zip`",
        "one source",
        "offline: an existing stored zip",
    ),
    KeyDoc(
        "models.<name>.source.huggingface",
        "`org/model`",
        "one source",
        "online: pulled from Hugging Face inside the container",
    ),
    KeyDoc(
        "models.<name>.source.fineTune",
        "map",
        "one source",
        "offline: fine-tuned in a Data Science job, then deployed from its output (keys below; "
        "see docs/finetune.md)",
    ),
    KeyDoc(
        "models.<name>.source.fineTune.baseModel",
        "`org/model` \\| `oci://bucket@ns/prefix`",
        "required",
        "the model to fine-tune: a Hugging Face id (gated ones need hfTokenSecretId) or a model folder in "
        "Object Storage",
    ),
    KeyDoc(
        "models.<name>.source.fineTune.dataset",
        "`oci://bucket@ns/prefix`",
        "required",
        "JSONL records `{prompt, completion}` or `{text}` (every `*.jsonl` under the prefix)",
    ),
    KeyDoc(
        "models.<name>.source.fineTune.output",
        "`oci://bucket@ns/prefix`",
        "required",
        "where the job writes `<run folder>/model.zip` (merged weights) and `finetune.json`",
    ),
    KeyDoc(
        "models.<name>.source.fineTune.method", "`lora` \\| `qlora` \\| `full`", "`lora`", "what is trained"
    ),
    KeyDoc(
        "models.<name>.source.fineTune.save",
        "`merged`",
        "`merged`",
        "LoRA is folded into the weights: the deployment serves the artifact as a whole model",
    ),
    KeyDoc("models.<name>.source.fineTune.epochs", "number", "`3`", "passes over the dataset"),
    KeyDoc("models.<name>.source.fineTune.learningRate", "number", "`2e-4`", "peak learning rate"),
    KeyDoc(
        "models.<name>.source.fineTune.maxSeqLen", "integer", "`2048`", "tokens per record (longer are cut)"
    ),
    KeyDoc("models.<name>.source.fineTune.batchSize", "integer", "`4`", "records per GPU and step"),
    KeyDoc("models.<name>.source.fineTune.gradAccum", "integer", "`1`", "steps accumulated per update"),
    KeyDoc("models.<name>.source.fineTune.loraR", "integer", "`16`", "adapter rank (LoRA, QLoRA)"),
    KeyDoc("models.<name>.source.fineTune.loraAlpha", "integer", "`32`", "adapter scale (LoRA, QLoRA)"),
    KeyDoc("models.<name>.source.fineTune.maxSteps", "integer", "none", "stop after this many updates"),
    KeyDoc(
        "models.<name>.source.fineTune.gradientCheckpointing",
        "boolean",
        "`true`",
        "recompute activations: far less GPU memory for about a third more time",
    ),
    KeyDoc(
        "models.<name>.source.fineTune.shape",
        "shape name",
        "required",
        "GPU shape of the job; every GPU must hold the whole run (checked, see docs/finetune.md)",
    ),
    KeyDoc("models.<name>.source.fineTune.replicas", "`1`", "`1`", "nodes (multi-node training: not yet)"),
    KeyDoc(
        "models.<name>.source.fineTune.image",
        "OCIR image",
        "required",
        "training image with `training/` and the train extra (see docs/finetune.md)",
    ),
    KeyDoc(
        "models.<name>.source.fineTune.timeoutMinutes",
        f"1-{MAX_TRAINING_MINUTES}",
        "`720`",
        "the job's maximum runtime; `up` waits for it (plus an hour to start) and the plan prices it",
    ),
    KeyDoc(
        "models.<name>.parameters",
        "`7B` \\| `13B` \\| number",
        "from the source",
        "model size for GPU fit and cost; read from config.json or the name when absent",
    ),
    KeyDoc("models.<name>.serving.engine", "`vllm` \\| `tgi`", "`vllm`", "inference engine"),
    KeyDoc("models.<name>.serving.image", "OCIR image", "required", f"serving image, `{IMAGE_EXAMPLE}`"),
    KeyDoc("models.<name>.serving.params", "string", '`""`', "extra engine flags"),
    KeyDoc(
        "models.<name>.serving.tensorParallelism",
        "integer",
        "shape's GPU count",
        "GPUs one replica shards over",
    ),
    KeyDoc(
        "models.<name>.serving.quantization",
        "`none` \\| `fp8` \\| `int8` \\| `awq` \\| `gptq`",
        "`none`",
        "weight format (`int8` with `tgi` only)",
    ),
    KeyDoc("models.<name>.serving.maxModelLen", "integer", "`4096`", "context length the engine reserves"),
    KeyDoc(
        "models.<name>.serving.port", "integer", "`8080`", "container port (1024-65535 but 8446, 8447, 24224)"
    ),
    KeyDoc("models.<name>.compute.shape", "shape name", "required", "GPU shape, e.g. `VM.GPU.A10.1`"),
    KeyDoc(
        "models.<name>.compute.replicas", "integer >= 1", "`1`", "instances (initial count with autoscaling)"
    ),
    KeyDoc("models.<name>.compute.bandwidthMbps", "10-8000", "`10`", "load balancer bandwidth"),
    KeyDoc(
        "models.<name>.compute.autoscaling",
        "map",
        "none",
        "`{minReplicas, maxReplicas, metric: cpu \\| memory, scaleOutThreshold, scaleInThreshold, "
        "cooldownSeconds}`",
    ),
    KeyDoc(
        "models.<name>.readiness.timeoutMinutes",
        "1-240",
        "`60`",
        "how long `up` waits for a working endpoint",
    ),
    KeyDoc(
        "models.<name>.readiness.smokePrompt", "string", "`Say hello.`", "prompt that must get a completion"
    ),
)


# ---------------------------------------------------------------------------------------------------------
# Parsing

T = TypeVar("T")
_MISSING: Any = object()


class _Parser:
    """Walks the raw config, collecting problems instead of stopping at the first."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.problems: list[Problem] = []

    # -- reporting --------------------------------------------------------------------------------------
    def fail(self, path: str, value: Any, accepted: str, reason: str = "invalid value") -> None:
        shown = "missing" if value is _MISSING else f"{reason} {_show(value)}"
        self.problems.append(Problem(path, f"{shown}; accepted: {accepted}"))

    def section(self, raw: Any, path: str, known: Iterable[str]) -> dict[str, Any]:
        """A mapping with only known keys (unknown ones are reported with the nearest known key)."""
        if raw is _MISSING or raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(path, raw, f"a mapping with keys {', '.join(known)}", "not a mapping:")
            return {}
        known = list(known)
        for key in raw:
            if key not in known:
                self.unknown(f"{path}.{key}", str(key), known)
        return {k: v for k, v in raw.items() if k in known}

    def unknown(self, path: str, key: str, known: list[str]) -> None:
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}? " if near else ""
        self.problems.append(Problem(path, f"unknown key; {hint}known keys: {', '.join(known)}"))

    # -- typed getters ----------------------------------------------------------------------------------
    def string(self, raw: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> Any:
        value = raw.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.fail(f"{path}.{key}" if path else key, _MISSING, "a string")
            return default
        if not isinstance(value, str):
            self.fail(f"{path}.{key}" if path else key, value, "a string", "not a string:")
            return default
        return value

    def integer(
        self, raw: Mapping[str, Any], key: str, path: str, default: int, lo: int, hi: int | None
    ) -> int:
        value = raw.get(key, default)
        full = f"{path}.{key}"
        accepted = f"an integer from {lo}" + (f" to {hi}" if hi is not None else " up")
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                self.fail(full, value, accepted, "not an integer:")
                return default
        if value < lo or (hi is not None and value > hi):
            self.fail(full, value, accepted, "out of range:")
            return default
        return value

    def choice(self, raw: Mapping[str, Any], key: str, path: str, default: T, choices: Iterable[T]) -> T:
        value = raw.get(key, default)
        choices = list(choices)
        if value not in choices:
            self.fail(f"{path}.{key}", value, " | ".join(map(str, choices)), "unknown value")
            return default
        return cast(T, value)

    def ocid(self, value: Any, path: str, kinds: tuple[str, ...], region: str | None = None) -> str | None:
        example = f"ocid1.{kinds[0]}.oc1..<unique id>"
        if not isinstance(value, str) or not (match := _OCID.match(value)):
            self.fail(path, value, f"an OCID like {example}", "malformed OCID")
            return None
        if match.group(1) not in kinds:
            self.fail(
                path,
                value,
                f"an OCID of type {' or '.join(kinds)} ({example})",
                f"an OCID of type {match.group(1)!r}:",
            )
            return None
        return value

    def optional_ocid(
        self, raw: Mapping[str, Any], key: str, path: str, kinds: tuple[str, ...]
    ) -> str | None:
        value = raw.get(key)
        return None if value is None else self.ocid(value, f"{path}.{key}" if path else key, kinds)


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
    stack file also counts as one (its plain value is unknown offline).
    """
    p = _Parser(project_dir)
    raw, secrets = _split_namespaces(config, set(secret_keys), p)

    region = raw.pop("oci:region", _MISSING)
    if region is _MISSING:
        p.fail("oci:region", _MISSING, "an OCI region identifier such as us-ashburn-1")
        region = "us-ashburn-1"
    elif not isinstance(region, str) or not _REGION.match(region):
        p.fail("oci:region", region, "an OCI region identifier such as us-ashburn-1")
        region = "us-ashburn-1"

    _plain_secrets(p, {k: v for k, v in raw.items() if k != "hfToken"})
    known = [k.key.split(".")[0] for k in KEY_DOCS if not k.key.startswith("oci:")]
    known = list(dict.fromkeys(known))
    for key in list(raw):
        if key not in known:
            p.unknown(key, key, known)
            raw.pop(key)

    tenancy_id = p.ocid(raw.get("tenancyId", _MISSING), "tenancyId", ("tenancy",))
    compartment_id = p.ocid(raw.get("compartmentId", _MISSING), "compartmentId", ("compartment", "tenancy"))
    project_id = p.optional_ocid(raw, "projectId", "", ("datascienceproject",))

    network = _network(p, raw.get("network"))
    logging = _logging(p, raw.get("logging"))
    registry = _registry(p, raw.get("registry"), stack)
    bucket = _bucket(p, raw.get("artifactBucket"), stack)
    budget = _budget(p, raw.get("budget"))
    prices = _prices(p, raw.get("pricing"))
    identity = _identity(p, raw.get("identity"))
    auth = _auth(p, raw.get("auth"))
    tags = _tags(p, raw.get("tags"))
    hf_token = _hf_token(p, raw.get("hfToken"), "hfToken" in secrets)
    hf_token_secret_id = p.optional_ocid(raw, "hfTokenSecretId", "", ("vaultsecret",))
    models = _models(p, raw.get("models", _MISSING), network, hf_token, hf_token_secret_id, stack)

    if p.problems:
        raise SettingsError(p.problems, source)
    return Settings(
        project=PROJECT,
        stack=stack,
        region=region,
        tenancy_id=cast(str, tenancy_id),
        compartment_id=cast(str, compartment_id),
        project_id=project_id,
        network=network,
        logging=logging,
        registry=registry,
        artifact_bucket=bucket,
        budget=budget,
        identity=identity,
        auth=auth,
        tags=tags,
        hf_token=hf_token,
        hf_token_secret_id=hf_token_secret_id,
        models=models,
        prices=prices or DEFAULT_PRICES,
        price_overrides=prices is not None,
    )


def _split_namespaces(
    config: Mapping[str, Any], secret_keys: set[str], p: _Parser
) -> tuple[dict[str, Any], set[str]]:
    """Strip the project namespace; keep `oci:region`; ignore other namespaces (provider settings)."""
    raw: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in config.items():
        if not isinstance(key, str):
            p.fail(str(key), key, "a string key", "not a string key:")
            continue
        namespace, _, name = key.rpartition(":")
        if namespace in ("", PROJECT):
            raw[name] = value
            if key in secret_keys or f"{PROJECT}:{name}" in secret_keys or _is_secure(value):
                secrets.add(name)
        elif key == "oci:region":
            raw[key] = value
        elif difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.8:
            # A misspelt project namespace would otherwise pass for a provider's setting, unread.
            p.problems.append(
                Problem(
                    key,
                    f"unknown namespace {namespace!r}; did you mean '{PROJECT}:{name}'? accepted: this "
                    f"project's keys under {PROJECT}: (other namespaces are left to their providers)",
                )
            )
    return raw, secrets


def _plain_secrets(p: _Parser, value: Any, path: str = "") -> None:
    """Secret material pasted into any plain setting: a problem at its key, the value never shown."""
    if isinstance(value, str):
        kind = secret_kind(value)
        if kind is not None:
            p.problems.append(
                Problem(
                    path,
                    f"holds {kind} in plain text (not shown here); accepted: the Hugging Face token as a "
                    "secret (`pulumi config set --secret hfToken`) or in Vault (hfTokenSecretId)",
                )
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _plain_secrets(p, item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _plain_secrets(p, item, f"{path}[{index}]")


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def _network(p: _Parser, raw: Any) -> NetworkSettings:
    path = "network"
    s = p.section(raw, path, ["vcnCidr", "subnetCidr", "egress", "existingSubnetId"])
    egress = p.choice(s, "egress", path, "nat", EGRESS_MODES)
    existing = p.optional_ocid(s, "existingSubnetId", path, ("subnet",))
    defaults = NetworkSettings()
    vcn = p.string(s, "vcnCidr", path, defaults.vcn_cidr)
    subnet = p.string(s, "subnetCidr", path, defaults.subnet_cidr)
    vcn_net = _cidr(p, vcn, f"{path}.vcnCidr", 16, 30)
    subnet_net = _cidr(p, subnet, f"{path}.subnetCidr", 16, 30)
    if vcn_net and subnet_net and not subnet_net.subnet_of(vcn_net):
        p.fail(f"{path}.subnetCidr", subnet, f"a range inside vcnCidr {vcn}", "outside the VCN:")
    if existing and ("vcnCidr" in s or "subnetCidr" in s):
        p.problems.append(
            Problem(
                f"{path}.existingSubnetId",
                "given together with vcnCidr/subnetCidr; accepted: either an existing "
                "subnet or the ranges of a new VCN, not both",
            )
        )
    if egress == "managed" and not existing and ("vcnCidr" in s or "subnetCidr" in s):
        p.fail(
            f"{path}.egress",
            egress,
            "nat or none to build a VCN from vcnCidr/subnetCidr, or managed without them (the service "
            "brings its own network)",
            "ignores the VCN ranges:",
        )
    if existing and egress == "managed":
        p.fail(
            f"{path}.egress",
            egress,
            "nat or none with existingSubnetId (the subnet's route table decides)",
            "conflicts with existingSubnetId:",
        )
    return NetworkSettings(vcn_cidr=vcn, subnet_cidr=subnet, egress=egress, existing_subnet_id=existing)


def _cidr(p: _Parser, value: str, path: str, lo: int, hi: int) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        p.fail(path, value, f"an IPv4 CIDR block such as 10.0.0.0/16 ({exc})", "bad CIDR")
        return None
    if not lo <= net.prefixlen <= hi:
        p.fail(path, value, f"a prefix length from /{lo} to /{hi}", "prefix out of range:")
        return None
    return net


def _logging(p: _Parser, raw: Any) -> LoggingSettings:
    path = "logging"
    s = p.section(raw, path, ["retentionDays", "existingLogGroupId"])
    days = s.get("retentionDays", 30)
    if days not in LOG_RETENTION_DAYS or isinstance(days, bool):
        p.fail(
            f"{path}.retentionDays",
            days,
            " | ".join(map(str, LOG_RETENTION_DAYS)) + " (days)",
            "not a retention OCI Logging accepts:",
        )
        days = 30
    existing = p.optional_ocid(s, "existingLogGroupId", path, ("loggroup",))
    return LoggingSettings(retention_days=days, existing_log_group_id=existing)


def _registry(p: _Parser, raw: Any, stack: str) -> RegistrySettings:
    path = "registry"
    s = p.section(raw, path, ["repository"])
    repo = p.string(s, "repository", path, f"llm/serving-{stack}")
    if not _REPOSITORY.match(repo):
        p.fail(
            f"{path}.repository",
            repo,
            "lowercase letters, digits, '.', '_', '-' and '/'",
            "bad repository name",
        )
    return RegistrySettings(repository=repo)


def _bucket(p: _Parser, raw: Any, stack: str) -> BucketSettings:
    path = "artifactBucket"
    s = p.section(raw, path, ["name", "kmsKeyId"])
    name = p.string(s, "name", path, f"{PROJECT}-{stack}-artifacts")
    if not _BUCKET.match(name):
        p.fail(f"{path}.name", name, "1-256 letters, digits, '.', '_' or '-'", "bad bucket name")
    return BucketSettings(name=name, kms_key_id=p.optional_ocid(s, "kmsKeyId", path, ("key",)))


def _budget(p: _Parser, raw: Any) -> BudgetSettings:
    path = "budget"
    s = p.section(raw, path, ["monthlyUsd"])
    value = s.get("monthlyUsd")
    if value is None:
        return BudgetSettings()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        p.fail(f"{path}.monthlyUsd", value, "a number of US dollars >= 0")
        return BudgetSettings()
    return BudgetSettings(monthly_usd=float(value))


def _prices(p: _Parser, raw: Any) -> PriceTable | None:
    s = p.section(raw, "pricing", ["shapes", "gpus"])
    if not s:
        return None
    kinds = {
        "shapes": ("shape", known_shape_names(), "USD per hour for the whole shape"),
        "gpus": ("GPU", sorted({shape.gpu for shape in SHAPES.values()}), "USD per GPU-hour"),
    }
    overrides: dict[str, dict[str, float]] = {}
    for key, (kind, names, unit) in kinds.items():
        given = s.get(key)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            p.fail(f"pricing.{key}", given, f"a mapping of {kind} names to {unit}", "not a mapping:")
            continue
        overrides[key] = {}
        for name, price in given.items():
            path = f"pricing.{key}.{name}"
            if name not in names:
                p.fail(path, name, ", ".join(names), f"unknown {kind}")
            elif isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
                p.fail(path, price, f"a number >= 0 ({unit})", "not a number:")
            elif price < 0:
                p.fail(path, price, f"a number >= 0 ({unit})")
            else:
                overrides[key][name] = float(price)
    return with_overrides(DEFAULT_PRICES, overrides) if any(overrides.values()) else None


def _identity(p: _Parser, raw: Any) -> IdentitySettings:
    s = p.section(raw, "identity", ["existingDynamicGroup"])
    group = p.string(s, "existingDynamicGroup", "identity", None)
    if group is not None and not _DYNAMIC_GROUP.match(group):
        # It is written into policy statements as it is: a space or a quote would break (or bend) them.
        p.fail(
            "identity.existingDynamicGroup",
            group,
            "a dynamic group name of letters, digits, '.', '_', '-', '+' and '@', or <domain>/<name>",
            "bad dynamic group name",
        )
        group = None
    return IdentitySettings(existing_dynamic_group=group)


def _auth(p: _Parser, raw: Any) -> AuthSettings:
    path = "auth"
    s = p.section(raw, path, ["mode", "profile", "configFile"])
    d = AuthSettings()
    return AuthSettings(
        mode=p.choice(s, "mode", path, d.mode, AUTH_MODES),
        profile=p.string(s, "profile", path, d.profile),
        config_file=p.string(s, "configFile", path, d.config_file),
    )


def _tags(p: _Parser, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        p.fail("tags", raw, "a mapping of tag names to string values", "not a mapping:")
        return {}
    tags: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _TAG_KEY.match(key):
            p.fail(
                f"tags.{key}", key, "a tag name of 1-100 characters without spaces or periods", "bad tag name"
            )
        elif isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > 256:
            p.fail(f"tags.{key}", value, "a string of at most 256 characters")
        else:
            tags[key] = str(value)
    return tags


def _hf_token(p: _Parser, raw: Any, is_secret: bool) -> Secret | None:
    if raw is None:
        return None
    if _is_secure(raw):
        return Secret(SECRET_PLACEHOLDER, known=False)
    if not is_secret:
        p.problems.append(
            Problem(
                "hfToken",
                "is stored in plain text; accepted: a secret, set with "
                "`pulumi config set --secret hfToken` (the value is not shown here)",
            )
        )
        return None
    if not isinstance(raw, str) or not raw.strip():
        p.problems.append(
            Problem("hfToken", "is empty or not a string; accepted: a Hugging Face access token")
        )
        return None
    return Secret(raw.strip())


# ---------------------------------------------------------------------------------------------------------
# Models

_MODEL_KEYS = ["source", "parameters", "serving", "compute", "readiness"]


def _models(
    p: _Parser,
    raw: Any,
    network: NetworkSettings,
    hf_token: Secret | None,
    hf_token_secret_id: str | None,
    stack: str,
) -> tuple[ModelSettings, ...]:
    if raw is _MISSING or raw is None or (isinstance(raw, Mapping) and not raw):
        p.fail(
            "models",
            _MISSING if raw is _MISSING else raw,
            "at least one model: models.<name>: {source, serving, compute}",
        )
        return ()
    if not isinstance(raw, Mapping):
        p.fail("models", raw, "a mapping of model names to model settings", "not a mapping:")
        return ()
    models = []
    for name, body in raw.items():
        path = f"models.{name}"
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            p.fail(
                path,
                name,
                "2-32 characters of a-z, 0-9 and '-', starting with a letter, not ending in '-' "
                "(it becomes part of resource names)",
                "bad model name",
            )
            continue
        model = _model(p, name, body, network, hf_token, hf_token_secret_id, stack)
        if model is not None:
            models.append(model)
    return tuple(models)


def _model(
    p: _Parser,
    name: str,
    body: Any,
    network: NetworkSettings,
    hf_token: Secret | None,
    hf_token_secret_id: str | None,
    stack: str,
) -> ModelSettings | None:
    path = f"models.{name}"
    before = len(p.problems)
    s = p.section(body, path, _MODEL_KEYS)
    for required in ("source", "serving", "compute"):
        if s.get(required) is None:  # absent, or a key left empty (`compute:` with nothing under it)
            p.fail(
                f"{path}.{required}", _MISSING, f"a mapping (see the README's settings table for {required})"
            )
    source = _source(p, s.get("source"), f"{path}.source")
    compute = _compute(p, s.get("compute"), f"{path}.compute")
    gpu_count = SHAPES[compute.shape].gpu_count if compute and compute.shape in SHAPES else 1
    serving = _serving(p, s.get("serving"), f"{path}.serving", gpu_count)
    readiness = _readiness(p, s.get("readiness"), f"{path}.readiness")
    parameters_b = _parameters(p, s.get("parameters"), f"{path}.parameters", source)

    if source and source.method == "online":
        if network.egress == "none" and network.existing_subnet_id is None:
            p.fail(
                "network.egress",
                "none",
                f"nat or managed: model {name!r} is pulled from Hugging Face and needs internet egress",
                "blocks online model:",
            )
        gated = source.huggingface and source.huggingface.split("/")[0] in GATED_HF_ORGS
        if gated and hf_token is None and hf_token_secret_id is None:
            p.problems.append(
                Problem(
                    f"{path}.source.huggingface",
                    f"{source.huggingface!r} is a gated model; "
                    "accepted: set hfToken (`pulumi config set --secret hfToken`) or hfTokenSecretId",
                )
            )
    if source and source.fine_tune and len(p.problems) == before:
        _fine_tune_checks(
            p,
            f"{path}.source.fineTune",
            stack,
            name,
            source.fine_tune,
            parameters_b,
            network,
            hf_token_secret_id,
        )
    if serving and source and compute and len(p.problems) == before:
        spec = ModelSettings(
            name=name,
            source=source,
            parameters_b=parameters_b,
            serving=serving,
            compute=compute,
            readiness=readiness,
        ).container_spec(hf_token_secret_id, token_in_artifact=hf_token is not None)
        for message in env_problems(container_env(spec)):
            p.problems.append(
                Problem(
                    f"{path}.serving.params",
                    f"{message} (params is {len(serving.params)} characters); accepted: shorter params",
                )
            )
    if len(p.problems) != before or not (source and serving and compute):
        return None
    return ModelSettings(
        name=name,
        source=source,
        parameters_b=parameters_b,
        serving=serving,
        compute=compute,
        readiness=readiness,
    )


def _source(p: _Parser, raw: Any, path: str) -> SourceSettings | None:
    s = p.section(raw, path, [*SOURCE_KINDS])
    given = [k for k in SOURCE_KINDS if k in s]
    if raw is not None and len(given) != 1:
        p.problems.append(
            Problem(
                path,
                f"{'has ' + ' and '.join(given) if given else 'names no source'}; "
                f"accepted: exactly one of {', '.join(SOURCE_KINDS)}",
            )
        )
        return None
    if not given:
        return None
    kind = given[0]
    value = s[kind]
    full = f"{path}.{kind}"
    if kind == "fineTune":
        fine_tune = _fine_tune(p, value, full)
        return SourceSettings(kind=kind, fine_tune=fine_tune) if fine_tune else None
    if not isinstance(value, str) or not value.strip():
        p.fail(full, value, "a non-empty string", "not a string:")
        return None
    if kind == "localPath":
        folder = Path(value).expanduser()
        folder = folder if folder.is_absolute() else (p.project_dir / folder)
        if not folder.is_dir():
            p.fail(
                full, value, f"an existing model folder (looked for {folder.resolve()})", "no such folder:"
            )
            return None
        return SourceSettings(kind=kind, local_path=folder.resolve())
    if kind == "objectStorage":
        match = _OS_URI.match(value)
        if not match or match.group("object").endswith("/"):
            p.fail(full, value, "oci://<bucket>@<namespace>/<object>.zip (one zip object)", "bad URI")
            return None
        return SourceSettings(
            kind=kind,
            object_storage=ObjectStorageUri(
                bucket=match.group("bucket"),
                namespace=match.group("namespace"),
                object_name=match.group("object"),
            ),
        )
    if not _HF_ID.match(value):
        p.fail(
            full, value, "a Hugging Face model id <org>/<model>, e.g. meta-llama/Llama-2-7b-chat-hf", "bad id"
        )
        return None
    return SourceSettings(kind=kind, huggingface=value)


_FINE_TUNE_ARGS = {
    # settings key -> the training entrypoint's argument it becomes (domain.training_args.FineTuneArgs)
    "baseModel": "base_model",
    "dataset": "dataset",
    "output": "output",
    "method": "method",
    "save": "save",
    "epochs": "epochs",
    "learningRate": "learning_rate",
    "maxSeqLen": "max_seq_len",
    "batchSize": "batch_size",
    "gradAccum": "grad_accum",
    "loraR": "lora_r",
    "loraAlpha": "lora_alpha",
    "maxSteps": "max_steps",
    "gradientCheckpointing": "gradient_checkpointing",
}
_FINE_TUNE_KEYS = [*_FINE_TUNE_ARGS, "shape", "replicas", "image", "timeoutMinutes"]
_FINE_TUNE_NUMBERS = ("epochs", "learningRate")
_FINE_TUNE_INTEGERS = ("maxSeqLen", "batchSize", "gradAccum", "loraR", "loraAlpha", "maxSteps")
_CPU_SHAPE = re.compile(r"^(VM|BM)\.(Standard|Optimized|DenseIO)", re.IGNORECASE)
TRAINING_URI_FORM = "oci://<bucket>@<namespace>/<prefix>"


def _fine_tune(p: _Parser, raw: Any, path: str) -> FineTuneSettings | None:
    """The keys of `source.fineTune`; the numbers are checked by the training entrypoint's own rules."""
    from domain.training_args import checked

    if not isinstance(raw, Mapping):
        p.fail(path, raw, f"a mapping with keys {', '.join(_FINE_TUNE_KEYS)}", "not a mapping:")
        return None
    s = p.section(raw, path, _FINE_TUNE_KEYS)
    before = len(p.problems)
    locations: dict[str, str] = {}
    wanted = {
        "baseModel": f"a Hugging Face model id <org>/<model> or a model folder {TRAINING_URI_FORM}",
        "dataset": f"{TRAINING_URI_FORM} (JSONL files the job reads)",
        "output": f"{TRAINING_URI_FORM} (where the job writes the model)",
    }
    for key, accepted in wanted.items():
        value = s.get(key, _MISSING)
        if value is _MISSING or value is None:
            p.fail(f"{path}.{key}", _MISSING, accepted)
            continue
        if not isinstance(value, str) or not value.strip():
            p.fail(f"{path}.{key}", value, accepted, "not a string:")
            continue
        if key == "baseModel" and not value.startswith("oci://"):
            if _HF_ID.match(value):
                locations[key] = value
            else:
                p.fail(f"{path}.{key}", value, accepted, "bad id")
            continue
        try:
            uri = parse_object_uri(value)
        except InvalidId:
            p.fail(f"{path}.{key}", value, accepted, "bad URI")
            continue
        if not _BUCKET.match(uri.bucket):
            p.fail(f"{path}.{key}", value, accepted, "bad bucket name in")
            continue
        locations[key] = f"oci://{uri.bucket}@{uri.namespace}/{uri.prefix}".rstrip("/")
    method = p.choice(s, "method", path, "lora", sizing.FINE_TUNE_METHODS)
    save = s.get("save", "merged")
    if save == "adapter":
        p.problems.append(
            Problem(
                f"{path}.save",
                "'adapter' cannot be deployed: the deployment serves its artifact as a whole model, and an "
                "adapter needs its base weights beside it; accepted: merged (the default; the adapter is "
                "folded into the weights)",
            )
        )
    elif save != "merged":
        p.fail(f"{path}.save", save, "merged", "unknown value")
    values: dict[str, Any] = {}
    for key in _FINE_TUNE_NUMBERS:
        if key in s:
            value = s[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                p.fail(f"{path}.{key}", value, "a number", "not a number:")
            else:
                values[_FINE_TUNE_ARGS[key]] = value
    for key in _FINE_TUNE_INTEGERS:
        if key in s and s[key] is not None:
            value = s[key]
            if isinstance(value, bool) or not isinstance(value, int):
                p.fail(f"{path}.{key}", value, "a whole number", "not an integer:")
            else:
                values[_FINE_TUNE_ARGS[key]] = value
    checkpointing = s.get("gradientCheckpointing", True)
    if not isinstance(checkpointing, bool):
        p.fail(f"{path}.gradientCheckpointing", checkpointing, "true | false", "not a boolean:")
        checkpointing = True
    # The entrypoint's own checks (ranges), worded with this file's key names.
    args, findings = checked(
        base_model=locations.get("baseModel", "placeholder/model"),
        dataset=locations.get("dataset", "oci://placeholder@placeholder/data"),
        output=locations.get("output", "oci://placeholder@placeholder/out"),
        method=method,
        gradient_checkpointing=checkpointing,
        **values,
    )
    keys = {arg: key for key, arg in _FINE_TUNE_ARGS.items()}
    for finding in findings:
        where = f"{path}.{keys[finding.field]}"
        if finding.accepted is not None:
            p.fail(where, finding.value, finding.accepted)
        else:
            p.problems.append(Problem(where, f"invalid value {_show(finding.value)}; {finding.reason}"))

    shape = s.get("shape", _MISSING)
    if shape is _MISSING or shape is None:
        p.fail(f"{path}.shape", _MISSING, "a GPU shape for the training job, e.g. VM.GPU.A10.1")
    elif not isinstance(shape, str):
        p.fail(f"{path}.shape", shape, "a GPU shape name", "not a string:")
    elif _CPU_SHAPE.match(shape):
        p.fail(
            f"{path}.shape",
            shape,
            "a GPU shape (the job trains on GPUs; qlora needs CUDA): " + ", ".join(known_shape_names()),
            "not a GPU shape:",
        )
    else:
        _known_shape(p, f"{path}.shape", shape)
    replicas = p.integer(s, "replicas", path, 1, 1, None)
    if replicas > 1:
        p.fail(
            f"{path}.replicas",
            replicas,
            "1 (multi-node training is not supported yet; a shape with more GPUs runs one process per GPU)",
            "more than one node:",
        )
    image = s.get("image", _MISSING)
    if image is _MISSING or image is None:
        p.fail(f"{path}.image", _MISSING, f"the training image, {IMAGE_EXAMPLE}")
    elif not isinstance(image, str):
        p.fail(f"{path}.image", image, f"the training image, {IMAGE_EXAMPLE}", "not a string:")
    else:
        _ocir_image(p, f"{path}.image", image)
    timeout = p.integer(s, "timeoutMinutes", path, 12 * 60, 1, MAX_TRAINING_MINUTES)
    if len(p.problems) != before:
        return None
    return FineTuneSettings(
        base_model=args.base_model,
        dataset=args.dataset,
        output=args.output,
        shape=str(shape),
        image=str(image),
        method=args.method,
        epochs=float(args.epochs),
        learning_rate=float(args.learning_rate),
        max_seq_len=args.max_seq_len,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        max_steps=args.max_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        replicas=replicas,
        timeout_minutes=timeout,
    )


def _fine_tune_checks(
    p: _Parser,
    path: str,
    stack: str,
    name: str,
    fine_tune: FineTuneSettings,
    parameters_b: float | None,
    network: NetworkSettings,
    hf_token_secret_id: str | None,
) -> None:
    """What the job needs from the rest of the stack: egress, a token it can read, a shape that fits."""
    base = fine_tune.base_model
    if fine_tune.base_model_is_hub_id:
        if network.egress == "none" and network.existing_subnet_id is None:
            p.fail(
                "network.egress",
                "none",
                f"nat or managed: model {name!r} fine-tunes {base} downloaded from Hugging Face, and the "
                "job needs internet egress for it",
                "blocks fine-tuning:",
            )
        if base.split("/")[0] in GATED_HF_ORGS and hf_token_secret_id is None:
            p.problems.append(
                Problem(
                    f"{path}.baseModel",
                    f"{base!r} is a gated model, and the training job reads the token only from Vault; "
                    "accepted: set hfTokenSecretId (a Vault secret holding the token), or a copy of the "
                    "model in Object Storage (oci://<bucket>@<namespace>/<prefix>)",
                )
            )
    command = fine_tune.command(stack, name, hf_token_secret_id)
    length = len(" ".join(command).encode())
    if length >= MAX_COMMAND_BYTES:
        p.problems.append(
            Problem(
                path,
                f"the job's command takes {length} bytes; OCI accepts under {MAX_COMMAND_BYTES}; accepted: "
                "shorter baseModel, dataset and output addresses",
            )
        )
    if parameters_b is None:
        return
    fit = training_fit(fine_tune, parameters_b)
    if fit.fits:
        return
    advice = ["a smaller batchSize or maxSeqLen"]
    if not fine_tune.gradient_checkpointing:
        advice.insert(0, "gradientCheckpointing: true")
    if fine_tune.method != "qlora":
        advice.insert(0, "method qlora")
    roomy = [
        shape
        for shape in sorted(SHAPES, key=lambda n: (DEFAULT_PRICES.shape_hourly_usd(n), n))
        if training_fit(fine_tune, parameters_b, shape=shape).fits
    ]
    bigger = f"a shape with more memory per GPU ({', '.join(roomy[:3])})" if roomy else "a smaller model"
    advice.append(bigger)
    p.problems.append(
        Problem(
            f"{path}.shape",
            f"too small for {fine_tune.method} of a {parameters_b:g}B model: {fine_tune.shape!r} needs "
            f"{fit.breakdown()} (torchrun runs one process per GPU, each with the whole model); "
            f"accepted: {', or '.join(advice)}",
        )
    )


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


def _parameters(p: _Parser, raw: Any, path: str, source: SourceSettings | None) -> float | None:
    accepted = "a size such as 7B, 13B, 350M, or a number (billions below 10000, else a count)"
    if raw is not None:
        value: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
            value = float(raw) if raw < 10_000 else (float(raw) / 1e9 if raw >= 1e6 else None)
        elif isinstance(raw, str) and (match := _PARAMETERS.match(raw)):
            number, unit = float(match.group(1)), match.group(2).lower()
            value = number / 1000 if unit == "m" else number
            value = value if value > 0 else None
        if value is None:
            p.fail(path, raw, accepted)
        return value
    if source is None:
        return None
    inferred = sizing.infer_parameters_b(local_path=source.local_path, model_id=source.model_id)
    if inferred is None:
        p.problems.append(
            Problem(
                path, f"missing, and the size cannot be read from {source.describe()}; accepted: {accepted}"
            )
        )
    return inferred


def _serving(p: _Parser, raw: Any, path: str, gpu_count: int) -> ServingSettings | None:
    s = p.section(
        raw, path, ["engine", "image", "params", "tensorParallelism", "quantization", "port", "maxModelLen"]
    )
    if raw is None:
        return None
    engine: Engine = p.choice(s, "engine", path, "vllm", ENGINES)
    image = p.string(s, "image", path)
    if isinstance(image, str):
        _ocir_image(p, f"{path}.image", image)
    params = p.string(s, "params", path, "")
    tp = p.integer(s, "tensorParallelism", path, gpu_count, 1, None)
    if tp > gpu_count:
        p.fail(
            f"{path}.tensorParallelism",
            tp,
            f"1 to {gpu_count} (the shape's GPU count)",
            "more GPUs than the shape has:",
        )
        tp = gpu_count
    quantization = p.choice(s, "quantization", path, "none", QUANTIZATIONS)
    if quantization not in ENGINE_QUANTIZATIONS[engine]:
        p.fail(
            f"{path}.quantization",
            quantization,
            f"with {engine}: {' | '.join(ENGINE_QUANTIZATIONS[engine])}",
            "not served by this engine:",
        )
    port = p.integer(s, "port", path, DEFAULT_PORT, 1024, 65535)
    if port in RESERVED_PORTS:
        p.fail(
            f"{path}.port",
            port,
            "1024-65535 except 8446, 8447 and 24224 (used by the service)",
            "reserved port",
        )
    max_len = p.integer(s, "maxModelLen", path, 4096, 128, 1_048_576)
    return ServingSettings(
        engine=engine,
        image=image if isinstance(image, str) else "",
        params=params,
        tensor_parallelism=tp,
        quantization=quantization,
        port=port,
        max_model_len=max_len,
    )


def _known_shape(p: _Parser, path: str, shape: str) -> bool:
    if shape in SHAPES:
        return True
    near = difflib.get_close_matches(shape, known_shape_names(), n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    p.fail(path, shape, ", ".join(known_shape_names()) + hint, "unknown shape")
    return False


def _ocir_image(p: _Parser, path: str, image: str) -> None:
    match = _IMAGE.match(image)
    if not match or not match.group("tag"):
        # OCI takes `<repo>:<tag>` or `<repo>:<tag>@sha256:...` for a deployment's or a job's image.
        p.fail(path, image, IMAGE_EXAMPLE + " (OCI needs the tag; the digest pins it)", "bad image reference")
    elif not _OCIR_HOST.match(match.group("host").split(":")[0]):
        p.fail(path, image, f"an image in OCI Container Registry: {IMAGE_EXAMPLE}", "not an OCIR image:")


def _compute(p: _Parser, raw: Any, path: str) -> ComputeSettings | None:
    s = p.section(raw, path, ["shape", "replicas", "bandwidthMbps", "autoscaling"])
    if raw is None:
        return None
    shape = p.string(s, "shape", path)
    if isinstance(shape, str):
        _known_shape(p, f"{path}.shape", shape)
    replicas = p.integer(s, "replicas", path, 1, 1, None)
    bandwidth = p.integer(s, "bandwidthMbps", path, 10, *BANDWIDTH_MBPS)
    autoscaling = _autoscaling(p, s.get("autoscaling"), f"{path}.autoscaling", replicas)
    return ComputeSettings(
        shape=shape if isinstance(shape, str) else "",
        replicas=replicas,
        bandwidth_mbps=bandwidth,
        autoscaling=autoscaling,
    )


def _autoscaling(p: _Parser, raw: Any, path: str, replicas: int) -> AutoscalingSettings | None:
    keys = [
        "minReplicas",
        "maxReplicas",
        "metric",
        "scaleOutThreshold",
        "scaleInThreshold",
        "cooldownSeconds",
    ]
    s = p.section(raw, path, keys)
    if raw is None:
        return None
    if "maxReplicas" not in s:
        p.fail(f"{path}.maxReplicas", _MISSING, "an integer >= minReplicas")
    low = p.integer(s, "minReplicas", path, 1, 1, None)
    high = p.integer(s, "maxReplicas", path, max(low, replicas), 1, None)
    if high < low:
        p.fail(f"{path}.maxReplicas", high, f"an integer >= minReplicas ({low})", "below minReplicas:")
    if not low <= replicas <= max(high, low):
        p.fail(
            f"{path.rsplit('.', 1)[0]}.replicas",
            replicas,
            f"{low} to {high} (the initial count, within the autoscaling range)",
            "outside the autoscaling range:",
        )
    metric = p.choice(s, "metric", path, "cpu", ("cpu", "memory"))
    out = p.integer(s, "scaleOutThreshold", path, 80, 1, 100)
    inn = p.integer(s, "scaleInThreshold", path, 20, 1, 100)
    if inn >= out:
        p.fail(
            f"{path}.scaleInThreshold",
            inn,
            f"a percentage below scaleOutThreshold ({out})",
            "not below scale-out:",
        )
    cooldown = p.integer(s, "cooldownSeconds", path, 600, 300, 3600)
    return AutoscalingSettings(
        min_replicas=low,
        max_replicas=high,
        metric=cast(Literal["cpu", "memory"], metric),
        scale_out_threshold=out,
        scale_in_threshold=inn,
        cooldown_seconds=cooldown,
    )


def _readiness(p: _Parser, raw: Any, path: str) -> ReadinessSettings:
    s = p.section(raw, path, ["timeoutMinutes", "smokePrompt"])
    d = ReadinessSettings()
    timeout = p.integer(s, "timeoutMinutes", path, d.timeout_minutes, 1, MAX_TIMEOUT_MINUTES)
    prompt = p.string(s, "smokePrompt", path, d.smoke_prompt)
    if not prompt.strip():
        p.fail(f"{path}.smokePrompt", prompt, "a non-empty prompt", "empty:")
    return ReadinessSettings(timeout_minutes=timeout, smoke_prompt=prompt)


# ---------------------------------------------------------------------------------------------------------
# Stack files


@dataclass(frozen=True)
class StackFile:
    path: Path
    stack: str
    config: dict[str, Any]


def read_stack_file(path: Path, stack: str | None = None) -> StackFile:
    """Read `Pulumi.<stack>.yaml`; YAML errors become a SettingsError naming the file and line."""
    name = stack or _stack_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError([Problem(str(path), f"cannot be read: {exc.strerror or exc}")]) from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise SettingsError(
            [
                Problem(
                    f"{path}:{mark.line + 1 if mark else '?'}",
                    f"YAML syntax error at {line}: {exc.problem or exc}",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        raise SettingsError([Problem(str(path), f"YAML error: {exc}")]) from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise SettingsError(
            [Problem(str(path), "is not a mapping; accepted: a Pulumi stack file with `config:`")]
        )
    config = doc.get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError([Problem(f"{path}: config", "is not a mapping of keys to values")])
    return StackFile(path=path, stack=name, config=dict(config))


def _stack_name(path: Path) -> str:
    name = path.name
    if name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")):
        return name[len("Pulumi.") :].rsplit(".", 1)[0]
    return path.stem


def config_as_strings(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The stack file's config in the form the Pulumi runtime holds it: namespaced keys, JSON-ish strings.

    Secure values become a placeholder; their keys are returned as secret keys.
    """
    import json

    out: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if _is_secure(value):
            out[full] = SECRET_PLACEHOLDER
            secret_keys.append(full)
        elif isinstance(value, str):
            out[full] = value
        else:
            out[full] = json.dumps(value)
    return out, secret_keys


def settings_table() -> str:
    """The README's settings table, made from `KEY_DOCS` (a test keeps the two equal)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{d.key}` | {d.type} | {d.default} | {d.meaning} |" for d in KEY_DOCS]
    return "\n".join(rows)
