"""Typed, validated stack settings: the one place where configuration is read and checked.

`load_settings` turns a stack's `config:` mapping (from `stacks/Pulumi.<stack>.yaml`, or from the Pulumi
engine at run time) into frozen pydantic models. Each default and description is written once, here; the
README's settings table and the stack file's JSON Schema are made from these models (`docs.py`). Every
problem is collected and raised together as one `SettingsError` (`errors.py`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
)
from pydantic import model_validator as check
from pydantic.alias_generators import to_camel

from domain import fine_tune_rules as rules
from domain import sizing, stack_rules
from domain.container_env import DEFAULT_PORT, Method
from domain.context import PROJECT
from domain.errors import Accepts, Found, Problem, Refused, SettingsError
from domain.ids import BUCKET_NAME, IMAGE_EXAMPLE, REPOSITORY_NAME, Engine, SigningAuthMode
from domain.oci_rules import ProfileTenancy, tenancy_from_profile
from domain.pricing import DEFAULT_PRICES, PriceTable, with_overrides
from domain.secrets import is_secure, plain_secrets
from domain.service_container import DEFAULT_SERVICE_CONTAINER, parse_service_container
from domain.settings import fields as t
from domain.settings.problems import problems_of
from domain.shapes import SHAPES

MAX_TRAINING_MINUTES = 7 * 24 * 60
MAX_NODES = rules.MAX_NODES
URI_FORM = "oci://<bucket>@<namespace>/<prefix>"
CONFIG_FILE_MODES = ("api_key", "security_token")  # the auth modes that read the OCI config file


def key(default: Any, description: str, **more: Any) -> Any:
    """A settings key: its default (`...`: required) and what it means, written once."""
    return Field(default, description=description, **more)


def _refuse(found: Found) -> None:
    if found:
        raise Refused(*found)


def rules_of(*checks: Callable[[Any], Found]) -> Any:
    """A section's after-validator: the section as parsed, or every problem `checks` find in it."""

    def validate(self: Any) -> Any:
        _refuse([problem for rule in checks for problem in rule(self)])
        return self

    return check(mode="after")(validate)


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, strict=True)


class NetworkSettings(Section):
    vcn_cidr: t.Cidr = key("10.0.0.0/16", "VCN address range (/16 to /30)")
    subnet_cidr: t.SubnetCidr = key(
        "10.0.1.0/24", "private subnet, inside `vcnCidr`; /24 or larger (deployments need 127 free addresses)"
    )
    egress: Literal["nat", "managed", "none"] = key(
        "nat",
        "`nat`: own VCN, NAT + service gateway; `managed`: service-managed networking with internet; `none`: "
        "own VCN, service gateway only (offline models only)",
    )
    existing_subnet_id: Annotated[str, t.ocid("subnet")] | None = key(
        None, "use this subnet; no network resources are created"
    )
    subnet_compartment_id: Annotated[str, t.ocid("compartment", "tenancy")] | None = key(
        None,
        "compartment of `existingSubnetId` (none: `compartmentId`); the Data Science service is granted the"
        " network there",
    )

    @property
    def creates_vcn(self) -> bool:
        return self.existing_subnet_id is None and self.egress != "managed"

    _rules = rules_of(stack_rules.network_problems)


class LoggingSettings(Section):
    retention_days: Annotated[int, t.Check(t._retention, {"enum": list(t.RETENTION_DAYS)})] = key(
        30, "retention of the predict and access logs"
    )
    existing_log_group_id: Annotated[str, t.ocid("loggroup")] | None = key(
        None, "put the logs in this log group instead of a new one"
    )


def _for_stack(model: Any, name: str, rule: t.Check, info: ValidationInfo) -> Any:
    """The section with `<stack>` in its default name filled in, and the name checked."""
    try:
        value = rule.check(getattr(model, name).replace("<stack>", (info.context or {})["stack"]))
    except Refused as exc:
        raise Refused(*(((to_camel(name), *at), message) for at, message in exc.items)) from None
    return model.model_copy(update={name: value})


