"""Stack settings: every key a stack file may hold, with its type, default and meaning written once, here.

`load_settings` turns a stack's `config:` mapping (from `stacks/Pulumi.<stack>.yaml`, or from the Pulumi
engine at run time) into frozen pydantic models, or raises one `SettingsError` with every problem at once.
The value types and the wording of a refusal are `domain/values.py`; the checks across keys are
`domain/stack_rules.py` and `domain/fine_tune_rules.py`; the README's settings table and the stack file's
JSON Schema are made from these models (`llmstack/settings_docs.py`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, PrivateAttr, ValidationError
from pydantic import model_validator as check
from pydantic.alias_generators import to_camel, to_snake

from domain import fine_tune_rules, sizing, stack_rules
from domain import values as v
from domain.adapters import AdapterSettings, Container
from domain.container_env import DEFAULT_PORT, Method
from domain.context import PROJECT
from domain.errors import Accepts, Problem, Refused, SettingsError
from domain.ids import IMAGE_EXAMPLE, OBJECT_URI_FORM, Engine, SigningAuthMode
from domain.oci_rules import ProfileTenancy, tenancy_from_profile
from domain.pricing import DEFAULT_PRICES, PriceTable, with_overrides
from domain.secrets import is_secure, plain_secrets
from domain.service_container import DEFAULT_SERVICE_CONTAINER, parse_service_container
from domain.shapes import SHAPES
from domain.values import key, refuse, rules_of

SOURCE_KINDS = ("localPath", "objectStorage", "huggingface", "fineTune")
CONFIG_FILE_MODES = ("api_key", "security_token")  # the auth modes that read the OCI config file


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, strict=True)


class NetworkSettings(Section):
    vcn_cidr: v.Cidr = key("10.0.0.0/16", "VCN address range (/16 to /30)")
    subnet_cidr: v.SubnetCidr = key(
        "10.0.1.0/24", "private subnet, inside `vcnCidr`; /24 or larger (deployments need 127 free addresses)"
    )
    egress: Literal["nat", "managed", "none"] = key(
        "nat",
        "`nat`: own VCN, NAT + service gateway; `managed`: service-managed networking with internet; `none`: "
        "own VCN, service gateway only (offline models only)",
    )
    existing_subnet_id: v.SubnetId | None = key(None, "use this subnet; no network resources are created")
    subnet_compartment_id: v.CompartmentId | None = key(
        None,
        "compartment of `existingSubnetId` (none: `compartmentId`); the Data Science service is granted the"
        " network there",
    )
    _rules = rules_of(stack_rules.network_problems)

    @property
    def creates_vcn(self) -> bool:
        return self.existing_subnet_id is None and self.egress != "managed"


class LoggingSettings(Section):
    retention_days: v.Retention = key(30, "retention of the predict and access logs")
    existing_log_group_id: v.LogGroupId | None = key(
        None, "put the logs in this log group instead of a new one"
    )


class RegistrySettings(Section):
    repository: Annotated[str, v.stack_named(v.REPOSITORY)] = key(
        "llm/serving-<stack>",
        "private OCIR repository for the serving images (one per region)",
        validate_default=True,
    )


class BucketSettings(Section):
    name: Annotated[str, v.stack_named(v.BUCKET)] = key(
        f"{PROJECT}-<stack>-artifacts", "private, versioned bucket for model zips", validate_default=True
    )
    kms_key_id: v.VaultKeyId | None = key(
        None, "customer-managed Vault key for the bucket (none: Oracle-managed)"
    )
    kms_key_compartment_id: v.CompartmentId | None = key(
        None, "compartment of the Vault key (none: `compartmentId`); Object Storage is granted the key there"
    )
    previous_versions_days: int = key(
        30, "days a replaced object's previous version is kept (lifecycle rule)", ge=1, le=3650
    )
    incomplete_uploads_days: int = key(
        7, "days an uncommitted multipart upload is kept before it is aborted (lifecycle rule)", ge=1, le=365
    )


class BudgetSettings(Section):
    monthly_usd: Annotated[float, Accepts("a number of US dollars >= 0")] | None = key(
        None, "monthly budget the `monthly-budget` policy checks", ge=0, allow_inf_nan=False
    )


class IdentitySettings(Section):
    existing_dynamic_group: v.DynamicGroup | None = key(
        None, "use this dynamic group (no tenancy-level rights needed); else one is created"
    )


class AuthSettings(Section):
    """How the project's own providers (artifact upload, catalog, readiness) sign OCI calls."""

    mode: SigningAuthMode = key("api_key", "how the project's own providers sign OCI calls")
    profile: str = key("DEFAULT", "profile in the OCI config file")
    config_file: str = key("~/.oci/config", "OCI config file")


