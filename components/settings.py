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
from typing import Any, Literal, TypeVar, cast

import yaml

from components import sizing
from components.container_env import (
    DEFAULT_PORT,
    ENGINES,
    RESERVED_PORTS,
    ContainerSpec,
    Engine,
    Method,
    container_env,
    env_problems,
)
from components.pricing import DEFAULT_PRICES, PriceTable, with_overrides
from components.shapes import SHAPES, known_shape_names

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

IMAGE_EXAMPLE = "<region-key>.ocir.io/<namespace>/<repository>@sha256:<digest>"


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
    text = repr(value)
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
    repository: str = "llm/serving"


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


SourceKind = Literal["localPath", "objectStorage", "huggingface"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("localPath", "objectStorage", "huggingface")


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    kind: SourceKind
    local_path: Path | None = None
    object_storage: ObjectStorageUri | None = None
    huggingface: str | None = None

    @property
    def method(self) -> Method:
        return "online" if self.kind == "huggingface" else "offline"

    def describe(self) -> str:
        if self.local_path is not None:
            return f"localPath:{self.local_path.name}"
        if self.object_storage is not None:
            return str(self.object_storage)
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

    @property
    def image_digest(self) -> str | None:
        match = _IMAGE.match(self.image)
        return match.group("digest") if match else None


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
        "registry.repository", "string", "`llm/serving`", "private OCIR repository for the serving images"
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
    registry = _registry(p, raw.get("registry"))
    bucket = _bucket(p, raw.get("artifactBucket"), stack)
    budget = _budget(p, raw.get("budget"))
    prices = _prices(p, raw.get("pricing"))
    identity = _identity(p, raw.get("identity"))
    auth = _auth(p, raw.get("auth"))
    tags = _tags(p, raw.get("tags"))
    hf_token = _hf_token(p, raw.get("hfToken"), "hfToken" in secrets)
    hf_token_secret_id = p.optional_ocid(raw, "hfTokenSecretId", "", ("vaultsecret",))
    models = _models(p, raw.get("models", _MISSING), network, hf_token, hf_token_secret_id)

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
    return raw, secrets


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


def _registry(p: _Parser, raw: Any) -> RegistrySettings:
    path = "registry"
    s = p.section(raw, path, ["repository"])
    repo = p.string(s, "repository", path, RegistrySettings().repository)
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
    for name in s.get("shapes") or {}:
        if name not in SHAPES:
            p.fail(f"pricing.shapes.{name}", name, ", ".join(known_shape_names()), "unknown shape")
    gpus = sorted({shape.gpu for shape in SHAPES.values()})
    for name in s.get("gpus") or {}:
        if name not in gpus:
            p.fail(f"pricing.gpus.{name}", name, ", ".join(gpus), "unknown GPU")
    try:
        return with_overrides(DEFAULT_PRICES, s)
    except ValueError as exc:
        p.problems.append(Problem("pricing", f"{exc}"))
        return None


def _identity(p: _Parser, raw: Any) -> IdentitySettings:
    s = p.section(raw, "identity", ["existingDynamicGroup"])
    return IdentitySettings(existing_dynamic_group=p.string(s, "existingDynamicGroup", "identity", None))


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
        model = _model(p, name, body, network, hf_token, hf_token_secret_id)
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
) -> ModelSettings | None:
    path = f"models.{name}"
    before = len(p.problems)
    s = p.section(body, path, _MODEL_KEYS)
    for required in ("source", "serving", "compute"):
        if required not in s:
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
    inferred = sizing.infer_parameters_b(
        local_path=source.local_path,
        model_id=source.huggingface or (source.object_storage.object_name if source.object_storage else None),
    )
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
        match = _IMAGE.match(image)
        if not match or not (match.group("tag") or match.group("digest")):
            p.fail(
                f"{path}.image", image, IMAGE_EXAMPLE + " (a tag or, better, a digest)", "bad image reference"
            )
        elif not _OCIR_HOST.match(match.group("host").split(":")[0]):
            p.fail(
                f"{path}.image",
                image,
                f"an image in OCI Container Registry: {IMAGE_EXAMPLE}",
                "not an OCIR image:",
            )
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


def _compute(p: _Parser, raw: Any, path: str) -> ComputeSettings | None:
    s = p.section(raw, path, ["shape", "replicas", "bandwidthMbps", "autoscaling"])
    if raw is None:
        return None
    shape = p.string(s, "shape", path)
    if isinstance(shape, str) and shape not in SHAPES:
        near = difflib.get_close_matches(shape, known_shape_names(), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        p.fail(f"{path}.shape", shape, ", ".join(known_shape_names()) + hint, "unknown shape")
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


def settings_from_runtime(project_dir: Path) -> Settings:
    """Settings for the stack Pulumi is running (inside `__main__`).

    The engine hands the program every config key as a string (objects as JSON); the whole map is read so
    that unknown keys are reported like any other problem, not silently ignored.
    """
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, str] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = {k for k in raw if runtime_config.is_config_secret(k)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    config = {key: _parse_config_value(text) for key, text in raw.items()}
    return load_settings(
        config,
        stack=pulumi.get_stack(),
        project_dir=project_dir,
        secret_keys=secret_keys,
        source=f"stack {pulumi.get_stack()!r}",
    )


def _parse_config_value(text: Any) -> Any:
    """Objects and numbers arrive as JSON text; plain strings as they are."""
    if not isinstance(text, str):
        return text
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict | list | int | float) and not isinstance(value, bool) else text


def settings_table() -> str:
    """The README's settings table, made from `KEY_DOCS` (a test keeps the two equal)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{d.key}` | {d.type} | {d.default} | {d.meaning} |" for d in KEY_DOCS]
    return "\n".join(rows)