class RegistrySettings(Section):
    repository: str = key(
        "llm/serving-<stack>", "private OCIR repository for the serving images (one per region)"
    )

    @check(mode="after")
    def _named(self, info: ValidationInfo) -> RegistrySettings:
        rule = t.matching(
            REPOSITORY_NAME, "bad repository name", "lowercase letters, digits, '.', '_', '-' and '/'"
        )
        return _for_stack(self, "repository", rule, info)  # type: ignore[no-any-return]


_BUCKET_RULE = t.matching(BUCKET_NAME, "bad bucket name", "1-256 letters, digits, '.', '_' or '-'")


class BucketSettings(Section):
    name: str = key(f"{PROJECT}-<stack>-artifacts", "private, versioned bucket for model zips")
    kms_key_id: Annotated[str, t.ocid("key")] | None = key(
        None, "customer-managed Vault key for the bucket (none: Oracle-managed)"
    )
    kms_key_compartment_id: Annotated[str, t.ocid("compartment", "tenancy")] | None = key(
        None, "compartment of the Vault key (none: `compartmentId`); Object Storage is granted the key there"
    )
    previous_versions_days: int = key(
        30, "days a replaced object's previous version is kept (lifecycle rule)", ge=1, le=3650
    )
    incomplete_uploads_days: int = key(
        7, "days an uncommitted multipart upload is kept before it is aborted (lifecycle rule)", ge=1, le=365
    )

    @check(mode="after")
    def _named(self, info: ValidationInfo) -> BucketSettings:
        return _for_stack(self, "name", _BUCKET_RULE, info)  # type: ignore[no-any-return]


class BudgetSettings(Section):
    monthly_usd: Annotated[float, Accepts("a number of US dollars >= 0")] | None = key(
        None, "monthly budget the `monthly-budget` policy checks", ge=0, allow_inf_nan=False
    )


_GROUP = re.compile(r"^(?:[A-Za-z0-9._+@-]{1,100}/)?[A-Za-z0-9._+@-]{1,100}$")
_GROUP_RULE = t.matching(
    _GROUP,
    "bad dynamic group name",
    "a dynamic group name of letters, digits, '.', '_', '-', '+' and '@', or <domain>/<name>",
)


class IdentitySettings(Section):
    # Written into policy statements as it is: a space or a quote would break (or bend) them.
    existing_dynamic_group: Annotated[str, _GROUP_RULE] | None = key(
        None, "use this dynamic group (no tenancy-level rights needed); else one is created"
    )


class AuthSettings(Section):
    """How the project's own providers (artifact upload, catalog, readiness) sign OCI calls."""

    mode: SigningAuthMode = key("api_key", "how the project's own providers sign OCI calls")
    profile: str = key("DEFAULT", "profile in the OCI config file")
    config_file: str = key("~/.oci/config", "OCI config file")


_GPUS = Literal[tuple(sorted({shape.gpu for shape in SHAPES.values()}))]  # type: ignore[valid-type]
_PRICE = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PricingSettings(Section):
    shapes: Annotated[
        dict[t.PricedShape, Annotated[_PRICE, Accepts("a number >= 0 (USD per hour for the whole shape)")]],
        Accepts("a mapping of shape names to USD per hour for the whole shape"),
    ] = key({}, "USD per hour for a whole shape, e.g. `{VM.GPU.A10.1: 1.6}` (negotiated rates)")
    gpus: Annotated[
        dict[_GPUS, Annotated[_PRICE, Accepts("a number >= 0 (USD per GPU-hour)")]],  # type: ignore[valid-type]
        Accepts("a mapping of GPU names to USD per GPU-hour"),
    ] = key({}, "USD per GPU-hour by GPU, e.g. `{A10: 1.6}`")