class PricingSettings(Section):
    shapes: Annotated[
        dict[v.PricedShape, Annotated[v.Price, Accepts("a number >= 0 (USD per hour for the whole shape)")]],
        Accepts("a mapping of shape names to USD per hour for the whole shape"),
    ] = key({}, "USD per hour for a whole shape, e.g. `{VM.GPU.A10.1: 1.6}` (negotiated rates)")
    gpus: Annotated[
        dict[v.GpuName, Annotated[v.Price, Accepts("a number >= 0 (USD per GPU-hour)")]],  # type: ignore[valid-type]
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
        v.location(
            f"a Hugging Face model id <org>/<model> or a model folder {OBJECT_URI_FORM}",
            hub=True,
            stack_model=True,
        ),
    ] = key(
        ...,
        "the model to fine-tune: a Hugging Face id (gated ones need hfTokenSecretId) or a folder in a "
        "bucket; with `save: adapter`, a model of this stack (the adapter is served on its deployment)",
    )
    dataset: Annotated[str, v.location(f"{OBJECT_URI_FORM} (JSONL files the job reads)")] = key(
        ..., "JSONL records `{prompt, completion}` or `{text}` (every `*.jsonl` under the prefix)"
    )
    output: Annotated[str, v.location(f"{OBJECT_URI_FORM} (where the job writes the model)")] = key(
        ..., "where the job writes `<run folder>/model.zip` (merged weights) and `finetune.json`"
    )
    method: Literal["lora", "qlora", "full"] = key("lora", "what is trained")
    save: Literal["merged", "adapter"] = key(
        "merged",
        "`merged`: LoRA folded into the weights, a deployment of its own; `adapter`: kept as an adapter and "
        "served on the deployment of `baseModel`, a model of this stack, with its other adapters",
    )
    epochs: v.Number = key(3.0, "passes over the dataset")
    learning_rate: v.Number = key(2e-4, "peak learning rate")
    max_seq_len: int = key(2048, "tokens per record (longer are cut)")
    batch_size: int = key(4, "records per GPU and step")
    grad_accum: int = key(1, "steps accumulated per update")
    lora_r: int = key(16, "adapter rank (LoRA, QLoRA)")
    lora_alpha: int = key(32, "adapter scale (LoRA, QLoRA)")
    max_steps: int | None = key(None, "stop after this many updates")
    gradient_checkpointing: bool = key(
        True, "recompute activations: far less GPU memory, about a third more time"
    )
    shape: v.TrainingShape = key(
        ..., "GPU shape of the job; every GPU must hold the whole run (see docs/finetune.md)"
    )
    nodes: int = key(
        1,
        "nodes of the job; more than 1: a multi-node job on the stack's subnet, torchrun across the nodes",
        ge=1,
        le=fine_tune_rules.MAX_NODES,
    )
    sharding: Literal["auto", "ddp", "fsdp"] = key(
        "auto",
        "`ddp`: every GPU holds the whole run; `fsdp`: weights and optimizer state split over every GPU of "
        "every node; `auto`: ddp when it fits a GPU, else fsdp",
    )
    image: Annotated[v.Image, Accepts(f"the training image, {IMAGE_EXAMPLE}")] | None = key(
        None,
        "training image with `training/` and the train extra; none: a service conda environment with the "
        "entrypoint as the job artifact (see docs/finetune.md)",
    )
    timeout_minutes: int = key(
        12 * 60, "the job's maximum runtime; `up` waits for it (and an hour to start)", ge=1, le=7 * 24 * 60
    )
    _rules = rules_of(fine_tune_rules.entrypoint_problems)

    @property
    def base_is_stack_model(self) -> bool:
        """`baseModel` names a model of this stack (an adapter's base), not weights of its own."""
        return bool(v.MODEL_NAME.match(self.base_model))

    @property
    def base_model_is_hub_id(self) -> bool:
        return not self.base_model.startswith("oci://")

    @property
    def base_model_name(self) -> str:
        """The name a size or architecture can be read from: the hub id, or the prefix's last part."""
        return self.base_model if self.base_model_is_hub_id else self.base_model.rsplit("/", 1)[-1]