class FineTuneSettings(Section):
    """A model made by fine-tuning `base_model` on `dataset` in a Data Science job, then deployed offline.

    The job writes merged weights as one stored zip, `<output>/<run folder>/model.zip`; the run folder is
    named from the stack, the model and a digest of everything that shapes the weights, so a changed setting
    trains into a new folder and never over the model a deployment was made from. The numbers are checked by
    the training entrypoint's own rules.
    """

    base_model: Annotated[
        str,
        t.location(
            f"a Hugging Face model id <org>/<model> or a model folder {URI_FORM}", hub=True, stack_model=True
        ),
    ] = key(
        ...,
        "the model to fine-tune: a Hugging Face id (gated ones need hfTokenSecretId) or a folder in a "
        "bucket; with `save: adapter`, a model of this stack (the adapter is served on its deployment)",
    )
    dataset: Annotated[str, t.location(f"{URI_FORM} (JSONL files the job reads)")] = key(
        ..., "JSONL records `{prompt, completion}` or `{text}` (every `*.jsonl` under the prefix)"
    )
    output: Annotated[str, t.location(f"{URI_FORM} (where the job writes the model)")] = key(
        ..., "where the job writes `<run folder>/model.zip` (merged weights) and `finetune.json`"
    )
    method: Literal["lora", "qlora", "full"] = key("lora", "what is trained")
    save: Literal["merged", "adapter"] = key(
        "merged",
        "`merged`: LoRA folded into the weights, a deployment of its own; `adapter`: kept as an adapter and "
        "served on the deployment of `baseModel`, a model of this stack, with its other adapters",
    )
    epochs: t.Number = key(3.0, "passes over the dataset")
    learning_rate: t.Number = key(2e-4, "peak learning rate")
    max_seq_len: int = key(2048, "tokens per record (longer are cut)")
    batch_size: int = key(4, "records per GPU and step")
    grad_accum: int = key(1, "steps accumulated per update")
    lora_r: int = key(16, "adapter rank (LoRA, QLoRA)")
    lora_alpha: int = key(32, "adapter scale (LoRA, QLoRA)")
    max_steps: int | None = key(None, "stop after this many updates")
    gradient_checkpointing: bool = key(
        True, "recompute activations: far less GPU memory, about a third more time"
    )
    shape: t.TrainingShape = key(
        ..., "GPU shape of the job; every GPU must hold the whole run (see docs/finetune.md)"
    )
    nodes: int = key(
        1,
        "nodes of the job; more than 1: a multi-node job on the stack's subnet, torchrun across the nodes",
        ge=1,
        le=MAX_NODES,
    )
    sharding: Literal["auto", "ddp", "fsdp"] = key(
        "auto",
        "`ddp`: every GPU holds the whole run; `fsdp`: weights and optimizer state split over every GPU of "
        "every node; `auto`: ddp when it fits a GPU, else fsdp",
    )
    image: Annotated[t.Image, Accepts(f"the training image, {IMAGE_EXAMPLE}")] | None = key(
        None,
        "training image with `training/` and the train extra; none: a service conda environment with the "
        "entrypoint as the job artifact (see docs/finetune.md)",
    )
    timeout_minutes: int = key(
        12 * 60,
        "the job's maximum runtime; `up` waits for it (and an hour to start)",
        ge=1,
        le=MAX_TRAINING_MINUTES,
    )

    _rules = rules_of(rules.entrypoint_problems)

    @property
    def base_is_stack_model(self) -> bool:
        """`baseModel` names a model of this stack (an adapter's base), not weights of its own."""
        return bool(t.MODEL_NAME.match(self.base_model))

    @property
    def base_model_is_hub_id(self) -> bool:
        return not self.base_model.startswith("oci://")

    @property
    def base_model_name(self) -> str:
        """The name a size or architecture can be read from: the hub id, or the prefix's last part."""
        return self.base_model if self.base_model_is_hub_id else self.base_model.rsplit("/", 1)[-1]


@dataclass(frozen=True, kw_only=True)
class AdapterSettings:
    """A fine-tune kept as a LoRA adapter, served on its base model's deployment under its own name."""

    name: str
    base: str  # the stack's model it is trained from and served on
    fine_tune: FineTuneSettings  # baseModel resolved to the base's Hugging Face id
    parameters_b: float


SOURCE_KINDS = ("localPath", "objectStorage", "huggingface", "fineTune")


class SourceSettings(Section):
    local_path: t.LocalPath | None = key(
        None,
        "offline: a model folder, uploaded as objects (by reference) or as a zip (`artifact.mode: copy`)",
    )
    object_storage: t.ModelUri | None = key(
        None,
        "offline: a prefix holding a model folder (`.../prefix/`, by reference) or a stored zip (copied)",
    )
    huggingface: t.HfId | None = key(None, "online: pulled from Hugging Face inside the container")
    fine_tune: FineTuneSettings | None = key(
        None, "offline: fine-tuned in a Data Science job (docs/finetune.md)"
    )

    @check(mode="before")
    @classmethod
    def _exactly_one(cls, raw: Any) -> Any:
        given = [kind for kind in SOURCE_KINDS if isinstance(raw, Mapping) and kind in raw]
        if isinstance(raw, Mapping) and len(given) != 1:
            which = f"has {' and '.join(given)}" if given else "names no source"
            raise Refused(((), f"{which}; accepted: exactly one of {', '.join(SOURCE_KINDS)}"))
        return raw

    @property
    def kind(self) -> str:
        return next(
            k for k in SOURCE_KINDS if getattr(self, re.sub("([A-Z])", r"_\1", k).lower()) is not None
        )

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
        return str(self.object_storage) if self.object_storage else f"huggingface:{self.huggingface}"


class ServingSettings(Section):
    engine: Engine = key("vllm", "inference engine")
    image: t.Image | None = key(
        None,
        f"custom serving image, `{IMAGE_EXAMPLE}` (TGI, custom engines, air-gapped tenancies); "
        "none: Oracle's vLLM service container",
    )
    service_container: t.ServiceContainer = key(
        DEFAULT_SERVICE_CONTAINER,
        "Oracle's vLLM service container, `<name>:<tag>`, used without `image`; pinned, never latest "
        "(`llmstack preflight` names a newer one)",
    )
    params: str = key("", "extra engine flags")
    tensor_parallelism: int | None = key(
        None, "GPUs one replica shards over (none: the shape's GPU count)", ge=1
    )
    quantization: Literal["none", "fp8", "int8", "awq", "gptq"] = key(
        "none", "weight format (`int8` with `tgi` only)"
    )
    port: int = key(DEFAULT_PORT, "container port (but 8446, 8447, 24224)", ge=1024, le=65535)
    max_model_len: int = key(4096, "context length the engine reserves", ge=128, le=1_048_576)
    max_loras: int | None = key(
        None, "adapters served on this model: how many one batch may mix (none: all, up to 8)", ge=1
    )
    max_lora_rank: int | None = key(
        None, "adapters served on this model: vLLM's rank bound (none: the smallest that holds every loraR)"
    )

    _rules = rules_of(stack_rules.engine_problems)

    @property
    def container(self) -> Literal["service", "custom"]:
        return "custom" if self.image else "service"

    @property
    def image_uri(self) -> str:
        """What the deployment runs: the custom image, or `dsmc://<name>:<tag>`."""
        return self.image or parse_service_container(self.service_container).image


class AutoscalingSettings(Section):
    min_replicas: int = key(1, "fewest instances", ge=1)
    max_replicas: Annotated[int, Accepts("an integer >= minReplicas")] = key(..., "most instances", ge=1)
    metric: Literal["cpu", "memory"] = key("cpu", "what is measured")
    scale_out_threshold: int = key(80, "percent of the metric that adds an instance", ge=1, le=100)
    scale_in_threshold: int = key(20, "percent that removes one (below scale-out)", ge=1, le=100)
    cooldown_seconds: int = key(600, "wait between two scalings", ge=300, le=3600)

    _rules = rules_of(stack_rules.autoscaling_problems)


class ComputeSettings(Section):
    shape: t.Shape = key(..., "GPU shape, e.g. `VM.GPU.A10.1`")
    replicas: int = key(1, "instances (initial count with autoscaling)", ge=1)
    bandwidth_mbps: int = key(10, "load balancer bandwidth", ge=10, le=8000)
    autoscaling: AutoscalingSettings | None = key(None, "scale between minReplicas and maxReplicas")

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas

    _rules = rules_of(stack_rules.replicas_problems)