class SourceSettings(Section):
    local_path: v.LocalPath | None = key(
        None,
        "offline: a model folder, uploaded as objects (by reference) or as a zip (`artifact.mode: copy`)",
    )
    object_storage: v.ModelUri | None = key(
        None,
        "offline: a prefix holding a model folder (`.../prefix/`, by reference) or a stored zip (copied)",
    )
    huggingface: v.HfId | None = key(None, "online: pulled from Hugging Face inside the container")
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
        return next(kind for kind in SOURCE_KINDS if getattr(self, to_snake(kind)) is not None)

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
    image: v.Image | None = key(
        None,
        f"custom serving image, `{IMAGE_EXAMPLE}` (TGI, custom engines, air-gapped tenancies); "
        "none: Oracle's vLLM service container",
    )
    service_container: v.ServiceContainer = key(
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
    def container(self) -> Container:
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
    shape: v.Shape = key(..., "GPU shape, e.g. `VM.GPU.A10.1`")
    replicas: int = key(1, "instances (initial count with autoscaling)", ge=1)
    bandwidth_mbps: int = key(10, "load balancer bandwidth", ge=10, le=8000)
    autoscaling: AutoscalingSettings | None = key(None, "scale between minReplicas and maxReplicas")
    _rules = rules_of(stack_rules.replicas_problems)

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas


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


ARTIFACT_MODES_SAID = {
    "none": "pulled inside the container",
    "copy": "copied as a zip",
    "reference": "by reference",
}


class ModelSettings(Section):
    """One model; `<name>`: 2-32 of `a-z 0-9 -`, starting with a letter.

    A deployed model has `serving` and `compute`; an adapter (`source.fineTune.save: adapter`) has neither:
    it is served on its base model's deployment. `Settings.models` lists the deployed ones only (their
    `serving` and `compute` are always set), `Settings.adapters` the adapters.
    """

    source: SourceSettings = key(..., "where the weights come from: exactly one of the keys below")
    parameters_b: v.Size | None = key(
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
        """A deployed model with its size (given, or read from its files or name) and tensor parallelism."""
        refuse(stack_rules.deployment_problems(self))
        if self.is_adapter:
            return self
        size = self.parameters_b or sizing.infer_parameters_b(
            local_path=self.source.local_path, model_id=self.source.model_id
        )
        refuse(stack_rules.model_problems(self, size))
        gpus = self.serving.tensor_parallelism or SHAPES[self.compute.shape].gpu_count
        serving = self.serving.model_copy(update={"tensor_parallelism": gpus})
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
        return ARTIFACT_MODES_SAID[self.artifact_mode]


class Settings(Section):
    project: ClassVar[str] = PROJECT
    region: v.Region = key(..., "OCI region of every resource, e.g. `us-ashburn-1`", alias="oci:region")
    tenancy_id: v.Tenancy = key(
        None,
        "tenancy; the dynamic group lives in its root compartment (none: `tenancy` of `auth.profile` in"
        " `auth.configFile`, which the plan names)",
    )
    compartment_id: v.CompartmentId = key(..., "compartment of every other resource")
    project_id: v.ProjectId | None = key(None, "existing Data Science project; else one is created")
    network: NetworkSettings = key(NetworkSettings(), "the VCN, or an existing subnet")
    logging: LoggingSettings = key(LoggingSettings(), "the predict and access logs")
    registry: RegistrySettings = key(RegistrySettings.model_construct(), "the serving images")
    artifact_bucket: BucketSettings = key(BucketSettings.model_construct(), "the model artifacts")
    bucket_compartments: Annotated[
        dict[v.BucketName, v.CompartmentId], Accepts("a mapping of bucket names to compartment OCIDs")
    ] = key(
        {},
        "compartment of a source, dataset or output bucket outside `compartmentId` (the catalog copy is "
        "granted there), e.g. `{llm-models: ocid1.compartment.oc1..<unique id>}`",
    )
    budget: BudgetSettings = key(BudgetSettings(), "what the stack may cost")
    identity: IdentitySettings = key(IdentitySettings(), "who the deployments and jobs are")
    auth: AuthSettings = key(AuthSettings(), "how the project's own providers sign OCI calls")
    tags: Annotated[dict[v.TagName, v.TagValue], Accepts("a mapping of tag names to string values")] = key(
        {}, "freeform tags on every resource (`environment`, `team` are required by policy)"
    )
    hf_token: v.HfToken | None = key(
        None, "Hugging Face token for gated models (`pulumi config set --secret hfToken`)"
    )
    hf_token_secret_id: v.VaultSecretId | None = key(
        None, "Vault secret holding the token instead (read by the container)"
    )
    pricing: PricingSettings | None = key(None, "negotiated prices, for cost and budget")
    models_by_name: Annotated[
        dict[v.ModelName, ModelSettings],
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
            raw = {**raw, "tenancyId": profile.tenancy_id if isinstance(profile, ProfileTenancy) else profile}
        settings = handler(raw)
        if isinstance(profile, ProfileTenancy):
            settings._tenancy_origin = profile.origin
        return settings

    def model_post_init(self, context: Any) -> None:
        self._stack = context["stack"]
        for name, model in self.models_by_name.items():
            model._name = name

    @check(mode="after")
    def _models_fit_the_stack(self) -> Settings:
        resolved, found = fine_tune_rules.resolved_fine_tunes(self)
        refuse(found)
        self = self.model_copy(update={"models_by_name": resolved})
        refuse(stack_rules.models_fit_the_stack(self))  # `stack` is set before this check
        return self

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
        overrides = self.pricing.model_dump() if self.pricing and self.price_overrides else None
        return with_overrides(DEFAULT_PRICES, overrides)

    def shape_hourly_usd(self, shape: str) -> float | None:
        """The hourly price of `shape` when the stack sets prices, else None (the price table decides)."""
        return self.prices.shape_hourly_usd(shape) if self.price_overrides else None

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


def _profile_tenancy(auth: Any) -> ProfileTenancy | v.NoTenancy:
    """The `tenancy` of `auth.profile` in `auth.configFile` (their defaults when not set), or why none."""
    given, default = auth if isinstance(auth, Mapping) else {}, AuthSettings()
    mode = given.get("mode", default.mode)
    profile, file = given.get("profile", default.profile), given.get("configFile", default.config_file)
    if mode not in CONFIG_FILE_MODES:
        return v.NoTenancy(f"auth.mode {mode!r} reads no OCI config file")
    if not (isinstance(profile, str) and isinstance(file, str)):
        return v.NoTenancy("auth.profile or auth.configFile is not a string")
    return tenancy_from_profile(file, profile) or v.NoTenancy(
        f"profile {profile!r} of {file} gives no tenancy"
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
    for name, value in config.items():
        namespace, _, key_ = str(name).rpartition(":")
        if namespace in ("", PROJECT) or name == "oci:region":
            raw[key_ if name != "oci:region" else name] = value
        elif difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.8:
            # A misspelt project namespace would otherwise pass for a provider's setting, unread.
            others = f"this project's keys under {PROJECT}: (other namespaces are left to their providers)"
            hint = f"unknown namespace {namespace!r}; did you mean '{PROJECT}:{key_}'? accepted: {others}"
            found.append(Problem(name, hint))
    found += [Problem(*at) for at in plain_secrets({k: value for k, value in raw.items() if k != "hfToken"})]
    hf_secret = bool({"hfToken", f"{PROJECT}:hfToken"} & set(secret_keys)) or is_secure(raw.get("hfToken"))
    context = {"stack": stack, "project_dir": project_dir, "hf_token_is_secret": hf_secret}
    try:
        settings = Settings.model_validate(_present(raw), context=context)
    except ValidationError as exc:
        found += v.problems_of(exc, Settings)
    if found:
        raise SettingsError(found, source)
    return settings


def _present(value: Any) -> Any:
    """The config without keys left empty (`compute:` with nothing under it is null in YAML)."""
    if not isinstance(value, Mapping):
        return value
    return {k: _present(given) for k, given in value.items() if given is not None}