class ReadinessSettings(Section):
    timeout_minutes: int = key(60, "how long `up` waits for a working endpoint", ge=1, le=240)
    smoke_prompt: Annotated[str, Accepts("a non-empty prompt")] = key(
        "Say hello.", "prompt that must get a completion", pattern=r"\S"
    )


class ArtifactSettings(Section):
    mode: Literal["reference", "copy"] | None = key(
        None,
        "`reference`: the files stay in Object Storage, pinned by version (a versioned bucket); "
        "`copy`: a zip copied into the catalog; none: reference for `localPath` and a prefix, copy for a zip",
    )


class ModelSettings(Section):
    """One model; `<name>`: 2-32 of `a-z 0-9 -`, starting with a letter.

    A deployed model has `serving` and `compute`; an adapter (`source.fineTune.save: adapter`) has neither:
    it is served on its base model's deployment. `Settings.models` lists the deployed ones only (their
    `serving` and `compute` are always set), `Settings.adapters` the adapters.
    """

    source: SourceSettings = key(..., "where the weights come from: exactly one of the keys below")
    parameters_b: t.Size | None = key(
        None,
        "size (`7B`, `13B`, a number) for GPU fit and cost; none: from config.json or the name",
        alias="parameters",
    )
    # Typed as always set: the models a consumer gets from `Settings.models` have them (the check below).
    serving: ServingSettings = key(None, "the engine and its image (none for an adapter)")
    artifact: ArtifactSettings = key(ArtifactSettings(), "how an offline model's files reach the catalog")
    compute: ComputeSettings = key(None, "the deployment's shape and instances (none for an adapter)")
    readiness: ReadinessSettings = key(ReadinessSettings(), "the check after `up`")
    _name: str = PrivateAttr("")
    _adapter_base: str | None = PrivateAttr(None)  # an adapter's base model, once the stack resolved it

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_adapter(self) -> bool:
        return self.source.fine_tune is not None and self.source.fine_tune.save == "adapter"

    @check(mode="after")
    def _sized(self) -> ModelSettings:
        deployed = {"serving": self.serving, "compute": self.compute}
        if self.is_adapter:
            _refuse(
                [
                    (
                        (key_,),
                        f"an adapter (save: adapter) is served on its base model's deployment and has no "
                        f"{key_} of its own; accepted: leave it out (set it on the base model)",
                    )
                    for key_, given in deployed.items()
                    if given is not None
                ]
            )
            return self
        missing = [k for k, given in deployed.items() if given is None]
        _refuse(
            [
                ((k,), f"missing; accepted: a mapping (see the README's settings table for {k})")
                for k in missing
            ]
        )
        size = self.parameters_b or sizing.infer_parameters_b(
            local_path=self.source.local_path, model_id=self.source.model_id
        )
        _refuse(stack_rules.model_problems(self, size))
        gpus = SHAPES[self.compute.shape].gpu_count
        serving = self.serving.model_copy(
            update={"tensor_parallelism": self.serving.tensor_parallelism or gpus}
        )
        return self.model_copy(update={"parameters_b": size, "serving": serving})

    @property
    def artifact_mode(self) -> Literal["reference", "copy", "none"]:
        """How the model's files reach the catalog: by reference, copied, or not at all (online)."""
        if self.source.huggingface is not None:
            return "none"
        if self.source.fine_tune is not None:
            return "copy"  # the job writes a zip (fine_tune_job.FINE_TUNE_ZIP)
        if self.artifact.mode is not None:
            return self.artifact.mode
        uri = self.source.object_storage
        return "copy" if uri is not None and uri.is_zip else "reference"

    @property
    def artifact_mode_said(self) -> str:
        return {
            "none": "pulled inside the container",
            "copy": "copied as a zip",
            "reference": "by reference",
        }[self.artifact_mode]


_NAME = t.matching(
    re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"),
    "bad model name",
    "2-32 characters of a-z, 0-9 and '-', starting with a letter, not ending in '-' (it becomes part of "
    "resource names)",
)
_TAG = t.matching(
    re.compile(r"^[^.\s]{1,100}$"), "bad tag name", "a tag name of 1-100 characters without spaces or periods"
)


class Settings(Section):
    project: ClassVar[str] = PROJECT
    region: t.Region = key(..., "OCI region of every resource, e.g. `us-ashburn-1`", alias="oci:region")
    tenancy_id: t.Tenancy = key(
        None,
        "tenancy; the dynamic group lives in its root compartment (none: `tenancy` of `auth.profile` in"
        " `auth.configFile`, which the plan names)",
    )
    compartment_id: Annotated[str, t.ocid("compartment", "tenancy")] = key(
        ..., "compartment of every other resource"
    )
    project_id: Annotated[str, t.ocid("datascienceproject")] | None = key(
        None, "existing Data Science project; else one is created"
    )
    network: NetworkSettings = key(NetworkSettings(), "the VCN, or an existing subnet")
    logging: LoggingSettings = key(LoggingSettings(), "the predict and access logs")
    registry: RegistrySettings = key(RegistrySettings.model_construct(), "the serving images")
    artifact_bucket: BucketSettings = key(BucketSettings.model_construct(), "the model artifacts")
    bucket_compartments: Annotated[
        dict[Annotated[str, _BUCKET_RULE], Annotated[str, t.ocid("compartment", "tenancy")]],
        Accepts("a mapping of bucket names to compartment OCIDs"),
    ] = key(
        {},
        "compartment of a source, dataset or output bucket outside `compartmentId` (the catalog copy is "
        "granted there), e.g. `{llm-models: ocid1.compartment.oc1..<unique id>}`",
    )
    budget: BudgetSettings = key(BudgetSettings(), "what the stack may cost")
    identity: IdentitySettings = key(IdentitySettings(), "who the deployments and jobs are")
    auth: AuthSettings = key(AuthSettings(), "how the project's own providers sign OCI calls")
    tags: Annotated[
        dict[Annotated[str, _TAG], t.TagValue], Accepts("a mapping of tag names to string values")
    ] = key({}, "freeform tags on every resource (`environment`, `team` are required by policy)")
    hf_token: t.HfToken | None = key(
        None, "Hugging Face token for gated models (`pulumi config set --secret hfToken`)"
    )
    hf_token_secret_id: Annotated[str, t.ocid("vaultsecret")] | None = key(
        None, "Vault secret holding the token instead (read by the container)"
    )
    pricing: PricingSettings | None = key(None, "negotiated prices, for cost and budget")
    models_by_name: Annotated[
        dict[Annotated[str, _NAME], ModelSettings],
        Accepts("at least one model: models.<name>: {source, serving, compute}"),
    ] = key(..., "one entry per deployed model", alias="models", min_length=1)
    _stack: str = PrivateAttr("")
    _tenancy_origin: str = PrivateAttr("tenancyId")

    @check(mode="before")
    @classmethod
    def _named_sections(cls, raw: Any) -> Any:
        """The sections whose default names carry the stack are always validated, with the stack at hand."""
        return {"registry": {}, "artifactBucket": {}, **raw} if isinstance(raw, Mapping) else raw

    @check(mode="wrap")
    @classmethod
    def _tenancy_from_profile(cls, raw: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        """Without `tenancyId`, the `tenancy` of the OCI config profile the providers sign with (read from the
        file, offline too); `tenancy_origin` says which it was."""
        profile = None
        if isinstance(raw, Mapping) and raw.get("tenancyId") is None:
            profile = _profile_tenancy(raw.get("auth"))
            tenancy = profile.tenancy_id if isinstance(profile, ProfileTenancy) else profile
            raw = {**raw, "tenancyId": tenancy}
        settings = handler(raw)
        if isinstance(profile, ProfileTenancy):
            settings._tenancy_origin = profile.origin
        return settings

    def model_post_init(self, context: Any) -> None:
        self._stack = context["stack"]
        for name, model in self.models_by_name.items():
            model._name = name

    @property
    def stack(self) -> str:
        return self._stack

    @property
    def tenancy_origin(self) -> str:
        """Where `tenancy_id` came from: `tenancyId`, or `<config file> [<profile>]`."""
        return self._tenancy_origin

    @property
    def models(self) -> tuple[ModelSettings, ...]:
        """The deployed models (adapters are served on their base's deployment: `adapters`)."""
        return tuple(m for m in self.models_by_name.values() if not m.is_adapter)

    def model(self, name: str) -> ModelSettings:
        return self.models_by_name[name]

    @property
    def environment(self) -> str:
        return self.tags.get("environment", self.stack)

    @property
    def price_overrides(self) -> bool:
        return self.pricing is not None and bool(self.pricing.shapes or self.pricing.gpus)

    @property
    def prices(self) -> PriceTable:
        return with_overrides(
            DEFAULT_PRICES, self.pricing.model_dump() if self.pricing and self.price_overrides else None
        )

    def shape_hourly_usd(self, shape: str) -> float | None:
        """The hourly price of `shape` when the stack sets prices, else None (the price table decides)."""
        return self.prices.shape_hourly_usd(shape) if self.price_overrides else None

    @check(mode="after")
    def _models_fit_the_stack(self, info: ValidationInfo) -> Settings:
        resolved, found = rules.resolved_fine_tunes(self)
        _refuse(found)
        self = self.model_copy(update={"models_by_name": resolved})
        _refuse(stack_rules.models_fit_the_stack(self, (info.context or {})["stack"]))
        return self

    @property
    def adapters(self) -> tuple[AdapterSettings, ...]:
        """The stack's adapters: fine-tunes kept as adapters, served on their base model's deployment."""
        return tuple(
            AdapterSettings(
                name=name,
                base=model._adapter_base or "",
                fine_tune=model.source.fine_tune,
                parameters_b=model.parameters_b or 0.0,
            )
            for name, model in self.models_by_name.items()
            if model.is_adapter and model.source.fine_tune is not None
        )

    def adapters_of(self, base: str) -> tuple[AdapterSettings, ...]:
        return tuple(a for a in self.adapters if a.base == base)

    def adapter(self, name: str) -> AdapterSettings:
        return next(a for a in self.adapters if a.name == name)


def _profile_tenancy(auth: Any) -> ProfileTenancy | t.NoTenancy:
    """The `tenancy` of `auth.profile` in `auth.configFile` (their defaults when not set), or why none."""
    given = auth if isinstance(auth, Mapping) else {}
    default = AuthSettings()
    mode = given.get("mode", default.mode)
    profile, file = given.get("profile", default.profile), given.get("configFile", default.config_file)
    if mode not in CONFIG_FILE_MODES:
        return t.NoTenancy(f"auth.mode {mode!r} reads no OCI config file")
    if not (isinstance(profile, str) and isinstance(file, str)):
        return t.NoTenancy("auth.profile or auth.configFile is not a string")
    found = tenancy_from_profile(file, profile)
    return found or t.NoTenancy(f"profile {profile!r} of {file} gives no tenancy")


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
    for name, value in config.items():
        namespace, _, key_ = str(name).rpartition(":")
        if namespace in ("", PROJECT) or name == "oci:region":
            raw[key_ if name != "oci:region" else name] = value
        elif difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.8:
            # A misspelt project namespace would otherwise pass for a provider's setting, unread.
            others = f"this project's keys under {PROJECT}: (other namespaces are left to their providers)"
            found.append(
                Problem(
                    name,
                    f"unknown namespace {namespace!r}; did you mean '{PROJECT}:{key_}'? accepted: {others}",
                )
            )
    found += [Problem(*at) for at in plain_secrets({k: v for k, v in raw.items() if k != "hfToken"})]
    hf_secret = bool({"hfToken", f"{PROJECT}:hfToken"} & set(secret_keys)) or is_secure(raw.get("hfToken"))
    context = {"stack": stack, "project_dir": project_dir, "hf_token_is_secret": hf_secret}
    try:
        settings = Settings.model_validate(_present(raw), context=context)
    except ValidationError as exc:
        found += problems_of(exc, Settings)
    if found:
        raise SettingsError(found, source)
    return settings


def _present(value: Any) -> Any:
    """The config without keys left empty (`compute:` with nothing under it is null in YAML)."""
    return (
        {k: _present(v) for k, v in value.items() if v is not None} if isinstance(value, Mapping) else value
    )
